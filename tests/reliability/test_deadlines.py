"""Tools whose TWS request is never answered: the answer must come within 30 s (DESIGN.md §3)
and must say that TWS did not answer, never pass a timeout off as data.

Each case waits out the tool's own deadline (~25-28 s), so they run under ``slow``
(``make soak``), not in the CI-sized suite.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.reliability.support import App, code_of, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CONTRACT_S = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running_app(tmp_path) as running:
        yield running


@pytest.mark.timeout(90)
async def test_unanswered_price_history_is_an_error_not_zero_bars(app: App) -> None:
    app.sim.delay_responses("reqHistoricalData", 120.0)
    started = time.monotonic()
    answer = await app.call("get_price_history", {"symbol": "MSFT"}, deadline=60)
    elapsed = time.monotonic() - started
    assert elapsed <= CONTRACT_S, elapsed
    assert code_of(answer) is not None, f"a timeout reported as data: {answer['summary']}"


@pytest.mark.timeout(90)
async def test_an_absurd_history_span_is_answered_within_the_deadline(app: App) -> None:
    started = time.monotonic()
    answer = await app.call("get_price_history", {"symbol": "MSFT", "duration": "999 Y"})
    elapsed = time.monotonic() - started
    assert elapsed <= CONTRACT_S, f"answered after {elapsed:.1f}s: {answer}"
    assert code_of(answer) == "INVALID_ARGUMENT", answer


@pytest.mark.timeout(90)
async def test_a_history_request_repeated_after_the_pacing_window_is_no_violation(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, follow_wall_clock=False) as app:
        first = await app.call("get_price_history", {"symbol": "AAPL"})
        assert code_of(first) is None, first
        await app.call("get_quote", {"symbol": "MSFT"})  # switching clears the bar cache
        await anyio.sleep(16.0)  # past IB's 15 s identical-request window, in wall time
        again = await app.call("get_price_history", {"symbol": "AAPL"})
        assert code_of(again) is None, again
        assert app.sim.stats.pacing_violations == 0, app.sim.stats.violation_log
