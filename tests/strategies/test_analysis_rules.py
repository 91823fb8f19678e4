"""Order analysis: limit price and ticks, commission, greeks, probability, profile, refusals."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from sumppump.quant import bsm
from sumppump.strategies.analysis import (
    LegPricing,
    LegQuote,
    QuotedLeg,
    analyse_order,
    estimate_commission,
    order_tick,
    round_to_tick,
)
from sumppump.strategies.model import StrategyLeg, StrategyRefused

EXP = "2026-12-18"
TODAY = dt.date(2026, 11, 18)


def leg(action: str, right: str, k: float | None, ratio: int = 1) -> StrategyLeg:
    expiry = None if right == "STK" else EXP
    return StrategyLeg(action=action, right=right, strike=k, expiry=expiry, ratio=ratio)  # type: ignore[arg-type]


def q(bid: float | None, ask: float | None, mult: int = 100, **kw: float) -> LegQuote:
    return LegQuote(bid=bid, ask=ask, multiplier=mult, **kw)  # type: ignore[arg-type]


def single(bid: float, ask: float, action: str = "BUY") -> list[QuotedLeg]:
    return [QuotedLeg(leg=leg(action, "C", 100), quote=q(bid, ask))]


@pytest.mark.parametrize(
    ("bid", "ask", "expected"),
    [
        (1.00, 1.05, 1.03),  # mid 1.025 → 0.01 tick below $3, halves away from zero
        (4.00, 4.30, 4.15),  # mid 4.15 on the 0.05 grid
        (4.00, 4.20, 4.10),
        (4.00, 4.10, 4.05),  # mid 4.05
        (4.00, 4.06, 4.05),  # mid 4.03 → nearest 0.05
    ],
)
def test_default_limit_is_the_mid_on_the_single_option_tick(
    bid: float, ask: float, expected: float
) -> None:
    a = analyse_order(single(bid, ask), 1, today=TODAY)
    assert a.limit_source == "mid"
    assert a.limit_price == pytest.approx(expected)


def test_combos_trade_in_pennies_whatever_the_price() -> None:
    legs = [leg("BUY", "C", 100), leg("SELL", "C", 110)]
    assert order_tick(legs, 7.3) == 0.01
    assert order_tick(legs[:1], 7.3) == 0.05
    assert order_tick(legs[:1], 2.99) == 0.01
    assert round_to_tick(7.325, 0.05) == pytest.approx(7.35)
    assert round_to_tick(-1.005, 0.01) == pytest.approx(-1.01)


def test_limit_off_the_tick_is_refused_with_the_neighbours() -> None:
    with pytest.raises(StrategyRefused) as err:
        analyse_order(single(4.0, 4.2), 1, limit_price=4.12, today=TODAY)
    assert err.value.code == "INVALID_ARGUMENT"
    assert "4.10" in err.value.hint and "4.15" in err.value.hint


def test_given_limit_sets_the_risk() -> None:
    a = analyse_order(single(2.0, 2.2), 2, limit_price=2.05, today=TODAY)
    assert a.limit_source == "given"
    assert a.max_loss == pytest.approx(2.05 * 100 * 2)
    assert a.breakevens == pytest.approx((102.05,))


def test_limit_beyond_natural_is_warned() -> None:
    a = analyse_order(single(2.0, 2.2), 1, limit_price=2.5, today=TODAY)
    assert any("natural" in w for w in a.warnings)


def test_positive_limit_on_a_credit_order_is_read_as_the_credit() -> None:
    a = analyse_order(
        single(1.2, 1.3, action="SELL"),
        1,
        limit_price=1.25,
        underlying_price=100.0,
        held_shares=100,
        today=TODAY,
    )
    assert a.limit_price == pytest.approx(-1.25)
    assert a.net_debit_total == pytest.approx(-125.0)
    assert any("credit" in w for w in a.warnings)


def test_missing_quotes_without_a_limit_is_no_market_data() -> None:
    legs = [QuotedLeg(leg=leg("BUY", "C", 100), quote=q(None, None))]
    with pytest.raises(StrategyRefused) as err:
        analyse_order(legs, 1, today=TODAY)
    assert err.value.code == "NO_MARKET_DATA"
    # with a limit the analysis can still be made
    assert analyse_order(legs, 1, limit_price=1.0, today=TODAY).max_loss == pytest.approx(100.0)


@pytest.mark.parametrize("quantity", [0, -2, True])
def test_quantity_is_validated(quantity: int) -> None:
    with pytest.raises(StrategyRefused):
        analyse_order(single(1.0, 1.1), quantity, today=TODAY)


def test_mixed_multipliers_are_refused() -> None:
    legs = [
        QuotedLeg(leg=leg("BUY", "C", 100), quote=q(2.0, 2.1, mult=100)),
        QuotedLeg(leg=leg("SELL", "C", 105), quote=q(1.0, 1.1, mult=10)),
    ]
    with pytest.raises(StrategyRefused):
        analyse_order(legs, 1, today=TODAY)


def test_held_shares_need_a_spot() -> None:
    with pytest.raises(StrategyRefused):
        analyse_order(single(1.2, 1.3, action="SELL"), 1, held_shares=100, today=TODAY)


def pricing(right: str, position: int, price: float) -> LegPricing:
    mult = 1 if right == "STK" else 100
    k = None if right == "STK" else 100.0
    return LegPricing(
        leg=leg("BUY", right, k),
        position=position,
        multiplier=mult,
        bid=price,
        ask=price,
        mid=price,
        natural=price,
    )


def test_commission_follows_ibkr_pro_fixed() -> None:
    # 1 contract: 0.65 raised to the 1.00 order minimum
    assert estimate_commission([pricing("C", 1, 2.0)]).total == pytest.approx(1.00)
    # 4 contracts over two legs: 4 × 0.65
    two = estimate_commission([pricing("C", 2, 2.0), pricing("C", -2, 1.0)])
    assert two.total == pytest.approx(4 * 0.65) and two.contracts == 4
    # cheap premiums: 0.50 from 0.05, 0.25 below
    assert estimate_commission([pricing("C", 10, 0.07)]).total == pytest.approx(10 * 0.50)
    assert estimate_commission([pricing("C", 10, 0.03)]).total == pytest.approx(10 * 0.25)
    # stock: 0.005 a share, min 1.00, capped at 1 % of value
    assert estimate_commission([pricing("STK", 1000, 50.0)]).stock == pytest.approx(5.0)
    assert estimate_commission([pricing("STK", 100, 50.0)]).stock == pytest.approx(1.0)
    assert estimate_commission([pricing("STK", 1000, 0.20)]).stock == pytest.approx(0.01 * 200)


def test_greeks_aggregate_in_dollar_terms() -> None:
    legs = [
        QuotedLeg(
            leg=leg("BUY", "C", 100),
            quote=q(2.0, 2.2, delta=0.55, gamma=0.04, theta=-0.05, vega=0.12),
        ),
        QuotedLeg(
            leg=leg("SELL", "C", 105),
            quote=q(0.8, 0.9, delta=0.30, gamma=0.03, theta=-0.04, vega=0.10),
        ),
    ]
    a = analyse_order(legs, 3, today=TODAY)
    assert a.greeks is not None
    assert a.greeks.delta == pytest.approx((0.55 - 0.30) * 100 * 3)
    assert a.greeks.gamma == pytest.approx((0.04 - 0.03) * 100 * 3)
    assert a.greeks.theta == pytest.approx((-0.05 + 0.04) * 100 * 3)
    assert a.greeks.vega == pytest.approx((0.12 - 0.10) * 100 * 3)
    assert analyse_order(single(2.0, 2.2), 1, today=TODAY).greeks is None


def test_probability_of_profit_is_the_lognormal_tail_beyond_the_breakeven() -> None:
    s, sigma, t = 100.0, 0.3, 30 / 365
    legs = [QuotedLeg(leg=leg("BUY", "C", 100), quote=q(2.0, 2.2, iv=sigma, expiry_years=t))]
    a = analyse_order(legs, 1, underlying_price=s, today=TODAY)
    be = 100 + 2.10
    d2 = (math.log(s / be) - 0.5 * sigma * sigma * t) / (sigma * math.sqrt(t))
    assert a.probability_of_profit == pytest.approx(float(bsm.norm_cdf(d2)), rel=1e-9)
    assert a.days_to_expiry == 30


def test_profile_contains_kinks_and_breakevens_and_today_curve() -> None:
    sigma, t = 0.3, 30 / 365
    legs = [
        QuotedLeg(leg=leg("BUY", "C", 100), quote=q(2.0, 2.2, iv=sigma, expiry_years=t)),
        QuotedLeg(leg=leg("SELL", "C", 105), quote=q(0.8, 0.9, iv=sigma, expiry_years=t)),
    ]
    a = analyse_order(legs, 1, underlying_price=101.0, today=TODAY)
    prices = a.profile.prices
    assert {100.0, 105.0, 101.0, *a.breakevens} <= set(prices)
    assert list(prices) == sorted(prices)
    i = prices.index(a.breakevens[0])
    assert a.profile.at_expiry[i] == pytest.approx(0.0, abs=1e-9)
    assert a.profile.today is not None and len(a.profile.today) == len(prices)
    # before expiry the spread is worth more than its expiry value below the long strike
    assert a.profile.today[0] >= a.profile.at_expiry[0]


def test_structure_that_cannot_profit_is_warned() -> None:
    legs = [
        QuotedLeg(leg=leg("BUY", "C", 100), quote=q(5.5, 5.7)),
        QuotedLeg(leg=leg("SELL", "C", 105), quote=q(0.3, 0.4)),
    ]
    a = analyse_order(legs, 1, today=TODAY)
    assert a.max_gain is not None and a.max_gain <= 0
    assert any("cannot make money" in w for w in a.warnings)


def test_mixed_expiries_are_warned() -> None:
    legs = [
        QuotedLeg(leg=leg("BUY", "C", 100), quote=q(2.0, 2.2)),
        QuotedLeg(
            leg=StrategyLeg(action="BUY", right="P", strike=95, expiry="2027-01-15"),
            quote=q(1.0, 1.1),
        ),
    ]
    a = analyse_order(legs, 1, today=TODAY)
    assert a.expiries == (EXP, "2027-01-15") and a.days_to_expiry == 30
    assert any("different dates" in w for w in a.warnings)
