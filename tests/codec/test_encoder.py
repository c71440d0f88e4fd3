"""Encoder input-to-bytes tables: the shared injection vectors, then the field rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sserelay.codec import (
    DONE,
    SSEDecoder,
    encode_comment,
    encode_data_bytes,
    encode_event,
)

Case = dict[str, Any]


def decode_all(raw: bytes) -> tuple[list[tuple[str, str, str]], SSEDecoder]:
    decoder = SSEDecoder()
    events = [(e.event, e.data, e.id) for e in decoder.feed(raw)]
    decoder.close()
    return events, decoder


# --- encoder_cases from the shared vectors ----------------------------------------------------


def test_vector_token_encodes_to_the_recorded_line_split_bytes(line_split_case: Case) -> None:
    """An untrusted token is written as one data: line per CRLF/CR/LF-separated piece."""
    expected = str(line_split_case["line_split_encoding"]).encode("utf-8")
    assert encode_event(line_split_case["token"]) == expected


def test_vector_token_decodes_back_as_exactly_one_event(line_split_case: Case) -> None:
    """The encoded token is one event whose data is the token with CR and CRLF as LF."""
    events, decoder = decode_all(encode_event(line_split_case["token"]))
    assert events == [("message", line_split_case["line_split_decoded_data"], "")]
    assert (decoder.retry, decoder.last_event_id) == (None, "")


def test_vector_naive_framing_is_forgeable_as_recorded(encoder_case: Case) -> None:
    """f"data: {token}" framing decodes into the forged events the vectors record (why we split)."""
    events, decoder = decode_all(str(encoder_case["naive_encoding"]).encode("utf-8"))
    assert [dict(zip(("event", "data", "id"), e, strict=True)) for e in events] == encoder_case[
        "naive_decoded"
    ]
    assert decoder.retry == encoder_case.get("naive_retry")
    assert decoder.last_event_id == encoder_case.get("naive_last_event_id", decoder.last_event_id)


def test_vector_json_payload_via_fast_path_is_lossless(json_case: Case) -> None:
    """JSON-encoding the token, then encode_data_bytes, gives the recorded bytes and exact text."""
    payload = json.dumps({"t": json_case["token"]}).encode("ascii")
    encoded = encode_data_bytes(payload)
    assert encoded == str(json_case["json_encoding"]).encode("utf-8")
    events, _ = decode_all(encoded)
    assert len(events) == 1
    assert json.loads(events[0][1])["t"] == json_case["json_decoded_token"]


def test_vector_token_as_id_or_event_is_rejected_or_kept_exactly(encoder_case: Case) -> None:
    """Tokens with CR, LF or NUL cannot become an id or event type; the others arrive intact."""
    token: str = encoder_case["token"]
    if any(c in token for c in "\r\n\x00"):
        with pytest.raises(ValueError, match="must not contain"):
            encode_event("x", id=token)
        with pytest.raises(ValueError, match="must not contain"):
            encode_event("x", event=token)
    else:
        events, decoder = decode_all(encode_event("x", event=token, id=token))
        assert events == [(token or "message", "x", token)]
        assert decoder.last_event_id == token


# --- encode_event -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fields", "expected"),
    [
        ("hi", {}, b"data: hi\n\n"),
        ("", {}, b"data: \n\n"),
        ("a\nb", {}, b"data: a\ndata: b\n\n"),
        ("a\r\nb\rc\n", {}, b"data: a\ndata: b\ndata: c\ndata: \n\n"),
        ("\n", {}, b"data: \ndata: \n\n"),
        (" lead", {}, b"data:  lead\n\n"),
        ("\U0001f600 <b>\u00e9</b>", {}, "data: \U0001f600 <b>\u00e9</b>\n\n".encode()),
        ("a\u2028b\x0bc\x0cd\x85e", {}, "data: a\u2028b\x0bc\x0cd\x85e\n\n".encode()),
        (
            "x",
            {"event": "tick", "id": "7", "retry": 3000},
            b"event: tick\nid: 7\nretry: 3000\ndata: x\n\n",
        ),
        ("x", {"retry": 0}, b"retry: 0\ndata: x\n\n"),
        ("x", {"event": ""}, b"event: \ndata: x\n\n"),
        ("x", {"id": ""}, b"id: \ndata: x\n\n"),
        ("x", {"id": " 7"}, b"id:  7\ndata: x\n\n"),
    ],
)
def test_encode_event_table(data: str, fields: dict[str, Any], expected: bytes) -> None:
    """encode_event writes event, id, retry, then one "data: " line per line of text."""
    assert encode_event(data, **fields) == expected


@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "a\x00b", "\n"])
def test_encode_event_rejects_line_breaks_and_nul_in_single_line_fields(
    field: str, bad: str
) -> None:
    """event and id values with CR, LF or NUL raise ValueError instead of forging fields."""
    fields: dict[str, Any] = {field: bad}
    with pytest.raises(ValueError, match=f"SSE {field} must not contain"):
        encode_event("x", **fields)


def test_encode_event_rejects_negative_retry() -> None:
    """A negative reconnection time raises ValueError."""
    with pytest.raises(ValueError, match="non-negative"):
        encode_event("x", retry=-1)


@pytest.mark.parametrize("bad", [True, 1.5, "100"])
def test_encode_event_rejects_non_int_retry(bad: object) -> None:
    """retry must be a real int: bools, floats and strings raise TypeError."""
    with pytest.raises(TypeError, match="must be an int"):
        encode_event("x", retry=bad)  # type: ignore[arg-type]


def test_encode_event_output_sets_decoder_retry() -> None:
    """A retry written by the encoder is the decoder's reconnection time."""
    _, decoder = decode_all(encode_event("x", retry=2500))
    assert decoder.retry == 2500


# --- encode_comment, encode_data_bytes, DONE --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b":\n\n"),
        ("ping", b": ping\n\n"),
        (" \u2665", ":  \u2665\n\n".encode()),
        ("a\nb", b": a\n: b\n\n"),
        ("a\r\n\rb", b": a\n:\n: b\n\n"),
    ],
)
def test_encode_comment_table(text: str, expected: bytes) -> None:
    """Each line of a comment gets its own ":" and the block ends with a blank line."""
    assert encode_comment(text) == expected


def test_encode_comment_default_is_a_bare_heartbeat() -> None:
    """encode_comment() with no text is the smallest heartbeat block."""
    assert encode_comment() == b":\n\n"


def test_comment_text_cannot_escape_the_comment() -> None:
    """Line breaks in comment text cannot smuggle in events, ids or retry values."""
    events, decoder = decode_all(encode_comment("x\n\ndata: forged\nid: 9\rretry: 1\r\n\r\n"))
    assert events == []
    assert (decoder.retry, decoder.last_event_id) == (None, "")


def test_encode_data_bytes_wraps_one_line_payload() -> None:
    """The fast path writes "data: " + payload + a blank line, unchanged."""
    assert encode_data_bytes(b'{"t":"hi"}') == b'data: {"t":"hi"}\n\n'
    assert decode_all(encode_data_bytes(b'{"t":"hi"}'))[0] == [("message", '{"t":"hi"}', "")]


def test_done_sentinel_is_a_plain_data_event() -> None:
    """DONE is the OpenAI-style "[DONE]" data event."""
    assert DONE == b"data: [DONE]\n\n"
    assert decode_all(DONE)[0] == [("message", "[DONE]", "")]
