"""Runtime settings, read once at start-up from flags and the environment.

Environment variables follow the upstream SDKs' names where one exists (OPENAI_API_KEY,
OPENAI_BASE_URL) so that an app moved onto sserelay keeps its configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_MODEL_NAME = "smollm2"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str = OPENAI_DEFAULT_BASE_URL
    chat_model: str = "gpt-4o-mini"
    completion_model: str = "gpt-3.5-turbo-instruct"
    # Origins allowed to call sserelay from a browser page served elsewhere. Empty means
    # same-origin only: no Access-Control-Allow-Origin header is ever sent.
    cors_origins: tuple[str, ...] = ()
    max_prompt_chars: int = 32_000
    max_body_bytes: int = 1 << 20
    connect_timeout: float = 10.0
    first_token_timeout: float = 60.0
    idle_timeout: float = 60.0
    max_duration: float = 600.0
    # An SSE comment this often on every stream, also while waiting for the first token:
    # proxies drop silent connections (nginx after 60 s, Cloudflare after 100 s).
    heartbeat: float = 15.0
    # A follower whose socket accepts no write for this long is dropped (it can resume).
    slow_client_timeout: float = 30.0
    # Stream log: in memory unless a Redis URL is given (then shared by all instances).
    redis_url: str | None = None
    # /v1/chat/completions streams go through the stream log too: ids, resume, fan-out.
    # Off, they are relayed straight through (the cheapest path; no resume).
    resumable_chat_completions: bool = True
    retention: float = 600.0
    # The Redis log's writer sends what was appended at most this often: followers on this
    # instance never wait for it (they are pushed from memory), followers on other instances
    # see entries up to this much later. Longer: fewer round trips, less CPU per chunk.
    redis_flush_interval: float = 0.002
    # ...for a stream no other instance follows: its entries wait up to this long (an instance
    # that dies loses at most that much of its live streams, which end `truncated` anyway).
    redis_unfollowed_flush_interval: float = 0.05
    # No key and no explicit base URL: run the embedded SmolLM2 model.
    use_local_model: bool = False
    # Limits (issue 7, sserelay.limits and web/guard.py). The gateway's bodies carry images
    # as base64, hence their own, larger body limit; only text counts towards prompt sizes.
    max_gateway_body_bytes: int = 32 << 20
    max_gateway_prompt_chars: int = 2_000_000
    max_messages: int = 1000
    # Per client (a client key, else the peer address); None: no limit.
    key_requests_per_minute: int | None = None
    key_tokens_per_minute: int | None = None
    key_concurrent_streams: int | None = None
    # Streams in flight on this instance; past it, 503 with Retry-After.
    max_streams: int | None = 2000
    # A client must send the request line and headers within this, and a body within
    # body_timeout (slowloris); see web/server.py.
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    # An idle client connection is kept this long for its next request, then closed
    # silently: longer than the idle expiry of the pools that talk to sserelay (httpx and
    # the OpenAI SDK 5 s, aiohttp 15 s, AWS ALB 60 s), so that they retire a connection
    # before the server closes it, never sending a request into the close. nginx's 75 s.
    keepalive_timeout: float = 75.0
    # On SIGTERM, running streams get this long to finish (web/shutdown.py).
    shutdown_grace: float = 10.0
    # Tickets to follow one stream without the key (web/tickets.py); the secret comes from
    # SSERELAY_TICKET_SECRET, else is generated (and shared through Redis when configured).
    ticket_ttl: float = 600.0
    ticket_secret: str | None = field(default=None, repr=False)
    # One JSON line per request and per stream end (docs/operations.md): to this file, or
    # to stderr. Prompt and answer text only when log_content is set.
    log_file: str | None = None
    log_content: bool = False
    # GET /metrics in Prometheus' text format.
    metrics: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        key = env.get("OPENAI_API_KEY") or None
        base_url = env.get("OPENAI_BASE_URL") or None
        origins = tuple(
            o.strip() for o in env.get("SSERELAY_CORS_ORIGINS", "").split(",") if o.strip()
        )
        use_local = key is None and base_url is None
        values: dict[str, object] = {
            "openai_api_key": key,
            "openai_base_url": (base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/"),
            "cors_origins": origins,
            "use_local_model": use_local,
        }
        if use_local:
            values["chat_model"] = values["completion_model"] = LOCAL_MODEL_NAME
        if env.get("SSERELAY_TICKET_SECRET"):
            values["ticket_secret"] = env["SSERELAY_TICKET_SECRET"]
        if env.get("SSERELAY_REDIS_URL"):
            values["redis_url"] = env["SSERELAY_REDIS_URL"]
        if "SSERELAY_CHAT_MODEL" in env:
            values["chat_model"] = env["SSERELAY_CHAT_MODEL"]
        if "SSERELAY_COMPLETION_MODEL" in env:
            values["completion_model"] = env["SSERELAY_COMPLETION_MODEL"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
