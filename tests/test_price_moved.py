"""PRICE_MOVED hands the person the fresh preview: the same order at the current price, with
its own id and confirm text, which places exactly once when confirmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.support import assert_order_invariants, code_of, placed_orders, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_moved_price_answers_the_fresh_preview_and_it_can_be_confirmed(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, follow_wall_clock=False) as app:
        chain = await app.ok("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
        strikes = sorted({row["strike"] for row in chain["rows"]})
        preview = await app.ok(
            "calculate_strategy",
            {
                "symbol": "AAPL",
                "strategy": "long_call",
                "expiry": chain["expiry"],
                "strikes": [strikes[3]],
            },
        )
        spot = chain["underlying"]["last"] or chain["underlying"]["bid"]
        app.sim.set_price("AAPL", spot * 1.06)
        app.confirmed.add(preview["preview_id"])
        moved = await app.call(
            "execute_trade",
            {"preview_id": preview["preview_id"], "confirm_text": preview["confirm_text"]},
        )
        assert code_of(moved) == "PRICE_MOVED", moved
        fresh = moved["fresh_preview"]
        assert fresh["preview_id"] != preview["preview_id"]
        assert fresh["kind"] == "open" and fresh["confirm_text"] != preview["confirm_text"]
        assert not placed_orders(app.sim)
        placed = await app.ok(
            "execute_trade",
            {"preview_id": fresh["preview_id"], "confirm_text": fresh["confirm_text"]},
        )
        app.confirmed.add(fresh["preview_id"])
        assert placed["order_ref"] == fresh["preview_id"]
        assert [o.order_ref for o in placed_orders(app.sim)] == [fresh["preview_id"]]
        assert_order_invariants(app.sim, app.confirmed)
