"""SSEDecoder against the shared vectors (every chunking) and the WHATWG rules they rely on."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sserelay.codec import ServerSentEvent, SSEDecodeError, SSEDecoder

Case = dict[str, Any]


def case_bytes(case: Case) -> bytes:
    """The wire bytes of a case: ``input_hex`` overrides ``input`` (raw BOMs, invalid UTF-8)."""
    if "input_hex" in case:
        return bytes.fromhex(case["input_hex"])
    return str(case["input"]).encode("utf-8")


def decode(chunks: Iterable[bytes], decoder: SSEDecoder | None = None) -> list[ServerSentEvent]:
    """Feed every chunk, then close: the whole life of one stream."""
    decoder = SSEDecoder() if decoder is None else decoder
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    decoder.close()
    return events


def assert_decodes_as_expected(case: Case, chunks: list[bytes]) -> None:
    decoder = SSEDecoder()
    events = decode(chunks, decoder)
    got = [{"event": e.event, "data": e.data, "id": e.id} for e in events]
    assert got == case["expected"], f"chunks={chunks!r}"
    assert decoder.retry == case["expected_retry"], f"chunks={chunks!r}"
    assert decoder.last_event_id == case["expected_last_event_id"], f"chunks={chunks!r}"


def test_vector_decodes_whole(decoder_case: Case) -> None:
    """Each vector decodes to its expected events, retry and Last-Event-ID in one feed."""
    assert_decodes_as_expected(decoder_case, [case_bytes(decoder_case)])


def test_vector_decodes_byte_by_byte(decoder_case: Case) -> None:
    """Each vector decodes the same when every byte arrives alone (CRLF, UTF-8 and BOM split)."""
    raw = case_bytes(decoder_case)
    assert_decodes_as_expected(decoder_case, [raw[i : i + 1] for i in range(len(raw))])


def test_vector_decodes_at_every_two_way_split(decoder_case: Case) -> None:
    """Each vector decodes the same whichever byte the stream is cut at."""
    raw = case_bytes(decoder_case)
    for cut in range(len(raw) + 1):
        assert_decodes_as_expected(decoder_case, [raw[:cut], raw[cut:]])


def test_vector_decodes_with_its_given_chunks(chunked_case: Case) -> None:
    """Vectors that target a chunk-boundary bug decode correctly with exactly their chunks."""
    chunks = [str(chunk).encode("utf-8") for chunk in chunked_case["chunks"]]
    assert b"".join(chunks) == case_bytes(chunked_case), "vector's chunks must rebuild its input"
    assert_decodes_as_expected(chunked_case, chunks)


def test_vector_decodes_at_seeded_random_splits(decoder_case: Case) -> None:
    """Each vector decodes the same when cut into many pieces at random (seeded) points."""
    raw = case_bytes(decoder_case)
    rng = random.Random(decoder_case["name"])
    for _ in range(25):
        cuts = sorted(rng.choices(range(len(raw) + 1), k=rng.randint(2, 12)))
        bounds = [0, *cuts, len(raw)]
        assert_decodes_as_expected(decoder_case, [raw[a:b] for a, b in itertools.pairwise(bounds)])


# --- limit_cases: memory stays bounded ------------------------------------------------------


def limit_generator(vectors: Case, name: str) -> dict[str, Any]:
    cases: list[Case] = vectors["limit_cases"]
    generator: dict[str, Any] = next(c for c in cases if c["name"] == name)["input_generator"]
    return generator


def generated_stream(generator: dict[str, Any], chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Yield a limit case's input in network-sized chunks without building it in memory."""
    if "line" in generator:
        block = str(generator["line"]).encode() * 4096
        whole, rest = divmod(int(generator["repeat_lines"]), 4096)
        for _ in range(whole):
            yield block
        yield str(generator["line"]).encode() * rest
        return
    yield str(generator["prefix"]).encode()
    unit = str(generator["repeat"]).encode()
    remaining = int(generator["count"])
    while remaining:
        step = min(chunk_size, remaining)
        yield unit * step
        remaining -= step
    yield str(generator.get("suffix", "")).encode()


def bytes_fed_until_error(decoder: SSEDecoder, chunks: Iterable[bytes]) -> int:
    fed = 0
    with pytest.raises(SSEDecodeError) as excinfo:
        for chunk in chunks:
            fed += len(chunk)
            decoder.feed(chunk)
    assert str(excinfo.value)  # the error says what went wrong in words
    return fed


def test_limit_unterminated_huge_line_raises_once_the_line_cap_is_passed(vectors: Case) -> None:
    """A 10 MiB line with no line break raises as soon as the buffered line passes the cap."""
    generator = limit_generator(vectors, "unterminated-huge-line")
    decoder = SSEDecoder(max_line_bytes=1 << 20)
    fed = bytes_fed_until_error(decoder, generated_stream(generator, chunk_size=1 << 16))
    # Raised while at most one chunk beyond the cap had arrived: the buffer never grew past it.
    assert 1 << 20 < fed <= (1 << 20) + (1 << 16)
    assert fed < len(generator["prefix"]) + generator["count"]


def test_limit_many_data_lines_without_blank_line_trip_the_event_cap(vectors: Case) -> None:
    """A million terminated data lines with no blank line raise instead of growing the buffer."""
    generator = limit_generator(vectors, "many-data-lines-no-blank")
    decoder = SSEDecoder(max_line_bytes=1 << 16, max_event_bytes=1 << 20)
    fed = bytes_fed_until_error(decoder, generated_stream(generator))
    assert fed < len(generator["line"]) * generator["repeat_lines"]


def test_limit_huge_event_decodes_when_the_caps_are_above_it(vectors: Case) -> None:
    """A 4,808,512-character event arrives whole when the caps admit it."""
    generator = limit_generator(vectors, "huge-event-ok")
    events = decode(generated_stream(generator), SSEDecoder(max_line_bytes=8 << 20))
    assert len(events) == 1
    assert events[0].data == "x" * generator["count"]


def test_limit_huge_event_raises_under_the_default_cap(vectors: Case) -> None:
    """The default 1 MiB line cap rejects the 4.8 MB single-line event."""
    generator = limit_generator(vectors, "huge-event-ok")
    bytes_fed_until_error(SSEDecoder(), generated_stream(generator))


# --- limits: behaviour around the error -------------------------------------------------------


def test_line_longer_than_cap_raises_even_when_it_arrives_complete() -> None:
    """The line cap does not depend on chunking: a complete oversized line in one read raises."""
    decoder = SSEDecoder(max_line_bytes=16)
    with pytest.raises(SSEDecodeError, match="longer than 16 bytes"):
        decoder.feed(b"data: " + b"x" * 11 + b"\n\n")


def test_line_exactly_at_cap_is_accepted() -> None:
    """A line of exactly max_line_bytes is within the limit, split or whole."""
    line = b"data: " + b"x" * 10  # 16 bytes
    assert decode([line + b"\n\n"], SSEDecoder(max_line_bytes=16))[0].data == "x" * 10
    assert decode([line, b"\n\n"], SSEDecoder(max_line_bytes=16))[0].data == "x" * 10


def test_unterminated_line_error_message_names_the_cap() -> None:
    """The endless-line error says in words which limit was hit."""
    decoder = SSEDecoder(max_line_bytes=1 << 20)
    with pytest.raises(
        SSEDecodeError, match="SSE line longer than 1048576 bytes without a line break"
    ):
        decoder.feed(b"data: " + b"x" * (1 << 20))


def test_decode_error_is_a_value_error() -> None:
    """SSEDecodeError is a ValueError, so generic input-error handling catches it."""
    assert issubclass(SSEDecodeError, ValueError)


def test_decode_error_carries_events_completed_earlier_in_the_chunk() -> None:
    """Events completed before the limit tripped in the same chunk are on the error."""
    decoder = SSEDecoder(max_line_bytes=32)
    with pytest.raises(SSEDecodeError) as excinfo:
        decoder.feed(b"data: ok\n\ndata: " + b"x" * 40)
    assert [e.data for e in excinfo.value.events] == ["ok"]


def test_decoder_refuses_input_after_an_error_until_closed() -> None:
    """After a limit error the rest of the stream is refused; close() starts a fresh stream."""
    decoder = SSEDecoder(max_line_bytes=8)
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"data: 123456789")
    with pytest.raises(SSEDecodeError, match="earlier error"):
        decoder.feed(b"\ndata: forged\n\n")
    decoder.close()
    assert [e.data for e in decoder.feed(b"data: ok\n\n")] == ["ok"]


def test_event_cap_counts_data_across_lines() -> None:
    """max_event_bytes bounds the joined data of one event, not just each line."""
    decoder = SSEDecoder(max_line_bytes=64, max_event_bytes=10)
    assert decoder.feed(b"data: 1234\ndata: 1234\n") == []  # 5 + 5 bytes: at the cap
    with pytest.raises(SSEDecodeError, match="event data longer than 10 bytes"):
        decoder.feed(b"data: 1\n")


def test_event_cap_defaults_to_the_line_cap() -> None:
    """Without max_event_bytes, the event cap follows max_line_bytes (one knob for both)."""
    decoder = SSEDecoder(max_line_bytes=4096)
    assert decoder.max_line_bytes == 4096
    assert decoder.max_event_bytes == 4096
    assert SSEDecoder().max_line_bytes == 1 << 20


@pytest.mark.parametrize("kwargs", [{"max_line_bytes": 0}, {"max_event_bytes": 0}])
def test_non_positive_caps_are_rejected(kwargs: dict[str, int]) -> None:
    """A cap below one byte is a configuration error, raised at construction."""
    with pytest.raises(ValueError, match="at least 1"):
        SSEDecoder(**kwargs)


# --- UTF-8 and BOM ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        (b"data: a\xffb\n\n", "a\ufffdb"),
        (b"data: \xe2\x9c\n\n", "\ufffd"),  # truncated 3-byte sequence, then the line ends
        (b"data: \xed\xa0\x80\n\n", "\ufffd\ufffd\ufffd"),  # UTF-8-encoded surrogate
        (b"data: \xc3\ndata: \xa9\n\n", "\ufffd\n\ufffd"),  # a char cut by a line break
    ],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes, data: str) -> None:
    """Invalid UTF-8 decodes to U+FFFD instead of breaking the stream."""
    assert [e.data for e in decode([raw])] == [data]


def test_bom_split_across_first_reads_is_stripped() -> None:
    """A BOM arriving one byte per read at stream start is still stripped."""
    assert [e.data for e in decode([b"\xef", b"\xbb", b"\xbfdata: x\n\n"])] == ["x"]


def test_partial_bom_prefix_is_not_stripped() -> None:
    """Bytes that only start like a BOM stay in the stream (and turn "data" into another name)."""
    assert decode([b"\xef\xbb", b"data: x\n\n"]) == []


def test_empty_reads_change_nothing() -> None:
    """Empty chunks, at the start or between CR and LF, neither dispatch nor break state."""
    assert [e.data for e in decode([b"", b"data: x\r", b"", b"\n", b"", b"\n"])] == ["x"]


def test_close_resets_bom_detection_for_the_next_stream() -> None:
    """After close(), a reconnected stream may start with its own BOM."""
    decoder = SSEDecoder()
    assert decode([b"\xef\xbb\xbfdata: 1\n\n"], decoder)[0].data == "1"
    assert decode([b"\xef\xbb\xbfdata: 2\n\n"], decoder)[0].data == "2"


# --- fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        (b"data:\tx\n\n", "\tx"),  # only a space is stripped, never a tab
        (b"data:  x\n\n", " x"),  # only one space
        (b"data: a: b\n\n", "a: b"),  # the value keeps later colons
        (b"data: x \n\n", "x "),  # trailing spaces are data
        (b"data: a\x00b\n\n", "a\x00b"),  # NUL is ordinary data
    ],
)
def test_field_value_parsing(raw: bytes, data: str) -> None:
    """The value is everything after the first colon, minus exactly one leading space."""
    assert [e.data for e in decode([raw])] == [data]


@pytest.mark.parametrize("name", [b"Data", b"DATA", b" data", b"data ", b"\xef\xbb\xbfdata"])
def test_field_names_are_exact_and_case_sensitive(name: bytes) -> None:
    """Only the exact name "data" is the data field; near misses are unknown and ignored."""
    # The comment keeps the name off the stream start, where a BOM would be stripped.
    assert decode([b":\n" + name + b": x\n\n"]) == []


def test_event_type_resets_to_message_after_dispatch() -> None:
    """An event: field names only its own event; the next one is "message" again."""
    events = decode([b"event: tick\ndata: 1\n\ndata: 2\n\n"])
    assert [(e.event, e.data) for e in events] == [("tick", "1"), ("message", "2")]


def test_event_type_set_by_a_data_less_block_does_not_leak() -> None:
    """A block with only event: dispatches nothing and its type is forgotten."""
    assert [e.event for e in decode([b"event: x\n\ndata: 1\n\n"])] == ["message"]


def test_last_event_id_is_committed_at_dispatch_not_at_the_field() -> None:
    """An id: with no blank line after it is not yet the Last-Event-ID (WHATWG dispatch step 1)."""
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\n\nid: 2\n")
    assert decoder.last_event_id == "1"
    decoder.feed(b"\n")
    assert decoder.last_event_id == "2"


def test_close_keeps_last_event_id_and_retry_for_the_reconnect() -> None:
    """close() discards the partial event but keeps what the reconnect needs."""
    decoder = SSEDecoder()
    assert decode([b"retry: 3000\nid: 7\ndata: a\n\nid: 8\ndata: partial\n"], decoder)[0].id == "7"
    assert (decoder.last_event_id, decoder.retry) == ("7", 3000)


def test_id_carries_into_the_next_stream_after_close() -> None:
    """Events of a reconnected stream inherit the last event ID until a new id: arrives."""
    decoder = SSEDecoder()
    decode([b"id: 7\ndata: a\n\n"], decoder)
    assert [e.id for e in decode([b"data: b\n\n"], decoder)] == ["7"]


def test_close_discards_a_pending_crlf_half() -> None:
    """A CR at the very end of a stream does not swallow the next stream's leading LF."""
    decoder = SSEDecoder()
    decode([b"data: a\r"], decoder)
    assert decode([b"\ndata: b\n\n"], decoder)[0].data == "b"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0", 0),
        (b"007", 7),
        (b"3000", 3000),
        (b"", None),
        (b"+5", None),
        (b"-1", None),
        (b" 5", None),  # "retry:  5": one space stripped, the second is not a digit
        (b"5 ", None),
        (b"1_000", None),
        (b"1.5", None),
        ("\uff15".encode(), None),  # FULLWIDTH DIGIT FIVE: a digit, but not ASCII
        (b"9" * 19, None),  # too long to mean a delay
        (b"9" * 5000, None),  # beyond int()'s digit limit: must not crash
    ],
)
def test_retry_accepts_only_ascii_digits(value: bytes, expected: int | None) -> None:
    """retry: sets the reconnection time only when its value is all ASCII digits."""
    decoder = SSEDecoder()
    decode([b"retry: " + value + b"\ndata: x\n\n"], decoder)
    assert decoder.retry == expected


def test_event_retry_is_the_value_set_in_its_own_block() -> None:
    """ServerSentEvent.retry reports the block's retry:, while decoder.retry stays sticky."""
    decoder = SSEDecoder()
    events = decode([b"retry: 10\ndata: a\n\ndata: b\n\nretry: 5\n\ndata: c\n\n"], decoder)
    assert [e.retry for e in events] == [10, None, None]
    assert decoder.retry == 5


def test_server_sent_event_defaults_and_immutability() -> None:
    """An event defaults to type "message", no id, no retry, and cannot be modified."""
    event = ServerSentEvent(data="x")
    assert (event.event, event.id, event.retry) == ("message", "", None)
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]


# -- take_data_line: the undecoded one-event read --------------------------------------------

_TAKE_CHUNKS = [
    b"data: one\n\n", b"data: {\"a\":1}\n\n", b"data: \n\n", b"data:x\n\n", b"id: 7\n",
    b"id: 8\n\n", b"data: a\ndata: b\n\n", b"data: cut", b" short\n\n", b"data: x\r\n\r\n",
    b"event: e\n", b"retry: 5\n", b": comment\n\n", b"\xef\xbb\xbfdata: bom\n\n", b"\n",
    b"data: caf\xc3\xa9\n\n", b"data: \xff\n\n",
]  # fmt: skip


@given(st.lists(st.sampled_from(_TAKE_CHUNKS), max_size=10))
def test_take_data_line_then_feed_decodes_as_feed_alone(chunks: list[bytes]) -> None:
    """Taking a read's data line (and feeding what is declined) gives the events, in order,
    and the last event ID that feeding every read gives."""
    fed, taking = SSEDecoder(), SSEDecoder()
    expected: list[tuple[str, str, str]] = []
    got: list[tuple[str, str, str]] = []
    for chunk in chunks:
        expected += [(e.data, e.event, e.id) for e in fed.feed(chunk)]
        line = taking.take_data_line(chunk)
        if line is not None:
            got.append((line.decode("utf-8", "replace"), "message", taking.last_event_id))
        else:
            got += [(e.data, e.event, e.id) for e in taking.feed(chunk)]
        assert taking.last_event_id == fed.last_event_id
    assert got == expected


def test_take_data_line_declines_a_line_past_the_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=16)
    decoder.feed(b"data: first\n\n")
    assert decoder.take_data_line(b"data: " + b"x" * 11 + b"\n\n") is None
    assert decoder.take_data_line(b"data: " + b"x" * 10 + b"\n\n") == b"x" * 10
