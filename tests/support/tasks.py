"""A loop of the product (a relay, a sender, the reconciler) running in the background for
the length of a `with` block, cancelled and awaited at its end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine


@contextlib.asynccontextmanager
async def running(loop: Coroutine) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(loop)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
