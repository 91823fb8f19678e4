"""Reports on one order (pure): :class:`OrderStatusReport` (``GetOrderStatus``) and the true
outcome :class:`OrderOutcome` (``GetOrderOutcome``, the ``get_order_status`` tool)."""

from __future__ import annotations

from sumppump.messages.execution import OrderOutcome, OrderOutcomeState, OrderStatusReport
from sumppump.trading.ledger import OrderRecord, fill_info
from sumppump.trading.outcome import outcome_words
from sumppump.trading.previews import Preview, Tombstone, is_preview_id

__all__ = ["order_outcome", "status_report"]

_OUTCOMES: dict[str, OrderOutcomeState] = {
    "working": "working",
    "filled": "filled",
    "cancelled": "cancelled",
    "rejected": "rejected",
    "not_received": "never_reached_tws",
    "submitting": "outcome_unknown",
}


def status_report(ref: str, record: OrderRecord | None) -> OrderStatusReport:
    """IB's view of the order ``ref`` (``found=False`` when it is not one of ours)."""
    if record is None:
        return OrderStatusReport(
            order_ref=ref,
            found=False,
            state="unknown",
            message="no order of ours with this reference",
        )
    order = record.tracked
    return OrderStatusReport(
        order_ref=ref,
        found=True,
        state=order.state,
        status=order.status,
        order_id=order.order_id,
        perm_id=order.perm_id,
        filled=order.filled,
        remaining=order.remaining,
        avg_fill_price=order.avg_fill_price,
        fills=tuple(fill_info(f) for f in order.fills),
        symbol=order.symbol,
        reconciled=order.reconciled,
        message=order.message,
        stop_loss_prompt=record.last_prompt,
    )


def order_outcome(
    ref: str, record: OrderRecord | None, preview: Preview | Tombstone | None
) -> OrderOutcome:
    """What became of ``ref``: from the ledger when an order was sent (or tried), else from
    the preview store (a preview never executed), else ``unknown``."""
    if record is None:
        return _without_order(ref, preview)
    tracked = record.tracked
    outcome = _OUTCOMES.get(tracked.state, "outcome_unknown")
    action = ""
    if outcome == "outcome_unknown":
        action = (
            "it is never sent again; reconciliation reads TWS's open and completed orders and "
            "executions until it finds the order or, after the acknowledgement window, "
            "establishes that TWS never received it"
        )
    commission = sum(record.commissions.values()) if record.commissions else None
    return OrderOutcome(
        order_ref=ref,
        outcome=outcome,
        message=outcome_words(record),
        symbol=tracked.symbol,
        kind=record.kind,
        description=record.meta.description,
        order=record.spec,
        status=tracked.status,
        order_id=tracked.order_id,
        perm_id=tracked.perm_id,
        quantity=tracked.quantity,
        filled=tracked.filled,
        remaining=tracked.remaining,
        avg_fill_price=tracked.avg_fill_price,
        commission=None if commission is None else round(commission, 2),
        fills=tuple(fill_info(f) for f in tracked.fills),
        reason=tracked.message if outcome == "rejected" else "",
        action=action,
        reconciled=tracked.reconciled,
    )


def _without_order(ref: str, preview: Preview | Tombstone | None) -> OrderOutcome:
    if isinstance(preview, Preview):
        return OrderOutcome(
            order_ref=ref,
            outcome="not_sent",
            message=f"{ref} is an open preview: nothing was sent (execute_trade places it)",
            symbol=preview.symbol,
            kind=preview.kind,
            description=preview.terms.description,
            order=preview.order,
            reason="open",
        )
    if isinstance(preview, Tombstone) and preview.reason != "used":
        detail = f" ({preview.detail})" if preview.detail else ""
        return OrderOutcome(
            order_ref=ref,
            outcome="not_sent",
            message=f"preview {ref} was never placed: {preview.reason}{detail}",
            symbol=preview.symbol,
            reason=preview.reason,
        )
    if isinstance(preview, Tombstone):
        return OrderOutcome(
            order_ref=ref,
            outcome="unknown",
            message=f"preview {ref} was used, but its order is no longer in the audit log read "
            "at start: get_open_orders and TWS's trade log show it",
            symbol=preview.symbol,
            reason="used",
        )
    why = "" if is_preview_id(ref) else " (SumpPump's references start with sp-)"
    return OrderOutcome(
        order_ref=ref,
        outcome="unknown",
        message=f"no order or preview of SumpPump has the reference {ref!r}{why}",
    )
