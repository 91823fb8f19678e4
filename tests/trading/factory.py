"""Values for the pure trading tests: orders, quotes, positions, previews, a ledger with
orders in it. Nothing here starts an actor or a simulator."""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.messages.chain_cache import LegKey, LegQuote, LegQuotes
from sumppump.messages.common import OptionContract, Quote, StockContract
from sumppump.messages.connection import ConnectionState, PositionInfo
from sumppump.messages.execution import CreatePreview
from sumppump.messages.orders import FillReported, OrderLeg, OrderSpec
from sumppump.trading.ledger import OrderLedger, OrderRecord
from sumppump.trading.previews import Preview, PreviewStore
from sumppump.trading.reconciliation import apply_fill, apply_status

ACCOUNT = "U1234567"
EXPIRY = "2026-12-18"
STOCK_ID = 265598


class Clocks:
    """Both preview clocks, moved by hand."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0


def option_leg(
    con_id: int, strike: float, action: Literal["BUY", "SELL"] = "BUY", right: str = "C"
) -> OrderLeg:
    return OrderLeg(
        con_id=con_id,
        symbol="AAPL",
        sec_type="OPT",
        action=action,
        ratio=1,
        multiplier=100.0,
        expiry=EXPIRY,
        strike=strike,
        right="C" if right == "C" else "P",
    )


def spread(limit: float = 3.25, quantity: int = 1) -> OrderSpec:
    """A bull call spread 230/240 (con ids 11 and 12)."""
    return OrderSpec(
        order_ref="",
        account=ACCOUNT,
        symbol="AAPL",
        legs=(option_leg(11, 230.0), option_leg(12, 240.0, "SELL")),
        quantity=quantity,
        limit_price=limit,
    )


def long_call(limit: float = 5.10, quantity: int = 1) -> OrderSpec:
    return OrderSpec(
        order_ref="",
        account=ACCOUNT,
        symbol="AAPL",
        legs=(option_leg(11, 230.0),),
        quantity=quantity,
        limit_price=limit,
    )


def quote(con_id: int, bid: float, ask: float, last: float | None = None) -> Quote:
    return Quote(con_id=con_id, bid=bid, ask=ask, last=last)


SPREAD_QUOTES = (quote(11, 5.0, 5.2), quote(12, 1.9, 2.1), quote(STOCK_ID, 229.9, 230.1))


def terms(
    order: OrderSpec | None = None, *, quotes: tuple[Quote, ...] = SPREAD_QUOTES, **kw: object
) -> CreatePreview:
    order = order or spread()
    fields: dict[str, object] = {
        "order": msgspec.to_builtins(order),
        "symbol": "AAPL",
        "kind": "open",
        "strategy": "bull call spread",
        "max_loss": 325.0,
        "max_gain": 675.0,
        "net_debit": order.limit_price or 0.0,
        "epoch": 1,
        "account_kind": "LIVE",
        "quote_snapshot": msgspec.to_builtins(quotes),
    }
    fields.update(msgspec.to_builtins(kw))
    return msgspec.convert(fields, CreatePreview)


def store() -> tuple[PreviewStore, Clocks]:
    clocks = Clocks()
    return PreviewStore(120.0, mono=lambda: clocks.mono, wall=lambda: clocks.wall), clocks


def stored(order: OrderSpec | None = None, **kw: object) -> tuple[PreviewStore, Clocks, Preview]:
    previews, clocks = store()
    return previews, clocks, previews.add(terms(order, **kw))


def connected(epoch: int = 1) -> ConnectionState:
    return ConnectionState(state="connected", epoch=epoch, host="127.0.0.1", port=7497, client_id=1)


def leg_quotes(
    quotes: tuple[Quote, ...], *, market_open: bool | None = True, switched_from: str | None = None
) -> LegQuotes:
    """The chain cache's answer: option quotes keyed 11 → 230 C, 12 → 240 C, 13 → 250 C."""
    strikes = {11: 230.0, 12: 240.0, 13: 250.0}
    legs = tuple(
        LegQuote(
            key=LegKey(expiry=EXPIRY, strike=strikes[q.con_id], right="C"),
            contract=OptionContract(
                con_id=q.con_id,
                symbol="AAPL",
                expiry=EXPIRY,
                strike=strikes[q.con_id],
                right="C",
                multiplier=100.0,
                trading_class="AAPL",
            ),
            quote=q,
        )
        for q in quotes
        if q.con_id in strikes
    )
    underlying = next((q for q in quotes if q.con_id == STOCK_ID), Quote(con_id=0))
    return LegQuotes(
        symbol="AAPL",
        stock=StockContract(con_id=STOCK_ID, symbol="AAPL", liquid_hours="L", trading_hours="T"),
        underlying=underlying,
        legs=legs,
        market_open=market_open,
        switched_from=switched_from,
    )


def position(
    con_id: int, quantity: float, avg_cost: float, *, strike: float | None = None
) -> PositionInfo:
    """An option position (``strike`` given) or AAPL stock."""
    if strike is None:
        return PositionInfo(
            account=ACCOUNT,
            con_id=con_id,
            symbol="AAPL",
            sec_type="STK",
            quantity=quantity,
            avg_cost=avg_cost,
        )
    return PositionInfo(
        account=ACCOUNT,
        con_id=con_id,
        symbol="AAPL",
        sec_type="OPT",
        quantity=quantity,
        avg_cost=avg_cost,
        expiry=EXPIRY,
        strike=strike,
        right="C",
        multiplier=100.0,
    )


def placed(
    ledger: OrderLedger,
    preview: Preview,
    *,
    order_id: int = 7,
    status: str = "Submitted",
    filled: float = 0.0,
    avg: float | None = None,
) -> OrderRecord:
    """Record ``preview``'s order in ``ledger`` as TWS acknowledged it (and filled ``filled``
    at ``avg``, with one combo-level execution)."""
    record = ledger.submit(preview.terms, follow_ups=preview.follow_ups, at=0.0)
    ledger.update(
        apply_status(
            record.tracked,
            status=status,
            filled=filled,
            remaining=record.tracked.quantity - filled,
            avg_fill_price=avg,
            order_id=order_id,
            perm_id=order_id * 100,
        )
    )
    if filled:
        fill = FillReported(
            order_ref=record.ref,
            order_id=order_id,
            exec_id=f"e-{order_id}",
            con_id=28812380 if len(preview.order.legs) > 1 else preview.order.legs[0].con_id,
            symbol="AAPL",
            side="BOT",
            shares=filled,
            price=avg or 0.0,
            cum_qty=filled,
            avg_price=avg or 0.0,
            time="20261201 10:00:00",
        )
        ledger.update(apply_fill(record.tracked, fill))
    return record
