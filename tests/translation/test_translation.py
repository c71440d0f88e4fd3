"""Translation tables, sans-IO: requests, answers and streams between the chat pivot and
Anthropic Messages / the Responses API, including what the fake upstream never sends
(tool calls, images, thinking)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sserelay.codec import SSEDecoder
from sserelay.gateway.errors import GatewayError
from sserelay.providers.errors import ProviderError
from sserelay.translation.anthropic_client import (
    MessagesWriter,
    chat_completion_to_message,
    messages_to_chat,
)
from sserelay.translation.anthropic_upstream import (
    AnthropicChunkReader,
    chat_to_messages,
    message_to_chat_completion,
)
from sserelay.translation.chat_stream import ChatChunkReader, ChatChunkWriter
from sserelay.translation.pipeline import TranslatingFilter
from sserelay.translation.responses_client import ResponsesWriter, responses_to_chat


def events_of(raw: bytes) -> list[tuple[str, Any]]:
    decoded = SSEDecoder().feed(raw)
    return [(e.event, e.data if e.data == "[DONE]" else orjson.loads(e.data)) for e in decoded]


def anthropic_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-1", "model": "m", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


TOOL_CALL_CHUNKS = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"content": "Let me look."})
    + chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                             "function": {"name": "weather", "arguments": ""}}]})
    + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})
    + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]})
    + chunk({}, "tool_calls")
    + b'data: {"id":"chatcmpl-1","model":"m","choices":[],'
      b'"usage":{"prompt_tokens":5,"completion_tokens":7}}\n\n'
    + b"data: [DONE]\n\n"
)


# -- requests ------------------------------------------------------------------------------


def test_chat_request_as_anthropic() -> None:
    """A chat request with system, images, tools and results becomes Anthropic's shape."""
    body = chat_to_messages({
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "look", "arguments": '{"x": 1}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "user", "content": "and?"},
        ],
        "temperature": 1.7, "stop": "END", "max_completion_tokens": 99,
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {
            "type": "object"}}}],
        "tool_choice": "required",
    })
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "AAAA"}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "look", "input": {"x": 1}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"},
            {"type": "text", "text": "and?"}]},
    ]
    assert (body["temperature"], body["stop_sequences"], body["max_tokens"]) == (1.0, ["END"], 99)
    assert body["tools"] == [{"name": "look", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any"}


def test_chat_request_without_cap_gets_anthropics_required_max_tokens() -> None:
    """Anthropic requires max_tokens; a chat request without one gets a default."""
    assert chat_to_messages({"messages": [{"role": "user", "content": "x"}]})["max_tokens"] > 0


def test_anthropic_request_as_chat() -> None:
    """Anthropic system blocks, images, tool use and tool results become chat messages."""
    body = messages_to_chat({
        "max_tokens": 10, "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {
                "type": "url", "url": "https://example.com/cat.png"}},
                {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "tool_use", "id": "tu_1", "name": "look", "input": {"x": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu_1",
                 "content": [{"type": "text", "text": "a cat"}]}]},
        ],
        "tools": [{"name": "look", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "look"},
    })
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": "What?"}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "tu_1", "type": "function",
             "function": {"name": "look", "arguments": '{"x":1}'}}]},
        {"role": "tool", "tool_call_id": "tu_1", "content": "a cat"},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "look"}}


@pytest.mark.parametrize(
    ("translate", "body", "param"),
    [
        (messages_to_chat, {"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (chat_to_messages, {"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (responses_to_chat, {"input": "x", "tools": [{"type": "web_search"}]}, "tools"),
        (responses_to_chat, {"input": 5}, "input"),
    ],
)
def test_untranslatable_requests_are_400s_naming_the_field(
    translate: Any, body: dict[str, Any], param: str
) -> None:
    """What the other side cannot express is refused with a 400 naming the field."""
    with pytest.raises(GatewayError) as caught:
        translate(body)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_responses_input_items_as_chat() -> None:
    """Function calls and their outputs in Responses input become chat tool messages."""
    body = responses_to_chat({"input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]})
    assert body["messages"][1]["tool_calls"][0]["id"] == "c1"
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}


# -- answers -------------------------------------------------------------------------------


def test_answers_round_trip_through_the_pivot() -> None:
    """An Anthropic message with text and a tool call, as a chat completion and back."""
    message = {"id": "msg_1", "model": "claude", "stop_reason": "tool_use",
               "content": [{"type": "text", "text": "Looking."},
                           {"type": "tool_use", "id": "tu_1", "name": "look",
                            "input": {"x": 1}}],
               "usage": {"input_tokens": 3, "output_tokens": 4}}
    completion = message_to_chat_completion(message)
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert completion["usage"]["total_tokens"] == 7
    back = chat_completion_to_message(completion)
    assert back["content"] == message["content"] and back["stop_reason"] == "tool_use"
    assert back["usage"] == message["usage"]


# -- streams -------------------------------------------------------------------------------


def test_chat_stream_with_tool_calls_as_anthropic_events() -> None:
    """Text then a streamed tool call become two Anthropic blocks with tool_use and usage."""
    stream = TranslatingFilter(ChatChunkReader(str), MessagesWriter())
    events = events_of(stream.feed(TOOL_CALL_CHUNKS))
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert events[4][1]["content_block"] == {"type": "tool_use", "id": "call_1",
                                             "name": "weather", "input": {}}
    fragments = "".join(e["delta"]["partial_json"] for n, e in events[5:7])
    assert orjson.loads(fragments) == {"city": "Paris"}
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"
    assert events[8][1]["usage"] == {"input_tokens": 5, "output_tokens": 7}
    assert stream.done and stream.usage is not None and stream.usage.completion_tokens == 7


def test_chat_stream_with_tool_calls_as_responses_events() -> None:
    """Text then a streamed tool call become a message and a function_call item."""
    stream = TranslatingFilter(ChatChunkReader(str), ResponsesWriter({"input": "x"}))
    events = events_of(stream.feed(TOOL_CALL_CHUNKS))
    names = [name for name, _ in events]
    assert names[-3:] == ["response.function_call_arguments.done", "response.output_item.done",
                          "response.completed"]
    final = events[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"city":"Paris"}'
    assert final["usage"]["output_tokens"] == 7
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))


ANTHROPIC_TOOL_STREAM = b"".join([
    anthropic_event("message_start", {"type": "message_start", "message": {
        "id": "msg_9", "model": "claude", "usage": {"input_tokens": 11, "output_tokens": 1}}}),
    anthropic_event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "thinking", "thinking": ""}}),
    anthropic_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "thinking_delta", "thinking": "hm"}}),
    anthropic_event("ping", {"type": "ping"}),
    anthropic_event("content_block_start", {"type": "content_block_start", "index": 1,
                                            "content_block": {"type": "tool_use", "id": "tu_1",
                                                              "name": "look", "input": {}}}),
    anthropic_event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                            "delta": {"type": "input_json_delta",
                                                      "partial_json": '{"x": 1}'}}),
    anthropic_event("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
    anthropic_event("message_stop", {"type": "message_stop"}),
])


def test_anthropic_stream_as_chat_chunks() -> None:
    """Anthropic events become chat chunks: no thinking, tool calls, finish reason, usage."""
    stream = TranslatingFilter(AnthropicChunkReader(str), ChatChunkWriter(include_usage=True))
    events = events_of(stream.feed(ANTHROPIC_TOOL_STREAM))
    chunks = [data for _, data in events[:-1]]
    assert events[-1][1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:3]]
    assert calls[0]["id"] == "tu_1" and calls[1]["function"]["arguments"] == '{"x": 1}'
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["usage"] == {"prompt_tokens": 11, "completion_tokens": 9,
                                  "total_tokens": 20}


def test_usage_chunk_is_left_out_unless_asked() -> None:
    """Without include_usage the chat client gets no usage-only chunk."""
    stream = TranslatingFilter(AnthropicChunkReader(str), ChatChunkWriter(include_usage=False))
    events = events_of(stream.feed(ANTHROPIC_TOOL_STREAM))
    assert all(data == "[DONE]" or data["choices"] for _, data in events)
    assert stream.usage is not None and stream.usage.prompt_tokens == 11


FIRST_EVENT = ANTHROPIC_TOOL_STREAM.split(b"\n\n")[0] + b"\n\n"


@pytest.mark.parametrize(
    ("writer", "shape"),
    [(ChatChunkWriter(include_usage=False), b'data: {"error":{'),
     (MessagesWriter(), b'event: error\ndata: {"type":"error","error":{'),
     (ResponsesWriter({}), b'event: error\ndata: {"type":"error","code":"upstream_error"')],
)
def test_upstream_error_event_ends_each_client_format(writer: Any, shape: bytes) -> None:
    """An upstream error event ends each client format in its own error shape, redacted."""
    stream = TranslatingFilter(AnthropicChunkReader(lambda t: t.replace("10.0.0.1", "[x]")),
                               writer)
    raw = stream.feed(FIRST_EVENT + anthropic_event(
        "error", {"type": "error", "error": {"type": "overloaded_error",
                                             "message": "Overloaded at 10.0.0.1"}}))
    assert stream.done and isinstance(stream.error, ProviderError)
    assert shape in raw and b"Overloaded at [x]" in raw


def test_truncated_translated_stream_is_an_error() -> None:
    """An upstream that stops before message_stop ends the client's stream with an error."""
    stream = TranslatingFilter(AnthropicChunkReader(str), MessagesWriter())
    stream.feed(ANTHROPIC_TOOL_STREAM[:300])
    raw = stream.end()
    assert b"event: error" in raw and stream.error is not None
    assert stream.error.ending == "truncated"


def test_chunks_before_an_error_in_the_same_read_are_delivered() -> None:
    """When content and an error arrive in one network read, the content is relayed first."""
    stream = TranslatingFilter(ChatChunkReader(str), MessagesWriter())
    raw = stream.feed(chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hi"})
                      + b'data: {"error": {"message": "boom"}}\n\n')
    names = [name for name, _ in events_of(raw)]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert stream.events == 1  # the content chunk; the role chunk carries none
