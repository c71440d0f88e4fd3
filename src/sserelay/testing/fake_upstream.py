"""A fake OpenAI-compatible upstream that speaks the real streaming wire format.

Run it with ``python -m sserelay.testing.fake_upstream --port P [--host H] [--require-key K]``.

Each request scripts its own reply, so tests need no side channel. The reply text is the
last user message (or the legacy prompt) after ``echo:``, verbatim, or else
``You said: <prompt>``, cut into pieces of a few characters. Behaviour comes from a
scenario, ``key=value`` pairs separated by ``;``, given in the ``X-Fake-Scenario`` header or
as a prefix of the prompt, ``[[scenario: tokens=5; rate=20]] rest of prompt`` (the prefix is
stripped; header keys override prefix keys). The keys are the fields of `Scenario`.

Every request is recorded (headers including Authorization, JSON body, whether the client
disconnected and whether the response ended cleanly): ``GET /_fake/requests`` lists them,
``POST /_fake/reset`` forgets them.

``POST /v1/messages`` answers in Anthropic's wire format instead (``fake_anthropic.py``), and
``POST /v1/responses`` in the Responses API's (``fake_responses.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

__all__ = [
    "BadRequest",
    "ChunkEncoder",
    "FakeUpstream",
    "ReplyPlan",
    "RequestRecord",
    "Scenario",
    "error_body",
    "main",
    "parse_scenario",
    "plan_reply",
    "split_event",
    "tokenize",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct")
SYSTEM_FINGERPRINT = "fp_fake0001"
_SPLIT_PAUSE = 0.001


class BadRequest(ValueError):
    """A request the fake refuses with HTTP 400: a bad scenario or a malformed body."""


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _error_status(value: str) -> int:
    status = int(value)
    if status not in http.HTTPStatus.__members__.values() or not 400 <= status <= 599:
        raise ValueError(f"not an HTTP error status: {status}")
    return status


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """How to misbehave. Counts (`*_after`) are content chunks sent before the event."""

    tokens: int | None = None  # reply "tok0 tok1 ..." with this many tokens
    stamp: bool = False  # each token is its send time, `time.time_ns()`, and a space
    rate: float | None = None  # tokens per second; None: as fast as possible
    split: bool = False  # write each event in pieces, cut mid-line and mid-character
    crlf: bool = False  # CRLF line endings
    die_after: int | None = None  # drop the connection without ending the chunked body
    stall_after: int | None = None  # stop sending and hang until the client goes away
    status: int | None = None  # answer this HTTP error status, OpenAI-shaped body
    error_after: int | None = None  # send an in-stream OpenAI error event, then end
    malformed_after: int | None = None  # send `data: {not json`, then carry on
    content_type: str | None = None  # answer 200 with this (wrong) content type
    first_delay: float = 0.0  # seconds before the first byte, headers included
    keepalive: bool = False  # a `: keep-alive` comment before every content chunk


_PARSERS: dict[str, Callable[[str], object]] = {
    "tokens": int,
    "stamp": _flag,
    "rate": float,
    "split": _flag,
    "crlf": _flag,
    "die_after": int,
    "stall_after": int,
    "status": _error_status,
    "error_after": int,
    "malformed_after": int,
    "content_type": str,
    "first_delay": float,
    "keepalive": _flag,
}
_PROMPT_SCENARIO = re.compile(r"\A\[\[scenario:([^\]]*)\]\]\s*")


def parse_scenario(text: str, base: Scenario | None = None) -> Scenario:
    """Parse ``key=value; key=value`` on top of `base`; raise BadRequest on any mistake
    (a typo silently ignored would make a test pass for the wrong reason)."""
    changes: dict[str, object] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in _PARSERS:
            raise BadRequest(f"bad scenario item {item.strip()!r}; keys: {', '.join(_PARSERS)}")
        try:
            changes[key] = _PARSERS[key](value)
        except ValueError as exc:
            raise BadRequest(f"bad scenario value for {key}: {exc}") from None
    return dataclasses.replace(base or Scenario(), **changes)  # type: ignore[arg-type]


# Pieces of at most 3 leading whitespace characters plus 4 others, or up to 4 whitespace
# characters: small enough that newlines, "data:" and multi-codepoint emoji straddle pieces.
_TOKEN = re.compile(r"\s{0,3}\S{1,4}|\s{1,4}")


def tokenize(text: str) -> list[str]:
    """Cut text into small pieces that concatenate back to exactly `text`."""
    return _TOKEN.findall(text)


@dataclasses.dataclass(slots=True)
class RequestRecord:
    """What the fake saw of one request; served as JSON by ``GET /_fake/requests``."""

    id: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    started_at: float
    status: int | None = None
    content_chunks: int = 0
    completed: bool = False  # the response body ended cleanly (error_after included)
    disconnected: bool = False  # the client went away before the response ended
    disconnected_at: float | None = None
    finished_at: float | None = None


class _ClientGone(Exception):
    """The client disconnected: stop generating."""


class _DropConnection(Exception):
    """Raised out of the app on purpose: uvicorn then closes the socket mid-body."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for every scripted `die_after`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is _DropConnection)


def error_body(status: int, message: str) -> bytes:
    """An OpenAI-shaped error body, with the type and code OpenAI gives that status."""
    kind, code = "invalid_request_error", None
    if status == 401:
        code = "invalid_api_key"
    elif status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    error = {"message": message, "type": kind, "param": None, "code": code}
    return orjson.dumps({"error": error})


def _usage(prompt_tokens: int, completion_tokens: int, chat: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if chat:
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


@dataclasses.dataclass(slots=True)
class ReplyPlan:
    """A parsed completion request: what to say and how."""

    chat: bool
    model: str
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int
    stream: bool
    include_usage: bool
    scenario: Scenario

    def content(self, index: int) -> str:
        return f"{time.time_ns()} " if self.scenario.stamp else self.tokens[index]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_of(body: dict[str, Any], chat: bool) -> tuple[str, str]:
    """(the text the reply is built from, all prompt text for usage counting)."""
    if not chat:
        prompt = body.get("prompt")
        text = prompt[0] if isinstance(prompt, list) and prompt else prompt
        text = text if isinstance(text, str) else ""
        return text, text
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is a required property")
    texts = [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    users = [
        _text_of(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    return (users[-1] if users else ""), "".join(texts)


def plan_reply(body: Any, chat: bool, header_scenario: str | None) -> ReplyPlan:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str):
        raise BadRequest("you must provide a model parameter")
    prompt, all_text = _prompt_of(body, chat)
    scenario = Scenario()
    if match := _PROMPT_SCENARIO.match(prompt):
        scenario = parse_scenario(match.group(1))
        prompt = prompt[match.end() :]
    if header_scenario is not None:
        scenario = parse_scenario(header_scenario, scenario)
    if scenario.tokens is not None:
        tokens = [f"tok{i} " for i in range(scenario.tokens)]
    elif prompt.startswith("echo:"):
        tokens = tokenize(prompt.removeprefix("echo:"))
    else:
        tokens = tokenize(f"You said: {prompt}")
    # Chat models take max_completion_tokens now; max_tokens is the older spelling.
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    finish = "stop"
    if isinstance(limit, int) and 0 <= limit < len(tokens):
        tokens, finish = tokens[:limit], "length"
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ReplyPlan(
        chat,
        body["model"],
        tokens,
        finish,
        len(tokenize(all_text)),
        body.get("stream") is True,
        include_usage,
        scenario,
    )


_SENTINEL = "\x00CONTENT\x00"
_SENTINEL_JSON = orjson.dumps(_SENTINEL)


class ChunkEncoder:
    """Encodes one stream's events; the per-token path is two concatenations (precomputed)."""

    def __init__(self, plan: ReplyPlan, chunk_id: str, created: int) -> None:
        self.plan = plan
        self.eol = b"\r\n" if plan.scenario.crlf else b"\n"
        if plan.chat:
            self.head: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": plan.model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }
        else:
            self.head = {"id": chunk_id, "object": "text_completion", "created": created}
        template = orjson.dumps(self._chunk(self._choice(_SENTINEL, None)))
        before, after = template.split(_SENTINEL_JSON)
        self._before, self._after = b"data: " + before, after + self.eol * 2

    def _choice(self, text: str | None, finish: str | None) -> dict[str, Any]:
        if not self.plan.chat:
            return {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        delta = {} if text is None else {"content": text}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def _chunk(self, choice: dict[str, Any] | None, usage: Any = None) -> dict[str, Any]:
        chunk = {**self.head, "choices": [] if choice is None else [choice]}
        if not self.plan.chat:  # the legacy format puts model after choices
            chunk.update(model=self.plan.model, system_fingerprint=SYSTEM_FINGERPRINT)
        if self.plan.include_usage:
            chunk["usage"] = usage
        return chunk

    def event(self, payload: bytes) -> bytes:
        return b"data: " + payload + self.eol * 2

    def first(self) -> bytes | None:
        if not self.plan.chat:
            return None
        choice = self._choice(None, None)
        choice["delta"] = {"role": "assistant", "content": "", "refusal": None}
        return self.event(orjson.dumps(self._chunk(choice)))

    def content(self, text: str) -> bytes:
        return self._before + orjson.dumps(text) + self._after

    def finish(self) -> bytes:
        return self.event(orjson.dumps(self._chunk(self._choice(None, self.plan.finish_reason))))

    def usage(self, completion_tokens: int) -> bytes:
        usage = _usage(self.plan.prompt_tokens, completion_tokens, self.plan.chat)
        return self.event(orjson.dumps(self._chunk(None, usage)))


def _completion_body(plan: ReplyPlan, chunk_id: str, created: int) -> bytes:
    text = "".join(plan.content(i) for i in range(len(plan.tokens)))
    usage = _usage(plan.prompt_tokens, len(plan.tokens), plan.chat)
    if not plan.chat:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": plan.finish_reason}
        return orjson.dumps(
            {
                "id": chunk_id,
                "object": "text_completion",
                "created": created,
                "model": plan.model,
                "choices": [choice],
                "usage": usage,
            }
        )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": [],
    }
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
    return orjson.dumps(
        {
            "id": chunk_id,
            "object": "chat.completion",
            "created": created,
            "model": plan.model,
            "choices": [choice],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )


def split_event(data: bytes) -> list[bytes]:
    """Cut bytes inside the field name, inside the first multi-byte UTF-8 character (else in
    the middle) and between the last two line-ending bytes (CR|LF with CRLF endings): the
    boundaries a relay's decoder must survive (wire-formats.md, sse-rules.md)."""
    multibyte = re.search(rb"[\xc0-\xff]", data)
    cuts = {3, len(data) - 1, multibyte.start() + 1 if multibyte else len(data) // 2}
    edges = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


class _Connection:
    """One response: sends, and watches receive() for the client going away meanwhile."""

    def __init__(self, receive: Receive, send: Send, record: RequestRecord) -> None:
        self.send, self.record = send, record
        self.gone = asyncio.Event()
        self.split = False
        self._ending = False
        self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        # uvicorn also reports a disconnect once the response is complete: not the client's doing.
        if not self._ending:
            self.record.disconnected, self.record.disconnected_at = True, time.time()
        self.gone.set()

    async def sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), seconds)
        if self.gone.is_set():
            raise _ClientGone

    async def start(
        self, status: int, content_type: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        self.record.status = status
        headers = [
            (b"content-type", content_type),
            (b"x-request-id", b"req_fake%d" % self.record.id),
            *extra,
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes) -> None:
        # uvicorn's send() silently drops data for a gone client, so generation would go on
        # (tokens nobody reads) unless we stop on our own flag.
        if self.gone.is_set():
            raise _ClientGone
        if not self.split:
            await self.send({"type": "http.response.body", "body": data, "more_body": True})
            return
        for piece in split_event(data):
            await self.send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(_SPLIT_PAUSE)

    async def end(self, data: bytes = b"") -> None:
        self._ending = True
        await self.send({"type": "http.response.body", "body": data, "more_body": False})
        self.record.completed = True

    def close(self) -> None:
        self._watcher.cancel()
        self.record.finished_at = time.time()


class _Pacer:
    """Spaces tokens `1/rate` seconds apart, on a schedule rather than by fixed sleeps so that
    the rate holds under load; after falling behind it carries on without a burst."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else None
        self.loop = asyncio.get_running_loop()
        self.due = self.loop.time()

    async def next(self) -> None:
        if self.interval is None:
            await asyncio.sleep(0)  # let other streams and the disconnect watcher run
            return
        now = self.loop.time()
        self.due = max(self.due + self.interval, now)
        await asyncio.sleep(self.due - now)


async def _respond(
    send: Send, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left before sending it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers_of(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _json_or_text(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


class FakeUpstream:
    """The ASGI app. Keeps the last `max_records` request records (the benchmark sends many)."""

    def __init__(self, *, require_key: str | None = None, max_records: int = 10_000) -> None:
        self.require_key = require_key
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        self._next_id = 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # uvicorn runs us with lifespan="off"; websockets are not served
        if scope["path"].startswith("/_fake/"):
            await self._control(scope["method"], scope["path"], send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        record = RequestRecord(
            self._next_id,
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            _headers_of(scope),
            _json_or_text(body),
            time.time(),
        )
        self._next_id += 1
        self.records.append(record)
        conn = _Connection(receive, send, record)
        try:
            await self._serve(record, conn)
        except _ClientGone:
            pass
        finally:
            conn.close()

    async def _control(self, method: str, path: str, send: Send) -> None:
        if (method, path) == ("GET", "/_fake/requests"):
            await _respond(send, 200, orjson.dumps(list(self.records)))
        elif (method, path) == ("POST", "/_fake/reset"):
            cleared, self._next_id = len(self.records), 1
            self.records.clear()
            await _respond(send, 200, orjson.dumps({"cleared": cleared}))
        else:
            await _respond(send, 404, error_body(404, f"Unknown request URL: {method} {path}."))

    async def _serve(self, record: RequestRecord, conn: _Connection) -> None:
        if record.path == "/v1/messages":
            # Anthropic's Messages API, in its own wire format and auth header.
            from sserelay.testing.fake_anthropic import serve_messages

            await serve_messages(record, conn, self.require_key)
            return
        bearer = record.headers.get("authorization")
        if self.require_key is not None and bearer != f"Bearer {self.require_key}":
            await _send_error(conn, 401, "Incorrect API key provided.")
            return
        route = (record.method, record.path)
        if route == ("GET", "/v1/models"):
            models = [
                {"id": m, "object": "model", "created": 1686935002, "owned_by": "system"}
                for m in MODELS
            ]
            await conn.start(200, b"application/json")
            await conn.end(orjson.dumps({"object": "list", "data": models}))
            return
        if route == ("POST", "/v1/responses"):
            # The Responses API, in its own event format.
            from sserelay.testing.fake_responses import serve_responses

            await serve_responses(record, conn)
            return
        if route not in (("POST", "/v1/chat/completions"), ("POST", "/v1/completions")):
            await _send_error(conn, 404, f"Unknown request URL: {record.method} {record.path}.")
            return
        try:
            plan = plan_reply(
                record.body,
                record.path == "/v1/chat/completions",
                record.headers.get("x-fake-scenario"),
            )
        except BadRequest as exc:
            await _send_error(conn, 400, str(exc))
            return
        await self._reply(plan, conn)

    async def _reply(self, plan: ReplyPlan, conn: _Connection) -> None:
        scenario = plan.scenario
        if scenario.first_delay > 0:
            await conn.sleep(scenario.first_delay)
        if scenario.status is not None:
            phrase = http.HTTPStatus(scenario.status).phrase
            # OpenAI sends retry-after with 429s; clients (the openai SDK too) honour it.
            extra = [(b"retry-after", b"1")] if scenario.status == 429 else []
            await _send_error(conn, scenario.status, f"Scripted error: {phrase}", extra)
            return
        chunk_id = f"{'chatcmpl' if plan.chat else 'cmpl'}-fake{conn.record.id}"
        created = int(time.time())
        if not plan.stream:
            content_type = scenario.content_type or "application/json"
            await conn.start(200, content_type.encode("latin-1"))
            await conn.end(_completion_body(plan, chunk_id, created))
            return
        await _stream(plan, conn, ChunkEncoder(plan, chunk_id, created))


async def _send_error(
    conn: _Connection, status: int, message: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await conn.start(status, b"application/json", extra)
    await conn.end(error_body(status, message))


async def _stream(plan: ReplyPlan, conn: _Connection, encoder: ChunkEncoder) -> None:
    scenario = plan.scenario
    content_type = scenario.content_type or "text/event-stream; charset=utf-8"
    await conn.start(200, content_type.encode("latin-1"), [(b"cache-control", b"no-cache")])
    conn.split = scenario.split
    if (first := encoder.first()) is not None:
        await conn.write(first)
    pacer = _Pacer(scenario.rate)
    count = len(plan.tokens)
    # Most streams (the benchmark's) script no event: skip the per-token checks for them.
    scripted = any(
        after is not None
        for after in (
            scenario.malformed_after,
            scenario.die_after,
            scenario.stall_after,
            scenario.error_after,
        )
    )
    for index in range(count + 1):
        if scripted and await _scripted_event(index, count, plan, conn, encoder):
            return
        if index == count:
            break
        if scenario.keepalive:
            await conn.write(b": keep-alive" + encoder.eol * 2)
        await conn.write(encoder.content(plan.content(index)))
        conn.record.content_chunks += 1
        await pacer.next()
    await conn.write(encoder.finish())
    if plan.include_usage:
        await conn.write(encoder.usage(count))
    await conn.write(encoder.event(b"[DONE]"))
    await conn.end()


async def _scripted_event(
    index: int, count: int, plan: ReplyPlan, conn: _Connection, encoder: ChunkEncoder
) -> bool:
    """Play the scenario event due before content chunk `index` (a count past the end of
    the reply fires before the finish chunk); True if the stream is over."""

    def due(after: int | None) -> bool:
        return after is not None and (after == index or (index == count and after > count))

    scenario = plan.scenario
    if due(scenario.malformed_after):
        await conn.write(encoder.event(b"{not json"))
    if due(scenario.die_after):
        raise _DropConnection
    if due(scenario.stall_after):
        await conn.gone.wait()
        raise _ClientGone
    if due(scenario.error_after):
        # What OpenAI sends when a stream fails after it started (see wire-formats.md).
        message = "The server had an error while processing your request."
        await conn.write(encoder.event(error_body(500, message)))
        await conn.end()
        return True
    return False


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: serve the fake upstream until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m sserelay.testing.fake_upstream",
        description="A scriptable fake OpenAI-compatible upstream for tests and benchmarks.",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--require-key", metavar="K", help="answer 401 unless 'Bearer K'")
    args = parser.parse_args(argv)

    import uvicorn  # only the server process needs it, not importers of this module

    config = uvicorn.Config(
        FakeUpstream(require_key=args.require_key),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        # A stalled stream would otherwise hold shutdown until the client gives up.
        timeout_graceful_shutdown=1,
    )
    # After Config, which (re)configures uvicorn's loggers.
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
