"""The Redis-backed limiter against the machine's real Redis (keys under a prefix of this
run's own), and against a Redis that is not there."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.ratelimit import Rate
from gateway.shared_limits import SharedRateLimiter, limit_item
from testkit import infra
from testkit.infra import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def limiters():
    """Two limiters (two gateways) sharing one key prefix of this test's own."""
    prefix = infra.unique_name("a6pay_limits")
    # a generous timeout: on a loaded machine a slow answer would fail open and pass all
    made = [SharedRateLimiter(REDIS_URL, {"g": Rate(100, 60)}, key_prefix=prefix,
                              timeout_seconds=10) for _ in range(2)]
    yield made
    for limiter in made:
        await limiter.close()


async def test_racing_hits_through_two_limiters_let_exactly_the_limit_through(limiters):
    # 150 at once, alternating between the two: a read-then-write limiter lets more pass
    decisions = await asyncio.gather(*(limiters[i % 2].check("g", "198.51.100.1")
                                       for i in range(150)))
    assert limiters[0].reachable and limiters[1].reachable
    # Never more than the limit. A hit whose answer the client lost and sent again counts
    # twice, so on a loaded machine one or two fewer may pass: the safe side.
    assert 95 <= sum(d.allowed for d in decisions) <= 100
    refused = [d for d in decisions if not d.allowed]
    assert all(1 <= d.retry_after_seconds <= 60 for d in refused)
    assert (await limiters[1].check("g", "198.51.100.2")).allowed  # another client
    assert (await limiters[0].check("unlimited", "198.51.100.1")).allowed
    assert limiters[0].status()["ok"] is True


async def test_unreachable_redis_fails_open_with_one_warning(caplog):
    limiter = SharedRateLimiter(f"redis://127.0.0.1:{free_port()}/0", {"g": Rate(2, 60)},
                                key_prefix="unused", retry_seconds=60)
    with caplog.at_level(logging.INFO, logger="gateway.limits"):
        decisions = [await limiter.check("g", "198.51.100.1") for _ in range(50)]
    assert all(d.allowed for d in decisions)
    warnings = [r for r in caplog.records if r.name == "gateway.limits"]
    assert len(warnings) == 1 and "failing open" in warnings[0].getMessage()
    status = limiter.status()
    assert status["ok"] is False and "failing open" in status["detail"]
    await limiter.close()


async def test_a_peek_counts_nothing_and_sees_what_the_other_gateway_counted(limiters):
    """Failed admin tokens: counted on failure only, looked at before every call."""
    for limiter in limiters:
        limiter._items["failed"] = limit_item(Rate(3, 60))  # noqa: SLF001 (our own class)
    client = "198.51.100.9"
    assert all([(await limiters[0].peek("failed", client)).allowed for _ in range(10)])
    for _ in range(3):
        await limiters[0].check("failed", client)
    blocked = await limiters[1].peek("failed", client)
    assert not blocked.allowed and 1 <= blocked.retry_after_seconds <= 60
    assert (await limiters[1].peek("failed", "198.51.100.10")).allowed
