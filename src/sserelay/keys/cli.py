"""`sserelay keys create|list|revoke|usage`: manage client keys in the SQLite file.

`create` prints the new key alone on stdout (so `KEY=$(sserelay keys create app)` works) and
everything else on stderr; the key is shown this once and only its hash is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from sserelay.keys.database import Database, database_path
from sserelay.keys.ledger import Ledger
from sserelay.keys.store import ClientKey, KeyPolicy, KeyStore, UnknownKeyError

__all__ = ["add_keys_command"]


def add_keys_command(sub: Any) -> None:
    """Add `keys` to the `sserelay` command's subparsers."""
    keys = sub.add_parser(
        "keys", help="create, list and revoke client keys for the /v1 gateway",
        description="Client keys let API clients use the /v1 gateway without the provider "
        "key. They live, hashed, in a SQLite file: --db, else $SSERELAY_DB, else "
        "./sserelay.sqlite3. With no key at all the gateway answers loopback clients only.",
    )
    keys.add_argument("--db", metavar="PATH", help="the SQLite file (see above)")
    keys.add_argument("--config", metavar="PATH",
                      help="take the file from this gateway config's [gateway] database, as "
                      "`sserelay serve --config` does")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("name", help="what the key is for, e.g. the app using it")
    create.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="a model (or alias) the key may use; repeat. Default: all")
    create.add_argument("--max-tokens", type=int, metavar="N",
                        help="cap on output tokens per request: larger requests are clamped, "
                        "requests without a limit get N")
    create.add_argument("--param", action="append", metavar="FIELD",
                        help="a request field the key may send besides model, messages/prompt/"
                        "input, stream and the token limit; repeat. Default: all fields")
    create.add_argument("--refuse-params", action="store_true",
                        help="answer 400 to fields outside --param (default: drop them)")
    prompt = create.add_mutually_exclusive_group()
    prompt.add_argument("--system-prompt", metavar="TEXT",
                        help="sent first in every request; the client cannot remove it")
    prompt.add_argument("--system-prompt-file", metavar="PATH", type=Path,
                        help="the same, read from a UTF-8 file")
    create.set_defaults(func=_create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke a key by id or name; immediate")
    revoke.add_argument("key", metavar="ID_OR_NAME")
    revoke.set_defaults(func=_revoke)

    usage = actions.add_parser("usage", help="tokens used, per key and model")
    usage.set_defaults(func=_usage)


def database_for(args: argparse.Namespace, command: str) -> Database:
    """The SQLite file a command's `--db` / `--config` name: exactly the file `serve --config`
    would use (SSERELAY_GATEWAY_DATABASE included), else $SSERELAY_DB, else the default."""
    explicit = args.db
    if explicit is None and args.config is not None:
        from sserelay.config import ConfigError, load_configuration

        try:
            explicit = load_configuration(args.config).gateway.database
        except ConfigError as exc:
            raise SystemExit(f"sserelay {command}: {exc}") from None
    return Database(database_path(explicit))


def _db(args: argparse.Namespace) -> Database:
    return database_for(args, "keys")


def _create(args: argparse.Namespace) -> int:
    if args.max_tokens is not None and args.max_tokens < 1:
        print("sserelay keys: --max-tokens must be at least 1", file=sys.stderr)
        return 2
    system_prompt = args.system_prompt
    if args.system_prompt_file is not None:
        try:
            system_prompt = args.system_prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"sserelay keys: cannot read {args.system_prompt_file}: {exc.strerror}",
                  file=sys.stderr)
            return 2
    policy = KeyPolicy(
        models=tuple(args.model) or ("*",),
        max_tokens=args.max_tokens,
        params=None if args.param is None else tuple(args.param),
        on_disallowed_param="refuse" if args.refuse_params else "drop",
        system_prompt=system_prompt or None,
    )
    db = _db(args)
    key, secret = KeyStore(db).create(args.name, policy)
    print(secret, flush=True)
    print(f"Created {key.id} ({key.name!r}) in {db.path}: {_describe(key)}.\n"
          "This is the only time the key is shown; sserelay keeps only its hash.",
          file=sys.stderr)
    db.close()
    return 0


def _describe(key: ClientKey) -> str:
    policy = key.policy
    parts = ["models: " + ("all" if "*" in policy.models else ", ".join(policy.models))]
    parts.append(f"max tokens: {policy.max_tokens or 'no cap'}")
    if policy.params is not None:
        parts.append(f"params ({policy.on_disallowed_param} others): "
                     + (", ".join(policy.params) or "essentials only"))
    if policy.system_prompt:
        parts.append("system prompt: yes")
    return "; ".join(parts)


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _list(args: argparse.Namespace) -> int:
    keys = KeyStore(_db(args)).list()
    if args.json:
        for key in keys:
            record = {"id": key.id, "name": key.name, "hint": key.hint,
                      "created_at": key.created_at, "revoked_at": key.revoked_at,
                      "policy": orjson.loads(key.policy.to_json())}
            print(orjson.dumps(record).decode())
        return 0
    if not keys:
        print("No keys: the gateway answers loopback clients only. "
              "Create one with `sserelay keys create NAME`.", file=sys.stderr)
        return 0
    for key in keys:
        state = "live" if key.revoked_at is None else f"revoked {_when(key.revoked_at)}"
        print(f"{key.id}  {key.hint}  {key.name!r}  created {_when(key.created_at)}  {state}"
              f"  ({_describe(key)})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        key = KeyStore(_db(args)).revoke(args.key)
    except UnknownKeyError as exc:
        print(f"sserelay keys: {exc}", file=sys.stderr)
        return 1
    print(f"Revoked {key.id} ({key.name!r}); requests with it are refused from now on.")
    return 0


def _usage(args: argparse.Namespace) -> int:
    db = _db(args)
    names = {k.id: k.name for k in KeyStore(db).list()}
    totals = Ledger(db).totals()
    if not totals:
        print("No usage recorded yet.", file=sys.stderr)
    for row in totals:
        who = "loopback (no key)"
        if row.key_id is not None:
            who = f"{row.key_id} {names.get(row.key_id, '?')!r}"
        print(f"{who}  {row.model}  requests {row.requests}  prompt tokens {row.prompt_tokens}"
              f"  completion tokens {row.completion_tokens}")
    return 0
