"""Usage rows written off the event loop: queued by `Ledger.record`, inserted in batches.

One INSERT in autocommit mode is a transaction of its own: ~20 µs of CPU, a write() to the
WAL, and every ~1000 pages a checkpoint that fsyncs the file. On the event loop that is
time every other stream waits. Here one thread, with its own connection, waits `delay`
seconds after the first queued row (so that a burst of stream endings costs one
transaction), then inserts everything queued.

A row is lost only if the process dies before writing it (SIGKILL, a crash, a power cut
within `delay`): `close()` writes what is queued, the gateway closes its ledger on a
graceful stop, and an exit handler closes writers nobody closed.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from sserelay.keys.database import Database

__all__ = ["UsageWriter"]

log = logging.getLogger("sserelay.ledger")

_INSERT = (
    "INSERT INTO usage (at, key_id, api, model, upstream, upstream_model, prompt_tokens,"
    " completion_tokens, estimated, ending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

UsageParams = tuple[Any, ...]
"""One row's values, in `_INSERT`'s order."""


class UsageWriter:
    """Inserts queued usage rows into the SQLite file at `path` from a thread of its own."""

    def __init__(self, path: Path, *, delay: float) -> None:
        self.path = path
        self.delay = delay
        self._cond = threading.Condition()
        self._queue: list[UsageParams] = []
        self._queued = 0  # rows ever queued
        self._settled = 0  # rows ever written, or given up on (logged)
        self._hurry = False  # a flush is waiting: skip the rest of the delay
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, params: UsageParams) -> None:
        """Queue one row (never blocks on SQLite); after `close()`, write it here and now."""
        with self._cond:
            if not self._closed:
                self._queue.append(params)
                self._queued += 1
                if self._thread is None:
                    # Started on the first row, so that readers (`sserelay keys usage`) and
                    # gateways that never record cost no thread.
                    self._thread = threading.Thread(
                        target=self._run, name="sserelay-usage-writer", daemon=True
                    )
                    self._thread.start()
                    _open_writers.add(self)
                elif len(self._queue) == 1:
                    # Only the first row wakes the writer: waking it per row of a burst
                    # would hand it the GIL once per row, for nothing.
                    self._cond.notify_all()
                return
        db = Database(self.path)
        try:
            _insert(db, [params])
        finally:
            db.close()

    def flush(self) -> None:
        """Return once every row queued before this call is in the file."""
        with self._cond:
            target = self._queued
            if self._settled < target:
                self._hurry = True
                self._cond.notify_all()
            self._cond.wait_for(lambda: self._settled >= target or self._thread is None)

    def close(self) -> None:
        """Write what is queued and stop the thread; later rows are written synchronously."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        db = Database(self.path)
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                    if not self._queue:
                        return  # closed, and nothing left
                    # Let a burst gather; a flush or close cuts the wait short.
                    self._cond.wait_for(lambda: self._hurry or self._closed, self.delay)
                    batch, self._queue = self._queue, []
                    self._hurry = False
                try:
                    _insert(db, batch)
                finally:
                    with self._cond:
                        self._settled += len(batch)
                        self._cond.notify_all()
        finally:
            db.close()
            with self._cond:
                self._thread = None
                self._cond.notify_all()
            _open_writers.discard(self)


def _insert(db: Database, batch: list[UsageParams]) -> None:
    """One transaction for the batch. A failure is logged and the batch dropped: the
    streams were relayed already, and a file that refuses writes would refuse a retry."""
    try:
        conn = db.writer()
        conn.execute("BEGIN")
        try:
            conn.executemany(_INSERT, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except (sqlite3.Error, OSError):
        log.exception("could not record %d usage row(s) in %s", len(batch), db.path)


_open_writers: weakref.WeakSet[UsageWriter] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    # The writer thread is a daemon (a forgotten ledger must not keep a process alive), so
    # the interpreter would not wait for it: write what is queued before it goes.
    for writer in list(_open_writers):
        writer.close()
