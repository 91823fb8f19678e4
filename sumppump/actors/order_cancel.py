"""Cancelling one of our working orders by its orderRef, for the execution actor."""

from __future__ import annotations

from sumppump.actors.order_journal import OrderJournal
from sumppump.actors.runtime import ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.messages import execution as ex
from sumppump.messages.common import NotConnected
from sumppump.messages.orders import CancelOrder, CancelRequested, OrderRejected
from sumppump.trading.ledger import OrderLedger
from sumppump.trading.previews import is_preview_id
from sumppump.trading.refusals import cancel_failed, cancel_refusal

__all__ = ["cancel_by_ref"]


async def cancel_by_ref(
    ref: str, ledger: OrderLedger, connection: Ref, journal: OrderJournal
) -> ex.CancelResult | ex.ExecutionRefused | str:
    """Ask the order desk to cancel ``ref``; the ledger and the audit log record the request.
    Returns the result, a refusal (nothing sent, or refused by IB), or the cause when the
    outcome is unknown (the caller reconciles; never retried)."""
    known = ledger.get(ref)
    refusal = cancel_refusal(ref, is_preview_id(ref), known.state if known else None)
    if refusal is not None:
        return refusal
    try:
        reply = await connection.call(
            CancelOrder(order_ref=ref), timeout=max(1.0, remaining_budget(8.0) - 0.5)
        )
    except (ActorDown, CallTimeout) as exc:
        return f"the cancel request ended in {type(exc).__name__}"
    match reply:
        case CancelRequested(order_id=order_id, status=status):
            await journal.line("cancel", order_ref=ref, order_id=order_id, status=status)
            ledger.cancel_requested(ref, reply)
            message = f"cancel requested; the order is {status}"
            return ex.CancelResult(order_ref=ref, order_id=order_id, status=status, message=message)
        case OrderRejected() | NotConnected():
            refusal = cancel_failed(ref, reply)
            if isinstance(reply, OrderRejected):
                await journal.refusal(ref, refusal)
            return refusal
        case _:
            return f"unexpected answer {type(reply).__name__}"
