"""How big a request's conversation may be: its number of messages and its text.

One check for every request format sserelay takes (Chat Completions and the article's POST:
``messages``; Anthropic Messages: ``messages`` and ``system``; Responses: ``input`` and
``instructions``; legacy Completions and the article: ``prompt``). Only text counts towards
the size: images and files are bounded by the request body's size instead.
"""

from __future__ import annotations

from typing import Any

from .limiter import LimitExceeded

__all__ = ["check_prompt_size", "prompt_size"]

_LISTS = ("messages", "input")
_TEXTS = ("prompt", "system", "instructions", "input")


_SIZED = ("messages", *_TEXTS)


# Loops, not sum() over generators: each generator is a frame per item, and this runs for
# every request (callgrind: `sum` was ~1% of a two-token stream's instructions).
def _text_size(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    size = 0
    if isinstance(value, list):
        for item in value:
            size += _text_size(item)
    elif isinstance(value, dict):
        # Text parts and blocks ("text"), nested tool results ("content"); never image data.
        size = _text_size(value.get("text")) + _text_size(value.get("content"))
    return size


def prompt_size(body: dict[str, Any]) -> tuple[int, int]:
    """(messages, characters of text) in a request body of any of the formats above."""
    messages = chars = 0
    for key in _LISTS:
        value = body.get(key)
        if isinstance(value, list):
            messages += len(value)
    for key in _SIZED:
        value = body.get(key)
        if value is not None:
            chars += _text_size(value)
    return messages, chars


def check_prompt_size(body: dict[str, Any], *, max_messages: int, max_chars: int) -> None:
    """400 for too many messages, 413 for too much text, in words."""
    messages, chars = prompt_size(body)
    if messages > max_messages:
        raise LimitExceeded(
            400, f"The conversation has {messages} messages; the limit is {max_messages}. "
            "Send fewer (drop or summarise the oldest).", "too_many_messages",
        )
    if chars > max_chars:
        raise LimitExceeded(
            413, f"The prompt is {chars} characters long; the limit is {max_chars}. "
            "Shorten it.", "prompt_too_large",
        )
