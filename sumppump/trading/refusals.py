"""Refusals of the order path (pure): one constructor, the answers for a finished preview
(its tombstone), and the texts used in more than one place."""

from __future__ import annotations

from typing import Final

from sumppump.messages.common import NotConnected
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import ExecutionRefused, PreviewCreated
from sumppump.messages.orders import OrderRejected
from sumppump.trading.previews import Preview, Tombstone
from sumppump.trading.reconciliation import OrderState, is_done

__all__ = [
    "TOMBSTONE_ANSWERS",
    "cancel_failed",
    "cancel_refusal",
    "not_connected",
    "refused",
    "rejected",
    "tombstone_refusal",
]


def refused(
    code: ErrorCode,
    message: str,
    hint: str,
    *,
    reason: str = "",
    order_ref: str = "",
    fresh: PreviewCreated | None = None,
    checks: tuple[str, ...] = (),
    retry_after: float | None = None,
) -> ExecutionRefused:
    """An :class:`ExecutionRefused`: nothing was sent."""
    return ExecutionRefused(
        code=code,
        message=message,
        hint=hint,
        reason=reason,
        order_ref=order_ref,
        fresh_preview=fresh,
        checks=checks,
        retry_after=retry_after,
    )


def not_connected(why: str) -> ExecutionRefused:
    """A change or stop cannot be prepared: TWS is not connected."""
    return refused(
        ErrorCode.NOT_CONNECTED,
        f"not connected to TWS {why}".strip(),
        "retry once TWS is connected",
    )


#: What a finished preview answers, by its tombstone's reason. ``used`` does not say what
#: became of the order: the execution actor adds that from the ledger (see
#: :func:`sumppump.trading.outcome.used_answer`).
TOMBSTONE_ANSWERS: Final[dict[str, tuple[ErrorCode, str, str]]] = {
    "used": (
        ErrorCode.PREVIEW_USED,
        "this preview was already used",
        "use get_order_status with this id to see what became of the order; make a new "
        "preview for another order",
    ),
    "risk_refused": (
        ErrorCode.PREVIEW_USED,
        "this preview was refused by the risk checks when it was executed",
        "make a new preview; it will show the checks",
    ),
    "expired": (
        ErrorCode.PREVIEW_EXPIRED,
        "this preview expired",
        "run calculate_strategy (or set_stop_loss) again for a fresh preview",
    ),
    "voided": (
        ErrorCode.PREVIEW_EXPIRED,
        "this preview was voided because the session switched to another symbol",
        "ask for this symbol again and make a fresh preview",
    ),
    "superseded": (
        ErrorCode.PREVIEW_EXPIRED,
        "this preview was replaced by a fresh one after the price moved",
        "confirm the fresh preview instead",
    ),
    "epoch_changed": (
        ErrorCode.PREVIEW_EXPIRED,
        "the connection to TWS was re-established after this preview was made",
        "make a fresh preview; contracts and quotes are re-read after a reconnect",
    ),
    "evicted": (
        ErrorCode.PREVIEW_EXPIRED,
        "this preview was dropped (too many open previews)",
        "make a fresh preview",
    ),
    "declined": (
        ErrorCode.PREVIEW_EXPIRED,
        "the person declined this preview (Cancel in the order ticket)",
        "nothing was sent; make a new preview only if the person asks for it",
    ),
}


def tombstone_refusal(
    pid: str, found: Preview | Tombstone | None, *, outcome: str = ""
) -> ExecutionRefused:
    """The refusal for an id that is not an open preview: its tombstone's answer (for
    ``used``, ``outcome`` states what became of the order), or ``PREVIEW_UNKNOWN``."""
    if isinstance(found, Tombstone):
        code, message, hint = TOMBSTONE_ANSWERS[found.reason]
        detail = f" ({found.detail})" if found.detail else ""
        if outcome:
            message = f"{message}: {outcome}"
        return refused(code, message + detail, hint, reason=found.reason, order_ref=pid)
    return refused(
        ErrorCode.PREVIEW_UNKNOWN,
        "no preview with this id was issued (or it was forgotten after a restart)",
        "use the preview_id exactly as calculate_strategy/set_stop_loss returned it",
        reason="unknown",
        order_ref=pid,
    )


def rejected(ref: str, reply: OrderRejected) -> ExecutionRefused:
    """IB refused the order ``ref`` (``code`` 0: the order desk refused it before sending)."""
    return refused(
        ErrorCode.ORDER_REJECTED,
        f"IB rejected the order ({reply.code}): {reply.message}"
        if reply.code
        else f"the order was refused before sending: {reply.message}",
        "read the reason; make a new preview once it is addressed",
        reason="rejected",
        order_ref=ref,
    )


def cancel_refusal(ref: str, ours: bool, state: OrderState | None) -> ExecutionRefused | None:
    """Why ``ref`` cannot be cancelled (not ours, already done), or ``None``."""
    if not ours:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"{ref!r} is not an order placed by SumpPump",
            "use the order_ref from execute_trade or get_open_orders",
            order_ref=ref,
        )
    if state is not None and is_done(state):
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"order {ref} is {state}; there is nothing to cancel",
            "get_open_orders lists what is still working",
            reason="done",
            order_ref=ref,
        )
    return None


def cancel_failed(ref: str, reply: OrderRejected | NotConnected) -> ExecutionRefused:
    """TWS refused the cancel, or is not connected."""
    if isinstance(reply, NotConnected):
        return refused(
            ErrorCode.NOT_CONNECTED,
            f"not connected to TWS: {reply.reason}",
            "cancel in TWS directly, or retry once connected",
            order_ref=ref,
        )
    return refused(
        ErrorCode.INVALID_ARGUMENT if reply.code == 0 else ErrorCode.ORDER_REJECTED,
        f"cancel refused: {reply.message}",
        "get_open_orders lists what is still working",
        reason="cancel_refused",
        order_ref=ref,
    )
