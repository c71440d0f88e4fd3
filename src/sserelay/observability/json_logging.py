"""One JSON object per line, through the standard library's logging.

`sserelay serve` sends every `sserelay.*` logger here (`configure_json_logging`): the request
and stream lines of telemetry.py, and warnings. A line carries what the code passed as
`extra={"fields": {...}}`; an exception adds its type and message, never a traceback (a
traceback can quote request data, and log scanners look for them as leaks).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_json_logging"]


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # The formatted second, remembered: strftime(gmtime()) was ~40% of formatting a
        # line, and a busy relay writes many lines a second (py-spy, two-token streams).
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second  # one read: another thread may log (and replace it) too
        if second != cached[0]:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        line: dict[str, Any] = {
            "time": f"{cached[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
        return orjson.dumps(line, default=str).decode()


def configure_json_logging(path: str | None = None, level: int = logging.INFO) -> None:
    """Send the `sserelay` loggers' records, as JSON lines, to `path` (appended) or stderr."""
    handler: logging.Handler
    if path:
        handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("sserelay")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
