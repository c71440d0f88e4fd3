"""`sserelay config check FILE` and `sserelay config show [--config FILE]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sserelay.config.loading import load_configuration
from sserelay.config.rendering import render_configuration
from sserelay.gateway.config import ConfigError

__all__ = ["add_config_command"]


def add_config_command(sub: Any) -> None:
    """Add `config` to the `sserelay` command's subparsers."""
    config = sub.add_parser(
        "config", help="check a configuration file, or show the effective configuration",
        description="sserelay reads one TOML file (serve --config FILE), then environment "
        "variables SSERELAY_<SECTION>_<NAME> over it, then serve's flags over both. "
        "See sserelay.example.toml and docs/operations.md.",
    )
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate FILE (with the environment's "
                               "overrides) and exit 2 naming the first mistake")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_check)
    show = actions.add_parser("show", help="print the effective configuration, secrets masked")
    show.add_argument("--config", metavar="FILE", help="the file `serve --config` would read")
    show.set_defaults(func=_show)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_configuration(args.file)
    except ConfigError as exc:
        print(f"sserelay: {exc}", file=sys.stderr)
        return 2
    upstreams = ", ".join(f"{u.name} ({u.kind})" for u in config.gateway.upstreams)
    log = "Redis" if config.settings.redis_url else "memory"
    print(f"{args.file}: valid. Upstreams: {upstreams}; stream log: {log}; serving on "
          f"{config.settings.host}:{config.settings.port}.")
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        config = load_configuration(args.config)
    except ConfigError as exc:
        print(f"sserelay: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_configuration(config))
    return 0
