"""Django: the article's endpoints as views, with a `urls.py` to `include()`.

    # your project's urls.py
    urlpatterns = [
        ...,
        path("", include("sserelay.integrations.django.urls")),
    ]

The same views serve WSGI and ASGI. Under WSGI (runserver, gunicorn) they stream with the
blocking upstream client, one thread or greenlet per stream; under ASGI (uvicorn, daphne)
they stream on sserelay's async core, on the server's event loop. Configuration is
`Settings.from_env()` (OPENAI_API_KEY, OPENAI_BASE_URL, SSERELAY_CHAT_MODEL, ...), overridden
by a `SSERELAY` dict of `Settings` fields in Django's settings. See docs/integrations.md.
"""

from __future__ import annotations

from importlib.util import find_spec

from sserelay.integrations import missing_framework

if find_spec("django") is None:
    raise missing_framework(__name__, "Django", "django")
