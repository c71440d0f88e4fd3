"""sserelay inside an existing web app, as thin leaves over the same relay code.

- `sserelay.integrations.flask`: a Blueprint (WSGI: `flask run`, gunicorn threads or gevent);
  needs `pip install 'sserelay[flask]'`.
- `sserelay.integrations.django`: views and a `urls.py` to `include()`; blocking under WSGI,
  on the async core under ASGI; needs `pip install 'sserelay[django]'`.
- `sserelay.integrations.fastapi`: mounts sserelay's own ASGI app in a FastAPI or Starlette
  app; needs nothing beyond sserelay.

Each imports its framework only when it is itself imported, and says which extra is missing
if the framework is not there. This package imports none of them. `article_relay` is the
framework-free part they share. See docs/integrations.md.
"""

from __future__ import annotations


def missing_framework(module: str, framework: str, extra: str) -> ImportError:
    """The ImportError an integration raises when its framework is not installed."""
    return ImportError(
        f"{module} needs {framework}, which is not installed: pip install 'sserelay[{extra}]'"
    )
