"""The article's endpoints as Django views: plain functions, sync, serving WSGI and ASGI.

A view is sync or async once and for all, but a StreamingHttpResponse's body must match the
server: Django buffers a sync body whole under ASGI and an async body whole under WSGI. So the
views are sync (Django runs them in a worker thread under ASGI), and choose the body by the
request: a WSGI request streams with the blocking client; an ASGI request opens the upstream on
the server's event loop (`async_to_sync` from the view's thread) and streams an async body
there, on the async upstream client and the ASGI endpoints' own payload generator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from asgiref.sync import async_to_sync
from django.conf import settings as django_settings  # type: ignore[import-untyped]  # no hints
from django.core.handlers.asgi import ASGIRequest  # type: ignore[import-untyped]
from django.http import (  # type: ignore[import-untyped]
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]
from django.views.decorators.http import (  # type: ignore[import-untyped]
    require_GET,
    require_POST,
)

from sserelay.integrations import article_relay
from sserelay.integrations.article_relay import ArticleRelay, Call, Reply
from sserelay.settings import Settings

__all__ = ["client_js", "completion", "completion_chat", "completions_chat", "page", "relay"]

_View = TypeVar("_View", bound=Callable[..., Any])
_relay: ArticleRelay | None = None
_relay_lock = threading.Lock()


# Django's decorators are untyped; these keep the views' own signatures for the type checker.
def _get_only(view: _View) -> _View:
    return cast(_View, require_GET(view))


def _post_only(view: _View) -> _View:
    return cast(_View, require_POST(view))


def _csrf_exempt(view: _View) -> _View:
    return cast(_View, csrf_exempt(view))


def relay() -> ArticleRelay:
    """This process's relay, made on first use from `Settings.from_env()` and Django's
    `SSERELAY` setting (a dict of `Settings` fields, e.g. {"chat_model": "gpt-4o"})."""
    global _relay
    with _relay_lock:
        if _relay is None:
            overrides: dict[str, object] = getattr(django_settings, "SSERELAY", {})
            _relay = ArticleRelay(Settings.from_env(None, **overrides))
        return _relay


@_get_only
def completion(request: HttpRequest) -> HttpResponseBase:
    """GET /completion?prompt=...: legacy Completions, relaying `choices[0].text`."""
    prompt = request.GET.get("prompt")
    return _answer(request, relay().prepare_get("completion", prompt, _last_event_id(request)))


@_get_only
def completion_chat(request: HttpRequest) -> HttpResponseBase:
    """GET /completionChat?prompt=...: Chat Completions, relaying `delta.content`."""
    prompt = request.GET.get("prompt")
    return _answer(request, relay().prepare_get("chat", prompt, _last_event_id(request)))


# No CSRF token: the endpoint accepts only Content-Type application/json, which a cross-site
# form cannot send, and a cross-site fetch() cannot send without a CORS preflight.
@_csrf_exempt
@_post_only
def completions_chat(request: HttpRequest) -> HttpResponseBase:
    """POST /completions/chat with {"prompt": ...} or {"messages": [...]}."""
    meta = request.META
    call = relay().prepare_post(
        meta.get("CONTENT_TYPE", ""),
        meta.get("CONTENT_LENGTH") or None,
        request.read,
        _last_event_id(request),
    )
    return _answer(request, call)


@_get_only
def page(request: HttpRequest) -> HttpResponseBase:
    """GET /: the article's page."""
    response = HttpResponse(article_relay.page_html(), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


@_get_only
def client_js(request: HttpRequest) -> HttpResponseBase:
    """GET /static/sserelay.js: the page's client library."""
    response = HttpResponse(
        article_relay.client_js(), content_type="text/javascript; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    return response


def _answer(request: HttpRequest, prepared: Call | Reply) -> HttpResponseBase:
    if isinstance(prepared, Reply):
        reply = prepared
    elif isinstance(request, ASGIRequest):
        reply = async_to_sync(relay().respond_async)(prepared)
    else:
        reply = relay().respond(prepared)
    if isinstance(reply.body, bytes):
        response = HttpResponse(reply.body, status=reply.status)
        if reply.status == 204:
            del response["Content-Type"]
    else:
        # Django closes a sync body (which closes the upstream) when the server is done with
        # it; under ASGI a client that leaves cancels the async body, which closes it too.
        response = StreamingHttpResponse(reply.body, status=reply.status)
    for name, value in reply.headers:
        response[name] = value
    return response


def _last_event_id(request: HttpRequest) -> str | None:
    value: str | None = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    return value
