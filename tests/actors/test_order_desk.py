"""The order desk (orders through the connection actor) against the simulated TWS, driven by the
real ib_async client: single legs, guaranteed combos, stops, rejections, partial fills, cancel,
modify, what-if, the order book and an order whose acknowledgement was lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import anyio
import pytest

from sumppump.messages.base import Message
from sumppump.messages.common import OptionContract, Quote
from sumppump.messages.connection import (
    ConnectionUp,
    FetchOptionContracts,
    FetchOptionParams,
    FetchQuotes,
    OptionContracts,
    OptionParams,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.orders import (
    CancelOrder,
    CancelRequested,
    CommissionReported,
    FetchOrderBook,
    FillReported,
    ModifyOrder,
    OrderBook,
    OrderLeg,
    OrderPlaced,
    OrderRejected,
    OrderSpec,
    OrderStatusChanged,
    OrderUnacknowledged,
    PlaceOrder,
    WhatIf,
    WhatIfResult,
)
from sumppump.tws_sim import SimTWS
from tests.support.ib_harness import BrokerHarness, connection_harness, no_decoder_errors

pytestmark = pytest.mark.anyio

EXPIRY = "2026-12-18"  # a monthly listed on the simulator's default start date
ACCOUNT = "U1234567"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async needs asyncio


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=7) as sim:
        yield sim


@pytest.fixture
async def h(sim: SimTWS) -> AsyncIterator[BrokerHarness]:
    with no_decoder_errors():
        async with connection_harness(sim.port) as harness:
            await harness.wait_for(lambda e: isinstance(e, ConnectionUp))
            yield harness


# ---------------------------------------------------------------------- helpers


async def stock_con_id(h: BrokerHarness, symbol: str = "AAPL") -> int:
    reply = await h.connection.call(ResolveStock(symbol=symbol), timeout=5)
    assert isinstance(reply, StockResolved)
    return reply.contract.con_id


async def options(
    h: BrokerHarness, strikes: list[float], right: Literal["C", "P"] = "C"
) -> list[tuple[OptionContract, Quote]]:
    """Listed contracts and their quotes, as TWS reports them (nothing invented)."""
    con_id = await stock_con_id(h)
    params = await h.connection.call(
        FetchOptionParams(symbol="AAPL", underlying_con_id=con_id), timeout=5
    )
    assert isinstance(params, OptionParams)
    smart = next(s for s in params.sets if s.exchange == "SMART")
    chain = await h.connection.call(
        FetchOptionContracts(symbol="AAPL", expiry=EXPIRY, trading_class=smart.trading_class),
        timeout=5,
    )
    assert isinstance(chain, OptionContracts)
    wanted = [
        next(c for c in chain.contracts if c.strike == k and c.right == right) for k in strikes
    ]
    quotes = await h.connection.call(
        FetchQuotes(
            targets=tuple(
                QuoteTarget(con_id=c.con_id, symbol="AAPL", sec_type="OPT") for c in wanted
            )
        ),
        timeout=10,
    )
    assert isinstance(quotes, Quotes) and not quotes.missing
    by_id = {q.con_id: q for q in quotes.quotes}
    return [(c, by_id[c.con_id]) for c in wanted]


def option_leg(c: OptionContract, action: Literal["BUY", "SELL"], ratio: int = 1) -> OrderLeg:
    return OrderLeg(
        con_id=c.con_id,
        symbol=c.symbol,
        sec_type="OPT",
        action=action,
        ratio=ratio,
        multiplier=c.multiplier,
        expiry=c.expiry,
        strike=c.strike,
        right=c.right,
    )


def spec(ref: str, legs: tuple[OrderLeg, ...], quantity: int, **kw: object) -> OrderSpec:
    return OrderSpec(
        order_ref=ref,
        account=ACCOUNT,
        symbol="AAPL",
        legs=legs,
        quantity=quantity,
        **kw,  # type: ignore[arg-type]
    )


def events(h: BrokerHarness, kind: type[Message], ref: str | None = None) -> list[Message]:
    return [
        e
        for e in h.events
        if isinstance(e, kind) and (ref is None or getattr(e, "order_ref", ref) == ref)
    ]


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await anyio.sleep(0.01)


def placed(sim: SimTWS, ref: str) -> list:
    return [o for o in sim.orders_received if o.order_ref == ref and not o.what_if]


# ---------------------------------------------------------------------- placing


async def test_single_leg_limit_order_fills_and_reports_fill_commission_and_status(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(call, quote)] = await options(h, [225.0])
    assert quote.ask is not None
    order = spec("ref-single", (option_leg(call, "BUY"),), 2, limit_price=quote.ask)
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert isinstance(reply, OrderPlaced)
    assert reply.order_ref == "ref-single" and reply.order_id > 0 and reply.perm_id > 0
    assert reply.status in ("PreSubmitted", "Submitted", "Filled")
    [received] = placed(sim, "ref-single")
    wire = received.request
    assert wire.contract.con_id == call.con_id and wire.contract.sec_type == "OPT"
    assert wire.contract.exchange == "SMART"
    assert (wire.action, wire.total_quantity, wire.order_type) == ("BUY", 2, "LMT")
    assert wire.lmt_price == quote.ask and wire.tif == "DAY" and wire.account == ACCOUNT
    assert wire.order_id == reply.order_id

    await wait_until(lambda: events(h, CommissionReported))
    [fill] = events(h, FillReported, "ref-single")
    assert isinstance(fill, FillReported)
    assert (fill.con_id, fill.side, fill.shares, fill.price) == (call.con_id, "BOT", 2, quote.ask)
    [commission] = events(h, CommissionReported)
    assert isinstance(commission, CommissionReported)
    assert commission.exec_id == fill.exec_id and commission.commission == pytest.approx(1.30)
    statuses = [e.status for e in events(h, OrderStatusChanged, "ref-single")]  # type: ignore[attr-defined]
    assert statuses[-1] == "Filled" and "Submitted" in statuses


async def test_debit_spread_is_one_guaranteed_bag_at_the_net_limit(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(long, long_q), (short, short_q)] = await options(h, [220.0, 230.0])
    assert long_q.ask is not None and short_q.bid is not None
    net = round(long_q.ask - short_q.bid, 2)  # the natural debit: marketable
    order = spec(
        "ref-bag", (option_leg(long, "BUY"), option_leg(short, "SELL")), 3, limit_price=net
    )
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert isinstance(reply, OrderPlaced)
    assert len(sim.requests_named("placeOrder")) == 1
    [received] = placed(sim, "ref-bag")
    wire = received.request
    assert wire.contract.sec_type == "BAG" and wire.contract.symbol == "AAPL"
    assert wire.contract.currency == "USD" and wire.contract.exchange == "SMART"
    assert [(leg.con_id, leg.ratio, leg.action) for leg in wire.contract.combo_legs] == [
        (long.con_id, 1, "BUY"),
        (short.con_id, 1, "SELL"),
    ]
    assert wire.smart_combo_params == ()  # guaranteed: never NonGuaranteed
    assert (wire.action, wire.total_quantity, wire.lmt_price) == ("BUY", 3, net)
    await wait_until(lambda: len(events(h, FillReported, "ref-bag")) == 3)
    legs = {e.con_id: e for e in events(h, FillReported, "ref-bag")}  # type: ignore[attr-defined]
    assert legs[long.con_id].side == "BOT" and legs[short.con_id].side == "SLD"  # type: ignore[attr-defined]


async def test_stop_order_rests_until_the_price_crosses(sim: SimTWS, h: BrokerHarness) -> None:
    con_id = await stock_con_id(h)
    last = sim.market.stock_quote("AAPL").last
    stop = round(last - 5, 2)
    leg = OrderLeg(
        con_id=con_id, symbol="AAPL", sec_type="STK", action="SELL", ratio=1, multiplier=1
    )
    order = spec("ref-stop", (leg,), 100, order_type="STP", stop_price=stop, tif="GTC")
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert isinstance(reply, OrderPlaced) and reply.status in ("PreSubmitted", "Submitted")
    [received] = placed(sim, "ref-stop")
    assert (received.request.order_type, received.request.aux_price) == ("STP", stop)
    assert received.request.contract.sec_type == "STK" and received.request.tif == "GTC"
    await sim.step()
    assert not events(h, FillReported, "ref-stop")
    sim.set_price("AAPL", stop - 1)
    await sim.step()
    await wait_until(lambda: events(h, FillReported, "ref-stop"))


async def test_rejection_is_reported_with_ibs_code_and_text(sim: SimTWS, h: BrokerHarness) -> None:
    [(call, quote)] = await options(h, [225.0])
    sim.reject_next_order(201, "Order rejected - reason:simulated margin refusal")
    order = spec("ref-reject", (option_leg(call, "BUY"),), 1, limit_price=quote.ask)
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert isinstance(reply, OrderRejected)
    assert reply.order_ref == "ref-reject" and reply.code == 201
    assert "simulated margin refusal" in reply.message
    assert not reply.message.startswith("Error")


async def test_an_order_ref_is_never_sent_twice(sim: SimTWS, h: BrokerHarness) -> None:
    [(call, quote)] = await options(h, [240.0])
    order = spec("ref-once", (option_leg(call, "BUY"),), 1, limit_price=round(quote.bid / 2, 2))  # type: ignore[operator]
    first = await h.connection.call(PlaceOrder(spec=order), timeout=5)
    second = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert isinstance(first, OrderPlaced)
    assert isinstance(second, OrderRejected) and second.code == 0
    assert len(placed(sim, "ref-once")) == 1


async def test_partial_fill_then_fill_reports_two_fills_and_the_statuses(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(call, quote)] = await options(h, [225.0])
    sim.partial_fill_next_order([1])
    order = spec("ref-partial", (option_leg(call, "BUY"),), 2, limit_price=quote.ask)
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)
    assert isinstance(reply, OrderPlaced)
    await sim.step()

    await wait_until(lambda: len(events(h, FillReported, "ref-partial")) == 2)
    fills = events(h, FillReported, "ref-partial")
    assert [f.shares for f in fills] == [1, 1]  # type: ignore[attr-defined]
    assert [f.cum_qty for f in fills] == [1, 2]  # type: ignore[attr-defined]
    await wait_until(
        lambda: any(e.status == "Filled" for e in events(h, OrderStatusChanged, "ref-partial"))  # type: ignore[attr-defined]
    )
    statuses = events(h, OrderStatusChanged, "ref-partial")
    partial = [e for e in statuses if e.filled == 1 and e.remaining == 1]  # type: ignore[attr-defined]
    assert partial and partial[0].status == "Submitted"  # type: ignore[attr-defined]
    assert statuses[-1].status == "Filled" and statuses[-1].filled == 2  # type: ignore[attr-defined]


async def test_cancel_by_order_ref(sim: SimTWS, h: BrokerHarness) -> None:
    [(call, quote)] = await options(h, [240.0])
    assert quote.bid is not None
    order = spec("ref-cancel", (option_leg(call, "BUY"),), 1, limit_price=round(quote.bid / 2, 2))
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)
    assert isinstance(reply, OrderPlaced) and reply.status == "Submitted"

    cancelled = await h.connection.call(CancelOrder(order_ref="ref-cancel"), timeout=5)
    assert isinstance(cancelled, CancelRequested)
    assert cancelled.order_id == reply.order_id and cancelled.status == "Cancelled"
    assert len(sim.requests_named("cancelOrder")) == 1
    [sim_order] = [o for o in sim.broker.orders.values() if o.order_ref == "ref-cancel"]
    assert sim_order.status == "Cancelled"
    unknown = await h.connection.call(CancelOrder(order_ref="no-such-ref"), timeout=5)
    assert isinstance(unknown, OrderRejected)
    late = await h.connection.call(ModifyOrder(order_id=reply.order_id, spec=order), timeout=5)
    assert isinstance(late, OrderRejected) and late.code == 0  # a cancelled order stays so
    assert len(placed(sim, "ref-cancel")) == 1


async def test_modify_resends_the_same_order_id_with_the_new_limit(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(call, quote)] = await options(h, [240.0])
    assert quote.bid is not None
    low = round(quote.bid / 2, 2)
    order = spec("ref-modify", (option_leg(call, "BUY"),), 1, limit_price=low, tif="GTC")
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)
    assert isinstance(reply, OrderPlaced)

    lower = round(low - 0.05, 2)
    changed = spec("ref-modify", (option_leg(call, "BUY"),), 1, limit_price=lower, tif="GTC")
    modified = await h.connection.call(
        ModifyOrder(order_id=reply.order_id, spec=changed), timeout=5
    )
    assert isinstance(modified, OrderPlaced) and modified.order_id == reply.order_id
    sent = placed(sim, "ref-modify")
    assert [o.request.order_id for o in sent] == [reply.order_id, reply.order_id]
    [sim_order] = [o for o in sim.broker.orders.values() if o.order_ref == "ref-modify"]
    assert sim_order.lmt_price == lower


# ---------------------------------------------------------------------- what-if and the book


async def test_what_if_reports_the_margin_and_commission_the_broker_computed(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(long, long_q), (short, short_q)] = await options(h, [220.0, 230.0])
    net = round(long_q.mid - short_q.mid, 2)  # type: ignore[operator]
    order = spec("", (option_leg(long, "BUY"), option_leg(short, "SELL")), 2, limit_price=net)
    reply = await h.connection.call(WhatIf(spec=order), timeout=5)

    assert isinstance(reply, WhatIfResult)
    [received] = [o for o in sim.orders_received if o.what_if]
    expected = sim.broker.what_if(received.request)  # the world is frozen: same answer again
    assert reply.init_margin_change == pytest.approx(float(expected.init_margin_change))
    assert reply.maint_margin_change == pytest.approx(float(expected.maint_margin_change))
    assert reply.equity_with_loan_change == pytest.approx(float(expected.equity_with_loan_change))
    assert reply.init_margin_after == pytest.approx(float(expected.init_margin_after))
    assert reply.commission == pytest.approx(2 * 0.65 * 2)  # two legs of two contracts
    assert not sim.broker.orders  # a preview places nothing


async def test_what_if_rejection_is_an_order_rejected(sim: SimTWS, h: BrokerHarness) -> None:
    [(call, quote)] = await options(h, [225.0])
    sim.set_options_level(ACCOUNT, 0)
    reply = await h.connection.call(
        WhatIf(spec=spec("", (option_leg(call, "BUY"),), 1, limit_price=quote.ask)), timeout=5
    )
    assert isinstance(reply, OrderRejected) and reply.code == 201
    assert "PERMISSION" in reply.message


async def test_read_only_api_what_if_is_rejected_at_once_not_left_unanswered(
    sim: SimTWS, h: BrokerHarness
) -> None:
    """TWS refuses orders in Read-Only API mode with 321, which ib_async only logs as a
    warning; the desk must answer the rejection instead of waiting out the deadline."""
    [(call, quote)] = await options(h, [225.0])
    sim.reject_next_order(
        321, "Error validating request: The API interface is currently in Read-Only mode."
    )
    started = anyio.current_time()
    reply = await h.connection.call(
        WhatIf(spec=spec("", (option_leg(call, "BUY"),), 1, limit_price=quote.ask)), timeout=10
    )
    assert isinstance(reply, OrderRejected) and reply.code == 321
    assert "Read-Only" in reply.message
    assert anyio.current_time() - started < 2.0


async def test_order_book_after_fills_has_the_order_and_its_fills_by_ref(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(call, quote)] = await options(h, [225.0])
    order = spec("ref-book", (option_leg(call, "BUY"),), 2, limit_price=quote.ask)
    assert isinstance(await h.connection.call(PlaceOrder(spec=order), timeout=5), OrderPlaced)
    await wait_until(lambda: events(h, FillReported, "ref-book"))

    book = await h.connection.call(FetchOrderBook(), timeout=5)
    assert isinstance(book, OrderBook)
    [record] = [r for r in book.completed if r.order_ref == "ref-book"]
    assert (record.status, record.filled, record.symbol, record.action) == (
        "Filled",
        2,
        "AAPL",
        "BUY",
    )
    assert not [r for r in book.open if r.order_ref == "ref-book"]
    [fill] = [f for f in book.fills if f.order_ref == "ref-book"]
    assert (fill.con_id, fill.shares, fill.price) == (call.con_id, 2, quote.ask)


async def test_order_whose_ack_was_lost_is_found_by_ref_after_reconnect_and_sent_once(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(call, quote)] = await options(h, [225.0])
    order = spec("ref-lost", (option_leg(call, "BUY"),), 1, limit_price=quote.ask)
    # TWS processes the order but its replies never leave: the socket goes before the ack.
    # (``stalled`` alone holds replies; ``stall()`` would also stop TWS reading the order.)
    sim.stalled = True
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=1.5)
    assert isinstance(reply, OrderUnacknowledged)
    assert reply.order_ref == "ref-lost" and reply.order_id > 0
    assert len(placed(sim, "ref-lost")) == 1  # it did reach TWS

    sim.drop_connections()
    sim.stalled = False
    await h.wait_for(lambda e: isinstance(e, ConnectionUp) and e.epoch == 2)
    book = await h.connection.call(FetchOrderBook(), timeout=5)
    assert isinstance(book, OrderBook)
    found = [r for r in (*book.open, *book.completed) if r.order_ref == "ref-lost"]
    assert len(found) == 1 and found[0].order_id == reply.order_id
    assert len(placed(sim, "ref-lost")) == 1
    assert len([o for o in sim.broker.orders.values() if o.order_ref == "ref-lost"]) == 1
    again = await h.connection.call(PlaceOrder(spec=order), timeout=5)
    assert isinstance(again, OrderRejected) and again.code == 0  # never sent twice
    assert len(placed(sim, "ref-lost")) == 1


async def test_a_price_off_the_tick_is_rejected_with_110(sim: SimTWS, h: BrokerHarness) -> None:
    [(call, quote)] = await options(h, [225.0])
    assert quote.ask is not None
    order = spec("ref-tick", (option_leg(call, "BUY"),), 1, limit_price=round(quote.ask + 0.003, 3))
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert isinstance(reply, OrderRejected) and reply.code == 110
    assert "minimum price variation" in reply.message
    assert not [o for o in sim.broker.orders.values() if o.order_ref == "ref-tick" and o.is_active]


async def test_orders_are_refused_while_not_connected(sim: SimTWS, h: BrokerHarness) -> None:
    [(call, quote)] = await options(h, [225.0])
    await sim.refuse_connections()
    sim.drop_connections()
    await h.wait_for(lambda e: type(e).__name__ == "ConnectionDown")
    order = spec("ref-offline", (option_leg(call, "BUY"),), 1, limit_price=quote.ask)
    reply = await h.connection.call(PlaceOrder(spec=order), timeout=5)

    assert type(reply).__name__ == "NotConnected"
    assert not placed(sim, "ref-offline")


# ---------------------------------------------------------------------- IB's rules (issue 19)


async def test_combo_stop_goes_out_as_stp_with_the_bid_ask_trigger(
    sim: SimTWS, h: BrokerHarness
) -> None:
    [(long, long_q), (short, short_q)] = await options(h, [220.0, 230.0])
    value = round(long_q.bid - short_q.ask, 2)  # type: ignore[operator]
    stop = spec(
        "ref-bag-stop",
        (option_leg(long, "SELL"), option_leg(short, "BUY")),
        1,
        order_type="STP",
        stop_price=round(-(value - 1.0), 2),
        tif="GTC",
    )
    reply = await h.connection.call(PlaceOrder(spec=stop), timeout=5)
    assert isinstance(reply, OrderPlaced)
    [received] = placed(sim, "ref-bag-stop")
    assert received.request.order_type == "STP" and received.request.trigger_method == 4


async def test_a_refused_modification_never_makes_the_live_order_look_cancelled(
    sim: SimTWS, h: BrokerHarness
) -> None:
    # Real TWS may not resend the order after refusing a change; the desk must re-read it.
    sim.resend_after_refused_modification = False
    [(long, _lq), (short, _sq)] = await options(h, [220.0, 230.0])
    legs = (option_leg(long, "SELL"), option_leg(short, "BUY"))
    stop = spec("ref-mod-stop", legs, 1, order_type="STP", stop_price=-1.0, tif="GTC")
    placed_reply = await h.connection.call(PlaceOrder(spec=stop), timeout=5)
    assert isinstance(placed_reply, OrderPlaced)
    # STP LMT on a BAG: IB refuses with 387; ib_async marks the trade Cancelled on it.
    changed = spec(
        "ref-mod-stop",
        legs,
        1,
        order_type="STP LMT",
        stop_price=-1.0,
        limit_price=-0.8,
        tif="GTC",
    )
    reply = await h.connection.call(
        ModifyOrder(order_id=placed_reply.order_id, spec=changed), timeout=5
    )
    assert isinstance(reply, OrderRejected) and reply.code == 387
    assert "still working" in reply.message
    [live] = [o for o in sim.broker.orders.values() if o.order_ref == "ref-mod-stop"]
    assert live.is_active and live.order_type == "STP"
    cancel = await h.connection.call(CancelOrder(order_ref="ref-mod-stop"), timeout=5)
    assert isinstance(cancel, CancelRequested)
    assert not live.is_active


async def test_a_what_if_without_a_populated_preview_ends_at_its_deadline(
    sim: SimTWS, h: BrokerHarness
) -> None:
    from sumppump.messages.orders import WhatIfUnanswered

    [(call, quote)] = await options(h, [225.0])
    sim.what_if_unanswered(1)
    order = spec("ref-wi", (option_leg(call, "BUY"),), 1, limit_price=quote.ask)
    reply = await h.connection.call(WhatIf(spec=order), timeout=2)
    assert isinstance(reply, WhatIfUnanswered) and reply.order_ref == "ref-wi"
    assert 0 < reply.waited_seconds < 2
    assert not sim.broker.orders
    again = await h.connection.call(WhatIf(spec=order), timeout=5)
    assert isinstance(again, WhatIfResult)


async def test_unset_what_if_values_are_not_given() -> None:
    # Outside regular hours IB's preview can carry valid margins with an unset commission
    # (1.7976931348623157E308, ib_insync#380): it must read as "not given", never a number.
    async with SimTWS(seed=7, scenario="after_hours") as sim:
        sim.broker.unset_commission_outside_rth = True
        with no_decoder_errors():
            async with connection_harness(sim.port) as h:
                await h.wait_for(lambda e: isinstance(e, ConnectionUp))
                con_id = await stock_con_id(h)
                leg = OrderLeg(
                    con_id=con_id,
                    symbol="AAPL",
                    sec_type="STK",
                    action="BUY",
                    ratio=1,
                    multiplier=1.0,
                )
                order = spec("ref-unset", (leg,), 10, limit_price=100.0)
                reply = await h.connection.call(WhatIf(spec=order), timeout=5)
    assert isinstance(reply, WhatIfResult)
    assert reply.init_margin_change is not None and reply.init_margin_change > 0
    assert reply.commission is None and reply.min_commission is None
    assert reply.max_commission is None


async def test_a_finished_oca_group_name_is_never_sent_again(sim: SimTWS, h: BrokerHarness) -> None:
    from sumppump.actors.order_building import new_oca_group
    from sumppump.actors.order_desk import LOCAL_REFUSAL

    [(call, quote)] = await options(h, [225.0])
    low = round(quote.bid / 2, 2)  # type: ignore[operator]
    first = spec(
        "ref-oca-1",
        (option_leg(call, "BUY"),),
        1,
        limit_price=low,
        oca_group="G-used",
        oca_type=2,
    )
    assert isinstance(await h.connection.call(PlaceOrder(spec=first), timeout=5), OrderPlaced)
    cancelled = await h.connection.call(CancelOrder(order_ref="ref-oca-1"), timeout=5)
    assert isinstance(cancelled, CancelRequested)
    second = msgspec_replace(first, order_ref="ref-oca-2")
    reply = await h.connection.call(PlaceOrder(spec=second), timeout=5)
    assert isinstance(reply, OrderRejected) and reply.code == LOCAL_REFUSAL
    assert "never accepts a group name twice" in reply.message
    assert not placed(sim, "ref-oca-2")
    names = {new_oca_group("stop-AAPL") for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("stop-AAPL-") for n in names)


def msgspec_replace(order: OrderSpec, **changes: object) -> OrderSpec:
    import msgspec

    return msgspec.structs.replace(order, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- exercise (issue 20)


@pytest.fixture
async def expiry_h() -> AsyncIterator[tuple[SimTWS, BrokerHarness]]:
    async with SimTWS(seed=0, scenario="expiry_day") as sim:
        with no_decoder_errors():
            async with connection_harness(sim.port) as harness:
                await harness.wait_for(lambda e: isinstance(e, ConnectionUp))
                yield sim, harness


def _long_itm_call(sim: SimTWS) -> tuple[int, float]:
    acct = sim.broker.accounts[ACCOUNT]
    pos = next(
        p
        for p in acct.positions.values()
        if p.instrument.sec_type == "OPT" and p.quantity > 0 and p.instrument.right == "C"  # type: ignore[union-attr]
    )
    return pos.instrument.con_id, pos.instrument.strike  # type: ignore[union-attr]


def _shares(sim: SimTWS) -> float:
    und = sim.catalog.underlying("AAPL")
    assert und is not None
    return sim.broker.accounts[ACCOUNT].positions[und.con_id].quantity


async def test_exercise_through_the_desk_reports_the_shares_delivered(
    expiry_h: tuple[SimTWS, BrokerHarness],
) -> None:
    from sumppump.messages.orders import ExerciseDone, ExerciseOption

    sim, h = expiry_h
    con_id, strike = _long_itm_call(sim)
    cash_before = sim.broker.accounts[ACCOUNT].cash
    reply = await h.connection.call(
        ExerciseOption(
            con_id=con_id, symbol="AAPL", account=ACCOUNT, quantity=1, action="exercise"
        ),
        timeout=8,
    )
    assert isinstance(reply, ExerciseDone) and reply.confirmed
    assert (reply.option_position_before, reply.option_position_after) == (2.0, 1.0)
    assert (reply.shares_before, reply.shares_after) == (200.0, 300.0)
    assert _shares(sim) == 300.0
    assert sim.broker.accounts[ACCOUNT].cash == pytest.approx(cash_before - 100 * strike)


async def test_lapse_instruction_is_sent_but_never_called_confirmed(
    expiry_h: tuple[SimTWS, BrokerHarness],
) -> None:
    from sumppump.messages.orders import ExerciseDone, ExerciseOption

    sim, h = expiry_h
    con_id, _strike = _long_itm_call(sim)
    reply = await h.connection.call(
        ExerciseOption(con_id=con_id, symbol="AAPL", account=ACCOUNT, quantity=2, action="lapse"),
        timeout=5,
    )
    assert isinstance(reply, ExerciseDone) and not reply.confirmed
    assert reply.option_position_after == 2.0 and "lapse" in reply.detail
    assert sim.exercise_requests == [(ACCOUNT, con_id, 2, 2)]


async def test_exercise_refusals_local_and_ibs(expiry_h: tuple[SimTWS, BrokerHarness]) -> None:
    import datetime as dt

    from sumppump.actors.order_desk import LOCAL_REFUSAL
    from sumppump.messages.orders import ExerciseOption
    from sumppump.tws_sim.clock import NEW_YORK
    from sumppump.tws_sim.scenarios import EXPIRY_DAY

    sim, h = expiry_h
    con_id, _strike = _long_itm_call(sim)

    def ask(**kw: object) -> ExerciseOption:
        base: dict[str, object] = {
            "con_id": con_id,
            "symbol": "AAPL",
            "account": ACCOUNT,
            "quantity": 1,
            "action": "exercise",
        }
        return ExerciseOption(**{**base, **kw})  # type: ignore[arg-type]

    smart = await h.connection.call(ask(exchange="SMART"), timeout=5)
    assert isinstance(smart, OrderRejected) and smart.code == LOCAL_REFUSAL
    too_many = await h.connection.call(ask(quantity=5), timeout=5)
    assert isinstance(too_many, OrderRejected) and too_many.code == LOCAL_REFUSAL
    assert not sim.requests_named("exerciseOptions")
    sim.clock.set(dt.datetime.combine(EXPIRY_DAY, dt.time(17, 26), NEW_YORK))
    late = await h.connection.call(ask(), timeout=5)
    assert isinstance(late, OrderRejected) and late.code == 321 and "17:25" in late.message
    assert _shares(sim) == 200.0
