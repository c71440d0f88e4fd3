"""`sserelay chat` driven in a real terminal (tmux) against a running sserelay and the fake
upstream: the answer arrives as it is generated, and Ctrl-C stops it, closing the request
all the way to the upstream."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream, start_relay
from tests.gateway.conftest import wait_for


class Terminal:
    """A tmux session on a server of its own (its own socket), running bash."""

    def __init__(self) -> None:
        self.socket = f"sserelay-test-{uuid.uuid4().hex[:8]}"
        self.tmux("new-session", "-d", "-s", "chat", "-x", "160", "-y", "50",
                  "bash --norc --noprofile")
        # Keys typed before bash shows its prompt are echoed by the terminal and then again
        # by bash: the command line would be on the screen twice.
        wait_for(lambda: self.screen().rstrip().endswith(("#", "$")), "the shell's prompt")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30, check=True)
        return done.stdout

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "chat", "-l", text)
        self.tmux("send-keys", "-t", "chat", "Enter")

    def interrupt(self) -> None:
        self.tmux("send-keys", "-t", "chat", "C-c")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "chat")

    def close(self) -> None:
        self.tmux("kill-server")

    def finished(self) -> str:
        """The screen, once the command has printed its exit status (`EXIT=<n>`)."""
        screen: str = wait_for(lambda: re.search(r"EXIT=\d+", s := self.screen()) and s,
                               "the command's end")
        return screen


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


@pytest.fixture(scope="module")
def cancelling_relay(upstream: Upstream) -> Iterator[ServerProcess]:
    """sserelay that closes the upstream as soon as a client leaves (the default drains)."""
    with start_relay(upstream.url, env={"SSERELAY_GATEWAY_ABANDONED_STREAMS": "cancel"}) as relay:
        yield relay


def chat_command(relay: ServerProcess, *args: str) -> str:
    argv = [sys.executable, "-m", "sserelay.cli", "chat", "--url", relay.url,
            "--model", "gpt-4o-mini", *args]
    return " ".join(shlex.quote(a) for a in argv)


def record_with(upstream: Upstream, word: str) -> dict[str, Any]:
    records: list[dict[str, Any]] = wait_for(
        lambda: [r for r in upstream.requests() if word in json.dumps(r["body"])],
        f"the upstream request {word}")
    return records[0]


def test_answer_streams_into_the_terminal(
    terminal: Terminal, cancelling_relay: ServerProcess, upstream: Upstream
) -> None:
    """A one-shot question: the answer's text is printed, then the shell prompt is back;
    --system is sent first."""
    word = uuid.uuid4().hex[:10]
    terminal.type(chat_command(cancelling_relay, "--system", "Be brief.",
                               f"echo: answer-{word} arrives") + "; echo EXIT=$?")
    screen = terminal.finished()
    # Once in the command line typed, once in the answer.
    assert screen.count(f"answer-{word} arrives") == 2 and "EXIT=0" in screen
    body = record_with(upstream, word)["body"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_ctrl_c_stops_the_answer_and_closes_the_upstream(
    terminal: Terminal, cancelling_relay: ServerProcess, upstream: Upstream
) -> None:
    """Mid-answer, Ctrl-C ends the command ([stopped], exit 130) before the answer is done,
    and the upstream sees its request disconnected."""
    word = uuid.uuid4().hex[:10]
    terminal.type(chat_command(cancelling_relay, f"[[scenario: tokens=400; rate=20]] {word}")
                  + "; echo EXIT=$?")
    wait_for(lambda: "tok3 " in terminal.screen(), "the first tokens on screen")
    terminal.interrupt()
    screen = terminal.finished()
    assert "[stopped]" in screen and "EXIT=130" in screen
    assert "tok399" not in screen and "Traceback" not in screen
    record = wait_for(lambda: (r := record_with(upstream, word))["disconnected"] and r,
                      "the upstream request closed")
    assert not record["completed"]


def test_interactive_conversation(
    terminal: Terminal, cancelling_relay: ServerProcess, upstream: Upstream
) -> None:
    """Without a question: a prompt, an answer per line typed, the conversation's history
    sent with the next question, Ctrl-C stopping one answer only, an empty line to end."""
    first, second = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    terminal.type(chat_command(cancelling_relay) + "; echo EXIT=$?")
    wait_for(lambda: "you> " in terminal.screen(), "the prompt")
    terminal.type(f"echo: reply-{first}")
    wait_for(lambda: terminal.screen().count(f"reply-{first}") == 2, "the first answer")
    terminal.type(f"[[scenario: tokens=400; rate=20]] {second}")
    wait_for(lambda: "tok3 " in terminal.screen(), "the second answer streaming")
    terminal.interrupt()
    wait_for(lambda: terminal.screen().count("you> ") == 3, "the prompt again")
    terminal.type("")
    screen = terminal.finished()
    assert "EXIT=0" in screen and "[stopped]" in screen
    history = record_with(upstream, second)["body"]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[1]["content"].strip() == f"reply-{first}"
