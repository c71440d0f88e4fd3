"""Per-chunk steps of the relay, compiled where possible.

Each function is defined here in Python, and that definition is the specification: the C
versions in `sserelay/_speedups.c` (built when sserelay is installed) must return exactly
the same, which tests/test_speedups.py checks on generated input. Where the extension was
not built (no compiler), these definitions run instead; `COMPILED` says which.

Why C (docs/decisions.md, "The per-chunk checks in C"): in CPython 3.11 the pass-through's
check that a read is one plain event, six byte operations, cost more than httptools'
parse of the HTTP chunk around it. Each slice allocates and each `bytes.find` parses its
arguments as a tuple; in C the same checks are a few `memchr`/`memmem` calls.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "COMPILED", "ChunkWriter", "CountedAppend", "DecoderState", "EntryTail", "Forward",
    "Guarded", "LogStream", "PlainPass", "Retained", "Tally", "TemplateText", "between",
    "http_chunk", "http_entry",
    "one_data_line", "plain_ascii_text", "plain_event", "resp_command", "usage_present",
]  # fmt: skip

_CR = 0x0D
_LF = 0x0A
_OBJECT = b"data: {"
_OBJECT_END = b"}\n\n"
_USAGE_KEY = b'"usage"'
_ERROR_WORD = b'"error"'
_COMPACT_NULL = b":null"


def usage_present_py(payload: bytes) -> bool:
    """Whether `"usage"` occurs and is not followed by `null` (the common per-chunk value):
    the value is what follows the key within 9 bytes, after spaces, tabs and the colon.
    Only the first occurrence counts; content text cannot produce the key with bare quotes
    (JSON escapes them inside strings)."""
    at = payload.find(_USAGE_KEY)
    if at < 0:
        return False
    if payload[at + 7 : at + 12] == _COMPACT_NULL:  # what OpenAI and vLLM send
        return False
    rest = payload[at + 7 : at + 16].lstrip(b" \t:")
    return not rest.startswith(b"null")


def plain_event_py(chunk: bytes) -> bool:
    """Whether `chunk` is exactly one event `data: {...}\\n\\n` (no CR, no other LF) whose
    JSON needs no look: no `"error"` and no non-null `"usage"`. A paced model sends one
    such event per read, which the pass-through forwards as it is."""
    return (
        _CR not in chunk
        and chunk[-3:] == _OBJECT_END
        and chunk.find(_LF) == len(chunk) - 2
        and chunk[:7] == _OBJECT
        and chunk.find(_ERROR_WORD) < 0
        and not usage_present_py(chunk)
    )


def http_chunk_py(data: bytes) -> bytes:
    """`data` as one piece of a chunked HTTP/1.1 body (RFC 9112, 7.1): the length in
    lower-case hex, CRLF, the bytes, CRLF. Exactly what uvicorn's `send` writes."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def http_entry_py(prefix: bytes, seq: int, payload: bytes) -> bytes:
    """A log entry's event for a follower, `prefix` (`id: <stream>:`), the seq, LF and the
    payload (which ends the event), as one HTTP chunk."""
    return http_chunk_py(b"%b%d\n%b" % (prefix, seq, payload))


def between_py(payload: bytes, prefix: bytes, suffix: bytes) -> bytes | None:
    """`payload` without `prefix` and `suffix` if it has both, not overlapping; else None."""
    if (
        len(payload) >= len(prefix) + len(suffix)
        and payload.startswith(prefix)
        and payload.endswith(suffix)
    ):
        return payload[len(prefix) : len(payload) - len(suffix)]
    return None


def resp_command_py(command: tuple[bytes | str | int, ...]) -> bytes:
    """A command in Redis' protocol (RESP2), as the Redis log's writer sends it: `*<count>`,
    then each argument as a bulk string; str as UTF-8, int in decimal (64-bit). What
    redis-py's and hiredis' `pack_command` produce for these types, at a fraction of the
    cost: hiredis' was ~8% of the relay's instructions with the Redis log."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            if not -(2**63) <= arg < 2**63:
                raise OverflowError("Python int too large to convert to C long long")
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            raise TypeError(f"resp_command() takes bytes, str and int arguments, not "
                            f"{type(arg).__name__}")  # fmt: skip
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def one_data_line_py(chunk: bytes) -> bytes | None:
    """The value of `chunk` if it is exactly one event of one line, `data: <value>\\n\\n`
    (no CR, no other LF); else None. Most reads of an LLM stream are."""
    if (
        chunk[:6] == b"data: "
        and chunk[-2:] == b"\n\n"
        and chunk.find(_LF) == len(chunk) - 2
        and _CR not in chunk
    ):
        return chunk[6:-2]
    return None


def plain_ascii_text_py(text: bytes) -> bool:
    """Whether every byte is printable ASCII (0x20-0x7e) and none is a quote or a backslash:
    inside a JSON string literal, such bytes are the string's text as they are."""
    return (
        text.isascii()
        and text.find(b'"') < 0
        and text.find(b"\\") < 0
        and text.decode("ascii").isprintable()
    )


class ChunkWriter_py:
    """Writes to a uvicorn request cycle's transport as `RequestResponseCycle.send` does for
    a chunked body. A pushed response writes each chunk through one: in C, the call is no
    Python frame of its own (one of six per pass-through chunk)."""

    __slots__ = ("_write", "cycle", "flow", "sent")

    def __init__(self, cycle: Any) -> None:
        self._write = cycle.transport.write
        self.cycle = cycle
        self.flow = cycle.flow
        self.sent = 0

    def write(self, data: bytes) -> bool:
        """`data` as one HTTP chunk to the client; False if it is gone or not reading."""
        if self.cycle.disconnected:
            return False
        return self._send(http_chunk(data))

    def write_chunk(self, chunk: bytes) -> bool:
        """An already framed HTTP chunk to the client; False if it is gone or not reading."""
        if self.cycle.disconnected:
            return False
        return self._send(chunk)

    def _send(self, chunk: bytes) -> bool:
        self._write(chunk)
        self.sent += 1
        return not self.flow.write_paused


class Forward_py:
    """Hands each call's one argument to `target` (None: to nobody) and counts the calls.
    The upstream parser's body callback: the parser holds one for the connection's life,
    and each response points it at whoever consumes its body, so a body piece reaches the
    consumer with no Python frame of the connection's own."""

    __slots__ = ("count", "target")

    def __init__(self, target: Any = None) -> None:
        self.target = target
        self.count = 0

    def __call__(self, data: Any, /) -> None:
        self.count += 1
        target = self.target
        if target is not None:
            target(data)


class Guarded_py:
    """`func(arg)`, except that an exception among `errors` is handed to `handler(exc)`
    instead of raised. A protocol's `data_received` as its parser's `feed_data`, with the
    parser's errors still handled, and no Python frame per read."""

    __slots__ = ("_errors", "_func", "_handler")

    def __init__(self, func: Any, errors: Any, handler: Any) -> None:
        self._func, self._errors, self._handler = func, errors, handler

    def __call__(self, arg: Any, /) -> None:
        try:
            self._func(arg)
        except self._errors as exc:
            self._handler(exc)


class EntryTail_py:
    """A pushed follower's `on_item` for its usual item, a log `Entry` (`entry_type`, a
    2-tuple of seq and payload): while subscribed (`stopped` is a pending future), the
    entry's id line (`prefix`, the seq) and payload go to `write_chunk` as one HTTP chunk,
    `pos` becomes its seq, and a write the client does not take (False) resolves `stopped`
    with None. Any other item goes to `self.on_other`, which a subclass defines."""

    __slots__ = ("_entry_type", "_write_chunk", "pos", "prefix", "stopped")

    def __init__(self, prefix: bytes, write_chunk: Any, entry_type: Any, pos: int) -> None:
        self.prefix, self._write_chunk, self._entry_type = prefix, write_chunk, entry_type
        self.pos = pos
        self.stopped: Any = None

    def on_item(self, item: Any, /) -> None:
        stopped = self.stopped
        if stopped is None or stopped.done():
            return
        if type(item) is not self._entry_type:
            self.on_other(item)  # type: ignore[attr-defined]
            return
        seq, payload = item
        self.pos = seq
        if not self._write_chunk(http_entry(self.prefix, seq, payload)):
            stopped.set_result(None)


class Retained_py:
    """RetainedPayloads' `append` (streams/retained.py) once its affixes are learned
    (`_learned`): the middle of a payload that has both `_prefix` and `_suffix` (`between`)
    goes onto the deque `_items`, any other payload as a 1-tuple; with empty affixes
    (nothing shared), the payload itself. Before that, `append` is the subclass's
    `_append_learning`."""

    __slots__ = ("_cut", "_items", "_learned", "_prefix", "_suffix")

    def __init__(self, items: Any) -> None:
        self._items = items
        self._prefix = self._suffix = b""
        self._cut = 0
        self._learned = False

    def append(self, payload: bytes, /) -> None:
        if not self._learned:
            self._append_learning(payload)  # type: ignore[attr-defined]
            return
        if not self._cut:  # learned that nothing is shared
            self._items.append(payload)
            return
        middle = between(payload, self._prefix, self._suffix)
        self._items.append((payload,) if middle is None else middle)


class TemplateText_py:
    """TextReader's `plain_text` (relay/openai_text.py): when a template is learned
    (`_prefix_bytes` is not None) and `data` is it around printable ASCII with no quote or
    backslash (`between`, `plain_ascii_text`), that text, counted in `_hits`; else None."""

    __slots__ = ("_hits", "_prefix_bytes", "_suffix_bytes")

    def __init__(self) -> None:
        self._prefix_bytes: bytes | None = None
        self._suffix_bytes = b""
        self._hits = 0

    def plain_text(self, data: bytes, /) -> bytes | None:
        prefix = self._prefix_bytes
        if prefix is None:
            return None
        text = between(data, prefix, self._suffix_bytes)
        if text is None or not plain_ascii_text(text):
            return None
        self._hits += 1
        return text


class DecoderState_py:
    """The state of `SSEDecoder` (codec/decoder.py, which says what each field means) and
    its `take_data_line`."""

    __slots__ = (
        "_at_stream_start", "_block_retry", "_data", "_error", "_event_type", "_id_buffer",
        "_pending", "_skip_lf", "last_event_id", "max_event_bytes", "max_line_bytes",
    )  # fmt: skip
    _at_stream_start: bool
    _block_retry: int | None
    _data: list[bytes]
    _error: str | None
    _event_type: str
    _id_buffer: str
    _pending: bytearray
    _skip_lf: bool
    last_event_id: str
    max_event_bytes: int
    max_line_bytes: int

    def take_data_line(self, chunk: bytes, /) -> bytes | None:
        """The data of `chunk`, as bytes, when it is exactly one event of one `data: ` line
        and the decoder holds nothing: what `feed` would return as one "message" event, for
        a consumer that can use the bytes as they are. None otherwise, and nothing changed:
        `feed` the chunk instead."""
        if (
            self._at_stream_start
            or self._skip_lf
            or self._pending
            or self._data
            or self._event_type
            or self._block_retry is not None
            or self._error is not None
            or len(chunk) - 2 > min(self.max_line_bytes, self.max_event_bytes + 5)
        ):
            return None
        line = one_data_line(chunk)
        if line is not None:
            self.last_event_id = self._id_buffer  # as a dispatch sets it
        return line


class Tally_py:
    """A count shared by many `LogStream`s (`count`) and the `limit` at which their appends
    are refused: the Redis log's entries queued for Redis, over all its streams."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.count, self.limit = 0, limit


class LogStream_py:
    """A memory log stream's `append` (streams/memory_log.py): unless the stream has ended
    (`ending` is not None: the subclass's `_refuse` raises), the payload goes into
    `entries`, `last_seq` counts it, parked followers (`waiters`) are woken with `wake`,
    and each pushed follower (`listeners`, copied first when there are several) is handed
    an `entry_type` of (seq, payload). Returns the seq.

    A stream that also queues its payloads for elsewhere (the Redis log's producer copy)
    has a `pending` list: each payload goes there too, counted in the `tally` shared by all
    such streams (at its limit, `_refuse` is called instead), and `on_pending(stream)` is
    told when the list stops being empty. None for each, as made, queues nothing."""

    __slots__ = ("_entry_type", "_wake", "ending", "entries", "last_seq", "listeners",
                 "on_pending", "pending", "tally", "waiters")  # fmt: skip

    def __init__(self, entries: Any, entry_type: type, wake: Any) -> None:
        self.entries, self._entry_type, self._wake = entries, entry_type, wake
        self.ending: Any = None
        self.waiters: list[Any] = []
        self.listeners: list[Any] = []
        self.last_seq = 0
        self.pending: list[bytes] | None = None
        self.tally: Any = None
        self.on_pending: Any = None

    def append(self, payload: bytes, /) -> int:
        if self.ending is not None:
            return self._refuse()  # type: ignore[attr-defined,no-any-return]
        tally = self.tally
        if tally is not None and tally.count >= tally.limit:
            return self._refuse()  # type: ignore[attr-defined,no-any-return]
        self.entries.append(payload)
        seq = self.last_seq = self.last_seq + 1
        pending = self.pending
        if pending is not None:
            pending.append(payload)
            tally = self.tally  # again, as the C definition reads it: keeping ran Python
            if tally is not None:
                tally.count += 1
            if len(pending) == 1 and self.on_pending is not None:
                self.on_pending(self)
        if self.waiters:
            self._wake(self.waiters)
        listeners = self.listeners
        if listeners:
            entry: Any = tuple.__new__(self._entry_type, (seq, payload))
            if len(listeners) == 1:
                listeners[0](entry)
            else:
                for listener in tuple(listeners):
                    listener(entry)
        return seq


class CountedAppend_py:
    """A pushing producer's `emit` (relay/generation.py), or a pushed response's write
    (gateway/relay.py): `append(payload)`, counted in `chunks` and `size`, with `clock()`
    added to `stamps` at chunk 1 and at the pairs 8-9, 16-17... (`chunks & 7 < 2`,
    observability's StreamMarks); the answer is the truth of what `append` returned. An
    exception among `errors` is kept in `refused` and answered False, as is every call
    after it."""

    __slots__ = ("_append", "_clock", "_errors", "_stamps", "chunks", "refused", "size")

    def __init__(self, append: Any, errors: Any, clock: Any, stamps: list[Any]) -> None:
        self._append, self._errors, self._clock, self._stamps = append, errors, clock, stamps
        self.refused: BaseException | None = None
        self.chunks = self.size = 0

    def __call__(self, payload: bytes, /) -> bool:
        if self.refused is not None:
            return False
        size = len(payload)
        try:
            done = bool(self._append(payload))
        except self._errors as exc:
            self.refused = exc
            return False
        self.chunks += 1
        self.size += size
        if self.chunks & 7 < 2:
            self._stamps.append(self._clock())
        return done


class PlainPass_py:
    """A pass-through's body consumer (gateway/relay.py): while `stream.passes_plain`, a read
    that is one plain event (`plain_event`) goes to `send` as it is, counted in
    `stream.events`, and `blocked()` is called when `send` answers False; any other read
    goes to `other(chunk)`."""

    __slots__ = ("_blocked", "_other", "_send", "_stream")

    def __init__(self, stream: Any, send: Any, blocked: Any, other: Any) -> None:
        self._stream, self._send, self._blocked, self._other = stream, send, blocked, other

    def __call__(self, chunk: bytes, /) -> None:
        stream = self._stream
        if not (isinstance(chunk, bytes) and stream.passes_plain and plain_event(chunk)):
            self._other(chunk)
            return
        stream.events += 1
        if not self._send(chunk):
            self._blocked()


try:
    from sserelay._speedups import (
        ChunkWriter,
        CountedAppend,
        DecoderState,
        EntryTail,
        Forward,
        Guarded,
        LogStream,
        PlainPass,
        Retained,
        Tally,
        TemplateText,
        between,
        http_chunk,
        http_entry,
        one_data_line,
        plain_ascii_text,
        plain_event,
        resp_command,
        usage_present,
    )
except ImportError:  # not built here: the definitions above, a few hundred ns slower
    COMPILED = False
    ChunkWriter = ChunkWriter_py  # type: ignore[assignment,misc]
    Forward, Guarded = Forward_py, Guarded_py  # type: ignore[assignment,misc]
    EntryTail, Retained = EntryTail_py, Retained_py  # type: ignore[assignment,misc]
    TemplateText = TemplateText_py  # type: ignore[assignment,misc]
    DecoderState, LogStream = DecoderState_py, LogStream_py  # type: ignore[assignment,misc]
    Tally = Tally_py  # type: ignore[assignment,misc]
    CountedAppend, PlainPass = CountedAppend_py, PlainPass_py  # type: ignore[assignment,misc]
    between, http_chunk, http_entry = between_py, http_chunk_py, http_entry_py
    one_data_line, plain_ascii_text = one_data_line_py, plain_ascii_text_py
    plain_event, resp_command, usage_present = plain_event_py, resp_command_py, usage_present_py
else:
    COMPILED = True
