"""Provider tests use the gateway's own fake upstream, not the article tests' one."""

from __future__ import annotations

from tests.gateway.conftest import upstream

__all__ = ["upstream"]
