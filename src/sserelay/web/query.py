"""A request's query parameters, parsed once.

The guard and the endpoint each hold their own Starlette `Request` for the same request,
and each `Request` parses the query string again (`parse_qsl`, `unquote`: ~10% of an
article GET's per-request CPU under cProfile). The first parse is kept in the scope.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request

__all__ = ["query_params"]

_KEY = "sserelay.query_params"
# Most streaming requests have no query string at all (POST /v1/streams, the gateway, a GET
# of a stream by id): one shared, immutable empty result, no parse.
_NONE = QueryParams()


def query_params(request: Request) -> QueryParams:
    found: QueryParams | None = request.scope.get(_KEY)
    if found is None:
        if not request.scope.get("query_string"):
            return _NONE
        found = request.scope[_KEY] = request.query_params
    return found
