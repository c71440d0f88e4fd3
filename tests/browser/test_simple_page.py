"""The article's page in real Chromium against a real sserelay and upstream."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream

# Records every EventSource the page opens, so a test can see that it was closed.
TRACK_EVENTSOURCES = """
window.__sources = [];
const Original = window.EventSource;
window.EventSource = class extends Original {
  constructor(...args) { super(...args); window.__sources.push(this); }
};
"""


def ask(page: Page, relay: ServerProcess, prompt: str, mode: str) -> None:
    page.add_init_script(TRACK_EVENTSOURCES)
    page.goto(relay.url + "/simple")
    page.fill("#prompt", prompt)
    page.check(f"input[name=mode][value={mode}]")
    page.click("#send")


def requests_for(upstream: Upstream, marker: str) -> int:
    return sum(marker in str(r["body"]) for r in upstream.requests())


@pytest.mark.parametrize("mode", ["chat", "post"])
def test_answer_streams_in_before_it_is_complete(
    page: Page, relay: ServerProcess, mode: str
) -> None:
    """Text appears on the page while the answer is still streaming, and ends up exact,
    newlines included."""
    words = " ".join(f"w{i}" for i in range(40))
    text = "first line\n  second line " + words
    ask(page, relay, f"[[scenario: rate=20]] echo:{text}", mode)
    expect(page.locator("#result")).to_contain_text("first line")
    assert page.locator("body").get_attribute("data-state") == "streaming"
    expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=30_000)
    assert page.locator("#result").evaluate("e => e.textContent") == text


@pytest.mark.parametrize("mode", ["chat", "post"])
def test_markup_in_model_output_shows_as_text(page: Page, relay: ServerProcess, mode: str) -> None:
    """A token like <img src=x onerror=alert(1)> is shown as text; no element is created and no
    script runs (the page fixture fails on any dialog)."""
    payload = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    ask(page, relay, "echo:" + payload, mode)
    expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=30_000)
    assert page.locator("#result").evaluate("e => e.textContent") == payload
    assert page.locator("#result img, #result script").count() == 0


def test_eventsource_closes_after_done_and_upstream_sees_one_request(
    page: Page, relay: ServerProcess, upstream: Upstream
) -> None:
    """After [DONE] the page's EventSource is closed, and the upstream got exactly one request
    for the prompt, even after the browser's reconnection delay has passed."""
    marker = f"once-{time.time_ns()}"
    ask(page, relay, f"echo:{marker}", "chat")
    expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=30_000)
    assert page.evaluate("window.__sources.map(s => s.readyState)") == [2]  # CLOSED
    page.wait_for_timeout(3500)  # EventSource's default reconnection delay is about 3 s
    assert requests_for(upstream, marker) == 1


def test_upstream_failure_is_shown_in_words(page: Page, relay: ServerProcess) -> None:
    """A failure mid-answer shows the typed error's message, not a silent stop."""
    ask(page, relay, "[[scenario: die_after=2]] echo:a b c d e f", "chat")
    expect(page.locator("#status")).to_contain_text("broke before the answer was complete")
