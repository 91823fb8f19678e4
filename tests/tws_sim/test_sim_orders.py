"""Order lifecycles through the real ib_async client: single legs, BAG combos, cancels, what-if,
partial and delayed fills, rejections, permissions and after-hours."""

from __future__ import annotations

import asyncio
import datetime as dt

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
from ib_async.wrapper import RequestError

from sumppump.tws_sim import AccountSpec, SimTWS

pytestmark = pytest.mark.anyio

EXPIRY = "20261218"  # a monthly that is listed on the default start date


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)


async def wait_for_status(trade: Trade, *statuses: str, limit: float = 1.0) -> None:
    for _ in range(int(limit / 0.01)):
        if trade.orderStatus.status in statuses:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{trade.orderStatus.status} not in {statuses}: {trade.log}")


async def option(ib: IB, strike: float, right: str = "C", symbol: str = "AAPL") -> Contract:
    [c] = await ib.qualifyContractsAsync(Option(symbol, EXPIRY, strike, right, "SMART"))
    return c


def cash(ib: IB) -> float:
    return next(float(v.value) for v in ib.accountValues() if v.tag == "TotalCashValue")


async def test_marketable_limit_buy_fills_with_commission_and_position(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 225)
    [t] = await ib.reqTickersAsync(call)
    cash_before = cash(ib)
    trade = ib.placeOrder(call, LimitOrder("BUY", 2, t.ask, orderRef="preview-1"))
    await wait_for_status(trade, "Filled")
    assert [e.status for e in trade.log][:3] == ["PendingSubmit", "PreSubmitted", "Submitted"]
    assert trade.orderStatus.avgFillPrice == t.ask and trade.orderStatus.filled == 2
    [fill] = trade.fills
    assert fill.execution.orderRef == "preview-1" and fill.execution.side == "BOT"
    await settle()
    assert fill.commissionReport.commission == pytest.approx(1.30)
    [pos] = [p for p in ib.positions() if p.contract.conId == call.conId]
    assert pos.position == 2 and pos.avgCost == pytest.approx(t.ask * 100 + 0.65)
    assert cash(ib) == pytest.approx(cash_before - 2 * 100 * t.ask - 1.30, abs=0.01)
    assert len([o for o in sim.orders_received if o.order_ref == "preview-1"]) == 1


async def test_resting_limit_then_cancel(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 230)
    [t] = await ib.reqTickersAsync(call)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    trade = ib.placeOrder(call, LimitOrder("BUY", 1, round(t.bid / 2, 2), tif="GTC"))
    await wait_for_status(trade, "Submitted")
    await sim.step()
    assert trade.orderStatus.status == "Submitted" and not trade.fills
    assert [o.order.orderId for o in await ib.reqOpenOrdersAsync()] == [trade.order.orderId]
    ib.cancelOrder(trade.order)
    await wait_for_status(trade, "Cancelled")
    await settle()
    assert 202 in codes
    completed = await ib.reqCompletedOrdersAsync(False)
    assert [c.orderStatus.status for c in completed] == ["Cancelled"]


async def test_cancel_of_unknown_order_is_10147(sim: SimTWS, ib: IB) -> None:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    ib.client.cancelOrder(99999)
    await settle()
    assert codes == [10147]


async def test_market_stock_order_fills_at_the_touch(ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
    [t] = await ib.reqTickersAsync(stock)
    buy = ib.placeOrder(stock, MarketOrder("BUY", 10))
    await wait_for_status(buy, "Filled")
    sell = ib.placeOrder(stock, MarketOrder("SELL", 4))
    await wait_for_status(sell, "Filled")
    assert buy.orderStatus.avgFillPrice == t.ask and sell.orderStatus.avgFillPrice == t.bid
    await settle()
    [pos] = [p for p in ib.positions() if p.contract.symbol == "MSFT"]
    assert pos.position == 6
    assert sell.fills[0].commissionReport.realizedPNL == pytest.approx(
        4 * t.bid - 4 * (t.ask * 10 + 1.0) / 10 - 1.0, abs=0.01
    )


async def test_stop_triggers_when_the_price_crosses(sim: SimTWS, ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    [t] = await ib.reqTickersAsync(stock)
    stop = round(t.last - 10, 2)
    trade = ib.placeOrder(stock, StopOrder("SELL", 100, stop, orderRef="stop-1"))
    await wait_for_status(trade, "Submitted")
    await sim.step()
    assert not trade.fills
    sim.set_price("AAPL", stop - 1)
    await sim.step()
    await wait_for_status(trade, "Filled")
    assert trade.orderStatus.avgFillPrice < stop


async def test_stop_limit_rests_after_trigger_when_the_limit_is_not_reached(
    sim: SimTWS, ib: IB
) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    [t] = await ib.reqTickersAsync(stock)
    stop = round(t.last - 5, 2)
    trade = ib.placeOrder(stock, StopLimitOrder("SELL", 50, stop - 1, stop))
    await wait_for_status(trade, "Submitted")
    sim.set_price("AAPL", stop - 3)  # through the stop and below the limit
    await sim.step()
    await settle()
    assert trade.orderStatus.status == "Submitted" and not trade.fills
    sim.set_price("AAPL", stop - 0.5)
    await sim.step()
    await wait_for_status(trade, "Filled")
    assert trade.orderStatus.avgFillPrice >= stop - 1


def bull_call_spread(long_leg: Contract, short_leg: Contract) -> Contract:
    return Contract(
        symbol="AAPL",
        secType="BAG",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long_leg.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short_leg.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )


async def test_bag_debit_spread_fills_all_legs_at_the_net_price(sim: SimTWS, ib: IB) -> None:
    long_leg, short_leg = await option(ib, 220), await option(ib, 230)
    bag = bull_call_spread(long_leg, short_leg)
    [quote] = await ib.reqTickersAsync(bag)
    mid = round((quote.bid + quote.ask) / 2, 2)
    trade = ib.placeOrder(bag, LimitOrder("BUY", 2, mid, orderRef="spread-1"))
    await wait_for_status(trade, "Filled")
    await settle()
    assert trade.orderStatus.avgFillPrice == pytest.approx(mid)
    by_sec = {}
    for f in trade.fills:
        by_sec.setdefault(f.contract.secType, []).append(f)
    assert len(by_sec["OPT"]) == 2 and len(by_sec["BAG"]) == 1
    legs = {f.contract.conId: f.execution for f in by_sec["OPT"]}
    assert legs[long_leg.conId].side == "BOT" and legs[short_leg.conId].side == "SLD"
    net = legs[long_leg.conId].price - legs[short_leg.conId].price
    assert net == pytest.approx(mid, abs=1e-6)
    positions = {p.contract.conId: p.position for p in ib.positions()}
    assert positions[long_leg.conId] == 2 and positions[short_leg.conId] == -2


async def test_what_if_reports_margin_and_commission(ib: IB) -> None:
    call = await option(ib, 225)
    state = await ib.whatIfOrderAsync(call, LimitOrder("BUY", 3, 5.0))
    assert float(state.initMarginChange) == 0.0  # long options are paid in full
    assert state.commission == pytest.approx(1.95) and state.commissionCurrency == "USD"
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    state = await ib.whatIfOrderAsync(stock, MarketOrder("BUY", 100))
    assert float(state.initMarginChange) > 0
    assert float(state.initMarginAfter) == pytest.approx(
        float(state.initMarginBefore) + float(state.initMarginChange), abs=0.02
    )
    assert not ib.openTrades()


async def test_what_if_of_a_combo(ib: IB) -> None:
    bag = bull_call_spread(await option(ib, 220), await option(ib, 230))
    state = await ib.whatIfOrderAsync(bag, LimitOrder("BUY", 1, 4.0))
    assert float(state.initMarginChange) == 0.0 and state.commission == pytest.approx(2.0)


async def test_partial_fill_then_fill(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 225)
    [t] = await ib.reqTickersAsync(call)
    sim.partial_fill_next_order([1])
    trade = ib.placeOrder(call, LimitOrder("BUY", 3, t.ask))
    for _ in range(100):
        if trade.fills:
            break
        await asyncio.sleep(0.01)
    assert trade.orderStatus.status == "Submitted"
    assert (trade.orderStatus.filled, trade.orderStatus.remaining) == (1, 2)
    await sim.step()
    await wait_for_status(trade, "Filled")
    assert [f.execution.shares for f in trade.fills] == [1, 2]
    assert [f.execution.cumQty for f in trade.fills] == [1, 3]


async def test_rejected_order_becomes_cancelled_with_the_code(sim: SimTWS, ib: IB) -> None:
    sim.reject_next_order(
        201, "Order rejected - reason:Simulated margin deficit", '{"rejectCode": "MARGIN"}'
    )
    trade = ib.placeOrder(await option(ib, 225), LimitOrder("BUY", 1, 1.0))
    await wait_for_status(trade, "Cancelled")
    assert trade.log[-1].errorCode == 201 and "Simulated margin" in trade.log[-1].message
    assert trade.advancedError == '{"rejectCode": "MARGIN"}'


async def test_fill_delayed_until_the_clock_moves(sim: SimTWS, ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
    sim.delay_next_fill(30)
    trade = ib.placeOrder(stock, MarketOrder("BUY", 5))
    await wait_for_status(trade, "Submitted")
    await sim.step()
    await settle()
    assert not trade.fills
    await sim.advance(31)
    await wait_for_status(trade, "Filled")


async def test_after_hours_orders_rest_until_the_open() -> None:
    async with SimTWS(scenario="after_hours") as sim:
        client = IB()
        try:
            await client.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
            [stock] = await client.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            trade = client.placeOrder(stock, MarketOrder("BUY", 1))
            await wait_for_status(trade, "PreSubmitted")
            await sim.step()
            await settle()
            assert trade.orderStatus.status == "PreSubmitted" and not trade.fills
            await sim.advance(16 * 3600)  # 18:00 -> 10:00 next day
            await wait_for_status(trade, "Filled")
            assert trade.fills[0].execution.time.astimezone(dt.UTC).hour == 15
        finally:
            client.disconnect()


async def test_outside_rth_stock_order_trades_in_the_extended_session() -> None:
    async with SimTWS(scenario="after_hours") as sim:
        client = IB()
        try:
            await client.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
            [stock] = await client.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            trade = client.placeOrder(stock, MarketOrder("BUY", 1, outsideRth=True))
            await wait_for_status(trade, "Filled")
        finally:
            client.disconnect()


async def test_modifying_a_resting_order_makes_it_fill(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 225)
    [t] = await ib.reqTickersAsync(call)
    order = LimitOrder("BUY", 1, round(t.bid - 1, 2))
    trade = ib.placeOrder(call, order)
    await wait_for_status(trade, "Submitted")
    order.lmtPrice = t.ask
    ib.placeOrder(call, order)
    await sim.step()
    await wait_for_status(trade, "Filled")
    assert len([o for o in sim.orders_received if o.request.order_id == order.orderId]) == 2


async def test_unknown_contract_order_is_rejected_with_200(ib: IB) -> None:
    bogus = Option("AAPL", EXPIRY, 222.5, "C", "SMART", conId=1)
    trade = ib.placeOrder(bogus, LimitOrder("BUY", 1, 1.0))
    await wait_for_status(trade, "Cancelled")
    assert trade.log[-1].errorCode == 200


async def test_insufficient_funds_is_rejected(ib: IB) -> None:
    call = await option(ib, 200)
    trade = ib.placeOrder(call, LimitOrder("BUY", 500, 30.0))
    await wait_for_status(trade, "Cancelled")
    assert trade.log[-1].errorCode == 201 and "EQUITY WITH LOAN" in trade.log[-1].message


async def test_executions_and_completed_orders_survive_a_reconnect(sim: SimTWS, connect_ib) -> None:
    first = await connect_ib(client_id=17)
    call = await option(first, 225)
    [t] = await first.reqTickersAsync(call)
    trade = first.placeOrder(call, LimitOrder("BUY", 1, t.ask, orderRef="ref-reconcile"))
    await wait_for_status(trade, "Filled")
    first.disconnect()
    await settle()
    again = await connect_ib(client_id=17)
    fills = await again.reqExecutionsAsync()
    assert [f.execution.orderRef for f in fills] == ["ref-reconcile"]
    # ib_async keeps the commission on the fill it saw first (during the startup sync).
    assert [f.commissionReport.commission for f in again.fills()] == [1.0]
    completed = await again.reqCompletedOrdersAsync(False)
    assert [(c.order.orderRef, c.orderStatus.status) for c in completed] == [
        ("ref-reconcile", "Filled")
    ]


async def test_global_cancel_cancels_every_working_order(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 230)
    trades = [ib.placeOrder(call, LimitOrder("BUY", 1, 0.01)) for _ in range(3)]
    for trade in trades:
        await wait_for_status(trade, "Submitted")
    ib.reqGlobalCancel()
    for trade in trades:
        await wait_for_status(trade, "Cancelled")


# --- options permission levels ---------------------------------------------------------------


async def _client_with_level(
    level: int, stocks: dict[str, float] | None = None
) -> tuple[SimTWS, IB]:
    sim = SimTWS(
        accounts=[
            AccountSpec(
                "U7654321",
                stocks={"AAPL": 200.0} if stocks is None else stocks,
                options_level=level,
            )
        ]
    )
    await sim.start()
    client = IB()
    client.RaiseRequestErrors = True
    await client.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
    return sim, client


async def test_level_one_refuses_long_options_but_allows_covered_calls() -> None:
    sim, client = await _client_with_level(1)
    try:
        call = await option(client, 240)
        with pytest.raises(RequestError) as caught:
            await client.whatIfOrderAsync(call, LimitOrder("BUY", 1, 1.0))
        assert caught.value.code == 201 and "PERMISSION LEVEL 2" in caught.value.message
        trade = client.placeOrder(call, LimitOrder("BUY", 1, 1.0))
        await wait_for_status(trade, "Cancelled")
        covered = client.placeOrder(call, LimitOrder("SELL", 2, 0.01))
        await wait_for_status(covered, "Filled")
        naked = client.placeOrder(call, LimitOrder("SELL", 1, 0.01))  # no shares left to cover
        await wait_for_status(naked, "Cancelled")
        assert "PERMISSION LEVEL 4" in naked.log[-1].message
    finally:
        client.disconnect()
        await sim.stop()


async def test_level_two_allows_debit_spreads_and_refuses_credit_spreads() -> None:
    sim, client = await _client_with_level(2, stocks={})
    try:
        low, high = await option(client, 220), await option(client, 230)
        debit = client.placeOrder(bull_call_spread(low, high), LimitOrder("BUY", 1, 20.0))
        await wait_for_status(debit, "Filled")
        # Buying the 240 call and selling the 235 call opens a bear call (credit) spread.
        credit_legs = bull_call_spread(await option(client, 240), await option(client, 235))
        credit = client.placeOrder(credit_legs, LimitOrder("BUY", 1, -1.0))
        await wait_for_status(credit, "Cancelled")
        assert credit.log[-1].errorCode == 201 and "PERMISSION LEVEL 3" in credit.log[-1].message
        # Closing what is held is allowed at any level.
        close = client.placeOrder(bull_call_spread(low, high), LimitOrder("SELL", 1, 0.01))
        await wait_for_status(close, "Filled")
    finally:
        client.disconnect()
        await sim.stop()


async def test_level_zero_refuses_even_covered_calls() -> None:
    sim, client = await _client_with_level(0)
    try:
        trade = client.placeOrder(await option(client, 240), LimitOrder("SELL", 1, 0.01))
        await wait_for_status(trade, "Cancelled")
        assert "PERMISSION LEVEL 1" in trade.log[-1].message
    finally:
        client.disconnect()
        await sim.stop()


async def test_day_orders_expire_at_the_close_and_gtc_orders_stay(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 230)
    day = ib.placeOrder(call, LimitOrder("BUY", 1, 0.01, tif="DAY"))
    gtc = ib.placeOrder(call, LimitOrder("BUY", 1, 0.01, tif="GTC"))
    await wait_for_status(gtc, "Submitted")
    await sim.advance(6.5 * 3600)  # 10:00 -> 16:30 New York
    await wait_for_status(day, "Cancelled")
    await wait_for_status(gtc, "PreSubmitted")  # held until the next open
    await sim.advance(17.5 * 3600)  # next day 10:00
    await wait_for_status(gtc, "Submitted")


async def test_rejected_orders_are_listed_as_completed_inactive(sim: SimTWS, ib: IB) -> None:
    sim.reject_next_order(201, "Order rejected - reason:Simulated")
    trade = ib.placeOrder(await option(ib, 225), LimitOrder("BUY", 1, 1.0, orderRef="r-rej"))
    await wait_for_status(trade, "Cancelled")
    completed = await ib.reqCompletedOrdersAsync(False)
    assert [(c.order.orderRef, c.orderStatus.status) for c in completed] == [("r-rej", "Inactive")]


async def test_a_restart_on_the_same_port_keeps_the_broker_state(sim: SimTWS, connect_ib) -> None:
    client = await connect_ib()
    [stock] = await client.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
    trade = client.placeOrder(stock, MarketOrder("BUY", 3, orderRef="before-restart"))
    await wait_for_status(trade, "Filled")
    port = sim.port
    await sim.stop()
    await sim.start()
    assert sim.port == port
    again = await connect_ib()
    assert {p.contract.symbol: p.position for p in again.positions()}["SPY"] == 3
    completed = await again.reqCompletedOrdersAsync(False)
    assert [c.order.orderRef for c in completed] == ["before-restart"]


async def test_option_price_off_the_tick_is_error_110(ib: IB) -> None:
    call = await option(ib, 200)  # deep in the money: priced above $3, 0.05 increments
    trade = ib.placeOrder(call, LimitOrder("BUY", 1, 23.02))
    await wait_for_status(trade, "Cancelled")
    assert trade.log[-1].errorCode == 110
    cheap = await option(ib, 270)  # far out of the money: below $3, penny increments
    [t] = await ib.reqTickersAsync(cheap)
    assert t.ask < 3
    ok = ib.placeOrder(cheap, LimitOrder("BUY", 1, round(t.bid + 0.01, 2)))
    await wait_for_status(ok, "Submitted", "Filled")


async def test_untransmitted_order_waits_for_the_person_in_tws(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 225)
    [t] = await ib.reqTickersAsync(call)
    trade = ib.placeOrder(
        call, LimitOrder("BUY", 1, t.ask, orderRef="tws-approval", transmit=False)
    )
    await wait_for_status(trade, "PreSubmitted")
    await sim.step()
    await settle()
    assert trade.orderStatus.status == "PreSubmitted" and not trade.fills
    assert sim.press_transmit("tws-approval")
    await wait_for_status(trade, "Filled")
    assert not sim.press_transmit("tws-approval")


async def test_level_two_refuses_a_calendar_spread() -> None:
    sim, client = await _client_with_level(2, stocks={})
    try:
        near = await option(client, 230)
        [far] = await client.qualifyContractsAsync(Option("AAPL", "20270115", 230, "C", "SMART"))
        calendar = bull_call_spread(far, near)  # buy the later expiry, sell the nearer one
        with pytest.raises(RequestError) as caught:
            await client.whatIfOrderAsync(calendar, LimitOrder("BUY", 1, 3.0))
        assert "PERMISSION LEVEL 3" in caught.value.message
    finally:
        client.disconnect()
        await sim.stop()


async def test_new_york_date_is_used_everywhere_late_in_the_evening() -> None:
    from sumppump.tws_sim import SimClock

    # Friday 20:30 New York is already Saturday in UTC.
    friday_evening = dt.datetime(2026, 11, 28, 1, 30, tzinfo=dt.UTC)
    async with SimTWS(clock=SimClock(friday_evening)) as sim:
        assert sim.clock.today() == dt.date(2026, 11, 27)
        client = IB()
        client.RaiseRequestErrors = True
        try:
            await client.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
            [opt] = await client.qualifyContractsAsync(
                Option("AAPL", "20261127", 225, "C", "SMART")
            )
            state = await client.whatIfOrderAsync(opt, LimitOrder("BUY", 1, 1.0))
            assert state.commission == pytest.approx(1.0)
        finally:
            client.disconnect()
