"""roll_position on a covered call end to end (issue 20 item 4): the real MCP layer, the real
ib_async client, the simulated TWS. The short call is bought back and a later one sold as one
guaranteed combo; the shares stay, and the simulator's book stays Level 2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.actors.test_position_changes import (
    assert_book_is_level2,
    chain,
    confirm,
    held,
    settle,
)
from tests.reliability.support import (
    App,
    assert_no_violations,
    assert_order_invariants,
    running_app,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running_app(tmp_path) as running:
        yield running
        assert_order_invariants(running.sim, running.confirmed)
        assert_no_violations(running.sim)
        assert_book_is_level2(running)


async def test_a_covered_calls_short_call_rolls_as_one_combo(app: App) -> None:
    expiry, strikes, expiries = await chain(app)
    preview = await app.ok(
        "calculate_strategy",
        {"symbol": "AAPL", "strategy": "covered_call", "expiry": expiry, "strikes": [strikes[4]]},
    )
    placed = await confirm(app, preview)
    if placed["status"] != "Filled":  # sold at mid and not taken yet: move it to near zero
        change = await app.ok(
            "modify_order", {"order_ref": placed["order_ref"], "limit_price": 0.05}
        )
        await confirm(app, change)
        await settle(app)
    before = await held(app)
    assert before[(expiry, strikes[4], "C")] == -1
    shares = before[(None, None, None)]

    later = next(e for e in expiries if e > expiry)
    roll = await app.ok(
        "roll_position",
        {
            "symbol": "AAPL",
            "new_expiry": later,
            "position": f"{expiry} {strikes[4]:g} C",
            "new_strikes": [strikes[5]],
        },
    )
    legs = roll["order"]["legs"]
    assert len(legs) == 2 and all("shares" not in str(leg) for leg in legs), legs
    assert "1 guaranteed combo" in roll["confirm_text"]
    assert sorted(roll["details"]["holds_after"]) == sorted(
        [f"{shares:+g} AAPL shares", f"-1 AAPL {later} {strikes[5]:g} C"]
    )
    done = await confirm(app, roll)
    assert "error" not in done, done
    if done.get("status") != "Filled":  # resting at mid: a confirmed change to the natural
        natural = roll["details"]["natural"]
        change = await app.ok(
            "modify_order", {"order_ref": done["order_ref"], "limit_price": natural}
        )
        await confirm(app, change)
    await settle(app)
    after = await held(app)
    assert after[(later, strikes[5], "C")] == -1
    assert (expiry, strikes[4], "C") not in after
    assert after[(None, None, None)] == shares
