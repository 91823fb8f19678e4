"""The execution actor: the I/O around the pure order core :mod:`sumppump.trading`. The
protocol and every refusal path are documented in :mod:`sumppump.messages.execution`.

Each request handler reads as *gather → decide → apply → reply*: it reads from connection,
chain cache or risk (:class:`~sumppump.actors.trading_reads.TradingReads`, the only awaits
besides the audit log), hands what it read to a pure function of ``trading`` (the execute gate,
the close/modify/roll planners, the stops), applies the decision to its state (the preview store
and the order ledger) and writes the audit lines (:class:`~sumppump.actors.order_journal.
OrderJournal`).

Safety properties (each one tested against the simulated TWS):

* **Only previewed orders are placed, each at most once.** A preview is claimed (retired as
  ``used``) synchronously, with no ``await`` between the check and the mark, after every check
  has passed; the order placed is exactly the stored one (its digest is re-checked). The order
  desk additionally refuses any ``orderRef`` it has seen, so even a bug here cannot send twice.
* **Write-ahead.** A ``submit`` line is fsync-ed to the audit log *before* ``PlaceOrder`` is
  sent. A restarted incarnation replays the log into its ledger and reconciles with TWS.
* **Never retried.** ``PlaceOrder`` ending in ``ActorDown``/``CallTimeout``/``NotConnected``/
  ``OrderUnacknowledged``/anything unexpected gives :class:`OutcomeUnknown`; reconciliation then
  finds the order (or, after the acknowledgement window, establishes it never arrived).
* **Reconciled before accepting.** On start and after every ``ConnectionUp``, open orders,
  completed orders and executions are fetched and applied by ``orderRef`` (in the background);
  until that is done for the current connection epoch, :class:`ExecutePreview` answers
  ``NOT_CONNECTED`` with ``reason="reconciling"``. It never queues an order.
* **Circuit breaker.** Three consecutive rejections by IB open it; only :class:`ResetBreaker` or
  a process restart closes it (the breaker object outlives actor restarts).

Concurrency: one message at a time (``max_concurrency = 1``), so the store and the ledger need
no locks. The background reconciliation shares the ledger; it and the submission path are
serialised by ``_order_lock`` so a fetch of the order book never races a placement. Events from
the connection (order status, fills) queue while a request is handled and are applied
afterwards; every update is idempotent and monotonic (the ledger's state machine).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, assert_never

import anyio
import msgspec

from sumppump.actors.exercise_instructions import ExerciseInstructions
from sumppump.actors.order_cancel import cancel_by_ref
from sumppump.actors.order_journal import OrderJournal
from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.actors.trading_reads import TradingReads, risk_via_actor
from sumppump.audit import AuditLog, read_audit_state
from sumppump.messages import execution as ex
from sumppump.messages.base import Message, Reply
from sumppump.messages.chain_cache import SymbolSwitched
from sumppump.messages.common import Ping, Pong
from sumppump.messages.connection import ConnectionDown, ConnectionState, ConnectionUp
from sumppump.messages.errors import ErrorCode
from sumppump.messages.orders import (
    CancelOrder,
    CommissionReported,
    FetchOrderBook,
    FillReported,
    ModifyOrder,
    OrderBook,
    OrderPlaced,
    OrderRejected,
    OrderStatusChanged,
    OrderUnacknowledged,
    PlaceOrder,
)
from sumppump.settings import Settings
from sumppump.trading import changes, gate, modify, report, stops
from sumppump.trading.account import account_kind
from sumppump.trading.breaker import BREAKER_THRESHOLD, CircuitBreaker
from sumppump.trading.gate import RiskVerdict
from sumppump.trading.holdings import closing_legs
from sumppump.trading.ledger import OrderLedger, fill_info
from sumppump.trading.outcome import outcome_words
from sumppump.trading.previews import Preview, PreviewStore, is_preview_id
from sumppump.trading.prices import option_leg_keys
from sumppump.trading.reconciliation import is_done
from sumppump.trading.refusals import (
    refused,
    rejected,
    tombstone_refusal,
)
from sumppump.trading.stops import suggest_stop
from sumppump.trading.terms import fresh_terms

__all__ = [
    "BREAKER_THRESHOLD",
    "CircuitBreaker",
    "ExecutionActor",
    "RiskVerdict",
    "risk_via_actor",
    "suggest_stop",
]

log = logging.getLogger(__name__)

#: How long after a ``submit`` an order absent from TWS may still arrive (the desk waits up to
#: 15 s for an acknowledgement); only later is it declared ``not_received``.
ACK_WINDOW_S: Final = 20.0
#: Kept from the caller's deadline to build and send our own reply.
REPLY_MARGIN_S: Final = 0.5


class ExecutionActor(Actor):
    """See the module docstring.

    ``connection``, ``chain_cache`` and ``risk`` are the Refs it reads from. ``mono``/``wall``
    are the preview clocks; ``ack_window`` how long a sent order may take to appear in TWS
    before reconciliation calls it ``not_received``; ``refresh_interval`` how often working
    orders are re-read from TWS (a safety net for events lost while the mailbox was full).
    """

    max_concurrency = 1

    def __init__(
        self,
        settings: Settings,
        *,
        connection: Ref,
        chain_cache: Ref | None = None,
        risk: Ref | None = None,
        breaker: CircuitBreaker | None = None,
        audit: AuditLog | None = None,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        ack_window: float = ACK_WINDOW_S,
        refresh_interval: float = 30.0,
        simulated: bool = False,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._simulated = simulated
        self._reads = TradingReads(connection, chain_cache, risk)
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        redact = [settings.http_token] if settings.http_token else []
        log_file = audit if audit is not None else AuditLog(settings.audit_path, redact=redact)
        self._journal = OrderJournal(log_file, owned=audit is None)
        self._store = PreviewStore(settings.preview_ttl_s, mono=mono, wall=wall)
        self._ledger = OrderLedger()
        clock = now or (lambda: dt.datetime.fromtimestamp(wall(), dt.UTC))
        parts = (
            settings,
            self._reads,
            self._journal,
            self._store,
            self._breaker,
            clock,
            mono,
            wall,
        )
        self._exercises = ExerciseInstructions(*parts, simulated=simulated)
        self._wall = wall
        self._ack_window = ack_window
        self._refresh_interval = refresh_interval
        self._fills: list[FillReported] = []
        self._prompts: list[ex.StopLossPrompt] = []
        self._reconciled_epoch: int | None = None
        self._reconciling = False
        self._loaded = False
        self._wake = anyio.Event()
        self._order_lock = anyio.Lock()
        self.reconciliations = 0

    # ------------------------------------------------------------------ lifecycle

    async def on_stop(self) -> None:
        await self._journal.close()

    async def background(self) -> None:
        """Replay the audit log into the ledger, then reconcile whenever woken (start,
        ConnectionUp, an order whose outcome is unknown, a young ``submitting`` order)."""
        try:
            records = await read_audit_state(self._settings.audit_path)
        except OSError:
            log.exception("cannot read the audit log; reconciling from TWS only")
            records = []
        for pid, symbol in self._ledger.replay(records).used:
            self._store.remember_used(pid, symbol)
        await self._journal.snapshot(self._ledger)
        self._loaded = True
        self._wake.set()
        async with anyio.create_task_group() as tg:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                try:
                    retry_in = await self._reconcile_once()
                except Exception:
                    log.exception("reconciliation failed; retrying")
                    retry_in = 1.0
                if self._journal.snapshot_due():
                    await self._journal.snapshot(self._ledger)
                if retry_in is None and self._ledger.any_open():
                    retry_in = self._refresh_interval
                if retry_in is not None:
                    tg.start_soon(self._wake_later, retry_in)

    async def _wake_later(self, delay: float) -> None:
        await anyio.sleep(delay)
        self._wake.set()

    # ------------------------------------------------------------------ dispatch

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, ex.ExecutionRequest):
            return await self._dispatch(msg)
        match msg:
            case Ping():
                return Pong(actor="execution")
            case ConnectionUp():
                self._reconciled_epoch = None
                self._wake.set()
            case ConnectionDown():
                self._reconciled_epoch = None
            case OrderStatusChanged():
                await self._on_status(msg)
            case FillReported():
                await self._on_fill(msg)
            case CommissionReported():
                self._ledger.commission(msg.exec_id, msg.commission)
            case SymbolSwitched(current=current):
                await self._void(self._store.void_other_symbols(current), current)
            case _:
                pass
        return None

    async def _dispatch(self, msg: ex.ExecutionRequest) -> Reply:
        match msg:
            case ex.CreatePreview():
                return await self._create(msg)
            case ex.PrepareStopLoss():
                return await self._prepare_stop(msg)
            case ex.PrepareClose():
                return await self._prepare_close(msg)
            case ex.PrepareModify():
                return await self._prepare_modify(msg)
            case ex.PrepareRoll():
                return await self._prepare_roll(msg)
            case ex.PrepareExercise():
                return await self._exercises.prepare(msg)
            case ex.ExecutePreview() if self._exercises.holds(msg.preview_id):
                ready = self._loaded and not self._reconciling
                return await self._exercises.execute(msg, ready, self._reconciled_epoch)
            case ex.ExecutePreview():
                return await self._execute(msg)
            case ex.GetOrderStatus():
                return self._exercises.status(msg.order_ref) or report.status_report(
                    msg.order_ref, self._ledger.get(msg.order_ref)
                )
            case ex.GetOrderOutcome():
                ref = msg.order_ref.strip()
                exercise = self._exercises.outcome(ref)
                ledger, store = self._ledger.get(ref), self._store.lookup(ref)
                return exercise or report.order_outcome(ref, ledger, store)
            case ex.CancelByRef():
                return await self._cancel(msg.order_ref.strip())
            case ex.GetFills():
                fills = tuple(fill_info(f) for f in self._fills if f.ts_init >= msg.since_ns)
                prompts = tuple(self._prompts)
                if msg.take_prompts:
                    self._prompts.clear()
                return ex.Fills(fills=fills, stop_loss_prompts=prompts)
            case ex.ResetBreaker():
                self._breaker.reset()
                await self._journal.line("reconcile", order_ref="", action="breaker_reset")
                return self._breaker_state()
            case ex.GetBreaker():
                return self._breaker_state()
            case ex.VoidSymbol(symbol=symbol):
                ids = self._store.void_symbol(symbol)
                await self._void(ids, None)
                return ex.Voided(symbol=symbol.upper(), preview_ids=tuple(ids))
            case ex.DeclinePreview(preview_id=pid):
                tomb = self._store.retire(pid.strip(), "declined")
                if tomb is None:
                    return ex.Voided(symbol="", preview_ids=())
                await self._journal.line("preview", order_ref=tomb.preview_id, action="declined")
                return ex.Voided(symbol=tomb.symbol, preview_ids=(tomb.preview_id,))
            case _:
                assert_never(msg)

    def _breaker_state(self) -> ex.BreakerState:
        ready = self._loaded and not self._reconciling and self._reconciled_epoch is not None
        return report.breaker_state(self._breaker, ready=ready, epoch=self._reconciled_epoch)

    async def _void(self, ids: list[str], current: str | None) -> None:
        for pid in ids:
            await self._journal.line(
                "preview", order_ref=pid, action="voided", switched_to=current or ""
            )

    def _kind(self, account: str) -> ex.AccountKind:
        return account_kind(account, simulated=self._simulated)

    # ------------------------------------------------------------------ previews

    async def _create(self, msg: ex.CreatePreview, plan: changes.Plan | None = None) -> Reply:
        """Store ``msg`` as :func:`~sumppump.trading.stops.stored_terms` adjusts it (with the
        stops ``plan`` takes along) and audit the preview line."""
        terms = stops.stored_terms(msg, self._ledger, self._settings.approval_mode)
        if isinstance(terms, ex.ExecutionRefused):
            return terms
        try:
            preview = self._store.add(terms, follow_ups=plan.follow_ups if plan else ())
        except ValueError as exc:
            return refused(
                ErrorCode.INVALID_ARGUMENT, f"this order cannot be previewed: {exc}", "fix it"
            )
        await self._journal.preview(
            preview,
            net_debit=terms.net_debit,
            epoch=terms.epoch,
            digest=preview.digest,
            expires_at=preview.expires_at,
        )
        return report.preview_created(preview, self._store.remaining_s(preview))

    async def _fresh_preview(
        self, old: Preview, moved: gate.PriceMoved
    ) -> ex.PreviewCreated | None:
        """The same order at the current mid (:func:`~sumppump.trading.terms.fresh_terms`),
        superseding ``old``; its follow-ups move along."""
        terms = fresh_terms(old.terms, moved.now_mid, moved.quotes)
        if terms is None:
            return None
        self._store.retire(old.preview_id, "superseded", "the price moved")
        try:
            preview = self._store.add(terms, follow_ups=old.follow_ups)
        except ValueError:
            return None
        await self._journal.preview(preview, supersedes=old.preview_id)
        notes = report.fresh_notes(terms.max_loss)
        return report.preview_created(preview, self._store.remaining_s(preview), notes)

    # ------------------------------------------------------------------ execute

    async def _execute(self, msg: ex.ExecutePreview) -> Reply:
        checked = await self._precheck(msg)
        if isinstance(checked, ex.ExecutionRefused):
            await self._journal.refusal(msg.preview_id, checked)
            return checked
        async with self._order_lock:
            # Single use: the claim re-checks expiry; nothing awaits between it and the mark.
            claimed = self._store.claim(checked.preview_id)
            if not isinstance(claimed, Preview):
                answer = tombstone_refusal(msg.preview_id, claimed)
                await self._journal.refusal(msg.preview_id, answer)
                return answer
            if claimed.kind == "modify":
                return await self._submit_modify(claimed, msg.approval)
            return await self._submit(claimed, msg.approval)

    async def _precheck(self, msg: ex.ExecutePreview) -> Preview | ex.ExecutionRefused:
        """The gate's rungs in the documented order, with the reads between them."""
        pid = msg.preview_id.strip()
        preview = gate.admit(
            pid,
            msg.confirm_text,
            msg.approval,
            mode=self._settings.approval_mode,
            setting=self._settings.approval,
            store=self._store,
            breaker=self._breaker,
            ready=self._loaded and not self._reconciling,
            used_outcome=outcome_words(self._ledger.get(pid)),
        )
        if isinstance(preview, ex.ExecutionRefused):
            return preview
        state = await self._reads.connection_state()
        refusal = gate.check_connection(
            preview, state, reconciled_epoch=self._reconciled_epoch, store=self._store
        )
        if refusal is not None:
            if refusal.reason == "reconciling":
                self._wake.set()
            return refusal
        quotes = await self._reads.fresh_quotes(preview)
        if isinstance(quotes, ex.ExecutionRefused):
            return quotes
        market = gate.check_market(
            preview, quotes, max_slippage=self._settings.max_slippage, store=self._store
        )
        if isinstance(market, gate.PriceMoved):
            return gate.price_moved(preview, market, await self._fresh_preview(preview, market))
        if isinstance(market, ex.ExecutionRefused):
            return market
        verdict = await self._reads.recheck(preview, market)
        return gate.risk_refusal(preview, verdict, self._store) or preview

    # ------------------------------------------------------------------ submission

    async def _submit(self, preview: Preview, approval: ex.ApprovalContext) -> Reply:
        ref = preview.preview_id
        if not preview.intact() or preview.order.order_ref != ref:  # pragma: no cover
            return refused(
                ErrorCode.PREVIEW_UNKNOWN, "integrity check failed", "make a fresh preview"
            )
        failed = await self._write_ahead(preview, self._journal.write_ahead(preview, approval))
        if failed is not None:
            return failed
        self._ledger.submit(preview.terms, follow_ups=preview.follow_ups, at=self._wall())
        return await self._send(ref, preview, PlaceOrder(spec=preview.order))

    async def _submit_modify(self, preview: Preview, approval: ex.ApprovalContext) -> Reply:
        """``kind="modify"``: re-send the working order ``replaces_order_ref`` under its own IB
        id and orderRef with the previewed terms (``ModifyOrder``)."""
        target_ref = preview.terms.replaces_order_ref
        target = self._ledger.get(target_ref)
        order_id = target.tracked.order_id if target is not None else None
        if target is None or order_id is None or is_done(target.state):
            refusal = refused(
                ErrorCode.INVALID_ARGUMENT,
                f"order {target_ref} is not a working order of ours; it cannot be changed",
                "get_open_orders lists what is still working",
                reason="not_modifiable",
                order_ref=preview.preview_id,
            )
            await self._journal.refusal(preview.preview_id, refusal)
            return refusal
        written = self._journal.write_ahead_change(target, order_id, preview, approval)
        failed = await self._write_ahead(preview, written)
        if failed is not None:
            return failed
        spec = msgspec.structs.replace(preview.order, order_ref=target_ref)
        return await self._send(target_ref, preview, ModifyOrder(order_id=order_id, spec=spec))

    async def _write_ahead(
        self, preview: Preview, written: Awaitable[None]
    ) -> ex.ExecutionRefused | None:
        """Await the fsync-ed ``submit`` line; a refusal (nothing sent) when it failed."""
        try:
            await written
        except OSError as exc:
            log.error("audit write failed; order %s not sent: %s", preview.preview_id, exc)
            return refused(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the audit log cannot be written ({exc}); nothing was sent",
                f"fix {self._settings.audit_path} and make a fresh preview",
                reason="audit_failed",
                order_ref=preview.preview_id,
            )
        return None

    async def _send(self, ref: str, preview: Preview, request: PlaceOrder | ModifyOrder) -> Reply:
        timeout = max(1.0, remaining_budget(20.0) - REPLY_MARGIN_S)
        try:
            reply = await self._reads.connection.call(request, timeout=timeout)
        except (ActorDown, CallTimeout) as exc:
            return await self._unknown(ref, f"{type(exc).__name__}: {exc}")
        match reply:
            case OrderPlaced():
                self._breaker.accepted()
                if preview.kind == "modify":
                    self._ledger.adopt_change(ref, preview.terms)
                record = self._ledger.placed(ref, reply)
                await self._journal.order("status", record.tracked)
                await self._follow_stops(ref)
                prompt = stops.stop_loss_prompt(self._ledger, record)
                return report.order_submitted(preview, record, reply, prompt)
            case OrderRejected():
                if reply.code != 0:
                    self._breaker.rejected(f"{reply.code}: {reply.message}")
                if preview.kind == "modify":
                    # A refused change leaves the working order as it was.
                    await self._journal.line(
                        "status", order_ref=ref, modify_rejected=reply.code, text=reply.message
                    )
                else:
                    record = self._ledger.rejected(ref, reply)
                    await self._journal.order(
                        "status", record.tracked, code=reply.code, text=reply.message
                    )
                refusal = rejected(ref, reply)
                await self._journal.refusal(ref, refusal)
                return refusal
            case OrderUnacknowledged():
                self._ledger.acknowledge_missing(ref, reply.order_id)
                return await self._unknown(ref, "TWS did not acknowledge the order in time")
            case _:
                return await self._unknown(ref, f"unexpected answer {type(reply).__name__}")

    async def _unknown(self, ref: str, cause: str) -> ex.OutcomeUnknown:
        log.warning("order %s: outcome unknown (%s); reconciling, never retrying", ref, cause)
        await self._journal.line("status", order_ref=ref, state="submitting", outcome="unknown")
        self._wake.set()
        return ex.OutcomeUnknown(
            order_ref=ref,
            message=f"the order may or may not have reached IB: {cause}",
            hint=f"it is never sent again; ask get_order_status for {ref} in a moment",
        )

    async def _follow_stops(self, ref: str) -> None:
        """Once the close or roll ``ref`` is done, cancel or shrink the stops it was planned
        to take along that do not share its OCA group (the preview listed them). Each step is
        audited; a failure is logged and left for the person (get_open_orders shows it)."""
        for step in stops.follow_steps(self._ledger, ref):
            stop = step.stop
            reply: Reply | None = None
            try:
                if step.smaller is None:
                    reply = await self._reads.connection.call(
                        CancelOrder(order_ref=stop.ref), timeout=5.0
                    )
                    action = "cancel"
                else:
                    reply = await self._reads.connection.call(
                        ModifyOrder(order_id=step.order_id, spec=step.smaller), timeout=10.0
                    )
                    if isinstance(reply, OrderPlaced):
                        stop.spec = step.smaller
                    action = f"reduce to {step.smaller.quantity}"
            except (ActorDown, CallTimeout) as exc:
                log.error("stop %s could not follow %s: %s", stop.ref, ref, exc)
                action = "failed"
            await self._journal.line(
                "stop_follow",
                order_ref=stop.ref,
                after=ref,
                action=action,
                answer=type(reply).__name__,
            )

    # ------------------------------------------------------------------ events

    async def _on_status(self, event: OrderStatusChanged) -> None:
        updated = self._ledger.on_status(event) if is_preview_id(event.order_ref) else None
        if updated is not None:
            await self._journal.order("status", updated)
            await self._after_change(event.order_ref)

    async def _on_fill(self, event: FillReported) -> None:
        updated = self._ledger.on_fill(event) if is_preview_id(event.order_ref) else None
        if updated is not None:
            self._fills.append(event)
            await self._journal.fill(event, updated)
            await self._after_change(event.order_ref)

    async def _after_change(self, ref: str) -> None:
        """An order moved: prompt for a stop after a fill, follow its stops when done."""
        record = self._ledger.get(ref)
        assert record is not None
        prompt = stops.stop_loss_prompt(self._ledger, record)
        if prompt is not None:
            self._prompts.append(prompt)
        await self._follow_stops(ref)

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile_once(self) -> float | None:
        """Fetch the order book and adopt it. Returns seconds until another pass is needed
        (not connected, a young ``submitting`` order), or ``None``."""
        state = await self._reads.connection_state()
        if not isinstance(state, ConnectionState) or state.state != "connected":
            return 0.5  # a ConnectionUp wakes us sooner; polling covers one sent before start
        # Only a pass that gates orders (first after start or a reconnect) makes execute wait.
        self._reconciling = self._reconciled_epoch != state.epoch
        try:
            async with self._order_lock:
                try:
                    book = await self._reads.connection.call(FetchOrderBook(), timeout=10.0)
                except (ActorDown, CallTimeout) as exc:
                    log.warning("reconciliation: order book unavailable (%s)", exc)
                    return 1.0
                if not isinstance(book, OrderBook):
                    log.warning("reconciliation: %s", type(book).__name__)
                    return 1.0
                adopted = self._ledger.adopt(book, now=self._wall(), ack_window=self._ack_window)
                self._reconciled_epoch = state.epoch
                self.reconciliations += 1
        finally:
            self._reconciling = False
        self._fills.extend(adopted.missed_fills)
        for ref in adopted.changed:
            record = self._ledger.get(ref)
            assert record is not None
            await self._journal.order("reconcile", record.tracked)
            await self._after_change(ref)
        for ref in adopted.duplicates:
            log.error("two IB orders carry order_ref %s", ref)
            await self._journal.line("reconcile", order_ref=ref, duplicate=True)
        return adopted.retry_in

    # ------------------------------------------------------------------ cancel

    async def _cancel(self, ref: str) -> Reply:
        reply = await cancel_by_ref(ref, self._ledger, self._reads.connection, self._journal)
        if isinstance(reply, str):
            return await self._unknown(ref, reply)
        return reply

    # ------------------------------------------------------------------ stops and changes

    async def _prepare_stop(self, msg: ex.PrepareStopLoss) -> Reply:
        symbol = msg.symbol.strip().upper()
        problem = stops.check_stop_request(msg)
        if problem is not None:
            return problem
        found = await self._reads.positions(symbol)
        if isinstance(found, ex.ExecutionRefused):
            return found
        epoch, held = found
        chosen = stops.choose_position(msg, held, self._ledger, symbol)
        if isinstance(chosen, ex.ExecutionRefused):
            return chosen
        target = stops.stop_target(msg, chosen, self._ledger)
        if isinstance(target, ex.ExecutionRefused):
            return target
        quotes = await self._reads.quotes(target.symbol, target.keys)
        if isinstance(quotes, ex.ExecutionRefused):
            return quotes
        kind = self._kind(target.account)
        terms = stops.plan_stop(target, quotes, self._ledger, epoch=epoch, account_kind=kind)
        return terms if isinstance(terms, ex.ExecutionRefused) else await self._create(terms)

    async def _prepare_close(self, msg: ex.PrepareClose) -> Reply:
        symbol = msg.symbol.strip().upper()
        problem = changes.check_close_request(msg)
        if problem is not None:
            return problem
        found = await self._reads.positions(symbol)
        if isinstance(found, ex.ExecutionRefused):
            return found
        epoch, held = found
        target = changes.close_target(msg, symbol, held, self._ledger)
        if isinstance(target, ex.ExecutionRefused):
            return target
        quotes = await self._reads.quotes(symbol, option_leg_keys(target.legs))
        if isinstance(quotes, ex.ExecutionRefused):
            return quotes
        book = await self._reads.order_book()
        kind = self._kind(target.account)
        plan = changes.plan_close(
            target, msg, quotes, book, self._ledger, held, epoch=epoch, account_kind=kind
        )
        return (
            plan if isinstance(plan, ex.ExecutionRefused) else await self._create(plan.terms, plan)
        )

    async def _prepare_modify(self, msg: ex.PrepareModify) -> Reply:
        record = modify.modify_target(msg, self._ledger)
        if isinstance(record, ex.ExecutionRefused):
            return record
        draft = modify.modify_draft(msg, record, await self._reads.order_book())
        if isinstance(draft, ex.ExecutionRefused):
            return draft
        found = await self._reads.positions(draft.spec.symbol)
        if isinstance(found, ex.ExecutionRefused):
            return found
        epoch, held = found
        quotes = await self._reads.quotes(draft.spec.symbol, option_leg_keys(draft.new.legs))
        if isinstance(quotes, ex.ExecutionRefused):
            return quotes
        kind = self._kind(draft.spec.account)
        plan = modify.plan_modify(draft, held, quotes, epoch=epoch, account_kind=kind)
        return (
            plan if isinstance(plan, ex.ExecutionRefused) else await self._create(plan.terms, plan)
        )

    async def _prepare_roll(self, msg: ex.PrepareRoll) -> Reply:
        symbol = msg.symbol.strip().upper()
        found = await self._reads.positions(symbol)
        if isinstance(found, ex.ExecutionRefused):
            return found
        epoch, held = found
        target = changes.roll_target(msg, symbol, held, self._ledger)
        if isinstance(target, ex.ExecutionRefused):
            return target
        analysed = await self._reads.analyse(target)
        if isinstance(analysed, ex.ExecutionRefused):
            return analysed
        remains = changes.check_roll(target, analysed, held)
        if isinstance(remains, ex.ExecutionRefused):
            return remains
        old_quotes = await self._reads.quotes(
            symbol, option_leg_keys(closing_legs(target.structure))
        )
        if isinstance(old_quotes, ex.ExecutionRefused):
            return old_quotes
        book = await self._reads.order_book()
        plan = changes.plan_roll(
            target,
            msg,
            analysed,
            remains,
            old_quotes,
            book,
            self._ledger,
            held,
            epoch=epoch,
            account_kind=self._kind(target.account),
        )
        return (
            plan if isinstance(plan, ex.ExecutionRefused) else await self._create(plan.terms, plan)
        )
