"""The pass-through filter, sans-IO: upstream reads in, client bytes out."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sserelay.gateway.openai_passthrough import OpenAIStreamFilter
from sserelay.keys.ledger import Usage
from sserelay.providers.errors import ProviderError
from sserelay.redaction import redact
from sserelay.speedups import plain_event

ROLE = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
HELLO = b'data: {"choices":[{"delta":{"content":"Hello"}}],"usage":null}\n\n'
STOP = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\n'
DONE = b"data: [DONE]\n\n"


def relay(*reads: bytes, strip_usage: bool = False) -> tuple[bytes, OpenAIStreamFilter]:
    stream = OpenAIStreamFilter(strip_usage=strip_usage, redact=lambda text: redact(text))
    out = b"".join(stream.feed(r) for r in reads)
    return out + stream.end(), stream


def error_of(out: bytes) -> dict[str, object]:
    events = out.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""], out
    error: dict[str, object] = orjson.loads(events[-3].removeprefix(b"data: "))["error"]
    return error


def test_whole_reads_are_forwarded_as_the_same_bytes() -> None:
    """A read of whole, plain events is passed on as the very same bytes object."""
    stream = OpenAIStreamFilter(strip_usage=False, redact=str)
    stream.feed(ROLE)  # the first read always goes through the decoder (BOM rule)
    read = HELLO + HELLO + STOP
    assert stream.feed(read) is read
    assert stream.events == 4


@pytest.mark.parametrize(
    ("read", "relayed"),
    [
        # a second line inside the read: a field line the decoder ignores, not data
        (b'data: {"choices":[]}\nretry: 5\n\n', b'data: {"choices":[]}\n\n'),
        # CRLF framing: normalised to LF
        (HELLO.replace(b"\n", b"\r\n"), HELLO),
        # the usage key with a non-null value written compactly: read for the ledger
        (USAGE, USAGE),
    ],
)
def test_one_event_reads_that_need_a_look_are_not_passed_as_is(
    read: bytes, relayed: bytes
) -> None:
    """The one-event fast path takes only `data: {...}\n\n` with nothing to decide."""
    stream = OpenAIStreamFilter(strip_usage=False, redact=str)
    stream.feed(ROLE)
    out = stream.feed(read)
    assert out == relayed
    assert out is not read
    if read is USAGE:
        assert stream.usage == Usage(9, 2)


@pytest.mark.parametrize("cut", [1, 5, 6, 20, len(HELLO) - 2, len(HELLO) - 1])
def test_events_cut_across_reads_come_out_identical(cut: int) -> None:
    """An event split anywhere across reads is reassembled into the same bytes."""
    out, stream = relay(ROLE, HELLO[:cut], HELLO[cut:] + STOP, DONE)
    assert out == ROLE + HELLO + STOP + DONE
    assert stream.done and stream.error is None


def test_multibyte_character_split_across_reads() -> None:
    """A UTF-8 character cut between two reads arrives whole."""
    event = 'data: {"choices":[{"delta":{"content":"👩‍👩‍👧"}}]}\n\n'.encode()
    cut = event.index(b"\xf0") + 2
    out, _ = relay(ROLE, event[:cut], event[cut:], DONE)
    assert out == ROLE + event + DONE


def test_crlf_and_comments_are_normalised() -> None:
    """CRLF framing becomes LF and comment lines are dropped; the data stays the same."""
    out, _ = relay(b": keep-alive\r\n\r\n" + ROLE.replace(b"\n", b"\r\n"), HELLO, DONE)
    assert out == ROLE + HELLO + DONE


def test_missing_space_after_colon_is_normalised() -> None:
    """`data:{...}` is relayed as `data: {...}` with the same payload."""
    out, _ = relay(ROLE, HELLO.replace(b"data: ", b"data:"), DONE)
    assert out == ROLE + HELLO + DONE


def test_leading_bom_is_dropped() -> None:
    """A byte order mark before the first event is not part of any event (WHATWG)."""
    out, _ = relay(b"\xef\xbb\xbf" + ROLE, DONE)
    assert out == ROLE + DONE


def test_multiline_data_stays_one_event() -> None:
    """Data spread over several `data:` lines is relayed as one event with the same value."""
    out, _ = relay(ROLE, b'data: {"choices":\ndata: [{"delta":{"content":"x"}}]}\n\n', DONE)
    assert out == ROLE + b'data: {"choices":\ndata: [{"delta":{"content":"x"}}]}\n\n' + DONE


@pytest.mark.parametrize("strip", [True, False])
def test_usage_chunk_is_recorded_and_stripped_only_when_asked(strip: bool) -> None:
    """The usage chunk is always read for the ledger, and dropped if the client did not ask."""
    out, stream = relay(ROLE + HELLO, STOP + USAGE + DONE, strip_usage=strip)
    assert out == ROLE + HELLO + STOP + (b"" if strip else USAGE) + DONE
    assert stream.usage == Usage(9, 2)


def test_usage_with_spaces_is_recognised() -> None:
    """`"usage": {` written with a space (Python's json) is still found."""
    spaced = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n'
    out, stream = relay(ROLE, spaced + DONE, strip_usage=True)
    assert out == ROLE + DONE and stream.usage == Usage(3, 4)


def test_content_that_says_usage_or_error_is_plain_content() -> None:
    """Model text "usage" or "error" costs a parse but is relayed unchanged."""
    words = (b'data: {"choices":[{"delta":{"content":"usage"}}]}\n\n'
             b'data: {"choices":[{"delta":{"content":"\\"error\\": {"}}]}\n\n')
    out, stream = relay(ROLE, words, DONE)
    assert out == ROLE + words + DONE and stream.error is None


@pytest.mark.parametrize(
    "event",
    [
        b'data: {"error":{"message":"boom at http://10.0.0.7:8000 key sk-abcdef123456"}}\n\n',
        b'data: {"object":"error","message":"boom at http://10.0.0.7:80 key sk-abcdef123456"}\n\n',
        b'data: {"choices":[{"delta":{},"finish_reason":"error"}]}\n\n',
        b'event: error\ndata: {"message":"boom at http://10.0.0.7:8000 key sk-abcdef123456"}\n\n',
    ],
)
def test_mid_stream_errors_end_with_an_error_chunk_then_done(event: bytes) -> None:
    """Mid-stream errors of every shape become OpenAI's error chunk and [DONE], redacted."""
    out, stream = relay(ROLE, HELLO + event + HELLO, DONE)
    assert out.startswith(ROLE + HELLO)
    error = error_of(out)
    assert error["code"] == "upstream_error" and stream.error is not None
    assert "10.0.0.7" not in out.decode() and "sk-abcdef" not in out.decode()
    assert out.count(b"Hello") == 1  # nothing after the error


def test_malformed_chunk_ends_the_stream() -> None:
    """A chunk that is not a JSON object ends the stream with an error, not garbage."""
    out, _ = relay(ROLE, b"data: {not json\n\n" + HELLO, DONE)
    assert error_of(out)["code"] == "upstream_malformed"


def test_end_without_done_is_truncation() -> None:
    """An upstream body that ends before [DONE] is reported as truncated."""
    out, stream = relay(ROLE, HELLO)
    assert error_of(out)["code"] == "upstream_truncated"
    assert stream.error is not None and stream.error.ending == "truncated"


def test_broken_connection_is_reported_once() -> None:
    """`fail` ends the stream with the error; later reads and `end` add nothing."""
    stream = OpenAIStreamFilter(strip_usage=False, redact=str)
    stream.feed(ROLE)
    out = stream.fail(ProviderError("upstream_truncated", "broke", ending="truncated"))
    assert error_of(out)["message"] == "broke"
    assert stream.feed(HELLO) == b"" and stream.end() == b""


def test_nothing_after_done_is_relayed() -> None:
    """Bytes after [DONE] are ignored."""
    out, _ = relay(ROLE, DONE + HELLO, HELLO)
    assert out == ROLE + DONE


_READS = [
    ROLE, HELLO, STOP, USAGE, DONE, HELLO[:9], HELLO[9:], b"\n", b"\n\n", b": ping\n\n",
    HELLO.replace(b"\n", b"\r\n"), b'data: {"error":{"message":"x"}}\n\n', b"data: {\n\n",
    b"\xef\xbb\xbf" + HELLO, b"event: error\n", b"retry: 5\n", b"data: [DONE]\n",
]  # fmt: skip


@given(st.lists(st.sampled_from(_READS), max_size=12))
def test_passes_plain_says_when_a_plain_event_would_come_out_of_feed_as_it_is(
    reads: list[bytes],
) -> None:
    """A pushing relay skips `feed` for a plain read while `passes_plain`: then feed must
    have returned that read, counted, and changed nothing else."""
    stream = OpenAIStreamFilter(strip_usage=False, redact=str)
    for read in reads:
        if stream.passes_plain and plain_event(HELLO):
            state = (stream.done, stream.events, stream.error, stream.usage)
            assert stream.feed(HELLO) is HELLO
            assert (stream.done, stream.events - 1, stream.error, stream.usage) == state
            assert stream.passes_plain
        stream.feed(read)
    assert not (stream.done and stream.passes_plain)


def test_passes_plain_holds_between_events_and_not_mid_event_or_after_the_end() -> None:
    stream = OpenAIStreamFilter(strip_usage=False, redact=str)
    assert not stream.passes_plain  # the first read goes through the decoder (a BOM)
    stream.feed(ROLE)
    assert stream.passes_plain
    stream.feed(HELLO[:9])
    assert not stream.passes_plain  # the decoder holds half an event
    stream.feed(HELLO[9:])
    assert stream.passes_plain
    stream.feed(DONE)
    assert not stream.passes_plain
