"""shared/coalesce.Coalescer: calls made while a batch is in flight share the next one."""

from __future__ import annotations

import asyncio

import pytest

from shared.coalesce import Coalescer, group_commit, in_rounds


class Source:
    """A fetch the test opens and closes: records every batch, answers key * 10."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with = fail_with

    async def fetch(self, keys: list[int]) -> list[int]:
        self.batches.append(list(keys))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [key * 10 for key in keys]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def start(reads: Coalescer, *keys: int) -> list[asyncio.Task]:
    """Calls of `keys`, each in its own task, run until they wait."""
    calls = [asyncio.create_task(reads.get(key)) for key in keys]
    await settle()
    return calls


async def held(source: Source | None = None) -> tuple[Source, Coalescer, asyncio.Task]:
    """A coalescer whose first call (key 1) is in flight, its fetch held open."""
    source = source or Source()
    source.gate.clear()
    reads = Coalescer(source.fetch)
    [first] = await start(reads, 1)
    return source, reads, first


async def test_an_idle_call_is_sent_at_once_alone():
    source = Source()
    reads = Coalescer(source.fetch)
    assert await reads.get(3) == 30
    assert source.batches == [[3]]


async def test_calls_made_while_a_batch_is_in_flight_share_the_next_one():
    source, reads, first = await held()
    later = await start(reads, 2, 3, 2)
    assert source.batches == [[1]]  # the later calls did not join the batch already sent
    source.gate.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 20]  # each its own answer, duplicates too
    assert source.batches == [[1], [2, 3, 2]]


async def test_a_batch_holds_at_most_max_batch_keys():
    source = Source()
    source.gate.clear()
    reads = Coalescer(source.fetch, max_batch=2)
    calls = await start(reads, *range(5))
    source.gate.set()
    assert await asyncio.gather(*calls) == [0, 10, 20, 30, 40]
    assert source.batches == [[0], [1, 2], [3, 4]]


async def test_in_flight_bounds_the_fetches_running_at_once():
    source = Source()
    source.gate.clear()
    reads = Coalescer(source.fetch, in_flight=2)
    calls = await start(reads, *range(4))
    assert source.batches == [[0], [1]]
    source.gate.set()
    await asyncio.gather(*calls)
    assert sorted(map(sorted, source.batches)) == [[0], [1], [2, 3]]


async def test_a_failed_fetch_fails_its_whole_batch_and_the_next_batch_still_runs():
    source, reads, first = await held(Source(fail_with=ConnectionError("database went away")))
    batch = await start(reads, 2, 3)
    source.gate.set()
    with pytest.raises(ConnectionError):
        await first
    for call in batch:
        with pytest.raises(ConnectionError):
            await call
    source.fail_with = None
    assert await reads.get(4) == 40


async def test_a_fetch_answering_the_wrong_number_of_keys_fails_its_callers():
    async def short(keys: list[int]) -> list[int]:
        return keys[:-1]

    reads = Coalescer(short)
    with pytest.raises(RuntimeError, match="results for 1 keys"):
        await reads.get(1)


async def test_a_cancelled_caller_leaves_the_batch_to_the_others():
    source, reads, first = await held()
    gone, stays = await start(reads, 2, 3)
    first.cancel()  # its caller gave up: the fetch it started goes on for no one else
    gone.cancel()
    await settle()
    source.gate.set()
    assert await stays == 30
    assert source.batches == [[1], [2, 3]]
    assert first.cancelled() and gone.cancelled()


async def test_close_cancels_the_fetch_in_flight_and_what_waits_for_the_next():
    source, reads, first = await held()
    [waiting] = await start(reads, 2)
    await reads.close()
    for call in (first, waiting):
        with pytest.raises(asyncio.CancelledError):
            await call
    assert source.batches == [[1]]
    with pytest.raises(RuntimeError):
        await reads.get(3)


def test_bounds_are_checked():
    with pytest.raises(ValueError):
        Coalescer(Source().fetch, max_batch=0)


class PoisonSource(Source):
    """Fails any batch that holds `poison` with `error`, as a database refuses one row."""

    def __init__(self, poison: int, error: Exception) -> None:
        super().__init__()
        self.poison, self.error = poison, error

    async def fetch(self, keys: list[int]) -> list[int]:
        self.batches.append(list(keys))
        await self.gate.wait()
        if self.poison in keys:
            raise self.error
        return [key * 10 for key in keys]


async def poisoned_batch(error: Exception) -> tuple[PoisonSource, list]:
    """Writes 1 and 2 in flight (a group commit runs two at once), then 3, 4 and 5 in one
    batch, where 4 is refused with `error`."""
    source = PoisonSource(4, error)
    source.gate.clear()
    writes = group_commit(source.fetch)
    calls = await start(writes, 1, 2)
    calls += await start(writes, 3, 4, 5)
    source.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    await writes.close()
    return source, results


async def test_a_group_commit_batch_that_fails_runs_each_write_alone():
    source, results = await poisoned_batch(ValueError("row 4 refused"))
    assert results[:3] == [10, 20, 30] and results[4] == 50
    assert isinstance(results[3], ValueError)
    assert source.batches == [[1], [2], [3, 4, 5], [3], [4], [5]]


async def test_a_group_commit_batch_fails_whole_when_the_database_is_away():
    source, results = await poisoned_batch(ConnectionRefusedError("database away"))
    assert results[:2] == [10, 20]
    assert all(isinstance(r, ConnectionRefusedError) for r in results[2:])
    assert source.batches == [[1], [2], [3, 4, 5]]  # nobody goes on alone into the outage


async def test_in_rounds_puts_twins_in_later_rounds_each_round_in_order():
    rounds = []

    async def write(items):
        rounds.append(list(items))
        return [f"{key}{row}" for key, row in items]

    items = [("b", 2), ("a", 1), ("b", 3), ("c", 1), ("d", 4)]
    results = await in_rounds(items, write, lambda i: i[0], lambda i: i[1],
                              order=lambda i: i[1])
    assert results == ["b2", "a1", "b3", "c1", "d4"]
    assert rounds == [[("a", 1), ("b", 2), ("d", 4)], [("c", 1), ("b", 3)]]
