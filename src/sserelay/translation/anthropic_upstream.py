"""An Anthropic Messages upstream behind the chat pivot: chat requests in Anthropic's shape,
Anthropic's events and answers as chat chunks and completions.

Field by field as Anthropic documents the Messages API ("Messages", "Streaming Messages",
"OpenAI SDK compatibility"): system messages become `system`, images become image blocks,
tool calls and results become `tool_use` / `tool_result` blocks, `max_tokens` is required,
`temperature` is capped at 1, stop reasons map to finish reasons. Thinking blocks are not
passed on (chat completions has no standard place for them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from sserelay.codec import SSEDecodeError, SSEDecoder
from sserelay.error_shapes import GatewayError
from sserelay.providers.errors import ProviderError
from sserelay.translation.chat_stream import mid_stream_error
from sserelay.translation.pipeline import Chunk

__all__ = ["DEFAULT_MAX_TOKENS", "AnthropicChunkReader", "chat_to_messages",
           "message_to_chat_completion"]

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; chat clients often send none

FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop"}


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, message, "unsupported_for_model", param=param)


# -- requests ------------------------------------------------------------------------------


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                blocks.append(_image_block(url))
        else:
            raise _bad(f"Content of type {part.get('type')!r} cannot be sent to this model.",
                       "messages")
    return blocks


def _tool_use_blocks(tool_calls: object) -> list[dict[str, Any]]:
    blocks = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.get("id", ""),
                       "name": function.get("name", ""), "input": arguments})
    return blocks


def chat_to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completions request as an Anthropic Messages request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty list.", "messages")
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise _bad("This model returns one choice per request (`n` must be 1).", "n")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise _bad("Every message must be an object.", "messages")
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"))
            if text:
                system.append({"type": "text", "text": text})
            continue
        if role == "tool":
            blocks = [{"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                       "content": _text_of(message.get("content"))}]
            role = "user"
        elif role in ("user", "assistant"):
            blocks = _blocks(message.get("content"))
            if role == "assistant":
                blocks += _tool_use_blocks(message.get("tool_calls"))
        else:
            raise _bad(f"Unknown message role {role!r}.", "messages")
        if turns and turns[-1]["role"] == role:  # Anthropic alternates user and assistant
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    out: dict[str, Any] = {"messages": turns}
    if system:
        out["system"] = system
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TOKENS
    if isinstance(body.get("temperature"), int | float):
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if isinstance(body.get("top_p"), int | float):
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list):
        out["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _tool(tool: object) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _bad("Only function tools can be used with this model.", "tools")
    out = {"name": function["name"],
           "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: object) -> dict[str, Any] | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name", "")}
    return None


# -- answers -------------------------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def message_to_chat_completion(message: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message (non-streamed answer) as a chat.completion."""
    text, calls = "", []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            text += block.get("text", "")
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""),
                                       "arguments": orjson.dumps(block.get("input", {})).decode()}})
    reply: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    usage = message.get("usage") or {}
    finish = FINISH_REASONS.get(message.get("stop_reason") or "", "stop")
    return {
        "id": "chatcmpl-" + str(message.get("id", "")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
    }


class AnthropicChunkReader:
    """Chat chunks from an Anthropic event stream; `done` after `message_stop`."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._decoder = SSEDecoder()
        self._head: dict[str, Any] = {"id": "chatcmpl-", "object": "chat.completion.chunk",
                                      "created": int(time.time()), "model": ""}
        self._tool_index = -1
        self._input_tokens = 0
        self._output_tokens = 0
        self.done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Chunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head, "choices": [choice]}

    def feed(self, data: bytes) -> Iterator[Chunk]:
        """A generator: the chunks before an error in the same read still come out."""
        try:
            events = self._decoder.feed(data)
        except SSEDecodeError as exc:
            raise ProviderError("upstream_malformed", str(exc)) from None
        for event in events:
            if self.done:
                break
            try:
                payload = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise ProviderError(
                    "upstream_malformed", "The model provider sent an event that is not JSON."
                ) from None
            if not isinstance(payload, dict):
                raise ProviderError("upstream_malformed", "The model provider sent a bad event.")
            yield from self._event(event.event, payload)

    def _event(self, name: str, event: dict[str, Any]) -> list[Chunk]:
        kind = event.get("type", name)
        if kind == "error" or name == "error":
            raise mid_stream_error(event, self._redact)
        if kind == "message_start":
            message = event.get("message") or {}
            self._head["id"] = "chatcmpl-" + str(message.get("id", ""))
            self._head["model"] = message.get("model", "")
            usage = message.get("usage") or {}
            self._input_tokens = usage.get("input_tokens", 0)
            self._output_tokens = usage.get("output_tokens", 0)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._tool_index += 1
                call = {"index": self._tool_index, "id": block.get("id", ""), "type": "function",
                        "function": {"name": block.get("name", ""), "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                call = {"index": self._tool_index,
                        "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []  # thinking and signature deltas have no place in chat completions
        if kind == "message_delta":
            usage = event.get("usage") or {}
            self._output_tokens = usage.get("output_tokens", self._output_tokens)
            if isinstance(usage.get("input_tokens"), int):
                self._input_tokens = usage["input_tokens"]
            stop = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_REASONS.get(stop or "", "stop"))]
        if kind == "message_stop":
            self.done = True
            usage = _usage(self._input_tokens, self._output_tokens)
            return [{**self._head, "choices": [], "usage": usage}]
        return []  # ping, content_block_stop
