"""close_position, modify_order and roll_position end to end: the real MCP layer, the real
ib_async client, the simulated TWS. Every order reaches TWS only through a confirmed preview,
and each test ends with the simulator's own book checked against the Level-2 rule and the
order invariants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from sumppump.messages.connection import PositionInfo
from sumppump.trading.holdings import level2_after
from tests.reliability.support import (
    ACCOUNT,
    App,
    assert_no_violations,
    assert_order_invariants,
    code_of,
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


# ---------------------------------------------------------------------- helpers


def assert_book_is_level2(app: App) -> None:
    """The simulator's own book: its positions hold no uncovered short (the Level-2 rule on
    what remains), and no working stop would trade more than the position it protects, or
    trade it the wrong way (a stop that outlived its position would open a new one)."""
    broker = app.sim.broker
    positions = {
        con_id: pos
        for con_id, pos in broker.accounts[ACCOUNT].positions.items()
        if abs(pos.quantity) > 1e-9
    }
    held = [
        _position_info(con_id, pos.quantity, pos.instrument) for con_id, pos in positions.items()
    ]
    verdict = level2_after(held, (), 0)
    assert verdict.allowed, verdict.reason
    for order in broker.orders.values():
        if not order.is_active or order.order_type not in ("STP", "STP LMT"):
            continue
        for con_id, size in _order_exposure(order).items():
            position = positions.get(con_id)
            held_qty = position.quantity if position else 0.0
            assert abs(size) <= abs(held_qty) + 1e-9 and size * held_qty <= 0, (
                f"stop {order.order_ref} trades {size} of {con_id}; {held_qty} is held"
            )


def _position_info(con_id: int, quantity: float, inst: Any) -> PositionInfo:
    if getattr(inst, "sec_type", "STK") != "OPT":
        return PositionInfo(
            account=ACCOUNT,
            con_id=con_id,
            symbol="AAPL",
            sec_type="STK",
            quantity=quantity,
            avg_cost=0.0,
        )
    expiry = f"{inst.expiry[:4]}-{inst.expiry[4:6]}-{inst.expiry[6:]}"
    return PositionInfo(
        account=ACCOUNT,
        con_id=con_id,
        symbol=inst.symbol,
        sec_type="OPT",
        quantity=quantity,
        avg_cost=0.0,
        expiry=expiry,
        strike=inst.strike,
        right=inst.right,
        multiplier=100.0,
    )


def _order_exposure(order: Any) -> dict[int, float]:
    """Signed contracts (shares) per conId the working order would still trade."""
    sign = 1 if order.action == "BUY" else -1
    if order.is_combo:
        return {
            inst.con_id: sign * (1 if action == "BUY" else -1) * ratio * order.remaining
            for inst, ratio, action in order.legs
        }
    return {order.instrument.con_id: sign * order.remaining}


async def confirm(app: App, preview: dict[str, Any]) -> dict[str, Any]:
    assert "preview_id" in preview, preview
    return await app.call(
        "execute_trade",
        {"preview_id": preview["preview_id"], "confirm_text": preview["confirm_text"]},
    )


async def chain(app: App) -> tuple[str, list[float], list[str]]:
    found = await app.ok("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
    return found["expiry"], sorted({r["strike"] for r in found["rows"]}), found["expiries"]


async def open_filled(app: App, strategy: str, strikes: list[float], quantity: int = 1) -> str:
    expiry, _strikes, _ = await chain(app)
    preview = await app.ok(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": strategy,
            "expiry": expiry,
            "strikes": strikes,
            "quantity": quantity,
        },
    )
    placed = await confirm(app, preview)
    assert placed.get("status") == "Filled", placed
    return str(placed["order_ref"])


async def held(app: App) -> dict[tuple[Any, Any, Any], float]:
    positions = (await app.ok("get_positions"))["positions"]
    return {(p["expiry"], p["strike"], p["right"]): p["quantity"] for p in positions}


async def working_refs(app: App) -> set[str]:
    orders = (await app.ok("get_open_orders"))["orders"]
    return {o["order_ref"] for o in orders}


async def settle(app: App) -> None:
    """Let fills and status reports reach execution."""
    await anyio.sleep(0.5)


# ---------------------------------------------------------------------- close


async def test_closing_a_long_call_sells_it_and_states_proceeds_and_realised_pnl(app: App) -> None:
    expiry, strikes, _ = await chain(app)
    await open_filled(app, "long_call", [strikes[3]])
    preview = await app.ok(
        "close_position", {"symbol": "AAPL", "position": f"AAPL {expiry} {strikes[3]:g} C"}
    )
    details = preview["details"]
    assert preview["kind"] == "close"
    assert "SELL 1 contract of AAPL" in preview["confirm_text"]
    assert details["cash"] == pytest.approx(details["limit_price"] * 100)
    assert details["realised_pnl"] is not None and details["commission"] > 0
    assert details["natural"] <= details["limit_price"]
    assert details["holds_after"] == ["+200 AAPL shares"]
    bid = details["natural"]
    again = await app.ok(
        "close_position",
        {"symbol": "AAPL", "position": f"{expiry} {strikes[3]:g} C", "limit_price": bid},
    )
    placed = await confirm(app, again)
    assert placed["status"] == "Filled"
    await settle(app)
    assert (expiry, strikes[3], "C") not in await held(app)


async def test_a_partial_close_of_a_spread_is_one_combo_and_shrinks_its_stop(app: App) -> None:
    expiry, strikes, _ = await chain(app)
    ref = await open_filled(app, "bull_call_spread", [strikes[2], strikes[4]], quantity=3)
    stop = await app.ok("set_stop_loss", {"symbol": "AAPL", "position": ref})
    stop_ref = (await confirm(app, stop))["order_ref"]
    preview = await app.ok("close_position", {"symbol": "AAPL", "position": ref, "quantity": 1})
    details = preview["details"]
    assert "1 guaranteed combo" in preview["confirm_text"]
    assert details["stops"] == [
        {
            "order_ref": stop_ref,
            "description": details["stops"][0]["description"],
            "how": "reduced",
            "quantity_before": 3.0,
            "quantity_after": 2.0,
        }
    ]
    natural = await app.ok(
        "close_position",
        {"symbol": "AAPL", "position": ref, "quantity": 1, "limit_price": details["natural"]},
    )
    assert (await confirm(app, natural))["status"] == "Filled"
    await settle(app)
    positions = await held(app)
    assert positions[(expiry, strikes[2], "C")] == 2
    assert positions[(expiry, strikes[4], "C")] == -2
    sim_stop = next(o for o in app.sim.broker.orders.values() if o.order_ref == stop_ref)
    assert sim_stop.is_active and sim_stop.quantity == 2


async def test_without_a_position_name_several_holdings_are_listed_not_guessed(app: App) -> None:
    _expiry, strikes, _ = await chain(app)
    ref = await open_filled(app, "bull_call_spread", [strikes[2], strikes[4]])
    sent = len(app.sim.orders_received)
    answer = await app.call("close_position", {"symbol": "AAPL"})
    assert code_of(answer) == "INVALID_ARGUMENT"
    assert ref in answer["error"]["message"] and "STK" in answer["error"]["message"]
    assert len(app.sim.orders_received) == sent


async def test_closing_more_than_is_held_is_refused(app: App) -> None:
    _expiry, strikes, _ = await chain(app)
    ref = await open_filled(app, "bull_call_spread", [strikes[2], strikes[4]], quantity=2)
    answer = await app.call("close_position", {"symbol": "AAPL", "position": ref, "quantity": 3})
    assert code_of(answer) == "INVALID_ARGUMENT"
    assert "more than the 2 held" in answer["error"]["message"]


async def test_closing_the_long_leg_of_a_spread_alone_is_refused_and_the_spread_offered(
    app: App,
) -> None:
    expiry, strikes, _ = await chain(app)
    # three spreads: the 200 shares held could cover two short calls, not three
    ref = await open_filled(app, "bull_call_spread", [strikes[2], strikes[4]], quantity=3)
    answer = await app.call(
        "close_position", {"symbol": "AAPL", "position": f"AAPL {expiry} {strikes[2]:g} C"}
    )
    assert code_of(answer) == "NOT_PERMITTED_LEVEL2"
    assert f'position="{ref}"' in answer["error"]["hint"]
    # buying back the short leg alone leaves a long call: allowed
    short = await app.ok(
        "close_position", {"symbol": "AAPL", "position": f"AAPL {expiry} {strikes[4]:g} C"}
    )
    assert "BUY 3 contracts" in short["confirm_text"]


async def test_selling_shares_under_a_covered_call_is_refused_and_the_combo_offered(
    app: App,
) -> None:
    expiry, strikes, _ = await chain(app)
    preview = await app.ok(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": "covered_call",
            "expiry": expiry,
            "strikes": [strikes[5]],
            "quantity": 2,
        },
    )
    placed = await confirm(app, preview)
    if placed["status"] != "Filled":
        # sold at mid and not taken yet: move the limit to the bid (itself a confirmed change)
        change = await app.ok(
            "modify_order", {"order_ref": placed["order_ref"], "limit_price": 0.05}
        )
        changed = await confirm(app, change)
        assert changed.get("order_ref") == placed["order_ref"], changed
        await settle(app)
    assert (await held(app))[(expiry, strikes[5], "C")] == -2
    answer = await app.call("close_position", {"symbol": "AAPL", "position": "STK"})
    assert code_of(answer) == "NOT_PERMITTED_LEVEL2"
    assert "covered call" in answer["error"]["hint"]
    offered = answer["error"]["hint"].split('position="')[1].split('"')[0]
    combo = await app.ok("close_position", {"symbol": "AAPL", "position": offered})
    assert "2 guaranteed combos" in combo["confirm_text"]
    assert combo["details"]["holds_after"] == ["nothing in this symbol"]
    # selling fewer shares than are free is fine: 200 held, all cover the calls → none free
    some = await app.call("close_position", {"symbol": "AAPL", "position": "STK", "quantity": 1})
    assert code_of(some) == "NOT_PERMITTED_LEVEL2"


# ---------------------------------------------------------------------- modify


async def test_modify_moves_a_working_limit_under_the_same_ib_order(app: App) -> None:
    expiry, strikes, _ = await chain(app)
    preview = await app.ok(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": "long_call",
            "expiry": expiry,
            "strikes": [strikes[4]],
            "limit_price": 0.05,
        },
    )
    placed = await confirm(app, preview)
    ref = placed["order_ref"]
    assert placed["status"] in ("Submitted", "PreSubmitted")
    change = await app.ok("modify_order", {"order_ref": ref, "limit_price": 0.10})
    before, after = change["details"]["before"], change["details"]["after"]
    assert (before["limit_price"], after["limit_price"]) == (0.05, 0.10)
    assert after["max_loss"] == pytest.approx(before["max_loss"] + 5.0)
    assert change["replaces_order_ref"] == ref
    done = await confirm(app, change)
    assert done["order_ref"] == ref
    sim_order = next(o for o in app.sim.broker.orders.values() if o.order_ref == ref)
    assert sim_order.lmt_price == pytest.approx(0.10)
    ids = {
        o.request.order_id for o in app.sim.orders_received if o.order_ref == ref and not o.what_if
    }
    assert len(ids) == 1


async def test_modify_refuses_filled_foreign_and_unknown_orders(app: App) -> None:
    _expiry, strikes, _ = await chain(app)
    ref = await open_filled(app, "long_call", [strikes[3]])
    filled = await app.call("modify_order", {"order_ref": ref, "limit_price": 1.0})
    assert code_of(filled) == "INVALID_ARGUMENT" and "filled" in filled["error"]["message"]
    foreign = await app.call("modify_order", {"order_ref": "my-tws-order", "limit_price": 1.0})
    assert (
        code_of(foreign) == "INVALID_ARGUMENT"
        and "not an order placed by SumpPump" in (foreign["error"]["message"])
    )
    unknown = await app.call(
        "modify_order", {"order_ref": "sp-AAAAAAAAAAAAAAAAAAAAAAAA", "limit_price": 1.0}
    )
    assert code_of(unknown) == "INVALID_ARGUMENT"


async def test_modify_of_a_cancelled_order_is_refused(app: App) -> None:
    expiry, strikes, _ = await chain(app)
    preview = await app.ok(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": "long_call",
            "expiry": expiry,
            "strikes": [strikes[4]],
            "limit_price": 0.05,
        },
    )
    ref = (await confirm(app, preview))["order_ref"]
    await app.ok("cancel_order", {"order_ref": ref})
    await settle(app)
    answer = await app.call("modify_order", {"order_ref": ref, "limit_price": 0.10})
    assert code_of(answer) == "INVALID_ARGUMENT"


async def test_moving_a_spread_stop_takes_the_spread_value_and_stays_a_bag_stop(
    app: App,
) -> None:
    _expiry, strikes, _ = await chain(app)
    ref = await open_filled(app, "bull_call_spread", [strikes[2], strikes[4]])
    stop_ref = (
        await confirm(app, await app.ok("set_stop_loss", {"symbol": "AAPL", "position": ref}))
    )["order_ref"]
    change = await app.ok("modify_order", {"order_ref": stop_ref, "stop_price": 1.5})
    after = change["details"]["after"]
    assert after["stop_price"] == -1.5
    assert after["order_type"] == "STP" and "limit_price" not in after  # no STP LMT on a BAG
    through = await app.call("modify_order", {"order_ref": stop_ref, "stop_price": 100.0})
    assert (
        code_of(through) == "INVALID_ARGUMENT"
        and "trigger at once" in (through["error"]["message"])
    )


# ---------------------------------------------------------------------- roll


async def test_rolling_a_long_call_moves_it_to_the_later_expiry_and_its_stop_ends(
    app: App,
) -> None:
    expiry, strikes, expiries = await chain(app)
    await open_filled(app, "long_call", [strikes[3]])
    stop = await app.ok(
        "set_stop_loss",
        {"symbol": "AAPL", "position": f"{expiry} {strikes[3]:g} C", "stop_percent": 50},
    )
    stop_ref = (await confirm(app, stop))["order_ref"]
    later = next(e for e in expiries if e > expiry)
    roll = await app.ok("roll_position", {"symbol": "AAPL", "new_expiry": later})
    assert roll["kind"] == "roll"
    assert roll["max_loss"] is not None and roll["max_loss"] > 0
    assert roll["breakevens"] and roll["breakevens"][0] > strikes[3]
    assert [s["how"] for s in roll["details"]["stops"]] == ["cancelled"]
    placed = await confirm(app, roll)
    assert placed["status"] == "Filled"
    prompt = placed["stop_loss_prompt"]
    assert (
        prompt is not None and prompt["suggested_stop"] > 0.5
    )  # half the new option, not of the roll
    await settle(app)
    positions = await held(app)
    assert (expiry, strikes[3], "C") not in positions
    assert positions[(later, strikes[3], "C")] == 1
    assert stop_ref not in await working_refs(app)


async def test_rolling_a_debit_spread_to_other_strikes(app: App) -> None:
    expiry, strikes, expiries = await chain(app)
    ref = await open_filled(app, "bull_call_spread", [strikes[2], strikes[4]], quantity=2)
    later = next(e for e in expiries if e > expiry)
    roll = await app.ok(
        "roll_position",
        {
            "symbol": "AAPL",
            "new_expiry": later,
            "position": ref,
            "new_strikes": [strikes[3], strikes[5]],
        },
    )
    assert "2 guaranteed combos" in roll["confirm_text"]
    assert sorted(roll["details"]["holds_after"]) == sorted(
        [
            "+200 AAPL shares",
            f"+2 AAPL {later} {strikes[3]:g} C",
            f"-2 AAPL {later} {strikes[5]:g} C",
        ]
    )
    assert (await confirm(app, roll))["status"] == "Filled"
    await settle(app)
    positions = await held(app)
    assert positions[(later, strikes[3], "C")] == 2
    assert positions[(later, strikes[5], "C")] == -2
    assert (expiry, strikes[2], "C") not in positions


async def test_a_roll_to_an_earlier_expiry_or_of_shares_is_refused(app: App) -> None:
    expiry, strikes, _ = await chain(app)
    await open_filled(app, "long_call", [strikes[3]])
    earlier = await app.call(
        "roll_position",
        {"symbol": "AAPL", "new_expiry": expiry, "position": f"{expiry} {strikes[3]:g} C"},
    )
    assert code_of(earlier) == "INVALID_ARGUMENT"
    shares = await app.call(
        "roll_position", {"symbol": "AAPL", "new_expiry": "2027-01-15", "position": "STK"}
    )
    assert code_of(shares) == "INVALID_ARGUMENT"
