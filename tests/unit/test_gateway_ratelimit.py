"""GCRA limiter: driven by a hand-held clock, no sleeping."""

import pytest

from gateway.ratelimit import Decision, Rate, RateLimiter


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(clock, **rates) -> RateLimiter:
    return RateLimiter({g: Rate(n, w) for g, (n, w) in rates.items()}, clock=clock)


def allowed(lim: RateLimiter, group: str, client: str, times: int) -> int:
    return sum(lim.hit(group, client).allowed for _ in range(times))


@pytest.mark.parametrize("limit", [1, 3, 7, 100, 1000])
def test_a_burst_of_exactly_limit_requests_passes_and_the_next_is_refused(limit):
    clock = FakeClock()
    lim = limiter(clock, g=(limit, 60.0))
    assert allowed(lim, "g", "c", limit) == limit
    refused = lim.hit("g", "c")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(60.0 / limit)


def test_retry_after_is_exact_and_honouring_it_succeeds():
    clock = FakeClock()
    lim = limiter(clock, g=(3, 60.0))
    allowed(lim, "g", "c", 3)
    decision = lim.hit("g", "c")
    assert decision.retry_after == pytest.approx(20.0)
    clock.now += 19.9
    assert not lim.hit("g", "c").allowed
    clock.now += 0.1
    assert lim.hit("g", "c").allowed
    assert not lim.hit("g", "c").allowed


def test_refused_requests_do_not_push_the_retry_time_further():
    clock = FakeClock()
    lim = limiter(clock, g=(2, 10.0))
    allowed(lim, "g", "c", 2)
    for _ in range(50):
        assert lim.hit("g", "c").retry_after == pytest.approx(5.0)


def test_an_idle_client_gets_its_whole_budget_back():
    clock = FakeClock()
    lim = limiter(clock, g=(5, 60.0))
    allowed(lim, "g", "c", 5)
    clock.now += 60.0
    assert allowed(lim, "g", "c", 6) == 5


def test_clients_and_groups_have_separate_budgets():
    clock = FakeClock()
    lim = limiter(clock, a=(2, 60.0), b=(2, 60.0))
    assert allowed(lim, "a", "alice", 3) == 2
    assert allowed(lim, "a", "bob", 3) == 2
    assert allowed(lim, "b", "alice", 3) == 2


def test_groups_without_a_positive_rate_are_never_limited():
    lim = limiter(FakeClock(), off=(0, 60.0))
    assert allowed(lim, "off", "c", 500) == 500
    assert allowed(lim, "webhook", "c", 500) == 500
    assert len(lim) == 0


def test_retry_after_seconds_rounds_up_and_is_at_least_one():
    assert Decision(False, 0.01).retry_after_seconds == 1
    assert Decision(False, 0.6).retry_after_seconds == 1
    assert Decision(False, 1.0).retry_after_seconds == 1
    assert Decision(False, 1.2).retry_after_seconds == 2
    assert Decision(False, 59.5).retry_after_seconds == 60


def test_idle_keys_are_swept_after_a_window():
    clock = FakeClock()
    lim = limiter(clock, g=(10, 60.0))
    for i in range(100):
        lim.hit("g", f"client-{i}")
    assert len(lim) == 100
    clock.now += 61.0
    lim.hit("g", "late")
    assert len(lim) == 1


def test_the_sweep_keeps_keys_that_are_still_limited():
    clock = FakeClock(1000.0)
    lim = limiter(clock, g=(1, 60.0))
    lim.hit("g", "early")  # bucket full again at 1060
    clock.now = 1059.0
    lim.hit("g", "late")  # bucket full again at 1119
    clock.now = 1061.0  # a sweep is due
    lim.hit("g", "trigger")
    assert len(lim) == 2  # "early" swept, "late" and "trigger" kept
    assert not lim.hit("g", "late").allowed
    assert lim.hit("g", "early").allowed


def test_memory_is_capped_by_evicting_the_least_recently_used_key():
    clock = FakeClock()
    lim = RateLimiter({"g": Rate(1, 60.0)}, clock=clock, max_keys=3)
    for name in ("a", "b", "c"):
        lim.hit("g", name)
    lim.hit("g", "a")  # refused, but touches "a": now "b" is the oldest
    lim.hit("g", "d")
    assert len(lim) == 3
    assert lim.hit("g", "b").allowed  # b was evicted, so it starts afresh
    assert not lim.hit("g", "a").allowed
