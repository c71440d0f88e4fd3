"""Reading the text of OpenAI-format chunks: `TextReader` answers exactly as a parse would."""

from __future__ import annotations

import orjson
import pytest

from sserelay.redaction import redact
from sserelay.relay import openai_text
from sserelay.relay.openai_text import TextReader, read_text_event
from sserelay.upstream.errors import UpstreamError

HEAD = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":'


def chat(content: str, finish: str | None = None, tail: str = "") -> str:
    choice = {"index": 0, "delta": {"content": content}, "logprobs": None,
              "finish_reason": finish}  # fmt: skip
    return HEAD + orjson.dumps([choice]).decode() + tail + "}"


def legacy(text: str) -> str:
    return '{"id":"c","object":"text_completion","choices":[{"text":' + orjson.dumps(
        text).decode() + ',"index":0,"finish_reason":null}],"model":"m"}'  # fmt: skip


def outcome(read: object, data: str) -> object:
    try:
        step = read(data)  # type: ignore[operator]
    except UpstreamError as exc:
        return ("raised", exc.code, exc.message)
    if step is None:
        return None
    text, failure = step
    return (text, None if failure is None else (failure.code, failure.message))


TEMPLATE = chat("x")
CUT = TEMPLATE.index('"x"') + 1
# Chunks that fit the learned template's bytes around the text, and others.
TRICKY = [
    TEMPLATE[:CUT] + 'a\\"b' + TEMPLATE[CUT + 1 :],  # an escaped quote
    TEMPLATE[:CUT] + "a\\nb" + TEMPLATE[CUT + 1 :],  # an escaped line break
    TEMPLATE[:CUT] + "caf\\u00e9" + TEMPLATE[CUT + 1 :],  # a \\u escape
    TEMPLATE[:CUT] + "a\x01b" + TEMPLATE[CUT + 1 :],  # a raw control character: not JSON
    TEMPLATE[:CUT] + 'a","finish_reason":"error' + TEMPLATE[CUT + 1 :],  # a forged key
    TEMPLATE[:CUT] + "" + TEMPLATE[CUT + 1 :],  # empty text
    TEMPLATE[:CUT] + "naïve 👩‍👩‍👧 text" + TEMPLATE[CUT + 1 :],
    TEMPLATE[:-1],  # cut short
    chat("last", finish="error"),  # the last text, and a failure
    chat("more", tail=',"usage":null'),  # a different suffix
    '{"error":{"message":"boom sk-' + "x" * 32 + '"}}',  # redacted either way
    chat(openai_text._PROBE),
    "[DONE]",
]


@pytest.mark.parametrize("tricky", TRICKY)
def test_reader_answers_as_a_parse_would_after_learning_a_template(tricky: str) -> None:
    """Once a template is learned, every chunk still gets the parse's answer or error."""
    reader = TextReader(True, redact)
    for data in [chat("one"), chat("two"), chat("three"), tricky, chat("four")]:
        assert outcome(reader, data) == outcome(
            lambda d: read_text_event(d, True, redact), data
        )


def test_legacy_completions_text_is_read_through_the_template() -> None:
    """The legacy format's `text` is read from its template just as chat's content is."""
    reader = TextReader(False, redact)
    pieces = ["Once", " upon", " a", " time", "\n", ' "quoted"']
    assert [outcome(reader, legacy(p)) for p in pieces] == [(p, None) for p in pieces]


def test_a_learned_template_skips_the_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first chunk, chunks that fit the template are read without orjson."""
    calls = []
    loads = orjson.loads
    monkeypatch.setattr(openai_text.orjson, "loads", lambda d: calls.append(d) or loads(d))
    reader = TextReader(True, redact)
    texts = [f"token {i}" for i in range(50)]
    assert [reader(chat(t)) for t in texts] == [(t, None) for t in texts]
    assert len(calls) == 2  # the first chunk, and the probe that proved its template


def test_chunks_that_vary_elsewhere_stop_being_learned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream whose chunks differ outside the text (OpenAI's `obfuscation`) is parsed
    chunk by chunk, with a bounded number of extra probe parses."""
    calls = []
    loads = orjson.loads
    monkeypatch.setattr(openai_text.orjson, "loads", lambda d: calls.append(d) or loads(d))
    reader = TextReader(True, redact)
    chunks = [chat(f"t{i}", tail=f',"obfuscation":"{i:04x}"') for i in range(50)]
    assert [reader(c) for c in chunks] == [(f"t{i}", None) for i in range(50)]
    assert len(calls) == 50 + openai_text._LEARNING


def _through_plain_text(reader: TextReader, data: str) -> object:
    """What the article's push path does: the bytes check first, the reader if it declines."""
    text = reader.plain_text(data.encode())
    if text is not None:
        return (text.decode(), None)
    return outcome(reader, data)


@pytest.mark.parametrize("tricky", TRICKY)
def test_plain_text_on_bytes_answers_as_the_reader_and_a_parse_would(tricky: str) -> None:
    """The undecoded path gives the text a parse would, or declines so the reader decides."""
    reader = TextReader(True, redact)
    for data in [chat("one"), chat("two"), chat("three"), tricky, chat("four"), chat("")]:
        assert _through_plain_text(reader, data) == outcome(
            lambda d: read_text_event(d, True, redact), data
        )


def test_plain_text_takes_only_printable_ascii_from_a_learned_template() -> None:
    reader = TextReader(True, redact)
    assert reader.plain_text(chat("one").encode()) is None  # nothing learned yet
    for data in [chat("one"), chat("two"), chat("three")]:
        outcome(reader, data)
    assert reader.plain_text(chat(" four, five").encode()) == b" four, five"
    for declined in ["naïve", "tab\there", 'a "quote"', "back\\slash", "line\nbreak"]:
        assert reader.plain_text(chat(declined).encode()) is None, declined
    assert reader.plain_text(chat("x", tail=',"usage":null').encode()) is None
