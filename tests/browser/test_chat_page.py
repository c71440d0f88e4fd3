"""The chat page at / in real Chromium, against a real sserelay and a real upstream.

The fake upstream answers `echo:<text>` with exactly <text>; a `[[scenario: ...]]` prefix sets
its pace or failure (see sserelay.testing.fake_upstream). Each test marks its prompts with a
unique word, so the session's shared upstream record can be searched for its own requests.

`python -m tests.browser.test_chat_page docs/chat-page.png` writes the README's screenshot.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Locator, Page, Request, Route, expect

from sserelay.testing.procs import ServerProcess
from tests.browser.cut_proxy import CutProxy
from tests.conftest import Upstream, start_relay

T = TypeVar("T")

STREAMING_TIMEOUT = 30_000  # ms: the longest answer awaited to its end takes about 4 s


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def marker() -> str:
    return f"m{time.time_ns()}"


def open_chat(page: Page, base_url: str) -> None:
    page.goto(base_url + "/")
    # The model picker has asked /v1/models (answered or not): the page is ready.
    expect(page.locator("#model[data-source]")).to_have_count(1)


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def answer(page: Page) -> Locator:
    """The content of the latest answer."""
    return page.locator(".message.assistant .content").last


def text_of(locator: Locator) -> str:
    text: str = locator.evaluate("e => e.textContent")
    return text


def expect_state(page: Page, state: str, timeout: float = STREAMING_TIMEOUT) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", state, timeout=timeout)


def records_with(upstream: Upstream, mark: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests() if mark in json.dumps(r["body"])]


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something other than None (a state, not a duration)."""
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return found


def stream_requests(page: Page) -> list[Request]:
    """Starts recording the page's requests to /v1/streams; returns the live list."""
    seen: list[Request] = []
    page.on("request", lambda r: seen.append(r) if "/v1/streams" in r.url else None)
    return seen


@pytest.fixture
def proxy(relay: ServerProcess) -> Iterator[CutProxy]:
    """A TCP proxy in front of sserelay that the test can cut."""
    with CutProxy(relay.port) as cut_proxy:
        yield cut_proxy


def test_answer_streams_in_before_it_is_complete(page: Page, relay: ServerProcess) -> None:
    """Text shows while the answer is still streaming, and the finished answer is exact."""
    text = f"{marker()} {words(60)}"
    open_chat(page, relay.url)
    send(page, f"[[scenario: rate=20]] echo:{text}")
    expect(answer(page)).to_contain_text("w3")
    assert page.locator("body").get_attribute("data-state") == "streaming"
    assert len(text_of(answer(page))) < len(text)
    expect_state(page, "done")
    assert text_of(answer(page)) == text
    expect(page.locator(".message.user .content")).to_have_text(
        f"[[scenario: rate=20]] echo:{text}"
    )


def test_markup_in_model_output_shows_as_text_and_runs_nothing(
    page: Page, relay: ServerProcess
) -> None:
    """Markup like <img src=x onerror=alert(1)> in an answer shows as text, runs nothing."""
    payload = (
        "<img src=x onerror=alert(1)> <script>alert(2)</script> "
        '<a href="javascript:alert(3)">a</a> <svg onload=alert(4)>'
    )
    open_chat(page, relay.url)
    send(page, "echo:" + payload)
    expect_state(page, "done")
    assert text_of(answer(page)) == payload
    conversation = page.locator("#messages")
    assert conversation.locator("img, script, svg, a, iframe").count() == 0


def test_markdown_renders_code_lists_emphasis_and_safe_links(
    page: Page, relay: ServerProcess
) -> None:
    """Code, lists, emphasis and http(s)/mailto links render; javascript: links stay text."""
    markdown = "\n".join(
        [
            "Some **bold**, *italic* and `inline <b>code</b>`.",
            "",
            "- apples",
            "- pears",
            "",
            "1. first",
            "2. second",
            "",
            "```python",
            'print("<script>alert(1)</script>")',
            "```",
            "",
            "See [the docs](https://example.com/docs?a=1&b=2), <mailto:help@example.com>,"
            " https://example.org/x. and [bad](javascript:alert(1)) [bad2](JaVaScRiPt:alert(2)).",
        ]
    )
    open_chat(page, relay.url)
    send(page, "echo:" + markdown)
    expect_state(page, "done")
    content = answer(page)
    expect(content.locator("strong")).to_have_text("bold")
    expect(content.locator("em")).to_have_text("italic")
    expect(content.locator("p code")).to_have_text("inline <b>code</b>")
    expect(content.locator("ul > li")).to_have_text(["apples", "pears"])
    expect(content.locator("ol > li")).to_have_text(["first", "second"])
    code = content.locator("pre > code")
    expect(code).to_have_text('print("<script>alert(1)</script>")')
    expect(code).to_have_attribute("data-language", "python")
    links = content.locator("a")
    expect(links).to_have_count(3)
    hrefs = [links.nth(i).get_attribute("href") for i in range(3)]
    assert hrefs == [
        "https://example.com/docs?a=1&b=2",
        "mailto:help@example.com",
        "https://example.org/x",
    ]
    for i in range(3):
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
    expect(content).to_contain_text("[bad](javascript:alert(1))")
    expect(content).to_contain_text("[bad2](JaVaScRiPt:alert(2))")
    assert content.locator("b, script").count() == 0


# markdown.js in the page, input -> innerHTML (link attributes target and rel left out).
RENDER_TABLE = [
    ("a\nb", "<p>a<br>b</p>"),
    (
        "**b** *e* ***be*** ~~d~~",
        "<p><strong>b</strong> <em>e</em> <em><strong>be</strong></em> <del>d</del></p>",
    ),
    ("snake_case_name _e_", "<p>snake_case_name <em>e</em></p>"),
    ("2 * 3 * 4", "<p>2 * 3 * 4</p>"),
    ("``a ` b`` **x `y`**", "<p><code>a ` b</code> <strong>x <code>y</code></strong></p>"),
    ("**still streaming", "<p>**still streaming</p>"),
    ("```js\nlet x;\n", '<pre><code class="language-js" data-language="js">let x;</code></pre>'),
    ("- a\n  - b\n- c", "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>"),
    ("- a\n\n- b", "<ul><li><p>a</p></li><li><p>b</p></li></ul>"),
    ("Steps:\n3. x\n4. y", "<p>Steps:<br>3. x<br>4. y</p>"),
    ("Steps:\n1. x\n2. y", "<p>Steps:</p><ol><li>x</li><li>y</li></ol>"),
    ("> q\n\n# T", "<blockquote><p>q</p></blockquote><h3>T</h3>"),
    ("[x](https://e.com/a_(b))", '<p><a href="https://e.com/a_(b)">x</a></p>'),
    ("(https://e.com/x).", '<p>(<a href="https://e.com/x">https://e.com/x</a>).</p>'),
    ("<a@b.co>", '<p><a href="mailto:a@b.co">a@b.co</a></p>'),
    (
        "![cat](https://e.com/c.png)",
        '<p><a href="https://e.com/c.png" class="image-link">image: cat</a></p>',
    ),
    ("\\*no\\*", "<p>*no*</p>"),
    (
        "| a | b |\n|:-|-:|\n| 1 | 2 |",
        '<div class="table-scroll"><table><thead><tr><th style="text-align: left;">a</th>'
        '<th style="text-align: right;">b</th></tr></thead><tbody><tr>'
        '<td style="text-align: left;">1</td><td style="text-align: right;">2</td>'
        "</tr></tbody></table></div>",
    ),
]

RENDER = """async (sources) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  return sources.map((source) => {
    const box = document.createElement("div");
    box.append(renderMarkdown(source));
    return box.innerHTML.replaceAll(' target="_blank" rel="noopener noreferrer"', "");
  });
}"""


def test_markdown_renderer_table(page: Page, relay: ServerProcess) -> None:
    """markdown.js turns each chat Markdown construct into the expected elements."""
    open_chat(page, relay.url)
    rendered = page.evaluate(RENDER, [source for source, _ in RENDER_TABLE])
    wrong = [
        (source, want, got)
        for (source, want), got in zip(RENDER_TABLE, rendered, strict=True)
        if got != want
    ]
    assert wrong == []


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<a href='javascript:alert(1)'>x</a>",
    "&lt;img src=x onerror=alert(1)&gt; &#106;avascript:alert(1)",
    "<javascript:alert(1)> <JAVASCRIPT:alert(1)> <data:text/html,<b>x</b>>",
    '![x](https://e.com/x.png"onerror="alert(1))',
    '[t](https://e.com/"><img src=x onerror=alert(1)>)',
    '```"><script>alert(1)</script>\n<svg onload=alert(1)>\n```',
    '```js" onmouseover="alert(1)\nx\n```',
    "| <img src=x> | b |\n|---|---|\n| [x](javascript:alert(1)) | <b>c</b> |",
]
for scheme in [
    "javascript",
    "JaVaScRiPt",
    " javascript",
    "java\tscript",
    "java\nscript",
    "\u0001javascript",
    "vbscript",
    "data",
    "file",
    "blob",
    "about",
    "//e.com",
]:
    HOSTILE.append(f"[a]({scheme}:alert(1)) ![b]({scheme}:alert(1)) <{scheme}:alert(1)>")

AUDIT = """async (sources) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  const tags = new Set(["P", "BR", "STRONG", "EM", "DEL", "CODE", "PRE", "A", "UL", "OL",
    "LI", "BLOCKQUOTE", "H3", "H4", "H5", "H6", "HR", "TABLE", "THEAD", "TBODY", "TR", "TH",
    "TD", "DIV"]);
  const attributes = new Set(["href", "target", "rel", "title", "class", "data-language",
    "style", "start"]);
  const problems = [];
  for (const source of sources) {
    const box = document.createElement("div");
    box.append(renderMarkdown(source));
    for (const el of box.querySelectorAll("*")) {
      if (!tags.has(el.tagName)) problems.push(`${el.tagName} from ${source}`);
      for (const { name, value } of el.attributes) {
        if (!attributes.has(name)) problems.push(`${name}=${value} from ${source}`);
      }
      if (el.tagName === "A" && !/^(https?|mailto):$/.test(new URL(el.href).protocol)) {
        problems.push(`href ${el.href} from ${source}`);
      }
      if (el.tagName === "A" && el.rel !== "noopener noreferrer") problems.push(`rel ${el.rel}`);
    }
  }
  return problems;
}"""


def test_hostile_markdown_builds_only_safe_elements(page: Page, relay: ServerProcess) -> None:
    """Hostile text yields only markdown.js's own tags, attributes and safe links."""
    open_chat(page, relay.url)
    assert page.evaluate(AUDIT, HOSTILE) == []


def test_stop_ends_the_generation_and_upstream_sees_the_connection_closed(
    page: Page, relay: ServerProcess, upstream: Upstream
) -> None:
    """Stop ends the answer, keeps its text; the upstream sees its connection closed."""
    mark = marker()
    text = f"{mark} {words(400)}"
    open_chat(page, relay.url)
    send(page, f"[[scenario: rate=20]] echo:{text}")
    expect(answer(page)).to_contain_text("w2")
    page.click("#stop")
    expect_state(page, "stopped")
    expect(page.locator("#status")).to_contain_text("Stopped")
    shown = text_of(answer(page))
    assert shown and text.startswith(shown) and len(shown) < len(text)

    record = wait_for(
        lambda: next((r for r in records_with(upstream, mark) if r["disconnected"]), None),
        "the upstream to see its connection closed",
    )
    assert not record["completed"]
    assert len(records_with(upstream, mark)) == 1


def test_cut_connection_resumes_without_duplicating_text(
    page: Page, proxy: CutProxy, upstream: Upstream
) -> None:
    """A cut connection shows reconnecting, then resumes to exactly the upstream's text."""
    mark = marker()
    text = f"{mark} {words(80)}"
    requests = stream_requests(page)
    open_chat(page, proxy.url)
    send(page, f"[[scenario: rate=20]] echo:{text}")
    expect(answer(page)).to_contain_text("w5")

    proxy.cut(then="hold")  # the network is down until release()
    expect_state(page, "reconnecting")
    expect(page.locator("#status")).to_contain_text("Reconnecting")
    proxy.release()

    expect_state(page, "done")
    assert text_of(answer(page)) == text
    assert len(records_with(upstream, mark)) == 1
    follows = [r for r in requests if r.method == "GET"]
    assert len(follows) >= 2
    assert "last-event-id" not in follows[0].headers
    assert follows[-1].headers["last-event-id"].startswith(follows[0].url.rsplit("/", 1)[1] + ":")


def test_connection_down_past_the_retries_is_explained_and_resume_finishes(
    page: Page, proxy: CutProxy, upstream: Upstream
) -> None:
    """Failed reconnects are explained, and Resume later finishes the answer exactly."""
    mark = marker()
    text = f"{mark} {words(60)}"
    page.clock.install()  # the backoff waits are fast-forwarded, not slept
    open_chat(page, proxy.url)
    send(page, f"[[scenario: rate=20]] echo:{text}")
    expect(answer(page)).to_contain_text("w3")

    proxy.cut(then="refuse")
    expect_state(page, "reconnecting")
    status = page.locator("#status")
    for _ in range(20):  # each fast-forward fires the pending backoff timer
        if page.locator("body").get_attribute("data-state") == "error":
            break
        page.clock.fast_forward(10_000)
        page.wait_for_timeout(200)
    expect_state(page, "error")
    expect(status).to_contain_text("could not reconnect")
    expect(status).to_contain_text("Resume")

    proxy.release()
    page.get_by_role("button", name="Resume").click()
    expect_state(page, "done")
    assert text_of(answer(page)) == text
    assert len(records_with(upstream, mark)) == 1


def test_after_the_end_marker_the_upstream_sees_no_second_request(
    page: Page, relay: ServerProcess, upstream: Upstream
) -> None:
    """After [DONE] the page sends nothing more; the upstream saw one request."""
    mark = marker()
    requests = stream_requests(page)
    open_chat(page, relay.url)
    send(page, f"echo:{mark} done")
    expect_state(page, "done")
    page.wait_for_timeout(2000)  # longer than stream()'s first reconnect delay (0.5 s)
    assert [r.method for r in requests] == ["POST", "GET"]
    assert len(records_with(upstream, mark)) == 1


def test_second_turn_sends_the_conversation_history(
    page: Page, relay: ServerProcess, upstream: Upstream
) -> None:
    """The second question is sent with the first question and its answer before it."""
    mark = marker()
    open_chat(page, relay.url)
    send(page, f"echo:first {mark}")
    expect_state(page, "done")
    send(page, f"echo:second {mark}")
    expect_state(page, "done")
    expect(page.locator(".message.assistant .content")).to_have_text(
        [f"first {mark}", f"second {mark}"]
    )
    second = [r for r in records_with(upstream, mark) if f"second {mark}" in json.dumps(r["body"])]
    assert second[0]["body"]["messages"] == [
        {"role": "user", "content": f"echo:first {mark}"},
        {"role": "assistant", "content": f"first {mark}"},
        {"role": "user", "content": f"echo:second {mark}"},
    ]


def test_keyboard_alone_sends_adds_lines_and_stops(page: Page, relay: ServerProcess) -> None:
    """Keyboard only: Shift+Enter adds a line, Enter sends, Stop (Tab, Enter) and Escape stop."""
    open_chat(page, relay.url)
    prompt = page.get_by_label("Message")
    expect(prompt).to_be_focused()
    expect(page.get_by_label("Model")).to_have_value("")

    page.keyboard.type("echo:line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    page.keyboard.press("Enter")
    expect_state(page, "done")
    expect(page.locator(".message.user .content")).to_have_text("echo:line one\nline two")
    assert answer(page).inner_text() == "line one\nline two"

    page.keyboard.type("[[scenario: tokens=300; rate=10]] go")
    page.keyboard.press("Enter")
    expect(answer(page)).to_contain_text("tok1")
    page.keyboard.press("Tab")  # Send is disabled while answering: Tab goes to Stop
    expect(page.locator("#stop")).to_be_focused()
    page.keyboard.press("Enter")
    expect_state(page, "stopped")
    expect(prompt).to_be_focused()

    page.keyboard.type("[[scenario: tokens=300; rate=10]] again")
    page.keyboard.press("Enter")
    expect(answer(page)).to_contain_text("tok1")
    page.keyboard.press("Escape")
    expect_state(page, "stopped")


# Every element outside a box that scrolls sideways on purpose (code blocks, tables) must lie
# within the viewport, and the page itself must not scroll sideways.
OVERFLOW_REPORT = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  if (document.documentElement.scrollWidth > width) out.push("the page scrolls sideways");
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("pre, .table-scroll") && !el.matches("pre, .table-scroll")) continue;
    if (el.closest(".visually-hidden")) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.left < -0.5 || box.right > width + 0.5) {
      out.push(`${el.tagName}.${el.className} spans ${box.left}..${box.right} of ${width}`);
    }
  }
  return out;
}"""


def test_phone_width_has_no_horizontal_overflow(browser: Browser, relay: ServerProcess) -> None:
    """At 390px wide, long words, URLs, code and tables overflow nothing sideways."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        wide = "\n".join(
            [
                "A" * 120,
                "",
                "https://example.com/" + "long-path-segment/" * 10,
                "",
                "```",
                "x = " + "1 + " * 60 + "1",
                "```",
                "",
                "| " + " | ".join(f"column {i}" for i in range(12)) + " |",
                "|" + "---|" * 12,
                "| " + " | ".join(f"value {i}" for i in range(12)) + " |",
            ]
        )
        open_chat(page, relay.url)
        send(page, "echo:" + wide)
        expect_state(page, "done")
        expect(answer(page).locator("pre")).to_have_count(1)
        expect(answer(page).locator("table")).to_have_count(1)
        assert page.evaluate(OVERFLOW_REPORT) == []
        for button in ("#send", "#stop"):
            expect(page.locator(button)).to_be_in_viewport()
    finally:
        context.close()


def models_route(body: dict[str, Any] | None) -> Callable[[Route], None]:
    def handle(route: Route) -> None:
        if body is None:
            route.fulfill(status=404, json={"error": {"message": "There is nothing here."}})
        else:
            route.fulfill(status=200, json=body)

    return handle


def test_model_picker_falls_back_to_default_and_omits_model(
    page: Page, relay: ServerProcess, upstream: Upstream
) -> None:
    """Without /v1/models the picker offers only "default"; the request has no model."""
    page.route("**/v1/models", models_route(None))
    mark = marker()
    open_chat(page, relay.url)
    expect(page.locator("#model option")).to_have_text(["default"])
    with page.expect_request(lambda r: r.url.endswith("/v1/streams")) as posted:
        send(page, f"echo:{mark}")
    assert "model" not in json.loads(posted.value.post_data or "{}")
    expect_state(page, "done")
    assert records_with(upstream, mark)[0]["body"]["model"] == "fake-chat"


def test_model_picker_fills_from_v1_models_and_sends_the_choice(
    page: Page, relay: ServerProcess, upstream: Upstream
) -> None:
    """The picker lists /v1/models after "default" and sends the chosen model."""
    page.route("**/v1/models", models_route({"data": [{"id": "fake-chat"}, {"id": "other"}]}))
    mark = marker()
    open_chat(page, relay.url)
    expect(page.locator("#model option")).to_have_text(["default", "fake-chat", "other"])
    page.get_by_label("Model").select_option("fake-chat")
    send(page, f"echo:{mark}")
    expect_state(page, "done")
    assert records_with(upstream, mark)[0]["body"]["model"] == "fake-chat"


def test_refused_request_is_explained_and_the_message_kept(
    page: Page, upstream: Upstream, tmp_path: Path
) -> None:
    """An HTTP error from POST /v1/streams (a model the gateway does not route) is explained;
    the message returns to the box."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        "[upstreams.only]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream.url}/v1"\n'
        'api_key_env = "OPENAI_API_KEY"\n'
        'models = ["fake-chat"]\n'
    )
    page.route("**/v1/models", models_route({"data": [{"id": "no-such-model"}]}))
    with start_relay(upstream.url, "--config", str(config),
                     env={"SSERELAY_DB": str(tmp_path / "keys.sqlite3")}) as relay:
        open_chat(page, relay.url)
        page.get_by_label("Model").select_option("no-such-model")
        send(page, "echo:hello")
        expect_state(page, "error")
        status = page.locator("#status")
        expect(status).to_contain_text("no-such-model")  # the server's words name it
        expect(status).to_contain_text("Pick another model")
        expect(page.locator("#prompt")).to_have_value("echo:hello")
        expect(page.locator(".message")).to_have_count(0)


def test_upstream_failure_before_the_answer_is_explained(page: Page, relay: ServerProcess) -> None:
    """The provider failing before the first token (HTTP 503) is explained with advice."""
    open_chat(page, relay.url)
    send(page, "[[scenario: status=503]] hi")
    expect_state(page, "error")
    expect(page.locator("#status")).to_contain_text("Try again in a moment")


def test_typed_error_ending_is_shown_in_words(page: Page, relay: ServerProcess) -> None:
    """A typed error ending keeps the partial text, marked incomplete, and shows the message."""
    open_chat(page, relay.url)
    send(page, "[[scenario: error_after=3]] echo:" + words(20))
    expect_state(page, "error")
    expect(page.locator("#status")).to_contain_text("failed mid-answer")
    expect(page.locator(".message.assistant .note")).to_contain_text("Incomplete")
    assert text_of(answer(page)).startswith("w0")


def write_screenshot(path: Path) -> None:
    """Start an upstream and sserelay, hold a conversation and photograph it mid-answer.

    The fake upstream can only echo, so the questions typed on the page are swapped for
    `echo:` scripts on their way to sserelay; everything else is the real page and server.
    """
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_FLAGS, chromium_path
    from tests.conftest import PROVIDER_KEY, start_relay

    first_answer = "\n".join(
        [
            "It sends **every event with an id**, so a client that lost the connection can"
            " say where it was:",
            "",
            "```python",
            "async for seq, payload in log.follow(stream_id, after=last_seq):",
            '    yield encode_event(payload, id=f"{stream_id}:{seq}")',
            "```",
            "",
            "1. the browser reconnects with `Last-Event-ID`",
            "2. the relay replays *strictly after* that id",
            "3. after `[DONE]`, a reconnect gets **204** and stops",
            "",
            "See [the WHATWG spec](https://html.spec.whatwg.org/multipage/server-sent-events.html).",
        ]
    )
    second_answer = (
        "Yes. Markup such as <img src=x onerror=alert(1)> is shown as the text it is, "
        "never parsed as HTML, and only http(s) and mailto links become links. The page "
        "builds every element itself, so this holds however the model is prompted, and "
        "a dropped connection resumes without repeating a word."
    )
    scripts = {
        "How does sserelay resume a dropped stream?": "echo:" + first_answer,
        "Is it safe to show model output as Markdown?": "[[scenario: rate=14]] echo:"
        + second_answer,
    }

    def script_answers(route: Route, request: Request) -> None:
        body = json.loads(request.post_data or "{}")
        last = body["messages"][-1]
        last["content"] = scripts.get(last["content"], last["content"])
        route.continue_(post_data=json.dumps(body))

    argv = [sys.executable, "-m", "sserelay.testing.fake_upstream", "--port", "{port}"]
    argv += ["--require-key", PROVIDER_KEY]
    with ServerProcess(argv) as fake, start_relay(fake.url) as relay, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 960, "height": 720})
        page.route("**/v1/streams", script_answers)
        open_chat(page, relay.url)
        questions = list(scripts)
        send(page, questions[0])
        expect_state(page, "done")
        send(page, questions[1])
        expect(answer(page)).to_contain_text("only http(s) and mailto")
        page.screenshot(path=str(path))
        browser.close()


if __name__ == "__main__":
    write_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/chat-page.png"))
