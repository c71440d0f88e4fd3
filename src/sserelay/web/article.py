"""The article's endpoints, done right.

`GET /completion`, `GET /completionChat` and `POST /completions/chat` relay the model's text
itself as each event's data, as the tutorial does, but encoded so that no token can forge an
event (multi-line `data:` fields), every stream ends with `data: [DONE]`, failures after the
first byte end with a typed `event: error`, and every event carries an id `<stream>:<seq>`.
The generation is written into the stream log, so a browser that reconnects with
`Last-Event-ID` resumes exactly where it was, and after the end gets 204 (stop) instead
of a second completion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sserelay.codec import DONE, ServerSentEvent
from sserelay.observability import hooks
from sserelay.relay.article_format import ARTICLE, error_event, text_events
from sserelay.relay.generation import POLICIES, Generations, Outcome, Policy
from sserelay.relay.openai_text import END_MARKER, Kind, TextReader, ended_early, text_deltas
from sserelay.relay.stream_format import Emit, Pushed
from sserelay.settings import Settings
from sserelay.streams import Ending
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.openai_client import OpenAIUpstream, UpstreamStream
from sserelay.web.errors import RequestError
from sserelay.web.follow import follow_response, requested_resume, resume_response
from sserelay.web.guard import PARSED_BODY_KEY
from sserelay.web.query import query_params

_END_MARKER = END_MARKER.encode()  # model text that must go as two events (text_events)
_ROLES = frozenset({"system", "user", "assistant", "developer"})


async def completion(request: Request) -> Response:
    """GET /completion?prompt=...: legacy Completions, relaying `choices[0].text`."""
    return await _relay(request, "completion", _prompt_from_query(request))


async def completion_chat(request: Request) -> Response:
    """GET /completionChat?prompt=...: Chat Completions, relaying `delta.content`."""
    return await _relay(request, "chat", _prompt_from_query(request))


async def completions_chat_post(request: Request) -> Response:
    """POST /completions/chat with {"prompt": ...} or {"messages": [...]}."""
    settings: Settings = request.app.state.settings
    body = await read_json_body(request, settings.max_body_bytes)
    return await _relay(request, "chat", messages_from_body(body, settings))


async def read_json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object, read up to `limit` bytes; a 4xx in words otherwise."""
    return (await read_json_body_sized(request, limit))[0]


async def read_json_body_sized(request: Request, limit: int) -> tuple[dict[str, Any], int]:
    """`read_json_body`, and the body's size in bytes. A body the guard has read and parsed
    (web/guard.py) is taken from there, not parsed again."""
    content_type, content_length = "", None
    for name, value in request.scope["headers"]:  # one pass; Starlette's lookup of an
        if name == b"content-type":  # absent header raises and catches a KeyError
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            content_length = value.decode("latin-1")
    check_json_headers(content_type, content_length, limit)
    parsed: tuple[int, dict[str, Any]] | None = request.scope.get(PARSED_BODY_KEY)
    if parsed is not None:
        size, body = parsed
        if size > limit:
            raise body_too_large(limit)
        return body, size
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise body_too_large(limit)
    return parse_json_object(raw), len(raw)


# The request rules below take plain values, not a Starlette request, so the Flask and Django
# integrations (sserelay.integrations) apply exactly the same ones.


def check_json_headers(content_type: str, content_length: str | None, limit: int) -> None:
    """415 unless the body is declared as JSON; 413 if it is declared larger than `limit`."""
    if "json" not in content_type:
        raise RequestError(415, "Send the request body as JSON (Content-Type: application/json).")
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise body_too_large(limit)


def body_too_large(limit: int) -> RequestError:
    return RequestError(413, f"The request body is larger than the limit of {limit} bytes.")


def parse_json_object(raw: bytes | bytearray) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"The request body is not valid JSON ({exc.msg}).") from None
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    return body


def messages_from_body(body: dict[str, Any], settings: Settings) -> list[dict[str, str]]:
    """The conversation of a POST /completions/chat body: {"prompt"} or {"messages"}."""
    if "messages" in body:
        return validate_messages(body["messages"], settings.max_prompt_chars)
    if "prompt" in body:
        return [{"role": "user", "content": validate_prompt(body["prompt"], settings)}]
    raise RequestError(400, 'The JSON body needs a "prompt" string or a "messages" list.')


def prompt_messages(prompt: str | None, settings: Settings) -> list[dict[str, str]]:
    """The conversation of a GET endpoint's `?prompt=` (None when it is missing)."""
    if prompt is None:
        raise RequestError(400, 'Add the question as a "prompt" query parameter: ?prompt=...')
    return [{"role": "user", "content": validate_prompt(prompt, settings)}]


def _prompt_from_query(request: Request) -> list[dict[str, str]]:
    return prompt_messages(query_params(request).get("prompt"), request.app.state.settings)


def validate_prompt(prompt: object, settings: Settings) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(400, 'The "prompt" must be a non-empty string.')
    if len(prompt) > settings.max_prompt_chars:
        raise RequestError(
            413, f'The "prompt" is longer than the limit of {settings.max_prompt_chars} characters.'
        )
    return prompt


def validate_messages(messages: object, max_chars: int) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, 'The "messages" must be a non-empty list.')
    total = 0
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(400, f"messages[{i}] must be an object with a role and content.")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise RequestError(
                400, f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}."
            )
        if not isinstance(content, str):
            raise RequestError(400, f"messages[{i}].content must be a string.")
        total += len(content)
        clean.append({"role": role, "content": content})
    if total > max_chars:
        raise RequestError(
            413, f"The messages are longer than the limit of {max_chars} characters."
        )
    return clean


def disconnect_policy(request: Request, default: Policy) -> Policy:
    value = query_params(request).get("disconnect", default)
    if value not in POLICIES:
        raise RequestError(400, f'"disconnect" must be one of {", ".join(POLICIES)}.')
    return value


async def _relay(request: Request, kind: Kind, messages: list[dict[str, str]]) -> Response:
    generations: Generations = request.app.state.generations
    settings: Settings = request.app.state.settings
    last_event_id = requested_resume(request)
    if last_event_id:
        # WHATWG: EventSource reconnects even after a clean end, with Last-Event-ID. Resume
        # from the log, or 204 to stop it; never run the prompt again.
        return await resume_response(generations, last_event_id, settings.heartbeat)
    policy = disconnect_policy(request, "cancel")
    upstream: OpenAIUpstream = request.app.state.upstream
    path, payload = upstream_request(kind, messages, settings)
    hooks.note_request(payload["model"], "relay", messages)
    stream = upstream.stream(path, payload)
    # Wait for the upstream's answer for up to one heartbeat interval: a failure that comes
    # that early keeps a real HTTP status. A slower upstream gets a 200 and heartbeats
    # meanwhile, and a later failure becomes the stream's typed error ending.
    opening, answered = _opening(stream)
    with hooks.waiting_on_upstream():
        await _until(answered, settings.heartbeat)
    if opening.done():
        opening.result()

    def produce(outcome: Outcome) -> ArticlePayloads:
        return ArticlePayloads(stream, kind, upstream, outcome, opening)

    stream_id = await generations.start(produce, ARTICLE, policy=policy, wait_stored=False)
    return follow_response(generations, stream_id, 0, settings.heartbeat)


def _opening(stream: UpstreamStream) -> tuple[asyncio.Future[object], asyncio.Future[None]]:
    """The upstream's answer awaited in a task of its own, which lives on if the request
    stops waiting; and a future it resolves in the step that gets the answer.

    Waiting on that future wakes the request in the next loop iteration. `asyncio.wait` on
    the task wakes it one iteration later (the task's done callbacks are scheduled, then
    wait's own waiter), and under a burst of new streams every iteration is long: the
    article's first tokens came 5.7 ms late at the median, at 500 streams starting in
    50 ms (docs/decisions.md, "The article's first token, one loop iteration sooner")."""
    answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def open_stream() -> object:
        try:
            return await stream.__aenter__()
        finally:
            _resolve(answered)

    return asyncio.ensure_future(open_stream()), answered


async def _until(answered: asyncio.Future[None], timeout: float) -> None:
    """Wait for `answered` for up to `timeout` seconds, leaving it to be resolved later."""
    timer = asyncio.get_running_loop().call_later(timeout, _resolve, answered)
    try:
        await answered
    finally:
        timer.cancel()


def _resolve(answered: asyncio.Future[None]) -> None:
    if not answered.done():
        answered.set_result(None)


async def article_payloads(
    stream: UpstreamStream,
    kind: Kind,
    upstream: OpenAIUpstream,
    outcome: Outcome,
    opening: Awaitable[object] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The article's wire format: text as data, a typed error ending, `[DONE]` last."""
    try:
        if opening is not None:
            await opening
        async for text in text_deltas(stream.events(), kind, upstream.redact):
            outcome.completion_chunks += 1
            for payload in text_events(text):
                yield payload
    except UpstreamError as exc:
        outcome.ending = Ending(exc.ending)
        yield error_event(exc)
    finally:
        await stream.__aexit__(None, None, None)
    yield DONE


class ArticlePayloads(Pushed):
    """`article_payloads`, which can also be pushed: each upstream event's text is emitted
    as the article's events in the call that read it from the upstream."""

    def __init__(
        self,
        stream: UpstreamStream,
        kind: Kind,
        upstream: OpenAIUpstream,
        outcome: Outcome,
        opening: Awaitable[object],
    ) -> None:
        self._stream = stream
        self._kind = kind
        self._upstream = upstream
        self._outcome = outcome
        self._opening = opening
        self._pulled: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._pulled = pulled = article_payloads(
            self._stream, self._kind, self._upstream, self._outcome, self._opening
        )
        return pulled

    async def run(self, emit: Emit) -> None:
        outcome = self._outcome
        read = TextReader(self._kind == "chat", self._upstream.redact)
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finish(exc: UpstreamError | None) -> None:
            if ended.done():
                return
            if exc is not None:
                outcome.ending = Ending(exc.ending)
                emit(error_event(exc))
            emit(DONE)
            ended.set_result(None)

        def on_event(event: ServerSentEvent) -> bool:
            try:
                step = read(event.data)
            except UpstreamError as exc:
                finish(exc)
                return False
            if step is None:  # [DONE]
                finish(None)
                return False
            text, failure = step
            if text:
                outcome.completion_chunks += 1
                for payload in text_events(text):
                    if not emit(payload):
                        ended.set_result(None)  # the log takes no more
                        return False
            if failure is not None:
                finish(failure)
                return False
            return True

        plain_text = read.plain_text

        def on_data_line(data: bytes) -> bool | None:
            # The usual read: the template around plain ASCII text, whose event is
            # `data: <text>` as it is (what text_events makes of it); no str on the way.
            text = plain_text(data)
            if text is None or text == _END_MARKER:
                return None  # decoded and read by on_event
            if text:
                outcome.completion_chunks += 1
                if not emit(b"data: " + text + b"\n\n"):
                    ended.set_result(None)  # the log takes no more
                    return False
            return True

        def on_end(error: UpstreamError | None) -> None:
            finish(error if error is not None else ended_early())

        try:
            await self._opening
        except UpstreamError as exc:
            finish(exc)  # failed before its first byte, after the response had started
            return
        self._stream.push(on_event, on_end, on_data_line)
        await ended

    async def aclose(self) -> None:
        if self._pulled is not None:
            await self._pulled.aclose()
        else:
            await self._stream.__aexit__(None, None, None)


def upstream_request(
    kind: Kind, messages: list[dict[str, str]], settings: Settings
) -> tuple[str, dict[str, Any]]:
    """The upstream path and streaming request body for an article endpoint."""
    if kind == "chat":
        path = "/chat/completions"
        payload: dict[str, Any] = {"model": settings.chat_model, "messages": messages}
    else:
        path = "/completions"
        payload = {"model": settings.completion_model, "prompt": messages[-1]["content"]}
    payload["stream"] = True
    if settings.use_local_model:
        payload["max_tokens"] = 512
    return path, payload
