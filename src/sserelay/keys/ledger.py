"""The usage ledger: prompt and completion tokens per key and model, one row per request.

Rows come from the upstream's own usage report (the usage chunk, `response.completed`,
Anthropic's `message_start`/`message_delta`). A stream that ends without one (the client
left and abandoned streams are cancelled, or the upstream broke off) is recorded with the
number of content chunks relayed as its completion tokens and `estimated = 1`.

`record` does no I/O: rows are inserted in batches by a thread (`usage_writer`), at most
`$SSERELAY_LEDGER_DELAY` seconds (default 0.1) after they are recorded. `rows()` and
`totals()` wait for the rows this ledger recorded; another process (`sserelay usage`) sees
them up to that delay later. `close()` writes what is queued.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sserelay.keys.database import Database
from sserelay.keys.usage_writer import UsageWriter

__all__ = ["DEFAULT_LEDGER_DELAY", "Ledger", "Usage", "UsageRow", "UsageTotal", "ledger_delay"]

DEFAULT_LEDGER_DELAY = 0.1


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any]) -> Usage:
        """Chat and legacy completions: `prompt_tokens`, `completion_tokens`."""
        return cls(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))

    @classmethod
    def from_responses(cls, usage: Mapping[str, Any]) -> Usage:
        """The Responses API: `input_tokens`, `output_tokens`."""
        return cls(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")))


@dataclass(frozen=True, slots=True)
class UsageRow:
    key_id: str | None
    api: str
    model: str
    upstream: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    ending: str


@dataclass(frozen=True, slots=True)
class UsageTotal:
    key_id: str | None
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


log = logging.getLogger("sserelay.ledger")


def ledger_delay(env: Mapping[str, str] | None = None) -> float:
    """`$SSERELAY_LEDGER_DELAY` seconds, else 0.1: how long a recorded row may wait to be
    written, so that rows recorded together are written in one transaction."""
    env = os.environ if env is None else env
    raw = env.get("SSERELAY_LEDGER_DELAY")
    if not raw:
        return DEFAULT_LEDGER_DELAY
    try:
        delay = float(raw)
    except ValueError:
        raise ValueError(
            f"SSERELAY_LEDGER_DELAY must be a number of seconds, not {raw!r}"
        ) from None
    if not 0 <= delay < math.inf:
        raise ValueError(f"SSERELAY_LEDGER_DELAY must be 0 or more seconds, not {raw!r}")
    return delay


class Ledger:
    def __init__(self, db: Database, *, delay: float | None = None) -> None:
        self.db = db
        self.listeners: list[Callable[[UsageRow], None]] = []
        """Told of every row as it is recorded (metrics and logs, sserelay.observability)."""
        self._writer = UsageWriter(db.path, delay=ledger_delay() if delay is None else delay)

    def record(self, row: UsageRow) -> None:
        """Tell the listeners, and queue the row for the writer thread (no I/O here)."""
        for listener in self.listeners:
            try:
                listener(row)
            except Exception:  # reporting must never cost the row
                log.exception("a usage listener failed")
        self._writer.put(
            (time.time(), row.key_id, row.api, row.model, row.upstream, row.upstream_model,
             row.prompt_tokens, row.completion_tokens, int(row.estimated), row.ending)
        )

    def flush(self) -> None:
        """Return once every row recorded so far is in the file (blocks: not on the loop)."""
        self._writer.flush()

    def close(self) -> None:
        """Write the rows still queued and stop the writer thread; rows recorded later are
        written at once, on the caller's thread."""
        self._writer.close()

    def rows(self) -> list[UsageRow]:
        self.flush()
        conn = self.db.reader()
        if conn is None:
            return []
        cursor = conn.execute(
            "SELECT key_id, api, model, upstream, upstream_model, prompt_tokens,"
            " completion_tokens, estimated, ending FROM usage ORDER BY id"
        )
        return [
            UsageRow(
                key_id=row[0], api=row[1], model=row[2], upstream=row[3], upstream_model=row[4],
                prompt_tokens=row[5], completion_tokens=row[6], estimated=bool(row[7]),
                ending=row[8],
            )
            for row in cursor
        ]

    def totals(self) -> list[UsageTotal]:
        self.flush()
        conn = self.db.reader()
        if conn is None:
            return []
        cursor = conn.execute(
            "SELECT key_id, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens)"
            " FROM usage GROUP BY key_id, model ORDER BY key_id, model"
        )
        return [UsageTotal(*row) for row in cursor]
