"""One JSON object per line, through the standard library's logging.

`sserelay serve` sends every `sserelay.*` logger here (`configure_json_logging`): the request
and stream lines of telemetry.py, and warnings. A line carries what the code passed as
`extra={"fields": {...}}`; an exception adds its type and message, never a traceback (a
traceback can quote request data, and log scanners look for them as leaks).

Lines are written at the end of the event loop's iteration that logged them, all of that
iteration's lines in one write (`JsonLineHandler`); a line logged where no loop runs is
written at once. The request and stream lines, two or three a stream, go straight to that
handler when it is the only one (`log_fields`): ~9 µs a line through `logging`, ~3 this way
(docs/decisions.md, "Per-request work, fourth round").
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import IO, Any

import orjson

__all__ = ["JsonFormatter", "JsonLineHandler", "configure_json_logging", "log_fields"]


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # The formatted second, remembered: strftime(gmtime()) was ~40% of formatting a
        # line, and a busy relay writes many lines a second (py-spy, two-token streams).
        self._second: tuple[int, str] = (-1, "")

    def timestamp(self, created: float, msecs: float) -> str:
        second = int(created)
        cached = self._second  # one read: another thread may log (and replace it) too
        if second != cached[0]:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        error = record.exc_info[1] if record.exc_info else None
        return self.line(self.timestamp(record.created, record.msecs), record.levelname,
                         record.name, record.getMessage(),
                         fields if isinstance(fields, dict) else None,
                         None if error is None else f"{type(error).__name__}: {error}")

    @staticmethod
    def line(time: str, levelname: str, name: str, message: str,
             fields: dict[str, Any] | None, error: str | None = None) -> str:
        """One JSON line: the time, level, logger and message, then the fields."""
        line: dict[str, Any] = {
            "time": time, "level": levelname.lower(), "logger": name, "message": message,
        }
        if fields:
            line.update(fields)
        if error is not None:
            line["error"] = error
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


_MOST_PENDING = 512  # lines; past this, written at once


class JsonLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines to `stream`, the lines of one event-loop iteration in one write at its
    end (`loop.call_soon`), in the order they were logged; at once where no loop runs in
    the logging thread. `flush()` (logging's shutdown calls it) writes what is pending."""

    def __init__(self, stream: IO[str] | None = None, *, path: str | None = None) -> None:
        """To `stream` (stderr by default), or to the file at `path`, opened for appending
        and, as logging.FileHandler's, closed by `close()` and opened again by the next
        line (uvicorn's logging set-up closes every handler there is)."""
        self.path = path
        super().__init__(self._open() if path else stream)
        self.formatter: JsonFormatter = JsonFormatter()
        self._pending: list[str] = []
        self._due: asyncio.AbstractEventLoop | None = None  # the loop a write is due on

    def _open(self) -> IO[str]:
        assert self.path is not None
        return open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        self.flush()
        with self.lock:  # type: ignore[union-attr]
            if self.path is not None and self.stream is not None:
                self.stream.close()
                self.stream = None
        super().close()

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        if not isinstance(fmt, JsonFormatter):
            raise TypeError("JsonLineHandler writes JSON lines: its formatter is JsonFormatter")
        super().setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.formatter.format(record)
        except Exception:  # as StreamHandler: a line that cannot be made is reported, once
            self.handleError(record)
            return
        self._add(line)

    def write_fields(self, name: str, level: int, message: str, fields: dict[str, Any]) -> None:
        """`emit` of a `log_fields` line without a LogRecord: the same JSON."""
        now = time.time_ns()
        formatter = self.formatter
        text = formatter.line(
            formatter.timestamp(now // 1_000_000_000, (now // 1_000_000) % 1000),
            logging.getLevelName(level), name, message, fields)
        with self.lock:  # type: ignore[union-attr]
            self._add(text)

    def _add(self, line: str) -> None:
        pending = self._pending
        pending.append(line)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or len(pending) >= _MOST_PENDING:
            self.flush()
        elif self._due is not loop:
            # A write due on another loop may never come (that loop stopped): this one's
            # writes all that is pending.
            self._due = loop
            loop.call_soon(self._write_due)

    def _write_due(self) -> None:
        self._due = None
        self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            pending = self._pending
            if not pending:
                return
            text = "\n".join(pending) + "\n"
            pending.clear()
            try:
                if self.stream is None:
                    self.stream = self._open()
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # a closed or full stream: as StreamHandler, never the caller's
                self.handleError(logging.makeLogRecord({"msg": text[:200]}))


_root = logging.getLogger("sserelay")


def log_fields(logger: logging.Logger, message: str, fields: dict[str, Any],
               level: int = logging.INFO) -> None:
    """`logger.log(level, message, extra={"fields": fields})`, through the same level
    check, filters and handlers, for the lines written for every request and stream.
    Where the only way from `logger` leads to a `JsonLineHandler` (as `sserelay serve`
    configures it), the line goes to that handler directly."""
    if not logger.isEnabledFor(level):
        return
    handlers = _root.handlers
    if (
        len(handlers) == 1
        and type(handler := handlers[0]) is JsonLineHandler
        and logger.parent is _root
        and logger.propagate
        and not _root.propagate
        and not logger.handlers
        and not logger.filters
        and not _root.filters
        and not handler.filters
        and level >= handler.level
    ):
        handler.write_fields(logger.name, level, message, fields)
        return
    logger.handle(_FieldsRecord(logger.name, level, message, fields))


def configure_json_logging(path: str | None = None, level: int = logging.INFO) -> None:
    """Send the `sserelay` loggers' records, as JSON lines, to `path` (appended) or stderr."""
    handler = JsonLineHandler(path=path) if path else JsonLineHandler(sys.stderr)
    root = logging.getLogger("sserelay")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
