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

__all__ = ["JsonFormatter", "configure_json_logging", "log_fields"]


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


class _FieldsRecord(logging.LogRecord):
    """A record of `log_fields`: every attribute a LogRecord has, set without the work of
    LogRecord.__init__ (the caller's file name split twice, the thread and process looked
    up, the args checked), which was about a third of a request line's cost."""

    def __init__(self, name: str, level: int, msg: str, fields: dict[str, Any]) -> None:
        now = time.time_ns()
        self.name, self.msg, self.args = name, msg, ()
        self.levelname, self.levelno = logging.getLevelName(level), level
        self.pathname, self.filename, self.module = __file__, "json_logging.py", "json_logging"
        self.exc_info = self.exc_text = self.stack_info = None
        self.lineno, self.funcName = 0, "log_fields"
        self.created = now / 1e9
        self.msecs = (now % 1_000_000_000) // 1_000_000 + 0.0
        self.relativeCreated = (now / 1e9 - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.thread = self.threadName = self.process = self.processName = None
        self.taskName = None
        self.fields = fields


def log_fields(logger: logging.Logger, message: str, fields: dict[str, Any],
               level: int = logging.INFO) -> None:
    """`logger.log(level, message, extra={"fields": fields})`, through the same level
    check, filters and handlers, for the lines written for every request and stream."""
    if logger.isEnabledFor(level):
        logger.handle(_FieldsRecord(logger.name, level, message, fields))


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
