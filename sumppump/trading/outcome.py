"""What became of an order (pure): the words a used preview answers with, so an
``execute_trade`` repeated for a used id states the order's true outcome."""

from __future__ import annotations

from sumppump.trading.ledger import OrderRecord

__all__ = ["outcome_words"]


def outcome_words(record: OrderRecord | None) -> str:
    """One clause on the order's state, for ``PREVIEW_USED``; empty when the order is not in
    the ledger (used before a restart whose log no longer holds it)."""
    if record is None:
        return ""
    tracked = record.tracked
    ref = record.ref
    match tracked.state:
        case "submitting":
            return (
                f"order {ref} was handed to TWS and its outcome is not known yet; "
                "reconciliation with TWS is establishing it and it is never sent again"
            )
        case "working":
            filled = (
                f", {tracked.filled:g} of {tracked.quantity:g} filled" if tracked.filled else ""
            )
            return f"order {ref} is working in TWS ({tracked.status or 'acknowledged'}{filled})"
        case "filled":
            price = f" at {tracked.avg_fill_price:g}" if tracked.avg_fill_price is not None else ""
            return f"order {ref} filled {tracked.filled:g}{price}"
        case "cancelled":
            return f"order {ref} was cancelled ({tracked.filled:g} filled before)"
        case "rejected":
            why = f": {tracked.message}" if tracked.message else ""
            return f"order {ref} was rejected{why}"
        case "not_received":
            return f"order {ref} never reached TWS; nothing was placed"
        case _:
            return f"order {ref} is {tracked.state}"
