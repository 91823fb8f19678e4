"""Reports on one order (pure): :class:`OrderStatusReport` (``GetOrderStatus``) and the true
outcome :class:`OrderOutcome` (``GetOrderOutcome``, the ``get_order_status`` tool)."""

from __future__ import annotations

from sumppump.messages.execution import (
    BreakerState,
    OrderOutcome,
    OrderOutcomeState,
    OrderStatusReport,
    OrderSubmitted,
    PreviewCreated,
    StopLossPrompt,
)
from sumppump.messages.orders import OrderPlaced
from sumppump.trading.breaker import CircuitBreaker
from sumppump.trading.confirm import money
from sumppump.trading.ledger import OrderRecord, fill_info
from sumppump.trading.outcome import outcome_words
from sumppump.trading.previews import Preview, Tombstone, is_preview_id

__all__ = [
    "breaker_state",
    "fresh_notes",
    "order_outcome",
    "order_submitted",
    "preview_created",
    "status_report",
]

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


def preview_created(
    preview: Preview, remaining_s: float, notes: tuple[str, ...] = ()
) -> PreviewCreated:
    """The answer for a stored preview (its warnings, then ``notes``)."""
    terms = preview.terms
    return PreviewCreated(
        preview_id=preview.preview_id,
        confirm_text=preview.confirm_text,
        expires_at=preview.expires_at,
        expires_in_s=round(remaining_s, 3),
        order=preview.order,
        kind=preview.kind,
        symbol=preview.symbol,
        max_loss=terms.max_loss,
        max_gain=terms.max_gain,
        breakevens=terms.breakevens,
        net_debit=terms.net_debit,
        account_kind=terms.account_kind,
        digest=preview.digest,
        notes=(*terms.warnings, *notes),
        details=terms.details,
        replaces_order_ref=terms.replaces_order_ref,
    )


def order_submitted(
    preview: Preview, record: OrderRecord, placed: OrderPlaced, prompt: StopLossPrompt | None
) -> OrderSubmitted:
    """The answer once TWS acknowledged (``placed``) the order of ``record``."""
    tracked = record.tracked
    waiting = not preview.order.transmit
    return OrderSubmitted(
        order_ref=record.ref,
        order_id=placed.order_id,
        perm_id=placed.perm_id,
        status=placed.status,
        filled=tracked.filled,
        remaining=placed.remaining,
        avg_fill_price=tracked.avg_fill_price,
        fills=tuple(fill_info(f) for f in tracked.fills),
        stop_loss_prompt=prompt,
        waiting_for_tws_transmit=waiting,
        account_kind=preview.terms.account_kind,
        symbol=preview.symbol,
        confirm_text=preview.confirm_text,
        message=(
            "The order waits in TWS: press Transmit there to send it."
            if waiting
            else f"Order {record.ref} is {placed.status}."
        ),
    )


def breaker_state(breaker: CircuitBreaker, *, ready: bool, epoch: int | None) -> BreakerState:
    """The breaker, and whether execution accepts orders (reconciled for ``epoch``)."""
    return BreakerState(
        open=breaker.open,
        consecutive_rejections=breaker.consecutive,
        threshold=breaker.threshold,
        last_rejection=breaker.last_rejection,
        ready=ready,
        reconciled_epoch=epoch,
    )


def fresh_notes(max_loss: float | None) -> tuple[str, ...]:
    """The notes of a fresh preview made after the price moved."""
    return (
        f"fresh preview after the price moved; max loss now {money(max_loss)}"
        if max_loss is not None
        else "fresh preview after the price moved",
        "breakevens moved too: run calculate_strategy for the full analysis",
    )


def outcome_summary(outcome: OrderOutcome) -> str:
    """Every figure of ``outcome`` in a few lines of text (the text content of
    ``get_order_status``: some clients give the model only that)."""
    parts = [f"{outcome.order_ref}: {outcome.outcome.replace('_', ' ')}. {outcome.message}."]
    if outcome.description:
        parts.append(f"Order: {outcome.description}.")
    if outcome.order is not None:
        o = outcome.order
        price = " ".join(
            f"{name} {value:g}"
            for name, value in (("limit", o.limit_price), ("stop", o.stop_price))
            if value is not None
        )
        parts.append(f"Terms: {o.quantity} × {o.order_type} {price} {o.tif}".rstrip() + ".")
    if outcome.order_id is not None or outcome.status:
        parts.append(
            f"IB status {outcome.status or 'n/a'}, order id {outcome.order_id}, "
            f"perm id {outcome.perm_id}."
        )
    if outcome.quantity or outcome.filled:
        avg = "n/a" if outcome.avg_fill_price is None else f"{outcome.avg_fill_price:g}"
        commission = "not reported" if outcome.commission is None else money(outcome.commission)
        parts.append(
            f"Filled {outcome.filled:g} of {outcome.quantity:g} (remaining "
            f"{outcome.remaining:g}) at average {avg}; commission {commission}."
        )
    if outcome.fills:
        fills = "; ".join(
            f"{f.side} {f.shares:g} of {f.con_id} at {f.price:g} ({f.exec_id}, {f.time})"
            for f in outcome.fills
        )
        parts.append(f"Fills: {fills}.")
    if outcome.reason:
        parts.append(f"Reason: {outcome.reason}.")
    if outcome.action:
        parts.append(f"Being done: {outcome.action}.")
    return " ".join(parts)
