"""The OpenAI- and Anthropic-compatible gateway: /v1 endpoints that official SDKs can use
with only a `base_url` and an sserelay key, while the provider keys stay on the server.

Requests are authenticated (`auth`), shaped by the key's policy (`policy`), routed by model
name (`router`), retried and failed over before the first byte (`retry`), and relayed byte
for byte (`openai_passthrough`, `named_passthrough`) or translated (`exchange`); usage is
recorded per key and model (`sserelay.keys.ledger`).
"""

from __future__ import annotations

from sserelay.gateway.config import ConfigError, GatewayConfig, RetryConfig, UpstreamConfig
from sserelay.gateway.endpoints import gateway_routes
from sserelay.gateway.errors import GatewayError
from sserelay.gateway.service import Gateway

__all__ = [
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "RetryConfig",
    "UpstreamConfig",
    "gateway_routes",
]
