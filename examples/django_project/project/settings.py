"""The smallest Django project that serves the article's endpoints through sserelay.

The article's project also mounts the admin; it is left out here because it needs a database
and migrations that have nothing to do with relaying. sserelay itself reads OPENAI_API_KEY,
OPENAI_BASE_URL, SSERELAY_CHAT_MODEL and SSERELAY_COMPLETION_MODEL from the environment.
"""

import os

# Example only: a real project reads its own secret from its own configuration.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# Overrides of sserelay's settings, by Settings field name (optional):
# SSERELAY = {"chat_model": "gpt-4o-mini", "idle_timeout": 30.0}
