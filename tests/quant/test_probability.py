"""Lognormal probabilities: against the price (digital = −dC/dK), Monte Carlo, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.quant import bsm
from sumppump.quant.probability import (
    probability_above,
    probability_of_profit,
    validate_intervals,
)


def test_risk_neutral_probability_above_is_the_discounted_digital_from_call_prices() -> None:
    """P(S_T > K) = −e^{rT} ∂C/∂K under the pricing measure: an independent route via prices."""
    S, T, r, q, sigma = 100.0, 0.6, 0.04, 0.015, 0.3
    K = np.linspace(60.0, 160.0, 26)
    dk = 1e-3
    digital = -(
        bsm.price(S, K + dk, T, r, sigma, q, is_call=True)
        - bsm.price(S, K - dk, T, r, sigma, q, is_call=True)
    ) / (2 * dk)
    expected = digital * math.exp(r * T)
    np.testing.assert_allclose(probability_above(S, K, T, sigma, r, q), expected, atol=1e-8)


def test_user_drift_matches_a_seeded_monte_carlo_within_sampling_error() -> None:
    S, T, sigma, drift = 100.0, 0.5, 0.25, 0.12
    rng = np.random.default_rng(123)
    n = 400_000
    terminal = S * np.exp(
        (drift - 0.5 * sigma**2) * T + sigma * math.sqrt(T) * rng.standard_normal(n)
    )
    intervals = ((0.0, 85.0), (95.0, 105.0), (120.0, math.inf))
    empirical = np.mean(
        ((terminal > 0) & (terminal < 85)) | ((terminal > 95) & (terminal < 105)) | (terminal > 120)
    )
    exact = float(probability_of_profit(S, intervals, T, sigma, r=0.05, q=0.0, drift=drift))
    se = math.sqrt(exact * (1 - exact) / n)
    assert abs(empirical - exact) < 4 * se
    # and the drift is used: above the spot, 12 % drift beats risk-neutral 5 % by ~5 points
    upside = ((105.0, math.inf),)
    with_drift = float(probability_of_profit(S, upside, T, sigma, r=0.05, drift=drift))
    risk_neutral = float(probability_of_profit(S, upside, T, sigma, r=0.05))
    assert with_drift - risk_neutral > 0.04
    assert with_drift == pytest.approx(np.mean(terminal > 105.0), abs=4 * se)


def test_drift_none_means_rate_minus_dividend_yield() -> None:
    a = probability_above(100.0, 105.0, 1.0, 0.2, r=0.05, q=0.02)
    b = probability_above(100.0, 105.0, 1.0, 0.2, r=0.0, q=0.0, drift=0.03)
    assert float(a) == pytest.approx(float(b), rel=1e-15)


def test_complementary_intervals_sum_to_one_and_match_probability_above() -> None:
    S, T, sigma = 50.0, 0.25, 0.4
    below = probability_of_profit(S, [(0.0, 48.0)], T, sigma, 0.03)
    above = probability_of_profit(S, [(48.0, math.inf)], T, sigma, 0.03)
    assert float(below + above) == pytest.approx(1.0, abs=1e-15)
    assert float(above) == pytest.approx(
        float(probability_above(S, 48.0, T, sigma, 0.03)), abs=1e-15
    )
    everything = probability_of_profit(S, [(0.0, math.inf)], T, sigma)
    assert float(everything) == 1.0


def test_levels_at_zero_and_infinity_and_zero_volatility_are_answered_exactly() -> None:
    p = probability_above(100.0, [0.0, -5.0, math.inf], 1.0, 0.3)
    np.testing.assert_array_equal(p, [1.0, 1.0, 0.0])
    # no volatility (or no time): the forward decides
    forward = 100.0 * math.exp(0.05)
    p = probability_above(100.0, [forward - 1e-9, forward + 1e-9], 1.0, 0.0, r=0.05)
    np.testing.assert_array_equal(p, [1.0, 0.0])
    expired = probability_above(100.0, [99.0, 101.0], 0.0, 0.3)
    np.testing.assert_array_equal(expired, [1.0, 0.0])


def test_invalid_inputs_are_nan_per_element() -> None:
    p = probability_above(
        np.array([100.0, -1.0, 100.0, 100.0]), 100.0, [1.0, 1.0, -1.0, 1.0], [0.2, 0.2, 0.2, -0.2]
    )
    assert math.isfinite(p[0])
    assert np.isnan(p[1:]).all()


def test_probability_of_profit_broadcasts_over_scenarios() -> None:
    vols = np.array([0.1, 0.2, 0.4])[:, None]
    spots = np.array([90.0, 100.0])
    p = probability_of_profit(spots, [(95.0, 110.0)], 0.5, vols)
    assert p.shape == (3, 2)
    assert float(p[1, 1]) == pytest.approx(
        float(probability_of_profit(100.0, [(95.0, 110.0)], 0.5, 0.2)), rel=1e-15
    )
    assert (probability_of_profit(spots, [], 0.5, vols) == 0.0).all()


@pytest.mark.parametrize(
    "intervals",
    [
        [(10.0, 5.0)],
        [(-1.0, 5.0)],
        [(5.0, 5.0)],
        [(0.0, 10.0), (8.0, 12.0)],
        [(20.0, 30.0), (0.0, 10.0)],
        [(math.nan, 1.0)],
        [(math.inf, math.inf)],
    ],
)
def test_malformed_intervals_are_refused(intervals: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError, match="interval"):
        validate_intervals(intervals)
    with pytest.raises(ValueError):
        probability_of_profit(100.0, intervals, 1.0, 0.2)


def test_touching_intervals_are_accepted() -> None:
    assert validate_intervals([(0, 10), (10, 20)]) == ((0.0, 10.0), (10.0, 20.0))


@settings(max_examples=150, deadline=None)
@given(
    st.floats(10.0, 500.0),
    st.floats(1.0, 1000.0),
    st.floats(1.0, 1000.0),
    st.floats(1 / 365, 3.0),
    st.floats(0.01, 2.0),
)
def test_probability_above_decreases_with_the_level_and_stays_in_the_unit_interval(
    S: float, l1: float, l2: float, T: float, sigma: float
) -> None:
    lo, hi = sorted((l1, l2))
    p = probability_above(S, np.array([lo, hi]), T, sigma, 0.03, 0.01)
    assert 0.0 <= p[1] <= p[0] <= 1.0
