"""Analysis of one order before it is sent: prices, net debit, exact risk, commission, greeks.

Price conventions (every function here):

* prices are per share; ``ratio`` is contracts per unit for options and shares per unit for stock;
* the net of an order is per unit in option-share terms, positive for a debit, negative for a
  credit: ``Σ sign · ratio · price · leg_multiplier / multiplier`` where ``multiplier`` is the
  options' contract multiplier. A buy-write (100 shares at 50.00, sell 1 call at 1.20) nets
  ``100 · 50.00 / 100 − 1.20 = 48.80``. Dollars for the whole order are
  ``net · quantity · multiplier``;
* the natural price buys at the ask and sells at the bid; the mid is ``(bid + ask) / 2`` unless a
  mid is given.

The risk figures (max loss, max gain, breakevens) come from
:func:`sumppump.quant.payoff.analyse_expiry` for the exact order at the limit price, so they scale
with quantity and multiplier and include stock legs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import msgspec
import numpy as np

from sumppump.quant.payoff import (
    PayoffLeg,
    analyse_expiry,
    expiry_pnl,
    pnl_surface,
)
from sumppump.quant.probability import probability_of_profit
from sumppump.strategies.model import StrategyLeg, StrategyRefused, is_count

__all__ = [
    "AggregateGreeks",
    "CommissionEstimate",
    "LegPricing",
    "LegQuote",
    "PnlProfile",
    "QuotedLeg",
    "StrategyAnalysis",
    "analyse_order",
    "default_limit_price",
    "estimate_commission",
    "order_tick",
    "round_to_tick",
]

OPTION_RATE = 0.65
"""IBKR Pro fixed: USD per contract for premiums >= 0.10 (0.50 from 0.05, 0.25 below 0.05)."""
OPTION_MIN_PER_ORDER = 1.00
STOCK_RATE = 0.005
STOCK_MIN_PER_ORDER = 1.00
STOCK_MAX_FRACTION = 0.01  # of trade value


class LegQuote(msgspec.Struct, frozen=True, kw_only=True):
    """Market data for one leg. Greeks are per share (IB/vollib units: theta per calendar day,
    vega per vol point). ``multiplier`` is 1 for stock."""

    bid: float | None = None
    ask: float | None = None
    mid: float | None = None
    multiplier: int
    iv: float | None = None
    expiry_years: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None


class QuotedLeg(msgspec.Struct, frozen=True, kw_only=True):
    leg: StrategyLeg
    quote: LegQuote


class LegPricing(msgspec.Struct, frozen=True, kw_only=True):
    """One leg as priced: ``position`` is signed contracts (shares for stock) for the whole order;
    ``natural`` is the ask for a buy and the bid for a sell."""

    leg: StrategyLeg
    position: int
    multiplier: int
    bid: float | None
    ask: float | None
    mid: float | None
    natural: float | None


class CommissionEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """IBKR Pro fixed-rate estimate for opening the order (IB's what-if is authoritative)."""

    total: float
    options: float
    stock: float
    contracts: int
    shares: int


class AggregateGreeks(msgspec.Struct, frozen=True, kw_only=True):
    """Greeks of the whole order in dollar terms: ``delta`` and ``gamma`` in share equivalents,
    ``theta`` dollars per calendar day, ``vega`` dollars per vol point."""

    delta: float
    gamma: float
    theta: float
    vega: float


class PnlProfile(msgspec.Struct, frozen=True, kw_only=True):
    """P&L in dollars over ``prices``: at expiry, and today when every option leg has iv and time
    (``today`` is ``None`` otherwise). ``prices`` include every kink and breakeven exactly."""

    prices: tuple[float, ...]
    at_expiry: tuple[float, ...]
    today: tuple[float, ...] | None = None


class StrategyAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``calculate_strategy`` reports about one order (dollars unless per unit).

    ``limit_price`` is the signed net per unit the order would be placed at (positive debit);
    ``net_debit_total = limit_price · quantity · multiplier`` (negative: a credit received).
    ``max_loss``/``max_gain`` are ``None`` when unbounded, and so is the ``hi`` of the last profit
    interval (JSON has no infinity); ``reward_risk = max_gain / max_loss``
    (``None`` when the gain is unbounded or nothing can be lost). ``max_loss_with_commission`` adds
    the opening commission. ``probability_of_profit`` is risk-neutral lognormal at expiry with
    ``pop_sigma`` (``None`` without a spot or a volatility). ``held_shares_included`` shares held
    are part of the figures, valued at the underlying price (the position, not only the order);
    ``held_shares_max_loss`` is what those shares alone could lose (their value), so the risk the
    order adds is ``max_loss - held_shares_max_loss``.
    """

    legs: tuple[LegPricing, ...]
    quantity: int
    multiplier: int
    tick: float
    net_mid: float | None
    net_natural: float | None
    limit_price: float
    limit_source: Literal["mid", "given"]
    net_debit_total: float
    max_loss: float | None
    max_gain: float | None
    breakevens: tuple[float, ...]
    profit_intervals: tuple[tuple[float, float | None], ...]
    reward_risk: float | None
    commission: CommissionEstimate
    max_loss_with_commission: float | None
    expiries: tuple[str, ...]
    days_to_expiry: int | None
    probability_of_profit: float | None
    pop_sigma: float | None
    greeks: AggregateGreeks | None
    profile: PnlProfile
    held_shares_included: int = 0
    held_shares_max_loss: float = 0.0
    warnings: tuple[str, ...] = ()


def _refuse(code: Literal["INVALID_ARGUMENT", "NO_MARKET_DATA"], msg: str, hint: str) -> None:
    raise StrategyRefused(code, msg, hint)


def order_tick(legs: Sequence[StrategyLeg], price: float) -> float:
    """Price increment for the order: a single option trades in 0.01 below $3 and 0.05 from $3;
    anything else (combos, stock legs) in 0.01."""
    if len(legs) == 1 and legs[0].right != "STK" and abs(price) >= 3.0:
        return 0.05
    return 0.01


def round_to_tick(price: float, tick: float) -> float:
    """``price`` rounded to the nearest multiple of ``tick`` (halves away from zero), exactly."""
    d_tick = Decimal(repr(tick))
    steps = (Decimal(repr(price)) / d_tick).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return float(steps * d_tick)


def _on_tick(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


def default_limit_price(legs: Sequence[StrategyLeg], net_mid: float) -> float:
    """The mid net rounded to the order's tick (:func:`order_tick`)."""
    return round_to_tick(net_mid, order_tick(legs, net_mid))


def _combo_multiplier(quoted: Sequence[QuotedLeg]) -> int:
    multipliers = {q.quote.multiplier for q in quoted if q.leg.right != "STK"}
    if not multipliers:
        _refuse("INVALID_ARGUMENT", "the order has no option legs", "add at least one option")
    if len(multipliers) > 1:
        _refuse(
            "INVALID_ARGUMENT",
            f"option legs with different multipliers {sorted(multipliers)}",
            "combine only contracts with the same multiplier",
        )
    return multipliers.pop()


def _mid(quote: LegQuote) -> float | None:
    if quote.mid is not None and math.isfinite(quote.mid):
        return quote.mid
    if quote.bid is not None and quote.ask is not None and quote.ask >= quote.bid >= 0:
        return (quote.bid + quote.ask) / 2
    return None


def _option_rate(premium: float | None) -> float:
    if premium is None or premium >= 0.10:
        return OPTION_RATE
    return 0.50 if premium >= 0.05 else 0.25


def estimate_commission(legs: Sequence[LegPricing]) -> CommissionEstimate:
    """IBKR Pro fixed: options USD 0.65 per contract (0.50 for premiums 0.05–0.10, 0.25 below),
    at least 1.00 per order; stock USD 0.005 per share, at least 1.00, at most 1 % of its value."""
    contracts = 0
    options = 0.0
    shares = 0
    stock_value = 0.0
    for lp in legs:
        units = abs(lp.position)
        if lp.leg.right == "STK":
            shares += units
            price = lp.mid if lp.mid is not None else lp.natural
            stock_value += units * (price or 0.0)
        else:
            contracts += units
            options += units * _option_rate(lp.mid if lp.mid is not None else lp.natural)
    if contracts:
        options = max(options, OPTION_MIN_PER_ORDER)
    stock = 0.0
    if shares:
        stock = max(shares * STOCK_RATE, STOCK_MIN_PER_ORDER)
        if stock_value > 0:
            stock = min(stock, STOCK_MAX_FRACTION * stock_value)
    return CommissionEstimate(
        total=round(options + stock, 2),
        options=round(options, 2),
        stock=round(stock, 2),
        contracts=contracts,
        shares=shares,
    )


def _payoff_legs(
    pricings: Sequence[LegPricing],
    quotes: Sequence[LegQuote],
    entry_prices: list[float],
    limit_total: float,
) -> list[PayoffLeg]:
    """Payoff legs whose premiums add up to exactly ``limit_total`` dollars.

    Each leg starts at its mid (or natural); the difference to the limit is carried by one leg in
    the direction that keeps every premium non-negative (a buy pays more, or a sell receives more).
    Only the sum matters to the expiry P&L.
    """
    signed = [lp.position * lp.multiplier for lp in pricings]
    diff = limit_total - sum(w * p for w, p in zip(signed, entry_prices, strict=True))
    if abs(diff) > 1e-12:
        candidates = [
            i
            for i, lp in enumerate(pricings)
            if lp.leg.right != "STK" and ((lp.position > 0) == (diff > 0))
        ] or [i for i, lp in enumerate(pricings) if lp.leg.right != "STK"]
        i = candidates[0]
        entry_prices[i] += diff / signed[i]
        if entry_prices[i] < 0:
            _refuse(
                "INVALID_ARGUMENT",
                "the limit price is beyond what the legs can be worth",
                "give a limit nearer the mid",
            )
    return [
        PayoffLeg(
            right=lp.leg.right,
            strike=lp.leg.strike,
            position=lp.position,
            multiplier=lp.multiplier,
            entry_price=price,
            expiry_years=q.expiry_years,
            iv=q.iv,
        )
        for lp, q, price in zip(pricings, quotes, entry_prices, strict=True)
    ]


def _profile_prices(kinks: Sequence[float], extra: Sequence[float], points: int) -> np.ndarray:
    anchors = [x for x in (*kinks, *extra) if math.isfinite(x) and x > 0]
    lo, hi = min(anchors), max(anchors)
    grid = np.linspace(max(lo * 0.7, 0.01), hi * 1.3, points)
    return np.unique(np.concatenate([grid, np.asarray(anchors, dtype=float)]))


def analyse_order(
    legs: Sequence[QuotedLeg],
    quantity: int,
    limit_price: float | None = None,
    *,
    underlying_price: float | None = None,
    held_shares: int = 0,
    atm_iv: float | None = None,
    today: dt.date | None = None,
    r: float = 0.0,
    q: float = 0.0,
    profile_points: int = 121,
) -> StrategyAnalysis:
    """Analyse ``legs`` (per unit, with quotes) traded ``quantity`` times at ``limit_price``.

    ``limit_price`` is the signed net per unit (positive debit); ``None`` takes the mid rounded to
    the tick. For an order whose mid is a credit a positive limit is read as that credit (a person
    selling a covered call at 1.25 means "receive 1.25"), with a warning saying so. The probability
    of profit uses ``atm_iv`` (else the mean iv of the option legs) and the nearest expiry.
    ``today`` defaults to the local date. ``held_shares`` are shares already held that the structure
    is built on (:attr:`BuiltStrategy.held_shares_included`): they join the payoff at
    ``underlying_price``, so a covered call on held shares shows the position's bounded risk rather
    than a naked call's. Does not apply the Level-2 rule (see :mod:`sumppump.strategies.coverage`).

    Raises :class:`StrategyRefused`: ``INVALID_ARGUMENT`` for quantity ≤ 0, no option legs,
    mixed multipliers, a limit off the tick or beyond what the legs can be worth, held shares
    without an underlying price;
    ``NO_MARKET_DATA`` when a leg has no usable price and no limit was given.
    """
    if not is_count(quantity) or quantity <= 0:
        _refuse("INVALID_ARGUMENT", f"quantity {quantity!r}", "a whole number of contracts > 0")
    if not legs:
        _refuse("INVALID_ARGUMENT", "no legs", "give the order's legs")
    multiplier = _combo_multiplier(legs)
    warnings: list[str] = []
    plain = [ql.leg for ql in legs]

    pricings: list[LegPricing] = []
    for ql in legs:
        leg, quote = ql.leg, ql.quote
        natural = quote.ask if leg.action == "BUY" else quote.bid
        pricings.append(
            LegPricing(
                leg=leg,
                position=leg.sign * leg.ratio * quantity,
                multiplier=quote.multiplier,
                bid=quote.bid,
                ask=quote.ask,
                mid=_mid(quote),
                natural=natural,
            )
        )

    def net(prices: Sequence[float | None]) -> float | None:
        total = 0.0
        for lp, p in zip(pricings, prices, strict=True):
            if p is None:
                return None
            total += lp.leg.sign * lp.leg.ratio * p * lp.multiplier / multiplier
        return total

    net_mid = net([lp.mid for lp in pricings])
    net_natural = net([lp.natural for lp in pricings])
    if limit_price is None:
        if net_mid is None:
            missing = [lp.leg.describe() for lp in pricings if lp.mid is None]
            raise StrategyRefused(
                "NO_MARKET_DATA",
                f"no bid/ask for {', '.join(missing)}",
                "give a limit_price, or retry when the market is quoting",
            )
        tick = order_tick(plain, net_mid)
        limit = round_to_tick(net_mid, tick)
        source: Literal["mid", "given"] = "mid"
    else:
        if not math.isfinite(limit_price):
            _refuse("INVALID_ARGUMENT", f"limit_price {limit_price!r}", "a price per unit")
        limit = float(limit_price)
        if net_mid is not None and net_mid < 0 < limit:
            limit = -limit
            warnings.append(f"limit {limit_price} read as a credit of {limit_price} per unit")
        tick = order_tick(plain, limit)
        if not _on_tick(limit, tick):
            lower = math.floor(round(limit / tick, 6)) * tick
            _refuse(
                "INVALID_ARGUMENT",
                f"limit {limit_price} is not a multiple of the tick {tick}",
                f"use {lower:.2f} or {lower + tick:.2f}",
            )
        source = "given"
        if net_natural is not None and limit > net_natural + 1e-9:
            warnings.append(
                f"limit {limit:.2f} is beyond the natural price {net_natural:.2f}: it would "
                "cross the market"
            )

    limit_total = limit * quantity * multiplier
    entry = [
        lp.mid if lp.mid is not None else (lp.natural if lp.natural is not None else 0.0)
        for lp in pricings
    ]
    quotes = [ql.quote for ql in legs]
    payoff_legs = _payoff_legs(pricings, quotes, entry, limit_total)
    if held_shares:
        if not is_count(held_shares) or held_shares < 0:
            _refuse("INVALID_ARGUMENT", f"held_shares {held_shares!r}", "a share count >= 0")
        if not (underlying_price and underlying_price > 0):
            _refuse("INVALID_ARGUMENT", "held shares need the underlying price", "pass the spot")
        payoff_legs.append(
            PayoffLeg(
                right="STK",
                position=held_shares,
                multiplier=1,
                entry_price=underlying_price,  # type: ignore[arg-type]
            )
        )
    profile = analyse_expiry(payoff_legs)

    commission = estimate_commission(pricings)
    reward_risk = None
    if profile.max_gain is not None and profile.max_loss is not None and profile.max_loss > 0:
        reward_risk = profile.max_gain / profile.max_loss
    if profile.max_gain is not None and profile.max_gain <= 0:
        warnings.append("at this price the structure cannot make money at expiry")
    if profile.max_loss is None:
        warnings.append("the loss is unbounded")

    expiries = tuple(sorted({leg.expiry for leg in plain if leg.expiry is not None}))
    if len(expiries) > 1:
        warnings.append(
            "legs expire on different dates: the expiry figures value every leg at intrinsic "
            "on one date"
        )
    day = today or dt.date.today()
    days_to_expiry = (dt.date.fromisoformat(expiries[0]) - day).days if expiries else None

    option_quotes = [ql.quote for ql in legs if ql.leg.right != "STK"]
    ivs = [oq.iv for oq in option_quotes if oq.iv is not None]
    years = [oq.expiry_years for oq in option_quotes if oq.expiry_years is not None]
    sigma = atm_iv if atm_iv is not None else (sum(ivs) / len(ivs) if ivs else None)
    t_pop = min(years) if years else (days_to_expiry / 365 if days_to_expiry else None)
    pop = None
    if underlying_price and sigma and t_pop and underlying_price > 0 and sigma > 0 and t_pop > 0:
        pop = float(
            probability_of_profit(underlying_price, profile.profit_intervals, t_pop, sigma, r, q)
        )

    greeks = None
    if all(None not in (oq.delta, oq.gamma, oq.theta, oq.vega) for oq in option_quotes):
        totals = [0.0, 0.0, 0.0, 0.0]
        for ql, lp in zip(legs, pricings, strict=True):
            units = lp.position * lp.multiplier
            if ql.leg.right == "STK":
                totals[0] += units
                continue
            for j, g in enumerate((ql.quote.delta, ql.quote.gamma, ql.quote.theta, ql.quote.vega)):
                totals[j] += units * g  # type: ignore[operator]
        totals[0] += held_shares
        greeks = AggregateGreeks(delta=totals[0], gamma=totals[1], theta=totals[2], vega=totals[3])

    extra = [*profile.breakevens]
    if underlying_price:
        extra.append(underlying_price)
    prices = _profile_prices(profile.kinks, extra, profile_points)
    today_pnl = None
    if all(p.right == "STK" or (p.iv is not None and p.expiry_years is not None)
           for p in payoff_legs):  # fmt: skip
        today_pnl = tuple(float(v) for v in pnl_surface(payoff_legs, prices, [0.0], r, q)[0])
    pnl_profile = PnlProfile(
        prices=tuple(float(p) for p in prices),
        at_expiry=tuple(float(v) for v in expiry_pnl(payoff_legs, prices)),
        today=today_pnl,
    )
    for lp in pricings:
        quoted = lp.bid is not None and lp.ask is not None and lp.mid and lp.leg.right != "STK"
        if quoted and (lp.ask - lp.bid) > max(0.25 * lp.mid, 0.10):  # type: ignore[operator]
            warnings.append(f"wide market on {lp.leg.describe()}: {lp.bid:.2f} x {lp.ask:.2f}")

    max_loss_c = None if profile.max_loss is None else profile.max_loss + commission.total
    return StrategyAnalysis(
        legs=tuple(pricings),
        quantity=quantity,
        multiplier=multiplier,
        tick=tick,
        net_mid=net_mid,
        net_natural=net_natural,
        limit_price=limit,
        limit_source=source,
        net_debit_total=limit_total,
        max_loss=profile.max_loss,
        max_gain=profile.max_gain,
        breakevens=profile.breakevens,
        profit_intervals=tuple(
            (lo, None if math.isinf(hi) else hi) for lo, hi in profile.profit_intervals
        ),
        reward_risk=reward_risk,
        commission=commission,
        max_loss_with_commission=max_loss_c,
        expiries=expiries,
        days_to_expiry=days_to_expiry,
        probability_of_profit=pop,
        pop_sigma=sigma,
        greeks=greeks,
        profile=pnl_profile,
        held_shares_included=held_shares,
        held_shares_max_loss=held_shares * (underlying_price or 0.0),
        warnings=tuple(warnings),
    )
