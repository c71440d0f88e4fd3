"""The compiled per-chunk steps (sserelay/_speedups.c) answer exactly as their Python
definitions (sserelay/speedups.py), and they are the ones this install runs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hiredis import pack_command
from hypothesis import example, given
from hypothesis import strategies as st

from sserelay import _speedups, speedups

# Pieces a chunk is made of, chosen so that generated reads hit every branch: the event's
# head and tail, the two keys the check looks for (spaced and not), values, line breaks.
_PIECES = [
    b"data: {", b"data:{", b"data: [", b"}\n\n", b"}\n", b"\n\n", b"\n", b"\r", b"\r\n",
    b'"usage"', b'"usage":null', b'"usage": null', b'"usage":\tnull', b'"usage" : null',
    b'"usage":  \t :null', b'"usage":nul', b'"usage":{"total_tokens":3}', b'"usage":',
    b'"error"', b'"error":{"message":"x"}', b'error', b'usage', b'null', b"nul",
    b'"choices":[{"delta":{"content":"hi \\"usage\\" there"}}]', b",", b":", b" ", b"\t",
    b"{", b"}", b'"', b"\\", "é".encode(), b"\x00", b"data: ",
]  # fmt: skip
_chunks = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=8).map(b"".join),
    st.binary(max_size=64),
    st.builds(lambda body: b"data: {" + body + b"}\n\n", st.binary(max_size=40)),
    # One event whose pieces start at every offset, so that the keys fall on both sides
    # of each 16-byte block the compiled scan reads, and in its tail.
    st.builds(lambda pad, pieces: b'data: {"' + b"p" * pad + b'":1,' + b"".join(pieces)
              + b"}\n\n", st.integers(0, 40), st.lists(st.sampled_from(_PIECES), max_size=6)),
)
_EVENT = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}\n\n'
)


def test_the_compiled_steps_are_the_ones_installed() -> None:
    # The set-up builds the extension; without a compiler sserelay falls back to Python
    # and stays correct, but that must not happen silently where the benchmark runs.
    assert speedups.COMPILED
    assert speedups.plain_event is _speedups.plain_event
    assert speedups.http_chunk is _speedups.http_chunk
    assert speedups.usage_present is _speedups.usage_present
    assert speedups.http_entry is _speedups.http_entry
    assert speedups.between is _speedups.between
    assert speedups.resp_command is _speedups.resp_command
    assert speedups.one_data_line is _speedups.one_data_line
    assert speedups.plain_ascii_text is _speedups.plain_ascii_text
    assert speedups.ChunkWriter is _speedups.ChunkWriter
    assert speedups.Forward is _speedups.Forward
    assert speedups.Guarded is _speedups.Guarded
    assert speedups.EntryTail is _speedups.EntryTail
    assert speedups.Retained is _speedups.Retained
    assert speedups.TemplateText is _speedups.TemplateText
    assert speedups.DecoderState is _speedups.DecoderState
    assert speedups.LogStream is _speedups.LogStream
    assert speedups.CountedAppend is _speedups.CountedAppend
    assert speedups.PlainPass is _speedups.PlainPass


@given(_chunks)
@example(_EVENT)
@example(b"data: {}\n\n")
@example(b"data: }\n\n")
@example(b"data: {\n\n")
@example(b'data: {"usage":null}\n\n')
@example(b'data: {"usage":\n\n')
@example(b'data: {"usage": {"prompt_tokens": 1}}\n\n')
@example(b'data: {"x":"\\"error\\""}\n\n')
@example(b'data: {"x":1}\r\n\n')
@example(b'data: {"x":1}\n\n\n')
@example(b'data: {"a":1}\ndata: {"b":2}\n\n')
def test_plain_event_in_c_answers_as_its_python_definition(chunk: bytes) -> None:
    assert _speedups.plain_event(chunk) is speedups.plain_event_py(chunk)


@pytest.mark.parametrize("key", [b'"error":1', b'"usage":{"total_tokens":3}', b'"usage":null'])
@pytest.mark.parametrize("pad", range(33))
def test_plain_event_finds_a_key_at_any_offset(key: bytes, pad: int) -> None:
    """The compiled scan reads 16 bytes at a time, then the tail: a key is found wherever
    it falls, as the Python definition finds it."""
    chunk = b'data: {"' + b"p" * pad + b'":1,' + key + b"}\n\n"
    assert _speedups.plain_event(chunk) is speedups.plain_event_py(chunk)
    assert speedups.plain_event_py(chunk) is (key == b'"usage":null')


@given(_chunks)
@example(b'"usage":null')
@example(b'"usage"')
@example(b'"usage":nul')
@example(b'"usage": \t:null}')
@example(b'"usage":         null')  # the value starts past the 9 bytes looked at
@example(b'"usage":{},"usage":null')  # only the first key counts
def test_usage_present_in_c_answers_as_its_python_definition(chunk: bytes) -> None:
    assert _speedups.usage_present(chunk) is speedups.usage_present_py(chunk)


@given(st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"x" * 15, b"x" * 16])))
def test_http_chunk_in_c_frames_as_its_python_definition(data: bytes) -> None:
    assert _speedups.http_chunk(data) == speedups.http_chunk_py(data)


def test_http_chunk_in_c_writes_long_lengths_in_full_hex() -> None:
    data = b"a" * 0x12345
    framed = _speedups.http_chunk(data)
    assert framed == b"12345\r\n" + data + b"\r\n"


@given(st.binary(max_size=20), st.integers(min_value=-(2**63), max_value=2**63 - 1),
       st.binary(max_size=300))  # fmt: skip
@example(b"id: s1:", 1, b"data: x\n\n")
@example(b"", 0, b"")
def test_http_entry_in_c_frames_as_its_python_definition(
    prefix: bytes, seq: int, payload: bytes
) -> None:
    assert _speedups.http_entry(prefix, seq, payload) == speedups.http_entry_py(
        prefix, seq, payload
    )


_affixes = st.sampled_from([b"", b"d", b"data: {", b"}\n\n", b'"}}]}\n\n', b"ab"])


@given(st.one_of(_chunks, st.builds(bytes.__add__, _affixes, _chunks)), _affixes, _affixes)
@example(b"ab", b"ab", b"ab")  # long enough for each affix, not for both
@example(b"aba", b"ab", b"ba")
@example(b"abba", b"ab", b"ba")
def test_between_in_c_answers_as_its_python_definition(
    payload: bytes, prefix: bytes, suffix: bytes
) -> None:
    assert _speedups.between(payload, prefix, suffix) == speedups.between_py(
        payload, prefix, suffix
    )


@pytest.mark.parametrize("step", [_speedups.plain_event, _speedups.usage_present,
                                  _speedups.http_chunk])  # fmt: skip
def test_compiled_steps_refuse_anything_but_bytes_by_name(step: object) -> None:
    with pytest.raises(TypeError, match="takes bytes, not str"):
        step("data: {}\n\n")  # type: ignore[operator]


def test_compiled_entry_steps_refuse_wrong_arguments_in_words() -> None:
    with pytest.raises(TypeError, match="takes bytes, not str"):
        _speedups.http_entry("id: ", 1, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="3 arguments"):
        _speedups.http_entry(b"id: ", 1)  # type: ignore[call-arg]
    with pytest.raises(OverflowError):
        _speedups.http_entry(b"id: ", 2**64, b"x")
    with pytest.raises(TypeError, match="takes bytes, not str"):
        _speedups.between(b"x", "x", b"")  # type: ignore[arg-type]


_resp_args = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)


@given(st.lists(_resp_args, max_size=12).map(tuple))
@example(("EVALSHA", "f" * 40, 2, "sserelay:s1:log", "sserelay:s1:meta", 10_000, b"data: x"))
@example(())
@example(("SET", b"x" * 12_345, 10**18, -(2**63), 9_999, 10_000, 0, -1))
def test_resp_command_in_c_packs_as_its_python_definition_and_as_hiredis(
    command: tuple[bytes | str | int, ...],
) -> None:
    packed = _speedups.resp_command(command)
    assert packed == speedups.resp_command_py(command)
    if command:  # hiredis refuses an empty command
        # hiredis writes a bool as its class's name; the writer never sends one.
        plain = tuple(int(a) if isinstance(a, bool) else a for a in command)
        assert _speedups.resp_command(plain) == pack_command(plain)


def test_resp_command_refuses_other_arguments_in_words() -> None:
    for step in (_speedups.resp_command, speedups.resp_command_py):
        with pytest.raises(TypeError, match="takes bytes, str and int arguments, not float"):
            step(("SET", "k", 1.5))  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            step(("SET", "k", 2**63))
    with pytest.raises(TypeError, match="takes a tuple, not list"):
        _speedups.resp_command(["PING"])  # type: ignore[arg-type]


@given(_chunks)
@example(b"data: \n\n")
@example(b"data: x\n\n")
@example(b"data:x\n\n")
@example(b"data: x\r\n\n")
@example(b"data: x\n\n\n")
@example(b"data: \n")
def test_one_data_line_in_c_answers_as_its_python_definition(chunk: bytes) -> None:
    assert _speedups.one_data_line(chunk) == speedups.one_data_line_py(chunk)


@given(st.one_of(st.binary(max_size=30), st.text(max_size=10).map(str.encode)))
@example(b" ~")
@example(b"\x7f")
@example(b"\x1f")
@example(b'"')
@example(b"\\")
@example("é".encode())
@example(b"")
def test_plain_ascii_text_in_c_answers_as_its_python_definition(text: bytes) -> None:
    assert _speedups.plain_ascii_text(text) is speedups.plain_ascii_text_py(text)


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Flow:
    write_paused = False


class _Cycle:
    """The parts of uvicorn's RequestResponseCycle a ChunkWriter reads."""

    def __init__(self) -> None:
        self.transport, self.flow, self.disconnected = _Transport(), _Flow(), False


def _script(writer_type: type) -> tuple[list[object], list[bytes]]:
    """What a writer answers and writes through a stream's life: chunks, a pause, a
    disconnect."""
    cycle = _Cycle()
    writer = writer_type(cycle)
    answers: list[object] = [writer.cycle is cycle, writer.flow is cycle.flow]
    answers += [writer.write(b"data: a\n\n"), writer.write_chunk(b"5\r\nhello\r\n"), writer.sent]
    cycle.flow.write_paused = True
    answers += [writer.write(b"b"), writer.sent]
    cycle.flow.write_paused = False
    cycle.disconnected = True
    answers += [writer.write(b"x"), writer.write_chunk(b"y"), writer.sent]
    return answers, cycle.transport.written


@pytest.mark.parametrize("writer_type", [_speedups.ChunkWriter, speedups.ChunkWriter_py])
def test_chunk_writer_frames_counts_and_stops_at_a_pause_or_a_disconnect(
    writer_type: type,
) -> None:
    """Each write reaches the transport as one HTTP chunk and counts; the answer is False
    while the client is not reading, and once it is gone nothing more is written."""
    answers, written = _script(writer_type)
    assert answers == [True, True, True, True, 2, False, 3, False, False, 3]
    assert written == [b"9\r\ndata: a\n\n\r\n", b"5\r\nhello\r\n", b"1\r\nb\r\n"]


def test_chunk_writer_in_c_is_a_base_class_and_refuses_what_python_refuses() -> None:
    """A subclass with its own slots (web/event_stream.py's channel) keeps the C writes;
    text instead of bytes and a cycle without a transport fail with the same errors."""

    class Channel(_speedups.ChunkWriter):
        __slots__ = ()

        @property
        def gone(self) -> bool:
            return bool(self.cycle.disconnected)

    cycle = _Cycle()
    channel = Channel(cycle)
    assert channel.write(b"a") and not channel.gone and cycle.transport.written == [b"1\r\na\r\n"]
    for writer_type in (_speedups.ChunkWriter, speedups.ChunkWriter_py):
        with pytest.raises(TypeError, match="bytes"):
            writer_type(_Cycle()).write("text")
        with pytest.raises(AttributeError, match="transport"):
            writer_type(object())


_FORWARDS = [_speedups.Forward, speedups.Forward_py]
_GUARDS = [_speedups.Guarded, speedups.Guarded_py]


@pytest.mark.parametrize("forward_type", _FORWARDS)
def test_a_forward_hands_each_argument_to_its_target_and_counts_every_call(
    forward_type: Any,
) -> None:
    got: list[bytes] = []
    forward = forward_type(got.append)
    assert forward(b"a") is None
    forward.target = None  # nobody: the call is counted and dropped
    forward(b"b")
    forward.target = got.append
    forward(b"c")
    assert got == [b"a", b"c"]
    assert forward.count == 3
    assert forward_type().target is None


@pytest.mark.parametrize("forward_type", _FORWARDS)
def test_a_forward_lets_its_target_retarget_it_and_passes_its_errors_on(
    forward_type: Any,
) -> None:
    got: list[bytes] = []
    forward = forward_type()

    def once(data: bytes) -> None:
        forward.target = got.append  # the only reference to `once` goes mid-call
        got.append(b"once:" + data)

    forward.target = once
    forward(b"a")
    forward(b"b")
    assert got == [b"once:a", b"b"]

    def broken(data: bytes) -> None:
        raise ValueError(data)

    forward.target = broken
    with pytest.raises(ValueError, match="c"):
        forward(b"c")
    assert forward.count == 3


@pytest.mark.parametrize("guarded_type", _GUARDS)
def test_a_guarded_call_hands_the_named_errors_to_its_handler_and_raises_the_rest(
    guarded_type: Any,
) -> None:
    handled: list[BaseException] = []

    def parse(data: bytes) -> int:
        if data == b"bad":
            raise ValueError("malformed")
        if data == b"worse":
            raise KeyError("not ours")
        return len(data)

    guarded = guarded_type(parse, (ValueError, TypeError), handled.append)
    assert guarded(b"fine") is None  # the function's own result is not passed on
    assert handled == []
    guarded(b"bad")
    assert [str(e) for e in handled] == ["malformed"]
    assert handled[0].__traceback__ is not None
    with pytest.raises(KeyError, match="not ours"):
        guarded(b"worse")
    assert len(handled) == 1


@pytest.mark.parametrize("guarded_type", _GUARDS)
def test_a_guarded_calls_handler_failure_is_raised(guarded_type: Any) -> None:
    def parse(data: bytes) -> None:
        raise ValueError(data)

    def handler(exc: BaseException) -> None:
        raise RuntimeError("the handler failed") from exc

    with pytest.raises(RuntimeError, match="the handler failed"):
        guarded_type(parse, ValueError, handler)(b"x")


def test_the_compiled_callables_take_exactly_one_positional_argument() -> None:
    forward = _speedups.Forward(print)
    guarded = _speedups.Guarded(print, ValueError, print)
    for call in (forward, guarded):
        with pytest.raises(TypeError, match="exactly one positional argument"):
            call()
        with pytest.raises(TypeError, match="exactly one positional argument"):
            call(b"a", b"b")
        with pytest.raises(TypeError, match="exactly one positional argument"):
            call(data=b"a")
    assert forward.count == 0


class _Future:
    """What EntryTail calls on `stopped`: done() and set_result()."""

    def __init__(self) -> None:
        self.results: list[object] = []

    def done(self) -> bool:
        return bool(self.results)

    def set_result(self, result: object) -> None:
        self.results.append(result)


@pytest.mark.parametrize("base", [_speedups.EntryTail, speedups.EntryTail_py])
def test_an_entry_tail_writes_each_entry_as_one_chunk_and_hands_on_the_rest(base: Any) -> None:
    from sserelay.streams import End, Ending, Entry, Gap

    written: list[bytes] = []
    others: list[object] = []
    takes = [True, False]

    class Tail(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def on_other(self, item: object) -> None:
            others.append(item)

    def write_chunk(chunk: bytes) -> bool:
        written.append(chunk)
        return takes.pop(0)

    tail = Tail(b"id: s1:", write_chunk, Entry, 4)
    tail.on_item(Entry(5, b"data: x\n\n"))  # not subscribed yet: nothing
    assert (written, tail.pos) == ([], 4)
    tail.stopped = stopped = _Future()
    tail.on_item(Entry(5, b'data: {"a":1}\n\n'))
    assert written == [_speedups.http_chunk(b'id: s1:5\ndata: {"a":1}\n\n')]
    assert tail.pos == 5
    assert stopped.results == []
    tail.on_item(Gap(6, 7))
    assert others == [Gap(6, 7)]
    tail.on_item(Entry(8, b"data: y\n\n"))  # the client does not take it: stop
    assert tail.pos == 8
    assert stopped.results == [None]
    tail.on_item(Entry(9, b"data: z\n\n"))  # stopped: nothing more
    tail.on_item(End(Ending.DONE, None))
    assert len(written) == 2
    assert tail.pos == 8
    assert others == [Gap(6, 7)]
    assert tail.prefix == b"id: s1:"


def _learning_on(base: Any, prefix: bytes, suffix: bytes) -> Any:
    class Learns(base):  # type: ignore[misc,valid-type]
        """Learns `prefix` / `suffix` from its first payload, keeping that one whole."""

        __slots__ = ()

        def _append_learning(self, payload: bytes) -> None:
            self._prefix, self._suffix = prefix, suffix
            self._cut, self._learned = len(prefix) + len(suffix), True
            self._items.append((payload,))

    return Learns


@given(st.lists(st.sampled_from([b'{"a":1}', b'{"a":}', b'{"a":', b"}", b"", b'{"b":2}',
                                 b'{"a":"x}y"}', b'{"a":1}}']), max_size=8),
       st.sampled_from([(b'{"a":', b"}"), (b"", b"")]))
def test_retained_appends_the_middle_once_learned_as_its_python_definition(
    payloads: list[bytes], affixes: tuple[bytes, bytes]
) -> None:
    """Once learned, the C append keeps what the Python one keeps: the middles, whole
    payloads as 1-tuples, and with nothing shared (empty affixes) each payload itself."""
    from collections import deque

    kept = []
    for base in (_speedups.Retained, speedups.Retained_py):
        retained = _learning_on(base, *affixes)(deque(maxlen=5))
        for payload in payloads:
            retained.append(payload)
        kept.append(list(retained._items))
    assert kept[0] == kept[1]
    assert len(kept[0]) == min(len(payloads), 5)


@given(
    st.sampled_from([None, b'{"t":"', b""]),
    st.sampled_from([b'"}', b"", b"}"]),
    st.lists(st.sampled_from([b'{"t":"', b'"}', b"hi", b" ", b'"', b"\\", b"\x7f", b"\n",
                              "é".encode(), b"}", b"~"]), max_size=6).map(b"".join),
)
def test_template_text_reads_the_plain_text_as_its_python_definition(
    prefix: bytes | None, suffix: bytes, data: bytes
) -> None:
    answers = []
    for base in (_speedups.TemplateText, speedups.TemplateText_py):
        reader = base()
        reader._prefix_bytes, reader._suffix_bytes = prefix, suffix
        answers.append((reader.plain_text(data), reader._hits))
    assert answers[0] == answers[1]
    assert (answers[0][0] is None) == (answers[0][1] == 0)


_DECODER_FIELDS = speedups.DecoderState_py.__slots__
_SSE_READS = [
    b"data: hi\n\n", b"data: a\r\n\r\n", b"data: x", b"\n\n", b"id: 7\n", b"event: e\n",
    b"retry: 10\n", b"\xef\xbb\xbf", b"data: {\"a\":1}\n\n", b": c\n", b"data: 1\ndata: 2\n\n",
    b"\r", b"data:" + b"z" * 40 + b"\n\n",
]  # fmt: skip


@given(st.lists(st.sampled_from(_SSE_READS), max_size=8), st.sampled_from(_SSE_READS))
def test_take_data_line_answers_as_its_python_definition_in_every_decoder_state(
    reads: list[bytes], chunk: bytes
) -> None:
    from sserelay.codec import SSEDecodeError, SSEDecoder

    decoder = SSEDecoder(max_line_bytes=32)
    for read in reads:
        try:
            decoder.feed(read)
        except SSEDecodeError:
            break
    spec = speedups.DecoderState_py()
    for name in _DECODER_FIELDS:
        setattr(spec, name, getattr(decoder, name))
    assert type(decoder).__mro__[1] is _speedups.DecoderState
    assert decoder.take_data_line(chunk) == spec.take_data_line(chunk)
    assert decoder.last_event_id == spec.last_event_id


def test_a_decoder_state_that_was_never_initialised_says_so() -> None:
    with pytest.raises(RuntimeError, match="not initialised"):
        _speedups.DecoderState().take_data_line(b"data: x\n\n")


@pytest.mark.parametrize("base", [_speedups.LogStream, speedups.LogStream_py])
def test_a_log_stream_appends_counts_wakes_and_tells_each_listener(base: Any) -> None:
    from sserelay.streams import Entry

    woken: list[list[object]] = []

    class Stream(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def _refuse(self) -> int:
            raise LookupError("ended")

    kept: list[bytes] = []
    stream = Stream(kept, Entry, lambda waiters: woken.append(list(waiters)))
    assert stream.append(b"a") == 1  # nobody waits, nobody listens
    got: list[tuple[str, object]] = []
    stream.waiters.append("parked")
    stream.listeners.append(lambda entry: got.append(("one", entry)))
    assert stream.append(b"b") == 2
    assert woken == [["parked"]]
    assert got == [("one", Entry(2, b"b"))]
    assert type(got[0][1]) is Entry

    def second(entry: object) -> None:
        got.append(("two", entry))
        stream.listeners.remove(second)  # unsubscribes mid-append: the others still hear

    stream.waiters.clear()
    stream.listeners.insert(0, second)
    assert stream.append(b"c") == 3
    assert got[1:] == [("two", Entry(3, b"c")), ("one", Entry(3, b"c"))]
    assert (kept, stream.last_seq) == ([b"a", b"b", b"c"], 3)
    stream.ending = "done"
    with pytest.raises(LookupError, match="ended"):
        stream.append(b"d")
    assert (kept, stream.last_seq, len(woken)) == ([b"a", b"b", b"c"], 3, 1)


@pytest.mark.parametrize(("base", "tally_type"), [(_speedups.LogStream, _speedups.Tally),
                                                   (speedups.LogStream_py, speedups.Tally_py)])
def test_a_log_stream_with_a_pending_list_queues_counts_tells_once_and_refuses_at_the_tally(
    base: Any, tally_type: Any
) -> None:
    """The Redis log's producer copy: each payload is also queued in `pending` and counted
    in the tally its streams share; `on_pending` hears when a stream's queue starts (not on
    every payload); at the tally's limit every stream sharing it refuses, keeping nothing."""
    from sserelay.streams import Entry

    class Stream(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def _refuse(self) -> int:
            raise LookupError("refused")

    tally = tally_type(3)
    told: list[object] = []
    streams = [Stream([], Entry, lambda waiters: None) for _ in range(2)]
    for stream in streams:
        stream.pending, stream.tally, stream.on_pending = [], tally, told.append
    first, second = streams
    heard: list[object] = []
    first.listeners.append(heard.append)
    assert [first.append(b"a"), first.append(b"b")] == [1, 2]
    assert (first.pending, tally.count, told) == ([b"a", b"b"], 2, [first])
    assert heard == [Entry(1, b"a"), Entry(2, b"b")]
    first.pending, tally.count = [], 0  # the writer takes them
    assert [first.append(b"c"), second.append(b"x"), first.append(b"d")] == [3, 1, 4]
    assert told == [first, first, second] and tally.count == 3
    for stream in streams:
        with pytest.raises(LookupError, match="refused"):
            stream.append(b"too many")
    assert (first.entries, first.pending, first.last_seq) == ([b"a", b"b", b"c", b"d"],
                                                              [b"c", b"d"], 4)  # fmt: skip
    assert (second.pending, tally.count, heard[-1]) == ([b"x"], 3, Entry(4, b"d"))
    tally.count = 2
    assert second.append(b"y") == 2 and tally.count == 3


@pytest.mark.parametrize(("base", "tally_type"), [(_speedups.LogStream, _speedups.Tally),
                                                   (speedups.LogStream_py, speedups.Tally_py)])
def test_a_log_stream_whose_on_pending_raises_keeps_the_payload_and_says_so(
    base: Any, tally_type: Any
) -> None:
    """An error from `on_pending` reaches the producer, the payload kept and queued: its
    seq counted, as an append that raised after keeping it always was."""
    from sserelay.streams import Entry

    def broken(stream: object) -> None:
        raise RuntimeError("no writer")

    stream = base([], Entry, lambda waiters: None)
    stream.pending, stream.tally, stream.on_pending = [], tally_type(10), broken
    with pytest.raises(RuntimeError, match="no writer"):
        stream.append(b"a")
    assert (stream.entries, stream.pending, stream.last_seq, stream.tally.count) == (
        [b"a"], [b"a"], 1, 1)  # fmt: skip


def test_a_compiled_log_stream_says_what_its_pending_and_tally_must_be() -> None:
    """The members are writable: a wrong kind of value is a TypeError in words, not a
    crash, and nothing is kept."""
    from sserelay.streams import Entry

    stream = _speedups.LogStream([], Entry, lambda waiters: None)
    stream.tally = object()
    with pytest.raises(TypeError, match="tally is a Tally or None"):
        stream.append(b"a")
    stream.tally, stream.pending = None, ()
    with pytest.raises(TypeError, match="pending is a list or None"):
        stream.append(b"a")
    assert (stream.entries, stream.last_seq) == ([], 0)
    stream.pending = None
    assert stream.append(b"b") == 1


# A garbage collection while `append` makes the entry runs a finalizer that unsubscribes
# the only listener (as a collected follower's `finally` would); run in a child process,
# since the bug this pins was a segfault (a stale listener count, then a freed listener).
_COLLECTED_MID_APPEND = """
import gc, sys
from sserelay import _speedups, speedups
from sserelay.streams import Entry
base = _speedups.LogStream if sys.argv[1] == "c" else speedups.LogStream_py
class Stream(base):
    __slots__ = ()
stream = Stream([], Entry, lambda waiters: waiters.clear())
heard = []
stream.listeners.append(heard.append)
class Unsubscribes:
    def __init__(self):
        self.cycle = self
    def __del__(self):
        stream.listeners.clear()
gc.collect()
gc.disable()
gc.set_threshold(1)
Unsubscribes()
gc.enable()
print(stream.append(b"x"), heard, stream.last_seq)
"""


@pytest.mark.parametrize("which", ["c", "python"])
def test_a_log_stream_told_to_forget_its_listener_by_a_collection_mid_append_does_not_call_it(
    which: str,
) -> None:
    done = subprocess.run([sys.executable, "-c", _COLLECTED_MID_APPEND, which],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "[]", "1"]


@pytest.mark.parametrize("counted_type", [_speedups.CountedAppend, speedups.CountedAppend_py])
def test_a_counted_append_counts_samples_the_clock_and_stops_at_a_refusal(
    counted_type: Any,
) -> None:
    appended: list[bytes] = []
    ticks = iter(range(100))
    stamps: list[int] = []

    def append(payload: bytes) -> int:
        if payload == b"full":
            raise LookupError("the log takes no more")
        if payload == b"bug":
            raise ValueError("not a refusal")
        appended.append(payload)
        return len(appended)

    emit = counted_type(append, LookupError, lambda: next(ticks), stamps)
    assert all(emit(b"x" * n) for n in range(1, 18))
    assert (emit.chunks, emit.size, emit.refused) == (17, sum(range(1, 18)), None)
    assert stamps == [0, 1, 2, 3, 4]  # chunks 1, 8, 9, 16, 17
    with pytest.raises(ValueError, match="not a refusal"):
        emit(b"bug")
    assert emit(b"full") is False
    assert isinstance(emit.refused, LookupError)
    assert emit(b"more") is False  # refused once: nothing more is appended
    assert (len(appended), emit.chunks) == (17, 17)


@pytest.mark.parametrize("counted_type", [_speedups.CountedAppend, speedups.CountedAppend_py])
def test_a_counted_write_answers_what_the_write_answered_and_counts_it_either_way(
    counted_type: Any,
) -> None:
    answers = [True, False, True]
    write = counted_type(lambda data: answers.pop(0), (), lambda: 0.5, [])
    assert [write(b"ab"), write(b"c"), write(b"")] == [True, False, True]
    assert (write.chunks, write.size, write.refused) == (3, 3, None)


_RELAYED_READS = [
    _EVENT, b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n', b"data: [DONE]\n\n",
    _EVENT[:10], _EVENT[10:], b'data: {"error":{"message":"x"}}\n\n', b": ping\n\n",
    _EVENT.replace(b"\n", b"\r\n"),
]  # fmt: skip


@given(st.lists(st.sampled_from(_RELAYED_READS), max_size=10), st.lists(st.booleans()))
def test_a_plain_pass_relays_as_its_python_definition(
    reads: list[bytes], takes: list[bool]
) -> None:
    from sserelay.gateway.openai_passthrough import OpenAIStreamFilter

    runs = []
    for plain_pass in (_speedups.PlainPass, speedups.PlainPass_py):
        stream = OpenAIStreamFilter(strip_usage=False, redact=str)
        answers = list(takes)
        sent: list[object] = []

        def send(data: bytes, sent: list[object] = sent, answers: list[bool] = answers) -> bool:
            sent.append(data)
            return answers.pop(0) if answers else True

        def other(chunk: bytes, sent: list[object] = sent, stream: Any = stream) -> None:
            sent.append(("fed", stream.feed(chunk)))

        consume = plain_pass(stream, send, lambda sent=sent: sent.append("blocked"), other)
        for read in reads:
            consume(read)
        runs.append((sent, stream.events, stream.done))
    assert runs[0] == runs[1]


def test_the_compiled_entry_tail_refuses_an_entry_whose_payload_is_not_bytes() -> None:
    from sserelay.streams import Entry

    tail = _speedups.EntryTail(b"id: s:", lambda chunk: True, Entry, 0)
    tail.stopped = _Future()
    with pytest.raises(TypeError, match="takes bytes"):
        tail.on_item(Entry(1, "data: text\n\n"))
    assert tail.pos == 0


def test_the_compiled_entry_tail_refuses_an_entry_type_that_is_not_a_tuple_in_words() -> None:
    with pytest.raises(TypeError, match="tuple subclass"):
        _speedups.EntryTail(b"id: s:", lambda chunk: True, int, 0)
