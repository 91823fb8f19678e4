"""The pure parts of exercise_option's preview (which option, the confirm text) and of the
instruction's audit replay and the covered call's roll strategy."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sumppump.trading.changes import roll_strategy
from sumppump.trading.exercise import (
    ExercisePlan,
    ExerciseRefused,
    choose_option,
    exercise_confirm_text,
    plan_exercise,
)
from sumppump.trading.ledger import OrderLedger
from sumppump.trading.previews import new_preview_id
from tests.trading.support import option

NY = ZoneInfo("America/New_York")


def test_the_only_option_is_chosen_and_several_must_be_named() -> None:
    long_call = option(10, 1, 190.0, "C", "2026-12-18", entry=5.0)
    short_call = option(11, -1, 200.0, "C", "2026-12-18", entry=2.0)
    assert choose_option([long_call], "AAPL", None) == long_call
    both = choose_option([long_call, short_call], "AAPL", None)
    assert isinstance(both, ExerciseRefused) and "2 option positions" in both.message
    assert "con_id 10" in both.message and "con_id 11" in both.message
    assert choose_option([long_call, short_call], "AAPL", "2026-12-18 200 C") == short_call
    assert choose_option([long_call, short_call], "AAPL", "11") == short_call
    none = choose_option([long_call], "AAPL", "2026-12-18 210 C")
    assert isinstance(none, ExerciseRefused) and none.code == "INVALID_ARGUMENT"


def test_the_confirm_text_states_shares_cash_position_and_cutoff() -> None:
    call = option(10, 2, 190.0, "C", "2026-12-18", entry=5.0)
    plan = plan_exercise(
        call,
        action="exercise",
        quantity=1,
        now=dt.datetime(2026, 12, 18, 15, 0, tzinfo=NY),
        spot=200.0,
        shares_held=50.0,
        available_funds=None,
    )
    assert isinstance(plan, ExercisePlan)
    text = exercise_confirm_text(plan, account="DU1", account_kind="PAPER")
    assert text.startswith("Exercise on PAPER account DU1: Exercise 1 AAPL 2026-12-18 190 C")
    assert "buys 100 shares for 19,000.00 (paid)" in text
    assert "afterwards 150 shares and 1 contracts" in text
    assert "cut-off is 2026-12-18 17:25 New York time" in text


def test_an_exercise_submit_line_replays_as_a_used_id_not_an_order() -> None:
    pid = new_preview_id()
    ledger = OrderLedger()
    replayed = ledger.replay(
        [{"event": "submit", "order_ref": pid, "kind": "exercise", "symbol": "AAPL"}]
    )
    assert replayed.used == ((pid, "AAPL"),)
    assert ledger.get(pid) is None


def test_a_covered_calls_roll_is_analysed_as_a_covered_call() -> None:
    assert roll_strategy("covered call") == "covered_call"
    assert roll_strategy("short call") == "covered_call"
    assert roll_strategy("bull call spread") == "bull_call_spread"
