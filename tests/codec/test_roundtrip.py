"""Properties of encoder and decoder together: any text survives, no text forges an event.

SSE cannot carry a raw CR: every CR or CRLF in the data ends a line, and the receiver joins
data lines with LF. So the round trip is exact up to CR and CRLF becoming LF, and the expected
data below is normalised that way. (Endpoints JSON-encode where CR must survive.)
"""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

import sserelay.codec
from sserelay.codec import ServerSentEvent, SSEDecoder, encode_comment, encode_event

# Text that leans on what can break framing: line endings, NUL, BOMs, Unicode line separators
# that are not SSE line endings, and strings that look like fields.
_TRICKY = [
    "\r",
    "\n",
    "\r\n",
    "\r\r",
    "\n\n",
    "\n\r",
    "\x00",
    "\ufeff",
    "\u2028",
    "\x85",
    "\x0b",
    ":",
    " ",
    "data: ",
    "event: x",
    "id: 1",
    "retry: 1",
    "\U0001f600",
    "\xe9",
]
texts = st.lists(st.one_of(st.text(), st.sampled_from(_TRICKY))).map("".join)
single_line_texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"))


def as_received(text: str) -> str:
    """What an SSE receiver gets for ``text``: CRLF and lone CR arrive as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def feed_split(decoder: SSEDecoder, raw: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    bounds = [0, *sorted(min(c, len(raw)) for c in cuts), len(raw)]
    events = [e for a, b in itertools.pairwise(bounds) for e in decoder.feed(raw[a:b])]
    decoder.close()
    return events


@given(
    text=texts,
    event=st.none() | single_line_texts,
    event_id=st.none() | single_line_texts,
    retry=st.none() | st.integers(min_value=0, max_value=10**12),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=4),
)
def test_any_text_survives_encode_then_decode(
    text: str, event: str | None, event_id: str | None, retry: int | None, cuts: list[int]
) -> None:
    """encode_event then decode (whole, or cut anywhere) gives back the text, type, id, retry."""
    raw = encode_event(text, event=event, id=event_id, retry=retry)
    expected = ServerSentEvent(
        data=as_received(text),
        event=event or "message",  # an empty event type means "message"
        id=event_id or "",
        retry=retry,
    )
    for chunks_cuts in ([], cuts):
        decoder = SSEDecoder()
        assert feed_split(decoder, raw, chunks_cuts) == [expected]
        assert decoder.retry == retry
        assert decoder.last_event_id == (event_id or "")


@given(
    items=st.lists(st.tuples(texts, st.none() | texts), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
)
def test_concatenated_events_and_comments_decode_to_exactly_that_many_events(
    items: list[tuple[str, str | None]], cuts: list[int]
) -> None:
    """N encoded events, with arbitrary comments between them, decode to exactly N events."""
    raw = b"".join(
        (encode_comment(comment) if comment is not None else b"") + encode_event(text)
        for text, comment in items
    )
    decoder = SSEDecoder()
    events = feed_split(decoder, raw, cuts)
    assert [e.data for e in events] == [as_received(text) for text, _ in items]
    assert {e.event for e in events} <= {"message"}
    assert (decoder.retry, decoder.last_event_id) == (None, "")


@given(text=texts)
def test_any_text_survives_byte_by_byte_delivery(text: str) -> None:
    """An encoded event fed one byte at a time decodes to the same single event."""
    raw = encode_event(text)
    assert feed_split(SSEDecoder(), raw, list(range(len(raw)))) == [
        ServerSentEvent(data=as_received(text))
    ]


def test_package_exports_exactly_the_public_codec_api() -> None:
    """sserelay.codec re-exports the codec API, and __all__ lists exactly that."""
    expected = {
        "DONE",
        "SSEDecodeError",
        "SSEDecoder",
        "ServerSentEvent",
        "encode_comment",
        "encode_data_bytes",
        "encode_event",
    }
    assert set(sserelay.codec.__all__) == expected
    assert all(hasattr(sserelay.codec, name) for name in expected)
