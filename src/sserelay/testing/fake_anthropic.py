"""The fake upstream's Anthropic mode: `POST /v1/messages` in Anthropic's wire format.

Served by the same process as the OpenAI-compatible fake (`fake_upstream.py`), with the same
scenarios (prompt prefix `[[scenario: ...]]` or the `X-Fake-Scenario` header), the same reply
text (`echo:...` or `You said: ...`, in the same pieces) and the same request records. What
differs is Anthropic's: the key in `x-api-key`, the named events of "Streaming Messages"
(`message_start`, `content_block_start`, `ping`, `content_block_delta`s, `content_block_stop`,
`message_delta` with the usage, `message_stop`), `stop_reason` instead of `finish_reason`,
and error bodies `{"type": "error", "error": {"type", "message"}}`. A keep-alive is an
`event: ping`; `error_after` sends Anthropic's `overloaded_error` event.

This module shares the fake's internals (connection, pacing, scenario plan): it is part of
the same test peer, split off so that neither file holds two wire formats.
"""

from __future__ import annotations

import http
import time
from collections.abc import Sequence
from typing import Any

import orjson

from sserelay.testing import fake_upstream as fake
from sserelay.testing.fake_upstream import RequestRecord

__all__ = ["serve_messages"]

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> bytes:
    kind = _ERROR_TYPES.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


async def _send_error(conn: fake._Connection, status: int, message: str,
                      extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await conn.start(status, b"application/json", extra)
    await conn.end(error_body(status, message))


async def serve_messages(record: RequestRecord, conn: fake._Connection, require_key: str | None
                         ) -> None:
    """Answer one request to /v1/messages."""
    if require_key is not None and record.headers.get("x-api-key") != require_key:
        await _send_error(conn, 401, "invalid x-api-key")
        return
    if record.method != "POST":
        await _send_error(conn, 405, f"Method {record.method} not allowed.")
        return
    try:
        plan = fake.plan_reply(record.body, True, record.headers.get("x-fake-scenario"))
    except fake.BadRequest as exc:
        await _send_error(conn, 400, str(exc))
        return
    if not isinstance(record.body.get("max_tokens"), int):
        await _send_error(conn, 400, "max_tokens: Field required")
        return
    scenario = plan.scenario
    if scenario.first_delay > 0:
        await conn.sleep(scenario.first_delay)
    if scenario.status is not None:
        phrase = "Overloaded" if scenario.status == 529 else http.HTTPStatus(scenario.status).phrase
        extra = [(b"retry-after", b"1")] if scenario.status == 429 else []
        await _send_error(conn, scenario.status, f"Scripted error: {phrase}", extra)
        return
    message_id = f"msg_fake{record.id}"
    stop_reason = "max_tokens" if plan.finish_reason == "length" else "end_turn"
    if not plan.stream:
        text = "".join(plan.content(i) for i in range(len(plan.tokens)))
        await conn.start(200, (scenario.content_type or "application/json").encode("latin-1"))
        await conn.end(orjson.dumps({
            "id": message_id, "type": "message", "role": "assistant", "model": plan.model,
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": len(plan.tokens)},
        }))
        return
    await _stream(plan, conn, message_id, stop_reason)


async def _stream(
    plan: fake.ReplyPlan, conn: fake._Connection, message_id: str, stop_reason: str
) -> None:
    scenario = plan.scenario
    eol = b"\r\n" if scenario.crlf else b"\n"

    def event(name: str, data: dict[str, Any] | bytes) -> bytes:
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        return b"event: " + name.encode() + eol + b"data: " + payload + eol + eol

    content_type = scenario.content_type or "text/event-stream; charset=utf-8"
    await conn.start(200, content_type.encode("latin-1"), [(b"cache-control", b"no-cache")])
    conn.split = scenario.split
    await conn.write(event("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": plan.model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": 1}}}))
    await conn.write(event("content_block_start", {
        "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
    await conn.write(event("ping", {"type": "ping"}))
    pacer = fake._Pacer(scenario.rate)
    count = len(plan.tokens)
    for index in range(count + 1):
        def due(after: int | None, index: int = index) -> bool:
            return after is not None and (after == index or (index == count and after > count))

        if due(scenario.malformed_after):
            await conn.write(event("content_block_delta", b"{not json"))
        if due(scenario.die_after):
            raise fake._DropConnection
        if due(scenario.stall_after):
            await conn.gone.wait()
            return
        if due(scenario.error_after):
            await conn.write(event("error", {"type": "error", "error": {
                "type": "overloaded_error", "message": "Overloaded"}}))
            await conn.end()
            return
        if index == count:
            break
        if scenario.keepalive:
            await conn.write(event("ping", {"type": "ping"}))
        await conn.write(event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": plan.content(index)}}))
        conn.record.content_chunks += 1
        await pacer.next()
    await conn.write(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    await conn.write(event("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": count}}))
    await conn.write(event("message_stop", {"type": "message_stop"}))
    await conn.end()
    conn.record.finished_at = time.time()
