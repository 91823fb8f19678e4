"""The order ledger: one record per order, its state machine, the replay of the audit log
(execution ids, order ids and perm ids restored, so an unchanged order is not re-reported),
and the adoption of TWS's order book."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec
import pytest

from sumppump.messages.orders import FillReported, OrderBook, OrderRecord
from sumppump.trading.ledger import TRANSITIONS, OrderLedger
from sumppump.trading.reconciliation import TrackedOrder
from tests.trading.factory import placed, stored

STATES = list(TRANSITIONS)


@pytest.mark.parametrize("old", STATES)
@pytest.mark.parametrize("new", STATES)
def test_the_state_machine_allows_only_its_moves(old: str, new: str) -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    record = ledger.submit(preview.terms, follow_ups=(), at=0.0)
    record.tracked = replace(record.tracked, state=old)  # type: ignore[arg-type]
    moved = record.advance(replace(record.tracked, state=new, status="x"))  # type: ignore[arg-type]
    allowed = new == old or new in TRANSITIONS[old]  # type: ignore[index]
    assert moved == allowed
    assert record.state == (new if allowed else old)


def test_a_done_order_is_never_revived_by_a_late_report() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    record = placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    assert record.state == "filled"
    assert not ledger.update(replace(record.tracked, state="working", status="Submitted"))
    assert record.state == "filled"


def _lines(ledger_ref: str, preview_order: Any) -> list[dict[str, Any]]:
    """Audit lines as today's version writes them for one filled spread."""
    return [
        {
            "ts": "2026-12-01T15:00:00+00:00",
            "event": "submit",
            "order_ref": ledger_ref,
            "symbol": "AAPL",
            "kind": "open",
            "order": preview_order,
            "meta": {"strategy": "bull call spread", "max_loss": 325.0, "description": "d"},
            "state": "submitting",
        },
        {
            "event": "status",
            "order_ref": ledger_ref,
            "state": "working",
            "status": "Submitted",
            "order_id": 7,
            "perm_id": 700,
            "filled": 0.0,
            "remaining": 1.0,
        },
        {
            "event": "fill",
            "order_ref": ledger_ref,
            "symbol": "AAPL",
            "exec_id": "e-7",
            "con_id": 28812380,
            "side": "BOT",
            "shares": 1.0,
            "price": 3.2,
            "cum_qty": 1.0,
            "state": "working",
            "filled": 1.0,
        },
        {
            "event": "status",
            "order_ref": ledger_ref,
            "state": "filled",
            "status": "Filled",
            "order_id": 7,
            "perm_id": 700,
            "filled": 1.0,
            "remaining": 0.0,
            "avg_fill_price": 3.2,
        },
    ]


def _book(ref: str) -> OrderBook:
    record = OrderRecord(
        order_ref=ref,
        order_id=7,
        perm_id=700,
        client_id=1,
        symbol="AAPL",
        action="BUY",
        quantity=1.0,
        order_type="LMT",
        limit_price=3.25,
        stop_price=None,
        tif="DAY",
        status="Filled",
        filled=1.0,
        remaining=0.0,
        avg_fill_price=3.2,
        leg_con_ids=(11, 12),
    )
    fill = FillReported(
        order_ref=ref,
        order_id=7,
        exec_id="e-7",
        con_id=28812380,
        symbol="AAPL",
        side="BOT",
        shares=1.0,
        price=3.2,
        cum_qty=1.0,
        avg_price=3.2,
        time="t",
    )
    return OrderBook(open=(), completed=(record,), fills=(fill,))


def test_replay_restores_ids_and_executions_so_reconciliation_finds_nothing_new() -> None:
    _, _, preview = stored()
    ref = preview.preview_id
    ledger = OrderLedger()
    replayed = ledger.replay(_lines(ref, msgspec.to_builtins(preview.order)))
    assert replayed.used == ((ref, "AAPL"),)
    record = ledger.get(ref)
    assert record is not None and record.state == "filled"
    assert (record.tracked.order_id, record.tracked.perm_id) == (7, 700)
    assert record.tracked.exec_ids == frozenset({"e-7"})
    assert record.meta.description == "d"
    assert record.prompted_filled == 1.0
    adopted = ledger.adopt(_book(ref), now=1e10, ack_window=20.0)
    assert adopted.changed == ()
    assert adopted.missed_fills == ()


def test_without_restored_executions_every_past_fill_would_look_missed() -> None:
    _, _, preview = stored()
    ref = preview.preview_id
    ledger = OrderLedger()
    record = ledger.submit(preview.terms, follow_ups=(), at=0.0)
    ledger.update(replace(record.tracked, state="filled", status="Filled", filled=1.0))
    adopted = ledger.adopt(_book(ref), now=1e10, ack_window=20.0)
    assert adopted.changed == (ref,)
    assert len(adopted.missed_fills) == 1


def test_a_young_submit_is_not_declared_lost_and_an_old_one_is() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    ledger.submit(preview.terms, follow_ups=(), at=100.0)
    empty = OrderBook(open=(), completed=(), fills=())
    young = ledger.adopt(empty, now=105.0, ack_window=20.0)
    assert young.changed == () and young.retry_in == pytest.approx(15.05)
    old = ledger.adopt(empty, now=125.0, ack_window=20.0)
    assert old.changed == (preview.preview_id,)
    record = ledger.get(preview.preview_id)
    assert record is not None and record.state == "not_received"


def test_unknown_lines_and_foreign_refs_are_skipped_on_replay() -> None:
    ledger = OrderLedger()
    replayed = ledger.replay(
        [
            {"event": "status", "order_ref": "not-ours", "state": "filled"},
            {"event": "submit", "order_ref": "sp-" + "a" * 24, "order": {"bad": 1}},
            {"event": "fill", "order_ref": "sp-" + "a" * 24, "exec_id": 3},
            {"event": "mystery", "order_ref": "sp-" + "a" * 24},
        ]
    )
    record = ledger.get("sp-" + "a" * 24)
    assert record is not None and record.spec is None and record.state == "submitting"
    assert replayed.records == 3


def test_commission_is_kept_per_execution() -> None:
    _, _, preview = stored()
    ledger = OrderLedger()
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    assert ledger.commission("e-7", 1.3) == preview.preview_id
    assert ledger.commission("e-unknown", 1.0) is None
    record = ledger.get(preview.preview_id)
    assert record is not None and record.commissions == {"e-7": 1.3}


def test_an_adopted_order_without_a_submit_line_has_no_spec() -> None:
    ledger = OrderLedger()
    assert ledger.update(TrackedOrder("sp-" + "b" * 24, "AAPL", "working"))
    record = ledger.get("sp-" + "b" * 24)
    assert record is not None and record.spec is None
