"""Golden cases: every Level-2 structure at quantity 1 and 3, built, priced and analysed end to end.

Expected figures are written from first principles in each case (premiums × multiplier ×
quantity), never read back from the implementation. Quotes (per share, multiplier 100, spot 100):

    C100 2.05 x 2.15 (mid 2.10)    C105 0.80 x 0.90 (mid 0.85)
    P100 3.10 x 3.30 (mid 3.20)    P95  1.40 x 1.50 (mid 1.45)
    stock 99.98 x 100.02 (mid 100.00)
"""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from sumppump.strategies.analysis import LegQuote, QuotedLeg, StrategyAnalysis, analyse_order
from sumppump.strategies.builders import build_strategy
from sumppump.strategies.model import StrategyLeg

EXPIRY = "2026-12-18"
TODAY = dt.date(2026, 11, 18)  # 30 days before EXPIRY
SPOT = 100.0
M = 100
QUOTES = {
    ("C", 100.0): (2.05, 2.15),
    ("C", 105.0): (0.80, 0.90),
    ("P", 100.0): (3.10, 3.30),
    ("P", 95.0): (1.40, 1.50),
    ("STK", None): (99.98, 100.02),
}


def quoted(leg: StrategyLeg) -> QuotedLeg:
    bid, ask = QUOTES[(leg.right, leg.strike)]
    multiplier = 1 if leg.right == "STK" else M
    return QuotedLeg(
        leg=leg,
        quote=LegQuote(bid=bid, ask=ask, multiplier=multiplier, iv=0.25, expiry_years=30 / 365),
    )


def analyse(
    strategy: str, strikes: list[float], qty: int, shares_held: int = 0
) -> StrategyAnalysis:
    built = build_strategy(
        symbol="XYZ",
        strategy=strategy,
        expiry=EXPIRY,
        strikes=strikes,
        quantity=qty,
        multiplier=M,
        shares_held=shares_held,
    )
    return analyse_order(
        [quoted(leg) for leg in built.legs],
        qty,
        underlying_price=SPOT,
        held_shares=built.held_shares_included,
        today=TODAY,
    )


def money(x: float) -> object:
    return pytest.approx(x, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("q", [1, 3])
def test_long_call_risks_the_premium_and_breaks_even_at_strike_plus_premium(q: int) -> None:
    a = analyse("long_call", [100], q)
    assert a.limit_price == money(2.10)  # mid of 2.05 x 2.15
    assert a.net_debit_total == money(2.10 * 100 * q)
    assert a.max_loss == money(2.10 * 100 * q)
    assert a.max_gain is None
    assert a.breakevens == money((100 + 2.10,))
    assert a.reward_risk is None
    assert a.days_to_expiry == 30


@pytest.mark.parametrize("q", [1, 3])
def test_long_put_gain_is_bounded_by_the_strike(q: int) -> None:
    a = analyse("long_put", [95], q)
    assert a.max_loss == money(1.45 * 100 * q)
    assert a.max_gain == money((95 - 1.45) * 100 * q)
    assert a.breakevens == money((95 - 1.45,))


@pytest.mark.parametrize("q", [1, 3])
def test_bull_call_spread_width_minus_debit_scales_with_quantity(q: int) -> None:
    # the competitor's bug: gain = width*100 - total_debit and breakeven = K + total_debit/100
    a = analyse("bull_call_spread", [105, 100], q)  # strikes in any order
    assert [(leg.leg.action, leg.leg.strike) for leg in a.legs] == [("BUY", 100.0), ("SELL", 105.0)]
    assert a.limit_price == money(2.10 - 0.85)
    assert a.max_loss == money((2.10 - 0.85) * 100 * q)
    assert a.max_gain == money((105 - 100 - (2.10 - 0.85)) * 100 * q)
    assert a.breakevens == money((100 + (2.10 - 0.85),))
    assert a.reward_risk == pytest.approx((5 - 1.25) / 1.25)
    assert a.net_natural == money(2.15 - 0.80)


@pytest.mark.parametrize("q", [1, 3])
def test_bear_put_spread(q: int) -> None:
    a = analyse("bear_put_spread", [95, 100], q)
    assert [(leg.leg.action, leg.leg.strike) for leg in a.legs] == [("BUY", 100.0), ("SELL", 95.0)]
    debit = 3.20 - 1.45
    assert a.max_loss == money(debit * 100 * q)
    assert a.max_gain == money((100 - 95 - debit) * 100 * q)
    assert a.breakevens == money((100 - debit,))


@pytest.mark.parametrize("q", [1, 3])
def test_covered_call_on_held_shares_counts_the_shares_at_spot(q: int) -> None:
    a = analyse("covered_call", [105], q, shares_held=100 * q)
    assert [leg.leg.right for leg in a.legs] == ["C"]  # no stock bought
    assert a.limit_price == money(-0.85)  # a credit
    assert a.net_debit_total == money(-0.85 * 100 * q)
    assert a.held_shares_included == 100 * q
    assert a.max_loss == money((100 - 0.85) * 100 * q)  # shares to zero, premium kept
    assert a.max_gain == money((105 - 100 + 0.85) * 100 * q)
    assert a.breakevens == money((100 - 0.85,))
    assert a.held_shares_max_loss == money(100 * 100 * q)


@pytest.mark.parametrize("q", [1, 3])
def test_buy_write_buys_multiplier_shares_per_contract(q: int) -> None:
    a = analyse("covered_call", [105], q, shares_held=0)
    stock = [leg for leg in a.legs if leg.leg.right == "STK"]
    assert stock[0].leg.ratio == 100 and stock[0].position == 100 * q
    assert a.limit_price == money(100.00 - 0.85)  # per unit: 100 shares / 100 - call
    assert a.net_debit_total == money((100.00 - 0.85) * 100 * q)
    assert a.max_loss == money((100 - 0.85) * 100 * q)
    assert a.max_gain == money((105 - (100 - 0.85)) * 100 * q)
    assert a.breakevens == money((100 - 0.85,))
    # 0.65 per contract (min 1.00) + 0.005 per share (min 1.00)
    assert a.commission.total == money(max(0.65 * q, 1.00) + max(0.005 * 100 * q, 1.00))


@pytest.mark.parametrize("q", [1, 3])
def test_protective_put_bought_with_shares_floors_the_loss_at_the_strike(q: int) -> None:
    a = analyse("protective_put", [95], q)
    assert a.limit_price == money(100.00 + 1.45)
    assert a.max_loss == money((100 + 1.45 - 95) * 100 * q)
    assert a.max_gain is None
    assert a.breakevens == money((100 + 1.45,))


@pytest.mark.parametrize("q", [1, 3])
def test_protective_put_on_held_shares(q: int) -> None:
    a = analyse("protective_put", [95], q, shares_held=100 * q)
    assert [leg.leg.right for leg in a.legs] == ["P"]
    assert a.net_debit_total == money(1.45 * 100 * q)
    assert a.max_loss == money((100 - 95 + 1.45) * 100 * q)  # from today's price
    assert a.breakevens == money((100 + 1.45,))


@pytest.mark.parametrize("q", [1, 3])
def test_collar_with_bought_shares(q: int) -> None:
    a = analyse("collar", [105, 95], q)
    net = 100.00 + 1.45 - 0.85
    assert a.limit_price == money(net)
    assert a.max_loss == money((net - 95) * 100 * q)
    assert a.max_gain == money((105 - net) * 100 * q)
    assert a.breakevens == money((net,))


@pytest.mark.parametrize("q", [1, 3])
def test_collar_on_held_shares_for_a_net_debit(q: int) -> None:
    a = analyse("collar", [95, 105], q, shares_held=100 * q)
    assert a.limit_price == money(1.45 - 0.85)
    assert a.max_loss == money((100 + 0.60 - 95) * 100 * q)
    assert a.max_gain == money((105 - 100 - 0.60) * 100 * q)


@pytest.mark.parametrize("q", [1, 3])
def test_long_straddle_has_two_breakevens(q: int) -> None:
    a = analyse("long_straddle", [100], q)
    debit = 2.10 + 3.20
    assert a.max_loss == money(debit * 100 * q)
    assert a.max_gain is None
    assert a.breakevens == money((100 - debit, 100 + debit))
    assert a.profit_intervals[0][0] == 0.0 and a.profit_intervals[1][1] is None  # unbounded


@pytest.mark.parametrize("q", [1, 3])
def test_long_strangle(q: int) -> None:
    a = analyse("long_strangle", [105, 95], q)
    debit = 1.45 + 0.85
    assert a.max_loss == money(debit * 100 * q)
    assert a.breakevens == money((95 - debit, 105 + debit))


def test_analysis_survives_a_json_round_trip() -> None:
    a = analyse("long_straddle", [100], 3)
    assert msgspec.json.decode(msgspec.json.encode(a), type=StrategyAnalysis) == a
