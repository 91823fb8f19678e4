"""get_portfolio end to end: the real MCP layer, the real ib_async client, the simulated TWS.
Positions are opened through confirmed previews, then the book is read back as structures
with P&L, greeks and stops, in both the text and the structured content."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import TextContent

from sumppump.tools.portfolio import expiry_status
from tests.reliability.support import App, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running_app(tmp_path) as running:
        yield running


async def confirm(app: App, preview: dict[str, Any]) -> dict[str, Any]:
    return await app.call(
        "execute_trade",
        {"preview_id": preview["preview_id"], "confirm_text": preview["confirm_text"]},
    )


async def open_filled(app: App, symbol: str, strategy: str, pick: list[int]) -> str:
    """Open ``strategy`` at the chain's strikes ``pick``; return its order ref."""
    chain = await app.ok("get_options_chain", {"symbol": symbol, "strikes_each_side": 3})
    strikes = sorted({r["strike"] for r in chain["rows"]})
    preview = await app.ok(
        "calculate_strategy",
        {
            "symbol": symbol,
            "strategy": strategy,
            "expiry": chain["expiry"],
            "strikes": [strikes[i] for i in pick],
        },
    )
    placed = await confirm(app, preview)
    if placed.get("status") != "Filled":
        # resting at mid: move a debit to the ask, a credit to near zero (a confirmed change)
        natural = preview["net_natural"]
        limit = natural if natural and natural > 0 else 0.05
        change = await app.ok(
            "modify_order", {"order_ref": placed["order_ref"], "limit_price": limit}
        )
        placed = await confirm(app, change)
        await anyio.sleep(0.5)
    assert placed.get("status") == "Filled", placed
    return str(placed["order_ref"])


async def portfolio(app: App) -> tuple[dict[str, Any], str]:
    result = await app.client.call_tool("get_portfolio", {}, raise_on_error=False)
    assert not result.is_error, result.content
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    assert isinstance(result.structured_content, dict)
    return result.structured_content, text


async def test_a_spread_a_covered_call_and_a_long_call_are_three_structures(app: App) -> None:
    # one symbol, strikes that pair one way only: spread 0/2, covered call 3, long call 5
    spread_ref = await open_filled(app, "AAPL", "bull_call_spread", [0, 2])
    await anyio.sleep(0.5)
    stop = await app.ok("set_stop_loss", {"symbol": "AAPL", "position": spread_ref})
    assert (await confirm(app, stop)).get("order_ref"), stop
    await open_filled(app, "AAPL", "covered_call", [3])
    await open_filled(app, "AAPL", "long_call", [5])

    book, text = await portfolio(app)
    assert book["environment"] == "SIMULATED"
    by_name = {s["name"]: s for s in book["structures"]}
    # the simulated account starts with 200 AAPL shares: 100 cover the call, 100 stay shares
    assert set(by_name) == {"bull call spread", "covered call", "long call", "shares"}, text
    assert by_name["shares"]["units"] == 100
    for s in book["structures"]:
        assert s["mark"] is not None and s["unrealised_pnl"] is not None, s
        assert s["unrealised_pnl"] == pytest.approx(s["value"] - s["cost"], abs=0.02)
        assert s["greeks"] is not None, s["notes"]
        assert s["max_loss_at_risk"] is not None and s["max_loss_at_risk"] >= 0
        # every figure of the structure is in the text too
        assert f"{s['unrealised_pnl']:+,.2f}" in text
        assert f"{s['greeks']['delta_dollars']:+,.2f}" in text
        assert f"{s['max_loss_at_risk']:,.2f}" in text
    spread, covered, call = (
        by_name["bull call spread"],
        by_name["covered call"],
        by_name["long call"],
    )
    assert len(spread["legs"]) == 2 and spread["inferred"]
    assert len(spread["breakevens"]) == 1 and spread["days_to_expiry"] >= 7
    # covered call: 100 shares (delta 1 each) minus the short call's delta
    assert 0 < covered["greeks"]["delta_shares"] < 100
    assert call["stop"] is None and "stop: none (unprotected)" in text
    # the spread's combo stop sells it when its value falls to the trigger
    assert spread["stop"] is not None and spread["stop"]["working"], spread
    assert 0 < spread["stop"]["trigger"] < spread["mark"]
    assert spread["stop"]["distance"] == pytest.approx(
        spread["mark"] - spread["stop"]["trigger"], abs=1e-3
    )
    assert f"stop: {spread['stop']['order_type']} at {spread['stop']['trigger']:g} working" in text
    totals = book["totals"]
    assert totals["unrealised_pnl"] == pytest.approx(
        sum(s["unrealised_pnl"] for s in book["structures"]), abs=0.05
    )
    assert totals["unprotected"] == 3
    assert f"{totals['unrealised_pnl']:+,.2f}" in text
    # nothing expires within three trading days; AAPL's next dividend (generic tick 456: the
    # simulator's $0.26 going ex 2026-12-07) reaches the short call's early-assignment check
    assert not any("no dividend data" in n for n in book["watch"]["not_run"]), book["watch"]
    for warning in book["watch"]["warnings"]:
        assert warning["kind"] == "early_assignment" and "0.26 dividend" in warning["message"]


async def test_two_trading_days_before_expiry_the_watch_warns_with_the_cash_need(
    app: App,
) -> None:
    await open_filled(app, "AAPL", "long_call", [0])  # the lowest strike shown: in the money
    book, _ = await portfolio(app)
    [call] = [s for s in book["structures"] if s["name"] == "long call"]
    expiry = call["expiry"]
    # the simulator starts on Wed 2026-11-25; the nearest expiry ≥ 7 days out is Fri 2026-12-04.
    # Move to Wed 2026-12-02, 10:00 New York: Thu and Fri are left.
    assert expiry == "2026-12-04"
    await app.sim.advance(7 * 86_400)
    book, text = await portfolio(app)
    warnings = {w["kind"]: w for w in book["watch"]["warnings"]}
    [strike] = [leg["description"].split()[-2] for leg in call["legs"]]
    if "itm_expiry" in warnings:
        itm = warnings["itm_expiry"]
        assert itm["trading_days_left"] == 2 and itm["shares"] == 100
        assert itm["cash"] == pytest.approx(-100 * float(strike))
        assert {a["tool"] for a in itm["actions"]} >= {"close_position", "exercise_option"}
        need = warnings["funds_needed"]
        assert f"{-itm['cash']:,.2f}" in need["message"] and need["message"] in text
        # the line get_status is to show
        line = await expiry_status(app.service)
        assert "1 in the money near expiry" in line and "get_portfolio" in line
    else:  # the walk took it out of the money: it is said to expire worthless
        assert warnings["worthless_expiry"]["trading_days_left"] == 2
    assert "Expiry watch:" in text and "[close_position]" in text
