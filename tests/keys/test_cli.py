"""`sserelay keys`, run as a command the way an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sserelay.keys import Database, KeyStore


def keys(db: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sserelay.cli", "keys", "--db", str(db), *args],
        capture_output=True, text=True, check=check,
    )


def test_create_prints_the_key_once_on_stdout(tmp_path: Path) -> None:
    """`create` prints only the key, on stdout, once; `list` never shows it."""
    db = tmp_path / "k.sqlite3"
    created = keys(db, "create", "app", "--model", "fast", "--max-tokens", "100",
                   "--param", "temperature", "--refuse-params", "--system-prompt", "Be brief.")
    secret = created.stdout.strip()
    assert secret.startswith("srk-") and "\n" not in secret
    assert "only time" in created.stderr
    listed = keys(db, "list")
    assert "app" in listed.stdout and secret not in listed.stdout + listed.stderr
    key = KeyStore(Database(db)).authenticate(secret)
    assert key is not None
    policy = key.policy
    assert (policy.models, policy.max_tokens, policy.params, policy.on_disallowed_param,
            policy.system_prompt) == (("fast",), 100, ("temperature",), "refuse", "Be brief.")


def test_revoke_then_list_shows_revoked(tmp_path: Path) -> None:
    """`revoke NAME` revokes; `list --json` reports it; revoking an unknown key fails."""
    db = tmp_path / "k.sqlite3"
    keys(db, "create", "app")
    assert "Revoked" in keys(db, "revoke", "app").stdout
    assert '"revoked_at":null' not in keys(db, "list", "--json").stdout
    missing = keys(db, "revoke", "nope", check=False)
    assert missing.returncode == 1 and "no key" in missing.stderr


def test_db_from_environment(tmp_path: Path) -> None:
    """Without --db the file is $SSERELAY_DB."""
    db = tmp_path / "env.sqlite3"
    subprocess.run([sys.executable, "-m", "sserelay.cli", "keys", "create", "app"],
                   capture_output=True, check=True, env={"SSERELAY_DB": str(db), "PATH": ""})
    assert [k.name for k in KeyStore(Database(db)).list()] == ["app"]


def test_db_from_the_gateway_config(tmp_path: Path) -> None:
    """With --config, the file is the one `serve --config` uses ([gateway] database)."""
    db = tmp_path / "configured.sqlite3"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ndatabase = "{db}"\n[upstreams.a]\n')
    subprocess.run([sys.executable, "-m", "sserelay.cli", "keys", "--config", str(config),
                    "create", "app"], capture_output=True, check=True)
    assert [k.name for k in KeyStore(Database(db)).list()] == ["app"]
