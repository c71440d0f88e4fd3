"""Flask: the article's endpoints, and its page, as a Blueprint for any Flask app.

    from sserelay.integrations.flask import create_blueprint

    app.register_blueprint(create_blueprint())  # OPENAI_API_KEY, OPENAI_BASE_URL, ...

The answer streams through Flask's ordinary WSGI response, read from the upstream with the
blocking client, so it works under `flask run` and gunicorn (`gthread` or `gevent` workers);
each open stream holds a thread or a greenlet. What WSGI cannot do (notice a client that left
before the next write, resume a stream) is in docs/integrations.md.
"""

from __future__ import annotations

from sserelay.integrations import missing_framework

try:
    import flask
except ImportError as exc:
    raise missing_framework(__name__, "Flask", "flask") from exc

from sserelay.integrations.article_relay import (
    ArticleRelay,
    ArticleStream,
    Call,
    Reply,
    client_js,
    page_html,
)
from sserelay.settings import Settings
from sserelay.upstream.sync_client import SyncOpenAIUpstream

__all__ = ["create_blueprint"]


def create_blueprint(
    settings: Settings | None = None,
    *,
    upstream: SyncOpenAIUpstream | None = None,
    page: bool = True,
    name: str = "sserelay",
) -> flask.Blueprint:
    """The article's endpoints: GET /completion, GET /completionChat, POST /completions/chat.

    `settings` default to the environment's (`Settings.from_env()`), as for `sserelay serve`.
    With `page`, also GET / (the article's page) and GET /static/sserelay.js; the page calls
    the endpoints at the site's root, so register such a blueprint without a `url_prefix`.
    """
    relay = ArticleRelay(settings, upstream=upstream)
    blueprint = flask.Blueprint(name, __name__)

    @blueprint.get("/completion")
    def completion() -> flask.Response:
        prompt = flask.request.args.get("prompt")
        return _answer(relay, relay.prepare_get("completion", prompt, _last_event_id()))

    @blueprint.get("/completionChat")
    def completion_chat() -> flask.Response:
        prompt = flask.request.args.get("prompt")
        return _answer(relay, relay.prepare_get("chat", prompt, _last_event_id()))

    @blueprint.post("/completions/chat")
    def completions_chat() -> flask.Response:
        request = flask.request
        call = relay.prepare_post(
            request.content_type or "",
            request.headers.get("Content-Length"),
            request.stream.read,
            _last_event_id(),
        )
        return _answer(relay, call)

    if page:
        blueprint.add_url_rule("/", "page", _page)
        blueprint.add_url_rule("/static/sserelay.js", "client_js", _client_js)
        blueprint.record(_require_root)
    return blueprint


def _answer(relay: ArticleRelay, prepared: Call | Reply) -> flask.Response:
    reply = relay.respond(prepared) if isinstance(prepared, Call) else prepared
    body = reply.body
    # respond() never gives an async body; this tells the type checker so.
    assert isinstance(body, bytes | ArticleStream)
    # An iterable body streams: Werkzeug writes each event as it comes and calls the body's
    # close() at the end or when a write fails, which closes the upstream.
    return flask.Response(body, status=reply.status, headers=reply.headers)


def _last_event_id() -> str | None:
    request = flask.request
    return request.headers.get("Last-Event-ID") or request.args.get("last_event_id")


def _page() -> flask.Response:
    return flask.Response(page_html(), mimetype="text/html", headers={"Cache-Control": "no-cache"})


def _client_js() -> flask.Response:
    return flask.Response(
        client_js(), mimetype="text/javascript", headers={"Cache-Control": "no-cache"}
    )


def _require_root(state: flask.blueprints.BlueprintSetupState) -> None:
    if state.url_prefix not in (None, "", "/"):
        raise ValueError(
            f"the sserelay page calls the endpoints at the site's root, so it cannot live under "
            f"{state.url_prefix!r}: register the blueprint without url_prefix, or create it "
            f"with page=False"
        )
