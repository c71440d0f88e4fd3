"""The sans-IO server-sent events codec: bytes in, events out; values in, bytes out.

Every transport (the ASGI app, the upstream client, framework adapters, tests) shares this one
decoder and encoder, so the WHATWG parsing rules live in exactly one place.
"""

from __future__ import annotations

from sserelay.codec.decoder import ServerSentEvent, SSEDecodeError, SSEDecoder
from sserelay.codec.encoder import DONE, encode_comment, encode_data_bytes, encode_event

__all__ = [
    "DONE",
    "SSEDecodeError",
    "SSEDecoder",
    "ServerSentEvent",
    "encode_comment",
    "encode_data_bytes",
    "encode_event",
]
