"""The Level-2 rule, unit by unit, on named shapes and on random leg sets that must be refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.strategies.coverage import check_coverage, require_covered
from sumppump.strategies.model import StrategyLeg, StrategyRefused

E1, E2 = "2026-12-18", "2027-01-15"
M = 100


def opt(action: str, right: str, k: float, ratio: int = 1, expiry: str = E1) -> StrategyLeg:
    return StrategyLeg(action=action, right=right, strike=k, expiry=expiry, ratio=ratio)  # type: ignore[arg-type]


def shares(n: int, action: str = "BUY") -> StrategyLeg:
    return StrategyLeg(action=action, right="STK", ratio=n)  # type: ignore[arg-type]


def test_debit_vertical_is_covered_and_needs_a_debit() -> None:
    legs = [opt("BUY", "C", 100), opt("SELL", "C", 105)]
    ok = check_coverage(legs, 3, multiplier=M, net_price=1.25)
    assert ok.allowed and ok.debit_rule == "met"
    credit = check_coverage(legs, 3, multiplier=M, net_price=-0.10)
    assert not credit.allowed and "net debit" in credit.reason
    assert check_coverage(legs, 3, multiplier=M).debit_rule == "not_checked"


def test_call_credit_spread_is_level3_and_naked_call_level4() -> None:
    bear_call = check_coverage([opt("SELL", "C", 100), opt("BUY", "C", 105)], 1, multiplier=M)
    assert not bear_call.allowed and bear_call.level_needed and "Level 3" in bear_call.level_needed
    naked = check_coverage([opt("SELL", "C", 100)], 1, multiplier=M)
    assert not naked.allowed and naked.level_needed and "Level 4" in naked.level_needed


def test_put_credit_spread_and_naked_put_are_refused() -> None:
    bull_put = check_coverage([opt("SELL", "P", 100), opt("BUY", "P", 95)], 1, multiplier=M)
    assert not bull_put.allowed and "Level 3" in (bull_put.level_needed or "")
    assert not check_coverage([opt("SELL", "P", 100)], 1, multiplier=M).allowed


def test_short_call_is_covered_by_held_shares_only_when_enough_are_free() -> None:
    legs = [opt("SELL", "C", 105)]
    covered = check_coverage(legs, 3, multiplier=M, free_shares=300, net_price=-0.85)
    assert covered.allowed and covered.held_shares_used == 300
    assert covered.debit_rule == "not_applicable"  # a covered call is opened for a credit
    assert not check_coverage(legs, 3, multiplier=M, free_shares=299).allowed


def test_multiplier_sets_shares_per_contract() -> None:
    legs = [opt("SELL", "C", 105)]
    assert check_coverage(legs, 2, multiplier=10, free_shares=20).allowed
    assert not check_coverage(legs, 2, multiplier=10, free_shares=19).allowed


def test_buy_write_covers_with_the_shares_it_buys() -> None:
    verdict = check_coverage([shares(M), opt("SELL", "C", 105)], 2, multiplier=M)
    assert verdict.allowed and verdict.bought_shares_used == 200 and verdict.held_shares_used == 0


def test_one_by_two_ratio_spread_is_refused_unit_by_unit() -> None:
    legs = [opt("BUY", "C", 100), opt("SELL", "C", 105, ratio=2)]
    verdict = check_coverage(legs, 1, multiplier=M, net_price=0.10)
    assert not verdict.allowed
    assert "1 short call" in verdict.reason
    # the extra short is covered once 100 free shares are held (a spread plus a covered call)
    assert check_coverage(legs, 1, multiplier=M, free_shares=100).allowed
    # and at quantity 3 it needs 300
    assert not check_coverage(legs, 3, multiplier=M, free_shares=200).allowed


def test_put_ratio_and_butterfly_are_refused() -> None:
    put_ratio = [opt("BUY", "P", 100), opt("SELL", "P", 95, ratio=2)]
    assert not check_coverage(put_ratio, 1, multiplier=M).allowed
    fly = [opt("BUY", "C", 95), opt("SELL", "C", 100, ratio=2), opt("BUY", "C", 105)]
    assert not check_coverage(fly, 1, multiplier=M, net_price=1.0).allowed


def test_long_iron_condor_is_allowed_by_the_rule() -> None:
    # IB lists the long iron condor at Level 2; the rule agrees without knowing its name
    legs = [opt("SELL", "P", 90), opt("BUY", "P", 95), opt("BUY", "C", 105), opt("SELL", "C", 110)]
    assert check_coverage(legs, 2, multiplier=M, net_price=3.0).allowed


def test_calendar_with_short_near_leg_is_refused() -> None:
    legs = [opt("SELL", "C", 100, expiry=E1), opt("BUY", "C", 100, expiry=E2)]
    verdict = check_coverage(legs, 1, multiplier=M, net_price=1.0)
    assert not verdict.allowed and "Level 3" in (verdict.level_needed or "")


def test_short_stock_is_refused() -> None:
    verdict = check_coverage([shares(100, "SELL"), opt("BUY", "C", 100)], 1, multiplier=M)
    assert not verdict.allowed and "short" in verdict.reason


def test_long_options_only_are_allowed_for_a_debit() -> None:
    legs = [opt("BUY", "C", 100), opt("BUY", "P", 100)]
    assert check_coverage(legs, 1, multiplier=M, net_price=5.3).allowed


def test_require_covered_raises_a_typed_refusal() -> None:
    with pytest.raises(StrategyRefused) as err:
        require_covered([opt("SELL", "P", 100)], 1, multiplier=M)
    assert err.value.code == "NOT_PERMITTED_LEVEL2" and err.value.level_needed


def test_bad_counts_raise() -> None:
    with pytest.raises(ValueError):
        check_coverage([opt("BUY", "C", 100)], 0, multiplier=M)


# ---------------------------------------------------------------- random leg sets to refuse

strikes = st.integers(min_value=10, max_value=300).map(float)
expiries = st.sampled_from([E1, E2])


@st.composite
def uncoverable_noise(draw: st.DrawFn, short: StrategyLeg) -> list[StrategyLeg]:
    """Long legs that can never cover ``short``: wrong right's side, other strikes or expiry."""
    assert short.strike is not None
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        if short.right == "C":
            # a long call above the short's strike, or any long call of another expiry, or a put
            choice = draw(st.sampled_from(["above", "other_expiry", "put"]))
            if choice == "above":
                k = short.strike + draw(st.integers(min_value=1, max_value=50))
                out.append(opt("BUY", "C", k, expiry=short.expiry or E1))
            elif choice == "other_expiry":
                other = E2 if short.expiry == E1 else E1
                out.append(opt("BUY", "C", draw(strikes), expiry=other))
            else:
                out.append(opt("BUY", "P", draw(strikes), expiry=draw(expiries)))
        else:
            choice = draw(st.sampled_from(["below", "other_expiry", "call"]))
            if choice == "below":
                k = max(1.0, short.strike - draw(st.integers(min_value=1, max_value=9)))
                out.append(opt("BUY", "P", k, expiry=short.expiry or E1))
            elif choice == "other_expiry":
                other = E2 if short.expiry == E1 else E1
                out.append(opt("BUY", "P", draw(strikes), expiry=other))
            else:
                out.append(opt("BUY", "C", draw(strikes), expiry=draw(expiries)))
    # distinct contracts only (the order format forbids repeats)
    seen = {(short.right, short.strike, short.expiry)}
    unique = []
    for leg in out:
        key = (leg.right, leg.strike, leg.expiry)
        if key not in seen:
            seen.add(key)
            unique.append(leg)
    return unique


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["C", "P"]),
    strikes,
    expiries,
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=4),
    st.sampled_from([10, 100]),
    st.data(),
)
def test_any_uncovered_short_is_refused(
    right: str, k: float, expiry: str, qty: int, ratio: int, mult: int, data: st.DataObject
) -> None:
    short = opt("SELL", right, k, ratio=ratio, expiry=expiry)
    legs = [short, *data.draw(uncoverable_noise(short))]
    # fewer free shares than the short calls need
    free = data.draw(st.integers(min_value=0, max_value=qty * ratio * mult - 1))
    verdict = check_coverage(legs, qty, multiplier=mult, free_shares=free, net_price=1.0)
    assert not verdict.allowed
    assert verdict.level_needed is not None


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["C", "P"]),
    strikes,
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=5),
)
def test_ratio_spreads_selling_more_than_they_buy_are_refused(
    right: str, k: float, width: int, bought: int, extra: int, qty: int
) -> None:
    if right == "C":
        legs = [opt("BUY", "C", k, ratio=bought), opt("SELL", "C", k + width, ratio=bought + extra)]
    else:
        legs = [
            opt("BUY", "P", k + width, ratio=bought),
            opt("SELL", "P", k, ratio=bought + extra),
        ]
    assert not check_coverage(legs, qty, multiplier=M, net_price=0.5).allowed
    # the same ratio with equal counts is an allowed debit vertical
    balanced = [
        StrategyLeg(
            action=leg.action, right=leg.right, strike=leg.strike, expiry=leg.expiry, ratio=bought
        )
        for leg in legs
    ]
    assert check_coverage(balanced, qty, multiplier=M, net_price=0.5).allowed


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["C", "P"]),
    strikes,
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=-500, max_value=0).map(lambda c: c / 100),
)
def test_options_only_structures_opened_for_a_credit_or_zero_are_refused(
    right: str, k: float, width: int, net: float
) -> None:
    if right == "C":
        legs = [opt("BUY", "C", k), opt("SELL", "C", k + width)]
    else:
        legs = [opt("BUY", "P", k + width), opt("SELL", "P", k)]
    verdict = check_coverage(legs, 1, multiplier=M, net_price=net)
    assert not verdict.allowed and "net debit" in verdict.reason


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=1000), st.lists(strikes, max_size=3))
def test_short_stock_is_always_refused(n: int, long_calls: list[float]) -> None:
    legs = [shares(n, "SELL"), *[opt("BUY", "C", k) for k in sorted(set(long_calls))]]
    assert not check_coverage(legs, 1, multiplier=M, free_shares=10_000).allowed
