"""The JSON line handler `sserelay serve` logs through: one write per event-loop iteration,
no line lost whatever loop logged it, a file that survives being closed, and the request
lines' direct path writing what `logging` would."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sserelay.observability.json_logging import (
    JsonLineHandler,
    configure_json_logging,
    log_fields,
)


class Recorder:
    """A text stream that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in "".join(self.writes).splitlines()]


@pytest.fixture
def sserelay_logger() -> Iterator[logging.Logger]:
    """The `sserelay` logger, put back as it was afterwards."""
    root = logging.getLogger("sserelay")
    saved = (list(root.handlers), root.level, root.propagate)
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in saved[0]:
            handler.close()
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    root.propagate = saved[2]


def _use(root: logging.Logger, handler: logging.Handler) -> None:
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def test_lines_of_one_loop_iteration_go_out_in_one_write_after_it(
    sserelay_logger: logging.Logger,
) -> None:
    """Three lines logged in one step of a task: nothing written until the step ends, then
    one write holding all three, in order."""
    out = Recorder()
    _use(sserelay_logger, JsonLineHandler(out))  # type: ignore[arg-type]
    logger = logging.getLogger("sserelay.requests")

    async def step() -> int:
        for n in range(3):
            log_fields(logger, "request", {"n": n})
        written_during = len(out.writes)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return written_during

    assert asyncio.run(step()) == 0
    assert len(out.writes) == 1
    assert [line["n"] for line in out.lines()] == [0, 1, 2]


def test_a_line_logged_where_no_loop_runs_is_written_at_once(
    sserelay_logger: logging.Logger,
) -> None:
    out = Recorder()
    _use(sserelay_logger, JsonLineHandler(out))  # type: ignore[arg-type]
    logging.getLogger("sserelay.generation").warning("the log refused an append")
    assert len(out.writes) == 1
    assert out.lines()[0]["message"] == "the log refused an append"


def test_a_write_due_on_a_loop_that_stopped_is_made_by_the_next_line(
    sserelay_logger: logging.Logger,
) -> None:
    """A loop that ends before its due write runs loses no line: the next one written
    anywhere takes the pending ones along, and a flush (logging's shutdown) writes the
    rest."""
    out = Recorder()
    handler = JsonLineHandler(out)  # type: ignore[arg-type]
    _use(sserelay_logger, handler)
    logger = logging.getLogger("sserelay.requests")
    loop = asyncio.new_event_loop()

    async def log_and_leave() -> None:
        log_fields(logger, "request", {"n": 1})
        asyncio.get_running_loop().stop()  # before the due write's iteration

    loop.run_until_complete(log_and_leave())
    loop.close()
    assert out.writes == []
    log_fields(logger, "request", {"n": 2})
    assert [line["n"] for line in out.lines()] == [1, 2]

    async def log_only() -> None:
        log_fields(logger, "request", {"n": 3})

    other = asyncio.new_event_loop()
    other.run_until_complete(log_only())
    other.close()
    handler.flush()
    assert [line["n"] for line in out.lines()] == [1, 2, 3]


def test_the_log_file_is_opened_again_after_a_close(
    sserelay_logger: logging.Logger, tmp_path: Path
) -> None:
    """uvicorn's logging set-up closes every handler there is; the next line opens the file
    again and is appended, as with logging.FileHandler."""
    path = tmp_path / "sserelay.jsonl"
    configure_json_logging(str(path))
    logger = logging.getLogger("sserelay.requests")
    log_fields(logger, "request", {"n": 1})
    for handler in sserelay_logger.handlers:
        handler.close()
    log_fields(logger, "request", {"n": 2})
    sserelay_logger.handlers[0].flush()
    lines = [orjson.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["n"] for line in lines] == [1, 2]


def test_the_direct_path_writes_the_line_logging_would(
    sserelay_logger: logging.Logger,
) -> None:
    """`log_fields` straight to the handler and `logger.info(extra=...)` through logging
    write the same JSON but for the time; a level that is off writes nothing."""
    out = Recorder()
    _use(sserelay_logger, JsonLineHandler(out))  # type: ignore[arg-type]
    logger = logging.getLogger("sserelay.streams")
    fields = {"event": "stream", "request_id": "r9", "chunks": 4, "ttft_ms": 1.5}
    log_fields(logger, "stream", fields)
    logger.info("stream", extra={"fields": fields})
    direct, classic = out.lines()
    assert direct.pop("time") and classic.pop("time")
    assert direct == classic == {"level": "info", "logger": "sserelay.streams",
                                 "message": "stream", **fields}
    sserelay_logger.setLevel(logging.WARNING)
    log_fields(logger, "stream", fields)
    assert len(out.lines()) == 2
