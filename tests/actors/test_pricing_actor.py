"""The pricing actor on asyncio and trio: typed replies, per-element status, rejections."""

from __future__ import annotations

import math
import subprocess
import sys

import anyio
import msgspec
import numpy as np
import pytest

from sumppump.actors.pricing import PricingActor
from sumppump.actors.runtime import start_actor
from sumppump.messages.base import Command
from sumppump.messages.common import Ping, Pong
from sumppump.messages.pricing import (
    ChainGreeks,
    ChainGreeksResult,
    ImpliedVols,
    ImpliedVolsResult,
    PnlGrid,
    PnlGridResult,
    PricingRejected,
    PricingRequest,
    ProbabilityOfProfit,
    ProbabilityOfProfitResult,
)
from sumppump.quant import bsm, payoff, probability
from sumppump.quant.payoff import PayoffLeg

pytestmark = pytest.mark.anyio

SPOT, RATE, DIV = 600.0, 0.045, 0.013


def chain_slice(n: int, seed: int = 1) -> tuple[tuple[float, ...], ...]:
    rng = np.random.default_rng(seed)
    strikes = tuple(np.round(rng.uniform(450, 750, n)).tolist())
    years = tuple(rng.choice([0.0, 1 / 365, 7 / 365, 30 / 365, 0.5], n).tolist())
    sigmas = tuple(rng.uniform(0.1, 0.5, n).tolist())
    rights = tuple("C" if c else "P" for c in (rng.random(n) < 0.5).tolist())
    return strikes, years, sigmas, rights


async def ask(msg: Command, **actor_kwargs: int) -> object:
    with anyio.fail_after(20):
        async with start_actor(lambda: PricingActor(**actor_kwargs), name="pricing") as ref:
            return await ref.call(msg, timeout=15)


async def test_chain_greeks_are_the_bsm_kernels_as_plain_float_tuples() -> None:
    strikes, years, sigmas, rights = chain_slice(50)
    reply = await ask(
        ChainGreeks(
            spot=SPOT,
            rate=RATE,
            dividend_yield=DIV,
            strikes=strikes,
            years=years,
            rights=rights,
            sigmas=sigmas,
        )
    )
    assert isinstance(reply, ChainGreeksResult)
    is_call = np.array([r == "C" for r in rights])
    g = bsm.greeks(
        SPOT, np.array(strikes), np.array(years), RATE, np.array(sigmas), DIV, is_call=is_call
    )
    for field in ("price", "delta", "gamma", "theta", "vega", "rho"):
        values = getattr(reply, field)
        assert isinstance(values, tuple)
        assert all(type(v) is float for v in values)
        np.testing.assert_array_equal(values, getattr(g, field))
    assert reply.source == ("bsm",) * 50
    # expired contracts in the slice are worth intrinsic with no time decay
    for k, t, right, price, theta in zip(
        strikes, years, rights, reply.price, reply.theta, strict=True
    ):
        if t == 0.0:
            assert price == (max(SPOT - k, 0.0) if right == "C" else max(k - SPOT, 0.0))
            assert theta == 0.0
    # the reply is JSON-ready as is
    assert msgspec.json.decode(msgspec.json.encode(reply), type=ChainGreeksResult) == reply


async def test_implied_vols_carry_a_status_and_source_per_element() -> None:
    years = (30 / 365,) * 5
    strikes = (550.0, 600.0, 650.0, 500.0, 600.0)
    rights = ("P", "C", "C", "C", "C")
    good = [
        float(bsm.price(SPOT, k, years[0], RATE, 0.2, DIV, is_call=r == "C"))
        for k, r in zip(strikes[:3], rights[:3], strict=True)
    ]
    below_intrinsic = SPOT - 500.0 * math.exp(-RATE * years[0]) - 1.0
    above_bound = SPOT
    reply = await ask(
        ImpliedVols(
            spot=SPOT,
            rate=RATE,
            dividend_yield=DIV,
            strikes=strikes,
            years=years,
            rights=rights,
            prices=(*good, below_intrinsic, above_bound),
        )
    )
    assert isinstance(reply, ImpliedVolsResult)
    assert reply.status == ("solved",) * 3 + ("below_intrinsic", "above_upper_bound")
    assert reply.source == ("solver",) * 3 + ("none", "none")
    assert reply.sigma[3:] == (None, None)
    for s in reply.sigma[:3]:
        assert s == pytest.approx(0.2, abs=1e-12)


async def test_elements_the_fast_solver_leaves_unsolved_are_retried_with_vollib() -> None:
    """One Halley iteration is not enough for most elements: they come back from vollib."""
    strikes = tuple(float(k) for k in range(520, 700, 10))
    n = len(strikes)
    prices = tuple(
        float(p) for p in bsm.price(SPOT, np.array(strikes), 0.25, RATE, 0.6, DIV, is_call=True)
    )
    reply = await ask(
        ImpliedVols(
            spot=SPOT,
            rate=RATE,
            dividend_yield=DIV,
            strikes=strikes,
            years=(0.25,) * n,
            rights=("C",) * n,
            prices=prices,
        ),
        iv_max_iterations=1,
    )
    assert isinstance(reply, ImpliedVolsResult)
    assert "vollib" in reply.source
    assert reply.status == ("solved",) * n
    for s, src in zip(reply.sigma, reply.source, strict=True):
        assert src in ("solver", "vollib")
        assert s == pytest.approx(0.6, abs=1e-9)


async def test_pnl_grid_delegates_to_the_payoff_surface() -> None:
    legs = (
        PayoffLeg(
            right="P",
            strike=540.0,
            position=1,
            multiplier=100,
            entry_price=2.1,
            expiry_years=30 / 365,
            iv=0.21,
        ),
        PayoffLeg(
            right="P",
            strike=570.0,
            position=-1,
            multiplier=100,
            entry_price=5.0,
            expiry_years=30 / 365,
            iv=0.18,
        ),
        PayoffLeg(
            right="C",
            strike=630.0,
            position=-1,
            multiplier=100,
            entry_price=4.2,
            expiry_years=30 / 365,
            iv=0.14,
        ),
        PayoffLeg(
            right="C",
            strike=660.0,
            position=1,
            multiplier=100,
            entry_price=0.9,
            expiry_years=30 / 365,
            iv=0.13,
        ),
    )
    prices = tuple(np.linspace(480.0, 720.0, 41).tolist())
    horizons = (0.0, 10 / 365, 30 / 365)
    reply = await ask(
        PnlGrid(legs=legs, prices=prices, horizons_years=horizons, rate=RATE, dividend_yield=DIV)
    )
    assert isinstance(reply, PnlGridResult)
    expected = payoff.pnl_surface(list(legs), prices, horizons, RATE, DIV)
    np.testing.assert_array_equal(np.array(reply.pnl), expected)
    assert len(reply.pnl) == 3
    assert all(len(row) == 41 for row in reply.pnl)
    # at expiry the iron condor's P&L is the exact payoff
    np.testing.assert_allclose(reply.pnl[2], payoff.expiry_pnl(list(legs), prices), atol=1e-9)


async def test_probability_of_profit_is_given_risk_neutral_and_with_the_users_drift() -> None:
    msg = ProbabilityOfProfit(
        spot=100.0,
        years=0.5,
        sigma=0.25,
        rate=0.05,
        dividend_yield=0.01,
        profit_intervals=((0.0, 90.0), (112.5, None)),
        drift=0.15,
    )
    reply = await ask(msg)
    assert isinstance(reply, ProbabilityOfProfitResult)
    intervals = ((0.0, 90.0), (112.5, math.inf))
    assert reply.risk_neutral == pytest.approx(
        float(probability.probability_of_profit(100.0, intervals, 0.5, 0.25, 0.05, 0.01))
    )
    assert reply.with_drift == pytest.approx(
        float(probability.probability_of_profit(100.0, intervals, 0.5, 0.25, drift=0.15))
    )
    assert reply.with_drift != reply.risk_neutral
    no_drift = await ask(
        ProbabilityOfProfit(
            spot=100.0, years=0.5, sigma=0.25, rate=0.05, profit_intervals=((95.0, None),)
        )
    )
    assert isinstance(no_drift, ProbabilityOfProfitResult)
    assert no_drift.with_drift is None


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (
            ChainGreeks(
                spot=100.0,
                rate=0.01,
                strikes=(100.0, 90.0),
                years=(0.5,),
                rights=("C", "P"),
                sigmas=(0.2, 0.2),
            ),
            "years has 1 elements",
        ),
        (
            ChainGreeks(
                spot=-5.0, rate=0.01, strikes=(100.0,), years=(0.5,), rights=("C",), sigmas=(0.2,)
            ),
            "spot must be > 0",
        ),
        (
            ChainGreeks(
                spot=100.0,
                rate=0.01,
                strikes=(100.0, math.nan),
                years=(0.5, 0.5),
                rights=("C", "C"),
                sigmas=(0.2, 0.2),
            ),
            "strikes[1]",
        ),
        (
            ChainGreeks(spot=100.0, rate=0.01, strikes=(), years=(), rights=(), sigmas=()),
            "no options",
        ),
        (
            ImpliedVols(
                spot=100.0, rate=0.01, strikes=(100.0,), years=(-1.0,), rights=("C",), prices=(5.0,)
            ),
            "years[0]",
        ),
        (
            ImpliedVols(
                spot=100.0,
                rate=math.inf,
                strikes=(100.0,),
                years=(1.0,),
                rights=("C",),
                prices=(5.0,),
            ),
            "rate must be a finite number",
        ),
        (
            PnlGrid(
                legs=(
                    PayoffLeg(right="C", strike=100.0, position=1, multiplier=100, entry_price=1.0),
                ),
                prices=(100.0,),
                horizons_years=(0.0,),
                rate=0.0,
            ),
            "needs expiry_years and iv",
        ),
        (PnlGrid(legs=(), prices=(100.0,), horizons_years=(0.0,), rate=0.0), "no legs"),
        (
            ProbabilityOfProfit(
                spot=100.0,
                years=1.0,
                sigma=0.2,
                rate=0.0,
                profit_intervals=((110.0, 120.0), (90.0, None)),
            ),
            "interval 1",
        ),
        (
            ProbabilityOfProfit(spot=100.0, years=1.0, sigma=-0.2, rate=0.0, profit_intervals=()),
            "sigma must be >= 0",
        ),
    ],
)
async def test_invalid_requests_are_rejected_with_a_reason_not_an_exception(
    msg: Command, reason: str
) -> None:
    with anyio.fail_after(10):
        async with start_actor(PricingActor, name="pricing") as ref:
            reply = await ref.call(msg, timeout=5)
            assert isinstance(reply, PricingRejected)
            assert reason in reply.reason
            assert reply.request == type(msg).__name__
            # the actor is still serving
            assert isinstance(await ref.call(Ping(), timeout=5), Pong)


async def test_large_requests_run_off_the_event_loop_with_the_same_answer() -> None:
    strikes, years, sigmas, rights = chain_slice(300, seed=4)
    prices = tuple(
        float(v)
        for v in bsm.price(
            SPOT,
            np.array(strikes),
            np.array(years),
            RATE,
            np.array(sigmas),
            DIV,
            is_call=np.array([r == "C" for r in rights]),
        )
    )
    msg = ImpliedVols(
        spot=SPOT,
        rate=RATE,
        dividend_yield=DIV,
        strikes=strikes,
        years=years,
        rights=rights,
        prices=prices,
    )
    inline = await ask(msg)
    threaded = await ask(msg, thread_threshold=10)
    assert inline == threaded
    assert isinstance(inline, ImpliedVolsResult)
    assert inline.status.count("solved") > 200


async def test_requests_survive_a_json_round_trip_as_one_tagged_union() -> None:
    strikes, years, sigmas, rights = chain_slice(5)
    msg = ChainGreeks(
        spot=SPOT, rate=RATE, strikes=strikes, years=years, rights=rights, sigmas=sigmas
    )
    decoded = msgspec.json.decode(msgspec.json.encode(msg), type=PricingRequest)
    assert decoded == msg
    direct = await ask(msg)
    via_json = await ask(decoded)
    assert direct == via_json


def test_importing_the_actor_does_not_import_vollib_or_scipy() -> None:
    code = (
        "import sys, sumppump.actors.pricing; "
        "bad = [m for m in ('vollib', 'py_vollib', 'scipy') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
