"""Implied volatility: accuracy against vollib, round trips, every outcome, edge grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.quant import bsm
from sumppump.quant.iv import IVStatus, implied_vol

S0 = 100.0


def vollib_iv(price: float, S: float, K: float, T: float, r: float, q: float, call: bool) -> float:
    """vollib's answer, NaN where it raises (below intrinsic / above maximum)."""
    from vollib.black_scholes_merton.implied_volatility import implied_volatility

    try:
        return float(implied_volatility(price, S, K, T, r, q, "c" if call else "p"))
    except Exception:
        return math.nan


def well_posed(price: np.ndarray, vega_per_point: np.ndarray) -> np.ndarray:
    """σ is determined to 1e-9 by a float64 price (ε·price/vega < 1e-9) and the price is a
    normal double (subnormal prices carry fewer bits than the comparison needs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.finfo(float).eps * price / (vega_per_point * 100.0)
    return (cond < 1e-9) & (price >= np.finfo(float).tiny)


def test_matches_vollib_on_a_sample_of_the_issue_grid_and_round_trips() -> None:
    """Moneyness 0.5–2, T 1 day–2 y, σ 5 %–300 %, r and q varying; prices from vollib."""
    from vollib.black_scholes_merton import black_scholes_merton

    rng = np.random.default_rng(11)
    n = 1500
    K = S0 * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    T = np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    call = rng.random(n) < 0.5
    r = rng.uniform(0.0, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    columns = (K.tolist(), T.tolist(), sigma.tolist(), call.tolist(), r.tolist(), q.tolist())
    rows = list(zip(*columns, strict=True))
    price = np.array(
        [
            black_scholes_merton("c" if c else "p", S0, k, t, rr, s, qq)
            for k, t, s, c, rr, qq in rows
        ]
    )
    theirs = np.array(
        [
            vollib_iv(p, S0, k, t, rr, qq, c)
            for p, (k, t, _, c, rr, qq) in zip(price, rows, strict=True)
        ]
    )
    res = implied_vol(price, S0, K, T, r, q, is_call=call)

    vollib_solves = np.isfinite(theirs) & (theirs > 0)  # vollib returns 0 for no time value
    vega = bsm.greeks(S0, K, T, r, sigma, q, is_call=call).vega
    compare = vollib_solves & well_posed(price, vega)
    assert compare.sum() > 1200
    assert (res.status[compare] == IVStatus.SOLVED).all()
    assert np.max(np.abs(res.sigma[compare] - theirs[compare])) <= 1e-8

    solved = res.status == IVStatus.SOLVED
    repriced = bsm.price(S0, K, T, r, res.sigma, q, is_call=call)
    assert np.max(np.abs(repriced[solved] - price[solved])) <= 1e-9 * S0
    # what we do not solve is never a silent NaN: it has a reason, and vollib has no better one
    assert set(np.unique(res.status[~solved]).tolist()) <= {IVStatus.NO_TIME_VALUE}
    assert np.isnan(res.sigma[~solved]).all()
    assert not (vollib_solves & ~solved & well_posed(price, vega)).any()


def test_edge_grid_of_pricing_notes_near_expiry_and_deep_in_and_out_of_the_money() -> None:
    """notes/pricing.md §6: t 1 h–3 y × σ 5 %–200 % × standardised moneyness −8…8."""
    from vollib.black_scholes_merton import black_scholes_merton

    S, r, q = 600.0, 0.045, 0.013
    cases = []
    for t in (1 / 8760, 4 / 8760, 1 / 365, 2 / 365, 7 / 365, 30 / 365, 1.0, 3.0):
        for s in (0.05, 0.1, 0.3, 1.0, 2.0):
            fwd = S * math.exp((r - q) * t)
            for m in np.linspace(-8, 8, 17):
                K = fwd * math.exp(m * s * math.sqrt(t))
                if 1e-3 * S < K < 1e3 * S:
                    cases += [(K, t, s, True), (K, t, s, False)]
    K, T, sigma, call = (np.array(c) for c in zip(*cases, strict=True))
    price = np.array(
        [
            black_scholes_merton("c" if c else "p", S, k, t, r, s, q)
            for k, t, s, c in zip(
                K.tolist(), T.tolist(), sigma.tolist(), call.tolist(), strict=True
            )
        ]
    )
    res = implied_vol(price, S, K, T, r, q, is_call=call)
    vega = bsm.greeks(S, K, T, r, sigma, q, is_call=call).vega
    wp = well_posed(price, vega)
    assert wp.sum() > 1000
    assert (res.status[wp] == IVStatus.SOLVED).all()
    assert np.max(np.abs(res.sigma[wp] - sigma[wp])) < 1e-8
    # the rest is either solved (and reprices) or explicitly has no usable time value
    rest = ~wp
    assert np.isin(res.status[rest], [IVStatus.SOLVED, IVStatus.NO_TIME_VALUE]).all()
    ok = res.status == IVStatus.SOLVED
    repriced = bsm.price(S, K, T, r, res.sigma, q, is_call=call)
    assert np.max(np.abs(repriced[ok] - price[ok])) <= 1e-9 * S


def test_each_outcome_is_reported_with_nan_sigma_except_solved() -> None:
    S, K, T, r, q = 100.0, 90.0, 0.5, 0.05, 0.02
    fwd = S * math.exp((r - q) * T)
    disc = math.exp(-r * T)
    intrinsic = (fwd - K) * disc
    prices = [
        float(bsm.price(S, K, T, r, 0.25, q, is_call=True)),  # solved
        intrinsic - 0.01,  # below intrinsic
        -1.0,  # negative price: below intrinsic too
        S * math.exp(-q * T),  # at the upper bound
        intrinsic,  # exactly intrinsic: no time value
        intrinsic * (1 + 1e-16),  # time value below rounding of the price
        math.nan,  # invalid
    ]
    res = implied_vol(prices, S, K, T, r, q, is_call=True)
    assert res.status.tolist() == [
        IVStatus.SOLVED,
        IVStatus.BELOW_INTRINSIC,
        IVStatus.BELOW_INTRINSIC,
        IVStatus.ABOVE_UPPER_BOUND,
        IVStatus.NO_TIME_VALUE,
        IVStatus.NO_TIME_VALUE,
        IVStatus.INVALID_INPUT,
    ]
    assert res.sigma[0] == pytest.approx(0.25, abs=1e-12)
    assert np.isnan(res.sigma[1:]).all()


def test_put_upper_bound_is_the_discounted_strike() -> None:
    K, T, r = 120.0, 1.0, 0.05
    res = implied_vol(
        [K * math.exp(-r * T), K * math.exp(-r * T) * 0.999], 100.0, K, T, r, is_call=False
    )
    assert res.status.tolist() == [IVStatus.ABOVE_UPPER_BOUND, IVStatus.SOLVED]
    assert res.sigma[1] > 1.0


def test_expired_options_have_no_time_value_or_cannot_carry_any() -> None:
    # S = 110, K = 100: intrinsic 10 for the call, 0 for the put
    call = implied_vol([10.0, 10.5, 9.5], 110.0, 100.0, 0.0, 0.05, is_call=True)
    assert call.status.tolist() == [
        IVStatus.NO_TIME_VALUE,
        IVStatus.ABOVE_UPPER_BOUND,
        IVStatus.BELOW_INTRINSIC,
    ]
    put = implied_vol([0.0, 0.1], 110.0, 100.0, 0.0, 0.05, is_call=False)
    assert put.status.tolist() == [IVStatus.NO_TIME_VALUE, IVStatus.ABOVE_UPPER_BOUND]
    one = implied_vol(0.1, 110.0, 100.0, 0.0, 0.05, is_call=False)
    assert int(one.status) == IVStatus.ABOVE_UPPER_BOUND


def test_price_a_rounding_error_below_intrinsic_has_no_time_value_not_an_arbitrage() -> None:
    S, K, T, r = 100.0, 50.0, 0.01, 0.03
    intrinsic = S - K * math.exp(-r * T)
    res = implied_vol([intrinsic * (1 - 2e-16), intrinsic - 1e-6], S, K, T, r, is_call=True)
    assert res.status.tolist() == [IVStatus.NO_TIME_VALUE, IVStatus.BELOW_INTRINSIC]


def test_prices_a_hair_below_the_upper_bound_solve_to_huge_vols() -> None:
    S, K, T, r, q = 100.0, 100.0, 1.0, 0.03, 0.01
    bound = K * math.exp(-r * T)
    prices = np.array([bound * (1 - 1e-15), bound * (1 - 1e-9), bound * 0.99])
    res = implied_vol(prices, S, K, T, r, q, is_call=False)
    assert (res.status == IVStatus.SOLVED).all()
    assert res.sigma[0] > res.sigma[1] > res.sigma[2] > 4.0
    back = bsm.price(S, K, T, r, res.sigma, q, is_call=False)
    np.testing.assert_allclose(back, prices, rtol=1e-14)
    one = implied_vol(float(prices[0]), S, K, T, r, q, is_call=False)
    assert float(one.sigma) == pytest.approx(res.sigma[0], rel=1e-10)


def test_invalid_inputs_are_flagged_per_element() -> None:
    res = implied_vol(
        [5.0, 5.0, 5.0, 5.0, 5.0, np.inf],
        [100.0, -100.0, 100.0, 100.0, np.nan, 100.0],
        [100.0, 100.0, 0.0, 100.0, 100.0, 100.0],
        [0.5, 0.5, 0.5, -0.5, 0.5, 0.5],
        0.03,
        is_call=True,
    )
    assert res.status.tolist() == [IVStatus.SOLVED] + [IVStatus.INVALID_INPUT] * 5


def test_iteration_limit_reports_not_converged_not_a_wrong_number() -> None:
    K = np.linspace(60, 160, 40)
    price = bsm.price(100.0, K, 0.3, 0.02, 0.9, is_call=True)
    res = implied_vol(price, 100.0, K, 0.3, 0.02, is_call=True, max_iterations=1)
    not_converged = res.status == IVStatus.NOT_CONVERGED
    assert not_converged.any()
    assert np.isnan(res.sigma[not_converged]).all()
    solved = res.status == IVStatus.SOLVED
    np.testing.assert_allclose(res.sigma[solved], 0.9, atol=1e-10)
    one = implied_vol(float(price[0]), 100.0, 60.0, 0.3, 0.02, is_call=True, max_iterations=1)
    assert int(one.status) in (IVStatus.NOT_CONVERGED, IVStatus.SOLVED)


def test_calls_and_puts_of_one_strike_give_one_vol_through_parity() -> None:
    S, T, r, q = 100.0, 0.75, 0.04, 0.01
    K = np.linspace(50, 200, 61)
    call = bsm.price(S, K, T, r, 0.35, q, is_call=True)
    put = call - S * math.exp(-q * T) + K * math.exp(-r * T)
    a = implied_vol(call, S, K, T, r, q, is_call=True)
    b = implied_vol(put, S, K, T, r, q, is_call=False)
    ok = (a.status == IVStatus.SOLVED) & (b.status == IVStatus.SOLVED)
    assert ok.sum() > 55
    np.testing.assert_allclose(a.sigma[ok], b.sigma[ok], atol=1e-9)


def test_cent_rounded_quotes_below_intrinsic_are_the_ones_vollib_rejects() -> None:
    S, r, q = 600.0, 0.045, 0.013
    rng = np.random.default_rng(5)
    n = 300
    K = rng.uniform(450, 750, n)
    T = rng.choice([1 / 365, 7 / 365, 30 / 365, 0.5], n)
    call = rng.random(n) < 0.5
    quote = np.round(bsm.price(S, K, T, r, 0.15, q, is_call=call), 2)
    res = implied_vol(quote, S, K, T, r, q, is_call=call)
    theirs = np.array(
        [
            vollib_iv(p, S, k, t, r, q, c)
            for p, k, t, c in zip(
                quote.tolist(), K.tolist(), T.tolist(), call.tolist(), strict=True
            )
        ]
    )
    below = res.status == IVStatus.BELOW_INTRINSIC
    assert below.any()
    np.testing.assert_array_equal(below, np.isnan(theirs))
    both = (res.status == IVStatus.SOLVED) & (theirs > 0)
    np.testing.assert_allclose(res.sigma[both], theirs[both], atol=1e-8)


def test_scalar_small_array_and_large_array_paths_agree() -> None:
    rng = np.random.default_rng(9)
    n = 40
    K = rng.uniform(70, 140, n)
    T = rng.uniform(0.01, 2.0, n)
    sigma = rng.uniform(0.05, 1.5, n)
    call = rng.random(n) < 0.5
    price = bsm.price(100.0, K, T, 0.03, sigma, 0.01, is_call=call)
    big = implied_vol(price, 100.0, K, T, 0.03, 0.01, is_call=call)
    small = implied_vol(price[:3], 100.0, K[:3], T[:3], 0.03, 0.01, is_call=call[:3])
    np.testing.assert_allclose(small.sigma, big.sigma[:3], rtol=1e-12)
    for i in range(n):
        one = implied_vol(
            float(price[i]), 100.0, float(K[i]), float(T[i]), 0.03, 0.01, is_call=bool(call[i])
        )
        assert one.sigma.shape == ()
        assert int(one.status) == int(big.status[i])
        if int(one.status) == IVStatus.SOLVED:
            assert float(one.sigma) == pytest.approx(float(big.sigma[i]), rel=1e-12)


def test_result_has_the_broadcast_shape() -> None:
    K = np.array([[90.0], [110.0]])
    T = np.array([0.25, 0.5, 1.0])
    price = bsm.price(100.0, K, T, 0.01, 0.3, is_call=False)
    res = implied_vol(price, 100.0, K, T, 0.01, is_call=False)
    assert res.sigma.shape == (2, 3)
    assert res.status.shape == (2, 3)
    np.testing.assert_allclose(res.sigma, 0.3, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.5, 2.0),
    st.floats(1 / 365, 2.0),
    st.floats(0.05, 3.0),
    st.booleans(),
    st.floats(0.0, 1.0),
)
def test_any_price_strictly_inside_the_bounds_is_solved_or_has_no_usable_time_value(
    moneyness: float, T: float, sigma_guess: float, is_call: bool, where: float
) -> None:
    """Pick a price anywhere between the bounds (not only BSM prices of nice vols)."""
    S, K, r, q = 100.0, 100.0 * moneyness, 0.03, 0.01
    sdq, kdr = S * math.exp(-q * T), K * math.exp(-r * T)
    lower = max(sdq - kdr, 0.0) if is_call else max(kdr - sdq, 0.0)
    upper = sdq if is_call else kdr
    price = lower + where * (upper - lower)
    if not lower < price < upper:
        return
    res = implied_vol(price, S, K, T, r, q, is_call=is_call)
    status = IVStatus(int(res.status))
    assert status in (IVStatus.SOLVED, IVStatus.NO_TIME_VALUE)
    if status is IVStatus.SOLVED:
        assert math.isfinite(float(res.sigma))
        back = float(bsm.price(S, K, T, r, float(res.sigma), q, is_call=is_call))
        assert abs(back - price) <= 1e-9 * S
    del sigma_guess


@settings(max_examples=100, deadline=None)
@given(st.floats(0.6, 1.8), st.floats(2 / 365, 2.0), st.floats(0.05, 2.0), st.floats(0.05, 2.0))
def test_implied_vol_is_monotonic_in_price(m: float, T: float, s1: float, s2: float) -> None:
    K = 100.0 * m
    prices = bsm.price(100.0, K, T, 0.02, np.array(sorted((s1, s2))), is_call=True)
    res = implied_vol(prices, 100.0, K, T, 0.02, is_call=True)
    if (res.status == IVStatus.SOLVED).all():
        assert res.sigma[1] >= res.sigma[0] - 1e-9


def test_a_spy_like_chain_needs_at_most_eight_sweeps() -> None:
    """Regression: a converged step that rounded onto its bracket end used to trigger bisection
    (12+ sweeps for deep-OTM long-dated low-vol options such as this 1185 put, 728 days)."""
    rng = np.random.default_rng(21)
    n = 3000
    S, r, q = 600.0, 0.045, 0.013
    K = S * np.exp(rng.uniform(math.log(0.4), math.log(2.0), n))
    T = np.exp(rng.uniform(math.log(4 / 8760), math.log(2.5), n))
    sigma = rng.uniform(0.098, 0.54, n)
    call = rng.random(n) < 0.5
    K[0], T[0], sigma[0], call[0] = 1185.0, 728 / 365, 0.09938054083047747, False
    price = bsm.price(S, K, T, r, sigma, q, is_call=call)
    res = implied_vol(price, S, K, T, r, q, is_call=call, max_iterations=8)
    assert not (res.status == IVStatus.NOT_CONVERGED).any()
    assert res.status[0] == IVStatus.SOLVED
    one = implied_vol(
        float(price[0]), S, 1185.0, float(T[0]), r, q, is_call=False, max_iterations=8
    )
    assert int(one.status) == IVStatus.SOLVED
    assert float(one.sigma) == pytest.approx(sigma[0], abs=1e-10)
