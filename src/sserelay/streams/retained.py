"""A stream's retained payloads, each kept without the bytes it shares with the others.

A stream's events repeat most of their bytes: an OpenAI chunk is ~200 bytes of which ~180
(`{"id":"chatcmpl-...","object":"chat.completion.chunk","created":...,"model":...,
"choices":[{"index":0,"delta":{"` and `"},"logprobs":null,"finish_reason":null}]}\\n\\n`) are
the same in every chunk of the stream. The log keeps every payload for resumes, for as long
as the stream is retained (ten minutes by default), so those bytes were most of a stream's
memory: ~31 KiB of ~80 for a 100-chunk chat stream (docs/decisions.md, "Memory per
stream").

`RetainedPayloads` learns the prefix and suffix its first payloads share, then keeps only
the middle of each payload that has both; any other payload is kept whole. Reading puts the
bytes back: `retained[i]` is always exactly the payload appended. The live path never reads
it (followers are handed the payload itself); resumes and late followers do, at the cost of
one concatenation per event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import overload

from sserelay.speedups import Retained

__all__ = ["RetainedPayloads"]

# Affixes are worth keeping only when they save at least this much per payload.
_MIN_SAVING = 32
# How many neighbouring pairs of the first payloads are tried before giving up.
_LEARN_PAIRS = 3
# Where a shared part may end (prefix) or begin (suffix): JSON's structural characters, so
# that a prefix never ends inside a token two neighbouring chunks happened to share.
_BOUNDARIES = b'":,{}[]\n'


class RetainedPayloads(Retained, Sequence[bytes]):
    """The last `maxlen` payloads appended, as a sequence of bytes.

    `append` is Retained's (sserelay/speedups.py): once the affixes are learned, or found
    not worth keeping apart, one C call per payload; until then it calls
    `_append_learning`."""

    __slots__ = ("_last", "_learning", "maxlen")
    # A middle (bytes) between the stream's prefix and suffix, or a whole payload kept as a
    # 1-tuple: one that arrived while the affixes were being learned, or lacks them.
    _items: deque[bytes | tuple[bytes]]

    def __init__(self, maxlen: int) -> None:
        super().__init__(deque(maxlen=maxlen))  # and no affixes: `_cut` is 0
        self.maxlen = maxlen
        self._last: bytes | None = None
        self._learning = _LEARN_PAIRS

    def _append_learning(self, payload: bytes) -> None:
        last, self._last = self._last, payload
        if last is not None:
            self._learning -= 1
            if min(len(last), len(payload)) > _MIN_SAVING:  # else they cannot share enough
                self._learn(last, payload)
            if self._cut or not self._learning:
                # Learned, or nothing shared (empty affixes: payloads kept as they are);
                # either way Retained.append goes on alone.
                self._last = None
                self._learned = True
        self._items.append((payload,))

    def _learn(self, a: bytes, b: bytes) -> None:
        prefix = a[: _common_prefix(a, b)]
        prefix = prefix[: max(map(prefix.rfind, _BOUNDARIES)) + 1]
        room = min(len(a), len(b)) - len(prefix)  # a suffix must not overlap the prefix
        suffix = a[len(a) - _common_suffix(a, b, room) :]
        starts = [i for i in map(suffix.find, _BOUNDARIES) if i >= 0]
        suffix = suffix[min(starts) :] if starts else b""
        if len(prefix) + len(suffix) >= _MIN_SAVING:
            self._prefix, self._suffix = prefix, suffix
            self._cut = len(prefix) + len(suffix)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        item = self._items[index]
        if type(item) is tuple:
            return item[0]
        return self._prefix + item + self._suffix  # type: ignore[operator]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Payload bytes held (the shared prefix and suffix once), not the objects' own."""
        held = sum(len(item[0]) if type(item) is tuple else len(item) for item in self._items)
        return held + self._cut


def _common_prefix(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix, by bisection on C-speed comparisons."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """The length of the longest common suffix, at most `limit`."""
    low, high = 0, max(0, limit)
    while low < high:
        mid = (low + high + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            low = mid
        else:
            high = mid - 1
    return low
