"""RetainedPayloads: what a stream log keeps of each payload, and that it reads back exactly."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sserelay.streams.retained import RetainedPayloads


def _chunk(content: str, *, role: bool = False) -> bytes:
    delta = {"role": "assistant", "content": content} if role else {"content": content}
    body = {
        "id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": 1764000000,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


CHAT = [_chunk("", role=True)] + [_chunk(t) for t in ("Hel", "Help", "ful", " \"quoted\"", "")]
CHAT += [b"data: [DONE]\n\n"]


def test_every_payload_reads_back_exactly_as_appended() -> None:
    """Indexing, negative indexing, slices and iteration give the appended bytes."""
    retained = RetainedPayloads(100)
    for payload in CHAT:
        retained.append(payload)
    assert list(retained) == CHAT
    assert retained[-1] == CHAT[-1]
    assert list(retained[2:4]) == CHAT[2:4]
    assert len(retained) == len(CHAT)


def test_chat_chunks_are_kept_without_the_bytes_they_share() -> None:
    """A chat stream's chunks share ~200 bytes; each is kept as its few bytes of content."""
    retained = RetainedPayloads(1000)
    payloads = [CHAT[0]] + [_chunk(f"token {i}") for i in range(200)]
    for payload in payloads:
        retained.append(payload)
    whole = sum(map(len, payloads))
    assert retained.nbytes < whole / 5
    assert list(retained) == payloads


def test_payloads_without_shared_bytes_are_kept_whole() -> None:
    """Short, unrelated payloads (the article's text events) are kept as they are."""
    retained = RetainedPayloads(10)
    payloads = [b"data: %d\n\n" % i for i in range(20)]
    for payload in payloads:
        retained.append(payload)
    assert list(retained) == payloads[-10:]
    assert retained.nbytes == sum(map(len, payloads[-10:]))


def test_the_oldest_payloads_fall_off_past_maxlen() -> None:
    """Like a deque(maxlen=N): the last N stay, in order."""
    retained = RetainedPayloads(3)
    for payload in CHAT:
        retained.append(payload)
    assert list(retained) == CHAT[-3:]


@given(st.lists(st.binary(max_size=80), max_size=40), st.binary(max_size=60),
       st.binary(max_size=60))
def test_any_payloads_read_back_exactly(payloads: list[bytes], head: bytes, tail: bytes) -> None:
    """Whatever the payloads share, and wherever the shared parts overlap, reading gives
    back each payload byte for byte."""
    retained = RetainedPayloads(1000)
    framed = [head + p + tail for p in payloads] + payloads
    for payload in framed:
        retained.append(payload)
    assert list(retained) == framed


@given(st.lists(st.binary(max_size=12), min_size=5, max_size=40),
       st.binary(min_size=30, max_size=60), st.binary(min_size=10, max_size=40))
def test_any_payloads_between_json_like_affixes_read_back_exactly(
    middles: list[bytes], head: bytes, tail: bytes
) -> None:
    """Affixes that are learned (long, with JSON boundaries), middles that may look like
    them, and payloads that break the pattern: all read back byte for byte."""
    retained = RetainedPayloads(1000)
    framed = [b'{"k":"' + head + b'":"' + m + b'"},' + tail for m in middles]
    framed.insert(4, head)  # one without the affixes, after those they are learned from
    for payload in framed:
        retained.append(payload)
    assert list(retained) == framed
    assert retained._cut > 0  # the affixes were learned: this test covers the packed path
