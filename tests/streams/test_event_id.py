"""SSE ids `<stream>:<seq>` and stream-id validation, as input-to-output tables."""

from __future__ import annotations

import pytest

import sserelay.streams
from sserelay.streams import format_event_id, new_stream_id, parse_event_id, validate_stream_id


@pytest.mark.parametrize(
    ("stream_id", "seq", "text"),
    [
        ("abc", 1, "abc:1"),
        ("A-z_09", 0, "A-z_09:0"),
        ("x" * 64, 10**17, "x" * 64 + ":" + "1" + "0" * 17),
    ],
)
def test_event_ids_round_trip(stream_id: str, seq: int, text: str) -> None:
    """format_event_id and parse_event_id are inverses on valid ids."""
    assert format_event_id(stream_id, seq) == text
    assert parse_event_id(text) == (stream_id, seq)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "abc:", ":1", "a:b:1", "abc:-1", "abc:+1", "abc: 1", "abc:1 ", "abc:1\n",
     "abc:\u0661", "a b:1", "x" * 65 + ":1", "abc:" + "9" * 19, "abc:0x10"],
)  # fmt: skip
def test_malformed_event_ids_parse_to_none(text: str) -> None:
    """A Last-Event-ID that is not exactly `<url-safe id>:<digits>` is ignored, never an error."""
    assert parse_event_id(text) is None


def test_new_stream_ids_are_valid_and_distinct() -> None:
    """new_stream_id() yields URL-safe ids that pass validation and do not repeat."""
    ids = {new_stream_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(validate_stream_id(stream_id) == stream_id for stream_id in ids)


def test_public_names_are_exported() -> None:
    """sserelay.streams re-exports exactly its public API, each name resolving."""
    assert sserelay.streams.__all__ == sorted(sserelay.streams.__all__)
    for name in sserelay.streams.__all__:
        assert getattr(sserelay.streams, name) is not None
    assert {"StreamLog", "MemoryStreamLog", "RedisStreamLog", "Entry", "Gap", "End"} <= set(
        sserelay.streams.__all__
    )
