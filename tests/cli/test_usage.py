"""`sserelay usage` reads the ledger a real relay wrote: the tokens of the streams made here,
the abandoned one included, per model, key and day, filtered by key and time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from sserelay.keys import Database, Ledger
from sserelay.testing.procs import ServerProcess
from sserelay.usage_report import parse_since
from tests.conftest import Upstream, start_relay
from tests.gateway.conftest import create_key, marker, wait_for


@dataclass
class Ledgered:
    db: Path
    key: str


def usage(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sserelay.cli", "usage", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))


def row(table: str, first: str) -> list[str]:
    """The cells of the table line whose first column is `first`."""
    for line in table.splitlines():
        if line.startswith(first + " ") or line.split("  ")[0].strip() == first:
            return line.split()
    raise AssertionError(f"no line for {first!r} in:\n{table}")


@pytest.fixture(scope="module")
def ledgered(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledgered]:
    """A relay used through the openai SDK: a stream, a whole answer, an abandoned stream."""
    db = tmp_path_factory.mktemp("usage") / "keys.sqlite3"
    key = create_key(db, "reporter")
    with start_relay(upstream.url, env={"SSERELAY_GATEWAY_DATABASE": str(db)}) as relay:
        run(relay, key)
        wait_for(lambda: len(_rows(db)) == 3, "three ledger rows")
    yield Ledgered(db, key)


def _rows(db: Path) -> list[object]:
    database = Database(db)
    try:
        return list(Ledger(database).rows())
    finally:
        database.close()


def run(relay: ServerProcess, key: str) -> None:
    with openai.OpenAI(base_url=relay.url + "/v1", api_key=key) as client:
        list(client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: tokens=7]] {marker()}"}]))
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[scenario: tokens=4]] x"}])
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: tokens=30; rate=40]] {marker()}"}])
        for _ in zip(range(3), stream, strict=False):
            pass
        stream.close()


def test_usage_per_model_includes_the_abandoned_stream(ledgered: Ledgered) -> None:
    """Per model: the finished and the abandoned (drained) stream's tokens add up, and the
    abandoned one is counted as such."""
    done = usage(ledgered.db)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header[:2] == ["model", "requests"]
    mini = row(done.stdout, "gpt-4o-mini")
    # requests, prompt, completion, total, estimated, abandoned
    assert (mini[1], mini[3], mini[5], mini[6]) == ("2", "37", "0", "1")
    assert row(done.stdout, "gpt-4o")[3] == "4"
    assert row(done.stdout, "total")[3] == "41"


def test_usage_by_key_and_day_for_one_key(ledgered: Ledgered) -> None:
    """--by key names the key; --key NAME --by day gives today's one line."""
    by_key = usage(ledgered.db, "--by", "key").stdout
    (line,) = [line for line in by_key.splitlines() if "(reporter)" in line]
    cells = line.split("(reporter)")[1].split()
    assert (cells[0], cells[2]) == ("3", "41")  # requests, completion tokens
    by_day = usage(ledgered.db, "--key", "reporter", "--by", "day").stdout.splitlines()
    assert len(by_day) == 3 and by_day[2].split()[1] == "3"


def test_usage_since(ledgered: Ledgered) -> None:
    """--since 1h keeps today's requests; a date to come selects none; nonsense is exit 2."""
    assert row(usage(ledgered.db, "--since", "1h").stdout, "total")[1] == "3"
    future = usage(ledgered.db, "--since", "2999-01-01")
    assert future.returncode == 0 and future.stdout == ""
    assert "No usage recorded" in future.stderr
    bad = usage(ledgered.db, "--since", "yesterday")
    assert bad.returncode == 2 and "expected a duration back from now" in bad.stderr


def test_parse_since_accepts_durations_and_dates() -> None:
    """Durations count back from now; dates are local midnight or the given time."""
    assert parse_since("24h", now=100_000.0) == 100_000.0 - 86_400
    assert parse_since("2w", now=2_000_000.0) == 2_000_000.0 - 1_209_600
    assert parse_since("2026-11-01T09:30") < parse_since("2026-11-02")
