"""Token-bucket arithmetic (limits/bucket.py) and the in-process store on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authproxy.config.limits import parse_rate
from authproxy.config.limits_model import Rate
from authproxy.limits.bucket import Bucket, after_take, level, take_all
from authproxy.limits.memory import MemoryBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TEN_PER_MIN = parse_rate("10/min")  # burst 10, one token every 6 s
THREE_BURST = parse_rate("10/min", 3)


def test_an_absent_bucket_is_full() -> None:
    assert level(None, THREE_BURST, 0.0) == 3.0


def test_refill_is_linear_and_capped_at_burst() -> None:
    empty = Bucket(tokens=0.0, stamp=100.0, full_at=118.0)
    assert level(empty, THREE_BURST, 103.0) == pytest.approx(0.5)
    assert level(empty, THREE_BURST, 112.0) == pytest.approx(2.0)
    assert level(empty, THREE_BURST, 1e9) == 3.0


def test_a_clock_that_steps_back_adds_no_tokens() -> None:
    assert level(Bucket(0.5, 100.0, 110.0), THREE_BURST, 50.0) == 0.5


def test_after_take_records_when_the_bucket_is_full_again() -> None:
    bucket = after_take(3.0, THREE_BURST, 100.0)
    assert (bucket.tokens, bucket.stamp) == (2.0, 100.0)
    assert bucket.full_at == pytest.approx(106.0)  # one token back at 10/min


def test_take_all_is_all_or_nothing_and_reports_the_longest_wait() -> None:
    slow = Rate(1, 60.0, 1, "1/min")
    taken = take_all([5.0, 0.5, 0.25], [TEN_PER_MIN, TEN_PER_MIN, slow])
    assert not taken.allowed
    assert taken.limiting == 2  # 45 s for the 1/min bucket beats 3 s for the 10/min one
    assert taken.retry_after == pytest.approx(45.0)
    assert taken.remaining == (5, 0, 0)
    ok = take_all([5.0, 1.0], [TEN_PER_MIN, slow])
    assert (ok.allowed, ok.retry_after, ok.remaining, ok.limiting) == (True, 0.0, (4, 0), -1)


async def test_burst_then_steady_rate_on_a_fake_clock() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    keys = [("alice", THREE_BURST)]
    results = [(await store.take(keys)).allowed for _ in range(4)]
    assert results == [True, True, True, False]
    refused = await store.take(keys)
    assert refused.retry_after == pytest.approx(6.0)
    clock.now += 5.9
    assert not (await store.take(keys)).allowed
    clock.now += 0.1
    assert (await store.take(keys)).allowed  # one token every 6 s
    assert not (await store.take(keys)).allowed


async def test_callers_have_separate_buckets() -> None:
    store = MemoryBuckets(FakeClock())
    one = Rate(1, 60.0, 1, "1/min")
    assert (await store.take([("alice", one)])).allowed
    assert not (await store.take([("alice", one)])).allowed
    assert (await store.take([("bob", one)])).allowed


async def test_a_refused_request_takes_from_no_bucket() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    roomy, tight = parse_rate("100/min"), Rate(1, 60.0, 1, "1/min")
    assert (await store.take([("u:default", roomy), ("u:runs", tight)])).allowed
    for _ in range(5):
        assert not (await store.take([("u:default", roomy), ("u:runs", tight)])).allowed
    # The default bucket lost only the one token of the request that passed.
    assert (await store.take([("u:default", roomy)])).remaining == (98,)


async def test_full_buckets_are_forgotten_so_memory_follows_active_callers() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    for i in range(5000):
        await store.take([(f"caller-{i}", TEN_PER_MIN)])
    assert len(store) == 5000  # the sweep at 4096 kept every one: none was full yet
    clock.now += 7.0  # every bucket is full again (one token back after 6 s)
    for i in range(5000, 9000):
        await store.take([(f"caller-{i}", TEN_PER_MIN)])
    assert len(store) < 9000
    assert (await store.take([("caller-1", TEN_PER_MIN)])).remaining == (9,)  # forgotten = full


@given(
    steps=st.lists(st.floats(0, 30), min_size=1, max_size=60),
    count=st.integers(1, 20),
    burst=st.integers(1, 20),
)
def test_admitted_never_exceeds_burst_plus_refill(steps: list[float], count: int, burst: int) -> None:
    rate = Rate(count, 60.0, burst, "x")
    clock = FakeClock()
    store = MemoryBuckets(clock)
    start, admitted = clock.now, 0
    for advance in steps:
        clock.now += advance
        admitted += store.take_now([("k", rate)]).allowed
    assert admitted <= burst + (clock.now - start) * rate.per_second + 1e-9
