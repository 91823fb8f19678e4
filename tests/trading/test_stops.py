"""Stops without an actor: the suggestion, the prompt after a fill, the stop a person asks for
(single and combo), the OCA group, and what a close does to the position's stops."""

from __future__ import annotations

import msgspec
import pytest

from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import CreatePreview, ExecutionRefused, PrepareStopLoss
from sumppump.messages.orders import OrderBook
from sumppump.trading import stops
from sumppump.trading.holdings import group_structures
from sumppump.trading.ledger import OrderLedger
from tests.trading.factory import (
    STOCK_ID,
    long_call,
    placed,
    position,
    quote,
    spread,
    stored,
)


def test_suggested_stops_per_kind_of_position() -> None:
    assert stops.suggest_stop(long_call(), 4.0)[0] == 2.0
    assert stops.suggest_stop(spread(), 3.2)[0] == 1.6
    stock = msgspec.structs.replace(
        long_call(),
        legs=(
            msgspec.structs.replace(
                long_call().legs[0], sec_type="STK", expiry=None, strike=None, right=None
            ),
        ),
    )
    assert stops.suggest_stop(stock, 100.0)[0] == 92.0


def test_a_fill_prompts_once_per_growth_of_the_filled_quantity() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    record = placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    prompt = stops.stop_loss_prompt(ledger, record)
    assert prompt is not None and prompt.position == record.ref
    assert prompt.suggested_stop == 1.6 and "set_stop_loss" in prompt.text
    assert stops.stop_loss_prompt(ledger, record) is None
    assert record.last_prompt == prompt


@pytest.mark.parametrize(
    ("stop_price", "stop_percent", "problem"),
    [(0.0, None, "stop_price must be positive"), (None, 100.0, "between 0 and 100")],
)
def test_bad_stop_arguments(
    stop_price: float | None, stop_percent: float | None, problem: str
) -> None:
    msg = PrepareStopLoss(symbol="AAPL", stop_price=stop_price, stop_percent=stop_percent)
    found = stops.check_stop_request(msg)
    assert isinstance(found, ExecutionRefused) and problem in found.message


def test_a_single_option_stop_sells_below_the_entry_and_refuses_a_crossed_market() -> None:
    held = position(11, 2, 400.0, strike=230.0)
    msg = PrepareStopLoss(symbol="AAPL")
    target = stops.single_stop(msg, held)
    assert isinstance(target, stops.SingleStop) and target.stop == 2.0
    ledger = OrderLedger()
    terms = stops.plan_single_stop(
        target, (quote(11, 3.0, 3.2),), ledger, epoch=1, account_kind="LIVE"
    )
    assert isinstance(terms, CreatePreview)
    assert terms.order.order_type == "STP" and terms.order.quantity == 2
    assert terms.order.legs[0].action == "SELL" and terms.max_loss == 400.0
    assert terms.order.oca_group.startswith("SP-")
    crossed = stops.plan_single_stop(
        target, (quote(11, 1.8, 1.9),), ledger, epoch=1, account_kind="LIVE"
    )
    assert isinstance(crossed, ExecutionRefused) and crossed.code == ErrorCode.INVALID_ARGUMENT


def test_a_combo_stop_is_a_bag_stp_that_closes_the_spread_for_a_credit() -> None:
    # IB allows STP on a BAG but not STP LMT (notes/ib-behaviour.md §a).
    _, _, preview = stored()
    ledger = OrderLedger()
    record = placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    held = [position(11, 1, 500.0, strike=230.0), position(12, -1, -200.0, strike=240.0)]
    chosen = stops.choose_position(PrepareStopLoss(symbol="AAPL"), held, ledger, "AAPL")
    assert isinstance(chosen, tuple) and chosen[0] == record.ref
    target = stops.stop_target(PrepareStopLoss(symbol="AAPL"), chosen, ledger)
    assert isinstance(target, stops.ComboStop) and target.stop == 1.6
    quotes = (quote(11, 5.0, 5.2), quote(12, 1.9, 2.1))
    terms = stops.plan_stop(target, quotes, ledger, epoch=1, account_kind="LIVE")
    assert isinstance(terms, CreatePreview)
    assert terms.order.order_type == "STP"
    assert (terms.order.stop_price, terms.order.limit_price) == (-1.6, None)
    assert terms.max_loss == round((3.2 - 1.6) * 100, 2)
    assert any("triggerMethod 4" in w for w in terms.warnings)
    assert [leg.action for leg in terms.order.legs] == ["SELL", "BUY"]


def test_a_close_joins_the_stop_group_of_a_one_per_unit_stop() -> None:
    previews, _, preview = stored()
    ledger = OrderLedger()
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    held = [position(11, 1, 500.0, strike=230.0), position(12, -1, -200.0, strike=240.0)]
    msg = PrepareStopLoss(symbol="AAPL")
    chosen = stops.choose_position(msg, held, ledger, "AAPL")
    assert not isinstance(chosen, ExecutionRefused)
    target = stops.stop_target(msg, chosen, ledger)
    assert isinstance(target, stops.ComboStop)
    stop_terms = stops.plan_combo_stop(
        target, (quote(11, 5.0, 5.2), quote(12, 1.9, 2.1)), ledger, epoch=1, account_kind="LIVE"
    )
    assert isinstance(stop_terms, CreatePreview)
    stop_preview = previews.add(stop_terms)
    stop_record = placed(ledger, stop_preview, order_id=8)
    structure = group_structures(held, ledger.opened_combos("AAPL"))[0]
    plan = stops.plan_stop_follow(ledger, structure, 1, OrderBook(open=(), completed=(), fills=()))
    assert plan.group == stop_terms.order.oca_group
    assert [(f.order_ref, f.how) for f in plan.follows] == [(stop_record.ref, "cancelled")]
    assert plan.follow_ups == ()
    unread = stops.plan_stop_follow(ledger, structure, 1, None)
    assert any("could not be read" in w for w in unread.warnings)


def test_an_opening_order_that_sells_what_a_stop_sells_joins_its_group() -> None:
    previews, _, preview = stored(long_call(), quotes=(quote(11, 5.0, 5.2), quote(STOCK_ID, 1, 2)))
    ledger = OrderLedger()
    placed(ledger, preview, status="Filled", filled=1, avg=5.1)
    held = position(11, 1, 510.0, strike=230.0)
    single = stops.single_stop(PrepareStopLoss(symbol="AAPL"), held)
    assert isinstance(single, stops.SingleStop)
    stop_terms = stops.plan_single_stop(
        single, (quote(11, 5.0, 5.2),), ledger, epoch=1, account_kind="LIVE"
    )
    assert isinstance(stop_terms, CreatePreview)
    placed(ledger, previews.add(stop_terms), order_id=9)
    sell = msgspec.structs.replace(
        long_call(), legs=(msgspec.structs.replace(long_call().legs[0], action="SELL"),)
    )
    order, notes = stops.joined_stop_group(ledger, sell)
    assert order.oca_group == stop_terms.order.oca_group and order.oca_type == stops.OCA_REDUCE
    assert "IB shrinks that stop" in notes[0]


def test_only_approval_mode_tws_stages_orders() -> None:
    ledger = OrderLedger()
    _, _, preview = stored()
    staged = stops.stored_terms(preview.terms, ledger, "tws")
    assert isinstance(staged, CreatePreview) and not staged.order.transmit
    untransmitted = msgspec.structs.replace(
        preview.terms, order=msgspec.structs.replace(preview.order, transmit=False)
    )
    found = stops.stored_terms(untransmitted, ledger, "client")
    assert isinstance(found, ExecutionRefused)
