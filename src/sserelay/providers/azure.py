"""Azure OpenAI: one URL per deployment, an `api-version` query and an `api-key` header.

Documented by Microsoft ("Azure OpenAI in Azure AI Foundry Models REST API reference"):
`POST {endpoint}/openai/deployments/{deployment-id}/chat/completions?api-version=...`, the
key in `api-key`, and the model chosen by the deployment in the URL, not by the body.
The Responses API is one URL for all deployments, with the deployment as `model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sserelay.providers.base import API_PATHS, Api
from sserelay.providers.errors import ProviderError
from sserelay.providers.http import HttpProvider
from sserelay.providers.openai_compatible import prefer_max_tokens_param

__all__ = ["AZURE_API_VERSION", "AzureOpenAIProvider"]

AZURE_API_VERSION = "2024-10-21"  # GA; the first with stream_options.include_usage


class AzureOpenAIProvider(HttpProvider):
    """`endpoint` is the resource URL (https://NAME.openai.azure.com); `deployments` maps each
    model name clients use to its deployment name."""

    kind = "azure"

    def __init__(
        self,
        name: str,
        endpoint: str,
        api_key: str | None,
        *,
        deployments: Mapping[str, str],
        api_version: str = AZURE_API_VERSION,
        responses: bool = False,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 300.0,
    ) -> None:
        super().__init__(
            name, endpoint, api_key, headers=headers,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
        )
        self.deployments = dict(deployments)
        self.api_version = api_version
        self.apis = frozenset({"chat", "completions", *(("responses",) if responses else ())})
        self._auth = {"api-key": api_key} if api_key else {}
        self._query = "?api-version=" + quote(api_version, safe="")

    def _deployment(self, model: str) -> str:
        try:
            return self.deployments[model]
        except KeyError:
            raise ProviderError(
                "model_not_found", f"The model {model!r} has no Azure deployment configured.",
                status=404, type="invalid_request_error", param="model",
            ) from None

    def _url(self, api: Api, model: str) -> str:
        if api == "responses":
            return f"{self.base_url}/openai{API_PATHS[api]}{self._query}"
        deployment = quote(self._deployment(model), safe="")
        return f"{self.base_url}/openai/deployments/{deployment}{API_PATHS[api]}{self._query}"

    def _auth_headers(self) -> dict[str, str]:
        return self._auth

    def _prepare(self, api: Api, model: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = {**body, "stream": stream}
        if api == "responses":
            body["model"] = self._deployment(model)
        else:
            body.pop("model", None)  # the deployment in the URL chooses the model
        if not stream:
            body.pop("stream_options", None)
        elif api != "responses":
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}), "include_usage": True
            }
        if api == "chat":
            prefer_max_tokens_param(body, "max_completion_tokens")
        return body

    async def list_models(self) -> list[str]:
        return list(self.deployments)
