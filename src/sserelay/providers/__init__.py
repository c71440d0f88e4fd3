"""Providers: the upstream servers sserelay relays from, behind one interface.

`Provider.send(api, model, body, stream=...)` returns an open `ProviderReply` or raises a
`ProviderError` that says whether a retry or another upstream could help. Implementations:
any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, the embedded SmolLM2), Azure
OpenAI, Anthropic Messages.
"""

from __future__ import annotations

from sserelay.providers.anthropic import AnthropicProvider
from sserelay.providers.azure import AzureOpenAIProvider
from sserelay.providers.base import API_PATHS, Api, Provider, ProviderReply
from sserelay.providers.errors import ProviderError
from sserelay.providers.openai_compatible import OpenAICompatibleProvider

__all__ = [
    "API_PATHS",
    "AnthropicProvider",
    "Api",
    "AzureOpenAIProvider",
    "OpenAICompatibleProvider",
    "Provider",
    "ProviderError",
    "ProviderReply",
]
