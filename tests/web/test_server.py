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


def test_log_records_skip_the_caller_lookup_and_the_thread_and_process_fields() -> None:
    """The server's records carry no caller file/line, thread or process: none of them is
    in sserelay's JSON lines, and finding them cost a stack walk and a syscall per line."""
    import logging

    from sserelay.web.server import _lean_log_records

    saved = (logging._srcfile, logging.logThreads, logging.logProcesses,
             logging.logMultiprocessing)
    try:
        _lean_log_records()
        record = logging.getLogger("sserelay.test").makeRecord(
            "sserelay.test", logging.INFO, "(unknown file)", 0, "m", (), None)
        assert record.process is None and record.thread is None
        assert logging._srcfile is None
    finally:
        (logging._srcfile, logging.logThreads, logging.logProcesses,
         logging.logMultiprocessing) = saved
