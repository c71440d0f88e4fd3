"""Start real server processes on loopback for tests and the benchmark.

A server under test runs as a child process with its output going to a temporary log file
(not a pipe: nobody drains a pipe while the test runs, and a full pipe blocks the server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ServerProcess", "free_port", "wait_for_port"]

_TAIL_LINES = 40


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _process_output(proc: subprocess.Popen[bytes], log_path: Path | None) -> str:
    """Whatever the exited process wrote, from its log file or its stdout pipe."""
    if log_path is not None:
        return log_path.read_text(encoding="utf-8", errors="replace")
    if proc.stdout is not None:
        # The process has exited, so reading to EOF cannot block.
        return proc.stdout.read().decode("utf-8", errors="replace")
    return ""


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    *,
    log_path: Path | None = None,
) -> None:
    """Poll until something accepts TCP connections on host:port.

    If `proc` exits first, raise RuntimeError with the last lines of its output (from
    `log_path` when given, else from its stdout pipe if it has one), since a server that died
    on startup is far more common than one that is merely slow.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            output = _tail(_process_output(proc, log_path))
            raise RuntimeError(
                f"process {proc.args!r} exited with code {proc.returncode} before listening"
                f" on {host}:{port}; last output:\n{output}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class ServerProcess:
    """A server child process that listens on `port`, as a context manager.

    `argv` items may contain the placeholder ``{port}``, replaced by the port (a free one is
    picked when `port` is None). `env` entries are added to the current environment. Output
    (stdout and stderr) goes to a temporary log file, readable with `output()` while the
    process runs and after it stopped. On exit the process gets SIGTERM, then SIGKILL if it
    has not exited after `kill_after` seconds, and the log file is deleted (its text stays
    available from `output()`).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
        kill_after: float = 5.0,
    ) -> None:
        self.port = free_port() if port is None else port
        self.host = host
        self.url = f"http://{host}:{self.port}"
        self.argv = [arg.replace("{port}", str(self.port)) for arg in argv]
        # Unbuffered so that output() shows what a Python server printed before it hung.
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.kill_after = kill_after
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._final_output: str | None = None
        self._exited_by_itself: int | None = None
        self._stopping = False

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("ServerProcess not started")
        return self._proc

    @property
    def log_path(self) -> Path:
        if self._log_path is None:
            raise RuntimeError("ServerProcess not started")
        return self._log_path

    def start(self) -> None:
        """Start the process and wait until it accepts connections on the port."""
        fd, name = tempfile.mkstemp(prefix="sserelay-server-", suffix=".log")
        self._log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            # The child keeps its own copy of the descriptor; ours can be closed right away.
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
            )
        try:
            wait_for_port(
                self.host, self.port, self.startup_timeout, self._proc, log_path=self._log_path
            )
        except BaseException:
            self.close()
            raise

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and wait for it; idempotent."""
        proc = self._proc
        if proc is None or self.exited_by_itself is not None or proc.poll() is not None:
            return
        self._stopping = True
        proc.terminate()
        try:
            proc.wait(self.kill_after)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def send_signal(self, signum: int) -> None:
        """Send `signum` as the test's own act (SIGTERM to see a graceful shutdown, SIGKILL
        to lose an instance): whatever exit follows is then not `exited_by_itself`. uvicorn
        re-raises the SIGTERM it handled once it has shut down, so even a clean graceful
        exit reports -SIGTERM, not 0."""
        self._stopping = True
        self.proc.send_signal(signum)

    def close(self) -> None:
        """Stop the process, keep its output in memory and delete the log file."""
        self.stop()
        if self._log_path is not None and self._final_output is None:
            self._final_output = self.output()
            self._log_path.unlink(missing_ok=True)

    @property
    def exited_by_itself(self) -> int | None:
        """The exit code if the process ended before anyone stopped it (a crash: negative
        for a signal, as in `Popen.returncode`), else None."""
        proc = self._proc
        if proc is not None and not self._stopping and proc.poll() is not None:
            self._exited_by_itself = proc.returncode
        return self._exited_by_itself

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._final_output is not None:
            return self._final_output
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
