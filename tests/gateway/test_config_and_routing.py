"""The TOML configuration and model routing, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sserelay.gateway import ConfigError, GatewayConfig
from sserelay.gateway.errors import GatewayError
from sserelay.gateway.router import Router
from sserelay.gateway.service import build_provider
from sserelay.providers import AnthropicProvider, AzureOpenAIProvider, OpenAICompatibleProvider
from sserelay.settings import Settings

FULL = """
[gateway]
abandoned_streams = "cancel"
[retry]
attempts = 4
[upstreams.openai]
models = ["gpt-4o", "gpt-4o-mini"]
[upstreams.azure]
kind = "azure"
endpoint = "https://r.openai.azure.com"
deployments = { "gpt-4o" = "prod" }
[upstreams.claude]
kind = "anthropic"
models = ["claude-x"]
[upstreams.vllm]
base_url = "http://10.0.0.5:8000/v1"
api_key_env = "VLLM_KEY"
models = ["*"]
[aliases]
smart = "gpt-4o"
best = "smart"
[routes]
"gpt-4o" = ["azure", "openai"]
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> GatewayConfig:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return GatewayConfig.load(path, env=env or {})


def router_of(config: GatewayConfig) -> Router:
    providers = [build_provider(u) for u in config.upstreams]
    return Router(providers, {u.name: u.models for u in config.upstreams}, config.aliases,
                  config.routes)


def test_full_example_loads_with_keys_from_the_environment(tmp_path: Path) -> None:
    """The documented example loads, keys come from the environment, defaults apply."""
    env = {"OPENAI_API_KEY": "sk-1", "AZURE_OPENAI_API_KEY": "az-2", "ANTHROPIC_API_KEY":
           "sk-ant-3", "VLLM_KEY": "v-4"}
    config = load(tmp_path, FULL, env=env)
    keys = {u.name: u.api_key for u in config.upstreams}
    assert keys == {"openai": "sk-1", "azure": "az-2", "claude": "sk-ant-3", "vllm": "v-4"}
    openai = config.upstreams[0]
    assert openai.responses and openai.max_tokens_param == "max_completion_tokens"
    assert not config.upstreams[3].responses
    assert (config.abandoned, config.retry.attempts) == ("cancel", 4)
    kinds = [type(build_provider(u)) for u in config.upstreams]
    assert kinds == [OpenAICompatibleProvider, AzureOpenAIProvider, AnthropicProvider,
                     OpenAICompatibleProvider]
    assert not any(key in repr(config) for key in env.values())  # reprs (so logs) lack keys


def test_routing_follows_aliases_routes_lists_then_wildcards(tmp_path: Path) -> None:
    """Routing: aliases, then [routes], then upstreams listing the model, then "*"."""
    router = router_of(load(tmp_path, FULL))

    def names(model: str) -> list[tuple[str, str]]:
        return [(r.provider.name, r.model) for r in router.routes(model)]

    assert names("best") == [("azure", "gpt-4o"), ("openai", "gpt-4o")]
    assert names("gpt-4o-mini") == [("openai", "gpt-4o-mini")]
    assert names("claude-x") == [("claude", "claude-x")]
    assert names("llama-3") == [("vllm", "llama-3")]
    assert {"smart", "best", "gpt-4o", "claude-x"} <= set(router.known_names())


def test_unroutable_model_is_not_found(tmp_path: Path) -> None:
    """Without a wildcard upstream, an unknown model is OpenAI's 404 model_not_found."""
    router = router_of(load(tmp_path, "[upstreams.a]\nmodels = ['m']\n"))
    with pytest.raises(GatewayError) as caught:
        router.routes("other")
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "at least one [upstreams.NAME]"),
        ("[upstreams.a]\nkind = 'bedrock'\n", "kind must be one of"),
        ("[upstreams.a]\nmodel = ['x']\n", "unknown setting(s) model"),
        ("[upstreams.a]\n[routes]\nx = ['b']\n", "unknown: ['b']"),
        ("[upstreams.a]\nkind = 'azure'\nendpoint = 'https://x'\n", "needs deployments"),
        ("[upstreams.a]\n[gateway]\nabandoned_streams = 'keep'\n", '"drain" or "cancel"'),
        ("[upstreams.a]\n[retry]\nattempts = 0\n", "retry.attempts"),
        ("[upstreams.a\n", "not valid TOML"),
    ],
)
def test_config_mistakes_name_the_file_and_setting(tmp_path: Path, text: str, words: str
                                                   ) -> None:
    """A configuration that cannot work is refused with words naming what to fix."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert words in str(caught.value) and "gateway.toml" in str(caught.value)


def test_environment_default_without_a_config_file() -> None:
    """Without a file: one upstream from the environment, or the local model with `fast`."""
    remote = GatewayConfig.from_settings(Settings.from_env(
        {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}))
    assert [(u.kind, u.models, u.api_key) for u in remote.upstreams] == [("openai", ("*",), "k")]
    local = GatewayConfig.from_settings(Settings.from_env({}))
    assert local.upstreams[0].kind == "local" and local.aliases == {"fast": "smollm2"}
