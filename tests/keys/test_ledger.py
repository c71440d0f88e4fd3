"""The usage ledger writes off the caller's thread, in batches, and loses no row on close."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from sserelay.keys import Database, Ledger, UsageRow
from sserelay.keys.ledger import DEFAULT_LEDGER_DELAY, ledger_delay

# Longer than any test: a row in the file before close() was written by a flush, not a timer.
NEVER = 600.0


def usage_row(n: int = 0) -> UsageRow:
    return UsageRow(f"key_{n}", "chat", "m", "up", "m", 1, n, False, "done")


def rows_in_file(path: Path) -> list[UsageRow]:
    """The rows another connection (another process, in production) reads from the file."""
    database = Database(path)
    try:
        return Ledger(database).rows()
    finally:
        database.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    ledger = Ledger(Database(path), delay=NEVER)
    yield ledger
    ledger.close()
    ledger.db.close()


def test_record_leaves_the_row_to_the_writer(ledger: Ledger, path: Path) -> None:
    """`record` does no I/O: the row is not in the file until the writer has written it."""
    ledger.record(usage_row())
    assert rows_in_file(path) == []
    ledger.flush()
    assert rows_in_file(path) == [usage_row()]


def test_the_recording_ledger_reads_its_own_rows_at_once(ledger: Ledger) -> None:
    """`rows()` and `totals()` wait for the rows this ledger recorded, whatever the delay."""
    ledger.record(usage_row(3))
    assert ledger.rows() == [usage_row(3)]
    ledger.record(usage_row(4))
    assert [t.completion_tokens for t in ledger.totals()] == [3, 4]


def test_a_burst_from_many_coroutines_is_all_in_the_file_after_close(
    ledger: Ledger, path: Path, run: Callable[[Coroutine[Any, Any, None]], None]
) -> None:
    """500 streams ending at once on the event loop: close() writes every row, in order."""

    async def stream_ends(n: int) -> None:
        await asyncio.sleep(0)
        ledger.record(usage_row(n))

    async def burst() -> None:
        await asyncio.gather(*(stream_ends(n) for n in range(500)))

    run(burst())
    ledger.close()
    assert [r.completion_tokens for r in rows_in_file(path)] == list(range(500))


def test_rows_recorded_after_close_are_written_at_once(ledger: Ledger, path: Path) -> None:
    """A stream that ends after the gateway closed its ledger still gets its row."""
    ledger.close()
    ledger.record(usage_row(7))
    assert rows_in_file(path) == [usage_row(7)]


def test_rows_are_written_after_the_delay_without_a_flush(path: Path) -> None:
    """With a short delay the writer writes on its own: another reader sees the row."""
    ledger = Ledger(Database(path), delay=0.01)
    try:
        ledger.record(usage_row(1))
        for _ in range(300):  # a bounded wait, not a timing claim
            if rows_in_file(path):
                break
            time.sleep(0.05)
        assert rows_in_file(path) == [usage_row(1)]
    finally:
        ledger.close()
        ledger.db.close()


def test_a_file_that_refuses_writes_logs_and_drops_the_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write failure is logged with the number of rows lost; flush() does not hang."""
    ledger = Ledger(Database(tmp_path / "missing-dir" / "ledger.sqlite3"), delay=NEVER)
    with caplog.at_level(logging.ERROR, logger="sserelay.ledger"):
        ledger.record(usage_row())
        ledger.record(usage_row())
        ledger.flush()
        ledger.close()
    assert "could not record 2 usage row(s)" in caplog.text


def test_a_process_that_exits_without_closing_its_ledger_keeps_its_rows(path: Path) -> None:
    """An exit handler writes what a forgotten ledger still holds (a crash would lose it)."""
    script = (
        "import sys\n"
        "from sserelay.keys import Database, Ledger, UsageRow\n"
        f"ledger = Ledger(Database(sys.argv[1]), delay={NEVER})\n"
        "for n in range(3):\n"
        "    ledger.record(UsageRow(None, 'chat', 'm', 'up', 'm', 1, n, False, 'done'))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert [r.completion_tokens for r in rows_in_file(path)] == [0, 1, 2]


@pytest.mark.parametrize(("value", "delay"), [
    (None, DEFAULT_LEDGER_DELAY), ("", DEFAULT_LEDGER_DELAY), ("0", 0.0), ("2.5", 2.5),
])
def test_ledger_delay_comes_from_the_environment(value: str | None, delay: float) -> None:
    """$SSERELAY_LEDGER_DELAY sets the delay; unset or empty means the default."""
    env = {} if value is None else {"SSERELAY_LEDGER_DELAY": value}
    assert ledger_delay(env) == delay


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_ledger_delay_refuses_what_is_not_a_delay(value: str) -> None:
    """A delay that is not a non-negative number stops the server with a message."""
    with pytest.raises(ValueError, match="SSERELAY_LEDGER_DELAY"):
        ledger_delay({"SSERELAY_LEDGER_DELAY": value})
