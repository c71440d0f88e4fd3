"""Typed provider failures: what went wrong upstream, and whether trying again can help.

`ProviderError` is an `UpstreamError` (so every HTTP surface already knows how to answer it)
that also remembers the upstream's own status and error fields. The gateway uses them to
decide between retrying, falling back to another upstream and giving up, and to pass on the
fields an SDK user acts on (`code: "context_length_exceeded"`, `param: "messages"`).
"""

from __future__ import annotations

from sserelay.upstream.errors import Ending, UpstreamError

__all__ = ["ProviderError"]


class ProviderError(UpstreamError):
    """An upstream failure; `message`, `type`, `param` and `code` are safe to show a client.

    `retryable`: the same request to the same upstream may succeed later (429, 5xx, no
    connection). `fallback`: another upstream may succeed (those, and a provider rejecting
    sserelay's own credentials). A client mistake (400, 404, 422) is neither.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 502,
        upstream_status: int | None = None,
        type: str | None = None,  # the OpenAI error field is called "type"
        param: str | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        fallback: bool = False,
        ending: Ending = "error",
    ) -> None:
        super().__init__(code, message, status=status, retry_after=retry_after, ending=ending)
        self.upstream_status = upstream_status
        self.type = type
        self.param = param
        self.retryable = retryable
        self.fallback = fallback or retryable

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.code!r}, {self.message!r}, status={self.status}, "
            f"upstream_status={self.upstream_status})"
        )
