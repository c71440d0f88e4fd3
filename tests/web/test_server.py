"""The server process's own settings (web/server.py)."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys

import httpx
import pytest
import uvicorn

from sserelay.testing.procs import ServerProcess, free_port
from sserelay.web.descriptors import DESCRIPTOR_TABLE, reserve_descriptors
from sserelay.web.server import LISTENERS, _listening_group
from tests.conftest import Upstream, start_relay


def test_log_records_skip_the_caller_lookup_and_the_thread_and_process_fields() -> None:
    """The server's records carry no caller file/line, thread or process: none of them is
    in sserelay's JSON lines, and finding them cost a stack walk and a syscall per line."""
    import logging

    from sserelay.web.server import _lean_log_records

    saved = (logging._srcfile, logging.logThreads, logging.logProcesses,
             logging.logMultiprocessing)
    try:
        _lean_log_records()
        record = logging.getLogger("sserelay.test").makeRecord(
            "sserelay.test", logging.INFO, "(unknown file)", 0, "m", (), None)
        assert record.process is None and record.thread is None
        assert logging._srcfile is None
    finally:
        (logging._srcfile, logging.logThreads, logging.logProcesses,
         logging.logMultiprocessing) = saved


def _listening_sockets(pid: int, port: int) -> int:
    """How many TCP sockets of process `pid` listen on `port` (from /proc)."""
    owned = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                owned.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "0A" and fields[9] in owned:
                    count += 1
    return count


def test_the_server_accepts_on_a_group_of_sockets_so_a_burst_is_not_taken_one_a_turn(
    relay: ServerProcess,
) -> None:
    """uvloop's libuv accepts one connection per listening socket per loop iteration; the
    relay listens on LISTENERS sockets of one port (SO_REUSEPORT), so a burst of new
    streams is accepted LISTENERS at a time (docs/decisions.md, "Accepting a burst")."""
    assert LISTENERS > 1
    assert _listening_sockets(relay.proc.pid, relay.port) == LISTENERS
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        for _ in range(3):  # new connections land on any of them, all served
            assert client.get("/simple", headers={"Connection": "close"}).status_code == 200


def _proc_field(pid: int, name: str, line_start: str) -> str:
    with open(f"/proc/{pid}/{name}", encoding="ascii") as lines:
        return next(line for line in lines if line.startswith(line_start))


def test_the_server_raises_its_open_file_limit_and_sizes_its_descriptor_table_at_start(
    upstream: Upstream,
) -> None:
    """Started with a soft limit of 1,024 open files, the relay raises it to the hard limit
    (two sockets a stream: 1,024 would hold ~500 streams), and its descriptor table is as
    large as that allows, up to DESCRIPTOR_TABLE, from the start: no burst of connections
    makes the kernel grow it, which in a process with threads blocks the event loop for an
    RCU grace period (docs/decisions.md, "The descriptor table, grown once")."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    relay = start_relay(upstream.url)
    relay.argv = ["prlimit", f"--nofile=1024:{limit}", *relay.argv]
    with relay:
        limits = _proc_field(relay.proc.pid, "limits", "Max open files").split()
        table = int(_proc_field(relay.proc.pid, "status", "FDSize:").split()[1])
    assert limits[3] == limits[4] == limit
    wanted = DESCRIPTOR_TABLE if hard == resource.RLIM_INFINITY else min(hard, DESCRIPTOR_TABLE)
    assert wanted > 1024  # more than the soft limit it started with: the test can tell
    assert table >= wanted


def test_growing_the_descriptor_table_without_a_stderr_is_skipped_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a launcher that gives the process no stderr (pythonw, some service managers)
    `serve` still starts; the table then grows as the kernel needs it."""
    monkeypatch.setattr(sys, "stderr", None)
    reserve_descriptors(size=128)


def test_responses_carry_a_date_and_do_not_name_the_server_software(
    client: httpx.Client,
) -> None:
    """No `server: uvicorn` (what runs behind the gateway is not the client's business),
    on an answer, an error and a stream alike; the Date header an origin server sends."""
    answers = [client.get("/v1/models"), client.get("/v1/streams/no-such-stream")]
    with client.stream("GET", "/completionChat", params={"prompt": "hi"}) as streamed:
        streamed.read()
        answers.append(streamed)
    assert [answer.status_code for answer in answers] == [200, 404, 200]
    for answer in answers:
        assert "server" not in answer.headers, answer.headers
        assert answer.headers["date"].endswith(" GMT"), answer.headers


def test_a_second_server_on_a_port_in_use_fails_and_says_so(relay: ServerProcess) -> None:
    """The group's sockets share their port with any socket that sets SO_REUSEPORT; a plain
    bind first keeps a second sserelay from silently joining the running one's group."""
    done = subprocess.run(
        [sys.executable, "-m", "sserelay.cli", "serve", "--port", str(relay.port)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "OPENAI_API_KEY": "sk-test-not-used"},
    )
    assert done.returncode != 0
    assert "address already in use" in (done.stdout + done.stderr).lower()
    assert _listening_sockets(relay.proc.pid, relay.port) == LISTENERS


def test_port_zero_a_host_name_or_a_unix_socket_bind_as_uvicorn_does() -> None:
    for options in ({"port": 0}, {"host": "localhost", "port": 8000}, {"uds": "/tmp/x.sock"}):
        config = uvicorn.Config(lambda: None, **options)  # type: ignore[arg-type]
        assert _listening_group(config) is None


def test_a_system_that_refuses_so_reuseport_gets_one_socket_as_uvicorn_binds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kernel or sandbox without SO_REUSEPORT: serve on uvicorn's single socket rather
    than fail to start (an unknown option number stands in for the refusal)."""
    monkeypatch.setattr(socket, "SO_REUSEPORT", 0x7FFF)
    config = uvicorn.Config(lambda: None, host="127.0.0.1", port=free_port())  # type: ignore[arg-type]
    assert _listening_group(config) is None
