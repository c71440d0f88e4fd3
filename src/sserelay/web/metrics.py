"""GET /metrics: sserelay's Prometheus metrics (sserelay.observability.metrics)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sserelay.observability import Telemetry
from sserelay.observability.metrics import CONTENT_TYPE

__all__ = ["metrics_routes"]


async def metrics(request: Request) -> Response:
    telemetry: Telemetry = request.app.state.telemetry
    assert telemetry.metrics is not None
    return Response(telemetry.metrics.render(), media_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


def metrics_routes(telemetry: Telemetry) -> list[Route]:
    """The route, when metrics are on (`[metrics] enabled`)."""
    return [] if telemetry.metrics is None else [Route("/metrics", metrics, methods=["GET"])]
