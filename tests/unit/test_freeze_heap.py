"""Start-up's objects leave the collector's sight (shared/service.py: freeze_heap), so a
full collection no longer scans every module and the app on each pass."""

from __future__ import annotations

import gc

from aiohttp import web

from shared.service import freeze_heap


async def test_freeze_heap_moves_what_exists_into_the_permanent_generation():
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        await freeze_heap(web.Application())
        assert gc.get_freeze_count() > 10_000  # every module, class and function loaded
        assert sum(gc.get_count()) < 100  # what is left to collect starts from nothing
    finally:
        gc.unfreeze()
