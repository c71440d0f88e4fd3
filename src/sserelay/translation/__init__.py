"""Translation between wire formats, through one pivot: the chat completion chunk.

Readers turn an upstream's events into chunks (`ChatChunkReader`, `AnthropicChunkReader`),
writers turn chunks into a client's events (`ChatChunkWriter`, `MessagesWriter`,
`ResponsesWriter`); `TranslatingFilter` joins one of each. Requests and non-streamed answers
have plain functions per direction.
"""

from __future__ import annotations

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
from sserelay.translation.pipeline import Chunk, TranslatingFilter
from sserelay.translation.responses_client import (
    ResponsesWriter,
    chat_completion_to_response,
    responses_to_chat,
)

__all__ = [
    "AnthropicChunkReader",
    "ChatChunkReader",
    "ChatChunkWriter",
    "Chunk",
    "MessagesWriter",
    "ResponsesWriter",
    "TranslatingFilter",
    "chat_completion_to_message",
    "chat_completion_to_response",
    "chat_to_messages",
    "message_to_chat_completion",
    "messages_to_chat",
    "responses_to_chat",
]
