"""Refusals of the order path (pure): one constructor, the answers for a finished preview
(its tombstone), and the texts used in more than one place."""

from __future__ import annotations

from typing import Final

from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import ExecutionRefused, PreviewCreated
from sumppump.trading.previews import Preview, Tombstone

__all__ = ["TOMBSTONE_ANSWERS", "not_connected", "refused", "tombstone_refusal"]


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
