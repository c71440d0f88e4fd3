"""The gateway's configuration: upstreams, aliases, routes, retries, the abandoned-stream policy.

Read from a TOML file (`sserelay serve --config path.toml`, stdlib `tomllib`); see
docs/gateway.md, "Configuration", for the format. Without a file the gateway has one
upstream taken from the environment exactly as the article endpoints do: OpenAI (or the
OpenAI-compatible server at OPENAI_BASE_URL), or else the embedded SmolLM2 model.

Provider keys never live in the file unless the operator insists: `api_key_env` names the
environment variable that holds one.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sserelay.keys.store import KeyPolicy
from sserelay.settings import LOCAL_MODEL_NAME, OPENAI_DEFAULT_BASE_URL, Settings

__all__ = [
    "ConfigError",
    "GatewayConfig",
    "RetryConfig",
    "UpstreamConfig",
]

Kind = Literal["openai", "azure", "anthropic", "local"]
Abandoned = Literal["drain", "cancel"]
_KINDS: tuple[Kind, ...] = ("openai", "azure", "anthropic", "local")
_DEFAULT_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY",
                "anthropic": "ANTHROPIC_API_KEY"}


class ConfigError(ValueError):
    """The configuration cannot work; the message names the file and the setting."""


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    name: str
    kind: Kind
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ("*",)
    """The model names routed here, as the upstream knows them; "*" takes any name."""
    responses: bool = False
    stream_usage: bool = True
    max_tokens_param: str = "max_tokens"
    headers: Mapping[str, str] = field(default_factory=dict)
    deployments: Mapping[str, str] = field(default_factory=dict)
    api_version: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float | None = 300.0


@dataclass(frozen=True, slots=True)
class RetryConfig:
    attempts: int = 3
    """Tries per upstream for a 429, a 5xx or no connection, before the next upstream."""
    backoff: float = 0.5
    """Seconds before the second try, doubled for each later one (when no Retry-After)."""
    max_wait: float = 10.0
    """The longest wait sserelay holds a client for; a longer Retry-After is not waited
    for (the next upstream is tried, or the client gets the 429 and its Retry-After)."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    upstreams: tuple[UpstreamConfig, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    retry: RetryConfig = field(default_factory=RetryConfig)
    abandoned: Abandoned = "drain"
    """A stream whose client left: read to the end for its usage, or cancel at once."""
    drain_timeout: float = 120.0
    first_byte_wait: float = 10.0
    """How long the gateway holds the response headers back waiting for the upstream's
    first event (so that an early failure is still a real HTTP status) before it starts the
    stream anyway and keeps waiting inside it."""
    heartbeat: float | None = 15.0
    """An SSE comment after this many silent seconds, so proxies keep the stream open."""
    slow_client_timeout: float | None = 30.0
    """A client whose connection accepts nothing for this long is dropped (`serve
    --slow-client-timeout`), so a reader at one byte a second cannot hold a stream for ever."""
    database: str | None = None
    source: str = "the environment"
    key_policies: Mapping[str, KeyPolicy] = field(default_factory=dict)
    """`[keys.NAME]` of the configuration file: the policy of every key named NAME, in
    place of the one stored with it (sserelay.config)."""

    @property
    def needs_local_model(self) -> bool:
        return any(u.kind == "local" and u.base_url is None for u in self.upstreams)

    def with_local_model(self, base_url: str) -> GatewayConfig:
        """The same configuration with the embedded model's address filled in."""
        upstreams = tuple(
            dataclasses.replace(u, base_url=base_url) if u.kind == "local" else u
            for u in self.upstreams
        )
        return dataclasses.replace(self, upstreams=upstreams)

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        """One upstream from the environment, as the article endpoints use, and their
        heartbeat (`serve --heartbeat`)."""
        if settings.use_local_model:
            local = UpstreamConfig(
                name="local", kind="local", base_url=settings.openai_base_url,
                models=(LOCAL_MODEL_NAME, "*"),
            )
            return cls(upstreams=(local,), aliases={"fast": LOCAL_MODEL_NAME},
                       heartbeat=settings.heartbeat or None)
        is_openai = settings.openai_base_url.rstrip("/") == OPENAI_DEFAULT_BASE_URL
        upstream = UpstreamConfig(
            name="openai", kind="openai", base_url=settings.openai_base_url,
            api_key=settings.openai_api_key, models=("*",), responses=is_openai,
            max_tokens_param="max_completion_tokens" if is_openai else "max_tokens",
            connect_timeout=settings.connect_timeout, read_timeout=settings.idle_timeout or None,
        )
        return cls(upstreams=(upstream,), heartbeat=settings.heartbeat or None)

    @classmethod
    def load(cls, path: str | os.PathLike[str], env: Mapping[str, str] | None = None
             ) -> GatewayConfig:
        """Read and check a TOML file; raise ConfigError naming what is wrong."""
        env = os.environ if env is None else env
        where = str(path)
        try:
            with Path(path).open("rb") as file:
                data = tomllib.load(file)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc})") from None
        return _parse(data, where, env)

    @classmethod
    def parse(cls, data: dict[str, Any], where: str, env: Mapping[str, str], *,
              default: GatewayConfig | None = None) -> GatewayConfig:
        """The gateway's tables of an already read file (sserelay.config); without
        `[upstreams]`, `default`'s upstreams and aliases (the environment's)."""
        return _parse(data, where, env, default)


def _parse(data: dict[str, Any], where: str, env: Mapping[str, str],
           default: GatewayConfig | None = None) -> GatewayConfig:
    _only(data, {"gateway", "retry", "upstreams", "aliases", "routes"}, where)
    raw_upstreams = _table(data, "upstreams", where)
    if not raw_upstreams and default is None:
        raise ConfigError(f"{where}: define at least one [upstreams.NAME] table")
    upstreams = tuple(
        _upstream(name, _as_table(value, f"{where}: [upstreams.{name}]"), where, env)
        for name, value in raw_upstreams.items()
    ) if raw_upstreams or default is None else default.upstreams
    names = {u.name for u in upstreams}
    aliases = dict(default.aliases) if default is not None and not raw_upstreams else {}
    aliases.update({
        str(k): _str(v, f"{where}: aliases.{k}") for k, v in _table(data, "aliases", where).items()
    })
    routes: dict[str, tuple[str, ...]] = {}
    for model, order in _table(data, "routes", where).items():
        listed = _str_list(order, f"{where}: routes.{model}")
        unknown = [n for n in listed if n not in names]
        if unknown or not listed:
            raise ConfigError(
                f"{where}: routes.{model} must list configured upstreams; unknown: {unknown}"
            )
        routes[str(model)] = tuple(listed)
    gateway = _table(data, "gateway", where)
    _only(gateway, {"abandoned_streams", "drain_timeout", "first_byte_wait", "heartbeat",
                    "database"}, f"{where}: [gateway]")
    heartbeat = _num(gateway.get("heartbeat", 15.0), f"{where}: gateway.heartbeat")
    abandoned = gateway.get("abandoned_streams", "drain")
    if abandoned not in ("drain", "cancel"):
        raise ConfigError(f'{where}: gateway.abandoned_streams must be "drain" or "cancel", '
                          f"not {abandoned!r}")
    retry_table = _table(data, "retry", where)
    _only(retry_table, {"attempts", "backoff", "max_wait"}, f"{where}: [retry]")
    retry = RetryConfig(
        attempts=_int(retry_table.get("attempts", 3), f"{where}: retry.attempts", minimum=1),
        backoff=_num(retry_table.get("backoff", 0.5), f"{where}: retry.backoff"),
        max_wait=_num(retry_table.get("max_wait", 10.0), f"{where}: retry.max_wait"),
    )
    database = gateway.get("database")
    return GatewayConfig(
        upstreams=upstreams, aliases=aliases, routes=routes, retry=retry,
        abandoned=abandoned,
        drain_timeout=_num(gateway.get("drain_timeout", 120.0), f"{where}: gateway.drain_timeout"),
        first_byte_wait=_num(gateway.get("first_byte_wait", 10.0),
                             f"{where}: gateway.first_byte_wait"),
        heartbeat=heartbeat or None,
        database=None if database is None else _str(database, f"{where}: gateway.database"),
        source=where,
    )


_UPSTREAM_KEYS = {
    "kind", "base_url", "endpoint", "api_key", "api_key_env", "models", "responses",
    "stream_usage", "max_tokens_param", "headers", "deployments", "api_version",
    "connect_timeout", "read_timeout",
}


def _upstream(name: str, table: dict[str, Any], where: str, env: Mapping[str, str]
              ) -> UpstreamConfig:
    at = f"{where}: [upstreams.{name}]"
    _only(table, _UPSTREAM_KEYS, at)
    kind = table.get("kind", "openai")
    if kind not in _KINDS:
        raise ConfigError(f"{at}: kind must be one of {', '.join(_KINDS)}, not {kind!r}")
    key_env = table.get("api_key_env", _DEFAULT_ENV.get(kind))
    api_key = table.get("api_key")
    if api_key is None and key_env:
        api_key = env.get(_str(key_env, f"{at} api_key_env")) or None
    base_url = table.get("base_url", table.get("endpoint"))
    deployments = {str(k): _str(v, f"{at} deployments.{k}")
                   for k, v in _as_table(table.get("deployments", {}), at).items()}
    if kind == "openai":
        base_url = base_url or OPENAI_DEFAULT_BASE_URL
    elif kind == "anthropic":
        base_url = base_url or "https://api.anthropic.com"
    elif kind == "azure":
        if not base_url:
            raise ConfigError(f'{at}: an Azure upstream needs endpoint = "https://NAME.openai.azure.com"')
        if not deployments:
            raise ConfigError(f'{at}: an Azure upstream needs deployments = {{ MODEL = "NAME" }}')
    if kind == "local":
        models = tuple(_str_list(table.get("models", [LOCAL_MODEL_NAME]), f"{at} models"))
    elif kind == "azure":
        models = tuple(deployments)
    else:
        models = tuple(_str_list(table.get("models", ["*"]), f"{at} models"))
    is_openai = kind == "openai" and str(base_url).rstrip("/") == OPENAI_DEFAULT_BASE_URL
    default_param = "max_completion_tokens" if is_openai else "max_tokens"
    max_param = table.get("max_tokens_param", default_param)
    if max_param not in ("max_tokens", "max_completion_tokens"):
        raise ConfigError(f'{at}: max_tokens_param is "max_tokens" or "max_completion_tokens", '
                          f"not {max_param!r}")
    read_timeout = table.get("read_timeout", 300.0)
    return UpstreamConfig(
        name=name, kind=kind, base_url=None if base_url is None else _str(base_url, at),
        api_key=api_key, models=models,
        responses=_bool(table.get("responses", is_openai), f"{at} responses"),
        stream_usage=_bool(table.get("stream_usage", True), f"{at} stream_usage"),
        max_tokens_param=max_param,
        headers={str(k): _str(v, f"{at} headers.{k}")
                 for k, v in _as_table(table.get("headers", {}), at).items()},
        deployments=deployments,
        api_version=None if "api_version" not in table else _str(table["api_version"], at),
        connect_timeout=_num(table.get("connect_timeout", 10.0), f"{at} connect_timeout"),
        read_timeout=None if read_timeout == 0 else _num(read_timeout, f"{at} read_timeout"),
    )


def _only(table: Mapping[str, Any], allowed: set[str], at: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{at}: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(allowed))}")


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    return _as_table(data.get(name, {}), f"{where}: [{name}]")


def _as_table(value: object, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{at} must be a table, not {value!r}")
    return value


def _str(value: object, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{at} must be a non-empty string, not {value!r}")
    return value


def _str_list(value: object, at: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{at} must be a list of strings, not {value!r}")
    return value


def _bool(value: object, at: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{at} must be true or false, not {value!r}")
    return value


def _num(value: object, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{at} must be a non-negative number, not {value!r}")
    return float(value)


def _int(value: object, at: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{at} must be an integer of at least {minimum}, not {value!r}")
    return value
