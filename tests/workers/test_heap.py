"""config.heap: start-up's objects are frozen out of the collector's reach."""

from __future__ import annotations

import gc

from config.heap import settle_heap


def test_settle_heap_freezes_what_start_up_made() -> None:
    gc.unfreeze()
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() > 10_000  # at least the imported modules' objects
    finally:
        gc.unfreeze()
