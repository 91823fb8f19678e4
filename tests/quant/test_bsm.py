"""BSM price and Greeks: against vollib, parity, finite differences, edge cases, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.quant import bsm

S0, R0, Q0 = 600.0, 0.045, 0.013


@pytest.fixture(params=["small-array loop", "array kernel"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through both array paths: a few options go through the per-element math loop,
    many through the numpy kernel; force the kernel by lowering the loop's size limit to 0."""
    if request.param == "array kernel":
        monkeypatch.setattr(bsm, "_SCALAR_LOOP_MAX", 0)
    return str(request.param)


def random_options(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "K": S0 * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n)),
        "T": np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n)),
        "sigma": np.exp(rng.uniform(math.log(0.05), math.log(3.0), n)),
        "is_call": rng.random(n) < 0.5,
    }


def test_price_and_greeks_match_vollib_analytical_on_a_random_sample() -> None:
    from vollib.black_scholes_merton import black_scholes_merton
    from vollib.black_scholes_merton.greeks import analytical

    o = random_options(300, seed=1)
    g = bsm.greeks(S0, o["K"], o["T"], R0, o["sigma"], Q0, is_call=o["is_call"])
    rows = list(
        zip(
            o["K"].tolist(),
            o["T"].tolist(),
            o["sigma"].tolist(),
            o["is_call"].tolist(),
            strict=True,
        )
    )
    oracle = {
        "price": black_scholes_merton,
        "delta": analytical.delta,
        "gamma": analytical.gamma,
        "theta": analytical.theta,
        "vega": analytical.vega,
        "rho": analytical.rho,
    }
    for field, fn in oracle.items():
        expected = np.array([fn("c" if c else "p", S0, k, t, R0, s, Q0) for k, t, s, c in rows])
        ours = getattr(g, field)
        scale = np.maximum(np.abs(expected), 1.0)
        assert np.max(np.abs(ours - expected) / scale) < 1e-10, field


def test_put_call_parity_holds_across_strikes_expiries_and_vols() -> None:
    o = random_options(2000, seed=2)
    call = bsm.price(S0, o["K"], o["T"], R0, o["sigma"], Q0, is_call=True)
    put = bsm.price(S0, o["K"], o["T"], R0, o["sigma"], Q0, is_call=False)
    forward_value = S0 * np.exp(-Q0 * o["T"]) - o["K"] * np.exp(-R0 * o["T"])
    assert np.max(np.abs(call - put - forward_value)) < 1e-10 * S0


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_agree_with_central_finite_differences_of_the_price(is_call: bool) -> None:
    rng = np.random.default_rng(3)
    n = 200
    K = S0 * rng.uniform(0.8, 1.25, n)
    T = rng.uniform(7 / 365, 1.5, n)
    sigma = rng.uniform(0.1, 0.8, n)

    def p(S: float | np.ndarray = S0, T_: np.ndarray = T, r: float = R0, s: np.ndarray = sigma):
        return bsm.price(S, K, T_, r, s, Q0, is_call=is_call)

    g = bsm.greeks(S0, K, T, R0, sigma, Q0, is_call=is_call)
    h = 0.01  # dollars: truncation ~h², rounding ~eps·V/h² both far below the tolerance
    np.testing.assert_allclose(g.delta, (p(S0 + h) - p(S0 - h)) / (2 * h), atol=1e-7)
    np.testing.assert_allclose(g.gamma, (p(S0 + h) - 2 * p() + p(S0 - h)) / h**2, atol=1e-6)
    dv = 1e-5
    vega_fd = (p(s=sigma + dv) - p(s=sigma - dv)) / (2 * dv) / 100
    np.testing.assert_allclose(g.vega, vega_fd, rtol=1e-6, atol=1e-8)
    dr = 1e-6
    rho_fd = (p(r=R0 + dr) - p(r=R0 - dr)) / (2 * dr) / 100
    np.testing.assert_allclose(g.rho, rho_fd, rtol=1e-6, atol=1e-8)
    dt = 1e-6
    theta_fd = -(p(T_=T + dt) - p(T_=T - dt)) / (2 * dt) / 365  # calendar decay per day
    np.testing.assert_allclose(g.theta, theta_fd, rtol=1e-5, atol=1e-8)


def test_expired_options_are_worth_intrinsic_with_unit_delta_and_no_other_greeks(
    kernel_path: str,
) -> None:
    K = np.array([90.0, 100.0, 110.0])
    call = bsm.greeks(100.0, K, 0.0, 0.05, 0.2, 0.01, is_call=True)
    put = bsm.greeks(100.0, K, 0.0, 0.05, 0.2, 0.01, is_call=False)
    np.testing.assert_array_equal(call.price, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(put.price, [0.0, 0.0, 10.0])
    np.testing.assert_array_equal(call.delta, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(put.delta, [0.0, 0.0, -1.0])
    for g in (call, put):
        for field in ("gamma", "theta", "vega", "rho"):
            np.testing.assert_array_equal(getattr(g, field), 0.0)


def test_expired_scalar_option_takes_the_same_conventions_as_arrays() -> None:
    g = bsm.greeks(105.0, 100.0, 0.0, 0.05, 0.3, is_call=True)
    assert (float(g.price), float(g.delta), float(g.gamma), float(g.theta)) == (5.0, 1.0, 0.0, 0.0)
    g = bsm.greeks(95.0, 100.0, 0.0, 0.05, 0.3, is_call=False)
    assert (float(g.price), float(g.delta), float(g.vega), float(g.rho)) == (5.0, -1.0, 0.0, 0.0)


def test_zero_volatility_is_the_deterministic_discounted_forward_payoff(kernel_path: str) -> None:
    S, T, r, q = 100.0, 0.5, 0.05, 0.01
    K = np.array([90.0, 100.0, 120.0])
    g = bsm.greeks(S, K, T, r, 0.0, q, is_call=True)
    expected = np.maximum(S * math.exp(-q * T) - K * math.exp(-r * T), 0.0)
    np.testing.assert_allclose(g.price, expected, rtol=1e-15)
    np.testing.assert_allclose(g.delta, np.where(expected > 0, math.exp(-q * T), 0.0))
    np.testing.assert_array_equal(g.gamma, 0.0)
    np.testing.assert_array_equal(g.vega, 0.0)
    # theta of the deterministic value: d/dt of (S e^{-q(T-t)} - K e^{-r(T-t)}) per day
    itm_theta = (q * S * math.exp(-q * T) - r * K * math.exp(-r * T)) / 365
    np.testing.assert_allclose(g.theta, np.where(expected > 0, itm_theta, 0.0))
    # the limit matches a tiny positive vol
    np.testing.assert_allclose(
        bsm.price(S, K, T, r, 1e-9, q, is_call=True), expected, rtol=0, atol=1e-12
    )


def test_invalid_elements_are_nan_and_do_not_spoil_their_neighbours(kernel_path: str) -> None:
    S = np.array([100.0, -1.0, 100.0, 100.0, 100.0, np.nan])
    K = np.array([100.0, 100.0, 0.0, 100.0, 100.0, 100.0])
    T = np.array([0.5, 0.5, 0.5, -0.1, 0.5, 0.5])
    sigma = np.array([0.2, 0.2, 0.2, 0.2, -0.2, 0.2])
    g = bsm.greeks(S, K, T, 0.03, sigma, is_call=True)
    for field in g:
        assert np.isfinite(field[0])
        assert np.isnan(field[1:]).all()
    assert np.isnan(float(bsm.price(100.0, 100.0, -1.0, 0.03, 0.2, is_call=False)))


def test_scalar_path_agrees_with_the_array_path_and_returns_0d_arrays() -> None:
    o = random_options(100, seed=4)
    arr = bsm.greeks(S0, o["K"], o["T"], R0, o["sigma"], Q0, is_call=o["is_call"])
    for i in range(100):
        one = bsm.greeks(
            S0,
            float(o["K"][i]),
            float(o["T"][i]),
            R0,
            float(o["sigma"][i]),
            Q0,
            is_call=bool(o["is_call"][i]),
        )
        for field_arr, field_one in zip(arr, one, strict=True):
            assert isinstance(field_one, np.ndarray)
            assert field_one.shape == ()
            assert float(field_one) == pytest.approx(field_arr[i], rel=1e-12, abs=1e-12)
    p = bsm.price(S0, 610.0, 0.1, R0, 0.2, Q0, is_call=True)
    assert p.shape == ()
    assert float(p) == pytest.approx(
        float(bsm.greeks(S0, 610.0, 0.1, R0, 0.2, Q0, is_call=True)[0])
    )


def test_arguments_broadcast_to_a_grid(kernel_path: str) -> None:
    spots = np.linspace(80, 120, 5)[:, None]
    vols = np.array([0.1, 0.2, 0.3])[None, :]
    is_call = np.array([True, False, True])
    g = bsm.greeks(spots, 100.0, 0.25, 0.02, vols, is_call=is_call)
    assert all(field.shape == (5, 3) for field in g)
    assert float(g.price[2, 1]) == pytest.approx(
        float(bsm.price(100.0, 100.0, 0.25, 0.02, 0.2, is_call=False)), rel=1e-14
    )


def test_erfc_and_erfcx_match_independent_references_to_full_precision() -> None:
    from scipy import special

    x = np.concatenate((np.linspace(-6, 27, 4001), [0.0, 0.46875, -0.46875, 4.0, -4.0]))
    ref = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(bsm.erfc(x), ref, rtol=2e-15)
    xs = np.linspace(-5.0, 1e3, 3001)
    np.testing.assert_allclose(bsm.erfcx(xs), special.erfcx(xs), rtol=4e-15)
    np.testing.assert_array_equal(bsm.erfc([np.inf, -np.inf]), [0.0, 2.0])
    assert np.isnan(bsm.erfc([np.nan])).all()
    assert bsm.erfcx([-30.0])[0] == np.inf
    np.testing.assert_allclose(
        bsm.norm_cdf([-30.0])[0], 0.5 * math.erfc(30 / math.sqrt(2)), rtol=1e-14
    )


finite_vol = st.floats(0.01, 2.0)
spot = st.floats(20.0, 500.0)
years = st.floats(1 / 365, 3.0)


@settings(max_examples=150, deadline=None)
@given(spot, st.floats(20.0, 500.0), years, finite_vol, finite_vol, st.booleans())
def test_price_increases_with_volatility(
    S: float, K: float, T: float, s1: float, s2: float, is_call: bool
) -> None:
    lo, hi = sorted((s1, s2))
    p_lo = float(bsm.price(S, K, T, 0.03, lo, 0.01, is_call=is_call))
    p_hi = float(bsm.price(S, K, T, 0.03, hi, 0.01, is_call=is_call))
    assert p_hi >= p_lo - 1e-12 * S


@settings(max_examples=150, deadline=None)
@given(spot, spot, st.floats(20.0, 500.0), years, finite_vol)
def test_call_rises_and_put_falls_with_the_underlying(
    S1: float, S2: float, K: float, T: float, sigma: float
) -> None:
    lo, hi = sorted((S1, S2))
    c = bsm.price(np.array([lo, hi]), K, T, 0.03, sigma, 0.01, is_call=True)
    p = bsm.price(np.array([lo, hi]), K, T, 0.03, sigma, 0.01, is_call=False)
    assert c[1] >= c[0] - 1e-12 * hi
    assert p[1] <= p[0] + 1e-12 * hi


@settings(max_examples=200, deadline=None)
@given(spot, st.floats(20.0, 500.0), years, finite_vol, st.floats(-0.02, 0.1), st.booleans())
def test_price_lies_within_the_no_arbitrage_bounds(
    S: float, K: float, T: float, sigma: float, r: float, is_call: bool
) -> None:
    q = 0.015
    g = bsm.greeks(S, K, T, r, sigma, q, is_call=is_call)
    sdq, kdr = S * math.exp(-q * T), K * math.exp(-r * T)
    lower = max(sdq - kdr, 0.0) if is_call else max(kdr - sdq, 0.0)
    upper = sdq if is_call else kdr
    tol = 1e-12 * max(S, K)
    assert lower - tol <= float(g.price) <= upper + tol
    assert float(g.gamma) >= 0.0
    assert float(g.vega) >= 0.0
    assert (0.0 <= float(g.delta) <= 1.0) if is_call else (-1.0 <= float(g.delta) <= 0.0)
