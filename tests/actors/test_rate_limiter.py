"""The rate limiter keeps every request inside TWS's limits (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.actors.rate_limiter import RateLimiter
from sumppump.actors.runtime import Ref, start_actor
from sumppump.messages.rate_limiter import (
    AcquireMessages,
    GetPacingStats,
    HistoricalPermit,
    LeaseLines,
    LinesLeased,
    LinesUnavailable,
    MessagesGranted,
    PacingDelayed,
    PacingStats,
    PermitGranted,
    Released,
    ReleaseHolder,
    ReleaseLines,
)

pytestmark = pytest.mark.anyio


class ManualClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def limiter(clock: ManualClock, **kwargs: object) -> AsyncIterator[Ref]:
    async with start_actor(
        lambda: RateLimiter(clock=clock, **kwargs),  # type: ignore[arg-type]
        name="rate_limiter",
    ) as ref:
        yield ref


async def test_messages_burst_to_the_rate_then_wait_for_the_window() -> None:
    clock = ManualClock()
    async with limiter(clock, message_rate=45) as ref:
        waits = []
        for _ in range(46):
            reply = await ref.call(AcquireMessages(), timeout=1)
            assert isinstance(reply, MessagesGranted)
            waits.append(reply.wait)
    assert waits[:45] == [0.0] * 45
    assert waits[45] == pytest.approx(1.1)  # IB's second plus slack for send lag


async def test_a_reservation_longer_than_max_wait_is_refused_and_not_booked() -> None:
    clock = ManualClock()
    async with limiter(clock, message_rate=10) as ref:
        granted = await ref.call(AcquireMessages(count=10), timeout=1)
        assert isinstance(granted, MessagesGranted)
        refused = await ref.call(AcquireMessages(count=5, max_wait=0.5), timeout=1)
        assert isinstance(refused, PacingDelayed)
        assert refused.limit == "messages"
        assert refused.retry_after == pytest.approx(1.1)
        too_many = await ref.call(AcquireMessages(count=11), timeout=1)
        assert isinstance(too_many, PacingDelayed)
        again = await ref.call(AcquireMessages(count=1), timeout=1)
        assert isinstance(again, MessagesGranted)
        assert again.wait == pytest.approx(1.1)


@settings(max_examples=40, deadline=None)
@given(
    arrivals=st.lists(
        st.tuples(st.floats(0, 0.5, allow_nan=False), st.integers(1, 20)),
        min_size=1,
        max_size=60,
    )
)
async def test_no_one_second_window_ever_holds_more_than_the_rate(
    arrivals: list[tuple[float, int]],
) -> None:
    clock = ManualClock()
    rate = 20
    sends: list[float] = []
    async with limiter(clock, message_rate=rate) as ref:
        for gap, count in arrivals:
            clock.now += gap
            reply = await ref.call(AcquireMessages(count=count, max_wait=1e9), timeout=1)
            assert isinstance(reply, MessagesGranted)
            # The caller sends its `count` messages at the granted time.
            sends.extend([clock.now + reply.wait] * count)
    sends.sort()
    for i, start in enumerate(sends):
        in_window = sum(1 for t in sends[i:] if t < start + 1.0 - 1e-9)
        assert in_window <= rate


async def test_lines_are_leased_within_the_budget_released_and_expire() -> None:
    clock = ManualClock()
    async with limiter(clock, lines_budget=90) as ref:
        first = await ref.call(LeaseLines(holder="chain", count=60, ttl=30), timeout=1)
        assert isinstance(first, LinesLeased)
        refused = await ref.call(LeaseLines(holder="chain", count=40), timeout=1)
        assert refused == LinesUnavailable(requested=40, available=30, budget=90)
        partial = await ref.call(LeaseLines(holder="quote", count=40, partial=True), timeout=1)
        assert isinstance(partial, LinesLeased)
        assert partial.count == 30
        released = await ref.call(ReleaseLines(lease_id=partial.lease_id), timeout=1)
        assert released == Released(lines=30)
        clock.now += 31  # the first lease expires: a crashed holder cannot leak lines
        stats = await ref.call(GetPacingStats(), timeout=1)
        assert isinstance(stats, PacingStats)
        assert stats.lines_in_use == 0


async def test_release_holder_frees_every_lease_of_that_holder_only() -> None:
    clock = ManualClock()
    async with limiter(clock, lines_budget=90) as ref:
        for holder, count in [("chain", 10), ("chain", 20), ("risk", 5)]:
            assert isinstance(await ref.call(LeaseLines(holder=holder, count=count)), LinesLeased)
        assert await ref.call(ReleaseHolder(holder="chain"), timeout=1) == Released(lines=30)
        stats = await ref.call(GetPacingStats(), timeout=1)
        assert isinstance(stats, PacingStats)
        assert stats.lines_in_use == 5


async def test_identical_historical_request_within_15_s_is_delayed() -> None:
    clock = ManualClock()
    async with limiter(clock) as ref:
        permit = HistoricalPermit(request_key="AAPL|1 day|1 M", contract_key="AAPL")
        assert isinstance(await ref.call(permit, timeout=1), PermitGranted)
        clock.now += 4
        delayed = await ref.call(permit, timeout=1)
        assert isinstance(delayed, PacingDelayed)
        assert delayed.limit == "historical_identical"
        assert delayed.retry_after == pytest.approx(11.3)  # 15 s after, with the 0.3 s margin
        clock.now += delayed.retry_after
        assert isinstance(await ref.call(permit, timeout=1), PermitGranted)


async def test_sixth_request_for_one_contract_within_two_seconds_is_delayed() -> None:
    clock = ManualClock()
    async with limiter(clock) as ref:
        for i in range(5):
            clock.now += 0.1
            permit = HistoricalPermit(request_key=f"AAPL|{i}", contract_key="AAPL")
            assert isinstance(await ref.call(permit, timeout=1), PermitGranted)
        sixth = await ref.call(HistoricalPermit(request_key="AAPL|5", contract_key="AAPL"))
        assert isinstance(sixth, PacingDelayed)
        assert sixth.limit == "historical_contract"
        assert sixth.retry_after == pytest.approx(1.9)
        other = await ref.call(HistoricalPermit(request_key="MSFT|0", contract_key="MSFT"))
        assert isinstance(other, PermitGranted)


async def test_sixty_first_historical_request_in_ten_minutes_is_delayed() -> None:
    clock = ManualClock()
    async with limiter(clock) as ref:
        for i in range(60):
            clock.now += 3
            permit = HistoricalPermit(request_key=f"k{i}", contract_key=f"c{i}")
            assert isinstance(await ref.call(permit, timeout=1), PermitGranted)
        refused = await ref.call(HistoricalPermit(request_key="k60", contract_key="c60"))
        assert isinstance(refused, PacingDelayed)
        assert refused.limit == "historical_window"
        assert refused.retry_after == pytest.approx(600 - 59 * 3 + 0.3)
        stats = await ref.call(GetPacingStats(), timeout=1)
        assert isinstance(stats, PacingStats)
        assert stats.historical_last_10_min == 60
        assert stats.delayed_total == 1


async def test_stats_count_messages_in_the_last_second() -> None:
    clock = ManualClock()
    async with limiter(clock, message_rate=45) as ref:
        await ref.call(AcquireMessages(count=7), timeout=1)
        clock.now += 0.5
        await ref.call(AcquireMessages(count=3), timeout=1)
        stats = await ref.call(GetPacingStats(), timeout=1)
        assert isinstance(stats, PacingStats)
        assert (stats.messages_last_second, stats.messages_total) == (10, 10)
        clock.now += 0.6
        stats = await ref.call(GetPacingStats(), timeout=1)
        assert isinstance(stats, PacingStats)
        assert stats.messages_last_second == 3


async def test_historical_requests_within_the_callers_wait_are_queued_not_refused() -> None:
    """Issue 21: parallel calls get answers; the limiter queues them at the earliest time
    IB's three rules allow, and says PACING only when that is past the caller's wait."""
    clock = ManualClock()
    async with limiter(clock) as ref:
        waits = []
        for i in range(7):
            permit = HistoricalPermit(request_key=f"AAPL|{i}", contract_key="AAPL", max_wait=20)
            granted = await ref.call(permit, timeout=1)
            assert isinstance(granted, PermitGranted)
            waits.append(granted.wait)
        # five at once, the sixth and seventh 2 s later (at most 5 per contract in any 2 s)
        assert waits == pytest.approx([0, 0, 0, 0, 0, 2.3, 2.3])
        same = HistoricalPermit(request_key="AAPL|0", contract_key="AAPL", max_wait=20)
        identical = await ref.call(same, timeout=1)
        assert isinstance(identical, PermitGranted)
        assert identical.wait == pytest.approx(15.3)  # no identical request within 15 s
        too_long = HistoricalPermit(request_key="AAPL|1", contract_key="AAPL", max_wait=5)
        refused = await ref.call(too_long, timeout=1)
        assert isinstance(refused, PacingDelayed)
        assert refused.limit == "historical_identical"
        assert refused.retry_after == pytest.approx(15.3)
        other = await ref.call(
            HistoricalPermit(request_key="MSFT|0", contract_key="MSFT", max_wait=20), timeout=1
        )
        assert other == PermitGranted(wait=0.0)


async def test_queued_historical_grants_keep_every_window_of_two_seconds_within_five() -> None:
    clock = ManualClock()
    async with limiter(clock) as ref:
        at: list[float] = []
        for i in range(17):
            clock.now += 0.05
            permit = HistoricalPermit(request_key=f"X|{i}", contract_key="X", max_wait=60)
            granted = await ref.call(permit, timeout=1)
            assert isinstance(granted, PermitGranted)
            at.append(clock.now + granted.wait)
        for start in at:
            assert sum(1 for t in at if start <= t < start + 2.0) <= 5
