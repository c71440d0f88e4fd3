"""The effective configuration as a TOML file, secrets masked (`sserelay config show`).

Every value is shown, defaults included; a value that is not a default says where it came
from in a comment. Provider keys, passwords in URLs and credential-like headers are masked:
the output is safe to paste into an issue.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sserelay.config.checks import show_value
from sserelay.config.loading import Configuration
from sserelay.config.schema import SETTINGS, Setting
from sserelay.gateway.config import UpstreamConfig
from sserelay.keys.database import database_path

__all__ = ["MASK", "mask_url", "render_configuration"]

MASK = "********"
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "password")


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", f":{MASK}@", 1)
    return url


def _value_of(config: Configuration, setting: Setting) -> Any:
    settings, gateway = config.settings, config.gateway
    if setting.field is not None:
        value = getattr(settings, setting.field)
        if setting.field == "redis_url" and value:
            return mask_url(value)
        return MASK if setting.secret and value else value
    return {
        "stream_log.backend": "redis" if settings.redis_url else "memory",
        "relay.upstream": config.relay_upstream,
        "gateway.abandoned_streams": gateway.abandoned,
        "gateway.drain_timeout": gateway.drain_timeout,
        "gateway.first_byte_wait": gateway.first_byte_wait,
        "gateway.heartbeat": gateway.heartbeat or 0.0,
        "gateway.database": str(database_path(gateway.database)),
        "retry.attempts": gateway.retry.attempts,
        "retry.backoff": gateway.retry.backoff,
        "retry.max_wait": gateway.retry.max_wait,
    }[setting.path]


def _line(name: str, value: Any, source: str | None, note: str = "") -> str:
    text = f"# {name} = (not set)" if value is None else f"{name} = {show_value(value)}"
    comments = [c for c in (source, note) if c]
    return text + (f"  # {'; '.join(comments)}" if comments else "")


def render_configuration(config: Configuration) -> str:
    """The whole effective configuration, as a file that would give it."""
    sources = config.sources
    where = config.path or "no file"
    out = [f"# sserelay's effective configuration ({where}), secrets masked.",
           "# A comment names where a value came from when it is not the default.", ""]
    section = ""
    for setting in SETTINGS:
        if setting.section != section:
            if section:
                out.append("")
            section = setting.section
            out.append(f"[{section}]")
        note = ""
        if setting.path == "relay.upstream" and config.relay_upstream is None:
            note = "none in the file: OPENAI_BASE_URL / OPENAI_API_KEY, else the local model"
        if setting.path == "logging.file" and config.settings.log_file is None:
            note = "stderr"
        out.append(_line(setting.name, _value_of(config, setting), sources.get(setting.path),
                         note))
    for upstream in config.gateway.upstreams:
        out += ["", f"[upstreams.{upstream.name}]", *_upstream_lines(upstream, sources)]
    if config.gateway.aliases:
        out += ["", "[aliases]"]
        out += [f"{show_value(k)} = {show_value(v)}" for k, v in config.gateway.aliases.items()]
    if config.gateway.routes:
        out += ["", "[routes]"]
        out += [f"{show_value(k)} = {show_value(list(v))}"
                for k, v in config.gateway.routes.items()]
    for name, policy in config.gateway.key_policies.items():
        out += ["", f"[keys.{name}]",
                _line("models", list(policy.models), sources.get(f"keys.{name}.models")),
                _line("max_tokens", policy.max_tokens, sources.get(f"keys.{name}.max_tokens")),
                _line("params", None if policy.params is None else list(policy.params),
                      sources.get(f"keys.{name}.params")),
                _line("refuse_params", policy.on_disallowed_param == "refuse",
                      sources.get(f"keys.{name}.refuse_params")),
                _line("system_prompt", policy.system_prompt,
                      sources.get(f"keys.{name}.system_prompt"))]
    return "\n".join(out) + "\n"


def _upstream_lines(upstream: UpstreamConfig, sources: dict[str, str] | Any) -> list[str]:
    def src(name: str) -> str | None:
        found: str | None = sources.get(f"upstreams.{upstream.name}.{name}")
        return found

    headers = {
        k: MASK if any(w in k.lower() for w in _SECRET_HEADER_WORDS) else v
        for k, v in upstream.headers.items()
    }
    key_note = "set" if upstream.api_key else "no key"
    return [
        _line("kind", upstream.kind, src("kind")),
        _line("base_url", upstream.base_url, src("base_url") or src("endpoint"),
              "the embedded model's, once started" if upstream.base_url is None else ""),
        _line("api_key", MASK if upstream.api_key else None,
              src("api_key") or src("api_key_env"), key_note),
        _line("models", list(upstream.models), src("models")),
        _line("responses", upstream.responses, src("responses")),
        _line("stream_usage", upstream.stream_usage, src("stream_usage")),
        _line("max_tokens_param", upstream.max_tokens_param, src("max_tokens_param")),
        _line("headers", headers, src("headers")),
        _line("deployments", dict(upstream.deployments), src("deployments")),
        _line("api_version", upstream.api_version, src("api_version")),
        _line("connect_timeout", upstream.connect_timeout, src("connect_timeout")),
        _line("read_timeout", upstream.read_timeout or 0.0, src("read_timeout")),
    ]
