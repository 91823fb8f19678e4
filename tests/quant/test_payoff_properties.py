"""Properties of the exact expiry analysis over random allowed Level-2 structures.

Structures are composed of allowed blocks (long options, debit verticals, covered calls, protective
puts, collars, bought stock) at a random quantity and multiplier, with random premiums. The Level-2
rule must accept every one of them, and the analysis must agree with plain numpy evaluation of the
expiry P&L (a separate code path from the rational arithmetic of ``analyse_expiry``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.quant.payoff import PayoffLeg, analyse_expiry, expiry_pnl
from sumppump.strategies.coverage import check_coverage
from sumppump.strategies.model import StrategyLeg

EXPIRY = "2026-12-18"
strikes = st.integers(min_value=2, max_value=600).map(lambda k: k / 2)  # 1.0 .. 300.0 by 0.5
premiums = st.integers(min_value=1, max_value=3000).map(lambda c: c / 100)  # 0.01 .. 30.00


@st.composite
def block(draw: st.DrawFn, multiplier: int) -> list[tuple[StrategyLeg, float]]:
    """One allowed building block: legs per unit with a premium (stock: price) each."""
    kind = draw(st.sampled_from(["long", "vertical", "covered", "protective", "collar", "stock"]))
    k1, k2 = sorted(draw(st.lists(strikes, min_size=2, max_size=2, unique=True)))

    def opt(action: str, right: str, k: float) -> StrategyLeg:
        return StrategyLeg(action=action, right=right, strike=k, expiry=EXPIRY)  # type: ignore[arg-type]

    shares = StrategyLeg(action="BUY", right="STK", ratio=multiplier)
    spot = draw(premiums) * 10
    if kind == "long":
        return [(opt("BUY", draw(st.sampled_from(["C", "P"])), k1), draw(premiums))]
    if kind == "vertical":
        if draw(st.booleans()):
            return [(opt("BUY", "C", k1), draw(premiums)), (opt("SELL", "C", k2), draw(premiums))]
        return [(opt("BUY", "P", k2), draw(premiums)), (opt("SELL", "P", k1), draw(premiums))]
    if kind == "covered":
        return [(shares, spot), (opt("SELL", "C", k1), draw(premiums))]
    if kind == "protective":
        return [(shares, spot), (opt("BUY", "P", k1), draw(premiums))]
    if kind == "collar":
        return [
            (shares, spot),
            (opt("BUY", "P", k1), draw(premiums)),
            (opt("SELL", "C", k2), draw(premiums)),
        ]
    return [(shares, spot)]


@st.composite
def allowed_structure(draw: st.DrawFn) -> tuple[list[tuple[StrategyLeg, float]], int, int]:
    multiplier = draw(st.sampled_from([100, 10, 1000]))
    quantity = draw(st.integers(min_value=1, max_value=10))
    legs: list[tuple[StrategyLeg, float]] = []
    seen: set[tuple[str, float | None]] = set()
    stock_price: float | None = None
    for blk in draw(st.lists(block(multiplier), min_size=1, max_size=3)):
        keys = {(leg.right, leg.strike) for leg, _ in blk if leg.right != "STK"}
        if keys & seen:
            continue  # one contract once per order; a block is kept whole or not at all
        seen |= keys
        for leg, price in blk:
            if leg.right == "STK":
                if stock_price is not None:  # one stock leg, summed ratio, one price
                    legs = [
                        (StrategyLeg(action="BUY", right="STK", ratio=lg.ratio + leg.ratio), p)
                        if lg.right == "STK"
                        else (lg, p)
                        for lg, p in legs
                    ]
                    continue
                stock_price = price
            legs.append((leg, price))
    return legs, quantity, multiplier


def to_payoff(legs: list[tuple[StrategyLeg, float]], qty: int, mult: int) -> list[PayoffLeg]:
    return [
        PayoffLeg(
            right=leg.right,
            strike=leg.strike,
            position=leg.sign * leg.ratio * qty,
            multiplier=1 if leg.right == "STK" else mult,
            entry_price=price,
        )
        for leg, price in legs
    ]


def scale_of(payoff: list[PayoffLeg]) -> float:
    top = max([leg.strike or 0.0 for leg in payoff] + [leg.entry_price for leg in payoff])
    return sum(abs(leg.position * leg.multiplier) for leg in payoff) * (top + 1.0)


def candidate_points(payoff: list[PayoffLeg]) -> np.ndarray:
    kinks = [leg.strike for leg in payoff if leg.strike is not None]
    return np.array([0.0, *kinks], dtype=float)


@settings(max_examples=300, deadline=None)
@given(allowed_structure())
def test_allowed_structures_pass_the_level2_rule_and_never_lose_without_bound(
    structure: tuple[list[tuple[StrategyLeg, float]], int, int],
) -> None:
    legs, qty, mult = structure
    verdict = check_coverage([leg for leg, _ in legs], qty, multiplier=mult)
    assert verdict.allowed, verdict.reason
    profile = analyse_expiry(to_payoff(legs, qty, mult))
    assert profile.max_loss is not None  # bounded: at worst the stock goes to zero


@settings(max_examples=300, deadline=None)
@given(allowed_structure())
def test_max_loss_and_gain_are_the_extremes_over_kinks_and_tails(
    structure: tuple[list[tuple[StrategyLeg, float]], int, int],
) -> None:
    legs, qty, mult = structure
    payoff = to_payoff(legs, qty, mult)
    profile = analyse_expiry(payoff)
    points = candidate_points(payoff)
    values = expiry_pnl(payoff, points)
    far = max(points) * 4 + 1000.0
    tail_slope = expiry_pnl(payoff, [far + 1.0])[0] - expiry_pnl(payoff, [far])[0]
    tol = 1e-9 * scale_of(payoff)
    if tail_slope < -tol:
        assert profile.max_loss is None
    else:
        assert profile.max_loss is not None
        assert math.isclose(profile.max_loss, -values.min(), rel_tol=1e-9, abs_tol=tol)
    if tail_slope > tol:
        assert profile.max_gain is None
    else:
        assert profile.max_gain is not None
        assert math.isclose(profile.max_gain, values.max(), rel_tol=1e-9, abs_tol=tol)
    # and no sampled price does better or worse than the reported extremes
    grid = np.linspace(0.0, far, 4001)
    sampled = expiry_pnl(payoff, grid)
    if profile.max_loss is not None:
        assert sampled.min() >= -profile.max_loss - tol
    if profile.max_gain is not None:
        assert sampled.max() <= profile.max_gain + tol


@settings(max_examples=300, deadline=None)
@given(allowed_structure())
def test_breakevens_are_zeros_and_the_sign_alternates_between_them(
    structure: tuple[list[tuple[StrategyLeg, float]], int, int],
) -> None:
    legs, qty, mult = structure
    payoff = to_payoff(legs, qty, mult)
    profile = analyse_expiry(payoff)
    scale = scale_of(payoff)
    bes = list(profile.breakevens)
    assert bes == sorted(bes)
    for b in bes:
        assert abs(expiry_pnl(payoff, [b])[0]) < 1e-6 * scale
    # sign of each region between consecutive breakevens (and the two ends) is constant
    edges = [0.0, *bes, (bes[-1] if bes else max(candidate_points(payoff))) * 3 + 100.0]
    signs = []
    for lo, hi in itertools.pairwise(edges):
        inner = np.linspace(lo, hi, 23)[1:-1]
        pnl = expiry_pnl(payoff, inner)
        tol = 1e-9 * scale
        assert not (pnl.max() > tol and pnl.min() < -tol), (lo, hi, pnl)
        signs.append(1 if pnl.max() > tol else -1)
    for left, right in itertools.pairwise(signs):
        assert left != right  # every breakeven is a crossing
    # profit intervals are exactly the positive regions
    for (lo, hi), sign in zip(itertools.pairwise(edges), signs, strict=True):
        mid = (lo + hi) / 2
        inside = any(a < mid < b for a, b in profile.profit_intervals)
        assert inside == (sign > 0)


@settings(max_examples=200, deadline=None)
@given(allowed_structure(), st.integers(min_value=2, max_value=7))
def test_scaling_quantity_scales_money_and_keeps_breakevens(
    structure: tuple[list[tuple[StrategyLeg, float]], int, int], k: int
) -> None:
    legs, qty, mult = structure
    one = analyse_expiry(to_payoff(legs, qty, mult))
    many = analyse_expiry(to_payoff(legs, qty * k, mult))
    assert many.breakevens == one.breakevens
    assert many.profit_intervals == one.profit_intervals
    for a, b in ((one.max_loss, many.max_loss), (one.max_gain, many.max_gain)):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert math.isclose(b, a * k, rel_tol=1e-12, abs_tol=1e-9)
