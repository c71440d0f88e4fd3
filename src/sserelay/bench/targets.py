"""What the benchmark sends its load through, and how each is started.

Every target is a row of the report. sserelay's rows name endpoints and options that other
work may not have landed yet: each is probed when the benchmark runs and reported "not yet
available" until it answers, so the harness needs no change when it does. To benchmark a new
endpoint or option, add a `Target` to `TARGETS`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlencode

from sserelay.bench.loadgen import RequestSpec
from sserelay.bench.nginx import NginxUnavailable, run_nginx
from sserelay.bench.procstat import child_pids, pids_by_cmdline
from sserelay.bench.profiles import Load
from sserelay.testing.procs import ServerProcess
from sserelay.testing.redis_server import RedisServer, RedisServerError

__all__ = ["TARGETS", "BenchEnv", "Kind", "Running", "Target", "TargetUnavailable", "launch"]

_PROMPT = "benchmark"


class Kind(Enum):
    DIRECT = "direct"
    NGINX = "nginx"
    NAIVE = "naive"
    SSERELAY = "sserelay"


class TargetUnavailable(RuntimeError):
    """This target cannot run here (yet): the reason goes in the report."""


def _prompt(load: Load) -> str:
    # A prompt prefix rather than the X-Fake-Scenario header: every relay passes the prompt
    # on, while the article's endpoints (rightly) forward no client headers.
    return f"[[scenario: {load.scenario}]] {_PROMPT}"


def _chat_body(load: Load) -> dict[str, object]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": _prompt(load)}],
        "stream": True,
    }


def openai_chat(base_url: str, load: Load) -> RequestSpec:
    """POST /v1/chat/completions, as an OpenAI SDK sends it."""
    return RequestSpec("POST", base_url + "/v1/chat/completions", _chat_body(load))


def article_get(base_url: str, load: Load) -> RequestSpec:
    """GET /completionChat?prompt=..., as the article's EventSource page does."""
    return RequestSpec("GET", f"{base_url}/completionChat?{urlencode({'prompt': _prompt(load)})}")


def stream_follow(base_url: str, load: Load) -> RequestSpec:
    """POST /v1/streams to start a generation, then follow it with GET /v1/streams/{id}."""
    return RequestSpec("POST", base_url + "/v1/streams", _chat_body(load), follow=True)


@dataclass(frozen=True, slots=True)
class Target:
    key: str  # for --targets
    title: str  # the report's row label
    kind: Kind
    request: Callable[[str, Load], RequestSpec]
    relay_args: tuple[str, ...] = ()  # extra `sserelay serve` options; "{redis}" is a URL
    nginx_budget: float | None = None  # the limit on CPU per chunk, x nginx's
    relay_env: tuple[tuple[str, str], ...] = ()  # extra environment for `sserelay serve`
    # A command the relay runs under (e.g. valgrind), and how long it may then take to start.
    relay_wrapper: tuple[str, ...] = ()
    startup_timeout: float = 30.0

    @property
    def needs_redis(self) -> bool:
        return any("{redis}" in arg for arg in self.relay_args)


TARGETS: tuple[Target, ...] = (
    # Direct must come first: every other row is reported relative to it.
    Target("direct", "direct to the upstream (floor)", Kind.DIRECT, openai_chat),
    Target("nginx", "nginx pass-through", Kind.NGINX, openai_chat),
    Target("openai", "sserelay /v1/chat/completions, pass-through (no log)", Kind.SSERELAY,
           openai_chat, nginx_budget=2.0,
           relay_env=(("SSERELAY_STREAM_LOG_CHAT_COMPLETIONS", "false"),)),
    Target("openai-log", "sserelay /v1/chat/completions, ids + memory log", Kind.SSERELAY,
           openai_chat, nginx_budget=2.0),
    Target("article", "sserelay GET /completionChat (article)", Kind.SSERELAY, article_get,
           nginx_budget=2.5),
    Target("streams-memory", "sserelay /v1/streams, memory log", Kind.SSERELAY, stream_follow,
           nginx_budget=2.0),
    Target("streams-redis", "sserelay /v1/streams, Redis log", Kind.SSERELAY, stream_follow,
           relay_args=("--redis", "{redis}"), nginx_budget=3.0),
    Target("openai-redis", "sserelay /v1/chat/completions, Redis log", Kind.SSERELAY,
           openai_chat, relay_args=("--redis", "{redis}"), nginx_budget=3.0),
    # Every row's "10x less than naive" rests on this one: as many runs as the others.
    Target("naive", "naive Flask + openai SDK (article)", Kind.NAIVE, article_get),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Running:
    """A started target: where to send the load and which processes it costs."""

    url: str
    pids: Callable[[], list[int]]  # charged for CPU and memory: the relay's own processes
    helper_pids: Callable[[], list[int]] = list  # e.g. redis-server: reported beside it


class BenchEnv:
    """What all targets share: the upstream (stamped_upstream)."""

    def __init__(self, upstream: ServerProcess) -> None:
        self.upstream = upstream
        self._db = os.path.join(tempfile.mkdtemp(prefix="sserelay-bench-"), "keys.sqlite3")

    def relay_env(self) -> dict[str, str]:
        return {
            "OPENAI_API_KEY": "sk-bench-not-a-real-key",
            "OPENAI_BASE_URL": self.upstream.url + "/v1",
            # Keys and the usage ledger in a throwaway file, not the working directory's.
            "SSERELAY_DB": self._db,
        }


@functools.cache
def _serve_help() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sserelay.cli", "serve", "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout


def _relay_argv(target: Target, redis_url: str | None) -> list[str]:
    args: list[str] = []
    for arg in target.relay_args:
        if arg.startswith("--") and arg.split("=")[0] not in _serve_help():
            raise TargetUnavailable(f"`sserelay serve` has no {arg} option yet")
        if "{redis}" in arg and redis_url is not None:
            arg = arg.replace("{redis}", redis_url)
        args.append(arg)
    return [*target.relay_wrapper, sys.executable, "-m", "sserelay.cli", "serve",
            "--port", "{port}", *args]  # fmt: skip


def _start_redis(stack: contextlib.ExitStack) -> RedisServer:
    try:
        return stack.enter_context(RedisServer())
    except RedisServerError as exc:
        raise TargetUnavailable(f"no redis-server: {exc}") from None


def _started(server: ServerProcess) -> ServerProcess:
    try:
        server.start()
    except (RuntimeError, TimeoutError) as exc:
        raise TargetUnavailable(f"did not start: {str(exc)[-300:]}") from None
    return server


@contextlib.contextmanager
def launch(target: Target, env: BenchEnv) -> Iterator[Running]:
    """Start a fresh instance of `target` (a fresh process: memory figures start clean)."""
    if target.kind is Kind.DIRECT:
        yield Running(env.upstream.url, list)
        return
    if target.kind is Kind.NGINX:
        try:
            with run_nginx(env.upstream.port) as nginx:
                master = nginx.proc.pid
                yield Running(nginx.url, lambda: child_pids(master))
        except NginxUnavailable as exc:
            raise TargetUnavailable(str(exc)) from None
        return
    with contextlib.ExitStack() as stack:
        helpers: Callable[[], list[int]] = list
        if target.kind is Kind.NAIVE:
            if importlib.util.find_spec("flask") is None:
                raise TargetUnavailable("Flask is not installed (pip install flask)")
            argv = [
                sys.executable, "-m", "flask", "--app", "sserelay.bench.naive_relay", "run",
                "--port", "{port}", "--with-threads", "--no-reload", "--no-debugger",
            ]  # fmt: skip
        elif target.needs_redis:
            # A fresh redis-server per launch: no run reads what an earlier one left behind.
            argv = _relay_argv(target, None)  # checks the option exists before starting Redis
            redis = _start_redis(stack)
            argv = _relay_argv(target, redis.url)
            helpers = functools.partial(pids_by_cmdline, "redis-server", f":{redis.port}")
        else:
            argv = _relay_argv(target, None)
        server = stack.enter_context(contextlib.closing(
            _started(ServerProcess(argv, env={**env.relay_env(), **dict(target.relay_env)},
                                   startup_timeout=target.startup_timeout))
        ))  # fmt: skip
        pid = server.proc.pid
        yield Running(server.url, lambda: [pid], helpers)
