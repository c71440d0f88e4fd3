"""The size of a conversation, counted the same way in every request format."""

from __future__ import annotations

from typing import Any

import pytest

from sserelay.limits import LimitExceeded, check_prompt_size
from sserelay.limits.prompt_size import prompt_size


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({"messages": [{"role": "user", "content": "hello"}]}, (1, 5)),
        (
            {"messages": [{"role": "user", "content": [
                {"type": "text", "text": "abc"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 99}},
            ]}]},
            (1, 3),
        ),
        ({"system": "be brief", "messages": [{"role": "user", "content": "hi"}]}, (1, 10)),
        ({"instructions": "abc", "input": "hello"}, (0, 8)),
        ({"input": [{"role": "user", "content": "hey"}, {"role": "user", "content": "you"}]},
         (2, 6)),
        ({"prompt": ["ab", "cd"]}, (0, 4)),
        ({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "content": [{"type": "text", "text": "42"}]}]}]}, (1, 2)),
    ],
)
def test_messages_and_text_are_counted_in_every_format(
    body: dict[str, Any], size: tuple[int, int]
) -> None:
    """Chat, Anthropic, Responses and Completions bodies: messages counted, only text sized."""
    assert prompt_size(body) == size


def test_too_many_messages_is_a_400_and_too_much_text_a_413() -> None:
    """The two refusals have their own status and say the numbers."""
    body = {"messages": [{"role": "user", "content": "abcd"}] * 3}
    with pytest.raises(LimitExceeded) as many:
        check_prompt_size(body, max_messages=2, max_chars=100)
    with pytest.raises(LimitExceeded) as long:
        check_prompt_size(body, max_messages=10, max_chars=11)
    assert (many.value.status, many.value.code) == (400, "too_many_messages")
    assert "3 messages" in many.value.message and "limit is 2" in many.value.message
    assert (long.value.status, long.value.code) == (413, "prompt_too_large")
    check_prompt_size(body, max_messages=3, max_chars=12)
