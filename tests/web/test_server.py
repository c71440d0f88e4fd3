"""The server process's own settings (web/server.py)."""

from __future__ import annotations

import gc

from sserelay.web.server import _settle_garbage_collector


def test_startup_freezes_what_it_made_and_collects_the_young_generation_less_often() -> None:
    """After start-up the collector no longer scans what start-up made, and collects the
    young generation every 10,000 allocations (docs/decisions.md, "The garbage collector")."""
    threshold = gc.get_threshold()
    try:
        _settle_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (10_000, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
