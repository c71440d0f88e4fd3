"""FastAPI or Starlette: sserelay's own ASGI app, mounted in an existing app.

    from fastapi import FastAPI
    from sserelay.integrations.fastapi import mount_relay

    app = FastAPI()
    ...  # the app's own routes first
    mount_relay(app)  # everything `sserelay serve` answers, in this app's process

Nothing is translated: requests reach sserelay's Starlette app unchanged, so the streams, ids,
resume, heartbeats, /v1/streams and the typed endings are the server's own. (An `include_router`
would not do: the endpoints share the relay app's upstream, stream log and generations, which
live on that app and are closed by its lifespan.) FastAPI is a Starlette app, and Starlette is a
dependency of sserelay, so this integration needs no extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from sserelay.settings import Settings
from sserelay.web.app import create_app

__all__ = ["mount_relay"]


def mount_relay(app: Starlette, path: str = "", settings: Settings | None = None) -> Starlette:
    """Mount sserelay's ASGI app at `path` in `app` and run its lifespan inside `app`'s.

    At the root (`path=""`, the default) the mount answers every path that `app` does not
    route first, so call this after adding the app's own routes. Elsewhere (e.g. "/relay") the
    endpoints work for API clients, but the page, which calls them at the site's root, does not.
    Returns the mounted app; `settings` default to the environment's.
    """
    if path and (not path.startswith("/") or path.endswith("/")):
        raise ValueError(f'mount at "" (the root) or at "/name", not at {path!r}')
    settings = settings or Settings.from_env()
    if settings.use_local_model:
        # `sserelay serve` starts its local model in this case; an app's workers must not.
        raise ValueError(
            "sserelay's integrations need an upstream: set OPENAI_API_KEY (for OpenAI) "
            "or OPENAI_BASE_URL (any OpenAI-compatible server), or pass settings"
        )
    relay = create_app(settings)
    app.router.routes.append(Mount(path, app=relay))
    # Starlette runs only the outer app's lifespan; without this, the relay's upstream session
    # and stream log would never be closed.
    outer: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(outer_app: Any) -> AsyncIterator[Any]:
        async with relay.router.lifespan_context(relay), outer(outer_app) as state:
            yield state

    app.router.lifespan_context = lifespan
    return relay
