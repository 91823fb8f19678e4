"""Close, modify and roll planners without an actor: the refusals that used to be reachable only
end to end, and the terms of a close and a modify."""

from __future__ import annotations

from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    ExecutionRefused,
    PrepareClose,
    PrepareModify,
    PrepareRoll,
)
from sumppump.trading import changes, modify
from sumppump.trading.ledger import OrderLedger
from tests.trading.factory import STOCK_ID, placed, position, quote, stored

SPREAD_HELD = [position(11, 1, 500.0, strike=230.0), position(12, -1, -200.0, strike=240.0)]
QUOTES = (quote(11, 5.0, 5.2), quote(12, 1.9, 2.1), quote(STOCK_ID, 229.9, 230.1))


def code(found: object) -> ErrorCode:
    assert isinstance(found, ExecutionRefused), found
    return found.code


def test_close_request_and_target_refusals() -> None:
    ledger = OrderLedger()
    assert code(changes.check_close_request(PrepareClose(symbol="AAPL", quantity=0))) == (
        ErrorCode.INVALID_ARGUMENT
    )
    nothing = changes.close_target(PrepareClose(symbol="AAPL"), "AAPL", [], ledger)
    assert code(nothing) == ErrorCode.INVALID_ARGUMENT
    too_many = changes.close_target(
        PrepareClose(symbol="AAPL", quantity=5), "AAPL", SPREAD_HELD, ledger
    )
    assert code(too_many) == ErrorCode.INVALID_ARGUMENT


def test_closing_the_long_leg_of_a_spread_alone_is_not_level2() -> None:
    found = changes.close_target(
        PrepareClose(symbol="AAPL", position="11"), "AAPL", SPREAD_HELD, OrderLedger()
    )
    assert code(found) == ErrorCode.NOT_PERMITTED_LEVEL2
    assert isinstance(found, ExecutionRefused) and found.reason == "level2_after"


def test_a_spread_opened_here_closes_as_one_combo_at_the_mid() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    msg = PrepareClose(symbol="AAPL")
    target = changes.close_target(msg, "AAPL", SPREAD_HELD, ledger)
    assert isinstance(target, changes.CloseTarget)
    plan = changes.plan_close(
        target, msg, QUOTES, None, ledger, SPREAD_HELD, epoch=1, account_kind="LIVE"
    )
    assert isinstance(plan, changes.Plan)
    order = plan.terms.order
    assert [leg.action for leg in order.legs] == ["SELL", "BUY"]
    assert order.limit_price == -3.1 and plan.terms.kind == "close"
    assert plan.terms.max_loss == 0.0 and plan.terms.description.startswith("close ")
    assert plan.terms.details is not None and plan.terms.details.holds_after == (
        "nothing in this symbol",
    )
    off_tick = changes.plan_close(
        target,
        PrepareClose(symbol="AAPL", limit_price=-3.123),
        QUOTES,
        None,
        ledger,
        SPREAD_HELD,
        epoch=1,
        account_kind="LIVE",
    )
    assert code(off_tick) == ErrorCode.INVALID_ARGUMENT


def test_modify_refusals_before_reading_anything() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    assert code(modify.modify_target(PrepareModify(order_ref="123"), ledger)) == (
        ErrorCode.INVALID_ARGUMENT
    )
    unknown = modify.modify_target(PrepareModify(order_ref=preview.preview_id), ledger)
    assert code(unknown) == ErrorCode.INVALID_ARGUMENT
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    done = modify.modify_target(PrepareModify(order_ref=preview.preview_id, quantity=2), ledger)
    assert isinstance(done, ExecutionRefused) and done.reason == "not_modifiable"


def test_a_modify_draft_and_its_plan() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    record = placed(ledger, preview)
    nothing = modify.modify_target(PrepareModify(order_ref=record.ref), ledger)
    assert code(nothing) == ErrorCode.INVALID_ARGUMENT
    msg = PrepareModify(order_ref=record.ref, limit_price=3.3)
    target = modify.modify_target(msg, ledger)
    assert target is record
    stop_field = modify.modify_draft(
        PrepareModify(order_ref=record.ref, stop_price=1.0), record, None
    )
    assert code(stop_field) == ErrorCode.INVALID_ARGUMENT
    same = modify.modify_draft(PrepareModify(order_ref=record.ref, limit_price=3.25), record, None)
    assert code(same) == ErrorCode.INVALID_ARGUMENT
    draft = modify.modify_draft(msg, record, None)
    assert isinstance(draft, modify.ModifyDraft) and draft.new.limit_price == 3.3
    plan = modify.plan_modify(draft, [], QUOTES, epoch=1, account_kind="LIVE")
    assert isinstance(plan, changes.Plan)
    assert plan.terms.replaces_order_ref == record.ref and plan.terms.kind == "modify"
    assert plan.terms.max_loss == 330.0  # 325 moved by 0.05 × 100


def test_roll_refusals() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    earlier = changes.roll_target(
        PrepareRoll(symbol="AAPL", new_expiry="2026-11-20"), "AAPL", SPREAD_HELD, ledger
    )
    assert code(earlier) == ErrorCode.INVALID_ARGUMENT
    strikes = changes.roll_target(
        PrepareRoll(symbol="AAPL", new_expiry="2027-01-15", new_strikes=(235.0,)),
        "AAPL",
        SPREAD_HELD,
        ledger,
    )
    assert code(strikes) == ErrorCode.INVALID_ARGUMENT
    ok = changes.roll_target(
        PrepareRoll(symbol="AAPL", new_expiry="2027-01-15"), "AAPL", SPREAD_HELD, ledger
    )
    assert isinstance(ok, changes.RollTarget)
    assert ok.new_strikes == (230.0, 240.0) and ok.units == 1
