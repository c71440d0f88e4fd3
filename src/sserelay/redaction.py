"""Removing what must never reach a client or a log line from text that came from elsewhere.

Upstream error messages are useful to pass on ("model not found", "context length exceeded"),
but providers echo parts of the request, including key prefixes, and proxies add internal
URLs and addresses. Everything upstream-originated goes through `redact` first.
"""

from __future__ import annotations

import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Provider and sserelay keys: OpenAI sk-..., Anthropic sk-ant-..., sserelay srk-...
    (re.compile(r"\b(?:sk|srk)-[A-Za-z0-9_\-*]{4,}"), "[redacted key]"),
    (re.compile(r"(?i)\b(bearer|api[-_ ]?key|authorization)\b\s*[:=]?\s*\S+"), r"\1 [redacted]"),
    (re.compile(r"\b[a-z][a-z0-9+.\-]*://\S+", re.IGNORECASE), "[redacted url]"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "[redacted address]"),
    (re.compile(r"\[[0-9a-fA-F:]+\](?::\d+)?"), "[redacted address]"),
    (re.compile(r"\blocalhost(?::\d+)?\b"), "[redacted address]"),
)
_MAX_MESSAGE = 500


def redact(text: str, *secrets: str | None) -> str:
    """Return `text` without keys, URLs, addresses and the given secrets, cut to a sane length."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted key]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text
