"""suggest_strikes' search: every candidate agrees with the exact analysis and the Level-2 rule."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from sumppump.quant import bsm
from sumppump.quant.payoff import PayoffLeg, analyse_expiry, expiry_pnl
from sumppump.quant.probability import probability_of_profit
from sumppump.strategies.coverage import check_coverage
from sumppump.strategies.model import StrategyRefused
from sumppump.strategies.search import Candidate, ChainSlice, suggest

SPOT, T, R, M = 100.0, 30 / 365, 0.04, 100
EXPIRY = "2026-12-18"


def chain(n: int = 40, **overrides: object) -> ChainSlice:
    strikes = np.linspace(80, 119, n)
    iv = 0.25 + 0.1 * (strikes / SPOT - 1) ** 2
    c = bsm.price(SPOT, strikes, T, R, iv, 0.0, is_call=True)
    p = bsm.price(SPOT, strikes, T, R, iv, 0.0, is_call=False)
    half = np.maximum(0.01, 0.015 * c), np.maximum(0.01, 0.015 * p)
    fields: dict[str, object] = {
        "expiry": EXPIRY,
        "strikes": strikes,
        "call_bid": np.round(c - half[0], 2),
        "call_ask": np.round(c + half[0], 2),
        "put_bid": np.round(p - half[1], 2),
        "put_ask": np.round(p + half[1], 2),
        "call_iv": iv,
        "put_iv": iv,
        "spot": SPOT,
        "years": T,
        "multiplier": M,
        "r": R,
    }
    fields.update(overrides)
    return ChainSlice(**fields)  # type: ignore[arg-type]


def mids(ch: ChainSlice) -> dict[tuple[str, float], float]:
    out = {}
    for i, k in enumerate(np.asarray(ch.strikes, dtype=float)):
        for right, bid, ask in (("C", ch.call_bid, ch.call_ask), ("P", ch.put_bid, ch.put_ask)):
            b, a = float(np.asarray(bid)[i]), float(np.asarray(ask)[i])
            out[(right, float(k))] = (b + a) / 2
    return out


def payoff_of(c: Candidate, prices: dict[tuple[str, float], float]) -> list[PayoffLeg]:
    return [
        PayoffLeg(
            right=leg.right,
            strike=leg.strike,
            position=leg.sign * leg.ratio,
            multiplier=M,
            entry_price=prices[(leg.right, leg.strike)],  # type: ignore[index]
        )
        for leg in c.legs
    ]


EXPECTED_KINDS = {
    "bullish": {"long_call", "bull_call_spread"},
    "bearish": {"long_put", "bear_put_spread"},
    "volatile": {"long_straddle", "long_strangle"},
}


@pytest.mark.parametrize("outlook", ["bullish", "bearish", "volatile"])
@pytest.mark.parametrize("target", [None, 108.0, 93.0])
def test_every_candidate_matches_the_exact_analysis_and_the_rule(
    outlook: str, target: float | None
) -> None:
    ch = chain()
    prices = mids(ch)
    found = suggest(ch, outlook, target_price=target, limit=40)  # type: ignore[arg-type]
    assert found
    assert {c.strategy for c in found} == EXPECTED_KINDS[outlook]
    for c in found:
        payoff = payoff_of(c, prices)
        exact = analyse_expiry(payoff)
        assert exact.max_loss == pytest.approx(c.max_loss, rel=1e-9)
        assert c.max_loss == pytest.approx(c.debit * M, rel=1e-9)
        if c.max_gain is None:
            assert exact.max_gain is None and c.reward_risk is None
        else:
            assert exact.max_gain == pytest.approx(c.max_gain, rel=1e-9)
            assert c.reward_risk == pytest.approx(c.max_gain / c.max_loss)
        positive_bes = tuple(b for b in exact.breakevens if b > 0)
        assert c.breakevens == pytest.approx(positive_bes, rel=1e-12)
        pop = float(probability_of_profit(SPOT, exact.profit_intervals, T, 0.25, R))
        assert c.probability_of_profit == pytest.approx(pop, abs=1e-12)
        legs = list(c.legs)
        assert check_coverage(legs, 1, multiplier=M, net_price=c.debit).allowed
        if target is not None:
            assert c.pnl_at_target == pytest.approx(expiry_pnl(payoff, [target])[0], abs=1e-9)
        else:
            assert c.pnl_at_target is None


@pytest.mark.parametrize("outlook", ["bullish", "bearish", "volatile"])
def test_candidates_come_best_first(outlook: str) -> None:
    found = suggest(chain(), outlook, limit=10)  # type: ignore[arg-type]
    assert len(found) == 10
    scores = [c.score for c in found]
    assert scores == sorted(scores, reverse=True)
    # one structure kind does not crowd out the other
    assert len({c.strategy for c in found}) == 2


def test_all_pairs_are_enumerated() -> None:
    n = 12
    found = suggest(chain(n), "bullish", limit=10_000)
    spreads = [c for c in found if c.strategy == "bull_call_spread"]
    singles = [c for c in found if c.strategy == "long_call"]
    assert len(singles) == n
    # every pair i < j whose mid debit is positive and below the width
    assert 0 < len(spreads) <= n * (n - 1) // 2
    assert len({c.strikes for c in spreads}) == len(spreads)


def test_max_debit_is_dollars_per_unit() -> None:
    found = suggest(chain(), "bullish", max_debit=150.0, limit=1000)
    assert found and all(c.debit * M <= 150.0 + 1e-9 for c in found)
    assert all(c.max_loss <= 150.0 + 1e-9 for c in found)


def test_legs_without_quotes_are_skipped() -> None:
    ch = chain(10)
    bid = np.asarray(ch.call_bid, dtype=float).copy()
    bid[-1] = np.nan  # the top strike cannot be sold
    ask = np.asarray(ch.call_ask, dtype=float).copy()
    ask[0] = np.nan  # the bottom strike cannot be bought
    found = suggest(chain(10, call_bid=bid, call_ask=ask), "bullish", limit=1000)
    top, bottom = float(np.max(ch.strikes)), float(np.min(ch.strikes))
    for c in found:
        for leg in c.legs:
            assert not (leg.action == "SELL" and leg.strike == top)
            assert not (leg.action == "BUY" and leg.strike == bottom)


def test_candidates_carry_their_legs_for_calculate_strategy() -> None:
    c = suggest(chain(), "bearish", limit=1)[0]
    assert all(leg.expiry == EXPIRY and leg.ratio == 1 for leg in c.legs)
    assert c.strikes == tuple(sorted({leg.strike for leg in c.legs}))  # type: ignore[type-var]


def test_without_volatility_or_target_there_is_no_score_but_still_candidates() -> None:
    nan = np.full(40, np.nan)
    found = suggest(chain(call_iv=nan, put_iv=nan), "bullish", limit=5)
    assert len(found) == 5
    assert all(c.probability_of_profit is None and c.score is None for c in found)
    scored = suggest(chain(call_iv=nan, put_iv=nan), "bullish", target_price=110.0, limit=5)
    assert all(c.score is not None and math.isfinite(c.score) for c in scored)


@pytest.mark.parametrize(
    ("kwargs", "outlook"),
    [
        ({}, "sideways"),
        ({"target_price": -1.0}, "bullish"),
        ({"target_price": math.nan}, "bullish"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float], outlook: str) -> None:
    with pytest.raises(StrategyRefused):
        suggest(chain(), outlook, **kwargs)  # type: ignore[arg-type]


def test_misaligned_arrays_are_refused() -> None:
    with pytest.raises(StrategyRefused):
        suggest(chain(call_bid=np.ones(3)), "bullish")


def test_candidates_survive_a_json_round_trip() -> None:
    found = suggest(chain(), "volatile", limit=3)
    assert msgspec.json.decode(msgspec.json.encode(found), type=tuple[Candidate, ...]) == found
