"""Anthropic clients (the anthropic SDK on /v1/messages) served from the chat pivot: their
requests as chat requests, chat chunks as Anthropic's events, chat completions as messages.

The event sequence is Anthropic's ("Streaming Messages"): `message_start`, then per content
block `content_block_start`, `content_block_delta`s and `content_block_stop`, then
`message_delta` with the stop reason and usage, then `message_stop`. The input token count
is only known at the end of an OpenAI stream, so `message_start` says 0 and `message_delta`
carries both counts (the anthropic SDK takes `input_tokens` from `message_delta`).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from sserelay.error_shapes import GatewayError, anthropic_error_event
from sserelay.providers.errors import ProviderError
from sserelay.translation.pipeline import Chunk

__all__ = ["MessagesWriter", "chat_completion_to_message", "messages_to_chat"]

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", param=param)


# -- requests ------------------------------------------------------------------------------


def _parts(blocks: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                       list[dict[str, Any]]]:
    """(content parts, tool calls, tool results) of one Anthropic message's blocks."""
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise _bad("Every content block must be an object.", "messages")
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                media_type = source.get("media_type", "image/png")
                url = f"data:{media_type};base64,{source.get('data', '')}"
            else:
                url = source.get("url", "")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""),
                                       "arguments": orjson.dumps(block.get("input", {})).decode()}})
        elif kind == "tool_result":
            content = block.get("content", "")
            text = content if isinstance(content, str) else "".join(
                c.get("text", "") for c in content if isinstance(c, dict))
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                            "content": text})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's earlier reasoning: chat completions has no place for it
        else:
            raise _bad(f"Content blocks of type {kind!r} cannot be sent to this model.",
                       "messages")
    return parts, calls, results


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def messages_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as a chat completions request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: at least one message is required", "messages")
    if not isinstance(body.get("max_tokens"), int):
        raise _bad("max_tokens: Field required", "max_tokens")
    chat: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        chat.append({"role": "system", "content": system})
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and block.get("text"):
                chat.append({"role": "system", "content": block["text"]})
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _bad("messages: each message needs the role user or assistant", "messages")
        content = message.get("content")
        if isinstance(content, str):
            chat.append({"role": message["role"], "content": content})
            continue
        parts, calls, results = _parts(content if isinstance(content, list) else [])
        chat += results  # tool results answer the previous assistant turn's calls
        if parts or calls:
            turn: dict[str, Any] = {"role": message["role"], "content": _content(parts)}
            if calls:
                turn["tool_calls"] = calls
            chat.append(turn)
    out: dict[str, Any] = {"messages": chat, "max_tokens": body["max_tokens"]}
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), int | float):
            out[name] = body[name]
    if isinstance(body.get("stop_sequences"), list):
        out["stop"] = body["stop_sequences"]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(
            choice.get("type", ""),
            {"type": "function", "function": {"name": choice.get("name", "")}})
    return out


def _tool(tool: object) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise _bad("tools: each tool needs a name", "tools")
    if tool.get("type") not in (None, "custom"):
        raise _bad(f"Tools of type {tool.get('type')!r} cannot be used with this model.",
                   "tools")
    function = {"name": tool["name"],
                "parameters": tool.get("input_schema") or {"type": "object"}}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


# -- answers -------------------------------------------------------------------------------


def _message_id(chunk_id: object) -> str:
    text = str(chunk_id or "")
    return "msg_" + (text.split("-", 1)[-1] if text else secrets.token_hex(12))


def chat_completion_to_message(answer: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion as an Anthropic message."""
    choice = (answer.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append({"type": "tool_use", "id": call.get("id", ""),
                        "name": function.get("name", ""), "input": arguments})
    usage = answer.get("usage") or {}
    return {
        "id": _message_id(answer.get("id")),
        "type": "message",
        "role": "assistant",
        "model": answer.get("model", ""),
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "", "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.get("prompt_tokens", 0),
                  "output_tokens": usage.get("completion_tokens", 0)},
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesWriter:
    """Chat chunks out as Anthropic's streaming events."""

    def __init__(self) -> None:
        self._started = False
        self._block: str | None = None  # "text" or "tool_use": the open content block
        self._index = -1
        self._tool_blocks: dict[int, int] = {}  # chat tool-call index -> block index
        self._stop_reason = "end_turn"
        self._usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}

    def _start(self, chunk: Chunk) -> bytes:
        self._started = True
        message = {"id": _message_id(chunk.get("id")), "type": "message", "role": "assistant",
                   "content": [], "model": chunk.get("model", ""), "stop_reason": None,
                   "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return _event("message_start", {"type": "message_start", "message": message})

    def _close_block(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _open_block(self, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._index += 1
        self._block = block["type"]
        return out + _event("content_block_start", {"type": "content_block_start",
                                                    "index": self._index, "content_block": block})

    def write(self, chunk: Chunk) -> bytes:
        out = b"" if self._started else self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = {"input_tokens": usage.get("prompt_tokens", 0),
                           "output_tokens": usage.get("completion_tokens", 0)}
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block != "text":
                    out += self._open_block({"type": "text", "text": ""})
                out += _event("content_block_delta", {
                    "type": "content_block_delta", "index": self._index,
                    "delta": {"type": "text_delta", "text": text}})
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self._tool_blocks:
            out += self._open_block({"type": "tool_use", "id": call.get("id", ""),
                                     "name": function.get("name", ""), "input": {}})
            self._tool_blocks[position] = self._index
        arguments = function.get("arguments")
        if arguments:
            out += _event("content_block_delta", {
                "type": "content_block_delta", "index": self._tool_blocks[position],
                "delta": {"type": "input_json_delta", "partial_json": arguments}})
        return out

    def finish(self) -> bytes:
        out = b"" if self._started else self._start({})
        out += self._close_block()
        out += _event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
            "usage": self._usage})
        return out + _event("message_stop", {"type": "message_stop"})

    def fail(self, error: ProviderError) -> bytes:
        return anthropic_error_event(error)
