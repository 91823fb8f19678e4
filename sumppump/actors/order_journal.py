"""The execution actor's audit lines (the shapes of ``preview``, ``submit``, ``status``,
``fill``, ``reconcile``, ``refusal``, ``cancel`` and ``stop_follow`` lines, which a restart
replays with :meth:`~sumppump.trading.ledger.OrderLedger.replay`).

Only :meth:`OrderJournal.write_ahead` raises: the ``submit`` line must be on disk before an
order is sent, so its failure refuses the order. Every other line is best effort: a failure
is logged and the flow goes on.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec

from sumppump.audit import AuditEvent, AuditLog
from sumppump.messages.execution import ApprovalContext, ExecutionRefused
from sumppump.messages.orders import FillReported
from sumppump.trading.ledger import OrderLedger, OrderMeta, OrderRecord
from sumppump.trading.previews import Preview
from sumppump.trading.reconciliation import TrackedOrder

__all__ = ["SNAPSHOT_EVERY_BYTES", "OrderJournal"]

#: How much the log may grow before the state snapshot is renewed: what a restart reads
#: beyond the snapshot stays about this size however long the history.
SNAPSHOT_EVERY_BYTES: Final = 256 * 1024

log = logging.getLogger(__name__)


class OrderJournal:
    """Writes execution's lines to ``audit`` (closed by :meth:`close` when ``owned``)."""

    def __init__(self, audit: AuditLog, *, owned: bool) -> None:
        self._audit = audit
        self._owned = owned
        self._since_snapshot = 0

    async def close(self) -> None:
        if self._owned:
            await self._audit.close()

    async def write_ahead(self, preview: Preview, approval: ApprovalContext) -> None:
        """The fsync-ed ``submit`` line for the order of ``preview``.

        :raises OSError: the line could not be written (nothing may be sent)."""
        terms = preview.terms
        await self._audit.write(
            "submit",
            order_ref=preview.preview_id,
            symbol=preview.symbol,
            kind=preview.kind,
            order=preview.order,
            meta=OrderMeta.of(terms),
            digest=preview.digest,
            epoch=terms.epoch,
            account_kind=terms.account_kind,
            state="submitting",
            approval=approval.description,
        )

    async def write_ahead_change(
        self, target: OrderRecord, order_id: int, preview: Preview, approval: ApprovalContext
    ) -> None:
        """The fsync-ed ``submit`` line (``kind="modify"``) re-sending ``target`` with the
        terms of ``preview``.

        :raises OSError: the line could not be written (nothing may be sent)."""
        await self._audit.write(
            "submit",
            order_ref=target.ref,
            symbol=preview.symbol,
            kind="modify",
            preview_id=preview.preview_id,
            order=msgspec.structs.replace(preview.order, order_ref=target.ref),
            digest=preview.digest,
            order_id=order_id,
            state=target.state,
            approval=approval.description,
        )

    async def write_ahead_exercise(
        self, ref: str, approval: ApprovalContext, **fields: Any
    ) -> None:
        """The fsync-ed ``submit`` line (``kind="exercise"``) of an exercise or lapse
        instruction; the ledger's replay knows it as a used id, not an order.

        :raises OSError: the line could not be written (nothing may be sent)."""
        await self._audit.write(
            "submit", order_ref=ref, kind="exercise", approval=approval.description, **fields
        )

    async def line(self, event: AuditEvent, *, order_ref: str, **fields: Any) -> None:
        """Any other line; a failure is logged, not raised."""
        try:
            await self._audit.write(event, order_ref=order_ref, **fields)
        except OSError:
            log.exception("audit write failed (%s %s)", event, order_ref)

    async def order(self, event: AuditEvent, order: TrackedOrder, **extra: Any) -> None:
        """An order's state as it now stands."""
        await self.line(
            event,
            order_ref=order.order_ref,
            symbol=order.symbol,
            state=order.state,
            status=order.status,
            order_id=order.order_id,
            perm_id=order.perm_id,
            filled=order.filled,
            remaining=order.remaining,
            avg_fill_price=order.avg_fill_price,
            **extra,
        )

    async def fill(self, fill: FillReported, order: TrackedOrder) -> None:
        """One execution and the order's state after it (``avg_price``, ``time`` and
        ``order_id`` let a restart restore the execution itself)."""
        await self.line(
            "fill",
            order_ref=fill.order_ref,
            symbol=fill.symbol,
            exec_id=fill.exec_id,
            con_id=fill.con_id,
            side=fill.side,
            shares=fill.shares,
            price=fill.price,
            cum_qty=fill.cum_qty,
            avg_price=fill.avg_price,
            time=fill.time,
            order_id=fill.order_id,
            state=order.state,
            filled=order.filled,
        )

    async def preview(self, preview: Preview, **extra: Any) -> None:
        terms = preview.terms
        await self.line(
            "preview",
            order_ref=preview.preview_id,
            symbol=preview.symbol,
            kind=preview.kind,
            order=preview.order,
            max_loss=terms.max_loss,
            **extra,
            confirm_text=preview.confirm_text,
        )

    async def snapshot(self, ledger: OrderLedger) -> None:
        """Write the ledger's compact state beside the log (what a restart reads first); a
        failure is logged: the log alone still restores, only reading more of it."""
        try:
            await self._audit.write_state(ledger.snapshot)
            self._since_snapshot = self._audit.bytes_written
        except OSError:
            log.exception("the audit state snapshot could not be written")

    def snapshot_due(self) -> bool:
        """Whether the log grew by :data:`SNAPSHOT_EVERY_BYTES` since the last snapshot."""
        return self._audit.bytes_written - self._since_snapshot >= SNAPSHOT_EVERY_BYTES

    async def refusal(self, ref: str, refusal: ExecutionRefused) -> None:
        await self.line(
            "refusal",
            order_ref=ref,
            code=str(refusal.code),
            reason=refusal.reason,
            message=refusal.message,
            fresh_preview=refusal.fresh_preview.preview_id if refusal.fresh_preview else "",
        )
