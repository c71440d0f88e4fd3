"""sserelay.limits exports what its `__all__` lists, the Redis counters included."""

from __future__ import annotations

import sserelay.limits


def test_all_names_resolve() -> None:
    """Every name in `__all__` exists, once (RedisCounters through the lazy import)."""
    names = sserelay.limits.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(sserelay.limits, name) is not None
