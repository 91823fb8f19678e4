"""The execution actor: server-held previews, confirmed execution, stops, cancels, fills,
reconciliation and the circuit breaker. The protocol and every refusal path are documented in
:mod:`sumppump.messages.execution`.

Safety properties (each one tested against the simulated TWS):

* **Only previewed orders are placed, each at most once.** A preview is claimed (retired as
  ``used``) synchronously, with no ``await`` between the check and the mark, after every check
  has passed; the order placed is exactly the stored one (its digest is re-checked). The order
  desk additionally refuses any ``orderRef`` it has seen, so even a bug here cannot send twice.
* **Write-ahead.** A ``submit`` line is fsync-ed to the audit log *before* ``PlaceOrder`` is
  sent. A restarted incarnation reads the log's tail and reconciles those refs with TWS.
* **Never retried.** ``PlaceOrder`` ending in ``ActorDown``/``CallTimeout``/``NotConnected``/
  ``OrderUnacknowledged``/anything unexpected gives :class:`OutcomeUnknown`; reconciliation then
  finds the order (or, after the acknowledgement window, establishes it never arrived).
* **Reconciled before accepting.** On start and after every ``ConnectionUp``, open orders,
  completed orders and executions are fetched and applied by ``orderRef`` (in the background);
  until that is done for the current connection epoch, :class:`ExecutePreview` answers
  ``NOT_CONNECTED`` with ``reason="reconciling"``. It never queues an order.
* **Circuit breaker.** Three consecutive rejections by IB open it; only :class:`ResetBreaker` or
  a process restart closes it (the breaker object outlives actor restarts).

Concurrency: one message at a time (``max_concurrency = 1``), so the store and the order table
need no locks. The background reconciliation shares the order table; it and the submission
path are serialised by ``_order_lock`` so a fetch of the order book never races a placement.
Events from the connection (order status, fills) queue while a request is handled and are
applied afterwards; every update is idempotent and monotonic (``reconciliation.apply_*``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final, assert_never

import anyio
import msgspec

from sumppump.actors.position_changes import (
    OCA_REDUCE,
    FollowUp,
    OrderMeta,
    PositionChanges,
)
from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.audit import AuditLog, read_audit_tail
from sumppump.holdings import describe_leg, describe_position, position_names
from sumppump.messages.base import Message, Reply
from sumppump.messages.chain_cache import GetLegQuotes, LegKey, LegQuotes, SymbolSwitched
from sumppump.messages.common import NoMarketData, NotConnected, Ping, Pong, Quote
from sumppump.messages.connection import (
    ConnectionDown,
    ConnectionState,
    ConnectionUp,
    GetConnectionState,
    PositionInfo,
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
    FillInfo,
    Fills,
    GetBreaker,
    GetFills,
    GetOrderStatus,
    OrderStatusReport,
    OrderSubmitted,
    OutcomeUnknown,
    PrepareClose,
    PrepareModify,
    PrepareRoll,
    PrepareStopLoss,
    PreviewCreated,
    ResetBreaker,
    StopLossPrompt,
    SuggestedCall,
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
    OrderLeg,
    OrderPlaced,
    OrderRejected,
    OrderSpec,
    OrderStatusChanged,
    OrderUnacknowledged,
    PlaceOrder,
)
from sumppump.messages.risk import RecheckOrder, RecheckResult
from sumppump.previews import (
    Preview,
    PreviewStore,
    Tombstone,
    confirm_matches,
    is_preview_id,
    money,
    option_leg_keys,
    option_price_tick,
    price_multiplier,
    round_to_tick,
    slippage_allowance,
    structure_mid,
)
from sumppump.reconciliation import (
    TrackedOrder,
    apply_fill,
    apply_status,
    is_done,
    reconcile,
)
from sumppump.settings import Settings

__all__ = [
    "BREAKER_THRESHOLD",
    "CircuitBreaker",
    "ExecutionActor",
    "RiskCheck",
    "RiskVerdict",
    "risk_via_actor",
    "suggest_stop",
]

log = logging.getLogger(__name__)

BREAKER_THRESHOLD: Final = 3
#: How long after a ``submit`` an order absent from TWS may still arrive (the desk waits up to
#: 15 s for an acknowledgement); only later is it declared ``not_received``.
ACK_WINDOW_S: Final = 20.0
#: Kept from the caller's deadline to build and send our own reply.
REPLY_MARGIN_S: Final = 0.5
#: Stop suggestions: give up half the premium of long options/debit structures, 8 % of stock.
OPTION_STOP_FRACTION: Final = 0.5
STOCK_STOP_FRACTION: Final = 0.08
#: A combo stop's limit: accept down to this share of the stop price as credit.
COMBO_STOP_LIMIT_FRACTION: Final = 0.8


@dataclass(slots=True)
class CircuitBreaker:
    """Counts consecutive IB rejections. Create one per process and hand it to every
    incarnation's factory, so an actor restart does not close it."""

    threshold: int = BREAKER_THRESHOLD
    consecutive: int = 0
    open: bool = False
    last_rejection: str = ""

    def rejected(self, reason: str) -> None:
        self.consecutive += 1
        self.last_rejection = reason
        if self.consecutive >= self.threshold:
            self.open = True

    def accepted(self) -> None:
        self.consecutive = 0

    def reset(self) -> None:
        self.consecutive = 0
        self.open = False
        self.last_rejection = ""


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The risk re-check's answer: ``ok``, the checks that ran (``"name: outcome"``), and the
    error code to answer with when not ok (RISK_LIMIT, INSUFFICIENT_FUNDS, MARKET_CLOSED, …)."""

    ok: bool
    checks: tuple[str, ...] = ()
    code: ErrorCode = ErrorCode.RISK_LIMIT
    message: str = ""


#: Re-runs the account checks for a preview's order at execute time (preview, budget, hours);
#: the default is :func:`risk_via_actor`.
RiskCheck = Callable[[Preview, float, tuple[str, str, str]], Awaitable[RiskVerdict]]


def suggest_stop(order: OrderSpec, avg_fill_price: float) -> tuple[float, str]:
    """A protective stop price for a just-filled opening order, per share (per unit for a
    combo), and why: 50 % of the premium paid for options and debit structures, 8 % below the
    fill for stock. Single options are rounded to an increment every option market rule
    accepts (:func:`~sumppump.previews.option_price_tick`); combos and stock to 0.01."""
    has_options = any(leg.sec_type == "OPT" for leg in order.legs)
    single_option = has_options and len(order.legs) == 1

    def tick_for(price: float) -> float:
        return option_price_tick(price) if single_option else 0.01

    if single_option and order.legs[0].action == "SELL":
        raw = avg_fill_price * (1 + OPTION_STOP_FRACTION)
        stop = round_to_tick(raw, tick_for(raw))
        return stop, "buy back if the short option's price rises 50 % above what you received"
    if has_options and not any(leg.sec_type == "STK" for leg in order.legs):
        raw = abs(avg_fill_price) * OPTION_STOP_FRACTION
        stop = max(tick_for(raw), round_to_tick(raw, tick_for(raw)))
        return stop, "exit if the position loses half of the premium paid"
    raw = abs(avg_fill_price) * (1 - STOCK_STOP_FRACTION)
    stop = max(0.01, round_to_tick(raw, 0.01))
    return stop, "exit 8 % below the fill price (below recent support is a good refinement)"


def _refused(
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


_TOMBSTONE_ANSWERS: Final = {
    "used": (
        ErrorCode.PREVIEW_USED,
        "this preview was already used; an order was sent for it",
        "use get_open_orders to see it; make a new preview for another order",
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


class ExecutionActor(PositionChanges, Actor):
    """See the module docstring.

    ``connection``, ``chain_cache`` and ``risk`` are the Refs it asks at execute time.
    ``risk_check`` replaces the default risk round-trip (``risk_via_actor``) when given.
    ``mono``/``wall`` are the preview clocks; ``ack_window`` how long a sent order may take to
    appear in TWS before reconciliation calls it ``not_received``.
    """

    max_concurrency = 1

    def _account_kind(self, account: str) -> AccountKind:
        return _account_kind(account, simulated=self._simulated)

    def __init__(
        self,
        settings: Settings,
        *,
        connection: Ref,
        chain_cache: Ref | None = None,
        risk: Ref | None = None,
        breaker: CircuitBreaker | None = None,
        risk_check: RiskCheck | None = None,
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
        self._risk_check = risk_check
        redact = [settings.http_token] if settings.http_token else []
        self._audit = audit if audit is not None else AuditLog(settings.audit_path, redact=redact)
        self._owns_audit = audit is None
        self._store = PreviewStore(settings.preview_ttl_s, mono=mono, wall=wall)
        self._wall = wall
        self._ack_window = ack_window
        self._refresh_interval = refresh_interval
        self._orders: dict[str, TrackedOrder] = {}
        self._specs: dict[str, tuple[OrderSpec, str]] = {}  # ref -> (order, kind)
        self._meta: dict[str, OrderMeta] = {}  # ref -> strategy, analysis, opening legs
        self._follow_ups: dict[str, list[FollowUp]] = {}  # close/roll ref -> stops to follow
        self._submitted_at: dict[str, float] = {}  # ref -> wall time of the submit line
        self._fills: list[FillInfo] = []
        self._prompts: list[StopLossPrompt] = []
        self._prompted_filled: dict[str, float] = {}
        self._last_prompt: dict[str, StopLossPrompt] = {}
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
        """Load the write-ahead records, then reconcile whenever woken (start, ConnectionUp,
        an order whose outcome is unknown, a young ``submitting`` order)."""
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
                if retry_in is None and any(
                    o.state in ("working", "submitting") for o in self._orders.values()
                ):
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
            records = await read_audit_tail(self._settings.audit_path)
        except OSError:
            log.exception("cannot read the audit log; reconciling from TWS only")
            records = []
        for record in records:
            ref = record.get("order_ref")
            if not isinstance(ref, str) or not is_preview_id(ref):
                continue
            event = record.get("event")
            if event == "submit" and record.get("kind") == "modify":
                # A change re-sent an order we already track: the order keeps its kind.
                self._store.remember_used(str(record.get("preview_id", "")), "")
                known = self._specs.get(ref)
                try:
                    changed = msgspec.convert(record.get("order"), OrderSpec)
                except (msgspec.ValidationError, TypeError):
                    changed = None
                if known is not None and changed is not None:
                    self._specs[ref] = (changed, known[1])
                continue
            if event == "submit":
                self._store.remember_used(ref, str(record.get("symbol", "")))
                try:
                    order = msgspec.convert(record.get("order"), OrderSpec)
                except (msgspec.ValidationError, TypeError):
                    order = None
                kind = str(record.get("kind", "open"))
                if order is not None:
                    self._specs[ref] = (order, kind)
                with contextlib.suppress(msgspec.ValidationError, TypeError):
                    self._meta[ref] = msgspec.convert(record.get("meta") or {}, OrderMeta)
                self._orders[ref] = TrackedOrder(
                    order_ref=ref,
                    symbol=str(record.get("symbol", "")),
                    state="submitting",
                    kind=kind,
                    quantity=float(order.quantity) if order else 0.0,
                    is_combo=bool(order and len(order.legs) > 1),
                )
                self._submitted_at[ref] = _parse_ts(record.get("ts"))
            elif event in ("status", "reconcile", "fill") and ref in self._orders:
                state = record.get("state")
                if isinstance(state, str) and state in (
                    "working",
                    "filled",
                    "cancelled",
                    "rejected",
                    "not_received",
                ):
                    filled = float(record.get("filled") or 0.0)
                    self._orders[ref] = replace(
                        self._orders[ref],
                        state=state,  # type: ignore[arg-type]
                        status=str(record.get("status", "")),
                        filled=filled,
                    )
                    # fills already prompted for before the restart are not prompted again
                    self._prompted_filled[ref] = filled
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
                pass
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
                return self._status_report(msg.order_ref)
            case CancelByRef():
                return await self._cancel(msg.order_ref)
            case GetFills():
                fills = tuple(f for f in self._fills if f.ts >= msg.since_ns)
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

    # ------------------------------------------------------------------ previews

    async def _create(self, msg: CreatePreview) -> Reply:
        order = msg.order
        warnings = msg.warnings
        if msg.kind == "open" and not order.oca_group:
            order, joined = self._join_netted_stops(order)
            warnings = (*warnings, *joined)
        mode = self._settings.approval_mode
        if mode == "tws":
            order = msgspec.structs.replace(order, transmit=False)
        if not order.transmit and mode != "tws":
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                "only approval mode 'tws' stages orders without transmitting them",
                "leave transmit on",
            )
        try:
            preview = self._store.add(
                order,
                symbol=msg.symbol.upper(),
                kind=msg.kind,
                strategy=msg.strategy,
                max_loss=msg.max_loss,
                max_gain=msg.max_gain,
                breakevens=msg.breakevens,
                net_debit=msg.net_debit,
                quote_snapshot=msg.quote_snapshot,
                underlying_price=msg.underlying_price,
                epoch=msg.epoch,
                account_kind=msg.account_kind,
                min_tick=msg.min_tick,
                replaces_order_ref=msg.replaces_order_ref,
                warnings=warnings,
                commission=msg.commission,
                shares_held_used=msg.shares_held_used,
                order_max_loss=msg.order_max_loss,
                details=msg.details,
                opening_con_ids=msg.opening_con_ids,
            )
        except ValueError as exc:
            return _refused(
                ErrorCode.INVALID_ARGUMENT, f"this order cannot be previewed: {exc}", "fix it"
            )
        await self._audit_safe(
            "preview",
            order_ref=preview.preview_id,
            symbol=preview.symbol,
            kind=preview.kind,
            order=preview.order,
            max_loss=preview.max_loss,
            net_debit=preview.net_debit,
            epoch=preview.epoch,
            digest=preview.digest,
            expires_at=preview.expires_at,
            confirm_text=preview.confirm_text,
        )
        return self._created(preview)

    def _join_netted_stops(self, order: OrderSpec) -> tuple[OrderSpec, tuple[str, ...]]:
        """An opening order that sells a contract one of our stops sells (or buys back one it
        buys back) nets against the protected position: it joins that stop's OCA group, so IB
        shrinks the stop as the order fills and no stop is left on a position that is gone.
        Where the group cannot be shared (sizes in different units) the preview warns."""
        legs = {leg.con_id: leg for leg in order.legs}
        notes: list[str] = []
        for ref, (spec, kind) in self._specs.items():
            tracked = self._orders.get(ref)
            if kind != "stop" or tracked is None or tracked.state != "working":
                continue
            shared = [
                leg
                for leg in spec.legs
                if leg.con_id in legs and legs[leg.con_id].action == leg.action
            ]
            if not shared:
                continue
            names = ", ".join(describe_leg(leg) for leg in shared)
            if (
                spec.oca_group
                and not order.oca_group
                and all(leg.ratio == 1 and legs[leg.con_id].ratio == 1 for leg in shared)
            ):
                order = msgspec.structs.replace(
                    order, oca_group=spec.oca_group, oca_type=OCA_REDUCE
                )
                notes.append(
                    f"this order trades {names}, which your stop {ref} protects: IB shrinks "
                    "that stop by what fills (shared OCA group)"
                )
            else:
                notes.append(
                    f"this order trades {names}, which your stop {ref} protects: the stop "
                    "stays as it is; change it with modify_order or cancel_order"
                )
        return order, tuple(notes)

    def _created(self, preview: Preview, notes: tuple[str, ...] = ()) -> PreviewCreated:
        return PreviewCreated(
            preview_id=preview.preview_id,
            confirm_text=preview.confirm_text,
            expires_at=preview.expires_at,
            expires_in_s=round(self._store.remaining_s(preview), 3),
            order=preview.order,
            kind=preview.kind,  # type: ignore[arg-type]
            symbol=preview.symbol,
            max_loss=preview.max_loss,
            max_gain=preview.max_gain,
            breakevens=preview.breakevens,
            net_debit=preview.net_debit,
            account_kind=preview.account_kind,  # type: ignore[arg-type]
            digest=preview.digest,
            notes=(*preview.warnings, *notes),
            details=preview.details,
            replaces_order_ref=preview.replaces_order_ref,
        )

    # ------------------------------------------------------------------ execute

    async def _execute(self, msg: ExecutePreview) -> Reply:
        refusal = await self._precheck(msg)
        if isinstance(refusal, ExecutionRefused):
            await self._audit_refusal(msg.preview_id, refusal)
            return refusal
        preview = refusal
        async with self._order_lock:
            # Single use: the claim re-checks expiry; nothing awaits between it and the mark.
            claimed = self._store.claim(preview.preview_id)
            if not isinstance(claimed, Preview):
                answer = self._tombstone_refusal(msg.preview_id, claimed)
                await self._audit_refusal(msg.preview_id, answer)
                return answer
            if claimed.kind == "modify":
                return await self._submit_modify(claimed, msg.approval)
            return await self._submit(claimed, msg.approval)

    async def _precheck(self, msg: ExecutePreview) -> Preview | ExecutionRefused:
        """Every check before the claim, in the documented order; the preview or a refusal."""
        pid = msg.preview_id.strip()
        mode = self._settings.approval_mode
        if mode is None:
            return _refused(
                ErrorCode.APPROVAL_REQUIRED,
                f"SUMPPUMP_APPROVAL={self._settings.approval!r} is not a known approval mode; "
                "every order is refused",
                "set SUMPPUMP_APPROVAL to client, elicit, tws or app and restart",
                reason="unknown_approval_mode",
                order_ref=pid,
            )
        found = self._store.lookup(pid)
        if not isinstance(found, Preview):
            return self._tombstone_refusal(pid, found)
        preview = found
        if not preview.intact():
            self._store.retire(pid, "evicted", "integrity check failed")
            return _refused(
                ErrorCode.PREVIEW_UNKNOWN,
                "the stored preview failed its integrity check and was discarded",
                "make a fresh preview",
                reason="integrity",
                order_ref=pid,
            )
        if not confirm_matches(preview.confirm_text, msg.confirm_text):
            return _refused(
                ErrorCode.CONFIRM_MISMATCH,
                "confirm_text does not match the preview's text",
                f"send exactly: {preview.confirm_text}",
                reason="mismatch",
                order_ref=pid,
            )
        approval = self._approval_refusal(mode, msg.approval, pid)
        if approval is not None:
            return approval
        if self._breaker.open:
            return _refused(
                ErrorCode.ORDER_REJECTED,
                f"the circuit breaker is open after {self._breaker.consecutive} consecutive "
                f"rejections (last: {self._breaker.last_rejection})",
                "check the rejections in TWS, then reset the breaker or restart sumppump",
                reason="breaker_open",
                order_ref=pid,
            )
        if self._reconciling or not self._loaded:
            return self._busy(pid)
        state = await self._connection_state()
        if not isinstance(state, ConnectionState) or state.state != "connected":
            why = state.last_error if isinstance(state, ConnectionState) else str(state)
            return _refused(
                ErrorCode.NOT_CONNECTED,
                f"not connected to TWS: {why}".rstrip(": "),
                "start TWS (or wait for the reconnect), then execute again",
                reason="not_connected",
                order_ref=pid,
            )
        if state.epoch != self._reconciled_epoch:
            self._wake.set()
            return self._busy(pid)
        if state.epoch != preview.epoch:
            self._store.retire(pid, "epoch_changed")
            return self._tombstone_refusal(pid, self._store.lookup(pid))
        market = await self._market_check(preview)
        if isinstance(market, ExecutionRefused):
            return market
        risk = await self._risk_recheck(preview, market)
        if not risk.ok:
            self._store.retire(pid, "risk_refused", risk.message)
            return _refused(
                risk.code,
                risk.message or "the risk checks refused this order",
                "make a new preview within the limits",
                reason="risk_refused",
                order_ref=pid,
                checks=risk.checks,
            )
        return preview

    def _busy(self, pid: str) -> ExecutionRefused:
        return _refused(
            ErrorCode.NOT_CONNECTED,
            "execution is reconciling its orders with TWS after a (re)connect",
            "retry in a moment; nothing was sent",
            reason="reconciling",
            order_ref=pid,
            retry_after=1.0,
        )

    def _approval_refusal(
        self, mode: str, ctx: ApprovalContext, pid: str
    ) -> ExecutionRefused | None:
        if ctx.mode.strip().lower() != mode:
            return _refused(
                ErrorCode.APPROVAL_REQUIRED,
                f"the approval mode seen by the tool layer ({ctx.mode!r}) differs from "
                f"execution's ({mode!r})",
                "restart sumppump so both read the same SUMPPUMP_APPROVAL",
                reason="mode_mismatch",
                order_ref=pid,
            )
        if mode == "elicit" and ctx.approved_via != "elicitation":
            detail = (
                "this MCP client does not support elicitation"
                if not ctx.client_can_elicit
                else "the order was not approved through the elicitation prompt"
            )
            return _refused(
                ErrorCode.APPROVAL_REQUIRED,
                f"SUMPPUMP_APPROVAL=elicit: {detail}",
                "use a client that supports MCP elicitation, or choose approval mode tws",
                reason="elicitation_required",
                order_ref=pid,
            )
        if mode == "app" and ctx.approved_via != "ticket":
            if not ctx.client_has_ui:
                # Fail closed: without the UI extension no ticket can be shown at all.
                return _refused(
                    ErrorCode.APPROVAL_REQUIRED,
                    "SUMPPUMP_APPROVAL=app, but this MCP client declared no UI extension "
                    "(io.modelcontextprotocol/ui), so it cannot show the order ticket",
                    "nothing was sent; use a client that renders MCP Apps (Claude Desktop), "
                    "or choose approval mode tws or client",
                    reason="ticket_required",
                    order_ref=pid,
                )
            return _refused(
                ErrorCode.APPROVAL_REQUIRED,
                "SUMPPUMP_APPROVAL=app: only the order ticket's Confirm button places orders",
                "press Confirm in the order ticket shown with the preview; nothing was sent",
                reason="ticket_required",
                order_ref=pid,
            )
        return None

    def _tombstone_refusal(self, pid: str, found: Preview | Tombstone | None) -> ExecutionRefused:
        if isinstance(found, Tombstone):
            code, message, hint = _TOMBSTONE_ANSWERS[found.reason]
            detail = f" ({found.detail})" if found.detail else ""
            return _refused(code, message + detail, hint, reason=found.reason, order_ref=pid)
        return _refused(
            ErrorCode.PREVIEW_UNKNOWN,
            "no preview with this id was issued (or it was forgotten after a restart)",
            "use the preview_id exactly as calculate_strategy/set_stop_loss returned it",
            reason="unknown",
            order_ref=pid,
        )

    async def _connection_state(self) -> ConnectionState | str:
        try:
            reply = await self._connection.call(
                GetConnectionState(), timeout=min(2.0, remaining_budget(2.0))
            )
        except (ActorDown, CallTimeout) as exc:
            return f"the connection actor is not available ({exc})"
        return reply if isinstance(reply, ConnectionState) else type(reply).__name__

    async def _market_check(self, preview: Preview) -> ExecutionRefused | tuple[str, str, str]:
        """Fresh quotes for the legs: the slippage check for limit orders, the side check for
        stops, and the session check (a switch away voids the preview). Passes with the
        stock's (liquid_hours, trading_hours, time_zone) for the risk re-check."""
        pid = preview.preview_id
        if self._chain_cache is None:
            return _refused(
                ErrorCode.NO_MARKET_DATA,
                "no quote source is wired; the price check cannot run",
                "this is a set-up error; nothing was sent",
                reason="no_quote_source",
                order_ref=pid,
            )
        keys = option_leg_keys(preview.order.legs)
        try:
            reply = await self._chain_cache.call(
                GetLegQuotes(symbol=preview.symbol, legs=keys),
                timeout=max(0.5, min(10.0, remaining_budget(10.0) - 8.0)),
            )
        except (ActorDown, CallTimeout) as exc:
            return _refused(
                ErrorCode.NO_MARKET_DATA,
                f"fresh quotes are not available ({exc})",
                "try again; nothing was sent",
                reason="quotes_unavailable",
                order_ref=pid,
            )
        if not isinstance(reply, LegQuotes):
            code = (
                ErrorCode.NOT_CONNECTED
                if isinstance(reply, NotConnected)
                else (ErrorCode.NO_MARKET_DATA)
            )
            detail = reply.reason if isinstance(reply, NotConnected) else type(reply).__name__
            if isinstance(reply, NoMarketData):
                detail = reply.message
            return _refused(
                code,
                f"fresh quotes are not available: {detail}",
                "try again; nothing was sent",
                reason="quotes_unavailable",
                order_ref=pid,
            )
        if reply.switched_from is not None:
            self._store.retire(pid, "voided", f"the session was on {reply.switched_from}")
            return self._tombstone_refusal(pid, self._store.lookup(pid))
        if reply.market_open is False and not preview.order.outside_rth:
            return _refused(
                ErrorCode.MARKET_CLOSED,
                f"the market for {preview.symbol} is closed",
                "execute during regular trading hours (the preview may need renewing)",
                reason="market_closed",
                order_ref=pid,
            )
        quotes: list[Quote] = [leg.quote for leg in reply.legs if leg.quote is not None]
        quotes.append(msgspec.structs.replace(reply.underlying, con_id=reply.stock.con_id))
        order = preview.order
        if order.order_type == "LMT" and preview.snapshot_mid is not None:
            now_mid = structure_mid(order, quotes)
            if now_mid is None:
                return _refused(
                    ErrorCode.NO_MARKET_DATA,
                    "there is no two-sided quote for every leg now; the price check cannot run",
                    "try again when the market is quoting; nothing was sent",
                    reason="no_mid",
                    order_ref=pid,
                )
            reference = order.limit_price if order.limit_price is not None else preview.net_debit
            allowance = slippage_allowance(reference, self._settings.max_slippage, preview.min_tick)
            moved = now_mid - preview.snapshot_mid
            if abs(moved) > allowance + 1e-9:
                fresh = await self._fresh_preview(preview, now_mid, tuple(quotes))
                return _refused(
                    ErrorCode.PRICE_MOVED,
                    f"the mid moved from {preview.snapshot_mid:g} to {now_mid:g} "
                    f"(more than the allowed {allowance:g})",
                    "read the fresh preview; confirm it if you still want the trade",
                    reason="superseded",
                    order_ref=pid,
                    fresh=fresh,
                )
        if order.order_type in ("STP", "STP LMT") and len(order.legs) == 1:
            leg_quote = next((q for q in quotes if q.con_id == order.legs[0].con_id), None)
            price = _reference_price(leg_quote)
            stop = order.stop_price or 0.0
            if price is not None and (
                (order.legs[0].action == "SELL" and stop >= price)
                or (order.legs[0].action == "BUY" and stop <= price)
            ):
                self._store.retire(pid, "superseded", "the market crossed the stop")
                return _refused(
                    ErrorCode.PRICE_MOVED,
                    f"the market ({price:g}) is already through the stop {stop:g}; "
                    "the stop would trigger at once",
                    "choose another stop price with set_stop_loss",
                    reason="stop_crossed",
                    order_ref=pid,
                )
        stock = reply.stock
        return (stock.liquid_hours, stock.trading_hours, stock.time_zone)

    async def _fresh_preview(
        self, old: Preview, now_mid: float, quotes: tuple[Quote, ...]
    ) -> PreviewCreated | None:
        """The same order at the current mid; max loss and gain shift by the change in debit
        (the whole P&L curve moves by it); breakevens are dropped (re-run the analysis)."""
        order = old.order
        tick = old.min_tick
        if len(order.legs) == 1 and order.legs[0].sec_type == "OPT":
            tick = max(tick, option_price_tick(now_mid))
        new_limit = round_to_tick(now_mid, tick)
        if len(order.legs) == 1 and new_limit <= 0:
            return None
        delta = (new_limit - (order.limit_price or 0.0)) * price_multiplier(order) * order.quantity
        max_loss = None if old.max_loss is None else round(old.max_loss + delta, 2)
        max_gain = None if old.max_gain is None else round(old.max_gain - delta, 2)
        self._store.retire(old.preview_id, "superseded", "the price moved")
        follow_ups = self._follow_ups.pop(old.preview_id, [])
        try:
            preview = self._store.add(
                msgspec.structs.replace(order, order_ref="", limit_price=new_limit),
                symbol=old.symbol,
                kind=old.kind,
                strategy=old.strategy,
                max_loss=max_loss,
                max_gain=max_gain,
                breakevens=(),
                net_debit=new_limit,
                quote_snapshot=quotes,
                underlying_price=old.underlying_price,
                epoch=old.epoch,
                account_kind=old.account_kind,
                min_tick=old.min_tick,
                replaces_order_ref=old.replaces_order_ref,
                warnings=old.warnings,
                commission=old.commission,
                shares_held_used=old.shares_held_used,
                order_max_loss=None
                if old.order_max_loss is None
                else round(old.order_max_loss + delta, 2),
                details=None
                if old.details is None
                else msgspec.structs.replace(old.details, limit_price=new_limit, mid=now_mid),
                opening_con_ids=old.opening_con_ids,
            )
        except ValueError:
            return None
        if follow_ups:
            self._follow_ups[preview.preview_id] = [
                msgspec.structs.replace(f, after_ref=preview.preview_id) for f in follow_ups
            ]
        await self._audit_safe(
            "preview",
            order_ref=preview.preview_id,
            symbol=preview.symbol,
            kind=preview.kind,
            order=preview.order,
            max_loss=preview.max_loss,
            supersedes=old.preview_id,
            confirm_text=preview.confirm_text,
        )
        return self._created(
            preview,
            notes=(
                f"fresh preview after the price moved; max loss now {money(max_loss)}"
                if max_loss is not None
                else "fresh preview after the price moved",
                "breakevens moved too: run calculate_strategy for the full analysis",
            ),
        )

    async def _risk_recheck(self, preview: Preview, hours: tuple[str, str, str]) -> RiskVerdict:
        budget = max(0.5, min(5.0, remaining_budget(11.0) - 6.0))
        if self._risk_check is not None:
            return await self._risk_check(preview, budget, hours)
        return await risk_via_actor(self._risk, preview, budget, hours)

    # ------------------------------------------------------------------ submission

    async def _submit(self, preview: Preview, approval: ApprovalContext) -> Reply:
        ref = preview.preview_id
        order = preview.order
        if not preview.intact() or order.order_ref != ref:  # pragma: no cover - defensive
            return _refused(
                ErrorCode.PREVIEW_UNKNOWN,
                "integrity check failed",
                "make a fresh preview",
                order_ref=ref,
            )
        tracked = TrackedOrder(
            order_ref=ref,
            symbol=preview.symbol,
            state="submitting",
            quantity=float(order.quantity),
            kind=preview.kind,
            is_combo=len(order.legs) > 1,
        )
        value = preview.details.position_value if preview.details is not None else None
        meta = OrderMeta(
            strategy=preview.strategy,
            max_loss=preview.max_loss,
            max_gain=preview.max_gain,
            order_max_loss=preview.order_max_loss,
            opening_con_ids=preview.opening_con_ids,
            entry_offset=value if preview.kind == "roll" and value is not None else 0.0,
            closes_order_ref=preview.details.closes_order_ref if preview.details else "",
        )
        try:
            await self._audit.write(
                "submit",
                order_ref=ref,
                symbol=preview.symbol,
                kind=preview.kind,
                order=order,
                meta=meta,
                digest=preview.digest,
                epoch=preview.epoch,
                account_kind=preview.account_kind,
                state="submitting",
                approval=approval.description,
            )
        except OSError as exc:
            log.error("audit write failed; order %s not sent: %s", ref, exc)
            return _refused(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the audit log cannot be written ({exc}); nothing was sent",
                f"fix {self._settings.audit_path} and make a fresh preview",
                reason="audit_failed",
                order_ref=ref,
            )
        self._orders[ref] = tracked
        self._specs[ref] = (order, preview.kind)
        self._meta[ref] = meta
        self._submitted_at[ref] = self._wall()
        timeout = max(1.0, remaining_budget(20.0) - REPLY_MARGIN_S)
        try:
            reply = await self._connection.call(PlaceOrder(spec=order), timeout=timeout)
        except (ActorDown, CallTimeout) as exc:
            return await self._unknown(ref, f"{type(exc).__name__}: {exc}")
        return await self._placed(preview, reply)

    async def _submit_modify(self, preview: Preview, approval: ApprovalContext) -> Reply:
        """``kind="modify"``: re-send the working order ``replaces_order_ref`` under its own IB
        id and orderRef with the previewed terms (``ModifyOrder``)."""
        target_ref = preview.replaces_order_ref
        target = self._orders.get(target_ref)
        if target is None or target.order_id is None or is_done(target.state):
            refusal = _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"order {target_ref} is not a working order of ours; it cannot be changed",
                "get_open_orders lists what is still working",
                reason="not_modifiable",
                order_ref=preview.preview_id,
            )
            await self._audit_refusal(preview.preview_id, refusal)
            return refusal
        spec = msgspec.structs.replace(preview.order, order_ref=target_ref)
        try:
            await self._audit.write(
                "submit",
                order_ref=target_ref,
                symbol=preview.symbol,
                kind="modify",
                preview_id=preview.preview_id,
                order=spec,
                digest=preview.digest,
                order_id=target.order_id,
                state=target.state,
                approval=approval.description,
            )
        except OSError as exc:
            return _refused(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the audit log cannot be written ({exc}); nothing was sent",
                f"fix {self._settings.audit_path} and make a fresh preview",
                reason="audit_failed",
                order_ref=preview.preview_id,
            )
        timeout = max(1.0, remaining_budget(20.0) - REPLY_MARGIN_S)
        try:
            reply = await self._connection.call(
                ModifyOrder(order_id=target.order_id, spec=spec), timeout=timeout
            )
        except (ActorDown, CallTimeout) as exc:
            return await self._unknown(target_ref, f"{type(exc).__name__}: {exc}")
        return await self._placed(preview, reply, ref=target_ref)

    async def _placed(self, preview: Preview, reply: Reply, ref: str | None = None) -> Reply:
        """Turn the order desk's answer into ours (``ref``: the order it concerns)."""
        ref = ref or preview.preview_id
        order = preview.order
        match reply:
            case OrderPlaced():
                self._breaker.accepted()
                if preview.kind == "modify" and ref in self._specs:
                    self._adopt_change(ref, preview)
                updated = apply_status(
                    self._orders[ref],
                    status=reply.status,
                    filled=reply.filled,
                    remaining=reply.remaining,
                    avg_fill_price=reply.avg_fill_price,
                    order_id=reply.order_id,
                    perm_id=reply.perm_id,
                )
                self._orders[ref] = updated
                await self._audit_order("status", updated)
                await self._follow_stops(ref)
                prompt = self._maybe_prompt(updated, pending=False)
                waiting = not order.transmit
                return OrderSubmitted(
                    order_ref=ref,
                    order_id=reply.order_id,
                    perm_id=reply.perm_id,
                    status=reply.status,
                    filled=updated.filled,
                    remaining=reply.remaining,
                    avg_fill_price=updated.avg_fill_price,
                    fills=tuple(_fill_info(f) for f in updated.fills),
                    stop_loss_prompt=prompt,
                    waiting_for_tws_transmit=waiting,
                    account_kind=preview.account_kind,  # type: ignore[arg-type]
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
                    updated = replace(
                        self._orders[ref],
                        state="rejected",
                        status="Rejected",
                        message=f"{reply.code}: {reply.message}",
                    )
                    self._orders[ref] = updated
                    await self._audit_order("status", updated, code=reply.code, text=reply.message)
                refusal = _refused(
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
                self._orders[ref] = replace(self._orders[ref], order_id=reply.order_id)
                return await self._unknown(ref, "TWS did not acknowledge the order in time")
            case _:
                return await self._unknown(ref, f"unexpected answer {type(reply).__name__}")

    def _adopt_change(self, ref: str, preview: Preview) -> None:
        """A modification TWS accepted: the working order now has the previewed terms."""
        _old, kind = self._specs[ref]
        self._specs[ref] = (msgspec.structs.replace(preview.order, order_ref=ref), kind)
        if kind != "stop":
            meta = self._meta.get(ref, OrderMeta())
            self._meta[ref] = msgspec.structs.replace(
                meta,
                max_loss=preview.max_loss,
                max_gain=preview.max_gain,
                order_max_loss=preview.order_max_loss,
            )
        if ref in self._orders:
            self._orders[ref] = replace(self._orders[ref], quantity=float(preview.order.quantity))

    async def _follow_stops(self, ref: str) -> None:
        """Once the close or roll ``ref`` is done, cancel or shrink the stops it was planned
        to take along that do not share its OCA group (the preview listed them). Each step is
        audited; a failure is logged and left for the person (get_open_orders shows it)."""
        plan = self._follow_ups.get(ref)
        order = self._orders.get(ref)
        if not plan or order is None or not is_done(order.state):
            return
        del self._follow_ups[ref]
        if order.filled <= 0:
            return
        for step in plan:
            stop = self._orders.get(step.stop_ref)
            known = self._specs.get(step.stop_ref)
            if stop is None or known is None or stop.state != "working" or stop.order_id is None:
                continue
            spec = known[0]
            left = round(spec.quantity - step.per_unit * order.filled)
            try:
                if left <= stop.filled + 1e-9:
                    reply = await self._connection.call(
                        CancelOrder(order_ref=step.stop_ref), timeout=5.0
                    )
                    action = "cancel"
                else:
                    smaller = msgspec.structs.replace(spec, quantity=left)
                    reply = await self._connection.call(
                        ModifyOrder(order_id=stop.order_id, spec=smaller), timeout=10.0
                    )
                    if isinstance(reply, OrderPlaced):
                        self._specs[step.stop_ref] = (smaller, known[1])
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
            hint=f"it is never sent again; ask for the status of {ref} in a moment",
        )

    # ------------------------------------------------------------------ events

    async def _on_status(self, event: OrderStatusChanged) -> None:
        ref = event.order_ref
        if not is_preview_id(ref):
            return
        current = self._orders.get(ref) or TrackedOrder(order_ref=ref, symbol="", state="working")
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
        if updated == current and ref in self._orders:
            return
        self._orders[ref] = updated
        await self._audit_order("status", updated)
        self._maybe_prompt(updated, pending=True)
        await self._follow_stops(ref)

    async def _on_fill(self, event: FillReported) -> None:
        ref = event.order_ref
        if not is_preview_id(ref):
            return
        current = self._orders.get(ref) or TrackedOrder(
            order_ref=ref, symbol=event.symbol, state="working"
        )
        if event.exec_id in current.exec_ids:
            return
        updated = apply_fill(current, event)
        self._orders[ref] = updated
        self._fills.append(_fill_info(event))
        await self._audit_safe(
            "fill",
            order_ref=ref,
            symbol=event.symbol,
            exec_id=event.exec_id,
            con_id=event.con_id,
            side=event.side,
            shares=event.shares,
            price=event.price,
            cum_qty=event.cum_qty,
            state=updated.state,
            filled=updated.filled,
        )
        self._maybe_prompt(updated, pending=True)
        await self._follow_stops(ref)

    def _maybe_prompt(self, order: TrackedOrder, *, pending: bool) -> StopLossPrompt | None:
        """A stop-loss prompt when an opening order's filled quantity grew."""
        spec_kind = self._specs.get(order.order_ref)
        if spec_kind is None or spec_kind[1] not in ("open", "roll"):
            return None
        if order.filled <= self._prompted_filled.get(order.order_ref, 0.0) + 1e-9:
            return None
        if order.avg_fill_price is None:
            return None
        self._prompted_filled[order.order_ref] = order.filled
        spec, entry = self._opened_position(order.order_ref, order.avg_fill_price)
        stop, rationale = suggest_stop(spec, entry)
        if len(spec.legs) > 1:
            position = order.order_ref
        elif spec.legs[0].sec_type == "OPT":
            position = str(spec.legs[0].con_id)
        else:
            position = "stock"
        call = SuggestedCall(
            tool="set_stop_loss",
            arguments={"symbol": spec.symbol, "stop_price": stop, "position": position},
        )
        prompt = StopLossPrompt(
            order_ref=order.order_ref,
            symbol=spec.symbol,
            position=position,
            filled=order.filled,
            avg_fill_price=order.avg_fill_price,
            suggested_stop=stop,
            rationale=rationale,
            call=call,
            text=(
                f"Filled {order.filled:g} of {order.quantity:g} at {order.avg_fill_price:g}"
                + (f" (entry {entry:g} per unit)" if entry != order.avg_fill_price else "")
                + ". "
                f"Set a stop loss? Suggested stop {stop:g} ({rationale}): "
                f'set_stop_loss(symbol="{spec.symbol}", stop_price={stop:g}, '
                f'position="{position}")'
            ),
        )
        self._last_prompt[order.order_ref] = prompt
        if pending:
            self._prompts.append(prompt)
        return prompt

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile_once(self) -> float | None:
        """Fetch the order book and adopt it. Returns seconds until another pass is needed
        (not connected, a young ``submitting`` order), or ``None``."""
        state = await self._connection_state()
        if not isinstance(state, ConnectionState) or state.state != "connected":
            return 0.5  # a ConnectionUp wakes us sooner; polling covers one sent before start
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
                young = {
                    ref
                    for ref, order in self._orders.items()
                    if order.state == "submitting"
                    and now - self._submitted_at.get(ref, 0.0) < self._ack_window
                }
                judged = {ref: o for ref, o in self._orders.items() if ref not in young}
                result = reconcile(judged, book)
                for ref, order in result.orders.items():
                    if ref in young:
                        continue
                    self._orders[ref] = order
                # Young refs that TWS already knows are adopted now too.
                young_found = reconcile({r: self._orders[r] for r in young}, book)
                for ref, order in young_found.orders.items():
                    if order.state != "not_received":
                        self._orders[ref] = order
                self._reconciled_epoch = state.epoch
                self.reconciliations += 1
        finally:
            self._reconciling = False
        for fill in (*result.missed_fills, *young_found.missed_fills):
            self._fills.append(_fill_info(fill))
        for ref in (*result.changed, *(r for r in young_found.changed if r in young)):
            order = self._orders[ref]
            await self._audit_order("reconcile", order)
            self._maybe_prompt(order, pending=True)
            await self._follow_stops(ref)
        for ref in result.duplicates:
            log.error("two IB orders carry order_ref %s", ref)
            await self._audit_safe("reconcile", order_ref=ref, duplicate=True)
        still_young = [r for r in young if self._orders[r].state == "submitting"]
        if still_young:
            oldest = min(self._submitted_at.get(r, now) for r in still_young)
            return max(0.05, self._ack_window - (now - oldest) + 0.05)
        return None

    # ------------------------------------------------------------------ status and cancel

    def _status_report(self, ref: str) -> OrderStatusReport:
        order = self._orders.get(ref)
        if order is None:
            return OrderStatusReport(
                order_ref=ref,
                found=False,
                state="unknown",
                message="no order of ours with this reference",
            )
        fills = tuple(_fill_info(f) for f in order.fills)
        return OrderStatusReport(
            order_ref=ref,
            found=True,
            state=order.state,
            status=order.status,
            order_id=order.order_id,
            perm_id=order.perm_id,
            filled=order.filled,
            remaining=order.remaining,
            avg_fill_price=order.avg_fill_price,
            fills=fills,
            symbol=order.symbol,
            reconciled=order.reconciled,
            message=order.message,
            stop_loss_prompt=self._last_prompt.get(ref),
        )

    async def _cancel(self, ref: str) -> Reply:
        ref = ref.strip()
        if not is_preview_id(ref):
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"{ref!r} is not an order placed by SumpPump",
                "use the order_ref from execute_trade or get_open_orders",
                order_ref=ref,
            )
        known = self._orders.get(ref)
        if known is not None and is_done(known.state):
            return _refused(
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
                    self._orders[ref] = apply_status(
                        known,
                        status=reply.status,
                        filled=known.filled,
                        remaining=known.remaining,
                        avg_fill_price=known.avg_fill_price,
                        order_id=reply.order_id,
                    )
                return CancelResult(
                    order_ref=ref,
                    order_id=reply.order_id,
                    status=reply.status,
                    message=f"cancel requested; the order is {reply.status}",
                )
            case OrderRejected():
                refusal = _refused(
                    ErrorCode.INVALID_ARGUMENT if reply.code == 0 else ErrorCode.ORDER_REJECTED,
                    f"cancel refused: {reply.message}",
                    "get_open_orders lists what is still working",
                    reason="cancel_refused",
                    order_ref=ref,
                )
                await self._audit_refusal(ref, refusal)
                return refusal
            case NotConnected():
                return _refused(
                    ErrorCode.NOT_CONNECTED,
                    f"not connected to TWS: {reply.reason}",
                    "cancel in TWS directly, or retry once connected",
                    order_ref=ref,
                )
            case _:
                return await self._unknown(ref, f"unexpected answer {type(reply).__name__}")

    # ------------------------------------------------------------------ stop loss

    async def _prepare_stop(self, msg: PrepareStopLoss) -> Reply:
        symbol = msg.symbol.strip().upper()
        if msg.stop_price is not None and msg.stop_price <= 0:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                "stop_price must be positive",
                "give a stop price above zero, or stop_percent (e.g. 50 for half the premium)",
            )
        if msg.stop_percent is not None and not 0 < msg.stop_percent < 100:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                "stop_percent must be between 0 and 100",
                "give the share of the position's value to risk, e.g. 50",
            )
        found = await self._epoch_and_positions(symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        combos = {
            combo.order_ref: msgspec.structs.replace(
                self._specs[combo.order_ref][0], legs=combo.legs
            )
            for combo in self._opened_combos(symbol)
        }
        target = _choose_position(msg.position, held, combos)
        if isinstance(target, str):
            return _refused(ErrorCode.INVALID_ARGUMENT, target, _positions_hint(held, combos))
        if isinstance(target, PositionInfo):
            return await self._single_stop(msg, target, epoch)
        ref, spec = target
        return await self._combo_stop(msg, ref, spec, epoch)

    async def _single_stop(self, msg: PrepareStopLoss, position: PositionInfo, epoch: int) -> Reply:
        is_option = position.sec_type == "OPT"
        multiplier = position.multiplier if is_option else 1.0
        entry = position.avg_cost / multiplier if is_option else position.avg_cost
        long = position.quantity > 0
        default_fraction = OPTION_STOP_FRACTION if is_option else STOCK_STOP_FRACTION
        fraction = (msg.stop_percent / 100) if msg.stop_percent is not None else default_fraction
        if msg.stop_price is not None:
            stop = msg.stop_price
        else:
            stop = entry * (1 - fraction) if long else entry * (1 + fraction)
        stop = round_to_tick(stop, option_price_tick(stop) if is_option else 0.01)
        if stop <= 0:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                "the stop price rounds to zero",
                "choose a stop price of at least one tick (0.01 or 0.05)",
            )
        keys: tuple[LegKey, ...] = ()
        if is_option:
            if (
                position.expiry is None
                or position.strike is None
                or position.right
                not in (
                    "C",
                    "P",
                )
            ):
                return _refused(
                    ErrorCode.INVALID_ARGUMENT,
                    "the option position is incomplete",
                    "check get_positions: name a position that has its expiry, strike and right",
                )
            keys = (
                LegKey(expiry=position.expiry, strike=position.strike, right=position.right),  # type: ignore[arg-type]
            )
        quotes = await self._quotes_for(msg.symbol, keys)
        if isinstance(quotes, ExecutionRefused):
            return quotes
        market = _reference_price(next((q for q in quotes if q.con_id == position.con_id), None))
        if market is not None and ((long and stop >= market) or (not long and stop <= market)):
            side = "below" if long else "above"
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"a stop at {stop:g} would trigger at once: the market is {market:g}",
                f"choose a stop {side} {market:g}",
            )
        leg = OrderLeg(
            con_id=position.con_id,
            symbol=position.symbol,
            sec_type="OPT" if is_option else "STK",
            action="SELL" if long else "BUY",
            ratio=1,
            multiplier=multiplier,
            expiry=position.expiry,
            strike=position.strike,
            right=position.right if is_option else None,  # type: ignore[arg-type]
        )
        quantity = int(abs(position.quantity))
        order = OrderSpec(
            order_ref="",
            account=position.account,
            symbol=position.symbol,
            legs=(leg,),
            quantity=quantity,
            order_type="STP",
            stop_price=stop,
            tif="GTC",
            oca_group=self._stop_group((leg,)),
            oca_type=OCA_REDUCE,
        )
        loss = (entry - stop if long else stop - entry) * multiplier * quantity
        return await self._create(
            CreatePreview(
                order=order,
                symbol=position.symbol,
                kind="stop",
                strategy="",
                description=f"protective stop for {_describe(position)}",
                max_loss=round(max(loss, 0.0), 2),
                max_gain=None,
                net_debit=0.0,
                quote_snapshot=quotes,
                epoch=epoch,
                account_kind=self._account_kind(position.account),
                warnings=(
                    "a stop becomes a market order when triggered: in a gap the fill can be "
                    "worse than the stop price",
                ),
            )
        )

    async def _combo_stop(
        self, msg: PrepareStopLoss, ref: str, spec: OrderSpec, epoch: int
    ) -> Reply:
        tracked = self._orders[ref]
        _opened, entry = self._opened_position(
            ref, tracked.avg_fill_price or spec.limit_price or 0.0
        )
        entry = abs(entry)
        fraction = (
            (msg.stop_percent / 100) if msg.stop_percent is not None else (OPTION_STOP_FRACTION)
        )
        stop = msg.stop_price if msg.stop_price is not None else entry * (1 - fraction)
        stop = round_to_tick(stop, 0.01)
        limit = max(0.01, round_to_tick(stop * COMBO_STOP_LIMIT_FRACTION, 0.01))
        quotes = await self._quotes_for(spec.symbol, option_leg_keys(spec.legs))
        if isinstance(quotes, ExecutionRefused):
            return quotes
        value = structure_mid(spec, quotes)
        if value is not None and stop >= value:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"a stop at {stop:g} would trigger at once: the spread is worth {value:g}",
                f"choose a stop below {value:g}",
            )
        closing = tuple(
            msgspec.structs.replace(leg, action="SELL" if leg.action == "BUY" else "BUY")
            for leg in spec.legs
        )
        quantity = max(1, int(tracked.filled))
        # The closing combo is bought at a negative price (a credit): a BUY stop at -stop
        # triggers when -value rises to -stop, i.e. when the spread falls to the stop.
        order = OrderSpec(
            order_ref="",
            account=spec.account,
            symbol=spec.symbol,
            legs=closing,
            quantity=quantity,
            order_type="STP LMT",
            stop_price=-stop,
            limit_price=-limit,
            tif="GTC",
            oca_group=self._stop_group(closing),
            oca_type=OCA_REDUCE,
        )
        loss = (entry - limit) * price_multiplier(spec) * quantity
        return await self._create(
            CreatePreview(
                order=order,
                symbol=spec.symbol,
                kind="stop",
                description=f"protective stop for the spread opened as {ref}",
                max_loss=round(max(loss, 0.0), 2),
                max_gain=None,
                net_debit=-limit,
                quote_snapshot=quotes,
                epoch=epoch,
                account_kind=self._account_kind(spec.account),
                warnings=(
                    "IB holds stop orders on combos itself (simulated, not exchange-native) "
                    "and triggers on the combo's price as IB computes it; check the working "
                    "order in TWS",
                    f"when triggered it closes the spread for a credit of at least {limit:g} "
                    "per unit; if the market gaps below that it stays unfilled",
                ),
            )
        )

    async def _quotes_for(
        self, symbol: str, keys: tuple[LegKey, ...]
    ) -> tuple[Quote, ...] | ExecutionRefused:
        if self._chain_cache is None:
            return _refused(
                ErrorCode.NO_MARKET_DATA,
                "no quote source is wired",
                "this is a set-up fault of SumpPump; restart it",
            )
        try:
            reply = await self._chain_cache.call(
                GetLegQuotes(symbol=symbol, legs=keys), timeout=max(0.5, remaining_budget(10.0) - 1)
            )
        except (ActorDown, CallTimeout) as exc:
            return _refused(ErrorCode.NO_MARKET_DATA, f"quotes unavailable ({exc})", "retry")
        if not isinstance(reply, LegQuotes):
            return _refused(
                ErrorCode.NO_MARKET_DATA, f"quotes unavailable ({type(reply).__name__})", "retry"
            )
        quotes = [leg.quote for leg in reply.legs if leg.quote is not None]
        quotes.append(msgspec.structs.replace(reply.underlying, con_id=reply.stock.con_id))
        return tuple(quotes)

    # ------------------------------------------------------------------ audit helpers

    async def _audit_order(self, event: str, order: TrackedOrder, **extra: Any) -> None:
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


# ---------------------------------------------------------------------- risk adapter


async def risk_via_actor(
    risk: Ref | None, preview: Preview, budget: float, hours: tuple[str, str, str] = ("", "", "")
) -> RiskVerdict:
    """Ask the risk actor to re-run the account checks (``RecheckOrder`` → ``RecheckResult``).
    ``hours`` are the stock's (liquid_hours, trading_hours, time_zone) from the fresh quote.
    Fails closed: no risk actor, no answer, or an answer of another type refuses the order."""
    if risk is None:
        return RiskVerdict(ok=False, message="the risk checks are not available; refused")
    order = preview.order
    debit = preview.net_debit * price_multiplier(order) * order.quantity
    request = RecheckOrder(
        order=order,
        max_loss=preview.max_loss if preview.order_max_loss is None else preview.order_max_loss,
        debit=round(debit, 2),
        commission=preview.commission,
        summary=preview.confirm_text,
        shares_held_used=preview.shares_held_used,
        # A close (or a change to one) adds no loss: its own analysis says so.
        reduces_exposure=preview.order_max_loss == 0.0,
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


# ---------------------------------------------------------------------- helpers


def _fill_info(fill: FillReported) -> FillInfo:
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


def _reference_price(quote: Quote | None) -> float | None:
    if quote is None:
        return None
    if quote.mid is not None:
        return quote.mid
    if quote.last is not None and quote.last > 0:
        return quote.last
    return None


def _parse_ts(value: object) -> float:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return 0.0


def _account_kind(account: str, *, simulated: bool = False) -> AccountKind:
    if simulated:
        return "SIMULATED"
    return "PAPER" if account.upper().startswith("D") else "LIVE"


def _describe(p: PositionInfo) -> str:
    return f"{p.quantity:g} {describe_position(p)}"


def _choose_position(
    wanted: str | None, held: list[PositionInfo], combos: dict[str, OrderSpec]
) -> PositionInfo | tuple[str, OrderSpec] | str:
    if wanted is not None and wanted.strip():
        key = " ".join(wanted.strip().split()).upper()
        for ref, spec in combos.items():
            if ref.upper() == key:
                return ref, spec
        matches = [p for p in held if key in position_names(p)]
        if len(matches) == 1:
            return matches[0]
        return f"no single held position matches {wanted!r}"
    if len(combos) == 1 and not [
        p for p in held if p.con_id not in {leg.con_id for s in combos.values() for leg in s.legs}
    ]:
        ref, spec = next(iter(combos.items()))
        return ref, spec
    if len(held) == 1 and not combos:
        return held[0]
    if not held and not combos:
        return "no position in this symbol to protect"
    return "several positions are held; name one with position"


def _positions_hint(held: list[PositionInfo], combos: dict[str, OrderSpec]) -> str:
    names = [f"{p.con_id} ({_describe(p)})" for p in held] + [f"{ref} (spread)" for ref in combos]
    return "position can be: " + ", ".join(names) if names else "open a position first"
