"""The effective configuration: the TOML file, then the environment over it, then flags.

`load_configuration(path, env=..., flags=...)` reads everything, checks every value where it
came from, and returns the `Settings` of the relay endpoints and the `GatewayConfig` of /v1.
A mistake raises `ConfigError` with one line naming where the value came from, the setting,
the value, and what was expected:

    sserelay.toml: timeouts.idle = -1: expected a number of seconds, 0 or more
    SSERELAY_SERVER_PORT = "http" (server.port): expected an integer from 1 to 65535
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sserelay.config.checks import Check, Invalid, show_value
from sserelay.config.schema import (
    ALIASES,
    KEY_POLICY_FIELDS,
    ROUTES,
    SECTIONS,
    SETTINGS,
    UPSTREAM_FIELDS,
    Setting,
    env_name,
)
from sserelay.gateway.config import ConfigError, GatewayConfig, UpstreamConfig
from sserelay.keys.store import KeyPolicy
from sserelay.settings import LOCAL_MODEL_NAME, Settings

__all__ = ["Configuration", "load_configuration"]

_BY_PATH = {s.path: s for s in SETTINGS}
_BY_FIELD = {s.field: s for s in SETTINGS if s.field}
_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class Configuration:
    settings: Settings
    gateway: GatewayConfig
    path: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    """Where each setting that is not a default came from: the file, a variable, a flag."""
    relay_upstream: str | None = None
    """The `[upstreams.NAME]` the relay endpoints use, when the file has upstreams."""


class _Reader:
    """Collects values with their origin; every value is checked where it enters."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.sources: dict[str, str] = {}

    def check(self, check: Check, value: object, path: str, origin: str,
              raw: str | None = None) -> Any:
        try:
            return check(value)
        except Invalid as bad:
            shown = show_value(raw if raw is not None else value)
            if origin == self.where:
                at = f"{self.where}: {path} = {shown}"
            else:
                at = f"{origin} = {shown} ({path})"
            raise ConfigError(f"{at}: expected {bad.expected}") from None


def _read_file(path: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} = {show_value(value)}: expected a table, [{name}]")
    return value


def _only(table: Mapping[str, Any], known: list[str], at: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{at}: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(known)}")


def _env_overrides(env: Mapping[str, str], setting: Setting) -> tuple[str, str] | None:
    for name in (setting.env, *setting.legacy_env):
        text = env.get(name)
        if text:
            return name, text
    return None


def _named_tables(data: dict[str, Any], section: str, fields: Mapping[str, Check],
                  env: Mapping[str, str], reader: _Reader) -> dict[str, dict[str, Any]]:
    """`[upstreams.NAME]` / `[keys.NAME]`: every field checked, the environment's
    `SSERELAY_<SECTION>_<NAME>_<FIELD>` over the file's."""
    tables = _table(data, section, reader.where)
    out: dict[str, dict[str, Any]] = {}
    for name, raw in tables.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"{reader.where}: {section}.{name} = {show_value(raw)}: "
                              f"expected a table, [{section}.{name}]")
        table = dict(raw)
        _only(table, list(fields), f"{reader.where}: [{section}.{name}]")
        for key, check in fields.items():
            path = f"{section}.{name}.{key}"
            variable = env_name(section, name, key)
            if env.get(variable):
                text = env[variable]
                table[key] = reader.check(check, check.from_text(text), path, variable, text)
                reader.sources[path] = variable
            elif key in table:
                table[key] = reader.check(check, table[key], path, reader.where)
                reader.sources[path] = reader.where
        out[str(name)] = table
    return out


def _unknown_variables(env: Mapping[str, str], data: Mapping[str, Any]) -> None:
    """A variable in one of the file's sections that names no setting is a typo."""
    known = {s.env for s in SETTINGS} | {"SSERELAY_ALIASES", "SSERELAY_ROUTES"}
    for section, fields in (("upstreams", UPSTREAM_FIELDS), ("keys", KEY_POLICY_FIELDS)):
        tables = data.get(section, {})
        for name in tables if isinstance(tables, dict) else ():
            known |= {env_name(section, name, f) for f in fields}
    prefixes = tuple(env_name(s) + "_" for s in SECTIONS)
    for variable in env:
        if variable.startswith(prefixes) and variable not in known:
            hint = ""
            if variable.startswith(("SSERELAY_UPSTREAMS_", "SSERELAY_KEYS_")):
                hint = " (the environment can set the settings of tables the file defines)"
            raise ConfigError(f"{variable}: no such setting{hint}; see `sserelay config show` "
                              "for the names")


def _plain(value: Any) -> Any:
    """Tuples back to lists, as TOML gives them (the gateway's parser expects lists)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def load_configuration(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Configuration:
    """The configuration `sserelay serve` runs with; raises ConfigError on any mistake.

    `flags` are `Settings` field names and values (None: not given), as `serve` parsed them.
    """
    env = os.environ if env is None else env
    where = str(path) if path is not None else "the environment"
    data = _read_file(str(path)) if path is not None else {}
    reader = _Reader(where)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}"
                          f"; known: {', '.join(SECTIONS)}")
    _unknown_variables(env, data)

    # The single-table sections: file, then environment, then flags.
    values: dict[str, Any] = {}
    for section in {s.section for s in SETTINGS}:
        table = _table(data, section, where)
        _only(table, [s.name for s in SETTINGS if s.section == section], f"{where}: [{section}]")
        for name, value in table.items():
            setting = _BY_PATH[f"{section}.{name}"]
            values[setting.path] = reader.check(setting.check, value, setting.path, where)
            reader.sources[setting.path] = where
    for setting in SETTINGS:
        found = _env_overrides(env, setting)
        if found is not None:
            variable, text = found
            values[setting.path] = reader.check(
                setting.check, setting.check.from_text(text), setting.path, variable, text
            )
            reader.sources[setting.path] = variable
    for field_name, value in (flags or {}).items():
        if value is None:
            continue
        setting = _BY_FIELD[field_name]
        flag = "--" + field_name.replace("_", "-")
        values[setting.path] = reader.check(setting.check, value, setting.path, flag)
        reader.sources[setting.path] = flag

    backend = values.get("stream_log.backend")
    if backend == "redis" and not values.get("stream_log.redis_url"):
        raise ConfigError(f"{_origin(reader, 'stream_log.backend')}: stream_log.backend = "
                          '"redis" needs stream_log.redis_url (or SSERELAY_STREAM_LOG_REDIS_URL)')
    if backend == "memory" and values.get("stream_log.redis_url"):
        raise ConfigError(f"{_origin(reader, 'stream_log.redis_url')}: stream_log.redis_url is "
                          'set but stream_log.backend = "memory"; remove one of them')

    overrides = {s.field: values[s.path] for s in SETTINGS if s.field and s.path in values}
    settings = Settings.from_env(env, **overrides)

    # The gateway's tables, checked field by field, then combined by its own parser.
    upstreams = _named_tables(data, "upstreams", UPSTREAM_FIELDS, env, reader)
    policies = _named_tables(data, "keys", KEY_POLICY_FIELDS, env, reader)
    aliases = _merged(data, "aliases", ALIASES, env, reader)
    routes = _merged(data, "routes", ROUTES, env, reader)
    gateway_data: dict[str, Any] = {
        "gateway": {k.split(".")[1]: v for k, v in values.items() if k.startswith("gateway.")},
        "retry": {k.split(".")[1]: v for k, v in values.items() if k.startswith("retry.")},
        "upstreams": upstreams, "aliases": aliases, "routes": routes,
    }
    gateway_data["gateway"].setdefault("heartbeat", settings.heartbeat)
    for table in upstreams.values():
        table.setdefault("connect_timeout", settings.connect_timeout)
    # Variables for api_key_env are read by the gateway's parser from `env`.
    default = None
    if not upstreams:
        default = GatewayConfig.from_settings(settings)
        if settings.use_local_model:  # its address is known once `serve` has started it
            default = dataclasses.replace(default, upstreams=tuple(
                dataclasses.replace(u, base_url=None) for u in default.upstreams))
    gateway = GatewayConfig.parse(_plain(gateway_data), where, env, default=default)
    gateway = dataclasses.replace(gateway, key_policies={
        name: _policy(table) for name, table in policies.items()
    })

    relay_name = None
    if upstreams:
        relay = _relay_upstream(gateway, values.get("relay.upstream"), reader)
        if relay is not None:
            relay_name = relay.name
            settings = _relay_settings(settings, relay, values)
    elif "relay.upstream" in values:
        raise ConfigError(f"{_origin(reader, 'relay.upstream')}: relay.upstream = "
                          f"{show_value(values['relay.upstream'])}: expected the name of an "
                          "[upstreams.NAME], but the file defines none")
    return Configuration(settings, gateway, None if path is None else str(path),
                         reader.sources, relay_name)


def _origin(reader: _Reader, path: str) -> str:
    return reader.sources.get(path, reader.where)


def _merged(data: dict[str, Any], section: str, check: Check, env: Mapping[str, str],
            reader: _Reader) -> dict[str, Any]:
    """`[aliases]`, `[routes]`: the file's table, with `SSERELAY_ALIASES` / `_ROUTES` (a
    TOML inline table) added over it name by name."""
    table: dict[str, Any] = reader.check(check, _table(data, section, reader.where), section,
                                         reader.where)
    if table:
        reader.sources[section] = reader.where
    variable = env_name(section)
    if env.get(variable):
        text = env[variable]
        table.update(reader.check(check, check.from_text(text), section, variable, text))
        reader.sources[section] = variable
    return table


def _policy(table: Mapping[str, Any]) -> KeyPolicy:
    params = table.get("params")
    return KeyPolicy(
        models=tuple(table.get("models", ("*",))),
        max_tokens=table.get("max_tokens"),
        params=None if params is None else tuple(params),
        on_disallowed_param="refuse" if table.get("refuse_params") else "drop",
        system_prompt=table.get("system_prompt"),
    )


def _relay_upstream(gateway: GatewayConfig, name: str | None, reader: _Reader
                    ) -> UpstreamConfig | None:
    usable = [u for u in gateway.upstreams if u.kind in ("openai", "local")]
    if name is None:
        return usable[0] if usable else None
    for upstream in usable:
        if upstream.name == name:
            return upstream
    choices = ", ".join(u.name for u in usable) or "none in this file"
    raise ConfigError(f"{_origin(reader, 'relay.upstream')}: relay.upstream = "
                      f"{show_value(name)}: expected the name of an [upstreams.NAME] of kind "
                      f"openai or local ({choices})")


def _relay_settings(settings: Settings, relay: UpstreamConfig, values: Mapping[str, Any]
                    ) -> Settings:
    """The relay endpoints take their upstream from the file, key included: never the
    environment's OPENAI_API_KEY meant for another upstream."""
    local = relay.kind == "local"
    models: dict[str, Any]
    if local:
        models = {"chat_model": LOCAL_MODEL_NAME, "completion_model": LOCAL_MODEL_NAME}
    else:  # not the local model's names, which from_env picks when OPENAI_* are unset
        listed = [m for m in relay.models if m != "*"]
        models = {"chat_model": listed[0] if listed else _DEFAULTS.chat_model,
                  "completion_model": _DEFAULTS.completion_model}
    models = {k: v for k, v in models.items() if f"relay.{k}" not in values}
    return dataclasses.replace(
        settings, openai_base_url=(relay.base_url or "").rstrip("/"),
        openai_api_key=relay.api_key, use_local_model=local, **models,
    )
