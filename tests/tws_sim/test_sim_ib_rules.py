"""IB's documented rules, enforced by the simulator with IB's codes and texts, seen through the
real ib_async 2.1.0 client (decoding strictly: the package conftest fails a test on any decode
error). Sources for every rule: notes/ib-behaviour.md (a, c, d, g) and the comments at each
rule in ``sumppump/tws_sim``."""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import AsyncIterator

import pytest
from ib_async import IB, LimitOrder, Stock, StopLimitOrder, StopOrder
from ib_async.wrapper import RequestError

from sumppump.tws_sim import AccountSpec, SimTWS
from tests.tws_sim.conftest import Connector
from tests.tws_sim.test_sim_oca import (
    aapl,
    combo,
    error_codes,
    option,
    settle,
    wait_for_status,
)

pytestmark = pytest.mark.anyio


async def spread(ib: IB) -> tuple[object, float, float]:
    """A 230/240 AAPL call debit spread BAG with its combo (bid, ask)."""
    long_call, short_call = await option(ib, 230), await option(ib, 240)
    bag = combo((long_call, 1, "BUY"), (short_call, 1, "SELL"))
    [t] = await ib.reqTickersAsync(bag)
    return bag, t.bid, t.ask


# --- combo stops (§a) --------------------------------------------------------------------------


async def test_stop_limit_on_a_combo_is_refused_with_387(sim: SimTWS, ib: IB) -> None:
    bag, bid, _ask = await spread(ib)
    codes = error_codes(ib)
    trade = ib.placeOrder(bag, StopLimitOrder("SELL", 1, round(bid - 1.0, 2), round(bid - 0.5, 2)))
    await wait_for_status(trade, "Cancelled", "Inactive")
    await settle()
    assert (trade.order.orderId, 387) in codes
    assert "Unsupported order type for this exchange and security type" in trade.log[-1].message
    assert not [o for o in sim.broker.orders.values() if o.is_active]


async def test_what_if_of_a_combo_stop_limit_is_refused_too(ib: IB) -> None:
    bag, bid, _ask = await spread(ib)
    order = StopLimitOrder("SELL", 1, round(bid - 1.0, 2), round(bid - 0.5, 2))
    with pytest.raises(RequestError) as refused:
        await ib.whatIfOrderAsync(bag, order)
    assert refused.value.code == 387


async def test_combo_stop_is_accepted_and_fires_on_bid_ask_with_trigger_method_4(
    sim: SimTWS, ib: IB
) -> None:
    bag, bid, _ask = await spread(ib)
    stop_price = round(bid - 0.3, 2)
    trade = ib.placeOrder(bag, StopOrder("SELL", 1, stop_price, triggerMethod=4))
    await wait_for_status(trade, "Submitted")
    assert sim.orders_received[-1].request.trigger_method == 4
    # The client reads back the trigger method it sent (openOrder carries it).
    assert trade.order.triggerMethod == 4
    sim.set_price("AAPL", sim.market.spot("AAPL") - 6)  # the spread's bid falls through the stop
    await sim.step()
    await wait_for_status(trade, "Filled")


async def test_combo_stop_with_the_default_trigger_waits_for_a_combo_last_that_never_prints(
    sim: SimTWS, ib: IB
) -> None:
    # IB's trigger-method table: COMBO defaults to "Last"; option combos rarely print a last.
    bag, bid, _ask = await spread(ib)
    trade = ib.placeOrder(bag, StopOrder("SELL", 1, round(bid - 0.3, 2)))
    await wait_for_status(trade, "Submitted")
    sim.set_price("AAPL", sim.market.spot("AAPL") - 6)
    await sim.advance(60)
    await settle()
    assert trade.orderStatus.status == "Submitted" and not trade.fills


async def test_single_option_stop_default_trigger_is_bid_ask(sim: SimTWS, ib: IB) -> None:
    call = await option(ib, 230)
    buy = ib.placeOrder(call, LimitOrder("BUY", 1, 100.0))
    await wait_for_status(buy, "Filled")
    [t] = await ib.reqTickersAsync(call)
    stop = ib.placeOrder(call, StopOrder("SELL", 1, round(t.bid - 1.0, 2)))
    await wait_for_status(stop, "Submitted")
    # Its bid falls through the stop although the option's last has not printed there.
    sim.set_price("AAPL", sim.market.spot("AAPL") - 10)
    await sim.step()
    await wait_for_status(stop, "Filled")


# --- deprecated attributes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "code", "text"),
    [
        ("eTradeOnly", 10268, "The 'EtradeOnly' order attribute is not supported."),
        ("firmQuoteOnly", 10269, "The 'firmQuoteOnly' order attribute is not supported."),
    ],
)
async def test_deprecated_order_attributes_are_refused(
    sim: SimTWS, ib: IB, attribute: str, code: int, text: str
) -> None:
    stock, bid, _ask, _last = await aapl(ib)
    order = LimitOrder("SELL", 1, bid)
    setattr(order, attribute, True)
    codes = error_codes(ib)
    trade = ib.placeOrder(stock, order)
    await wait_for_status(trade, "Cancelled", "Inactive")
    await settle()
    assert (order.orderId, code) in codes and text in trade.log[-1].message
    assert not sim.broker.executions


# --- OCA (§c) ----------------------------------------------------------------------------------


async def test_oca_members_of_different_accounts_are_refused_with_10224(connect_ib) -> None:  # type: ignore[no-untyped-def]
    async with SimTWS(seed=0, accounts=[AccountSpec("U1111111"), AccountSpec("U2222222")]) as sim:
        ib = IB()
        connect_ib.clients.append(ib)
        await ib.connectAsync("127.0.0.1", sim.port, clientId=5, timeout=2)
        stock, bid, _ask, last = await aapl(ib)
        first = ib.placeOrder(
            stock,
            StopOrder(
                "SELL", 100, round(last - 20, 2), ocaGroup="G1", ocaType=1, account="U1111111"
            ),
        )
        await wait_for_status(first, "Submitted")
        codes = error_codes(ib)
        second = ib.placeOrder(
            stock, LimitOrder("SELL", 100, bid, ocaGroup="G1", ocaType=1, account="U2222222")
        )
        await wait_for_status(second, "Cancelled", "Inactive")
        await settle()
        assert (second.order.orderId, 10224) in codes
        assert "exactly the same account" in second.log[-1].message
        # No account at all in a multi-account login is "Undefined" (ib_async#75).
        third = ib.placeOrder(stock, LimitOrder("SELL", 100, bid, ocaGroup="G1", ocaType=1))
        await wait_for_status(third, "Cancelled", "Inactive")
        await settle()
        assert (third.order.orderId, 10224) in codes
        assert first.orderStatus.status == "Submitted" and not sim.broker.executions


# --- version negotiation -----------------------------------------------------------------------


async def _handshake(port: int, offer: bytes) -> bytes:
    """The server's handshake reply payload, or b"" when it closes the socket instead."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"API\0" + struct.pack(">I", len(offer)) + offer)
        await writer.drain()
        try:
            (size,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 2.0))
        except asyncio.IncompleteReadError:
            return b""
        return await reader.readexactly(size)
    finally:
        writer.close()


async def test_a_client_that_cannot_speak_178_is_refused_at_the_handshake(sim: SimTWS) -> None:
    # ibapi 9.81 offers v100..157: answering "157" and then writing v178 layouts would break it.
    answer = await _handshake(sim.port, b"v100..157")
    assert answer == b""  # closed before any reply
    assert sim.handshake_refusals and "v100..157" in sim.handshake_refusals[0]
    assert "178" in sim.handshake_refusals[0]


async def test_a_client_offering_a_range_around_178_gets_178(sim: SimTWS) -> None:
    answer = await _handshake(sim.port, b"v100..200")
    assert answer.split(b"\0")[0] == b"178" and not sim.handshake_refusals


def test_the_simulator_refuses_to_claim_a_version_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="178"):
        SimTWS(server_version=157)


# --- stock sizes -------------------------------------------------------------------------------


async def test_us_stock_sizes_and_volume_arrive_in_shares(ib: IB) -> None:
    # TWS 985+: "for US stocks the bid, ask, and last size quotes are shown in shares".
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ib.reqMktData(stock, "165")
    ticker = ib.ticker(stock)
    assert ticker is not None
    for _ in range(100):
        if not math.isnan(ticker.avVolume) and ticker.bidSize > 0:
            break
        await asyncio.sleep(0.01)
    assert ticker.bidSize >= 100 and ticker.bidSize % 100 == 0
    assert ticker.askSize >= 100 and ticker.volume >= 1_000_000
    assert ticker.avVolume >= 1_000_000


# --- what-if (§d) ------------------------------------------------------------------------------


async def test_what_if_outside_regular_hours_leaves_commission_unset(connect_ib) -> None:  # type: ignore[no-untyped-def]
    # ib_insync#380: a paper preview outside RTH carried commission 1.7976931348623157E308.
    async with scenario_client(connect_ib, "after_hours", 6) as (sim, ib):
        sim.broker.unset_commission_outside_rth = True
        [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        state = await ib.whatIfOrderAsync(stock, LimitOrder("BUY", 10, 100.0))
        assert float(state.initMarginChange) > 0
        assert state.commission == pytest.approx(1.7976931348623157e308)
        assert state.minCommission == pytest.approx(1.7976931348623157e308)


async def test_what_if_can_go_unanswered_like_a_warning_only_preview(sim: SimTWS, ib: IB) -> None:
    # ib_insync#380: TWS first sends an openOrder with only warningText and unset values;
    # ib_async's whatIfOrderAsync keeps waiting (no timeout) until a populated one comes.
    sim.what_if_unanswered(1)
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.whatIfOrderAsync(stock, LimitOrder("BUY", 10, 100.0)), 0.3)
    state = await asyncio.wait_for(ib.whatIfOrderAsync(stock, LimitOrder("BUY", 10, 100.0)), 2)
    assert float(state.initMarginChange) > 0


# --- market data (§g) --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def scenario_client(
    connect_ib: Connector, scenario: str, client_id: int
) -> AsyncIterator[tuple[SimTWS, IB]]:
    """A simulator in ``scenario`` and a real ib_async client connected to it."""
    async with SimTWS(seed=0, scenario=scenario) as sim:
        ib = IB()
        ib.RaiseRequestErrors = True
        connect_ib.clients.append(ib)
        await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=2)
        yield sim, ib


async def _codes_and_ticker(ib: IB, symbol: str = "MSFT") -> tuple[list[int], object]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    [stock] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
    ticker = ib.reqMktData(stock)
    await asyncio.sleep(0.1)
    return codes, ticker


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        ("delayed_only", 354),
        ("no_market_data", 354),
        ("api_subscription_missing", 10089),
        ("competing_session", 10197),
    ],
)
async def test_no_subscription_scenarios_answer_ib_codes_and_no_data(
    connect_ib,
    scenario: str,
    code: int,  # type: ignore[no-untyped-def]
) -> None:
    async with scenario_client(connect_ib, scenario, 7) as (_sim, ib):
        codes, ticker = await _codes_and_ticker(ib)
        assert codes == [code]
        assert math.isnan(ticker.bid) and math.isnan(ticker.last)  # type: ignore[attr-defined]
        if scenario == "no_market_data":
            ib.reqMarketDataType(3)
            more, _t = await _codes_and_ticker(ib, "AMZN")
            assert more == [10168]


async def test_competing_session_text_is_ibs(connect_ib) -> None:  # type: ignore[no-untyped-def]
    async with scenario_client(connect_ib, "competing_session", 8) as (_sim, ib):
        texts: list[str] = []
        ib.errorEvent += lambda req_id, code, text, contract: texts.append(text)
        [stock] = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
        with pytest.raises(RequestError):
            await ib.reqTickersAsync(stock)
        assert texts == ["No market data during competing live session"]


@pytest.mark.parametrize(
    ("scenario", "code"), [("partial_subscription", 10090), ("partial_api_subscription", 10091)]
)
async def test_advisories_come_with_data_that_keeps_streaming(
    connect_ib,
    scenario: str,
    code: int,  # type: ignore[no-untyped-def]
) -> None:
    async with scenario_client(connect_ib, scenario, 9) as (sim, ib):
        codes, ticker = await _codes_and_ticker(ib)
        assert codes == [code]
        first = ticker.last  # type: ignore[attr-defined]
        assert first > 0 and ticker.marketDataType == 1  # type: ignore[attr-defined]
        await sim.advance(600)
        await asyncio.sleep(0.05)
        assert ticker.last != first  # type: ignore[attr-defined]


async def test_delayed_scenario_streams_delayed_ticks_after_10167(connect_ib) -> None:  # type: ignore[no-untyped-def]
    async with scenario_client(connect_ib, "delayed_only", 10) as (sim, ib):
        for md_type in (3, 4):
            ib.reqMarketDataType(md_type)
            codes, ticker = await _codes_and_ticker(ib, "AMZN" if md_type == 3 else "NVDA")
            assert codes == [10167]
            assert ticker.marketDataType == md_type  # type: ignore[attr-defined]
            assert ticker.bid > 0 and ticker.last > 0  # type: ignore[attr-defined]
        delayed_ticks = [
            req for req in sim.requests_named("reqMarketDataType") if req.fields[-1] in "34"
        ]
        assert len(delayed_ticks) == 2


async def test_live_entitlement_ignores_a_delayed_request(sim: SimTWS, ib: IB) -> None:
    # "3 delayed: ignored if real-time data is available" (IB, market_data_type.html).
    ib.reqMarketDataType(3)
    codes, ticker = await _codes_and_ticker(ib)
    assert codes == [] and ticker.marketDataType == 1  # type: ignore[attr-defined]
