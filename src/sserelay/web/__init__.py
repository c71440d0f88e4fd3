"""The HTTP surface: an ASGI app (Starlette routing, raw ASGI for the streams)."""
