"""Sans-IO encoder for ``text/event-stream``: values in, bytes out.

Everything that is not under sserelay's control (model text, upstream JSON, error text) must come
out as exactly one event. Writing ``f"data: {text}\\n\\n"`` lets a token such as
``"\\n\\ndata: forged"`` end the event early and start another (SSE injection). So:

* :func:`encode_event` splits ``data`` on CRLF, CR and LF and writes every piece as its own
  ``data:`` line; the receiver joins them with LF (WHATWG HTML, "Server-sent events",
  "Interpreting an event stream"). LF, leading spaces, emoji and markup arrive exactly, but
  **CR and CRLF arrive as LF**: SSE has no way to carry a raw CR, because every CR ends a line.
  Where CR must survive (model output relayed to the browser), endpoints JSON-encode the payload
  instead, which escapes CR and LF, and send it with :func:`encode_data_bytes`.
* ``event`` and ``id`` are single-line by nature, so CR, LF or NUL in them raise ``ValueError``
  rather than being silently altered (WHATWG: an ID containing NUL is ignored by the client).
* Every field is written as ``name: value``: the receiver strips exactly one space after the
  colon, so a value's own leading spaces survive.

Text must be encodable as UTF-8 (no lone surrogates); ``str.encode`` raises otherwise.
"""

from __future__ import annotations

__all__ = ["DONE", "encode_comment", "encode_data_bytes", "encode_event"]

DONE: bytes = b"data: [DONE]\n\n"
"""The OpenAI-style end-of-stream sentinel: plain data at the SSE layer, a signal to the app."""


def _as_lines(text: str) -> list[str]:
    # Exactly the SSE line endings; str.splitlines would also split on U+2028, VT, FF, ...
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _check_single_line(field: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(
            f"SSE {field} must not contain a carriage return, line feed or NUL: {value!r}"
        )


def encode_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,  # shadows the builtin on purpose: it is the SSE field name
    retry: int | None = None,
) -> bytes:
    """Encode one event; fields in the order event, id, retry, data.

    ``data`` may hold any text: each CRLF, CR or LF starts a new ``data:`` line, so the client
    receives the text with CR and CRLF turned into LF, and nothing in it can add a field or an
    event. ``event=""`` means the default type ``message``; ``id=""`` clears the client's last
    event ID. ``retry`` is the reconnection delay in milliseconds.
    """
    head = ""
    if event is not None:
        _check_single_line("event", event)
        head += f"event: {event}\n"
    if id is not None:
        _check_single_line("id", id)
        head += f"id: {id}\n"
    if retry is not None:
        # bool is an int, but retry=True is a bug, not a delay of 1 ms.
        if isinstance(retry, bool) or not isinstance(retry, int):
            raise TypeError(f"SSE retry must be an int (milliseconds), not {type(retry).__name__}")
        if retry < 0:
            raise ValueError(f"SSE retry must be a non-negative number of milliseconds: {retry}")
        head += f"retry: {retry}\n"
    if "\n" in data or "\r" in data:
        data = "\ndata: ".join(_as_lines(data))
    return f"{head}data: {data}\n\n".encode()


def encode_comment(text: str = "") -> bytes:
    """Encode a comment block, e.g. a heartbeat; clients ignore it.

    Every line of ``text`` gets its own ``:`` so a line break cannot end the comment and turn the
    rest into fields. The trailing blank line makes it a complete block of its own.
    """
    lines = "".join(f": {line}\n" if line else ":\n" for line in _as_lines(text))
    return f"{lines}\n".encode()


def encode_data_bytes(payload: bytes) -> bytes:
    """Fast path: wrap ``payload`` as one ``data:`` line of one event.

    Precondition, not checked (this is the per-token hot path): ``payload`` is UTF-8 with no CR
    and no LF, as compact JSON is (JSON escapes both inside strings). A payload that breaks it
    can forge fields and events; use :func:`encode_event` for anything else.
    """
    return b"data: " + payload + b"\n\n"
