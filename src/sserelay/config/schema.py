"""Every setting of the configuration file: its section, name, check and environment name.

The file's sections are the layers an operator thinks in: `[server]`, `[cors]`, `[timeouts]`,
`[limits]`, `[stream_log]`, `[relay]` (the article endpoints and /v1/streams), `[logging]`,
`[metrics]`, and the gateway's own `[gateway]`, `[retry]`, `[upstreams.NAME]`, `[aliases]`,
`[routes]` and `[keys.NAME]` (docs/gateway.md, docs/operations.md).

Each setting is also an environment variable, `SSERELAY_<SECTION>_<NAME>` in capitals
(`SSERELAY_TIMEOUTS_IDLE`, `SSERELAY_UPSTREAMS_OPENAI_BASE_URL`); the names sserelay read
before the file existed still work (`SSERELAY_REDIS_URL`, `SSERELAY_CHAT_MODEL`, ...).

A `Settings` field not placed below lands in `[limits]` under its own name, so a new field
is settable from the file and the environment from the day it is added
(`tests/config/test_loading.py` checks that every field is).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, fields
from types import NoneType, UnionType
from typing import Literal

from sserelay.config.checks import Check, Choice, Flag, Number, Table, Text, Texts
from sserelay.settings import Settings

__all__ = [
    "DERIVED_FIELDS",
    "KEY_POLICY_FIELDS",
    "SCALAR_SECTIONS",
    "SECTIONS",
    "SETTINGS",
    "UPSTREAM_FIELDS",
    "Setting",
    "env_name",
]


def env_name(*parts: str) -> str:
    """`SSERELAY_` and the parts in capitals, anything but letters and digits as `_`."""
    return "SSERELAY_" + "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).upper() for p in parts)


@dataclass(frozen=True, slots=True)
class Setting:
    section: str
    name: str
    check: Check
    help: str
    field: str | None = None
    """The `Settings` field it sets; None for the gateway's own settings."""
    legacy_env: tuple[str, ...] = ()
    secret: bool = False

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return env_name(self.section, self.name)


_SECONDS = Number(unit="seconds")
_PLACES: dict[str, tuple[str, str, Check, str, tuple[str, ...]]] = {
    # field: (section, name, check, help, legacy environment names)
    "host": ("server", "host", Text("an address such as \"127.0.0.1\" or \"0.0.0.0\""),
             "address to listen on", ()),
    "port": ("server", "port", Number(1, 65535, integer=True), "TCP port to listen on", ()),
    "cors_origins": ("cors", "origins", Texts(), "origins whose pages may call sserelay from "
                     "a browser; empty: same origin only", ()),
    "connect_timeout": ("timeouts", "connect", _SECONDS, "to open the connection to the "
                        "upstream", ()),
    "first_token_timeout": ("timeouts", "first_token", _SECONDS, "from the request to the "
                            "upstream's first event", ()),
    "idle_timeout": ("timeouts", "idle", _SECONDS, "between two reads from the upstream", ()),
    "max_duration": ("timeouts", "max_duration", _SECONDS, "for a whole answer", ()),
    "heartbeat": ("timeouts", "heartbeat", _SECONDS, "an SSE comment this often on every "
                  "stream; 0: none", ()),
    "slow_client_timeout": ("timeouts", "slow_client", _SECONDS, "drop a client whose "
                            "connection accepts nothing for this long", ()),
    "redis_url": ("stream_log", "redis_url", Text("a redis://, rediss:// or unix:// URL",
                                                  ("redis://", "rediss://", "unix://")),
                  "the Redis server of the shared stream log", ("SSERELAY_REDIS_URL",)),
    "resumable_chat_completions": ("stream_log", "chat_completions", Flag(),
                                   "streamed /v1/chat/completions answers go through the "
                                   "stream log: ids, Last-Event-ID resume; false relays them "
                                   "straight through", ()),
    "retention": ("stream_log", "retention", _SECONDS, "how long a finished stream stays "
                  "replayable", ()),
    "redis_flush_interval": ("stream_log", "redis_flush", Number(0, 1, unit="seconds"),
                             "with Redis, the writer's batching window: followers on other "
                             "instances see entries up to this much later", ()),
    "redis_unfollowed_flush_interval": ("stream_log", "redis_flush_unfollowed",
                                        Number(0, 10, unit="seconds"),
                                        "with Redis, the window for streams no other instance "
                                        "follows: at most this much of a live stream is lost "
                                        "with its instance", ()),
    "chat_model": ("relay", "chat_model", Text(), "model of /completionChat, "
                   "/completions/chat and /v1/streams", ("SSERELAY_CHAT_MODEL",)),
    "completion_model": ("relay", "completion_model", Text(), "model of /completion",
                         ("SSERELAY_COMPLETION_MODEL",)),
    "header_timeout": ("timeouts", "header", _SECONDS, "for a client to send the request "
                       "line and headers", ()),
    "body_timeout": ("timeouts", "body", _SECONDS, "for a client to send the request body", ()),
    "keepalive_timeout": ("timeouts", "keepalive", _SECONDS, "how long an idle client "
                          "connection is kept open for its next request", ()),
    "shutdown_grace": ("server", "shutdown_grace", _SECONDS, "on SIGTERM, how long running "
                       "streams may finish", ()),
    "max_prompt_chars": ("limits", "max_prompt_chars", Number(1, integer=True),
                         "longest prompt (all messages) on the relay endpoints", ()),
    "max_body_bytes": ("limits", "max_body_bytes", Number(1, integer=True),
                       "largest request body on the relay endpoints", ()),
    "log_file": ("logging", "file", Text("a file path"), "JSON log lines go here; "
                 "default: stderr", ()),
    "log_content": ("logging", "content", Flag(), "also log prompt and answer text", ()),
    "metrics": ("metrics", "enabled", Flag(), "serve GET /metrics", ()),
}
DERIVED_FIELDS = frozenset({"openai_api_key", "openai_base_url", "use_local_model"})
"""Set from OPENAI_API_KEY / OPENAI_BASE_URL, or from `[relay] upstream`, not directly."""


def _check_for(annotation: object) -> Check:
    """A check from a `Settings` field's type, for fields placed automatically."""
    args = typing.get_args(annotation)
    if isinstance(annotation, UnionType) and NoneType in args:
        (annotation,) = (a for a in args if a is not NoneType)
        args = typing.get_args(annotation)
    if annotation is bool:
        return Flag()
    if annotation is int:
        return Number(integer=True)
    if annotation is float:
        return Number()
    if annotation is str:
        return Text()
    if typing.get_origin(annotation) is tuple:
        return Texts()
    if typing.get_origin(annotation) is Literal:
        return Choice(tuple(str(a) for a in args))
    raise TypeError(f"no configuration check for a Settings field of type {annotation!r}")


def _settings_settings() -> list[Setting]:
    hints = typing.get_type_hints(Settings)
    out = []
    for f in fields(Settings):
        if f.name in DERIVED_FIELDS:
            continue
        if f.name in _PLACES:
            section, name, check, help_text, legacy = _PLACES[f.name]
        else:
            section, name, check, help_text, legacy = (
                "limits", f.name, _check_for(hints[f.name]), f.name.replace("_", " "), ()
            )
        # A field kept out of repr() is a secret (a provider key, a signing key).
        out.append(Setting(section, name, check, help_text, field=f.name, legacy_env=legacy,
                           secret=not f.repr))
    return out


_GATEWAY_SETTINGS = [
    Setting("stream_log", "backend", Choice(("memory", "redis")),
            "memory: this process only; redis: shared by every instance (needs redis_url)"),
    Setting("relay", "upstream", Text("the name of an [upstreams.NAME] of kind openai or local"),
            "the upstream of the relay endpoints; default: the first openai or local one"),
    Setting("gateway", "abandoned_streams", Choice(("drain", "cancel")),
            "a stream whose client left: read to its end for the usage, or close it"),
    Setting("gateway", "drain_timeout", _SECONDS, "longest a drained stream may take"),
    Setting("gateway", "first_byte_wait", _SECONDS, "the headers wait this long for the "
            "upstream's first event"),
    Setting("gateway", "heartbeat", _SECONDS, "SSE comment interval on /v1 streams; "
            "default: timeouts.heartbeat"),
    Setting("gateway", "database", Text("a file path"), "the SQLite file of client keys and "
            "the usage ledger; default: $SSERELAY_DB, else ./sserelay.sqlite3"),
    Setting("retry", "attempts", Number(1, integer=True), "tries per upstream for 429 / 5xx "
            "/ no connection"),
    Setting("retry", "backoff", _SECONDS, "before the second try, doubled after"),
    Setting("retry", "max_wait", _SECONDS, "longest wait a client is held for"),
]

SCALAR_SECTIONS: tuple[str, ...] = (
    "server", "cors", "timeouts", "limits", "stream_log", "relay", "logging", "metrics",
    "gateway", "retry",
)
SETTINGS: tuple[Setting, ...] = tuple(sorted(
    _settings_settings() + _GATEWAY_SETTINGS, key=lambda s: SCALAR_SECTIONS.index(s.section)
))
"""The settings of the single-table sections, grouped by section."""
SECTIONS = (*SCALAR_SECTIONS, "upstreams", "aliases", "routes", "keys")

UPSTREAM_FIELDS: dict[str, Check] = {
    "kind": Choice(("openai", "azure", "anthropic", "local")),
    "base_url": Text("an http:// or https:// URL", ("http://", "https://")),
    "endpoint": Text("an https:// URL", ("http://", "https://")),
    "api_key": Text(),
    "api_key_env": Text("the name of an environment variable"),
    "models": Texts(allow_empty=False),
    "responses": Flag(),
    "stream_usage": Flag(),
    "max_tokens_param": Choice(("max_tokens", "max_completion_tokens")),
    "headers": Table(Text()),
    "deployments": Table(Text()),
    "api_version": Text(),
    "connect_timeout": _SECONDS,
    "read_timeout": _SECONDS,
}
"""`[upstreams.NAME]`; the gateway's parser (gateway/config.py) checks how they combine."""

KEY_POLICY_FIELDS: dict[str, Check] = {
    "models": Texts(allow_empty=False),
    "max_tokens": Number(1, integer=True),
    "params": Texts(),
    "refuse_params": Flag(),
    "system_prompt": Text(),
}
"""`[keys.NAME]`: the policy of every client key named NAME (`sserelay keys create NAME`)."""

ALIASES = Table(Text())
ROUTES = Table(Texts(allow_empty=False))
