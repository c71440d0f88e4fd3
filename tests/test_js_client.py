"""The browser client's node:test suites, run as part of the project's one test command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JS_TESTS = "tests/js/"


def test_js_client_suites_pass_under_node() -> None:
    """sserelay.js passes its parser vectors and loopback stream tests (`node --test tests/js/`)."""
    node = shutil.which("node")
    # Fail rather than skip: a skipped client suite would let a broken sserelay.js ship green.
    assert node is not None, (
        "node is not on PATH; the JS client tests need Node.js >= 20 "
        "(scripts/setup --test installs Debian's nodejs)"
    )
    try:
        result = subprocess.run(
            [node, "--test", JS_TESTS],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=110,  # below pytest's 120 s so that node's own output gets reported
            check=False,
        )
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(
            f"`node --test {JS_TESTS}` did not finish in {hung.timeout} s\n"
            f"--- stdout ---\n{_text(hung.stdout)}\n--- stderr ---\n{_text(hung.stderr)}"
        ) from None
    assert result.returncode == 0, (
        f"`node --test {JS_TESTS}` exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""
