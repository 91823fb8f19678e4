"""The order ledger (pure): one :class:`OrderRecord` per order SumpPump sent, keyed by
``order_ref`` (= the preview id), with the order's state machine.

A record holds everything execution knows of one order: IB's view (:class:`TrackedOrder`,
updated by events and reconciliation), the order as last accepted (``spec``), its kind, what
the analysis said (:class:`OrderMeta`), when the write-ahead line was written, the stop-loss
prompting, and the stops that follow it (a close or roll). nautilus_trader keeps its orders the
same way (one ``Order`` per id, with its own ``_ORDER_STATE_TABLE``, in one ``Cache``).

States (:data:`TRANSITIONS`)::

    submitting ──▶ working ──▶ filled | cancelled | rejected
        │  ╲──────────────────▶ filled | cancelled | rejected
        ╰──▶ not_received ──▶ working | filled | cancelled | rejected   (arrived late after all)

A done state (filled, cancelled, rejected) is final: a late ``Submitted`` never revives it
(reports can arrive out of order across reconnects); :meth:`OrderRecord.advance` refuses such a
move and reports no change.

:meth:`OrderLedger.replay` rebuilds the ledger from the audit log's records, including the
execution ids, order ids and perm ids, so that reconciliation after a restart finds nothing new
for an order that did not change, and writes nothing for it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

import msgspec

from sumppump.messages.execution import CreatePreview, FillInfo, StopLossPrompt
from sumppump.messages.orders import (
    CancelRequested,
    FillReported,
    OrderBook,
    OrderLeg,
    OrderPlaced,
    OrderRejected,
    OrderSpec,
    OrderStatusChanged,
)
from sumppump.trading.holdings import OpenedCombo
from sumppump.trading.previews import FollowUp, is_preview_id
from sumppump.trading.reconciliation import (
    OrderState,
    TrackedOrder,
    apply_fill,
    apply_status,
    is_done,
    reconcile,
)

__all__ = [
    "TRANSITIONS",
    "Adoption",
    "OrderLedger",
    "OrderMeta",
    "OrderRecord",
    "Replayed",
    "fill_info",
    "infer_strategy",
]

log = logging.getLogger(__name__)

#: The moves an order's state may make (staying put is always allowed).
TRANSITIONS: Final[Mapping[OrderState, frozenset[OrderState]]] = {
    "submitting": frozenset({"working", "filled", "cancelled", "rejected", "not_received"}),
    "working": frozenset({"filled", "cancelled", "rejected"}),
    "not_received": frozenset({"working", "filled", "cancelled", "rejected"}),
    "filled": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "unknown": frozenset({"submitting", "working", "filled", "cancelled", "rejected"}),
}

_REPLAYED_STATES: Final = frozenset({"working", "filled", "cancelled", "rejected", "not_received"})


class OrderMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What execution remembers of an order it placed, beyond the order itself: the strategy
    name, the analysis' max loss/gain, and which legs opened a position (a roll's new legs).
    Written into the ``submit`` audit line (``meta``)."""

    strategy: str = ""
    max_loss: float | None = None
    max_gain: float | None = None
    #: The loss the order itself adds (a covered call on held shares adds less than the
    #: structure's max loss): what the risk re-check of a modification compares.
    order_max_loss: float | None = None
    opening_con_ids: tuple[int, ...] = ()
    #: A close or roll of a combo opened here: that combo's order_ref (its units shrink).
    closes_order_ref: str = ""
    #: A roll's fill price is the roll's net; the new position's entry is that plus this (the
    #: old position's value per unit when the roll was previewed).
    entry_offset: float = 0.0
    #: What the order is about, in words (``CreatePreview.description``).
    description: str = ""

    @classmethod
    def of(cls, terms: CreatePreview) -> OrderMeta:
        """The meta of an order placed from ``terms``."""
        value = terms.details.position_value if terms.details is not None else None
        return cls(
            strategy=terms.strategy,
            max_loss=terms.max_loss,
            max_gain=terms.max_gain,
            order_max_loss=terms.order_max_loss,
            opening_con_ids=terms.opening_con_ids,
            entry_offset=value if terms.kind == "roll" and value is not None else 0.0,
            closes_order_ref=terms.details.closes_order_ref if terms.details else "",
            description=terms.description,
        )


@dataclass(slots=True)
class OrderRecord:
    """One order of ours. ``spec`` is ``None`` for an order adopted from TWS whose submit
    line was not read (placed by an incarnation whose log tail is gone)."""

    tracked: TrackedOrder
    spec: OrderSpec | None = None
    kind: str = "open"
    meta: OrderMeta = field(default_factory=OrderMeta)
    submitted_at: float = 0.0
    prompted_filled: float = 0.0
    last_prompt: StopLossPrompt | None = None
    follow_ups: tuple[FollowUp, ...] = ()
    #: IB's commission per execution id, as reported (kept in memory only).
    commissions: dict[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.tracked.order_ref

    @property
    def state(self) -> OrderState:
        return self.tracked.state

    @property
    def working(self) -> bool:
        return self.tracked.state == "working"

    def advance(self, new: TrackedOrder) -> bool:
        """Adopt ``new`` when its state is a legal move from the current one (see
        :data:`TRANSITIONS`); returns whether anything changed."""
        old = self.tracked
        if new.state != old.state and new.state not in TRANSITIONS[old.state]:
            return False
        if new == old:
            return False
        self.tracked = new
        return True


@dataclass(frozen=True, slots=True)
class Adoption:
    """What a reconciliation changed: the refs to audit, the executions first seen now, refs
    carried by two IB orders, and when to look again for a young ``submitting`` order."""

    changed: tuple[str, ...]
    missed_fills: tuple[FillReported, ...]
    duplicates: tuple[str, ...]
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay of the audit log found besides the ledger: the preview ids already used
    (with their symbol), so the preview store answers ``used`` for them."""

    used: tuple[tuple[str, str], ...] = ()
    records: int = 0


def fill_info(fill: FillReported) -> FillInfo:
    """A fill as the protocol reports it."""
    return FillInfo(
        order_ref=fill.order_ref,
        exec_id=fill.exec_id,
        con_id=fill.con_id,
        symbol=fill.symbol,
        side=fill.side,
        shares=fill.shares,
        price=fill.price,
        cum_qty=fill.cum_qty,
        avg_price=fill.avg_price,
        time=fill.time,
        ts=fill.ts_init,
    )


class OrderLedger:
    """Every order of ours by ``order_ref``, in the order they were first recorded."""

    def __init__(self) -> None:
        self._records: dict[str, OrderRecord] = {}

    def __contains__(self, ref: object) -> bool:
        return ref in self._records

    def __iter__(self) -> Iterator[OrderRecord]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def get(self, ref: str) -> OrderRecord | None:
        return self._records.get(ref)

    def tracked(self) -> dict[str, TrackedOrder]:
        """IB's view of every order, for reconciliation."""
        return {ref: r.tracked for ref, r in self._records.items()}

    def any_open(self) -> bool:
        """Whether an order is still working or not yet acknowledged."""
        return any(r.state in ("working", "submitting") for r in self._records.values())

    # -- writes

    def submit(
        self, terms: CreatePreview, *, follow_ups: tuple[FollowUp, ...], at: float
    ) -> OrderRecord:
        """Record the order of ``terms`` (bound to its ref) as ``submitting``: the write-ahead
        line is on disk, the order is about to be sent."""
        order = terms.order
        record = OrderRecord(
            tracked=TrackedOrder(
                order_ref=order.order_ref,
                symbol=terms.symbol,
                state="submitting",
                quantity=float(order.quantity),
                kind=terms.kind,
                is_combo=len(order.legs) > 1,
            ),
            spec=order,
            kind=terms.kind,
            meta=OrderMeta.of(terms),
            submitted_at=at,
            follow_ups=follow_ups,
        )
        self._records[order.order_ref] = record
        return record

    def update(self, tracked: TrackedOrder) -> bool:
        """Advance the record of ``tracked.order_ref`` (created, without a spec, when unknown:
        an order adopted from TWS). Returns whether anything changed."""
        record = self._records.get(tracked.order_ref)
        if record is None:
            self._records[tracked.order_ref] = OrderRecord(tracked=tracked, kind=tracked.kind)
            return True
        return record.advance(tracked)

    def on_status(self, event: OrderStatusChanged) -> TrackedOrder | None:
        """Apply IB's status report for one of our refs; the order when it changed."""
        record = self._records.get(event.order_ref)
        current = record.tracked if record else TrackedOrder(event.order_ref, "", "working")
        updated = apply_status(
            current,
            status=event.status,
            filled=event.filled,
            remaining=event.remaining,
            avg_fill_price=event.avg_fill_price,
            order_id=event.order_id,
            perm_id=event.perm_id,
            message=event.error_message,
        )
        return updated if self.update(updated) else None

    def on_fill(self, event: FillReported) -> TrackedOrder | None:
        """Apply one execution of one of our refs (idempotent by ``exec_id``); the order when
        the execution was new."""
        record = self._records.get(event.order_ref)
        current = (
            record.tracked if record else TrackedOrder(event.order_ref, event.symbol, "working")
        )
        if event.exec_id in current.exec_ids:
            return None
        updated = apply_fill(current, event)
        self.update(updated)
        return updated

    def placed(self, ref: str, reply: OrderPlaced) -> OrderRecord:
        """TWS acknowledged the order ``ref`` (or a change of it)."""
        record = self._records[ref]
        record.advance(
            apply_status(
                record.tracked,
                status=reply.status,
                filled=reply.filled,
                remaining=reply.remaining,
                avg_fill_price=reply.avg_fill_price,
                order_id=reply.order_id,
                perm_id=reply.perm_id,
            )
        )
        return record

    def rejected(self, ref: str, reply: OrderRejected) -> OrderRecord:
        """IB (or the desk, ``code`` 0) refused the order ``ref``."""
        record = self._records[ref]
        why = f"{reply.code}: {reply.message}"
        record.advance(replace(record.tracked, state="rejected", status="Rejected", message=why))
        return record

    def acknowledge_missing(self, ref: str, order_id: int) -> None:
        """TWS did not acknowledge ``ref`` in time; the desk gave it ``order_id``."""
        record = self._records[ref]
        record.tracked = replace(record.tracked, order_id=order_id)

    def cancel_requested(self, ref: str, reply: CancelRequested) -> None:
        """TWS took the cancel request of ``ref`` (its status follows)."""
        record = self._records.get(ref)
        if record is not None:
            t = record.tracked
            record.advance(
                apply_status(
                    t,
                    status=reply.status,
                    filled=t.filled,
                    remaining=t.remaining,
                    avg_fill_price=t.avg_fill_price,
                    order_id=reply.order_id,
                )
            )

    def adopt_change(self, ref: str, terms: CreatePreview) -> None:
        """A modification TWS accepted: the working order ``ref`` now has ``terms``' order."""
        record = self._records[ref]
        record.spec = msgspec.structs.replace(terms.order, order_ref=ref)
        if record.kind != "stop":
            record.meta = msgspec.structs.replace(
                record.meta,
                max_loss=terms.max_loss,
                max_gain=terms.max_gain,
                order_max_loss=terms.order_max_loss,
            )
        record.tracked = replace(record.tracked, quantity=float(terms.order.quantity))

    def commission(self, exec_id: str, amount: float) -> str | None:
        """Record IB's commission for one execution; the ref of its order, or ``None`` when
        the execution is not one of ours."""
        for record in self._records.values():
            if exec_id in record.tracked.exec_ids:
                record.commissions[exec_id] = amount
                return record.ref
        return None

    def take_follow_ups(self, ref: str) -> tuple[FollowUp, ...]:
        """The stops to follow once ``ref`` is done (and forget them): empty while it works."""
        record = self._records.get(ref)
        if record is None or not record.follow_ups or not is_done(record.state):
            return ()
        plan, record.follow_ups = record.follow_ups, ()
        return plan if record.tracked.filled > 0 else ()

    def adopt(self, book: OrderBook, *, now: float, ack_window: float) -> Adoption:
        """Reconcile the ledger with TWS's ``book`` (:func:`reconcile`) and adopt the result.
        A ref sent less than ``ack_window`` seconds ago may still be on its way: it is adopted
        when TWS knows it, never yet declared ``not_received``. ``changed`` lists the orders
        whose state moved (each worth one audit line); ids and the ``reconciled`` flag are
        adopted silently."""
        tracked = self.tracked()
        young = {
            r.ref
            for r in self._records.values()
            if r.state == "submitting" and now - r.submitted_at < ack_window
        }
        judged = reconcile({k: v for k, v in tracked.items() if k not in young}, book)
        early = reconcile({k: tracked[k] for k in young}, book)
        # ``early`` also lists every other ref of the book (as if new): only young ones count.
        arrived = {
            ref: order
            for ref, order in early.orders.items()
            if ref in young and order.state != "not_received"
        }
        candidates = {**judged.orders, **arrived}
        moved = set(judged.changed) | (set(early.changed) & set(arrived))
        changed = tuple(
            ref for ref, order in candidates.items() if self.update(order) and ref in moved
        )
        waiting = [
            r.submitted_at
            for r in self._records.values()
            if r.ref in young and r.state == "submitting"
        ]
        return Adoption(
            changed=changed,
            missed_fills=(
                *judged.missed_fills,
                *(f for f in early.missed_fills if f.order_ref in young),
            ),
            duplicates=judged.duplicates,
            retry_in=max(0.05, ack_window - (now - min(waiting)) + 0.05) if waiting else None,
        )

    # -- positions opened here

    def opened_position(self, ref: str, avg_fill_price: float) -> tuple[OrderSpec, float]:
        """The order ``ref`` as the position it opened (a roll: only its new legs) and that
        position's entry price per unit (a roll: its fill plus the old position's value)."""
        record = self._records[ref]
        assert record.spec is not None, "only orders with a known spec open positions"
        spec, meta = record.spec, record.meta
        if not meta.opening_con_ids:
            return spec, avg_fill_price
        opening = set(meta.opening_con_ids)
        legs = tuple(leg for leg in spec.legs if leg.con_id in opening)
        return msgspec.structs.replace(spec, legs=legs), avg_fill_price + meta.entry_offset

    def opened_combos(self, symbol: str) -> list[OpenedCombo]:
        """Multi-leg orders of ours in ``symbol`` that opened something and filled, newest
        first, with only the legs they opened and the units not closed since."""
        closed: dict[str, float] = {}
        for record in self._records.values():
            target = record.meta.closes_order_ref
            if target:
                closed[target] = closed.get(target, 0.0) + record.tracked.filled
        combos = []
        # Newest first: a combo opened in this session claims the positions before an older
        # record of the journal does.
        for record in reversed(list(self._records.values())):
            spec = record.spec
            if spec is None or record.kind not in ("open", "roll") or spec.symbol != symbol:
                continue
            opening = set(record.meta.opening_con_ids)
            legs = tuple(leg for leg in spec.legs if not opening or leg.con_id in opening)
            units = int(record.tracked.filled - closed.get(record.ref, 0.0) + 1e-9)
            if len(legs) < 2 or units <= 0:
                continue
            combos.append(
                OpenedCombo(
                    order_ref=record.ref,
                    legs=legs,
                    filled_units=units,
                    strategy=record.meta.strategy or infer_strategy(legs),
                )
            )
        return combos

    def with_spec(self) -> Iterator[tuple[OrderRecord, OrderSpec]]:
        """Every record whose order is known, oldest first."""
        for record in self._records.values():
            if record.spec is not None:
                yield record, record.spec

    # -- restart

    def snapshot(self, *, keep_done: int = 1000) -> list[dict[str, Any]]:
        """The ledger as audit-format records that :meth:`replay` reads back into the same
        state (a ``submit`` line, the state as a ``status`` line, one ``fill`` line per
        execution): every order not done, and the ``keep_done`` newest done ones. Orders
        adopted without a known spec are left out (reconciliation finds them again)."""
        known = [r for r in self._records.values() if r.spec is not None]
        done = [r for r in known if is_done(r.state)]
        kept = {id(r) for r in done[-keep_done:]} if keep_done else set()
        lines: list[dict[str, Any]] = []
        for record in known:
            if is_done(record.state) and id(record) not in kept:
                continue
            lines.extend(_record_lines(record))
        return lines

    def replay(self, records: Iterable[Mapping[str, Any]]) -> Replayed:
        """Rebuild from the audit log's records (oldest first): ``submit`` lines create the
        records, ``status``/``reconcile``/``fill`` lines advance them, with the ids and the
        executions they carry. Lines of other events, or not about one of our refs, are
        skipped; a malformed field is skipped, never fatal."""
        used: list[tuple[str, str]] = []
        count = 0
        for record in records:
            ref = record.get("order_ref")
            if not isinstance(ref, str) or not is_preview_id(ref):
                continue
            count += 1
            event = record.get("event")
            if event == "submit" and record.get("kind") == "modify":
                # A change re-sent an order we already track: the order keeps its kind.
                used.append((str(record.get("preview_id", "")), ""))
                changed = _convert(record.get("order"), OrderSpec)
                known = self._records.get(ref)
                if known is not None and changed is not None:
                    known.spec = changed
                continue
            if event == "submit" and record.get("kind") == "exercise":
                used.append((ref, str(record.get("symbol", ""))))  # an instruction, no order
                continue
            if event == "submit":
                used.append((ref, str(record.get("symbol", ""))))
                self._replay_submit(ref, record)
            elif event in ("status", "reconcile", "fill") and ref in self._records:
                self._replay_update(self._records[ref], record)
        return Replayed(used=tuple(used), records=count)

    def _replay_submit(self, ref: str, line: Mapping[str, Any]) -> None:
        order = _convert(line.get("order"), OrderSpec)
        kind = str(line.get("kind", "open"))
        meta = _convert(line.get("meta") or {}, OrderMeta) or OrderMeta()
        self._records[ref] = OrderRecord(
            tracked=TrackedOrder(
                order_ref=ref,
                symbol=str(line.get("symbol", "")),
                state="submitting",
                kind=kind,
                quantity=float(order.quantity) if order else 0.0,
                is_combo=bool(order and len(order.legs) > 1),
            ),
            spec=order,
            kind=kind,
            meta=meta,
            submitted_at=_parse_ts(line.get("ts")),
        )

    @staticmethod
    def _replay_update(record: OrderRecord, line: Mapping[str, Any]) -> None:
        tracked = record.tracked
        if line.get("event") == "fill":
            fill = _fill_of(record.ref, line)
            if fill is not None and fill.exec_id not in tracked.exec_ids:
                tracked = replace(
                    tracked,
                    exec_ids=tracked.exec_ids | {fill.exec_id},
                    fills=(*tracked.fills, fill),
                )
        state = line.get("state")
        if isinstance(state, str) and state in _REPLAYED_STATES:
            filled = _number(line.get("filled")) or 0.0
            tracked = replace(
                tracked,
                state=state,  # type: ignore[arg-type]  # checked against _REPLAYED_STATES
                status=str(line.get("status", tracked.status)),
                filled=filled,
                order_id=_int(line.get("order_id")) or tracked.order_id,
                perm_id=_int(line.get("perm_id")) or tracked.perm_id,
                remaining=_number(line.get("remaining")) or tracked.remaining,
                avg_fill_price=_number(line.get("avg_fill_price"), tracked.avg_fill_price),
                message=str(line.get("message") or tracked.message),
            )
            # fills already prompted for before the restart are not prompted again
            record.prompted_filled = filled
        record.tracked = tracked


_T = TypeVar("_T")


def _record_lines(record: OrderRecord) -> list[dict[str, Any]]:
    t = record.tracked
    ts = dt.datetime.fromtimestamp(record.submitted_at, dt.UTC).isoformat(timespec="microseconds")
    lines: list[dict[str, Any]] = [
        {
            "ts": ts,
            "event": "submit",
            "order_ref": t.order_ref,
            "symbol": t.symbol,
            "kind": record.kind,
            "order": msgspec.to_builtins(record.spec),
            "meta": msgspec.to_builtins(record.meta),
            "state": "submitting",
        }
    ]
    lines += [
        {
            "event": "fill",
            "order_ref": t.order_ref,
            "symbol": f.symbol,
            "exec_id": f.exec_id,
            "con_id": f.con_id,
            "side": f.side,
            "shares": f.shares,
            "price": f.price,
            "cum_qty": f.cum_qty,
            "avg_price": f.avg_price,
            "time": f.time,
            "order_id": f.order_id,
        }
        for f in t.fills
    ]
    lines.append(
        {
            "event": "status",
            "order_ref": t.order_ref,
            "symbol": t.symbol,
            "state": t.state,
            "status": t.status,
            "order_id": t.order_id,
            "perm_id": t.perm_id,
            "filled": t.filled,
            "remaining": t.remaining,
            "avg_fill_price": t.avg_fill_price,
            "message": t.message,
        }
    )
    return lines


def infer_strategy(legs: Sequence[OrderLeg]) -> str:
    """A name for a two-leg vertical opened before its strategy was recorded."""
    if len(legs) == 2 and all(leg.sec_type == "OPT" for leg in legs):
        bought = next((leg for leg in legs if leg.action == "BUY"), None)
        sold = next((leg for leg in legs if leg.action == "SELL"), None)
        if bought and sold and bought.right == sold.right and bought.expiry == sold.expiry:
            low = (bought.strike or 0) < (sold.strike or 0)
            if bought.right == "C" and low:
                return "bull call spread"
            if bought.right == "P" and not low:
                return "bear put spread"
    return "combo"


def _convert(value: object, kind: type[_T]) -> _T | None:
    try:
        return msgspec.convert(value, kind)
    except (msgspec.ValidationError, TypeError):
        return None


def _number(value: object, default: float | None = None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value else None


def _fill_of(ref: str, line: Mapping[str, Any]) -> FillReported | None:
    """The execution a ``fill`` line records. Lines written before ``avg_price``/``time``
    were logged read those as the execution's own price and its line's time."""
    exec_id, con_id = line.get("exec_id"), _int(line.get("con_id"))
    side = line.get("side")
    if not isinstance(exec_id, str) or con_id is None or side not in ("BOT", "SLD"):
        return None
    price = _number(line.get("price")) or 0.0
    return FillReported(
        order_ref=ref,
        order_id=_int(line.get("order_id")) or 0,
        exec_id=exec_id,
        con_id=con_id,
        symbol=str(line.get("symbol", "")),
        side=side,
        shares=_number(line.get("shares")) or 0.0,
        price=price,
        cum_qty=_number(line.get("cum_qty")) or 0.0,
        avg_price=_number(line.get("avg_price"), price) or price,
        time=str(line.get("time") or line.get("ts") or ""),
    )


def _parse_ts(value: object) -> float:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return 0.0
