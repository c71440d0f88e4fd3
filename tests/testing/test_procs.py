"""ServerProcess tells a server that died by itself from one the test stopped."""

from __future__ import annotations

import signal
import sys

from sserelay.testing.procs import ServerProcess

# Listens on the port, then waits to be stopped or killed.
LISTEN = (
    "import socket, sys, time\n"
    "s = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "time.sleep(60)\n"
)


def server() -> ServerProcess:
    return ServerProcess([sys.executable, "-c", LISTEN, "{port}"], kill_after=5)


def test_a_server_the_test_stops_did_not_exit_by_itself() -> None:
    with server() as process:
        assert process.exited_by_itself is None
    assert process.exited_by_itself is None


def test_a_server_killed_from_outside_reports_the_signal_as_exiting_by_itself() -> None:
    with server() as process:
        process.proc.send_signal(signal.SIGSEGV)
        process.proc.wait(10)
        assert process.exited_by_itself == -signal.SIGSEGV
    assert process.exited_by_itself == -signal.SIGSEGV


def test_a_server_the_test_signals_itself_did_not_exit_by_itself() -> None:
    """A signal sent through `send_signal` is the test's own act (a graceful shutdown seen
    through, a lost instance), not a crash, whatever exit code follows."""
    with server() as process:
        process.send_signal(signal.SIGTERM)
        process.proc.wait(10)
        assert process.exited_by_itself is None
    assert process.exited_by_itself is None
