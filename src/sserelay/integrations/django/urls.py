"""`include("sserelay.integrations.django.urls")` at the site's root (the page calls the
endpoints there, and loads /static/sserelay.js: keep django.contrib.staticfiles' STATIC_URL
elsewhere, or drop the page's two routes)."""

from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]  # Django ships no type hints

from sserelay.integrations.django import views

app_name = "sserelay"
urlpatterns = [
    path("", views.page, name="page"),
    path("static/sserelay.js", views.client_js, name="client_js"),
    path("completion", views.completion, name="completion"),
    path("completionChat", views.completion_chat, name="completion_chat"),
    path("completions/chat", views.completions_chat, name="completions_chat"),
]
