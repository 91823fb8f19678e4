"""exercise_option end to end: the real MCP layer, the real ib_async client, the simulated TWS.
A long call is opened through a confirmed preview, then exercised (or lapsed) through a
confirmed exercise preview; the simulator's book shows what IB would have done."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import TextContent

from sumppump.tws_sim.clock import NEW_YORK
from tests.reliability.support import ACCOUNT, App, code_of, running_app
from tests.test_portfolio_tool import confirm

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running_app(tmp_path) as running:
        yield running


async def open_filled(app: App, strategy: str, pick: list[int]) -> None:
    """Open ``strategy`` on AAPL at the chain's strikes ``pick``, filled (a resting order is
    moved to the natural price through a confirmed change)."""
    chain = await app.ok("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
    strikes = sorted({r["strike"] for r in chain["rows"]})
    args = {"symbol": "AAPL", "strategy": strategy, "expiry": chain["expiry"]}
    preview = await app.ok("calculate_strategy", {**args, "strikes": [strikes[i] for i in pick]})
    placed = await confirm(app, preview)
    if placed.get("status") != "Filled":
        natural = preview["net_natural"]
        limit = natural if natural and natural > 0 else 0.05
        change = await app.ok(
            "modify_order", {"order_ref": placed["order_ref"], "limit_price": limit}
        )
        placed = await confirm(app, change)
        with anyio.fail_after(10):
            while not any(p.quantity for p in app.sim.broker.accounts[ACCOUNT].positions.values()):
                await anyio.sleep(0.1)
    assert placed.get("status") == "Filled", placed


def long_call(app: App) -> tuple[int, float, str, float]:
    """(con_id, strike, expiry, contracts) of the long AAPL call in the simulator's book."""
    acct = app.sim.broker.accounts[ACCOUNT]
    [pos] = [
        p
        for p in acct.positions.values()
        if p.instrument.sec_type == "OPT" and p.quantity > 0 and p.instrument.right == "C"
    ]
    inst = pos.instrument
    expiry = dt.datetime.strptime(inst.expiry.replace("-", ""), "%Y%m%d").date()
    return inst.con_id, inst.strike, expiry.isoformat(), pos.quantity


def shares(app: App) -> float:
    und = app.sim.catalog.underlying("AAPL")
    pos = app.sim.broker.accounts[ACCOUNT].positions.get(und.con_id)
    return 0.0 if pos is None else float(pos.quantity)


async def text_and_data(app: App, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    result = await app.client.call_tool(name, args, raise_on_error=False)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    return text, result.structured_content


async def test_exercise_through_a_confirmed_preview_buys_the_shares(app: App) -> None:
    await open_filled(app, "long_call", [0])
    con_id, strike, expiry, held = long_call(app)
    assert held == 1
    cash_before, shares_before = app.sim.broker.accounts[ACCOUNT].cash, shares(app)

    text, preview = await text_and_data(app, "exercise_option", {"symbol": "AAPL"})
    assert preview["kind"] == "exercise" and preview["contracts"] == 1
    assert preview["shares"] == 100 and preview["cash"] == pytest.approx(-100 * strike)
    assert preview["shares_after"] == shares_before + 100 and preview["contracts_after"] == 0
    assert preview["cutoff"] == f"{expiry}T17:25:00-05:00"
    assert "17:25" in preview["confirm_text"] and "100 shares" in preview["confirm_text"]
    assert f"{100 * strike:,.2f}" in preview["confirm_text"]
    # every figure in the text too (Claude Desktop reads only the text)
    for figure in ("buys 100 AAPL shares", f"{100 * strike:,.2f}", "17:25", preview["preview_id"]):
        assert figure in text, (figure, text)
    assert not app.sim.exercise_requests  # a preview sends nothing

    done = await confirm(app, preview)
    assert "error" not in done, done
    assert done["status"] == "exercised" and done["confirmed"] is True
    assert (done["contracts_before"], done["contracts_after"]) == (1, 0)
    assert done["shares_after"] == shares_before + 100
    assert app.sim.exercise_requests == [(ACCOUNT, con_id, 1, 1)]
    assert shares(app) == shares_before + 100
    assert app.sim.broker.accounts[ACCOUNT].cash == pytest.approx(cash_before - 100 * strike)

    status = await app.ok("get_order_status", {"order_ref": preview["preview_id"]})
    assert status["outcome"] == "filled" and status["kind"] == "exercise"
    assert "shares" in status["message"] and f"{-100 * strike:+,.2f}" in status["message"]

    again = await confirm(app, preview)  # single use
    assert code_of(again) == "PREVIEW_USED"
    assert len(app.sim.exercise_requests) == 1


async def test_lapse_and_the_refusals(app: App) -> None:
    await open_filled(app, "bull_call_spread", [0, 1])
    con_id, strike, expiry, _ = long_call(app)
    long_leg = f"{expiry} {strike:g} C"

    # two options held: which one must be said
    both = await app.call("exercise_option", {"symbol": "AAPL"})
    assert code_of(both) == "INVALID_ARGUMENT" and "2 option positions" in both["error"]["message"]
    # the short call of the spread is assigned, never exercised
    acct = app.sim.broker.accounts[ACCOUNT]
    [short] = [p.instrument for p in acct.positions.values() if p.quantity < 0]
    short_call = await app.call(
        "exercise_option", {"symbol": "AAPL", "position": f"{expiry} {short.strike:g} C"}
    )
    assert code_of(short_call) == "INVALID_ARGUMENT"
    assert "short option" in short_call["error"]["message"]
    over = await app.call(
        "exercise_option", {"symbol": "AAPL", "position": long_leg, "quantity": 5}
    )
    assert code_of(over) == "INVALID_ARGUMENT" and "5 contracts asked, 1 held" in str(over)

    # a wrong confirm text sends nothing
    lapse = await app.ok(
        "exercise_option", {"symbol": "AAPL", "position": long_leg, "action": "lapse"}
    )
    assert (lapse["shares"], lapse["cash"], lapse["contracts_after"]) == (0, 0, 1)
    wrong = await app.call(
        "execute_trade", {"preview_id": lapse["preview_id"], "confirm_text": "yes"}
    )
    assert code_of(wrong) == "CONFIRM_MISMATCH" and not app.sim.exercise_requests
    sent = await confirm(app, lapse)
    assert sent["status"] == "lapse_sent" and sent["confirmed"] is False
    assert app.sim.exercise_requests == [(ACCOUNT, con_id, 2, 1)]
    status = await app.ok("get_order_status", {"order_ref": lapse["preview_id"]})
    assert status["outcome"] == "working" and status["kind"] == "lapse"

    # after IB's cut-off on expiry day nothing is accepted
    app.sim.clock.set(dt.datetime.combine(dt.date.fromisoformat(expiry), dt.time(17, 26), NEW_YORK))
    late = await app.call("exercise_option", {"symbol": "AAPL", "position": long_leg})
    assert code_of(late) == "MARKET_CLOSED" and "17:25" in late["error"]["message"]
    assert len(app.sim.exercise_requests) == 1


async def test_ibs_refusal_after_the_cutoff_counts_toward_the_breaker(app: App) -> None:
    await open_filled(app, "long_call", [0])
    con_id, _strike, expiry, _ = long_call(app)
    day = dt.date.fromisoformat(expiry)
    app.sim.clock.set(dt.datetime.combine(day, dt.time(17, 20), NEW_YORK))
    previews = [await app.ok("exercise_option", {"symbol": "AAPL"}) for _ in range(4)]
    # IB's cut-off passes between the preview and the execute: IB refuses (code 321)
    app.sim.clock.set(dt.datetime.combine(day, dt.time(17, 26), NEW_YORK))
    for preview in previews[:3]:
        answer = await confirm(app, preview)
        assert code_of(answer) == "ORDER_REJECTED" and "17:25" in answer["error"]["message"]
    blocked = await confirm(app, previews[3])
    assert code_of(blocked) == "ORDER_REJECTED" and "circuit breaker" in str(blocked)
    assert len(app.sim.requests_named("exerciseOptions")) == 3  # the fourth was never sent
    assert not app.sim.exercise_requests  # none accepted
    assert long_call(app)[0] == con_id
    status = await app.ok("get_order_status", {"order_ref": previews[0]["preview_id"]})
    assert status["outcome"] == "rejected"
