"""P&L surface at intermediate dates: agrees with leg-by-leg pricing and with the expiry payoff."""

from __future__ import annotations

import numpy as np
import pytest

from sumppump.quant import bsm
from sumppump.quant.payoff import PayoffLeg, expiry_pnl, pnl_surface

R, Q = 0.04, 0.01


def iron_condor() -> list[PayoffLeg]:
    t = 30 / 365

    def leg(right: str, k: float, pos: int, price: float, iv: float) -> PayoffLeg:
        return PayoffLeg(
            right=right,  # type: ignore[arg-type]
            strike=k,
            position=pos,
            multiplier=100,
            entry_price=price,
            expiry_years=t,
            iv=iv,
        )

    return [
        leg("P", 540, 2, 2.0, 0.22),
        leg("P", 570, -2, 4.1, 0.19),
        leg("C", 630, -2, 3.9, 0.15),
        leg("C", 660, 2, 1.1, 0.14),
    ]


def test_surface_at_expiry_equals_the_expiry_payoff() -> None:
    legs = iron_condor()
    prices = np.linspace(450, 750, 301)
    surface = pnl_surface(legs, prices, [30 / 365, 40 / 365], R, Q)
    np.testing.assert_allclose(surface[0], expiry_pnl(legs, prices), atol=1e-9)
    np.testing.assert_allclose(surface[1], expiry_pnl(legs, prices), atol=1e-9)


def test_surface_today_is_the_sum_of_each_leg_priced_alone() -> None:
    legs = iron_condor()
    prices = np.array([500.0, 555.0, 600.0, 645.0, 700.0])
    horizon = 10 / 365
    expected = np.zeros_like(prices)
    for leg in legs:
        assert leg.expiry_years is not None and leg.iv is not None
        for i, s in enumerate(prices):
            value = float(
                bsm.price(
                    s,
                    leg.strike,
                    leg.expiry_years - horizon,
                    R,
                    leg.iv,
                    Q,
                    is_call=leg.right == "C",
                )
            )
            expected[i] += leg.position * leg.multiplier * (value - leg.entry_price)
    got = pnl_surface(legs, prices, [horizon], R, Q)
    assert got.shape == (1, prices.size)
    np.testing.assert_allclose(got[0], expected, rtol=1e-10, atol=1e-8)


def test_legs_expiring_at_different_dates_switch_to_intrinsic_one_by_one() -> None:
    near = PayoffLeg(
        right="C",
        strike=100,
        position=-1,
        multiplier=100,
        entry_price=2.0,
        expiry_years=0.1,
        iv=0.3,
    )
    far = PayoffLeg(
        right="C", strike=100, position=1, multiplier=100, entry_price=4.0, expiry_years=0.3, iv=0.3
    )
    s = np.array([90.0, 100.0, 110.0])
    got = pnl_surface([near, far], s, [0.2], R)[0]
    near_intrinsic = np.maximum(s - 100, 0.0)
    far_value = bsm.price(s, 100.0, 0.1, R, 0.3, 0.0, is_call=True)
    expected = -100 * (near_intrinsic - 2.0) + 100 * (far_value - 4.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_stock_legs_move_one_for_one() -> None:
    shares = PayoffLeg(right="STK", position=300, multiplier=1, entry_price=50.0)
    got = pnl_surface([shares], [40.0, 55.0], [0.0, 0.5], R)
    np.testing.assert_allclose(got, [[-3000.0, 1500.0], [-3000.0, 1500.0]])


def test_option_legs_without_iv_or_time_are_refused() -> None:
    bare = PayoffLeg(right="C", strike=100, position=1, multiplier=100, entry_price=2.0)
    with pytest.raises(ValueError):
        pnl_surface([bare], [100.0], [0.0], R)
    with pytest.raises(ValueError):
        pnl_surface(iron_condor(), [0.0, 100.0], [0.0], R)
