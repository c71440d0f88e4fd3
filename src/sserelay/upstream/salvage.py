"""What aiohttp had already received when an upstream's connection broke.

aiohttp's `StreamReader.readany()` raises as soon as the payload has an error, even when
bytes that arrived before the break are still in its buffer (aiohttp 3.14: `readany` checks
`_exception` before `_buffer`). An upstream that sends its last tokens and then drops the
connection would lose those tokens in the relay. The fault suite caught this as a flaky
truncation test (`tests/faults/test_upstream_faults.py`, "dying mid-answer"): the text
relayed before the typed `truncated` ending must be everything the upstream sent.
"""

from __future__ import annotations

import aiohttp


def buffered(content: aiohttp.StreamReader) -> bytes:
    """The bytes still buffered in `content` after an error, or b"" (never raises)."""
    read_nowait = getattr(content, "_read_nowait", None)  # private: see the module docstring
    if read_nowait is None:
        return b""
    try:
        data: bytes = read_nowait(-1)
    except Exception:  # a change in aiohttp's internals must not turn into a crash
        return b""
    return data
