"""The execution actor: the I/O around the pure order core :mod:`sumppump.trading`. The
protocol and every refusal path are documented in :mod:`sumppump.messages.execution`.

Each request handler reads as *gather → decide → apply → reply*: it asks connection, chain
cache or risk (the only awaits), hands what it read to a pure function of ``trading`` (the
execute gate, the close/modify/roll planners, the stops), and applies the decision to its state
(the preview store and the order ledger) and the audit log.

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

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final, assert_never

import anyio
import msgspec

from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.audit import AuditLog, read_audit_state
from sumppump.messages.base import Message, Reply
from sumppump.messages.chain_cache import GetLegQuotes, LegKey, LegQuotes, SymbolSwitched
from sumppump.messages.common import NotConnected, Ping, Pong, Quote
from sumppump.messages.connection import (
    ConnectionDown,
    ConnectionState,
    ConnectionUp,
    FetchPositions,
    GetConnectionState,
    PositionInfo,
    Positions,
)
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    AccountKind,
    ApprovalContext,
    BreakerState,
    CancelByRef,
    CancelResult,
    CreatePreview,
    DeclinePreview,
    ExecutePreview,
    ExecutionRefused,
    ExecutionRequest,
    Fills,
    GetBreaker,
    GetFills,
    GetOrderOutcome,
    GetOrderStatus,
    OrderSubmitted,
    OutcomeUnknown,
    PrepareClose,
    PrepareModify,
    PrepareRoll,
    PrepareStopLoss,
    PreviewCreated,
    ResetBreaker,
    StopLossPrompt,
    Voided,
    VoidSymbol,
)
from sumppump.messages.orders import (
    CancelOrder,
    CancelRequested,
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
from sumppump.messages.risk import (
    AnalyseStrategy,
    RecheckOrder,
    RecheckResult,
    RiskRejected,
    StrategyAnalysed,
)
from sumppump.settings import Settings
from sumppump.trading import changes, gate, stops
from sumppump.trading.account import account_kind
from sumppump.trading.breaker import BREAKER_THRESHOLD, CircuitBreaker
from sumppump.trading.confirm import money
from sumppump.trading.gate import RiskVerdict
from sumppump.trading.holdings import closing_legs
from sumppump.trading.ledger import OrderLedger, OrderMeta, fill_info
from sumppump.trading.outcome import outcome_words
from sumppump.trading.previews import Preview, PreviewStore, is_preview_id
from sumppump.trading.prices import option_leg_keys, price_multiplier
from sumppump.trading.reconciliation import (
    TrackedOrder,
    apply_fill,
    apply_status,
    is_done,
    reconcile,
)
from sumppump.trading.refusals import not_connected, refused, tombstone_refusal
from sumppump.trading.report import order_outcome, status_report
from sumppump.trading.stops import suggest_stop
from sumppump.trading.terms import fresh_terms, strategy_id

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
#: The execute path's split of its caller's deadline (ExecutePreview asks for at least 15 s):
#: the fresh quotes must leave 8 s for the risk re-check and the placement, the re-check must
#: leave 6 s for the placement (the desk waits up to 5 s for TWS's acknowledgement).
QUOTES_LEAVE_S: Final = 8.0
RISK_LEAVES_S: Final = 6.0


class ExecutionActor(Actor):
    """See the module docstring.

    ``connection``, ``chain_cache`` and ``risk`` are the Refs it asks. ``mono``/``wall`` are the
    preview clocks; ``ack_window`` how long a sent order may take to appear in TWS before
    reconciliation calls it ``not_received``.
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
    ) -> None:
        self._settings = settings
        self._simulated = simulated
        self._connection = connection
        self._chain_cache = chain_cache
        self._risk = risk
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        redact = [settings.http_token] if settings.http_token else []
        self._audit = audit if audit is not None else AuditLog(settings.audit_path, redact=redact)
        self._owns_audit = audit is None
        self._store = PreviewStore(settings.preview_ttl_s, mono=mono, wall=wall)
        self._ledger = OrderLedger()
        self._wall = wall
        self._ack_window = ack_window
        self._refresh_interval = refresh_interval
        self._fills: list[FillReported] = []
        self._prompts: list[StopLossPrompt] = []
        self._reconciled_epoch: int | None = None
        self._reconciling = False
        self._loaded = False
        self._wake = anyio.Event()
        self._order_lock = anyio.Lock()
        self.reconciliations = 0

    # ------------------------------------------------------------------ lifecycle

    async def on_stop(self) -> None:
        if self._owns_audit:
            await self._audit.close()

    async def background(self) -> None:
        """Replay the audit log into the ledger, then reconcile whenever woken (start,
        ConnectionUp, an order whose outcome is unknown, a young ``submitting`` order)."""
        await self._load_journal()
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
                if retry_in is None and self._ledger.any_open():
                    # A safety net for events lost while the mailbox was full: working orders
                    # are re-read from TWS now and then.
                    retry_in = self._refresh_interval
                if retry_in is not None:
                    tg.start_soon(self._wake_later, retry_in)

    async def _wake_later(self, delay: float) -> None:
        await anyio.sleep(delay)
        self._wake.set()

    async def _load_journal(self) -> None:
        try:
            records = await read_audit_state(self._settings.audit_path)
        except OSError:
            log.exception("cannot read the audit log; reconciling from TWS only")
            records = []
        replayed = self._ledger.replay(records)
        for pid, symbol in replayed.used:
            self._store.remember_used(pid, symbol)
        self._loaded = True

    # ------------------------------------------------------------------ dispatch

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, ExecutionRequest):
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

    async def _dispatch(self, msg: ExecutionRequest) -> Reply:
        match msg:
            case CreatePreview():
                return await self._create(msg)
            case PrepareStopLoss():
                return await self._prepare_stop(msg)
            case PrepareClose():
                return await self._prepare_close(msg)
            case PrepareModify():
                return await self._prepare_modify(msg)
            case PrepareRoll():
                return await self._prepare_roll(msg)
            case ExecutePreview():
                return await self._execute(msg)
            case GetOrderStatus():
                return status_report(msg.order_ref, self._ledger.get(msg.order_ref))
            case GetOrderOutcome():
                ref = msg.order_ref.strip()
                return order_outcome(ref, self._ledger.get(ref), self._store.lookup(ref))
            case CancelByRef():
                return await self._cancel(msg.order_ref)
            case GetFills():
                fills = tuple(fill_info(f) for f in self._fills if f.ts_init >= msg.since_ns)
                prompts = tuple(self._prompts)
                if msg.take_prompts:
                    self._prompts.clear()
                return Fills(fills=fills, stop_loss_prompts=prompts)
            case ResetBreaker():
                self._breaker.reset()
                await self._audit_safe("reconcile", order_ref="", action="breaker_reset")
                return self._breaker_state()
            case GetBreaker():
                return self._breaker_state()
            case VoidSymbol(symbol=symbol):
                ids = self._store.void_symbol(symbol)
                await self._void(ids, None)
                return Voided(symbol=symbol.upper(), preview_ids=tuple(ids))
            case DeclinePreview(preview_id=pid):
                tomb = self._store.retire(pid.strip(), "declined")
                if tomb is None:
                    return Voided(symbol="", preview_ids=())
                await self._audit_safe("preview", order_ref=tomb.preview_id, action="declined")
                return Voided(symbol=tomb.symbol, preview_ids=(tomb.preview_id,))
            case _:
                assert_never(msg)

    def _breaker_state(self) -> BreakerState:
        b = self._breaker
        return BreakerState(
            open=b.open,
            consecutive_rejections=b.consecutive,
            threshold=b.threshold,
            last_rejection=b.last_rejection,
            ready=self._loaded and not self._reconciling and self._reconciled_epoch is not None,
            reconciled_epoch=self._reconciled_epoch,
        )

    async def _void(self, ids: list[str], current: str | None) -> None:
        for pid in ids:
            await self._audit_safe(
                "preview", order_ref=pid, action="voided", switched_to=current or ""
            )

    def _kind(self, account: str) -> AccountKind:
        return account_kind(account, simulated=self._simulated)

    # ------------------------------------------------------------------ previews

    async def _create(self, msg: CreatePreview, plan: changes.Plan | None = None) -> Reply:
        """Store ``msg`` (an opening order joins the OCA group of stops it nets against; mode
        ``tws`` stages it untransmitted) and audit the preview line."""
        terms = msg
        if terms.kind == "open" and not terms.order.oca_group:
            order, joined = stops.joined_stop_group(self._ledger, terms.order)
            terms = msgspec.structs.replace(terms, order=order, warnings=(*terms.warnings, *joined))
        mode = self._settings.approval_mode
        if mode == "tws":
            terms = msgspec.structs.replace(
                terms, order=msgspec.structs.replace(terms.order, transmit=False)
            )
        if not terms.order.transmit and mode != "tws":
            return refused(
                ErrorCode.INVALID_ARGUMENT,
                "only approval mode 'tws' stages orders without transmitting them",
                "leave transmit on",
            )
        try:
            preview = self._store.add(terms, follow_ups=plan.follow_ups if plan else ())
        except ValueError as exc:
            return refused(
                ErrorCode.INVALID_ARGUMENT, f"this order cannot be previewed: {exc}", "fix it"
            )
        await self._audit_preview(preview)
        return self._created(preview)

    async def _audit_preview(self, preview: Preview, **extra: Any) -> None:
        terms = preview.terms
        await self._audit_safe(
            "preview",
            order_ref=preview.preview_id,
            symbol=preview.symbol,
            kind=preview.kind,
            order=preview.order,
            max_loss=terms.max_loss,
            net_debit=terms.net_debit,
            epoch=terms.epoch,
            digest=preview.digest,
            expires_at=preview.expires_at,
            confirm_text=preview.confirm_text,
            **extra,
        )

    def _created(self, preview: Preview, notes: tuple[str, ...] = ()) -> PreviewCreated:
        terms = preview.terms
        return PreviewCreated(
            preview_id=preview.preview_id,
            confirm_text=preview.confirm_text,
            expires_at=preview.expires_at,
            expires_in_s=round(self._store.remaining_s(preview), 3),
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

    async def _fresh_preview(self, old: Preview, moved: gate.PriceMoved) -> PreviewCreated | None:
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
        await self._audit_safe(
            "preview",
            order_ref=preview.preview_id,
            symbol=preview.symbol,
            kind=preview.kind,
            order=preview.order,
            max_loss=terms.max_loss,
            supersedes=old.preview_id,
            confirm_text=preview.confirm_text,
        )
        loss = terms.max_loss
        return self._created(
            preview,
            notes=(
                f"fresh preview after the price moved; max loss now {money(loss)}"
                if loss is not None
                else "fresh preview after the price moved",
                "breakevens moved too: run calculate_strategy for the full analysis",
            ),
        )

    # ------------------------------------------------------------------ execute

    async def _execute(self, msg: ExecutePreview) -> Reply:
        checked = await self._precheck(msg)
        if isinstance(checked, ExecutionRefused):
            await self._audit_refusal(msg.preview_id, checked)
            return checked
        async with self._order_lock:
            # Single use: the claim re-checks expiry; nothing awaits between it and the mark.
            claimed = self._store.claim(checked.preview_id)
            if not isinstance(claimed, Preview):
                answer = tombstone_refusal(msg.preview_id, claimed)
                await self._audit_refusal(msg.preview_id, answer)
                return answer
            if claimed.kind == "modify":
                return await self._submit_modify(claimed, msg.approval)
            return await self._submit(claimed, msg.approval)

    async def _precheck(self, msg: ExecutePreview) -> Preview | ExecutionRefused:
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
        if isinstance(preview, ExecutionRefused):
            return preview
        state = await self._connection_state()
        refusal = gate.check_connection(
            preview, state, reconciled_epoch=self._reconciled_epoch, store=self._store
        )
        if refusal is not None:
            if refusal.reason == "reconciling":
                self._wake.set()
            return refusal
        if self._chain_cache is None:
            return refused(
                ErrorCode.NO_MARKET_DATA,
                "no quote source is wired; the price check cannot run",
                "this is a set-up error; nothing was sent",
                reason="no_quote_source",
                order_ref=pid,
            )
        try:
            reply: object = await self._chain_cache.call(
                GetLegQuotes(symbol=preview.symbol, legs=option_leg_keys(preview.order.legs)),
                timeout=max(0.5, min(10.0, remaining_budget(10.0) - QUOTES_LEAVE_S)),
            )
        except (ActorDown, CallTimeout) as exc:
            reply = str(exc)
        market = gate.check_market(
            preview, reply, max_slippage=self._settings.max_slippage, store=self._store
        )
        if isinstance(market, gate.PriceMoved):
            return gate.price_moved(preview, market, await self._fresh_preview(preview, market))
        if isinstance(market, ExecutionRefused):
            return market
        budget = max(0.5, min(5.0, remaining_budget(11.0) - RISK_LEAVES_S))
        verdict = await risk_via_actor(self._risk, preview, budget, market)
        return gate.risk_refusal(preview, verdict, self._store) or preview

    # ------------------------------------------------------------------ submission

    async def _write_ahead(
        self, ref: str, preview: Preview, **fields: Any
    ) -> ExecutionRefused | None:
        """The fsync-ed ``submit`` line; a refusal (nothing sent) when it cannot be written."""
        try:
            await self._audit.write(
                "submit", order_ref=ref, symbol=preview.symbol, digest=preview.digest, **fields
            )
        except OSError as exc:
            log.error("audit write failed; order %s not sent: %s", ref, exc)
            return refused(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the audit log cannot be written ({exc}); nothing was sent",
                f"fix {self._settings.audit_path} and make a fresh preview",
                reason="audit_failed",
                order_ref=preview.preview_id,
            )
        return None

    async def _submit(self, preview: Preview, approval: ApprovalContext) -> Reply:
        ref = preview.preview_id
        if not preview.intact() or preview.order.order_ref != ref:  # pragma: no cover
            return refused(
                ErrorCode.PREVIEW_UNKNOWN,
                "integrity check failed",
                "make a fresh preview",
                order_ref=ref,
            )
        terms = preview.terms
        failed = await self._write_ahead(
            ref,
            preview,
            kind=preview.kind,
            order=preview.order,
            meta=OrderMeta.of(terms),
            epoch=terms.epoch,
            account_kind=terms.account_kind,
            state="submitting",
            approval=approval.description,
        )
        if failed is not None:
            return failed
        self._ledger.submit(terms, follow_ups=preview.follow_ups, at=self._wall())
        return await self._send(ref, preview, PlaceOrder(spec=preview.order))

    async def _submit_modify(self, preview: Preview, approval: ApprovalContext) -> Reply:
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
            await self._audit_refusal(preview.preview_id, refusal)
            return refusal
        spec = msgspec.structs.replace(preview.order, order_ref=target_ref)
        failed = await self._write_ahead(
            target_ref,
            preview,
            kind="modify",
            preview_id=preview.preview_id,
            order=spec,
            order_id=order_id,
            state=target.state,
            approval=approval.description,
        )
        if failed is not None:
            return failed
        return await self._send(target_ref, preview, ModifyOrder(order_id=order_id, spec=spec))

    async def _send(self, ref: str, preview: Preview, request: PlaceOrder | ModifyOrder) -> Reply:
        timeout = max(1.0, remaining_budget(20.0) - REPLY_MARGIN_S)
        try:
            reply = await self._connection.call(request, timeout=timeout)
        except (ActorDown, CallTimeout) as exc:
            return await self._unknown(ref, f"{type(exc).__name__}: {exc}")
        return await self._placed(preview, reply, ref)

    async def _placed(self, preview: Preview, reply: Reply, ref: str) -> Reply:
        """Turn the order desk's answer into ours (``ref``: the order it concerns)."""
        record = self._ledger.get(ref)
        assert record is not None  # recorded before sending
        match reply:
            case OrderPlaced():
                self._breaker.accepted()
                if preview.kind == "modify" and record.spec is not None:
                    self._ledger.adopt_change(ref, preview.terms)
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
                await self._audit_order("status", record.tracked)
                await self._follow_stops(ref)
                prompt = stops.stop_loss_prompt(self._ledger, record)
                waiting = not preview.order.transmit
                tracked = record.tracked
                return OrderSubmitted(
                    order_ref=ref,
                    order_id=reply.order_id,
                    perm_id=reply.perm_id,
                    status=reply.status,
                    filled=tracked.filled,
                    remaining=reply.remaining,
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
                        else f"Order {ref} is {reply.status}."
                    ),
                )
            case OrderRejected():
                if reply.code != 0:
                    self._breaker.rejected(f"{reply.code}: {reply.message}")
                if preview.kind == "modify":
                    # A refused change leaves the working order as it was.
                    await self._audit_safe(
                        "status", order_ref=ref, modify_rejected=reply.code, text=reply.message
                    )
                else:
                    record.advance(
                        replace(
                            record.tracked,
                            state="rejected",
                            status="Rejected",
                            message=f"{reply.code}: {reply.message}",
                        )
                    )
                    await self._audit_order(
                        "status", record.tracked, code=reply.code, text=reply.message
                    )
                refusal = refused(
                    ErrorCode.ORDER_REJECTED,
                    f"IB rejected the order ({reply.code}): {reply.message}"
                    if reply.code
                    else f"the order was refused before sending: {reply.message}",
                    "read the reason; make a new preview once it is addressed",
                    reason="rejected",
                    order_ref=ref,
                )
                await self._audit_refusal(ref, refusal)
                return refusal
            case OrderUnacknowledged():
                record.tracked = replace(record.tracked, order_id=reply.order_id)
                return await self._unknown(ref, "TWS did not acknowledge the order in time")
            case _:
                return await self._unknown(ref, f"unexpected answer {type(reply).__name__}")

    async def _follow_stops(self, ref: str) -> None:
        """Once the close or roll ``ref`` is done, cancel or shrink the stops it was planned
        to take along that do not share its OCA group (the preview listed them). Each step is
        audited; a failure is logged and left for the person (get_open_orders shows it)."""
        plan = self._ledger.take_follow_ups(ref)
        order = self._ledger.get(ref)
        for step in plan:
            stop = self._ledger.get(step.stop_ref)
            if order is None or stop is None or stop.spec is None or not stop.working:
                continue
            order_id = stop.tracked.order_id
            if order_id is None:
                continue
            left = round(stop.spec.quantity - step.per_unit * order.tracked.filled)
            reply: Reply | None
            try:
                if left <= stop.tracked.filled + 1e-9:
                    reply = await self._connection.call(
                        CancelOrder(order_ref=step.stop_ref), timeout=5.0
                    )
                    action = "cancel"
                else:
                    smaller = msgspec.structs.replace(stop.spec, quantity=left)
                    reply = await self._connection.call(
                        ModifyOrder(order_id=order_id, spec=smaller), timeout=10.0
                    )
                    if isinstance(reply, OrderPlaced):
                        stop.spec = smaller
                    action = f"reduce to {left}"
            except (ActorDown, CallTimeout) as exc:
                log.error("stop %s could not follow %s: %s", step.stop_ref, ref, exc)
                action, reply = "failed", None
            await self._audit_safe(
                "stop_follow",
                order_ref=step.stop_ref,
                after=ref,
                action=action,
                answer=type(reply).__name__,
            )

    async def _unknown(self, ref: str, cause: str) -> OutcomeUnknown:
        log.warning("order %s: outcome unknown (%s); reconciling, never retrying", ref, cause)
        await self._audit_safe("status", order_ref=ref, state="submitting", outcome="unknown")
        self._wake.set()
        return OutcomeUnknown(
            order_ref=ref,
            message=f"the order may or may not have reached IB: {cause}",
            hint=f"it is never sent again; ask get_order_status for {ref} in a moment",
        )

    # ------------------------------------------------------------------ events

    async def _on_status(self, event: OrderStatusChanged) -> None:
        ref = event.order_ref
        if not is_preview_id(ref):
            return
        record = self._ledger.get(ref)
        current = (
            record.tracked if record else TrackedOrder(order_ref=ref, symbol="", state="working")
        )
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
        if not self._ledger.update(updated):
            return
        await self._applied(ref, "status")

    async def _on_fill(self, event: FillReported) -> None:
        ref = event.order_ref
        if not is_preview_id(ref):
            return
        record = self._ledger.get(ref)
        current = (
            record.tracked
            if record
            else TrackedOrder(order_ref=ref, symbol=event.symbol, state="working")
        )
        if event.exec_id in current.exec_ids:
            return
        self._ledger.update(apply_fill(current, event))
        self._fills.append(event)
        await self._applied(ref, "fill", fill=event)

    async def _applied(self, ref: str, event: str, fill: FillReported | None = None) -> None:
        """An order changed: audit it, prompt for a stop after a fill, follow its stops."""
        record = self._ledger.get(ref)
        assert record is not None
        tracked = record.tracked
        if fill is None:
            await self._audit_order(event, tracked)
        else:
            await self._audit_safe(
                "fill",
                order_ref=ref,
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
                state=tracked.state,
                filled=tracked.filled,
            )
        prompt = stops.stop_loss_prompt(self._ledger, record)
        if prompt is not None:
            self._prompts.append(prompt)
        await self._follow_stops(ref)

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile_once(self) -> float | None:
        """Fetch the order book and adopt it. Returns seconds until another pass is needed
        (not connected, a young ``submitting`` order), or ``None``."""
        state = await self._connection_state()
        if not isinstance(state, ConnectionState) or state.state != "connected":
            return 0.5  # a ConnectionUp wakes us sooner; polling covers one sent before start
        ack_window = self._ack_window
        # Only a pass that gates orders (first after start or a reconnect) makes execute wait.
        self._reconciling = self._reconciled_epoch != state.epoch
        try:
            async with self._order_lock:
                try:
                    book = await self._connection.call(FetchOrderBook(), timeout=10.0)
                except (ActorDown, CallTimeout) as exc:
                    log.warning("reconciliation: order book unavailable (%s)", exc)
                    return 1.0
                if not isinstance(book, OrderBook):
                    log.warning("reconciliation: %s", type(book).__name__)
                    return 1.0
                now = self._wall()
                # A ref sent moments ago may still be on its way to TWS: not judged yet.
                tracked = self._ledger.tracked()
                young = {
                    r.ref
                    for r in self._ledger
                    if r.state == "submitting" and now - r.submitted_at < ack_window
                }
                result = reconcile({k: v for k, v in tracked.items() if k not in young}, book)
                found = reconcile({k: tracked[k] for k in young}, book)
                # Audited below: what reconciliation found changed and the ledger adopted.
                changed = [
                    ref
                    for ref in result.changed
                    if ref not in young and self._ledger.update(result.orders[ref])
                ]
                changed += [
                    ref
                    for ref in found.changed
                    if found.orders[ref].state != "not_received"
                    and self._ledger.update(found.orders[ref])
                ]
                # The rest is adopted silently (the ``reconciled`` flag, ids IB filled in).
                for ref, order in (*result.orders.items(), *found.orders.items()):
                    if ref not in changed and (ref not in young or order.state != "not_received"):
                        self._ledger.update(order)
                self._reconciled_epoch = state.epoch
                self.reconciliations += 1
        finally:
            self._reconciling = False
        self._fills.extend((*result.missed_fills, *found.missed_fills))
        for ref in changed:
            record = self._ledger.get(ref)
            assert record is not None
            await self._audit_order("reconcile", record.tracked)
            prompt = stops.stop_loss_prompt(self._ledger, record)
            if prompt is not None:
                self._prompts.append(prompt)
            await self._follow_stops(ref)
        for ref in result.duplicates:
            log.error("two IB orders carry order_ref %s", ref)
            await self._audit_safe("reconcile", order_ref=ref, duplicate=True)
        waiting = [
            r.submitted_at for r in self._ledger if r.ref in young and r.state == "submitting"
        ]
        if waiting:
            return max(0.05, ack_window - (now - min(waiting)) + 0.05)
        return None

    # ------------------------------------------------------------------ cancel

    async def _cancel(self, ref: str) -> Reply:
        ref = ref.strip()
        if not is_preview_id(ref):
            return refused(
                ErrorCode.INVALID_ARGUMENT,
                f"{ref!r} is not an order placed by SumpPump",
                "use the order_ref from execute_trade or get_open_orders",
                order_ref=ref,
            )
        known = self._ledger.get(ref)
        if known is not None and is_done(known.state):
            return refused(
                ErrorCode.INVALID_ARGUMENT,
                f"order {ref} is {known.state}; there is nothing to cancel",
                "get_open_orders lists what is still working",
                reason="done",
                order_ref=ref,
            )
        try:
            reply = await self._connection.call(
                CancelOrder(order_ref=ref), timeout=max(1.0, remaining_budget(8.0) - 0.5)
            )
        except (ActorDown, CallTimeout) as exc:
            return await self._unknown(ref, f"the cancel request ended in {type(exc).__name__}")
        match reply:
            case CancelRequested():
                await self._audit_safe(
                    "cancel", order_ref=ref, order_id=reply.order_id, status=reply.status
                )
                if known is not None:
                    t = known.tracked
                    known.advance(
                        apply_status(
                            t,
                            status=reply.status,
                            filled=t.filled,
                            remaining=t.remaining,
                            avg_fill_price=t.avg_fill_price,
                            order_id=reply.order_id,
                        )
                    )
                return CancelResult(
                    order_ref=ref,
                    order_id=reply.order_id,
                    status=reply.status,
                    message=f"cancel requested; the order is {reply.status}",
                )
            case OrderRejected():
                refusal = refused(
                    ErrorCode.INVALID_ARGUMENT if reply.code == 0 else ErrorCode.ORDER_REJECTED,
                    f"cancel refused: {reply.message}",
                    "get_open_orders lists what is still working",
                    reason="cancel_refused",
                    order_ref=ref,
                )
                await self._audit_refusal(ref, refusal)
                return refusal
            case NotConnected():
                return refused(
                    ErrorCode.NOT_CONNECTED,
                    f"not connected to TWS: {reply.reason}",
                    "cancel in TWS directly, or retry once connected",
                    order_ref=ref,
                )
            case _:
                return await self._unknown(ref, f"unexpected answer {type(reply).__name__}")

    # ------------------------------------------------------------------ stops and changes

    async def _prepare_stop(self, msg: PrepareStopLoss) -> Reply:
        symbol = msg.symbol.strip().upper()
        problem = stops.check_stop_request(msg)
        if problem is not None:
            return problem
        found = await self._epoch_and_positions(symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        target = stops.choose_position(msg, held, self._ledger, symbol)
        if isinstance(target, ExecutionRefused):
            return target
        if isinstance(target, PositionInfo):
            single = stops.single_stop(msg, target)
            if isinstance(single, ExecutionRefused):
                return single
            quotes = await self._quotes_for(msg.symbol, single.keys)
            if isinstance(quotes, ExecutionRefused):
                return quotes
            terms = stops.plan_single_stop(
                single, quotes, self._ledger, epoch=epoch, account_kind=self._kind(target.account)
            )
        else:
            combo = stops.combo_stop(msg, *target, self._ledger)
            quotes = await self._quotes_for(combo.spec.symbol, option_leg_keys(combo.spec.legs))
            if isinstance(quotes, ExecutionRefused):
                return quotes
            terms = stops.plan_combo_stop(
                combo,
                quotes,
                self._ledger,
                epoch=epoch,
                account_kind=self._kind(combo.spec.account),
            )
        return terms if isinstance(terms, ExecutionRefused) else await self._create(terms)

    async def _prepare_close(self, msg: PrepareClose) -> Reply:
        symbol = msg.symbol.strip().upper()
        if msg.quantity is not None and msg.quantity < 1:
            return refused(ErrorCode.INVALID_ARGUMENT, "quantity must be at least 1", "or omit it")
        found = await self._epoch_and_positions(symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        target = changes.close_target(msg, symbol, held, self._ledger)
        if isinstance(target, ExecutionRefused):
            return target
        quotes = await self._quotes_for(symbol, option_leg_keys(target.legs))
        if isinstance(quotes, ExecutionRefused):
            return quotes
        kind = self._kind(target.structure.legs[0].position.account)
        plan = changes.plan_close(
            target, msg, quotes, await self._order_book(), self._ledger, held,
            epoch=epoch, account_kind=kind,
        )  # fmt: skip
        return plan if isinstance(plan, ExecutionRefused) else await self._create(plan.terms, plan)

    async def _prepare_modify(self, msg: PrepareModify) -> Reply:
        record = changes.modify_target(msg, self._ledger)
        if isinstance(record, ExecutionRefused):
            return record
        draft = changes.modify_draft(msg, record, await self._order_book())
        if isinstance(draft, ExecutionRefused):
            return draft
        found = await self._epoch_and_positions(draft.spec.symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        quotes = await self._quotes_for(draft.spec.symbol, option_leg_keys(draft.new.legs))
        if isinstance(quotes, ExecutionRefused):
            return quotes
        plan = changes.plan_modify(
            draft, held, quotes, epoch=epoch, account_kind=self._kind(draft.spec.account)
        )
        return plan if isinstance(plan, ExecutionRefused) else await self._create(plan.terms, plan)

    async def _prepare_roll(self, msg: PrepareRoll) -> Reply:
        symbol = msg.symbol.strip().upper()
        found = await self._epoch_and_positions(symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        target = changes.roll_target(msg, symbol, held, self._ledger)
        if isinstance(target, ExecutionRefused):
            return target
        analysed = await self._analyse(target)
        if isinstance(analysed, ExecutionRefused):
            return analysed
        remains = changes.check_roll(target, analysed, held)
        if isinstance(remains, ExecutionRefused):
            return remains
        old_legs = closing_legs(target.structure)
        old_quotes = await self._quotes_for(symbol, option_leg_keys(old_legs))
        if isinstance(old_quotes, ExecutionRefused):
            return old_quotes
        kind = self._kind(target.structure.legs[0].position.account)
        plan = changes.plan_roll(
            target, msg, analysed, remains, old_quotes, await self._order_book(), self._ledger,
            held, epoch=epoch, account_kind=kind,
        )  # fmt: skip
        return plan if isinstance(plan, ExecutionRefused) else await self._create(plan.terms, plan)

    # ------------------------------------------------------------------ reads

    async def _connection_state(self) -> ConnectionState | str:
        try:
            reply = await self._connection.call(
                GetConnectionState(), timeout=min(2.0, remaining_budget(2.0))
            )
        except (ActorDown, CallTimeout) as exc:
            return f"the connection actor is not available ({exc})"
        return reply if isinstance(reply, ConnectionState) else type(reply).__name__

    async def _epoch_and_positions(
        self, symbol: str
    ) -> tuple[int, list[PositionInfo]] | ExecutionRefused:
        state = await self._connection_state()
        if isinstance(state, str) or state.state != "connected":
            return not_connected(state if isinstance(state, str) else state.last_error)
        try:
            reply = await self._connection.call(
                FetchPositions(), timeout=max(0.5, min(5.0, remaining_budget(5.0) - 1.0))
            )
        except (ActorDown, CallTimeout) as exc:
            return refused(ErrorCode.NOT_CONNECTED, f"positions unavailable ({exc})", "retry")
        if not isinstance(reply, Positions):
            return refused(
                ErrorCode.NOT_CONNECTED,
                f"positions unavailable ({type(reply).__name__})",
                "retry once TWS is connected",
            )
        held = [p for p in reply.positions if p.symbol == symbol and abs(p.quantity) > 1e-9]
        return state.epoch, held

    async def _order_book(self) -> OrderBook | None:
        """TWS's working orders (None when unavailable: stops are then planned from the
        ledger, and the preview says the check of foreign orders did not run)."""
        try:
            reply = await self._connection.call(
                FetchOrderBook(), timeout=max(0.5, min(5.0, remaining_budget(5.0) - 1.0))
            )
        except (ActorDown, CallTimeout):
            return None
        return reply if isinstance(reply, OrderBook) else None

    async def _quotes_for(
        self, symbol: str, keys: tuple[LegKey, ...]
    ) -> tuple[Quote, ...] | ExecutionRefused:
        if self._chain_cache is None:
            return refused(
                ErrorCode.NO_MARKET_DATA,
                "no quote source is wired",
                "this is a set-up fault of SumpPump; restart it",
            )
        try:
            reply = await self._chain_cache.call(
                GetLegQuotes(symbol=symbol, legs=keys), timeout=max(0.5, remaining_budget(10.0) - 1)
            )
        except (ActorDown, CallTimeout) as exc:
            return refused(ErrorCode.NO_MARKET_DATA, f"quotes unavailable ({exc})", "retry")
        if not isinstance(reply, LegQuotes):
            return refused(
                ErrorCode.NO_MARKET_DATA, f"quotes unavailable ({type(reply).__name__})", "retry"
            )
        return gate.leg_quotes(reply)

    async def _analyse(self, target: changes.RollTarget) -> StrategyAnalysed | ExecutionRefused:
        """The new structure of a roll, analysed by risk like ``calculate_strategy``."""
        if self._risk is None:
            return refused(
                ErrorCode.SERVICE_UNAVAILABLE, "the risk actor is not wired", "restart sumppump"
            )
        request = AnalyseStrategy(
            symbol=target.symbol,
            strategy=strategy_id(target.structure.name),
            expiry=target.new_expiry,
            strikes=target.new_strikes,
            quantity=target.units,
        )
        try:
            reply = await self._risk.call(request, timeout=max(1.0, remaining_budget(20.0) - 4.0))
        except (ActorDown, CallTimeout) as exc:
            return refused(
                ErrorCode.SERVICE_UNAVAILABLE, f"the analysis did not answer ({exc})", "retry"
            )
        if isinstance(reply, RiskRejected):
            try:
                code = ErrorCode(reply.code)
            except ValueError:
                code = ErrorCode.INVALID_ARGUMENT
            return refused(code, f"the rolled position: {reply.message}", reply.hint)
        if not isinstance(reply, StrategyAnalysed):
            return refused(
                ErrorCode.NO_MARKET_DATA,
                f"the new position could not be analysed ({type(reply).__name__})",
                "retry; check the expiry and strikes with get_options_chain",
            )
        return reply

    # ------------------------------------------------------------------ audit

    async def _audit_order(self, event: Any, order: TrackedOrder, **extra: Any) -> None:
        await self._audit_safe(
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

    async def _audit_refusal(self, ref: str, refusal: ExecutionRefused) -> None:
        await self._audit_safe(
            "refusal",
            order_ref=ref,
            code=str(refusal.code),
            reason=refusal.reason,
            message=refusal.message,
            fresh_preview=refusal.fresh_preview.preview_id if refusal.fresh_preview else "",
        )

    async def _audit_safe(self, event: Any, *, order_ref: str, **fields: Any) -> None:
        """Audit lines other than ``submit``: a failure is logged, it does not stop the flow
        (the submit line, which must precede an order, is written with :meth:`AuditLog.write`
        directly and refuses the order when it fails)."""
        try:
            await self._audit.write(event, order_ref=order_ref, **fields)
        except OSError:
            log.exception("audit write failed (%s %s)", event, order_ref)


async def risk_via_actor(
    risk: Ref | None, preview: Preview, budget: float, hours: gate.Hours = ("", "", "")
) -> RiskVerdict:
    """Ask the risk actor to re-run the account checks (``RecheckOrder`` → ``RecheckResult``).
    ``hours`` are the stock's (liquid_hours, trading_hours, time_zone) from the fresh quote.
    Fails closed: no risk actor, no answer, or an answer of another type refuses the order."""
    if risk is None:
        return RiskVerdict(ok=False, message="the risk checks are not available; refused")
    order, terms = preview.order, preview.terms
    debit = terms.net_debit * price_multiplier(order) * order.quantity
    request = RecheckOrder(
        order=order,
        max_loss=terms.max_loss if terms.order_max_loss is None else terms.order_max_loss,
        debit=round(debit, 2),
        commission=terms.commission,
        summary=preview.confirm_text,
        shares_held_used=terms.shares_held_used,
        # A close (or a change to one) adds no loss: its own analysis says so.
        reduces_exposure=terms.order_max_loss == 0.0,
        liquid_hours=hours[0],
        trading_hours=hours[1],
        time_zone=hours[2],
    )
    try:
        reply = await risk.call(request, timeout=budget)
    except (ActorDown, CallTimeout) as exc:
        return RiskVerdict(ok=False, message=f"the risk checks did not answer ({exc}); refused")
    if isinstance(reply, NotConnected):
        return RiskVerdict(
            ok=False, code=ErrorCode.NOT_CONNECTED, message=f"not connected: {reply.reason}"
        )
    if not isinstance(reply, RecheckResult):
        return RiskVerdict(ok=False, message=f"risk answered {type(reply).__name__}; refused")
    checks = tuple(
        f"{c.name}: {c.status}" + (f" ({c.detail})" if c.detail else "") for c in reply.checks
    )
    if reply.ok:
        return RiskVerdict(ok=True, checks=checks)
    code = ErrorCode.RISK_LIMIT
    if reply.code is not None:
        try:
            code = ErrorCode(reply.code)
        except ValueError:
            code = ErrorCode.RISK_LIMIT
    failed = [f"{c.name}: {c.detail}" for c in reply.checks if c.status != "passed" and c.required]
    message = reply.message or ("risk checks failed: " + "; ".join(failed))
    return RiskVerdict(ok=False, checks=checks, code=code, message=message)
