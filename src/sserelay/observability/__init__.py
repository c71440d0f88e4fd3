"""What sserelay tells its operators: Prometheus metrics (`GET /metrics`), one JSON log line
per request and per stream end, and a Server-Timing header on every response."""

from __future__ import annotations

from sserelay.observability.json_logging import JsonFormatter, configure_json_logging
from sserelay.observability.middleware import ObserveRequests
from sserelay.observability.telemetry import Telemetry

__all__ = ["JsonFormatter", "ObserveRequests", "Telemetry", "configure_json_logging"]
