"""The fake upstream's Responses API mode: `POST /v1/responses`, OpenAI's wire format.

Same scenarios, reply text and records as the chat mode (`fake_upstream.py`); the prompt is
`input` (text, or the last user item's text). The stream is OpenAI's ("Streaming API
responses"): named events whose JSON repeats the name as `type` and carries a
`sequence_number`, no `[DONE]`, and `response.completed` (or `response.incomplete` when
`max_output_tokens` cut the answer) with the usage. `error_after` sends an `error` event.
Ids are `resp_fake<N>` and `msg_fake<N>` for request N.

Shares the fake's internals, as fake_anthropic.py does.
"""

from __future__ import annotations

import http
import time
from typing import Any

import orjson

from sserelay.testing import fake_upstream as fake
from sserelay.testing.fake_upstream import RequestRecord

__all__ = ["serve_responses"]


def _input_text(given: object) -> str:
    if isinstance(given, str):
        return given
    text = ""
    for item in given if isinstance(given, list) else []:
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            text = content if isinstance(content, str) else "".join(
                p.get("text", "") for p in content or [] if isinstance(p, dict))
    return text


def _response(body: dict[str, Any], plan: fake.ReplyPlan, response_id: str, status: str,
              output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()),
        "status": status, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get(
            "max_output_tokens"), "model": plan.model, "output": output,
        "parallel_tool_calls": True, "previous_response_id": None, "service_tier": "default",
        "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": usage, "metadata": {},
    }


def _usage(plan: fake.ReplyPlan, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": plan.prompt_tokens + output_tokens}


def _message(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content if status == "completed" else []}


async def serve_responses(record: RequestRecord, conn: fake._Connection) -> None:
    """Answer one (already authenticated) request to /v1/responses."""
    body = record.body if isinstance(record.body, dict) else {}
    shim = {"model": body.get("model"), "prompt": _input_text(body.get("input")),
            "max_tokens": body.get("max_output_tokens")}
    try:
        plan = fake.plan_reply(shim, False, record.headers.get("x-fake-scenario"))
    except fake.BadRequest as exc:
        await fake._send_error(conn, 400, str(exc))
        return
    plan.stream = body.get("stream") is True
    scenario = plan.scenario
    if scenario.first_delay > 0:
        await conn.sleep(scenario.first_delay)
    if scenario.status is not None:
        extra = [(b"retry-after", b"1")] if scenario.status == 429 else []
        phrase = http.HTTPStatus(scenario.status).phrase
        await fake._send_error(conn, scenario.status, f"Scripted error: {phrase}", extra)
        return
    response_id, item_id = f"resp_fake{record.id}", f"msg_fake{record.id}"
    status = "incomplete" if plan.finish_reason == "length" else "completed"
    if not plan.stream:
        text = "".join(plan.content(i) for i in range(len(plan.tokens)))
        output = [_message(item_id, text, "completed")]
        await conn.start(200, (scenario.content_type or "application/json").encode("latin-1"))
        await conn.end(orjson.dumps(_response(body, plan, response_id, status, output,
                                              _usage(plan, len(plan.tokens)))))
        return
    await _stream(body, plan, conn, response_id, item_id, status)


async def _stream(body: dict[str, Any], plan: fake.ReplyPlan, conn: fake._Connection,
                  response_id: str, item_id: str, status: str) -> None:
    scenario = plan.scenario
    eol = b"\r\n" if scenario.crlf else b"\n"
    sequence = 0

    def event(name: str, data: dict[str, Any] | None = None, raw: bytes | None = None) -> bytes:
        nonlocal sequence
        payload = raw if raw is not None else orjson.dumps(
            {"type": name, "sequence_number": sequence, **(data or {})})
        sequence += 1
        return b"event: " + name.encode() + eol + b"data: " + payload + eol + eol

    content_type = scenario.content_type or "text/event-stream; charset=utf-8"
    await conn.start(200, content_type.encode("latin-1"), [(b"cache-control", b"no-cache")])
    conn.split = scenario.split
    pending = _response(body, plan, response_id, "in_progress", [], None)
    await conn.write(event("response.created", {"response": pending}))
    await conn.write(event("response.in_progress", {"response": pending}))
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    await conn.write(event("response.output_item.added", {
        "output_index": 0, "item": _message(item_id, "", "in_progress")}))
    await conn.write(event("response.content_part.added", {**where, "part": {
        "type": "output_text", "text": "", "annotations": [], "logprobs": []}}))
    pacer = fake._Pacer(scenario.rate)
    count, sent = len(plan.tokens), []
    for index in range(count + 1):
        def due(after: int | None, index: int = index) -> bool:
            return after is not None and (after == index or (index == count and after > count))

        if due(scenario.malformed_after):
            await conn.write(event("response.output_text.delta", raw=b"{not json"))
        if due(scenario.die_after):
            raise fake._DropConnection
        if due(scenario.stall_after):
            await conn.gone.wait()
            return
        if due(scenario.error_after):
            await conn.write(event("error", {
                "code": "server_error", "param": None,
                "message": "The server had an error while processing your request."}))
            await conn.end()
            return
        if index == count:
            break
        if scenario.keepalive:
            await conn.write(b": keep-alive" + eol + eol)
        text = plan.content(index)
        sent.append(text)
        await conn.write(event("response.output_text.delta", {**where, "delta": text,
                                                              "logprobs": []}))
        conn.record.content_chunks += 1
        await pacer.next()
    text = "".join(sent)
    item = _message(item_id, text, "completed")
    await conn.write(event("response.output_text.done", {**where, "text": text, "logprobs": []}))
    await conn.write(event("response.content_part.done", {**where, "part": item["content"][0]}))
    await conn.write(event("response.output_item.done", {"output_index": 0, "item": item}))
    done = _response(body, plan, response_id, status, [item], _usage(plan, count))
    await conn.write(event(f"response.{status}", {"response": done}))
    await conn.end()
