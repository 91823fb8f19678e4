"""get_order_status's answer: the outcome of an order in every state, every figure in the
text too (some clients give the model only the text)."""

from __future__ import annotations

from dataclasses import replace

from sumppump.trading.ledger import OrderLedger
from sumppump.trading.report import order_outcome, outcome_summary
from tests.trading.factory import placed, stored


def test_a_filled_order_reports_fills_average_price_and_commission_in_text_and_data() -> None:
    _, _, preview = stored(description="bull call spread 230/240")
    ledger = OrderLedger()
    record = placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    ledger.commission("e-7", 2.6)
    outcome = order_outcome(record.ref, record, None)
    assert (outcome.outcome, outcome.filled, outcome.avg_fill_price) == ("filled", 1.0, 3.2)
    assert outcome.commission == 2.6 and len(outcome.fills) == 1
    text = outcome_summary(outcome)
    for figure in ("filled", "1 of 1", "average 3.2", "$2.60", "e-7", "Filled", "perm id 700"):
        assert figure in text, figure
    assert "bull call spread 230/240" in text and "limit 3.25" in text


def test_rejected_unknown_and_never_received_orders() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    record = ledger.submit(preview.terms, follow_ups=(), at=0.0)
    unknown = order_outcome(record.ref, record, None)
    assert unknown.outcome == "outcome_unknown" and "never sent again" in unknown.action
    ledger.update(replace(record.tracked, state="rejected", message="201: no permission"))
    rejected = order_outcome(record.ref, record, None)
    assert rejected.outcome == "rejected" and rejected.reason == "201: no permission"
    assert "201: no permission" in outcome_summary(rejected)
    record.tracked = replace(record.tracked, state="not_received")
    assert order_outcome(record.ref, record, None).outcome == "never_reached_tws"


def test_previews_never_executed_and_foreign_refs() -> None:
    previews, _, preview = stored()
    assert order_outcome(preview.preview_id, None, preview).outcome == "not_sent"
    previews.retire(preview.preview_id, "expired")
    expired = order_outcome(preview.preview_id, None, previews.lookup(preview.preview_id))
    assert (expired.outcome, expired.reason) == ("not_sent", "expired")
    assert order_outcome("manual-7", None, None).outcome == "unknown"
