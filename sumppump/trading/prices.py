"""Prices of orders and structures (pure): ticks, mids, multipliers, slippage, and the
reference price of one quote, named per meaning.

Two reference prices exist on purpose: :func:`mid_or_last` (execute's check that a stop is not
already crossed: a stale close must not pass for the market) and :func:`mid_last_or_close`
(analysis and display, where yesterday's close is better than nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sumppump.messages.chain_cache import LegKey
from sumppump.messages.common import Quote
from sumppump.messages.orders import OrderLeg, OrderSpec
from sumppump.messages.risk import QuoteSnapshot
from sumppump.strategies.model import StrategyLeg

__all__ = [
    "mid_last_or_close",
    "mid_or_last",
    "option_leg_keys",
    "option_price_tick",
    "price_multiplier",
    "round_to_tick",
    "slippage_allowance",
    "snapshot_quotes",
    "strategy_legs",
    "structure_mid",
]


def round_to_tick(price: float, tick: float) -> float:
    """``price`` rounded to the nearest multiple of ``tick`` (half away from zero)."""
    if tick <= 0:
        raise ValueError("tick must be positive")
    steps = abs(price) / tick
    rounded = math.floor(steps + 0.5 + 1e-9) * tick
    return round(math.copysign(rounded, price), 10)


def structure_mid(order: OrderSpec, quotes: Iterable[Quote]) -> float | None:
    """The mid of one unit of ``order``'s structure in the limit price's convention (BUY
    legs add, SELL legs subtract, times the leg ratio; a single leg is its own mid).

    For a single-leg order the ratio is ignored (the unit is one contract or share); for a BAG
    each leg counts ``ratio`` times. ``None`` when any leg has no usable mid (no two-sided
    quote): the slippage check then cannot run, and the caller says so.
    """
    mids = {q.con_id: q.mid for q in quotes}
    if len(order.legs) == 1:
        return mids.get(order.legs[0].con_id)
    total = 0.0
    for leg in order.legs:
        mid = mids.get(leg.con_id)
        if mid is None:
            return None
        total += (1 if leg.action == "BUY" else -1) * leg.ratio * mid
    return round(total, 6)


def option_leg_keys(legs: Iterable[OrderLeg]) -> tuple[LegKey, ...]:
    """The option legs of an order as the chain cache names them (stock legs left out)."""
    return tuple(
        LegKey(expiry=leg.expiry, strike=leg.strike, right=leg.right)
        for leg in legs
        if leg.sec_type == "OPT"
        and leg.expiry is not None
        and leg.strike is not None
        and leg.right is not None
    )


def strategy_legs(legs: Iterable[OrderLeg]) -> tuple[StrategyLeg, ...]:
    """An order's legs in the strategies' vocabulary (right ``STK`` for stock)."""
    return tuple(
        StrategyLeg(
            action=leg.action,
            right=leg.right if leg.sec_type == "OPT" and leg.right else "STK",
            strike=leg.strike,
            expiry=leg.expiry,
            ratio=leg.ratio,
        )
        for leg in legs
    )


def option_price_tick(price: float) -> float:
    """A price increment every common US option market rule accepts at ``price``: 0.05 below
    $3 and 0.10 from $3 (the non-penny rule; penny-pilot names also accept these). Used for
    prices we compute ourselves (stops, fresh previews) when the contract's own rule is not at
    hand."""
    return 0.10 if abs(price) >= 3.0 - 1e-9 else 0.05


def snapshot_quotes(snapshot: QuoteSnapshot) -> tuple[Quote, ...]:
    """The risk actor's :class:`~sumppump.messages.risk.QuoteSnapshot` as the quotes a
    :class:`~sumppump.messages.execution.CreatePreview` carries (one per leg, plus the
    underlying)."""
    quotes = [
        Quote(con_id=leg.con_id, bid=leg.bid, ask=leg.ask, ts=leg.ts, data_type=snapshot.data_type)
        for leg in snapshot.legs
    ]
    if all(q.con_id != snapshot.underlying_con_id for q in quotes):
        quotes.append(
            Quote(
                con_id=snapshot.underlying_con_id,
                bid=snapshot.underlying_bid,
                ask=snapshot.underlying_ask,
                last=snapshot.underlying_last,
                ts=snapshot.ts,
                data_type=snapshot.data_type,
            )
        )
    return tuple(quotes)


def slippage_allowance(reference: float, max_slippage: float, tick: float) -> float:
    """How far the mid may move before ``PRICE_MOVED``: ``max_slippage`` (a share, 0.10 = 10 %)
    of the absolute debit/credit, or one tick, whichever is larger."""
    return max(abs(reference) * max_slippage, tick)


def price_multiplier(order: OrderSpec) -> float:
    """Money per 1.00 of the order's unit price: the option multiplier when any leg is an
    option (IB quotes option combos per share), else 1 (stock)."""
    option_multipliers = [leg.multiplier for leg in order.legs if leg.sec_type == "OPT"]
    return max(option_multipliers) if option_multipliers else 1.0


def mid_or_last(quote: Quote | None) -> float | None:
    """The market of one contract for the stop-crossed check: the mid, else a positive last
    trade; never the close (a stale price must not decide that a stop would trigger)."""
    if quote is None:
        return None
    if quote.mid is not None:
        return quote.mid
    if quote.last is not None and quote.last > 0:
        return quote.last
    return None


def mid_last_or_close(quote: Quote) -> float | None:
    """The best price at hand for analysis and display: the first positive of the mid, the
    last trade and the previous close."""
    for value in (quote.mid, quote.last, quote.close):
        if value is not None and value > 0:
            return value
    return None
