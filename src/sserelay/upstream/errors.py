"""Typed upstream failures, each carrying words a client may see and the status to answer with."""

from __future__ import annotations

from typing import Literal

# How a stream ended, as every endpoint reports it (see docs/decisions.md, "Typed endings").
Ending = Literal["done", "error", "aborted", "truncated"]


class UpstreamError(Exception):
    """The upstream could not give a complete answer.

    `message` has already been redacted (no key, URL or address) and is safe to show a client.
    `status` is what sserelay answers when the failure comes before the first byte it sends.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 502,
        retry_after: float | None = None,
        ending: Ending = "error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.ending: Ending = ending

    def __repr__(self) -> str:
        return f"UpstreamError({self.code!r}, {self.message!r}, status={self.status})"
