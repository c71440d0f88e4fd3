"""Relay policy: what sserelay reads out of an upstream stream and how a stream ends."""
