"""sumppump.trading.exercise: the exercise/lapse plan and its refusals."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sumppump.messages.connection import PositionInfo
from sumppump.trading.exercise import (
    ExercisePlan,
    ExerciseRefused,
    exercise_cutoff,
    plan_exercise,
)
from tests.trading.support import option

NY = ZoneInfo("America/New_York")
EXPIRY = "2026-12-18"
ON_EXPIRY = dt.datetime(2026, 12, 18, 15, 0, tzinfo=NY)


def opt(quantity: float, strike: float = 190.0, right: Literal["C", "P"] = "C") -> PositionInfo:
    return option(10, quantity, strike, right, EXPIRY, entry=5.0)


def plan(
    position: PositionInfo,
    action: Literal["exercise", "lapse"] = "exercise",
    quantity: int | None = None,
    now: dt.datetime = ON_EXPIRY,
    held: float = 0.0,
    funds: float | None = 100_000.0,
) -> ExercisePlan | ExerciseRefused:
    return plan_exercise(
        position,
        action=action,
        quantity=quantity,
        now=now,
        spot=200.0,
        shares_held=held,
        available_funds=funds,
    )


def test_exercising_a_call_buys_the_shares_at_the_strike() -> None:
    got = plan(opt(2), quantity=1, held=50)
    assert isinstance(got, ExercisePlan)
    assert (got.shares, got.cash, got.shares_after, got.contracts_after) == (
        100,
        -19_000.0,
        150,
        1,
    )
    assert got.intrinsic == pytest.approx(10.0)
    assert got.cutoff == "2026-12-18T17:25:00-05:00"
    assert "17:25" in got.cutoff_source and "interactivebrokers.com" in got.cutoff_source
    assert "buys 100 shares for 19,000.00 (paid)" in got.describe()
    assert not got.warnings


def test_exercising_a_put_delivers_held_shares_and_refuses_short_stock() -> None:
    got = plan(opt(1, 210, "P"), held=100)
    assert isinstance(got, ExercisePlan)
    assert (got.shares, got.cash, got.shares_after) == (-100, 21_000.0, 0)
    short = plan(opt(1, 210, "P"), held=0)
    assert isinstance(short, ExerciseRefused) and short.code == "NOT_PERMITTED_LEVEL2"


def test_a_lapse_moves_nothing_and_warns_when_it_forfeits_intrinsic_value() -> None:
    got = plan(opt(3), action="lapse")
    assert isinstance(got, ExercisePlan)
    assert (got.shares, got.cash, got.contracts_after) == (0, 0, 3)
    assert "3,000.00" in got.warnings[0]
    assert "Do not exercise 3" in got.describe()


def test_refusals_short_over_quantity_after_cutoff() -> None:
    short = plan(opt(-1))
    assert isinstance(short, ExerciseRefused) and "assigned" in short.message
    over = plan(opt(2), quantity=3)
    assert isinstance(over, ExerciseRefused) and over.code == "INVALID_ARGUMENT"
    late = plan(opt(2), now=dt.datetime(2026, 12, 18, 17, 25, tzinfo=NY))
    assert isinstance(late, ExerciseRefused) and late.code == "MARKET_CLOSED"
    expired = plan(opt(2), now=dt.datetime(2026, 12, 21, 10, 0, tzinfo=NY))
    assert isinstance(expired, ExerciseRefused)


def test_early_or_out_of_the_money_exercise_and_missing_funds_warn() -> None:
    early = plan(opt(1), now=dt.datetime(2026, 12, 10, 10, 0, tzinfo=NY), funds=1_000.0)
    assert isinstance(early, ExercisePlan)
    text = " ".join(early.warnings)
    assert "time value" in text and "available funds are 1,000.00" in text
    otm = plan(opt(1, 250))
    assert isinstance(otm, ExercisePlan) and "out of the money" in otm.warnings[0]


@given(st.integers(1, 50), st.integers(0, 50), st.sampled_from(["C", "P"]))
def test_shares_after_is_held_plus_what_exercise_moves(
    held: int, quantity: int, right: Literal["C", "P"]
) -> None:
    got = plan(opt(held, 190, right), quantity=quantity or None, held=10_000)
    n = quantity or held
    if n > held:
        assert isinstance(got, ExerciseRefused) and got.code == "INVALID_ARGUMENT"
        return
    assert isinstance(got, ExercisePlan)
    assert got.shares == (100 if right == "C" else -100) * n
    assert got.shares_after == 10_000 + got.shares
    assert got.cash == pytest.approx(-got.shares * 190)


def test_the_cutoff_is_1725_new_york_in_summer_and_winter() -> None:
    assert exercise_cutoff(dt.date(2026, 7, 17)).utcoffset() == dt.timedelta(hours=-4)
    assert exercise_cutoff(dt.date(2026, 12, 18)).astimezone(dt.UTC).hour == 22
