"""The order desk: the TWS side of execution, one per connected ``ib_async.IB``.

The connection actor creates a desk when it installs a new ``IB`` and hands it every
:data:`~sumppump.messages.orders.OrdersRequest`. The desk converts :class:`OrderSpec` into
ib_async objects at the edge (:mod:`sumppump.actors.order_building`) and answers with msgspec
replies only:

* one leg → that contract by ``conId`` (exchange SMART) with a ``LimitOrder`` / ``StopOrder`` /
  ``StopLimitOrder`` / ``MarketOrder``; action = the leg's, quantity = ``quantity × ratio``;
* several legs → one BAG contract (secType BAG, currency USD, exchange SMART, one ``ComboLeg`` per
  leg with conId/ratio/action/exchange), action BUY, ``lmtPrice`` the net per unit (positive =
  debit). Never the ``NonGuaranteed`` smart-combo tag: a combo is filled whole or not at all.
  A combo stop carries ``triggerMethod`` 4 (bid/ask): IB defaults combo stops to "Last".

IB's rules the desk applies (notes/ib-behaviour.md): a what-if waits at most
:data:`WHAT_IF_WAIT` (ib_async's never times out) and answers :class:`WhatIfUnanswered`; unset
values (1.7976931348623157E308) read as None; after IB refuses a modification the order is
re-read from TWS before answering, because ib_async marks a live order Cancelled on most such
errors; an OCA group name that has finished, or whose working orders are in another account, is
refused before sending. :class:`ExerciseOption` goes to
:func:`sumppump.actors.option_exercise.exercise_option`.

Every order carries ``orderRef = spec.order_ref``. An order reference the desk has already seen
(placed by us in this process, or present in ib_async's trades, which include the open and
completed orders TWS reported at connect) is refused without sending anything: duplicates are
impossible by construction. A placed order is never retried: no acknowledgement before the
caller's deadline gives :class:`OrderUnacknowledged`, and execution reconciles by ``orderRef``
with :class:`FetchOrderBook`.

Replies that are refused locally, before anything is sent, are :class:`OrderRejected` with
``code=0`` (:data:`LOCAL_REFUSAL`); any other code is IB's.

Events: ib_async's ``orderStatusEvent``, ``execDetailsEvent`` and ``commissionReportEvent`` for
orders with a non-empty ``orderRef`` are published as :class:`OrderStatusChanged`,
:class:`FillReported` and :class:`CommissionReported` through the ``publish`` callable.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Literal, assert_never

import anyio
import msgspec
from ib_async import IB, Trade
from ib_async.objects import CommissionReport, Fill
from ib_async.wrapper import RequestError

from sumppump.actors.ib_requests import FixedKeyRequests
from sumppump.actors.ib_values import ib_number, ib_positive
from sumppump.actors.option_exercise import exercise_option
from sumppump.actors.order_building import (
    COMBO_STOP_TRIGGER_METHOD,
    build_contract,
    build_order,
    new_oca_group,
)
from sumppump.actors.runtime import remaining_budget
from sumppump.messages.base import Event, Reply
from sumppump.messages.orders import (
    CancelOrder,
    CancelRequested,
    CommissionReported,
    ExerciseOption,
    FetchOrderBook,
    FillReported,
    ModifyOrder,
    OrderBook,
    OrderPlaced,
    OrderRecord,
    OrderRejected,
    OrderSpec,
    OrdersRequest,
    OrderStatusChanged,
    OrderUnacknowledged,
    PlaceOrder,
    WhatIf,
    WhatIfResult,
    WhatIfUnanswered,
)

__all__ = [
    "COMBO_STOP_TRIGGER_METHOD",
    "LOCAL_REFUSAL",
    "OrderDesk",
    "build_contract",
    "build_order",
    "new_oca_group",
]

log = logging.getLogger(__name__)

#: ``OrderRejected.code`` of a refusal made here, before anything was sent to TWS.
LOCAL_REFUSAL: Final = 0
#: Statuses that prove TWS accepted a new order.
ACKNOWLEDGED: Final = frozenset({"PreSubmitted", "Submitted", "Filled", "PendingCancel"})
#: Statuses that end an order without (or before) an acknowledgement.
ENDED: Final = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
#: Kept from the caller's deadline to build and send the reply.
REPLY_MARGIN: Final = 0.25
#: Longest wait for an acknowledgement when the caller set no deadline.
DEFAULT_ACK_WAIT: Final = 15.0
#: Longest wait for TWS to confirm a cancel before answering with the current status.
CANCEL_WAIT: Final = 2.0
#: Longest wait for a what-if: ib_async 2.1.0's ``whatIfOrderAsync`` has no timeout and never
#: completes without a populated preview (notes/ib-behaviour.md §d suggests <= 10 s).
WHAT_IF_WAIT: Final = 10.0

SendBudget = Callable[[int], Awaitable[None]]
Publish = Callable[[Event], None]


def _last_error(trade: Trade, since: int = 0) -> tuple[int, str] | None:
    """The last error TWS reported for ``trade`` (from log entry ``since`` on), as (code, text)."""
    for entry in reversed(trade.log[since:]):
        if entry.errorCode:
            text = entry.message
            # ib_async logs "Error <code>, reqId <id>: <text>[, contract: ...]"
            head, sep, rest = text.partition(": ")
            if sep and head.split(" ", 1)[0] in ("Error", "Warning"):
                text = rest
            return entry.errorCode, text
    return None


def _time(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _record(trade: Trade) -> OrderRecord:
    order, status, contract = trade.order, trade.orderStatus, trade.contract
    action: Literal["BUY", "SELL"] = "SELL" if order.action == "SELL" else "BUY"
    return OrderRecord(
        order_ref=order.orderRef or "",
        order_id=order.orderId,
        perm_id=order.permId or status.permId,
        client_id=order.clientId,
        symbol=contract.symbol,
        action=action,
        quantity=float(order.totalQuantity),
        order_type=order.orderType,
        limit_price=ib_number(order.lmtPrice),
        stop_price=ib_number(order.auxPrice),
        tif=order.tif,
        status=status.status,
        filled=float(ib_number(status.filled) or ib_number(order.filledQuantity) or 0.0),
        remaining=float(ib_number(status.remaining) or 0.0),
        avg_fill_price=ib_positive(status.avgFillPrice),
        leg_con_ids=tuple(leg.conId for leg in (contract.comboLegs or ())),
    )


def _fill(fill: Fill, order_ref: str | None = None) -> FillReported:
    ex = fill.execution
    side: Literal["BOT", "SLD"] = "SLD" if ex.side == "SLD" else "BOT"
    return FillReported(
        order_ref=order_ref if order_ref is not None else (ex.orderRef or ""),
        order_id=ex.orderId,
        exec_id=ex.execId,
        con_id=fill.contract.conId,
        symbol=fill.contract.symbol,
        side=side,
        shares=float(ex.shares),
        price=float(ex.price),
        cum_qty=float(ex.cumQty),
        avg_price=float(ex.avgPrice),
        time=_time(ex.time),
    )


# ---------------------------------------------------------------------- the desk


class OrderDesk:
    """Orders on one connected ``IB``. Lives inside the connection actor (never shared).

    ``send_budget(n)`` reserves ``n`` outgoing messages with the rate limiter (it may raise the
    connection's pacing exception, which the connection turns into ``PacingDelayed``; nothing
    has been sent then). ``publish`` tells an event to the connection's subscribers.
    ``known_refs`` carries the order references of the previous desk across a reconnect.
    """

    def __init__(
        self,
        ib: IB,
        *,
        send_budget: SendBudget,
        publish: Publish,
        known_refs: Iterable[str] = (),
        serial: FixedKeyRequests | None = None,
    ) -> None:
        self.ib = ib
        self._serial = serial if serial is not None else FixedKeyRequests()
        self.known_refs: set[str] = set(known_refs)
        self._send_budget = send_budget
        self._publish = publish
        self._attached = False

    # ------------------------------------------------------------------ events

    def attach(self) -> None:
        """Subscribe to ib_async's order events (idempotent)."""
        if self._attached:
            return
        self.ib.orderStatusEvent += self._on_status
        self.ib.execDetailsEvent += self._on_exec
        self.ib.commissionReportEvent += self._on_commission
        self._attached = True

    def detach(self) -> None:
        """Unsubscribe (idempotent); the ``IB`` is being discarded."""
        if not self._attached:
            return
        self.ib.orderStatusEvent -= self._on_status
        self.ib.execDetailsEvent -= self._on_exec
        self.ib.commissionReportEvent -= self._on_commission
        self._attached = False

    def _on_status(self, trade: Trade) -> None:
        ref = trade.order.orderRef
        if not ref:
            return
        status = trade.orderStatus
        error = _last_error(trade, len(trade.log) - 1) if trade.log else None
        self._publish(
            OrderStatusChanged(
                order_ref=ref,
                order_id=trade.order.orderId,
                perm_id=trade.order.permId or status.permId,
                status=status.status,
                filled=float(status.filled),
                remaining=float(status.remaining),
                avg_fill_price=ib_positive(status.avgFillPrice),
                last_fill_price=ib_positive(status.lastFillPrice),
                why_held=status.whyHeld or "",
                error_code=error[0] if error else None,
                error_message=error[1] if error else "",
            )
        )

    def _on_exec(self, trade: Trade, fill: Fill) -> None:
        ref = trade.order.orderRef or fill.execution.orderRef
        if ref:
            self._publish(_fill(fill, ref))

    def _on_commission(self, trade: Trade, fill: Fill, report: CommissionReport) -> None:
        if not (trade.order.orderRef or fill.execution.orderRef):
            return
        self._publish(
            CommissionReported(
                exec_id=report.execId,
                commission=float(report.commission),
                currency=report.currency,
                realized_pnl=ib_number(report.realizedPNL) if report.realizedPNL else None,
            )
        )

    # ------------------------------------------------------------------ requests

    async def handle(self, msg: OrdersRequest) -> Reply:
        """Answer one order request. Runs under the caller's deadline (``remaining_budget``).

        :raises ConnectionError: the socket broke while a read request was in flight.
        Pacing exceptions of ``send_budget`` propagate (nothing was sent).
        """
        match msg:
            case PlaceOrder():
                return await self._place(msg.spec)
            case ModifyOrder():
                return await self._modify(msg)
            case CancelOrder():
                return await self._cancel(msg.order_ref)
            case WhatIf():
                return await self._what_if(msg.spec)
            case FetchOrderBook():
                return await self._order_book()
            case ExerciseOption():
                return await exercise_option(self.ib, msg, self._send_budget)
            case _:
                assert_never(msg)

    def _is_known(self, ref: str) -> bool:
        return ref in self.known_refs or any(t.order.orderRef == ref for t in self.ib.trades())

    async def _place(self, spec: OrderSpec) -> Reply:
        if not spec.order_ref:
            return OrderRejected(
                order_ref="", code=LOCAL_REFUSAL, message="an order needs an order_ref"
            )
        if self._is_known(spec.order_ref):
            return OrderRejected(
                order_ref=spec.order_ref,
                code=LOCAL_REFUSAL,
                message=f"order_ref {spec.order_ref} was already placed; it is never sent twice",
            )
        oca_problem = self._oca_problem(spec)
        if oca_problem:
            return OrderRejected(order_ref=spec.order_ref, code=LOCAL_REFUSAL, message=oca_problem)
        try:
            contract = build_contract(spec)
            order = build_order(spec, 0)
        except ValueError as exc:
            return OrderRejected(order_ref=spec.order_ref, code=LOCAL_REFUSAL, message=str(exc))
        await self._send_budget(1)
        # Claimed before sending: whatever happens next, this reference is never sent again.
        self.known_refs.add(spec.order_ref)
        order.orderId = self.ib.client.getReqId()
        trade = self.ib.placeOrder(contract, order)
        log.info(
            "placed order %s (id %d): %s %s",
            spec.order_ref,
            order.orderId,
            order.action,
            contract.symbol,
        )
        outcome = await self._await_ack(trade, since=len(trade.log), modify=False)
        if outcome is None:
            log.warning("order %s (id %d) not acknowledged in time", spec.order_ref, order.orderId)
            return OrderUnacknowledged(order_ref=spec.order_ref, order_id=order.orderId)
        return outcome

    def _oca_problem(self, spec: OrderSpec) -> str:
        """Why IB would refuse ``spec``'s OCA group, or "": a group name already used by a
        group that has finished (IB never accepts a name twice) or working members in
        another account (IB's 10224). Both rules: notes/ib-behaviour.md §c."""
        if not spec.oca_group:
            return ""
        members = [t for t in self.ib.trades() if t.order.ocaGroup == spec.oca_group]
        working = [t for t in members if not t.isDone()]
        if members and not working:
            return (
                f"OCA group {spec.oca_group} was already used and has finished; IB never "
                "accepts a group name twice: use a new name"
            )
        accounts = {t.order.account for t in working if t.order.account}
        if accounts - {spec.account}:
            return (
                f"OCA group {spec.oca_group} holds orders of account(s) "
                f"{', '.join(sorted(accounts))}; IB requires every order of a group in the "
                f"same account (error 10224), not {spec.account or 'none'}"
            )
        return ""

    async def _refresh_open_orders(self) -> None:
        """Re-read every open order from TWS: ib_async then updates its trades from TWS's
        openOrder / orderStatus (prices, quantity, and a status it had wrongly set)."""
        await self._send_budget(1)
        async with self._serial("openOrders"):
            await self.ib.reqAllOpenOrdersAsync()

    async def _modify(self, msg: ModifyOrder) -> Reply:
        spec = msg.spec
        trade = next(
            (
                t
                for t in self.ib.trades()
                if t.order.orderId == msg.order_id and t.order.clientId == self.ib.client.clientId
            ),
            None,
        )
        if trade is None:
            return OrderRejected(
                order_ref=spec.order_ref,
                code=LOCAL_REFUSAL,
                message=f"no order {msg.order_id} of this client to modify",
            )
        if (trade.order.orderRef or "") != spec.order_ref:
            return OrderRejected(
                order_ref=spec.order_ref,
                code=LOCAL_REFUSAL,
                message=f"order {msg.order_id} has order_ref {trade.order.orderRef!r}, "
                f"not {spec.order_ref!r}",
            )
        if trade.isDone():
            # ib_async may have marked a live order Cancelled on an earlier error: ask TWS.
            await self._refresh_open_orders()
        if trade.isDone():
            return OrderRejected(
                order_ref=spec.order_ref,
                code=LOCAL_REFUSAL,
                message=f"order {msg.order_id} is {trade.orderStatus.status}; it cannot change",
            )
        try:
            contract = build_contract(spec)
            order = build_order(spec, msg.order_id)
        except ValueError as exc:
            return OrderRejected(order_ref=spec.order_ref, code=LOCAL_REFUSAL, message=str(exc))
        order.clientId = trade.order.clientId
        order.permId = trade.order.permId
        await self._send_budget(1)
        since = len(trade.log)
        trade = self.ib.placeOrder(contract, order)
        outcome = await self._await_ack(trade, since=since + 1, modify=True)
        if outcome is None:
            return OrderUnacknowledged(order_ref=spec.order_ref, order_id=msg.order_id)
        if isinstance(outcome, OrderRejected):
            return await self._refused_modification(trade, outcome)
        return outcome

    async def _refused_modification(self, trade: Trade, refused: OrderRejected) -> Reply:
        """IB refused a modification. ib_async 2.1.0 marks the trade Cancelled on any such
        error but 105 and 321 (ib_insync#502, ib_async#191/#217; notes/ib-behaviour.md §e)
        although IB refused only the change: re-read the order from TWS before answering,
        so a live order never looks cancelled. The refusal says what TWS shows now."""
        try:
            with anyio.fail_after(max(0.05, remaining_budget(CANCEL_WAIT) - REPLY_MARGIN)):
                await self._refresh_open_orders()
        except TimeoutError:
            return msgspec.structs.replace(
                refused,
                message=f"{refused.message} (IB refused the change; whether the order is "
                "still working could not be re-read from TWS in time)",
            )
        status = trade.orderStatus.status
        if trade.isDone():
            state = f"the order is {status} at TWS"
        else:
            state = f"the order is still working at TWS ({status}) with its previous terms"
        return msgspec.structs.replace(
            refused, message=f"{refused.message} (IB refused the change; {state})"
        )

    async def _await_ack(self, trade: Trade, *, since: int, modify: bool) -> Reply | None:
        """Wait (under the caller's deadline) until TWS acknowledges or refuses ``trade``.

        ``since`` is the first log entry written after the request was sent. Returns the reply,
        or ``None`` when the deadline or a disconnect came first (outcome unknown).
        """
        wake = anyio.Event()
        seen_open_order = False

        def poke(*_args: object) -> None:
            wake.set()

        def on_open_order(changed: Trade) -> None:
            nonlocal seen_open_order
            if changed is trade:
                seen_open_order = True
                wake.set()

        trade.statusEvent += poke
        self.ib.openOrderEvent += on_open_order
        self.ib.disconnectedEvent += poke
        try:
            wait = min(DEFAULT_ACK_WAIT, remaining_budget(DEFAULT_ACK_WAIT)) - REPLY_MARGIN
            with anyio.move_on_after(max(0.0, wait)):
                while True:
                    outcome = self._ack_outcome(trade, since, modify, seen_open_order)
                    if outcome is not None:
                        return outcome
                    if not self.ib.isConnected():
                        return None
                    await wake.wait()
                    wake = anyio.Event()
            return self._ack_outcome(trade, since, modify, seen_open_order)
        finally:
            trade.statusEvent -= poke
            self.ib.openOrderEvent -= on_open_order
            self.ib.disconnectedEvent -= poke

    def _ack_outcome(
        self, trade: Trade, since: int, modify: bool, seen_open_order: bool
    ) -> Reply | None:
        ref = trade.order.orderRef or ""
        status = trade.orderStatus.status
        error = _last_error(trade, since)
        if status in ENDED or (modify and error is not None):
            code, text = error if error is not None else (LOCAL_REFUSAL, f"order {status}")
            return OrderRejected(order_ref=ref, code=code, message=text)
        acknowledged = status in ACKNOWLEDGED and (
            not modify or seen_open_order or len(trade.log) > since
        )
        if not acknowledged:
            return None
        return OrderPlaced(
            order_ref=ref,
            order_id=trade.order.orderId,
            perm_id=trade.order.permId or trade.orderStatus.permId,
            status=status,
            filled=float(trade.orderStatus.filled),
            remaining=float(trade.orderStatus.remaining),
            avg_fill_price=ib_positive(trade.orderStatus.avgFillPrice),
        )

    async def _find_by_ref(self, ref: str) -> Trade | None:
        """The trade with orderRef ``ref``; a working one first. Refreshes the open orders of
        every client from TWS when the local view does not have it."""

        def pick(trades: Iterable[Trade]) -> Trade | None:
            matching = [t for t in trades if t.order.orderRef == ref]
            working = [t for t in matching if not t.isDone()]
            candidates = working or matching
            return candidates[-1] if candidates else None

        found = pick(self.ib.trades())
        if found is None or found.isDone():
            await self._send_budget(1)
            async with self._serial("openOrders"):
                refreshed = pick(await self.ib.reqAllOpenOrdersAsync())
            found = refreshed or found
        return found

    async def _cancel(self, ref: str) -> Reply:
        trade = await self._find_by_ref(ref)
        if trade is None:
            return OrderRejected(
                order_ref=ref, code=LOCAL_REFUSAL, message=f"no order with order_ref {ref}"
            )
        if trade.isDone():
            return OrderRejected(
                order_ref=ref,
                code=LOCAL_REFUSAL,
                message=f"order {ref} is {trade.orderStatus.status}; nothing to cancel",
            )
        since = len(trade.log)
        await self._send_budget(1)
        self.ib.cancelOrder(trade.order)
        wake = anyio.Event()

        def poke(*_args: object) -> None:
            wake.set()

        trade.statusEvent += poke
        try:
            wait = min(CANCEL_WAIT, remaining_budget(CANCEL_WAIT) - REPLY_MARGIN)
            with anyio.move_on_after(max(0.0, wait)):
                while not trade.isDone() and _last_error(trade, since + 1) is None:
                    await wake.wait()
                    wake = anyio.Event()
        finally:
            trade.statusEvent -= poke
        error = _last_error(trade, since + 1)
        if error is not None and error[0] in (10147, 10148):
            return OrderRejected(order_ref=ref, code=error[0], message=error[1])
        return CancelRequested(
            order_ref=ref, order_id=trade.order.orderId, status=trade.orderStatus.status
        )

    async def _what_if(self, spec: OrderSpec) -> Reply:
        try:
            contract = build_contract(spec)
            order = build_order(spec, 0)
        except ValueError as exc:
            return OrderRejected(order_ref=spec.order_ref, code=LOCAL_REFUSAL, message=str(exc))
        order.orderId = 0  # whatIfOrderAsync takes a fresh request id
        await self._send_budget(1)
        # TWS answers an order in Read-Only API mode with error 321, which ib_async treats as a
        # warning: the what-if would simply never complete. Watch for it while waiting.
        refused: list[tuple[int, str]] = []
        read_only = anyio.Event()

        def on_error(req_id: int, code: int, message: str, contract: object) -> None:
            if code == 321:
                refused.append((code, message))
                read_only.set()

        self.ib.errorEvent += on_error
        state = None
        wait = max(0.05, min(WHAT_IF_WAIT, remaining_budget(WHAT_IF_WAIT)) - REPLY_MARGIN)
        try:
            with anyio.move_on_after(wait) as deadline:
                async with anyio.create_task_group() as tg:

                    async def ask() -> None:
                        nonlocal state
                        try:
                            state = await self.ib.whatIfOrderAsync(contract, order)
                        except RequestError as exc:
                            refused.append((exc.code, exc.message))
                        tg.cancel_scope.cancel()

                    async def watch() -> None:
                        await read_only.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(ask)
                    tg.start_soon(watch)
        finally:
            self.ib.errorEvent -= on_error
        if state is None and not refused and deadline.cancelled_caught:
            return WhatIfUnanswered(
                order_ref=spec.order_ref,
                waited_seconds=round(wait, 2),
                message="TWS sent no populated preview in time (ib_async waits forever for "
                "one); nothing was placed",
            )
        if state is None:
            code, message = refused[0] if refused else (321, "refused by TWS")
            return OrderRejected(order_ref=spec.order_ref, code=code, message=message)
        return WhatIfResult(
            init_margin_change=ib_number(state.initMarginChange),
            maint_margin_change=ib_number(state.maintMarginChange),
            equity_with_loan_change=ib_number(state.equityWithLoanChange),
            init_margin_after=ib_number(state.initMarginAfter),
            commission=ib_number(state.commission),
            min_commission=ib_number(state.minCommission),
            max_commission=ib_number(state.maxCommission),
            warning=state.warningText or "",
        )

    async def _order_book(self) -> Reply:
        await self._send_budget(3)
        async with self._serial("openOrders"):
            open_trades = await self.ib.reqAllOpenOrdersAsync()
        async with self._serial("completedOrders"):
            completed = await self.ib.reqCompletedOrdersAsync(False)
        fills = await self.ib.reqExecutionsAsync()
        refs_by_perm = {t.order.permId: t.order.orderRef or "" for t in (*open_trades, *completed)}
        # TWS's completed orders carry no order id or client id; today's executions do.
        ids_by_perm = {
            f.execution.permId: (f.execution.orderId, f.execution.clientId) for f in fills
        }

        def completed_record(trade: Trade) -> OrderRecord:
            record = _record(trade)
            ids = ids_by_perm.get(record.perm_id)
            if record.order_id or ids is None:
                return record
            return msgspec.structs.replace(record, order_id=ids[0], client_id=ids[1])

        return OrderBook(
            open=tuple(_record(t) for t in open_trades),
            completed=tuple(completed_record(t) for t in completed),
            fills=tuple(
                _fill(f, f.execution.orderRef or refs_by_perm.get(f.execution.permId, ""))
                for f in fills
            ),
        )
