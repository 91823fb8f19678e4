"""OCA groups, order modification, average cost through closes and combo closes, driven through
the real ib_async client against the simulated TWS.

Protective stops follow their position through IB OCA groups: the stop and any later closing
order share ``ocaGroup`` with ``ocaType`` 2 (reduce the rest by the executed quantity) or 1
(cancel the rest)."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import (
    IB,
    ComboLeg,
    Contract,
    LimitOrder,
    MarketOrder,
    Option,
    Stock,
    StopLimitOrder,
    StopOrder,
    Trade,
)

from sumppump.tws_sim import SimTWS

pytestmark = pytest.mark.anyio

EXPIRY = "20261218"
ACCOUNT = "U1234567"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)


async def wait_for_status(trade: Trade, *statuses: str, limit: float = 1.0) -> None:
    for _ in range(int(limit / 0.01)):
        if trade.orderStatus.status in statuses:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{trade.orderStatus.status} not in {statuses}: {trade.log}")


async def wait_until(condition, limit: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def error_codes(ib: IB) -> list[tuple[int, int]]:
    """(reqId, code) of every error the client receives from now on."""
    seen: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, text, contract: seen.append((req_id, code))
    return seen


async def aapl(ib: IB) -> tuple[Contract, float, float, float]:
    """The AAPL stock contract and its (bid, ask, last)."""
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    [t] = await ib.reqTickersAsync(stock)
    return stock, t.bid, t.ask, t.last


async def option(ib: IB, strike: float, right: str = "C") -> Contract:
    [c] = await ib.qualifyContractsAsync(Option("AAPL", EXPIRY, strike, right, "SMART"))
    return c


def positions(ib: IB) -> dict[int, tuple[float, float]]:
    """conId -> (position, avgCost) as the client holds them."""
    return {p.contract.conId: (p.position, p.avgCost) for p in ib.positions()}


def combo(*legs: tuple[Contract, int, str]) -> Contract:
    return Contract(
        symbol="AAPL",
        secType="BAG",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=c.conId, ratio=ratio, action=action, exchange="SMART")
            for c, ratio, action in legs
        ],
    )


async def decoded_open_orders(connect_ib, client_id: int = 0) -> dict[int, Trade]:  # type: ignore[no-untyped-def]
    """permId -> Trade as a second client decodes the open orders from the wire (its Trade
    objects are built from openOrder, not shared with the placing client)."""
    other = await connect_ib(client_id=client_id)
    return {t.order.permId: t for t in await other.reqAllOpenOrdersAsync()}


# --- OCA groups ------------------------------------------------------------------------------


async def test_oca_type_1_fill_cancels_the_other_orders_without_an_error(
    sim: SimTWS, ib: IB
) -> None:
    stock, bid, _ask, last = await aapl(ib)
    codes = error_codes(ib)
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 200, round(last - 20, 2), ocaGroup="G1", ocaType=1, tif="GTC")
    )
    far = ib.placeOrder(
        stock, LimitOrder("SELL", 200, round(last + 30, 2), ocaGroup="G1", ocaType=1, tif="GTC")
    )
    await wait_for_status(stop, "Submitted")
    await wait_for_status(far, "Submitted")
    close = ib.placeOrder(stock, LimitOrder("SELL", 50, bid, ocaGroup="G1", ocaType=1))
    await wait_for_status(close, "Filled")
    await wait_for_status(stop, "Cancelled")
    await wait_for_status(far, "Cancelled")
    await settle()
    assert stop.order.totalQuantity == 200 and not stop.fills
    assert codes == []  # OCA cancellation is a status, not a 202
    assert positions(ib)[stock.conId][0] == 150
    completed = await ib.reqCompletedOrdersAsync(False)
    assert sorted(c.orderStatus.status for c in completed) == ["Cancelled", "Cancelled", "Filled"]
    assert {(c.order.ocaGroup, c.order.ocaType) for c in completed} == {("G1", 1)}


async def test_oca_type_2_full_close_cancels_the_protective_stop(
    sim: SimTWS, ib: IB, connect_ib
) -> None:
    stock, _bid, _ask, last = await aapl(ib)
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 200, round(last - 15, 2), ocaGroup="POS-1", ocaType=2, tif="GTC")
    )
    await wait_for_status(stop, "Submitted")
    [seen] = (await decoded_open_orders(connect_ib)).values()
    assert (seen.order.ocaGroup, seen.order.ocaType) == ("POS-1", 2)  # echoed in openOrder
    close = ib.placeOrder(stock, MarketOrder("SELL", 200, ocaGroup="POS-1", ocaType=2))
    await wait_for_status(close, "Filled")
    await wait_for_status(stop, "Cancelled")
    await settle()
    assert not stop.fills
    assert stock.conId not in positions(ib)  # IB reports 0, ib_async drops the position
    [request] = [r for r in sim.orders_received if r.request.order_id == close.order.orderId]
    assert request.request.oca_type == 2 and request.request.oca_group == "POS-1"


async def test_oca_type_2_partial_close_reduces_the_stop_and_the_client_sees_it(
    sim: SimTWS, ib: IB, connect_ib
) -> None:
    stock, bid, _ask, last = await aapl(ib)
    avg_before = positions(ib)[stock.conId][1]
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 200, round(last - 15, 2), ocaGroup="POS-2", ocaType=2, tif="GTC")
    )
    await wait_for_status(stop, "Submitted")
    close = ib.placeOrder(stock, LimitOrder("SELL", 80, bid, ocaGroup="POS-2", ocaType=2))
    await wait_for_status(close, "Filled")
    await wait_until(lambda: stop.orderStatus.remaining == 120)
    assert stop.orderStatus.status == "Submitted" and stop.order.totalQuantity == 120
    await settle()
    assert positions(ib)[stock.conId] == (120, pytest.approx(avg_before))
    seen = (await decoded_open_orders(connect_ib))[stop.order.permId]
    assert seen.order.totalQuantity == 120 and seen.order.ocaType == 2
    # The group still protects a position, so a later (rolling) order can join it.
    roll = ib.placeOrder(
        stock, LimitOrder("SELL", 120, round(last + 40, 2), ocaGroup="POS-2", ocaType=2)
    )
    await wait_for_status(roll, "Submitted")


async def test_partial_fills_of_the_close_reduce_the_stop_step_by_step(sim: SimTWS, ib: IB) -> None:
    stock, bid, _ask, last = await aapl(ib)
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 200, round(last - 15, 2), ocaGroup="POS-3", ocaType=2, tif="GTC")
    )
    await wait_for_status(stop, "Submitted")
    sim.partial_fill_next_order([60])
    close = ib.placeOrder(stock, LimitOrder("SELL", 200, bid, ocaGroup="POS-3", ocaType=2))
    await wait_until(lambda: stop.order.totalQuantity == 140)
    assert stop.orderStatus.status == "Submitted"
    await sim.step()
    await wait_for_status(close, "Filled")
    await wait_for_status(stop, "Cancelled")
    assert [f.execution.shares for f in close.fills] == [60, 140]


async def test_stop_triggering_first_cancels_the_resting_close(sim: SimTWS, ib: IB) -> None:
    stock, _bid, _ask, last = await aapl(ib)
    stop_price = round(last - 10, 2)
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 200, stop_price, ocaGroup="POS-4", ocaType=2, tif="GTC")
    )
    close = ib.placeOrder(
        stock, LimitOrder("SELL", 200, round(last + 25, 2), ocaGroup="POS-4", ocaType=2, tif="GTC")
    )
    await wait_for_status(stop, "Submitted")
    await wait_for_status(close, "Submitted")
    await sim.step()
    assert not stop.fills and not close.fills
    sim.set_price("AAPL", stop_price - 1)
    await sim.step()
    await wait_for_status(stop, "Filled")
    await wait_for_status(close, "Cancelled")
    await settle()
    assert not close.fills and stock.conId not in positions(ib)


async def test_an_order_joining_an_executed_group_is_cancelled_at_once(sim: SimTWS, ib: IB) -> None:
    stock, bid, _ask, last = await aapl(ib)
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 100, round(last - 15, 2), ocaGroup="DONE", ocaType=1)
    )
    await wait_for_status(stop, "Submitted")
    first = ib.placeOrder(stock, LimitOrder("SELL", 100, bid, ocaGroup="DONE", ocaType=1))
    await wait_for_status(first, "Filled")
    await wait_for_status(stop, "Cancelled")
    late = ib.placeOrder(stock, LimitOrder("SELL", 100, bid, ocaGroup="DONE", ocaType=1))
    await wait_for_status(late, "Cancelled")
    await settle()
    assert not late.fills and "Submitted" not in [e.status for e in late.log]
    assert positions(ib)[stock.conId][0] == 100


async def test_a_group_name_is_never_reused_even_after_its_orders_were_cancelled(
    sim: SimTWS, ib: IB
) -> None:
    # IB: "Once you use a name, you cannot use it again even after the order fills or is
    # canceled" (TWS guide, Miscellaneous order fields; notes/ib-behaviour.md §c).
    stock, bid, _ask, last = await aapl(ib)
    stop = ib.placeOrder(
        stock, StopOrder("SELL", 100, round(last - 15, 2), ocaGroup="AGAIN", ocaType=2)
    )
    await wait_for_status(stop, "Submitted")
    ib.cancelOrder(stop.order)
    await wait_for_status(stop, "Cancelled")
    close = ib.placeOrder(stock, LimitOrder("SELL", 100, bid, ocaGroup="AGAIN", ocaType=2))
    await wait_for_status(close, "Cancelled")
    await settle()
    assert not close.fills and positions(ib)[stock.conId][0] == 200
    fresh = ib.placeOrder(stock, LimitOrder("SELL", 100, bid, ocaGroup="AGAIN-2", ocaType=2))
    await wait_for_status(fresh, "Filled")


# --- modification ----------------------------------------------------------------------------


async def test_modifying_a_resting_limit_keeps_ids_and_the_client_sees_the_new_terms(
    sim: SimTWS, ib: IB, connect_ib
) -> None:
    call = await option(ib, 230)
    [t] = await ib.reqTickersAsync(call)
    order = LimitOrder("BUY", 1, round(t.bid / 2, 2), tif="GTC")
    trade = ib.placeOrder(call, order)
    await wait_for_status(trade, "Submitted")
    order_id, perm_id = order.orderId, order.permId
    order.lmtPrice = round(t.bid / 2 + 0.05, 2)
    order.totalQuantity = 3
    ib.placeOrder(call, order)
    await wait_until(lambda: trade.orderStatus.remaining == 3)
    assert (order.orderId, order.permId) == (order_id, perm_id)
    assert trade.orderStatus.status == "Submitted"
    seen = (await decoded_open_orders(connect_ib))[perm_id]
    assert seen.order.orderId == order_id
    assert (seen.order.totalQuantity, seen.order.lmtPrice) == (3, order.lmtPrice)
    assert len(sim.broker.orders) == 1


async def test_modifying_a_stop_moves_the_trigger_and_joins_an_oca_group(
    sim: SimTWS, ib: IB, connect_ib
) -> None:
    stock, _bid, _ask, last = await aapl(ib)
    order = StopOrder("SELL", 200, round(last - 20, 2), tif="GTC")
    trade = ib.placeOrder(stock, order)
    await wait_for_status(trade, "Submitted")
    perm_id = order.permId
    order.auxPrice = round(last - 5, 2)
    order.totalQuantity = 150
    order.ocaGroup, order.ocaType = "POS-5", 2
    ib.placeOrder(stock, order)
    await wait_until(lambda: trade.orderStatus.remaining == 150)
    seen = (await decoded_open_orders(connect_ib))[perm_id]
    assert (seen.order.auxPrice, seen.order.totalQuantity) == (round(last - 5, 2), 150)
    assert (seen.order.ocaGroup, seen.order.ocaType) == ("POS-5", 2)
    sim.set_price("AAPL", round(last - 6, 2))  # crosses the new stop, not the old one
    await sim.step()
    await wait_for_status(trade, "Filled")
    assert order.permId == perm_id and trade.orderStatus.filled == 150


async def test_modifying_a_stop_limit_changes_both_prices(sim: SimTWS, ib: IB, connect_ib) -> None:
    stock, _bid, _ask, last = await aapl(ib)
    order = StopLimitOrder("SELL", 100, round(last - 21, 2), round(last - 20, 2), tif="GTC")
    trade = ib.placeOrder(stock, order)
    await wait_for_status(trade, "Submitted")
    order.lmtPrice, order.auxPrice = round(last - 11, 2), round(last - 10, 2)
    ib.placeOrder(stock, order)
    await wait_until(lambda: trade.log[-1].message == "Modified")
    seen = (await decoded_open_orders(connect_ib))[order.permId]
    assert (seen.order.lmtPrice, seen.order.auxPrice) == (order.lmtPrice, order.auxPrice)


async def test_modifying_a_resting_combo_changes_price_and_quantity(
    sim: SimTWS, ib: IB, connect_ib
) -> None:
    long_leg, short_leg = await option(ib, 220), await option(ib, 230)
    bag = combo((long_leg, 1, "BUY"), (short_leg, 1, "SELL"))
    [quote] = await ib.reqTickersAsync(bag)
    order = LimitOrder("BUY", 1, round(quote.bid / 2, 2), tif="GTC")
    trade = ib.placeOrder(bag, order)
    await wait_for_status(trade, "Submitted")
    perm_id = order.permId
    order.totalQuantity, order.lmtPrice = 2, round(quote.bid / 2 - 0.1, 2)
    ib.placeOrder(bag, order)
    await wait_until(lambda: trade.orderStatus.remaining == 2)
    seen = (await decoded_open_orders(connect_ib))[perm_id]
    assert (seen.order.totalQuantity, seen.order.lmtPrice) == (2, order.lmtPrice)
    assert seen.contract.secType == "BAG" and len(seen.contract.comboLegs) == 2
    order.lmtPrice = round((quote.bid + quote.ask) / 2, 2)
    ib.placeOrder(bag, order)
    await sim.step()
    await wait_for_status(trade, "Filled")
    assert order.permId == perm_id


async def test_modifying_a_filled_order_is_refused_with_104(sim: SimTWS, ib: IB) -> None:
    stock, bid, _ask, _last = await aapl(ib)
    order = LimitOrder("SELL", 10, bid)
    trade = ib.placeOrder(stock, order)
    await wait_for_status(trade, "Filled")
    codes = error_codes(ib)
    order.totalQuantity = 20
    # IB.placeOrder refuses a done trade locally; the wire request is what a client whose view
    # lagged behind the fill would send.
    ib.client.placeOrder(order.orderId, stock, order)
    await wait_until(lambda: codes)
    assert codes == [(order.orderId, 104)]
    [sim_order] = sim.broker.orders.values()
    assert sim_order.quantity == 10 and sim_order.status == "Filled"
    assert positions(ib)[stock.conId][0] == 190


async def test_modifying_a_cancelled_order_is_refused_with_103(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 230)
    order = LimitOrder("BUY", 1, 0.05, tif="GTC")
    trade = ib.placeOrder(call, order)
    await wait_for_status(trade, "Submitted")
    ib.cancelOrder(order)
    await wait_for_status(trade, "Cancelled")
    codes = error_codes(ib)
    order.lmtPrice = 0.10
    ib.client.placeOrder(order.orderId, call, order)
    await wait_until(lambda: codes)
    assert codes == [(order.orderId, 103)]
    assert [o.lmt_price for o in sim.broker.orders.values()] == [0.05]


async def test_quantity_below_the_filled_quantity_is_refused_and_the_order_stays_live(
    sim: SimTWS, ib: IB
) -> None:
    stock, bid, _ask, _last = await aapl(ib)
    sim.partial_fill_next_order([30] + [0] * 10_000)  # then no more fills for the test
    order = LimitOrder("SELL", 100, bid)
    trade = ib.placeOrder(stock, order)
    await wait_until(lambda: trade.orderStatus.filled == 30)
    codes = error_codes(ib)
    order.totalQuantity = 20
    ib.placeOrder(stock, order)
    await wait_until(lambda: codes)
    assert codes == [(order.orderId, 321)]
    # The simulator re-sends the untouched order, so the client is back in step.
    await wait_until(lambda: trade.orderStatus.status == "Submitted")
    assert trade.orderStatus.remaining == 70
    [sim_order] = sim.broker.orders.values()
    assert sim_order.quantity == 100 and sim_order.is_active


async def test_changing_the_action_of_a_working_order_is_refused_with_105(
    sim: SimTWS, ib: IB
) -> None:
    call = await option(ib, 230)
    order = LimitOrder("BUY", 1, 0.05, tif="GTC")
    trade = ib.placeOrder(call, order)
    await wait_for_status(trade, "Submitted")
    codes = error_codes(ib)
    order.action = "SELL"
    ib.placeOrder(call, order)
    await wait_until(lambda: codes)
    assert codes == [(order.orderId, 105)]
    await wait_for_status(trade, "Submitted")
    assert [o.action for o in sim.broker.orders.values()] == ["BUY"]


# --- positions and combo closes ----------------------------------------------------------------


async def test_average_cost_survives_a_partial_close_and_averages_on_adds(
    sim: SimTWS, ib: IB
) -> None:
    call = await option(ib, 225)
    [t] = await ib.reqTickersAsync(call)
    buy = ib.placeOrder(call, LimitOrder("BUY", 3, t.ask))
    await wait_for_status(buy, "Filled")
    await wait_until(lambda: call.conId in positions(ib))
    opened = t.ask * 100 + 1.95 / 3  # per contract, multiplier and commission included
    assert positions(ib)[call.conId] == (3, pytest.approx(opened))
    sell = ib.placeOrder(call, LimitOrder("SELL", 1, t.bid))
    await wait_for_status(sell, "Filled")
    await wait_until(lambda: positions(ib)[call.conId][0] == 2)
    assert positions(ib)[call.conId][1] == pytest.approx(opened)
    add = ib.placeOrder(call, LimitOrder("BUY", 2, t.ask))
    await wait_for_status(add, "Filled")
    await wait_until(lambda: positions(ib)[call.conId][0] == 4)
    added = (2 * opened + 2 * t.ask * 100 + 1.30) / 4
    assert positions(ib)[call.conId][1] == pytest.approx(added)
    out = ib.placeOrder(call, MarketOrder("SELL", 4))
    await wait_for_status(out, "Filled")
    await wait_until(lambda: call.conId not in positions(ib))


async def test_closing_a_held_spread_with_a_combo_flattens_both_legs(sim: SimTWS, ib: IB) -> None:
    long_leg, short_leg = await option(ib, 220), await option(ib, 230)
    bag = combo((long_leg, 1, "BUY"), (short_leg, 1, "SELL"))
    [quote] = await ib.reqTickersAsync(bag)
    opening = ib.placeOrder(bag, LimitOrder("BUY", 2, quote.ask))
    await wait_for_status(opening, "Filled")
    await wait_until(lambda: positions(ib).get(short_leg.conId, (0, 0))[0] == -2)
    assert positions(ib)[long_leg.conId][0] == 2
    closing = ib.placeOrder(bag, LimitOrder("SELL", 2, quote.bid))
    await wait_for_status(closing, "Filled")
    await wait_until(
        lambda: long_leg.conId not in positions(ib) and short_leg.conId not in positions(ib)
    )
    sides = {f.contract.conId: f.execution.side for f in closing.fills if f.contract.conId}
    assert sides[long_leg.conId] == "SLD" and sides[short_leg.conId] == "BOT"


async def test_closing_a_buy_write_sells_the_stock_and_buys_back_the_call(
    sim: SimTWS, ib: IB
) -> None:
    stock, _bid, _ask, _last = await aapl(ib)
    call = await option(ib, 240)
    buy_write = combo((stock, 100, "BUY"), (call, 1, "SELL"))
    [quote] = await ib.reqTickersAsync(buy_write)
    shares_before = positions(ib)[stock.conId][0]
    opening = ib.placeOrder(buy_write, LimitOrder("BUY", 1, quote.ask))
    await wait_for_status(opening, "Filled")
    await wait_until(lambda: positions(ib).get(call.conId, (0, 0))[0] == -1)
    shares_open, avg_open = positions(ib)[stock.conId]
    assert shares_open == shares_before + 100
    closing = ib.placeOrder(buy_write, LimitOrder("SELL", 1, quote.bid))
    await wait_for_status(closing, "Filled")
    await wait_until(lambda: call.conId not in positions(ib))
    # Selling part of the shares keeps the (averaged) cost per share.
    assert positions(ib)[stock.conId] == (shares_before, pytest.approx(avg_open))
    sides = {f.contract.conId: f.execution.side for f in closing.fills}
    assert sides[stock.conId] == "SLD" and sides[call.conId] == "BOT"
