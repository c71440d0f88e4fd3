"""The effective configuration: the file, the environment over it, flags over both; every
mistake refused with a message naming the setting, the value and what was expected."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sserelay.config import ConfigError, load_configuration
from sserelay.config.checks import Choice, Flag, Number, Text, Texts, show_value
from sserelay.config.rendering import render_configuration
from sserelay.config.schema import DERIVED_FIELDS, SCALAR_SECTIONS, SETTINGS, Setting
from sserelay.settings import Settings
from sserelay.streams import RedisStreamLog
from sserelay.web.app import make_stream_log

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "sserelay.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sserelay.toml"
    path.write_text(text)
    return path


def test_flags_over_environment_over_file(tmp_path: Path) -> None:
    """A flag beats its environment variable, which beats the file; each source is noted."""
    path = write(tmp_path, "[server]\nport = 8100\n[timeouts]\nidle = 5\nconnect = 4\n")
    config = load_configuration(
        path, env={"SSERELAY_TIMEOUTS_IDLE": "6", "SSERELAY_TIMEOUTS_CONNECT": "3"},
        flags={"idle_timeout": 7.0, "port": None},
    )
    settings = config.settings
    assert (settings.port, settings.idle_timeout, settings.connect_timeout) == (8100, 7.0, 3.0)
    assert config.sources["server.port"] == str(path)
    assert config.sources["timeouts.connect"] == "SSERELAY_TIMEOUTS_CONNECT"
    assert config.sources["timeouts.idle"] == "--idle-timeout"


def _sample(setting: Setting, default: object) -> object:
    """A valid value other than the default, for the setting's kind of check."""
    check = setting.check
    if isinstance(check, Flag):
        return not default
    if isinstance(check, Number):
        if check.maximum is not None:
            return int(check.maximum) - 1
        return int(check.minimum) + 7 if check.integer else check.minimum + 7.5
    if isinstance(check, Texts):
        return ["https://a.example"]
    if isinstance(check, Choice):
        return check.options[-1]
    assert isinstance(check, Text)
    return (check.prefixes[0] if check.prefixes else "") + "some-value"


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(Settings)
                                   if f.name not in DERIVED_FIELDS], ids=lambda f: f.name)
def test_every_settings_field_is_settable_from_file_and_environment(
    tmp_path: Path, field: dataclasses.Field[object]
) -> None:
    """Each Settings field has a place in the file and a variable, and both reach Settings."""
    (setting,) = [s for s in SETTINGS if s.field == field.name]
    value = _sample(setting, field.default)
    path = write(tmp_path, f"[{setting.section}]\n{setting.name} = {show_value(value)}\n")
    from_file = getattr(load_configuration(path, env={}).settings, field.name)
    text = ",".join(value) if isinstance(value, list) else show_value(value).strip('"')
    from_env = getattr(load_configuration(env={setting.env: text}).settings, field.name)
    expected = tuple(value) if isinstance(value, list) else value
    assert from_file == from_env == expected


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[timeouts]\nidle = -1\n", {},
         "sserelay.toml: timeouts.idle = -1: expected a number of seconds, 0 or more"),
        ("[server]\nport = \"8000\"\n", {},
         'sserelay.toml: server.port = "8000": expected an integer from 1 to 65535'),
        ("", {"SSERELAY_SERVER_PORT": "http"},
         'SSERELAY_SERVER_PORT = "http" (server.port): expected an integer from 1 to 65535'),
        ("[timeouts]\nidel = 3\n", {},
         "sserelay.toml: [timeouts]: unknown setting(s) idel; known: connect, first_token, "),
        ("[timeout]\nidle = 3\n", {}, "sserelay.toml: unknown section(s) [timeout]; known: "),
        ("", {"SSERELAY_TIMEOUTS_IDEL": "3"}, "SSERELAY_TIMEOUTS_IDEL: no such setting"),
        ("[stream_log]\nbackend = \"redis\"\n", {},
         'sserelay.toml: stream_log.backend = "redis" needs stream_log.redis_url'),
        ("[stream_log]\nredis_url = \"http://x\"\n", {},
         'sserelay.toml: stream_log.redis_url = "http://x": expected a redis://, rediss:// or '
         "unix:// URL"),
        ("[upstreams.a]\nkind = \"bedrock\"\n", {},
         'sserelay.toml: upstreams.a.kind = "bedrock": expected one of "openai", "azure", '
         '"anthropic", "local"'),
        ("[upstreams.a]\n", {"SSERELAY_UPSTREAMS_A_READ_TIMEOUT": "soon"},
         'SSERELAY_UPSTREAMS_A_READ_TIMEOUT = "soon" (upstreams.a.read_timeout): expected a '
         "number of seconds, 0 or more"),
        ("[upstreams.a]\n[keys.intern]\nmax_tokens = 0\n", {},
         "sserelay.toml: keys.intern.max_tokens = 0: expected an integer, 1 or more"),
        ("[upstreams.a]\n[routes]\nx = [\"b\"]\n", {},
         "sserelay.toml: routes.x must list configured upstreams; unknown: ['b']"),
        ("[upstreams.a]\nkind = \"anthropic\"\n[relay]\nupstream = \"a\"\n", {},
         'sserelay.toml: relay.upstream = "a": expected the name of an [upstreams.NAME] of '
         "kind openai or local"),
        ("[retry]\nattempts = 0\n", {},
         "sserelay.toml: retry.attempts = 0: expected an integer, 1 or more"),
        ("[cors]\norigins = \"https://a.example\"\n", {},
         'sserelay.toml: cors.origins = "https://a.example": expected a list of strings'),
        ("[stream_log]\nredis_flush = 5\n", {},
         "sserelay.toml: stream_log.redis_flush = 5: expected a number of seconds from 0 to 1"),
        ("[server\n", {}, "sserelay.toml: not valid TOML"),
    ],
)
def test_mistakes_name_setting_value_and_expectation(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    """Each kind of mistake gets the documented one-line message (docs/operations.md)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_configuration(path, env=env)
    assert str(caught.value).replace(str(path), "sserelay.toml").startswith(message)


def test_redis_flush_windows_reach_the_redis_log() -> None:
    """`[stream_log] redis_flush` and `redis_flush_unfollowed` set how often the Redis log's
    writer sends its batch, for streams followed on other instances and for the rest."""
    settings = load_configuration(env={
        "SSERELAY_STREAM_LOG_REDIS_URL": "redis://127.0.0.1:9",
        "SSERELAY_STREAM_LOG_REDIS_FLUSH": "0.01",
        "SSERELAY_STREAM_LOG_REDIS_FLUSH_UNFOLLOWED": "0.25",
    }).settings  # fmt: skip
    log = make_stream_log(settings)
    assert isinstance(log, RedisStreamLog)
    assert (log.flush_interval, log.unfollowed_flush_interval) == (0.01, 0.25)


def test_legacy_variables_still_work() -> None:
    """OPENAI_API_KEY / OPENAI_BASE_URL and the older SSERELAY_ names keep their meaning."""
    config = load_configuration(env={
        "OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "SSERELAY_REDIS_URL": "redis://127.0.0.1:2/0", "SSERELAY_CHAT_MODEL": "m",
        "SSERELAY_CORS_ORIGINS": "https://a.example, https://b.example",
    })
    settings = config.settings
    assert (settings.openai_api_key, settings.openai_base_url, settings.redis_url,
            settings.chat_model, settings.cors_origins) == (
        "sk-x", "http://127.0.0.1:9/v1", "redis://127.0.0.1:2/0", "m",
        ("https://a.example", "https://b.example"))
    assert config.gateway.upstreams[0].base_url == "http://127.0.0.1:9/v1"


def test_relay_endpoints_take_the_files_upstream_and_only_its_key(tmp_path: Path) -> None:
    """With upstreams in the file, the relay endpoints use [relay] upstream, never another
    upstream's key from OPENAI_API_KEY."""
    path = write(tmp_path, "[upstreams.openai]\nmodels = ['gpt-4o']\n"
                 "[upstreams.vllm]\nbase_url = 'http://127.0.0.1:9/v1'\napi_key_env = 'NONE'\n"
                 "models = ['llama']\n[relay]\nupstream = 'vllm'\n")
    settings = load_configuration(path, env={"OPENAI_API_KEY": "sk-openai"}).settings
    assert (settings.openai_base_url, settings.openai_api_key, settings.chat_model,
            settings.use_local_model) == ("http://127.0.0.1:9/v1", None, "llama", False)


def test_environment_reaches_upstreams_aliases_and_key_policies(tmp_path: Path) -> None:
    """SSERELAY_UPSTREAMS_<NAME>_<FIELD>, SSERELAY_ALIASES and SSERELAY_KEYS_<NAME>_<FIELD>
    override the tables the file defines."""
    path = write(tmp_path, "[upstreams.main]\n[aliases]\nfast = 'a'\n[keys.intern]\n")
    gateway = load_configuration(path, env={
        "SSERELAY_UPSTREAMS_MAIN_BASE_URL": "http://127.0.0.1:9/v1",
        "SSERELAY_UPSTREAMS_MAIN_MODELS": "x, y",
        "SSERELAY_ALIASES": '{ smart = "y" }',
        "SSERELAY_KEYS_INTERN_MAX_TOKENS": "12",
    }).gateway
    upstream = gateway.upstreams[0]
    assert (upstream.base_url, upstream.models) == ("http://127.0.0.1:9/v1", ("x", "y"))
    assert gateway.aliases == {"fast": "a", "smart": "y"}
    assert gateway.key_policies["intern"].max_tokens == 12


def test_show_masks_every_secret(tmp_path: Path) -> None:
    """`config show` prints no provider key, Redis password or credential header."""
    path = write(tmp_path, "[stream_log]\nbackend = 'redis'\n"
                 "redis_url = 'redis://:hunter2pass@127.0.0.1:1/0'\n"
                 "[upstreams.a]\napi_key = 'sk-in-file-secret'\n"
                 "headers = { Authorization = 'Bearer tok-secret', X-Team = 'docs' }\n"
                 "[upstreams.b]\nbase_url = 'http://127.0.0.1:9/v1'\n")
    shown = render_configuration(load_configuration(path, env={"OPENAI_API_KEY": "sk-env-key"}))
    for secret in ("hunter2pass", "sk-in-file-secret", "tok-secret", "sk-env-key"):
        assert secret not in shown
    assert '"X-Team" = "docs"' in shown and 'api_key = "********"' in shown


def test_example_file_sets_what_its_comments_say() -> None:
    """Every setting the example file writes is read from it (config show names the file)."""
    config = load_configuration(EXAMPLE, env={"OPENAI_API_KEY": "sk-x"})
    written = {f"{section}.{name}" for section, table in tomllib.loads(EXAMPLE.read_text()).items()
               for name in table if section in SCALAR_SECTIONS}
    from_file = {path for path, source in config.sources.items() if source == str(EXAMPLE)}
    assert written <= from_file
    assert {"server.port", "timeouts.idle", "stream_log.backend", "relay.upstream",
            "logging.content", "metrics.enabled", "gateway.database", "retry.attempts",
            "upstreams.openai.base_url", "keys.intern.max_tokens"} <= from_file
    assert config.settings.cors_origins == ("https://app.example.com",)
    assert config.gateway.key_policies["intern"].max_tokens == 64


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "sserelay.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_config_check_accepts_the_example_and_refuses_a_broken_file(tmp_path: Path) -> None:
    """`config check` exits 0 for the example and 2 with the message, no traceback, for a
    broken file; `serve --config` refuses the same file the same way."""
    ok = run_cli("config", "check", str(EXAMPLE))
    assert ok.returncode == 0 and "valid" in ok.stdout
    path = write(tmp_path, "[timeouts]\nidle = -1\n")
    for args in (("config", "check", str(path)), ("serve", "--config", str(path))):
        bad = run_cli(*args)
        assert bad.returncode == 2
        assert "timeouts.idle = -1: expected a number of seconds, 0 or more" in bad.stderr
        assert "Traceback" not in bad.stderr + bad.stdout
