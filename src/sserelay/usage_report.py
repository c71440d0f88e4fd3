"""`sserelay usage`: requests and tokens from the usage ledger, as a table.

    sserelay usage                           # per model, everything recorded
    sserelay usage --by day --since 7d       # per day, the last week
    sserelay usage --by key --since 2026-11-01
    sserelay usage --key my-app              # one key (id or name), per model

The ledger is the SQLite file of the gateway (`[gateway] database`, `--db`, `$SSERELAY_DB`):
one row per /v1 request and /v1/streams stream, written when it ends, abandoned streams
included (drained to their usage, or estimated from the chunks relayed). With several
instances (a Redis stream log) they all write the same file, on storage they share
(docs/operations.md).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sserelay.keys.cli import database_for
from sserelay.keys.database import Database
from sserelay.keys.store import KeyStore

__all__ = ["UsageLine", "add_usage_command", "parse_since", "usage_lines"]

_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_GROUPS = {
    "model": "model",
    "key": "key_id",
    "day": "date(at, 'unixepoch', 'localtime')",
}


def parse_since(text: str, now: float | None = None) -> float:
    """`30m`, `24h`, `7d`, `2w` ago, or a date / date and time (`2026-11-01`,
    `2026-11-01T09:30`, local time); raises ValueError with what is accepted."""
    now = time.time() if now is None else now
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        return now - int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration back from now (30m, 24h, 7d, 2w) or a "
            "date such as 2026-11-01 or 2026-11-01T09:30"
        ) from None


@dataclass(frozen=True, slots=True)
class UsageLine:
    group: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated: int
    """Requests whose tokens are estimated (no usage report from the upstream)."""
    aborted: int
    """Requests whose client left before the end."""


def usage_lines(db: Database, *, by: str = "model", since: float | None = None,
                key_id: str | None = None) -> list[UsageLine]:
    conn = db.reader()
    if conn is None:
        return []
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    if key_id is not None:
        where.append("key_id = ?")
        params.append(key_id)
    group = _GROUPS[by]
    sql = (
        f"SELECT {group}, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(estimated), SUM(ending = 'aborted') FROM usage"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" GROUP BY {group} ORDER BY {group}"
    )
    return [UsageLine(*row) for row in conn.execute(sql, params)]


def add_usage_command(sub: Any) -> None:
    """Add `usage` to the `sserelay` command's subparsers."""
    usage = sub.add_parser(
        "usage", help="requests and tokens from the usage ledger, as a table",
        description="Requests and tokens recorded by the /v1 gateway and /v1/streams, from "
        "the SQLite ledger: --db, else the --config file's [gateway] database, else "
        "$SSERELAY_DB, else ./sserelay.sqlite3.",
    )
    usage.add_argument("--since", metavar="WHEN",
                       help="only requests since WHEN: 30m, 24h, 7d, 2w ago, or a date "
                       "(2026-11-01, 2026-11-01T09:30, local time)")
    usage.add_argument("--key", metavar="ID_OR_NAME", help="only this client key")
    usage.add_argument("--by", choices=tuple(_GROUPS), default="model",
                       help="one line per model (default), client key, or day")
    usage.add_argument("--db", metavar="PATH", help="the SQLite file (see above)")
    usage.add_argument("--config", metavar="PATH",
                       help="take the file from this configuration, as `serve --config` does")
    usage.set_defaults(func=_usage)


def _usage(args: argparse.Namespace) -> int:
    try:
        since = None if args.since is None else parse_since(args.since)
    except ValueError as exc:
        print(f"sserelay usage: {exc}", file=sys.stderr)
        return 2
    db = database_for(args, "usage")
    try:
        keys = KeyStore(db).list()
        names = {k.id: k.name for k in keys}
        key_id = None
        if args.key is not None:
            matches = [k.id for k in keys if args.key in (k.id, k.name)]
            if len(matches) != 1:
                problem = "no key has" if not matches else "several keys have"
                print(f"sserelay usage: {problem} the id or name {args.key!r}",
                      file=sys.stderr)
                return 2
            key_id = matches[0]
        lines = usage_lines(db, by=args.by, since=since, key_id=key_id)
    finally:
        db.close()
    if not lines:
        print(f"No usage recorded in {db.path}"
              + (" for that selection." if since or key_id else " yet."), file=sys.stderr)
        return 0
    print(render_table(lines, args.by, names))
    return 0


def _label(line: UsageLine, by: str, names: dict[str, str]) -> str:
    if by != "key":
        return str(line.group)
    if line.group is None:
        return "loopback (no key)"
    return f"{line.group} ({names.get(line.group, '?')})"


def render_table(lines: list[UsageLine], by: str, names: dict[str, str]) -> str:
    headers = [by, "requests", "prompt tokens", "completion tokens", "total tokens",
               "estimated", "abandoned"]
    counts = [[line.requests, line.prompt_tokens, line.completion_tokens,
               line.prompt_tokens + line.completion_tokens, line.estimated, line.aborted]
              for line in lines]
    labels = [_label(line, by, names) for line in lines]
    if len(lines) > 1:
        labels.append("total")
        counts.append([sum(column) for column in zip(*counts, strict=True)])
    table = [headers, *[[label, *map(str, row)] for label, row in zip(labels, counts,
                                                                        strict=True)]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    out = [fmt(table[0]), "  ".join("-" * w for w in widths)]
    out += [fmt(row) for row in table[1:]]
    return "\n".join(out)
