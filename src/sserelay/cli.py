"""The `sserelay` command."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from sserelay.chat_cli import add_chat_command
from sserelay.config.command import add_config_command
from sserelay.keys.cli import add_keys_command
from sserelay.settings import Settings
from sserelay.usage_report import add_usage_command


def serve_flags(args: argparse.Namespace) -> dict[str, object]:
    """`serve`'s flags by the Settings field each sets (None: not given). A flag whose dest
    is the field's own name needs no line here."""
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    flags["cors_origins"] = tuple(args.cors_origin) or None
    flags["redis_url"] = args.redis
    return flags


def _serve(args: argparse.Namespace) -> int:
    from sserelay.config import ConfigError, load_configuration
    from sserelay.gateway.startup import startup_lines
    from sserelay.observability import configure_json_logging
    from sserelay.upstream.local_model import LocalModel, LocalModelError
    from sserelay.web.app import create_app
    from sserelay.web.server import serve

    try:
        # The file, the environment over it, the flags over both (sserelay.config).
        config = load_configuration(args.config, flags=serve_flags(args))
    except ConfigError as exc:
        print(f"sserelay: {exc}", file=sys.stderr)
        return 2
    settings, gateway_config = config.settings, config.gateway
    local: LocalModel | None = None
    if settings.use_local_model or gateway_config.needs_local_model:
        local = LocalModel()
        print(
            "sserelay: no OPENAI_API_KEY set; starting the local model "
            "SmolLM2-135M-Instruct (llama.cpp)...",
            flush=True,
        )
        try:
            local.start()
        except LocalModelError as exc:
            print(f"sserelay: {exc}", file=sys.stderr)
            return 1
        gateway_config = gateway_config.with_local_model(local.base_url)
    if local is not None and settings.use_local_model:
        settings = dataclasses.replace(settings, openai_base_url=local.base_url)
        upstream_desc = f"local model SmolLM2-135M-Instruct (llama.cpp on {local.base_url})"
    else:
        keyed = "with" if settings.openai_api_key else "without"
        upstream_desc = f"OpenAI-compatible API at {settings.openai_base_url} ({keyed} a key)"
    print(f"sserelay: upstream: {upstream_desc}", flush=True)
    print(
        f"sserelay: chat model {settings.chat_model!r}, completion model "
        f"{settings.completion_model!r}",
        flush=True,
    )
    log_desc = (
        f"Redis Streams ({_without_password(settings.redis_url)})"
        if settings.redis_url
        else "memory"
    )
    print(
        f"sserelay: stream log: {log_desc}, finished streams kept {settings.retention:g} s",
        flush=True,
    )
    for line in startup_lines(gateway_config):
        print(f"sserelay: {line}", flush=True)
    print(f"sserelay: serving on http://{settings.host}:{settings.port}/", flush=True)
    try:
        # One JSON line per request and per stream end, to [logging] file or stderr.
        configure_json_logging(settings.log_file)
    except OSError as exc:
        print(f"sserelay: logging.file = {settings.log_file!r}: cannot be opened for "
              f"appending ({exc.strerror})", file=sys.stderr)
        return 2
    try:
        # uvicorn, with a header deadline and graceful shutdown (web/server.py).
        serve(create_app(settings, gateway_config), settings)
    finally:
        if local is not None:
            local.stop()
    return 0


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sserelay",
        description="Relay streamed LLM answers (server-sent events) from a provider to "
        "browsers and API clients, keeping the provider key on the server.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the relay server",
        description="Run the relay server. The upstream is OpenAI (or any OpenAI-compatible "
        "server) when OPENAI_API_KEY or OPENAI_BASE_URL is set; otherwise sserelay starts the "
        "embedded local model SmolLM2-135M-Instruct and relays from it.",
        epilog="Environment: OPENAI_API_KEY (provider key, never sent to clients), "
        "OPENAI_BASE_URL (e.g. http://127.0.0.1:8080/v1 for vLLM, Ollama or llama.cpp), "
        "SSERELAY_CHAT_MODEL, SSERELAY_COMPLETION_MODEL (model names to request), "
        "SSERELAY_CORS_ORIGINS (comma-separated origins).",
    )
    serve.add_argument(
        "--host",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    serve.add_argument(
        "--port", type=int, help="TCP port to listen on (default: 8000)"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin (e.g. https://app.example.com) whose pages may call "
        "sserelay from a browser; repeat for several. Default: same origin only",
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="keep streams in Redis Streams at URL (e.g. redis://127.0.0.1:6379/0) "
        "so several sserelay instances share them: a stream started on one can "
        "be followed and resumed on any. Default: in this process's memory",
    )
    serve.add_argument(
        "--retention",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a finished stream stays replayable for late followers "
        "and resuming clients (default: 600)",
    )
    limits = serve.add_argument_group("timeouts (seconds; each ends a stream with a typed ending)")
    limits.add_argument(
        "--connect-timeout",
        type=float,
        metavar="S",
        help="to open the connection to the upstream (default: 10)",
    )
    limits.add_argument(
        "--first-token-timeout",
        type=float,
        metavar="S",
        help="from the request to the upstream's first event (default: 60)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="between two reads from the upstream mid-answer (default: 60)",
    )
    limits.add_argument(
        "--max-duration", type=float, metavar="S", help="for a whole answer (default: 600)"
    )
    limits.add_argument(
        "--heartbeat",
        type=float,
        metavar="S",
        help="send an SSE comment this often on every stream, also while "
        "waiting for the first token, so proxies keep it open (default: 15)",
    )
    limits.add_argument(
        "--slow-client-timeout",
        type=float,
        metavar="S",
        help="drop a client whose connection accepts no data for this long; the stream goes "
        "on for everyone else and the client can resume (default: 30)",
    )
    # Flags named after their Settings field (dest) need no other line (issue 7: limits).
    guard = serve.add_argument_group("limits (429/503 with Retry-After past a rate; 0: none)")
    guard.add_argument("--max-body-bytes", type=int, metavar="N",
                       help="largest request body on the article endpoints and /v1/streams "
                       "(default: 1048576); larger gets 413 without being read")
    guard.add_argument("--max-gateway-body-bytes", type=int, metavar="N",
                       help="largest request body on the /v1 gateway, which takes images as "
                       "base64 (default: 33554432)")
    guard.add_argument("--max-prompt-chars", type=int, metavar="N",
                       help="text of one conversation on the article endpoints and "
                       "/v1/streams (default: 32000)")
    guard.add_argument("--max-gateway-prompt-chars", type=int, metavar="N",
                       help="text of one conversation on the /v1 gateway (default: 2000000)")
    guard.add_argument("--max-messages", type=int, metavar="N",
                       help="messages in one conversation (default: 1000)")
    guard.add_argument("--key-requests-per-minute", type=int, metavar="N",
                       help="requests per client key (without keys: per address) per minute "
                       "(default: none)")
    guard.add_argument("--key-tokens-per-minute", type=int, metavar="N",
                       help="prompt (estimated as bytes/4) plus completion tokens per client "
                       "key per minute (default: none)")
    guard.add_argument("--key-concurrent-streams", type=int, metavar="N",
                       help="streams one client key may have running at once (default: none)")
    guard.add_argument("--max-streams", type=int, metavar="N",
                       help="streams running on this instance at once (default: 2000)")
    guard.add_argument("--header-timeout", type=float, metavar="S",
                       help="a client must send its request headers within S seconds of "
                       "connecting or of starting its next request, else 408 and the "
                       "connection is closed (default: 10)")
    guard.add_argument("--body-timeout", type=float, metavar="S",
                       help="and its request body within S seconds (default: 60)")
    guard.add_argument("--keepalive-timeout", type=float, metavar="S",
                       help="an idle client connection is kept S seconds for its next "
                       "request, then closed (default: 75)")
    guard.add_argument("--shutdown-grace", type=float, metavar="S",
                       help="on SIGTERM, running streams get S seconds to finish; then "
                       "followers are disconnected to resume elsewhere (default: 10)")
    guard.add_argument("--ticket-ttl", type=float, metavar="S",
                       help="how long the ticket POST /v1/streams returns lets a browser "
                       "follow that stream without the key (default: 600)")
    serve.add_argument(
        "--config", metavar="PATH",
        help="the TOML configuration file: server, timeouts, limits, stream log, CORS, "
        "logging, metrics, and the /v1 gateway's upstreams, routes, aliases, retries and key "
        "policies (sserelay.example.toml, docs/operations.md). Environment variables "
        "SSERELAY_<SECTION>_<NAME> override it, flags override both. Default: one upstream "
        "from the environment, as above",
    )
    serve.set_defaults(func=_serve)
    add_keys_command(sub)
    add_config_command(sub)
    add_usage_command(sub)
    add_chat_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
