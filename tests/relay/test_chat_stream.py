"""How the chat stream cuts a filtered read into the events it logs, one entry each."""

from __future__ import annotations

import pytest

from sserelay.relay.chat_stream import _events

ONE = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
TWO = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'


@pytest.mark.parametrize(
    ("read", "events"),
    [
        (ONE, [ONE]),
        (ONE + TWO, [ONE, TWO]),
        (ONE + TWO + ONE, [ONE, TWO, ONE]),
        # An event of two lines is one event, not two, whichever test finds it.
        (b"event: x\n" + ONE, [b"event: x\n" + ONE]),
        (b"event: x\n" + ONE + TWO, [b"event: x\n" + ONE, TWO]),
    ],
)
def test_a_read_is_cut_into_whole_events_each_ending_in_a_blank_line(
    read: bytes, events: list[bytes]
) -> None:
    """Every event comes out whole with its own blank line, one log entry per event."""
    assert _events(read) == events
