"""Responses API clients served from the chat pivot, for upstreams without `/responses`
(llama.cpp, vLLM, Ollama, Anthropic): requests as chat requests, chat chunks as Responses
events, chat completions as response objects.

Stateless: `previous_response_id` and built-in tools need OpenAI's servers and are refused.
The event sequence follows OpenAI's ("Streaming API responses"): `response.created`,
`response.in_progress`, per output item `response.output_item.added`, for text
`response.content_part.added`, `response.output_text.delta`s, `response.output_text.done`,
`response.content_part.done`, for tool calls `response.function_call_arguments.delta`s and
`.done`, then `response.output_item.done`, and `response.completed` (or
`response.incomplete` when the output cap cut the answer) with the usage. Every event
carries a `sequence_number`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from sserelay.error_shapes import GatewayError, responses_error_event
from sserelay.providers.errors import ProviderError
from sserelay.translation.pipeline import Chunk

__all__ = ["ResponsesWriter", "chat_completion_to_response", "responses_to_chat"]


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, message, "unsupported_for_model", param=param)


# -- requests ------------------------------------------------------------------------------


def _chat_content(content: object) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise _bad(f"Input of type {kind!r} cannot be sent to this model.", "input")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def responses_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request as a chat completions request."""
    if body.get("previous_response_id"):
        raise _bad("This model keeps no conversation state: send the whole conversation as "
                   "`input` instead of `previous_response_id`.", "previous_response_id")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        for item in given:
            messages += _input_item(item)
    else:
        raise _bad("`input` must be text or a list of input items.", "input")
    out: dict[str, Any] = {"messages": messages}
    if isinstance(body.get("max_output_tokens"), int):
        out["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if name in body and body[name] is not None:
            out[name] = body[name]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = body.get("tool_choice")
    if choice in ("auto", "required", "none"):
        out["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name", "")}}
    return out


def _input_item(item: object) -> list[dict[str, Any]]:
    if not isinstance(item, dict):
        raise _bad("Every input item must be an object.", "input")
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise _bad(f"Unknown role {role!r} in input.", "input")
        return [{"role": role, "content": _chat_content(item.get("content"))}]
    if kind == "function_call":
        call = {"id": item.get("call_id", ""), "type": "function",
                "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")}}
        return [{"role": "assistant", "content": None, "tool_calls": [call]}]
    if kind == "function_call_output":
        output = item.get("output")
        return [{"role": "tool", "tool_call_id": item.get("call_id", ""),
                 "content": output if isinstance(output, str) else orjson.dumps(output).decode()}]
    if kind == "reasoning":
        return []
    raise _bad(f"Input items of type {kind!r} cannot be sent to this model.", "input")


def _tool(tool: object) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise _bad(f"Tools of type {kind!r} need OpenAI's own servers.", "tools")
    function = {"name": tool.get("name", ""), "parameters": tool.get("parameters") or {}}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


# -- answers -------------------------------------------------------------------------------


def _usage(usage: object) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _response(request: dict[str, Any], response_id: str, model: str, status: str,
              output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()),
        "status": status, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model, "output": output, "parallel_tool_calls": True,
        "previous_response_id": None, "temperature": request.get("temperature"),
        "text": {"format": {"type": "text"}}, "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []), "top_p": request.get("top_p"),
        "metadata": request.get("metadata") or {}, "usage": usage,
    }


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def chat_completion_to_response(answer: dict[str, Any], request: dict[str, Any]
                                ) -> dict[str, Any]:
    """A chat.completion as a Responses API response object."""
    choice = (answer.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if reply.get("content"):
        output.append(_message_item("msg_" + secrets.token_hex(12), reply["content"], "completed"))
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append({"id": "fc_" + secrets.token_hex(12), "type": "function_call",
                       "status": "completed", "call_id": call.get("id", ""),
                       "name": function.get("name", ""),
                       "arguments": function.get("arguments", "")})
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    return _response(request, "resp_" + secrets.token_hex(12), answer.get("model", ""), status,
                     output, _usage(answer.get("usage")))


class ResponsesWriter:
    """Chat chunks out as Responses API events."""

    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request
        self._id = "resp_" + secrets.token_hex(12)
        self._model = ""
        self._sequence = 0
        self._started = False
        self._output: list[dict[str, Any]] = []  # finished items
        self._text: list[str] | None = None  # the open message item's text so far
        self._text_item = ""
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> open item
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        data = {"type": name, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _snapshot(self, status: str) -> dict[str, Any]:
        return _response(self._request, self._id, self._model, status, self._output,
                         self._usage)

    def _start(self, chunk: Chunk) -> bytes:
        self._started = True
        self._model = chunk.get("model", "")
        snapshot = self._snapshot("in_progress")
        return (self._event("response.created", {"response": snapshot})
                + self._event("response.in_progress", {"response": snapshot}))

    def write(self, chunk: Chunk) -> bytes:
        out = b"" if self._started else self._start(chunk)
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._text is None:
            self._text, self._text_item = [], "msg_" + secrets.token_hex(12)
            item = _message_item(self._text_item, "", "in_progress")
            item["content"] = []
            out += self._event("response.output_item.added",
                               {"output_index": len(self._output), "item": item})
            out += self._event("response.content_part.added", {
                "item_id": self._text_item, "output_index": len(self._output),
                "content_index": 0, "part": {"type": "output_text", "text": "",
                                             "annotations": []}})
        self._text.append(text)
        return out + self._event("response.output_text.delta", {
            "item_id": self._text_item, "output_index": len(self._output), "content_index": 0,
            "delta": text, "logprobs": []})

    def _close_text(self) -> bytes:
        if self._text is None:
            return b""
        text, index = "".join(self._text), len(self._output)
        self._text = None
        item = _message_item(self._text_item, text, "completed")
        self._output.append(item)
        where = {"item_id": self._text_item, "output_index": index, "content_index": 0}
        return (self._event("response.output_text.done", {**where, "text": text,
                                                          "logprobs": []})
                + self._event("response.content_part.done", {**where,
                                                             "part": item["content"][0]})
                + self._event("response.output_item.done", {"output_index": index,
                                                            "item": item}))

    def _call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self._calls:
            out += self._close_text()
            item = {"id": "fc_" + secrets.token_hex(12), "type": "function_call",
                    "status": "in_progress", "call_id": call.get("id", ""),
                    "name": function.get("name", ""), "arguments": ""}
            self._calls[position] = item
            out += self._event("response.output_item.added",
                               {"output_index": len(self._output) + len(self._calls) - 1,
                                "item": item})
        item = self._calls[position]
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            out += self._event("response.function_call_arguments.delta", {
                "item_id": item["id"], "output_index": self._call_index(position),
                "delta": function["arguments"]})
        return out

    def _call_index(self, position: int) -> int:
        return len(self._output) + list(self._calls).index(position)

    def finish(self) -> bytes:
        out = b"" if self._started else self._start({})
        out += self._close_text()
        for position in list(self._calls):
            item = self._calls[position]
            index = self._call_index(position)
            item["status"] = "completed"
            out += self._event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": index, "arguments": item["arguments"]})
            out += self._event("response.output_item.done", {"output_index": index,
                                                             "item": item})
        self._output += self._calls.values()
        self._calls = {}
        status = "incomplete" if self._finish == "length" else "completed"
        return out + self._event(f"response.{status}", {"response": self._snapshot(status)})

    def fail(self, error: ProviderError) -> bytes:
        return responses_error_event(error, self._sequence)
