"""Reconciliation of what execution believes against what TWS reports (pure functions).

The nautilus_trader pattern (``live/reconciliation.py``): the venue is the source of truth; on
(re)start and after every reconnect, execution fetches open orders, completed orders and
executions and derives, per ``orderRef``, the state it must adopt, flagged as coming from
reconciliation. Nothing here talks to TWS or mutates anything; the actor applies the result.

Rules (:func:`reconcile`):

* only orders whose ``order_ref`` is one of ours (``sp-…``) are considered;
* a ref we track is updated to the broker's state; a ref we do not track (placed by an earlier
  incarnation that died before recording the acknowledgement) is *adopted*;
* a ref we sent (``submitting``) that TWS does not know at all is ``not_received``: the order
  never arrived, it is safe to say so (and it is still never re-sent);
* executions are de-duplicated by ``exec_id``; those we had not seen are ``missed_fills``;
* two distinct IB orders with one ref are reported in ``duplicates`` (must never happen; the
  invariant tests check it);
* among the records of one IB order (open and completed lists may both hold it), the one
  furthest along wins: done beats working, then more filled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from sumppump.messages.orders import FillReported, OrderBook, OrderRecord
from sumppump.trading.previews import is_preview_id

__all__ = [
    "BAG_CON_ID",
    "OrderState",
    "Reconciliation",
    "TrackedOrder",
    "apply_fill",
    "apply_status",
    "is_done",
    "reconcile",
    "state_of",
]

#: The conId IB reports for the combo-level execution of a BAG order.
BAG_CON_ID: Final = 28812380

OrderState = Literal[
    "submitting", "working", "filled", "cancelled", "rejected", "not_received", "unknown"
]

_WORKING: Final = frozenset(
    {"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"}
)
_DONE: Final = {
    "Filled": "filled",
    "Cancelled": "cancelled",
    "ApiCancelled": "cancelled",
    "Inactive": "rejected",
}


def state_of(ib_status: str) -> OrderState:
    """Our coarse state for one of IB's order statuses (unknown statuses count as working:
    the order exists and is not known to be done)."""
    done = _DONE.get(ib_status)
    if done is not None:
        return done  # type: ignore[return-value]
    return "working"


def is_done(state: OrderState) -> bool:
    return state in ("filled", "cancelled", "rejected", "not_received")


@dataclass(frozen=True, slots=True)
class TrackedOrder:
    """Execution's view of one order it sent (keyed by ``order_ref`` = preview id)."""

    order_ref: str
    symbol: str
    state: OrderState
    status: str = ""
    order_id: int | None = None
    perm_id: int | None = None
    quantity: float = 0.0
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float | None = None
    exec_ids: frozenset[str] = frozenset()
    fills: tuple[FillReported, ...] = ()
    kind: str = "open"
    is_combo: bool = False
    reconciled: bool = False
    message: str = ""


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the actor must adopt: the new view of every order concerned, and why."""

    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    adopted: tuple[str, ...] = ()
    not_received: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    missed_fills: tuple[FillReported, ...] = ()
    duplicates: tuple[str, ...] = ()


def _rank(record: OrderRecord) -> tuple[int, float]:
    return (1 if state_of(record.status) != "working" else 0, record.filled)


def _best_records(
    records: Iterable[OrderRecord], ours: Callable[[str], bool]
) -> tuple[dict[str, OrderRecord], list[str]]:
    """One record per ref (the furthest along), and the refs held by more than one IB order."""
    by_ref: dict[str, dict[int, OrderRecord]] = {}
    for record in records:
        if not ours(record.order_ref):
            continue
        # One IB order is identified by its permId (orderId may be 0 in completed orders).
        key = record.perm_id or record.order_id
        known = by_ref.setdefault(record.order_ref, {}).get(key)
        if known is None or _rank(record) > _rank(known):
            by_ref[record.order_ref][key] = record
    best: dict[str, OrderRecord] = {}
    duplicates: list[str] = []
    for ref, orders in by_ref.items():
        if len(orders) > 1:
            duplicates.append(ref)
        best[ref] = max(orders.values(), key=_rank)
    return best, duplicates


def reconcile(
    tracked: Mapping[str, TrackedOrder],
    book: OrderBook,
    *,
    ours: Callable[[str], bool] = is_preview_id,
) -> Reconciliation:
    """Compare ``tracked`` with ``book``; see the module docstring for the rules."""
    best, duplicates = _best_records((*book.open, *book.completed), ours)
    fills_by_ref: dict[str, list[FillReported]] = {}
    seen_exec: set[str] = set()
    for fill in book.fills:
        if not ours(fill.order_ref) or fill.exec_id in seen_exec:
            continue
        seen_exec.add(fill.exec_id)
        fills_by_ref.setdefault(fill.order_ref, []).append(fill)

    orders: dict[str, TrackedOrder] = {}
    adopted: list[str] = []
    not_received: list[str] = []
    changed: list[str] = []
    missed: list[FillReported] = []

    for ref in sorted(set(best) | set(fills_by_ref) | set(tracked)):
        local = tracked.get(ref)
        record = best.get(ref)
        fills = fills_by_ref.get(ref, [])
        if record is None and not fills:
            if local is not None and local.state == "submitting":
                orders[ref] = replace(
                    local,
                    state="not_received",
                    reconciled=True,
                    message="TWS has no order with this reference: it was never received",
                )
                not_received.append(ref)
                changed.append(ref)
            continue
        base = local or TrackedOrder(
            order_ref=ref,
            symbol=_symbol(record, fills),
            state="working",
            is_combo=bool(record and len(record.leg_con_ids) > 1)
            or any(f.con_id == BAG_CON_ID for f in fills),
        )
        if local is None:
            adopted.append(ref)
        new_fills = [f for f in fills if f.exec_id not in base.exec_ids]
        missed.extend(new_fills)
        updated = base
        for fill in new_fills:
            updated = apply_fill(updated, fill)
        if record is not None:
            updated = replace(
                updated,
                state=state_of(record.status),
                status=record.status,
                order_id=record.order_id or updated.order_id,
                perm_id=record.perm_id or updated.perm_id,
                quantity=record.quantity or updated.quantity,
                filled=max(record.filled, updated.filled),
                remaining=record.remaining,
                avg_fill_price=record.avg_fill_price
                if record.avg_fill_price is not None
                else updated.avg_fill_price,
            )
        elif updated.state == "submitting":
            # Executions without an order record: it reached TWS and traded.
            updated = replace(updated, state="working")
        updated = replace(updated, reconciled=True)
        if local is None or _differs(local, updated):
            changed.append(ref)
        orders[ref] = updated

    return Reconciliation(
        orders=orders,
        adopted=tuple(adopted),
        not_received=tuple(not_received),
        changed=tuple(changed),
        missed_fills=tuple(missed),
        duplicates=tuple(sorted(duplicates)),
    )


def _symbol(record: OrderRecord | None, fills: list[FillReported]) -> str:
    if record is not None:
        return record.symbol
    return fills[0].symbol if fills else ""


def _differs(a: TrackedOrder, b: TrackedOrder) -> bool:
    return (a.state, a.status, a.filled, a.exec_ids) != (b.state, b.status, b.filled, b.exec_ids)


def apply_fill(order: TrackedOrder, fill: FillReported) -> TrackedOrder:
    """Record one execution (idempotent by ``exec_id``). For a combo (``is_combo``, or once a
    combo-level execution was seen) only the combo-level execution (conId :data:`BAG_CON_ID`)
    moves ``filled``: leg executions count in leg units (100 shares for a buy-write)."""
    if fill.exec_id in order.exec_ids:
        return order
    combo = order.is_combo or fill.con_id == BAG_CON_ID
    counts = fill.con_id == BAG_CON_ID or not combo
    filled = max(order.filled, fill.cum_qty) if counts else order.filled
    return replace(
        order,
        exec_ids=order.exec_ids | {fill.exec_id},
        fills=(*order.fills, fill),
        filled=filled,
        avg_fill_price=fill.avg_price if counts else order.avg_fill_price,
        state="working" if order.state == "submitting" else order.state,
        is_combo=combo,
    )


def apply_status(
    order: TrackedOrder,
    *,
    status: str,
    filled: float,
    remaining: float,
    avg_fill_price: float | None,
    order_id: int | None = None,
    perm_id: int | None = None,
    message: str = "",
) -> TrackedOrder:
    """Adopt a status report. A done state is final: a late ``Submitted`` never revives a
    ``Filled``/``Cancelled`` order (reports can arrive out of order across reconnects)."""
    new_state = state_of(status)
    if is_done(order.state) and order.state != "not_received" and not is_done(new_state):
        return order
    return replace(
        order,
        state=new_state,
        status=status,
        filled=max(order.filled, filled),
        remaining=remaining,
        avg_fill_price=avg_fill_price if avg_fill_price is not None else order.avg_fill_price,
        order_id=order_id or order.order_id,
        perm_id=perm_id or order.perm_id,
        message=message or order.message,
    )
