"""The permit of the request being served, for code that learns late how a stream went.

The HTTP layer admits a request and holds its `Permit` for the request's lifetime. Two things
happen elsewhere, without that code being handed the permit through every call in between:

- a generation that outlives its request (`/v1/streams`, or `disconnect=continue`) *claims*
  the permit, and releases it when the generation ends rather than when the response does;
- whoever learns a request's real usage (the gateway's ledger) *records* its completion
  tokens into the client's tokens-per-minute window.

A context variable carries it: tasks started while serving the request (the generation, a
draining stream) inherit it, and nothing outside a request ever sees one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from .limiter import Permit

__all__ = ["claim_permit", "holding", "record_completion_tokens"]


@dataclass(slots=True)
class _Held:
    """A permit being served under, and its own context manager (`holding`): one object per
    request, where a generator-based one was two more, alive for the whole stream."""

    permit: Permit
    claimed: bool = False
    tokens_recorded: bool = False
    _token: Token[_Held | None] | None = None

    def __enter__(self) -> None:
        self._token = _current.set(self)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
        if not self.claimed:
            self.permit.release()


_current: ContextVar[_Held | None] = ContextVar("sserelay_permit", default=None)


def holding(permit: Permit) -> AbstractContextManager[None]:
    """Serve a request under `permit`; released on exit unless something claimed it."""
    return _Held(permit)


def claim_permit() -> Permit | None:
    """Take over releasing the current request's permit (None outside a limited request)."""
    held = _current.get()
    if held is None or held.claimed:
        return None
    held.claimed = True
    return held.permit


def record_completion_tokens(tokens: int) -> None:
    """Count the current request's completion tokens, once: the first report wins (the
    ledger's, from the provider's usage, comes before a generation's own chunk count)."""
    held = _current.get()
    if held is None or held.tokens_recorded:
        return
    held.tokens_recorded = True
    held.permit.record_tokens(tokens)
