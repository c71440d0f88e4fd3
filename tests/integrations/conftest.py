"""The examples, each started as a real server process relaying from the fake upstream."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import PROVIDER_KEY, Upstream

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PY = sys.executable
_GUNICORN = [PY, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--no-control-socket"]
_THREADS = ["--worker-class", "gthread", "--threads", "16"]
_GEVENT = ["--worker-class", "gevent"]


@dataclass(frozen=True)
class Served:
    """How one example is served: the command (with `{port}`) and the folder it runs in."""

    example: str
    argv: tuple[str, ...]

    @property
    def cwd(self) -> Path:
        return EXAMPLES / self.example


SERVERS = {
    "flask-run": Served(
        "flask_app",
        (PY, "-m", "flask", "--app", "app", "run", "--port", "{port}", "--no-reload"),
    ),
    "flask-gunicorn-gthread": Served("flask_app", (*_GUNICORN, *_THREADS, "app:app")),
    "flask-gunicorn-gevent": Served("flask_app", (*_GUNICORN, *_GEVENT, "app:app")),
    "django-runserver": Served(
        "django_project",
        (PY, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"),
    ),
    "django-gunicorn-gthread": Served("django_project", (*_GUNICORN, *_THREADS, "project.wsgi")),
    "django-gunicorn-gevent": Served("django_project", (*_GUNICORN, *_GEVENT, "project.wsgi")),
    "django-uvicorn-asgi": Served(
        "django_project",
        (PY, "-m", "uvicorn", "project.asgi:application", "--port", "{port}"),
    ),
    "fastapi-uvicorn": Served("fastapi_app", (PY, "-m", "uvicorn", "app:app", "--port", "{port}")),
}


def example_env(upstream: Upstream) -> dict[str, str]:
    """The configuration every example reads: the same variables as `sserelay serve`."""
    return {
        "OPENAI_API_KEY": PROVIDER_KEY,
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "SSERELAY_CHAT_MODEL": "fake-chat",
        "SSERELAY_COMPLETION_MODEL": "fake-instruct",
    }


@pytest.fixture(scope="module", params=list(SERVERS))
def served(request: pytest.FixtureRequest, upstream: Upstream) -> Iterator[ServerProcess]:
    """One example under one server, for all the tests of a module."""
    spec = SERVERS[request.param]
    with ServerProcess(spec.argv, env=example_env(upstream), cwd=spec.cwd) as server:
        yield server
