"""sumppump.trading.expiry_watch: trading days, in-the-money expiry with the cash it needs,
worthless expiry, early assignment before a dividend, and checks that could not run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st

from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo
from sumppump.trading.expiry_watch import (
    Dividend,
    ExpiryWatch,
    is_trading_day,
    summary_line,
    trading_days_until,
    watch_expiries,
)
from tests.trading.support import option
from tests.trading.support import shares as held_shares

FRI = "2026-12-18"  # an expiry Friday
WED = dt.date(2026, 12, 16)


def opt(
    con_id: int, quantity: float, strike: float, right: Literal["C", "P"] = "C", expiry: str = FRI
) -> PositionInfo:
    return option(con_id, quantity, strike, right, expiry)


def shares(quantity: float) -> PositionInfo:
    return held_shares(quantity, entry=150.0)


def watch(
    positions: list[PositionInfo],
    spot: float | None = 200.0,
    *,
    today: dt.date = WED,
    funds: float | None = 10_000.0,
    marks: dict[int, float] | None = None,
    dividends: Mapping[str, Dividend | None] | None = None,
) -> ExpiryWatch:
    quotes = {cid: Quote(con_id=cid, bid=m, ask=m) for cid, m in (marks or {}).items()}
    return watch_expiries(
        positions,
        quotes=quotes,
        spots={"AAPL": spot},
        available_funds=funds,
        today=today,
        dividends=dividends,
    )


def test_trading_days_skip_weekends_and_nyse_holidays() -> None:
    assert trading_days_until(WED, dt.date(2026, 12, 18)) == 2
    assert trading_days_until(dt.date(2026, 12, 18), dt.date(2026, 12, 18)) == 0
    # Fri 2026-12-18 → Mon 21, Tue 22, Wed 23, Thu 24, (Fri 25 Christmas), Mon 28
    assert trading_days_until(dt.date(2026, 12, 18), dt.date(2026, 12, 28)) == 5
    assert not is_trading_day(dt.date(2026, 11, 26))  # Thanksgiving
    assert not is_trading_day(dt.date(2027, 3, 26))  # Good Friday
    assert is_trading_day(dt.date(2026, 11, 27))


def test_a_long_call_in_the_money_at_expiry_warns_with_the_cash_it_needs() -> None:
    found = watch([opt(10, 2, 190)], funds=30_000.0)
    itm = next(w for w in found.warnings if w.kind == "itm_expiry")
    assert itm.shares == 200 and itm.cash == -38_000.0
    assert {a.tool for a in itm.actions} == {"close_position", "roll_position", "exercise_option"}
    assert "lapse" in " ".join(a.what for a in itm.actions)
    funds = next(w for w in found.warnings if w.kind == "funds_needed")
    assert funds.shortfall == 38_000.0 - 30_000.0
    assert "fall short by 8,000.00" in funds.message


def test_a_spread_in_the_money_nets_exercise_against_assignment() -> None:
    found = watch([opt(10, 1, 190), opt(11, -1, 195)])
    cash = sum(w.cash or 0 for w in found.warnings if w.kind == "itm_expiry")
    assert cash == -19_000 + 19_500
    assert not [w for w in found.warnings if w.kind == "funds_needed"]


def test_a_put_exercised_without_shares_warns_of_short_stock() -> None:
    found = watch([opt(12, 1, 210, "P")])
    assert [w.shares for w in found.warnings if w.kind == "short_stock"] == [-100]
    covered = watch([opt(12, 1, 210, "P"), shares(100)])
    assert not [w for w in covered.warnings if w.kind == "short_stock"]


def test_out_of_the_money_long_options_expiring_are_called_worthless_with_their_value() -> None:
    found = watch([opt(13, 3, 220)], marks={13: 0.05})
    [w] = found.warnings
    assert w.kind == "worthless_expiry"
    assert "15.00" in w.message  # 0.05 × 3 × 100
    far = watch([opt(13, 3, 220, expiry="2027-01-15")])
    assert not far.warnings


def test_a_short_call_with_little_time_value_before_a_dividend_warns_of_assignment() -> None:
    far = "2027-01-15"
    call = opt(14, -1, 180, expiry=far)
    # intrinsic 20.00, mark 20.30: extrinsic 0.30 < dividend 0.50
    div = {"AAPL": Dividend(ex_date="2027-01-08", amount=0.5)}
    found = watch([call, shares(100)], marks={14: 20.3}, dividends=div)
    [w] = found.warnings
    assert w.kind == "early_assignment" and w.shares == -100
    rich = watch([call, shares(100)], marks={14: 21.0}, dividends=div)
    assert not rich.warnings
    unknown = watch([call, shares(100)], marks={14: 20.3})
    assert not unknown.warnings
    assert any("no dividend data" in n for n in unknown.not_run)


def test_no_spot_means_the_check_did_not_run() -> None:
    found = watch([opt(10, 1, 190)], spot=None)
    assert not found.warnings and found.not_run
    assert "checks not run" in summary_line(found)


def test_summary_line_counts_the_warnings() -> None:
    found = watch([opt(10, 1, 190), opt(13, 1, 250)])
    line = summary_line(found)
    assert "1 in the money near expiry" in line and "1 expiring worthless" in line


@given(st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)), st.integers(0, 60))
def test_trading_days_are_monotone_and_never_more_than_calendar_days(
    start: dt.date, span: int
) -> None:
    end = start + dt.timedelta(days=span)
    n = trading_days_until(start, end)
    assert 0 <= n <= span
    assert trading_days_until(start, end + dt.timedelta(days=1)) >= n
