"""How the integrations are configured and mounted, checked in-process (no upstream needed)."""

from __future__ import annotations

import flask
import pytest
from starlette.applications import Starlette

from sserelay.integrations.article_relay import ArticleRelay
from sserelay.integrations.fastapi import mount_relay
from sserelay.integrations.flask import create_blueprint
from sserelay.settings import Settings

KEYED = Settings(openai_api_key="sk-test-0000000000000000")


def test_without_an_upstream_configured_the_relay_says_what_to_set() -> None:
    """With neither OPENAI_API_KEY nor OPENAI_BASE_URL (where `sserelay serve` would start its
    local model), an integration refuses to start and names both variables."""
    with pytest.raises(ValueError, match=r"OPENAI_API_KEY.*OPENAI_BASE_URL"):
        ArticleRelay(Settings.from_env({}))
    with pytest.raises(ValueError, match=r"OPENAI_API_KEY.*OPENAI_BASE_URL"):
        mount_relay(Starlette(), settings=Settings.from_env({}))


def test_the_page_refuses_a_url_prefix() -> None:
    """The page calls the endpoints at the site's root, so registering it under a prefix fails
    at start-up with the way out (page=False), not later in the browser."""
    app = flask.Flask(__name__)
    with pytest.raises(ValueError, match="page=False"):
        app.register_blueprint(create_blueprint(KEYED), url_prefix="/relay")


def test_endpoints_alone_work_under_a_url_prefix() -> None:
    """With page=False the endpoints can live under a prefix, with the same request rules."""
    app = flask.Flask(__name__)
    app.register_blueprint(create_blueprint(KEYED, page=False), url_prefix="/relay")
    reply = app.test_client().get("/relay/completionChat")
    assert reply.status_code == 400
    assert '"prompt" query parameter' in reply.get_json()["error"]["message"]


def test_mount_paths_are_checked() -> None:
    """A mount path is "" (the root) or "/name"; anything else is refused with both forms."""
    with pytest.raises(ValueError, match='"/name"'):
        mount_relay(Starlette(), "relay/", settings=KEYED)
