"""A throwaway ``redis-server`` on a free loopback port, for tests and the benchmark.

Nothing is persisted (``--save "" --appendonly no``) and all files live in a temporary
directory removed on stop, so it never touches a developer's own Redis. Readiness is a raw
RESP ``PING`` over a socket, so this module needs no Redis client library.

    with RedisServer() as server:
        client = Redis.from_url(server.url)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "RedisServerError"]

_PING = b"*1\r\n$4\r\nPING\r\n"


class RedisServerError(RuntimeError):
    """redis-server is missing, failed to start, or did not answer PING in time."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(_PING)
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process; ``start``/``stop`` or use it as a context manager."""

    def __init__(self, executable: str = "redis-server", *, startup_timeout: float = 10.0) -> None:
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self._process is None:
            raise RedisServerError("the server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        path = shutil.which(self.executable)
        if path is None:
            raise RedisServerError(f"{self.executable!r} not found on PATH; install redis-server")
        self._dir = Path(tempfile.mkdtemp(prefix="sserelay-redis-"))
        # The free port can be taken between probing and binding; a retry covers that race.
        for _attempt in range(3):
            self.port = _free_port()
            if self._spawn(path):
                return
        log = (self._dir / "redis.log").read_text(errors="replace")
        self.stop()
        raise RedisServerError(f"redis-server did not start; its log:\n{log}")

    def _spawn(self, path: str) -> bool:
        assert self._dir is not None
        args = [
            path,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if _answers_ping(self.port):
                self._process = process
                return True
            time.sleep(0.02)
        process.kill()
        process.wait()
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
