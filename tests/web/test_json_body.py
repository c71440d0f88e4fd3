"""The relay endpoints' JSON body (web/article.py, `read_json_body_sized`): taken from the
guard when it has read and parsed it, read and parsed here otherwise, with the same checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from starlette.requests import Request

from sserelay.web.article import read_json_body_sized
from sserelay.web.errors import RequestError
from sserelay.web.guard import PARSED_BODY_KEY

Run = Callable[[Coroutine[Any, Any, Any]], Any]
_JSON = [(b"content-type", b"application/json")]


def _request(body: bytes, *, parsed: tuple[int, dict[str, Any]] | None = None) -> Request:
    reads: list[bytes] = [body]

    async def receive() -> dict[str, Any]:
        if not reads:
            raise AssertionError("the body was read twice")
        return {"type": "http.request", "body": reads.pop(), "more_body": False}

    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/streams",
                             "headers": _JSON, "query_string": b""}
    if parsed is not None:
        scope[PARSED_BODY_KEY] = parsed
    return Request(scope, receive)


def test_a_body_the_guard_parsed_is_not_read_or_parsed_again(run: Run) -> None:
    """The guard's object comes back as it is (the same dict), with the size it read; the
    request's body stream is left alone."""
    body = {"messages": [{"role": "user", "content": "hi"}]}
    request = _request(b"", parsed=(57, body))
    request_reads: list[int] = []
    original = request.stream

    def counting_stream() -> Any:
        request_reads.append(1)
        return original()

    request.stream = counting_stream  # type: ignore[method-assign]
    found, size = run(read_json_body_sized(request, 1000))
    assert found is body and size == 57 and request_reads == []


def test_a_body_without_the_guard_is_read_and_sized_here(run: Run) -> None:
    raw = b'{"messages": [{"role": "user", "content": "hi"}]}'
    found, size = run(read_json_body_sized(_request(raw), 1000))
    assert found == {"messages": [{"role": "user", "content": "hi"}]} and size == len(raw)


def test_the_guards_body_still_meets_this_endpoints_limit_and_type(run: Run) -> None:
    """The guard's limit may be another route kind's: the size is checked here again, and
    a body not declared as JSON is still a 415."""
    with pytest.raises(RequestError) as too_large:
        run(read_json_body_sized(_request(b"", parsed=(2000, {})), 1000))
    assert too_large.value.status == 413
    request = _request(b"", parsed=(2, {}))
    request.scope["headers"] = [(b"content-type", b"text/plain")]
    with pytest.raises(RequestError) as not_json:
        run(read_json_body_sized(request, 1000))
    assert not_json.value.status == 415
