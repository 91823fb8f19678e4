"""The exact order of a built strategy (pure): its legs matched to the chain cache's quotes,
the order IB would be sent (one leg, or a guaranteed BAG at the net limit), the quote snapshot
a preview binds, and the slice of the chain the strike suggestions read. Used by the risk
actor's analysis."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from sumppump.messages.chain_cache import Chain, LegQuotes
from sumppump.messages.chain_cache import LegQuote as ChainLegQuote
from sumppump.messages.common import DataType
from sumppump.messages.orders import OrderLeg, OrderSpec
from sumppump.messages.risk import LegSnapshot, QuoteSnapshot
from sumppump.risk_checks import wire_limit_price
from sumppump.strategies.analysis import LegQuote, QuotedLeg, StrategyAnalysis
from sumppump.strategies.builders import BuiltStrategy
from sumppump.strategies.model import StrategyLeg, StrategyRefused
from sumppump.strategies.search import ChainSlice

__all__ = [
    "chain_slice",
    "data_type_of",
    "leg_multiplier",
    "order_leg",
    "order_max_loss",
    "order_spec",
    "quote_snapshot",
    "quoted_legs",
    "years_to",
]


def leg_multiplier(legs: LegQuotes) -> int:
    multipliers = {round(leg.contract.multiplier) for leg in legs.legs}
    if len(multipliers) > 1:
        raise StrategyRefused(
            "INVALID_ARGUMENT", "the legs have different multipliers", "use one option class"
        )
    return multipliers.pop() if multipliers else 100


def years_to(expiry: str, today: dt.date) -> float:
    days = (dt.date.fromisoformat(expiry) - today).days
    return max(days, 0.5) / 365.0


def quoted_legs(
    built: BuiltStrategy, legs: LegQuotes, today: dt.date
) -> tuple[list[QuotedLeg], list[str]]:
    """Each built leg with its quote; ``missing`` names legs without a two-sided quote."""
    by_key: dict[tuple[str | None, float | None, str], ChainLegQuote] = {
        (q.key.expiry, q.key.strike, q.key.right): q for q in legs.legs
    }
    quoted: list[QuotedLeg] = []
    missing: list[str] = []
    for leg in built.legs:
        if not leg.is_option:
            u = legs.underlying
            quoted.append(QuotedLeg(leg=leg, quote=LegQuote(bid=u.bid, ask=u.ask, multiplier=1)))
            if u.bid is None or u.ask is None:
                missing.append(leg.describe())
            continue
        found = by_key[(leg.expiry, leg.strike, leg.right)]
        q = found.quote
        greeks = q.greeks if q is not None else None
        quoted.append(
            QuotedLeg(
                leg=leg,
                quote=LegQuote(
                    bid=q.bid if q else None,
                    ask=q.ask if q else None,
                    multiplier=round(found.contract.multiplier),
                    iv=(greeks.iv if greeks else None) or (q.implied_vol if q else None),
                    expiry_years=years_to(found.contract.expiry, today),
                    delta=greeks.delta if greeks else None,
                    gamma=greeks.gamma if greeks else None,
                    theta=greeks.theta if greeks else None,
                    vega=greeks.vega if greeks else None,
                ),
            )
        )
        if q is None or q.bid is None or q.ask is None:
            missing.append(leg.describe())
    return quoted, missing


def order_leg(leg: StrategyLeg, legs: LegQuotes) -> OrderLeg:
    if not leg.is_option:
        return OrderLeg(
            con_id=legs.stock.con_id,
            symbol=legs.stock.symbol,
            sec_type="STK",
            action=leg.action,
            ratio=leg.ratio,
            multiplier=1.0,
        )
    found = next(
        q.contract
        for q in legs.legs
        if (q.key.expiry, q.key.strike, q.key.right) == (leg.expiry, leg.strike, leg.right)
    )
    return OrderLeg(
        con_id=found.con_id,
        symbol=found.symbol,
        sec_type="OPT",
        action=leg.action,
        ratio=leg.ratio,
        multiplier=found.multiplier,
        expiry=found.expiry,
        strike=found.strike,
        right=found.right,
    )


def order_spec(
    built: BuiltStrategy, legs: LegQuotes, analysis: StrategyAnalysis, account_id: str
) -> OrderSpec:
    """The exact order: one leg at its own price per share (always positive), or a guaranteed
    combo at the net in IB's combo terms (positive debit).

    :raises ValueError: a stock leg without a stock mid (see ``wire_limit_price``).
    """
    order_legs = tuple(order_leg(leg, legs) for leg in built.legs)
    if len(order_legs) == 1:
        limit = round(abs(analysis.limit_price) / built.legs[0].ratio, 2)
    else:
        limit = wire_limit_price(
            analysis.limit_price, built.legs, built.multiplier, legs.underlying.mid
        )
    return OrderSpec(
        order_ref="",
        account=account_id,
        symbol=built.symbol,
        legs=order_legs,
        quantity=built.quantity,
        order_type="LMT",
        limit_price=limit,
        tif="DAY",
    )


def order_max_loss(analysis: StrategyAnalysis) -> float | None:
    """The loss the order adds: the position's max loss (with commission) less what held shares
    it is built on could lose anyway; ``None`` when unbounded."""
    total = analysis.max_loss_with_commission
    if total is None:
        total = analysis.max_loss
    if total is None:
        return None
    return max(0.0, total - analysis.held_shares_max_loss)


def data_type_of(legs: LegQuotes) -> DataType:
    kinds = {legs.underlying.data_type, legs.data_type} | {
        q.quote.data_type for q in legs.legs if q.quote is not None
    }
    if len(kinds) == 1:
        return kinds.pop()
    worst: tuple[DataType, ...] = ("delayed_frozen", "delayed", "frozen")
    return next((kind for kind in worst if kind in kinds), "live")


def quote_snapshot(built: BuiltStrategy, legs: LegQuotes) -> QuoteSnapshot:
    u = legs.underlying
    rows: list[LegSnapshot] = []
    by_key: dict[tuple[str | None, float | None, str], ChainLegQuote] = {
        (q.key.expiry, q.key.strike, q.key.right): q for q in legs.legs
    }
    for leg in built.legs:
        if not leg.is_option:
            rows.append(
                LegSnapshot(
                    con_id=legs.stock.con_id,
                    description=leg.describe(),
                    bid=u.bid,
                    ask=u.ask,
                    mid=u.mid,
                    ts=u.ts,
                )
            )
            continue
        found = by_key[(leg.expiry, leg.strike, leg.right)]
        q = found.quote
        rows.append(
            LegSnapshot(
                con_id=found.contract.con_id,
                description=leg.describe(),
                bid=q.bid if q else None,
                ask=q.ask if q else None,
                mid=q.mid if q else None,
                ts=q.ts if q else 0,
            )
        )
    stamps = [r.ts for r in rows if r.ts] + ([u.ts] if u.ts else [])
    return QuoteSnapshot(
        underlying_con_id=legs.stock.con_id,
        underlying_bid=u.bid,
        underlying_ask=u.ask,
        underlying_last=u.last,
        underlying_mid=u.mid,
        legs=tuple(rows),
        data_type=data_type_of(legs),
        ts=min(stamps, default=0),
    )


def chain_slice(chain: Chain, spot: float, today: dt.date) -> ChainSlice:
    strikes = sorted({r.strike for r in chain.rows})
    index = {k: i for i, k in enumerate(strikes)}
    n = len(strikes)
    cols = {name: np.full(n, np.nan) for name in ("cb", "ca", "pb", "pa", "civ", "piv", "cm", "pm")}

    def put(name: str, i: int, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            cols[name][i] = value

    for row in chain.rows:
        i = index[row.strike]
        if row.right == "C":
            put("cb", i, row.bid)
            put("ca", i, row.ask)
            put("civ", i, row.iv)
            put("cm", i, row.mid)
        else:
            put("pb", i, row.bid)
            put("pa", i, row.ask)
            put("piv", i, row.iv)
            put("pm", i, row.mid)
    return ChainSlice(
        expiry=chain.expiry,
        strikes=np.asarray(strikes, dtype=float),
        call_bid=cols["cb"],
        call_ask=cols["ca"],
        put_bid=cols["pb"],
        put_ask=cols["pa"],
        call_iv=cols["civ"],
        put_iv=cols["piv"],
        call_mid=cols["cm"],
        put_mid=cols["pm"],
        spot=spot,
        years=years_to(chain.expiry, today),
        multiplier=round(chain.multiplier),
    )
