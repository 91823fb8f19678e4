"""Reconciliation by orderRef: adopt, not received, missed fills, duplicates, done is final."""

from __future__ import annotations

from sumppump.messages.orders import FillReported, OrderBook, OrderRecord
from sumppump.trading.previews import new_preview_id
from sumppump.trading.reconciliation import (
    BAG_CON_ID,
    TrackedOrder,
    apply_fill,
    apply_status,
    reconcile,
    state_of,
)


def record(
    ref: str,
    status: str,
    *,
    perm_id: int = 900,
    filled: float = 0.0,
    qty: float = 2.0,
    order_id: int = 5,
) -> OrderRecord:
    return OrderRecord(
        order_ref=ref,
        order_id=order_id,
        perm_id=perm_id,
        client_id=17,
        symbol="AAPL",
        action="BUY",
        quantity=qty,
        order_type="LMT",
        limit_price=3.2,
        stop_price=None,
        tif="DAY",
        status=status,
        filled=filled,
        remaining=qty - filled,
        avg_fill_price=3.2 if filled else None,
    )


def fill(ref: str, exec_id: str, *, con_id: int = 11, cum: float = 1.0) -> FillReported:
    return FillReported(
        order_ref=ref,
        order_id=5,
        exec_id=exec_id,
        con_id=con_id,
        symbol="AAPL",
        side="BOT",
        shares=1.0,
        price=3.2,
        cum_qty=cum,
        avg_price=3.2,
        time="20261124 15:00:00",
    )


def book(open_=(), completed=(), fills=()) -> OrderBook:  # type: ignore[no-untyped-def]
    return OrderBook(open=tuple(open_), completed=tuple(completed), fills=tuple(fills))


def test_ib_statuses_map_to_states() -> None:
    assert [state_of(s) for s in ("PreSubmitted", "Submitted", "PendingCancel")] == ["working"] * 3
    assert state_of("Filled") == "filled"
    assert state_of("ApiCancelled") == "cancelled"
    assert state_of("Inactive") == "rejected"


def test_a_submitting_order_tws_never_received_is_not_received() -> None:
    ref = new_preview_id()
    local = {ref: TrackedOrder(order_ref=ref, symbol="AAPL", state="submitting")}
    result = reconcile(local, book())
    assert result.not_received == (ref,)
    assert result.orders[ref].state == "not_received" and result.orders[ref].reconciled


def test_a_submitting_order_found_working_is_adopted_with_its_ids() -> None:
    ref = new_preview_id()
    local = {ref: TrackedOrder(order_ref=ref, symbol="AAPL", state="submitting")}
    result = reconcile(local, book(open_=[record(ref, "Submitted")]))
    order = result.orders[ref]
    assert (order.state, order.status, order.order_id, order.perm_id) == (
        "working",
        "Submitted",
        5,
        900,
    )
    assert result.changed == (ref,) and result.adopted == () and result.not_received == ()


def test_an_order_unknown_locally_is_adopted_and_others_refs_are_ignored() -> None:
    ref = new_preview_id()
    result = reconcile(
        {},
        book(
            open_=[record(ref, "Filled", filled=2), record("manual-1", "Submitted")],
            fills=[fill(ref, "e1", cum=2.0), fill("manual-1", "e9")],
        ),
    )
    assert result.adopted == (ref,)
    assert set(result.orders) == {ref}
    assert result.orders[ref].state == "filled" and result.orders[ref].filled == 2
    assert [f.exec_id for f in result.missed_fills] == ["e1"]


def test_fills_seen_before_are_not_reported_again_and_exec_ids_dedupe() -> None:
    ref = new_preview_id()
    local = {
        ref: apply_fill(
            TrackedOrder(order_ref=ref, symbol="AAPL", state="working"), fill(ref, "e1")
        )
    }
    result = reconcile(
        local,
        book(
            completed=[record(ref, "Filled", filled=2)],
            fills=[fill(ref, "e1"), fill(ref, "e2", cum=2.0), fill(ref, "e2", cum=2.0)],
        ),
    )
    assert [f.exec_id for f in result.missed_fills] == ["e2"]
    assert result.orders[ref].exec_ids == {"e1", "e2"}


def test_the_record_furthest_along_wins_when_open_and_completed_both_hold_it() -> None:
    ref = new_preview_id()
    result = reconcile(
        {},
        book(
            open_=[record(ref, "Submitted", filled=1)], completed=[record(ref, "Filled", filled=2)]
        ),
    )
    assert result.orders[ref].state == "filled" and result.duplicates == ()


def test_two_ib_orders_with_one_ref_are_reported_as_duplicates() -> None:
    ref = new_preview_id()
    result = reconcile(
        {}, book(open_=[record(ref, "Submitted", perm_id=1), record(ref, "Submitted", perm_id=2)])
    )
    assert result.duplicates == (ref,)


def test_executions_without_an_order_record_still_prove_it_reached_tws() -> None:
    ref = new_preview_id()
    local = {ref: TrackedOrder(order_ref=ref, symbol="AAPL", state="submitting")}
    result = reconcile(local, book(fills=[fill(ref, "e1")]))
    assert result.orders[ref].state == "working" and result.orders[ref].filled == 1
    assert result.not_received == ()


def test_a_done_order_is_not_revived_by_a_late_working_status() -> None:
    order = TrackedOrder(order_ref="sp-x", symbol="AAPL", state="filled", status="Filled", filled=2)
    late = apply_status(order, status="Submitted", filled=1, remaining=1, avg_fill_price=None)
    assert late is order
    cancelled = apply_status(
        TrackedOrder(order_ref="sp-x", symbol="AAPL", state="working"),
        status="Cancelled",
        filled=0,
        remaining=2,
        avg_fill_price=None,
    )
    assert cancelled.state == "cancelled"


def test_bag_fills_count_the_combo_execution_not_each_leg() -> None:
    order = TrackedOrder(
        order_ref="sp-x", symbol="AAPL", state="working", quantity=2, is_combo=True
    )
    order = apply_fill(order, fill("sp-x", "leg1", con_id=11, cum=100.0))
    order = apply_fill(order, fill("sp-x", "leg2", con_id=12, cum=1.0))
    assert order.filled == 0.0
    order = apply_fill(order, fill("sp-x", "combo", con_id=BAG_CON_ID, cum=1.0))
    assert order.filled == 1.0 and len(order.fills) == 3
    again = apply_fill(order, fill("sp-x", "combo", con_id=BAG_CON_ID, cum=1.0))
    assert again is order


def test_an_unchanged_order_is_not_listed_as_changed() -> None:
    ref = new_preview_id()
    local = {
        ref: TrackedOrder(
            order_ref=ref,
            symbol="AAPL",
            state="working",
            status="Submitted",
            order_id=5,
            perm_id=900,
            quantity=2,
            remaining=2,
        )
    }
    result = reconcile(local, book(open_=[record(ref, "Submitted")]))
    assert result.changed == ()
