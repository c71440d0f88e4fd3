"""sserelay: relay streamed LLM output over server-sent events, keeping the provider key home."""

from __future__ import annotations

__all__: list[str] = []
__version__ = "0.1.0"
