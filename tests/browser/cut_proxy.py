"""A TCP proxy between the browser and sserelay that can drop every live connection on demand.

It forwards bytes and knows nothing of HTTP, so what the page sees after `cut()` is exactly a
network failure: the socket is reset mid-response. New connections can meanwhile be held
(accepted but not forwarded until `release()`, like a network that is down for a while) or
refused (reset at once, like a network that stays down).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType
from typing import Literal, Self

Mode = Literal["forward", "hold", "refuse"]

_CHUNK = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN (SO_LINGER 0): the peer sees a reset connection, and
    shutdown() first wakes the pump thread blocked in recv() on it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class CutProxy:
    """Listens on a free loopback port and forwards each connection to `target_port`."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._mode: Mode = "forward"
        self._mode_changed = threading.Condition(self._lock)
        self._closed = threading.Event()
        self.connections = 0  # accepted so far, whatever the mode
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed.set()
        self.cut(then="forward")  # also wakes held connections, which then see the close
        self._acceptor.join(timeout=5)
        self._listener.close()

    def cut(self, then: Mode = "forward") -> None:
        """Reset every live connection, both sides; new connections are then handled by `then`."""
        with self._lock:
            live, self._live = self._live, set()
            self._mode = then
            self._mode_changed.notify_all()
        for sock in live:
            _reset(sock)

    def release(self) -> None:
        """Forward new and held connections again."""
        with self._lock:
            self._mode = "forward"
            self._mode_changed.notify_all()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            while self._mode == "hold" and not self._closed.is_set():
                self._mode_changed.wait()
            refuse = self._mode == "refuse" or self._closed.is_set()
        if refuse:
            _reset(client)
            return
        try:
            server = socket.create_connection((self.host, self.target_port), timeout=10)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        with self._lock:
            self._live.update((client, server))
        back = threading.Thread(target=self._pump, args=(server, client), daemon=True)
        back.start()
        self._pump(client, server)
        back.join()
        with self._lock:
            self._live.discard(client)
            self._live.discard(server)
        client.close()
        server.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            # Reset or cut: fail the other side as well, so that neither peer waits on it.
            _reset(source)
            _reset(sink)
            return
        # A clean end of one direction is passed on as such (FIN), after the data before it.
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
