"""The /v1 HTTP surface: OpenAI's paths and Anthropic's, so the official SDKs need only a
`base_url` (`http://HOST:PORT/v1` for openai, `http://HOST:PORT` for anthropic)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sserelay.gateway.auth import authenticate
from sserelay.gateway.errors import Dialect, GatewayError, error_response
from sserelay.gateway.service import Gateway
from sserelay.keys.store import KeyPolicy
from sserelay.observability import hooks
from sserelay.providers import Api
from sserelay.upstream.errors import UpstreamError

__all__ = ["MAX_BODY_BYTES", "gateway_routes"]

MAX_BODY_BYTES = 32 << 20  # the default: requests carry images as base64


async def chat_completions(request: Request) -> Response:
    return await _serve(request, "chat")


async def completions(request: Request) -> Response:
    return await _serve(request, "completions")


async def responses(request: Request) -> Response:
    return await _serve(request, "responses")


async def messages(request: Request) -> Response:
    return await _serve(request, "messages")


async def _serve(request: Request, api: Api) -> Response:
    gateway: Gateway = request.app.state.gateway
    dialect: Dialect = "anthropic" if api == "messages" else "openai"
    try:
        key = authenticate(request, gateway.keys)
        raw = await _read_body(request)
        body = _parse_body(raw)
        hooks.note_request(body.get("model"), None, hooks.prompt_of(body))
        if api == "chat" and body.get("stream") is True and _resumable(request):
            # Imported here: the web layer builds on the gateway, not the other way round.
            from sserelay.web.streams_api import resumable_chat_completion

            return await resumable_chat_completion(request, key, body, len(raw))
        return await gateway.serve(key, api, body, len(raw))
    except (GatewayError, UpstreamError) as exc:
        return error_response(dialect, exc)


def _resumable(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return bool(getattr(settings, "resumable_chat_completions", False))


async def list_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    anthropic = "anthropic-version" in request.headers
    try:
        key = authenticate(request, gateway.keys)
    except GatewayError as exc:
        return error_response("anthropic" if anthropic else "openai", exc)
    names = await gateway.model_names(key.policy if key else KeyPolicy())
    if anthropic:  # the anthropic SDK's models.list() reads Anthropic's shape
        data: list[dict[str, Any]] = [_anthropic_model(n) for n in names]
        body: dict[str, Any] = {"data": data, "has_more": False,
                                "first_id": names[0] if names else None,
                                "last_id": names[-1] if names else None}
    else:
        body = {"object": "list", "data": [_openai_model(n) for n in names]}
    return Response(orjson.dumps(body), media_type="application/json")


async def get_model(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    anthropic = "anthropic-version" in request.headers
    dialect: Dialect = "anthropic" if anthropic else "openai"
    name = request.path_params["model"]
    try:
        key = authenticate(request, gateway.keys)
        if name not in await gateway.model_names(key.policy if key else KeyPolicy()):
            raise GatewayError(
                404, f"The model `{name}` does not exist or you do not have access to it.",
                "model_not_found", param="model",
            )
    except GatewayError as exc:
        return error_response(dialect, exc)
    model = _anthropic_model(name) if anthropic else _openai_model(name)
    return Response(orjson.dumps(model), media_type="application/json")


def _openai_model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "sserelay"}


def _anthropic_model(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name,
            "created_at": "1970-01-01T00:00:00Z"}


async def _read_body(request: Request) -> bytes:
    limit = _body_limit(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise _too_large(limit)
    return bytes(raw)


def _body_limit(request: Request) -> int:
    """`--max-gateway-body-bytes` when the app has settings, else the default."""
    settings = getattr(request.app.state, "settings", None)
    limit = getattr(settings, "max_gateway_body_bytes", None)
    return limit if isinstance(limit, int) else MAX_BODY_BYTES


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"The request body is larger than {limit} bytes.",
                        "request_too_large")


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"The request body is not valid JSON ({exc.msg}).",
                           "invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.", "invalid_json")
    return body


def gateway_routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    ]
