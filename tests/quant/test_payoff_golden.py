"""Exact expiry payoff on hand-computed cases (arithmetic written out from first principles)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sumppump.quant.payoff import PayoffLeg, analyse_expiry, expiry_pnl


def call(k: float, pos: float, price: float, mult: float = 100) -> PayoffLeg:
    return PayoffLeg(right="C", strike=k, position=pos, multiplier=mult, entry_price=price)


def put(k: float, pos: float, price: float, mult: float = 100) -> PayoffLeg:
    return PayoffLeg(right="P", strike=k, position=pos, multiplier=mult, entry_price=price)


def stock(shares: float, price: float) -> PayoffLeg:
    return PayoffLeg(right="STK", position=shares, multiplier=1, entry_price=price)


@pytest.mark.parametrize("q", [1, 3])
def test_bull_call_spread_figures_scale_with_quantity_but_breakeven_does_not(q: int) -> None:
    p = analyse_expiry([call(100, q, 2.10), call(105, -q, 0.85)])
    assert p.max_loss == pytest.approx((2.10 - 0.85) * 100 * q)
    assert p.max_gain == pytest.approx((105 - 100 - (2.10 - 0.85)) * 100 * q)
    assert p.breakevens == pytest.approx((100 + 2.10 - 0.85,))
    assert p.kinks == (100.0, 105.0)
    assert p.slope_beyond == 0.0


def test_breakeven_is_the_exact_decimal_not_a_sampled_neighbour() -> None:
    p = analyse_expiry([call(100, 1, 2.10), call(105, -1, 0.85)])
    assert p.breakevens == (101.25,)  # exact: 100 + 1.25, no float noise
    assert expiry_pnl([call(100, 1, 2.10), call(105, -1, 0.85)], [101.25])[0] == pytest.approx(
        0.0, abs=1e-9
    )


def test_multiplier_is_taken_from_the_leg_not_assumed() -> None:
    mini = analyse_expiry([call(100, 2, 2.10, mult=10)])
    assert mini.max_loss == pytest.approx(2.10 * 10 * 2)
    assert mini.breakevens == pytest.approx((102.10,))


def test_long_put_gain_is_finite_at_zero() -> None:
    p = analyse_expiry([put(50, 2, 1.20)])
    assert p.max_gain == pytest.approx((50 - 1.20) * 100 * 2)
    assert p.pnl_at_zero == pytest.approx((50 - 1.20) * 100 * 2)
    assert p.profit_intervals[0] == pytest.approx((0.0, 50 - 1.20))
    assert p.breakevens == pytest.approx((48.80,))


def test_naked_short_call_loss_is_unbounded_and_short_put_is_bounded() -> None:
    naked_call = analyse_expiry([call(100, -1, 2.0)])
    assert naked_call.max_loss is None and naked_call.max_gain == pytest.approx(200.0)
    naked_put = analyse_expiry([put(100, -1, 2.0)])
    assert naked_put.max_loss == pytest.approx((100 - 2.0) * 100)


def test_long_stock_loss_is_bounded_by_zero_price() -> None:
    p = analyse_expiry([stock(100, 50.0)])
    assert p.max_loss == pytest.approx(50.0 * 100)
    assert p.max_gain is None
    assert p.breakevens == (50.0,)
    assert p.kinks == ()


def test_strangle_profit_intervals_are_both_tails() -> None:
    p = analyse_expiry([put(95, 1, 1.45), call(105, 1, 0.85)])
    assert p.breakevens == pytest.approx((95 - 2.30, 105 + 2.30))
    assert p.profit_intervals[0] == pytest.approx((0.0, 92.70))
    assert p.profit_intervals[1][0] == pytest.approx(107.30)
    assert math.isinf(p.profit_intervals[1][1])


def test_exact_zero_best_case_is_zero_not_float_noise() -> None:
    # a 5-wide spread bought for exactly 5.00 can never profit: max gain 0, no breakevens
    p = analyse_expiry([call(100, 1, 5.10), call(105, -1, 0.10)])
    assert p.max_gain == 0.0
    assert p.breakevens == ()
    assert p.profit_intervals == ()


def test_touching_zero_at_a_kink_is_not_a_breakeven() -> None:
    # long call 100 and long put 100 bought for 0 (degenerate): P&L = |S - 100| * 100, touches 0 at
    # the strike and is positive on both sides
    p = analyse_expiry([call(100, 1, 0.0), put(100, 1, 0.0)])
    assert p.breakevens == ()
    assert p.profit_intervals == ((0.0, math.inf),)
    assert p.max_loss == 0.0


def test_empty_legs_are_rejected() -> None:
    with pytest.raises(ValueError):
        analyse_expiry([])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"right": "C", "strike": None},
        {"right": "C", "strike": -5.0},
        {"right": "STK", "strike": 100.0},
        {"right": "C", "strike": 100.0, "multiplier": 0},
        {"right": "C", "strike": 100.0, "entry_price": -1.0},
        {"right": "C", "strike": 100.0, "position": math.nan},
    ],
)
def test_inconsistent_legs_are_rejected(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"position": 1, "multiplier": 100, "entry_price": 1.0}
    with pytest.raises(ValueError):
        PayoffLeg(**{**base, **kwargs})  # type: ignore[arg-type]


def test_expiry_pnl_keeps_the_shape_of_prices() -> None:
    legs = [call(100, 1, 2.0)]
    grid = np.array([[90.0, 110.0], [100.0, 102.0]])
    out = expiry_pnl(legs, grid)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[-200.0, 800.0], [-200.0, 0.0]])
