"""The article's urls.py, on sserelay: its views become one include()."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def health(request: HttpRequest) -> JsonResponse:
    """A view of the project's own, next to sserelay's."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("health", health),
    # GET / (the page), GET /completion, GET /completionChat, POST /completions/chat
    path("", include("sserelay.integrations.django.urls")),
]
