"""The four endpoint families a fault is tried on, and what a client sees of each: the HTTP
status, the typed ending (error code and kind) or `done`, and the text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from sserelay.codec import ServerSentEvent, SSEDecoder

FAMILIES = ("article-get", "article-post", "streams", "chat")
"""GET /completionChat, POST /completions/chat, POST+GET /v1/streams, /v1/chat/completions."""


@dataclass
class Seen:
    """One request as its client saw it."""

    status: int
    code: str | None = None
    """The error code: of the HTTP error body, or of the stream's typed error ending."""
    ending: str | None = None
    """`done`, or the typed ending's kind (`error`, `truncated`); None for an HTTP error."""
    text: str = ""
    retry_after: str | None = None
    raw: str = ""


def prompt(scenario: str, text: str) -> str:
    return f"[[scenario: {scenario}]] {text}"


def events_of(raw: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = list(decoder.feed(raw))
    decoder.close()
    return events


def _article(events: list[ServerSentEvent], seen: Seen) -> None:
    for event in events:
        if event.event == "error":
            error = json.loads(event.data)["error"]
            seen.code, seen.ending = error["code"], error["ending"]
        elif event.data == "[DONE]":
            seen.ending = seen.ending or "done"
        else:
            seen.text += event.data


def _chat(events: list[ServerSentEvent], seen: Seen) -> None:
    for event in events:
        if event.data == "[DONE]":
            seen.ending = seen.ending or "done"
            continue
        chunk: dict[str, Any] = json.loads(event.data)
        if "error" in chunk:
            seen.code = chunk["error"]["code"]
            seen.ending = chunk["error"].get("ending", "error")
            continue
        for choice in chunk.get("choices") or ():
            seen.text += (choice.get("delta") or {}).get("content") or ""


def _seen(response: httpx.Response, raw: bytes, chat: bool) -> Seen:
    seen = Seen(response.status_code, retry_after=response.headers.get("retry-after"),
                raw=raw.decode("utf-8", "replace"))
    if response.status_code != 200:
        seen.code = json.loads(raw)["error"].get("code")
        return seen
    (_chat if chat else _article)(events_of(raw), seen)
    return seen


def start(client: httpx.Client, family: str, text: str, **extra: Any) -> httpx.Response:
    """Open the request that starts a stream (its body not read yet): for `streams`, the
    follow request after a successful POST."""
    if family == "article-get":
        return client.send(client.build_request("GET", "/completionChat",
                                                params={"prompt": text, **extra}), stream=True)
    if family == "article-post":
        return client.send(client.build_request(
            "POST", "/completions/chat", json={"prompt": text}, params=extra), stream=True)
    messages = [{"role": "user", "content": text}]
    if family == "streams":
        created = client.post("/v1/streams", json={"messages": messages, **extra})
        if created.status_code != 201:
            return created
        return client.send(client.build_request("GET", created.json()["url"]), stream=True)
    body = {"model": "fake-chat", "stream": True, "messages": messages, **extra}
    return client.send(client.build_request("POST", "/v1/chat/completions", json=body),
                       stream=True)


def run(client: httpx.Client, family: str, text: str, **extra: Any) -> Seen:
    """One whole request of `family` with `text` as the prompt, read to its end."""
    response = start(client, family, text, **extra)
    try:
        raw = response.read()
    finally:
        response.close()
    return _seen(response, raw, chat=family in ("streams", "chat"))
