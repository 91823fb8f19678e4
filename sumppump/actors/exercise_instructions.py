"""Exercise and lapse instructions for the execution actor: previewed, then sent through the
same gate as an order (single use, confirm text, approval, breaker, write-ahead audit line).

An instruction is not an order: it is stored here, not in the order
:class:`~sumppump.trading.previews.PreviewStore`, and sent as the order desk's
:class:`~sumppump.messages.orders.ExerciseOption`. Its id has a preview id's shape, and once
claimed it is remembered as ``used`` in the order store, so a second ``execute_trade`` gets
the same ``PREVIEW_USED`` refusal an order would. The plan itself is the pure
:func:`sumppump.trading.exercise.plan_exercise`.

Not kept across a restart (an instruction is irrevocable and IB confirms nothing; the
positions show what happened).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from sumppump.actors.order_journal import OrderJournal
from sumppump.actors.runtime import ActorDown, CallTimeout, remaining_budget
from sumppump.actors.trading_reads import TradingReads
from sumppump.messages import execution as ex
from sumppump.messages.base import Reply
from sumppump.messages.connection import ConnectionState
from sumppump.messages.errors import ErrorCode
from sumppump.messages.orders import ExerciseDone, ExerciseOption, OrderRejected
from sumppump.settings import Settings
from sumppump.trading.account import account_kind as account_kind_of
from sumppump.trading.breaker import CircuitBreaker
from sumppump.trading.confirm import confirm_matches
from sumppump.trading.exercise import (
    ExercisePlan,
    ExerciseRefused,
    choose_option,
    exercise_confirm_text,
    plan_exercise,
)
from sumppump.trading.gate import approval_refusal, breaker_refusal, busy, connection_refusal
from sumppump.trading.previews import PreviewStore, new_preview_id
from sumppump.trading.prices import mid_or_last
from sumppump.trading.refusals import refused

__all__ = ["ExerciseInstructions"]

#: The listing exchange the instruction names (IB refuses SMART for exercise requests).
EXERCISE_EXCHANGE = "CBOE"


@dataclass(frozen=True, slots=True)
class _Ticket:
    preview_id: str
    symbol: str
    account: str
    account_kind: ex.AccountKind
    plan: ExercisePlan
    confirm_text: str
    epoch: int
    expires_mono: float
    expires_wall: float


class ExerciseInstructions:
    """Open exercise previews and the outcomes of sent ones; owned by the execution actor
    (one message at a time), sharing its reads, journal, order preview store (for the ``used``
    tombstones) and circuit breaker. ``now`` is the clock IB's cut-off is checked on (the
    market's: the simulator's in a simulated session); ``mono``/``wall`` the preview TTL's."""

    def __init__(
        self,
        settings: Settings,
        reads: TradingReads,
        journal: OrderJournal,
        store: PreviewStore,
        breaker: CircuitBreaker,
        now: Callable[[], dt.datetime],
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        *,
        simulated: bool = False,
    ) -> None:
        self._settings = settings
        self._reads = reads
        self._journal = journal
        self._store = store
        self._breaker = breaker
        self.now = now
        self.mono = mono
        self.wall = wall
        self._simulated = simulated
        self.ttl_s = settings.preview_ttl_s
        self._open: dict[str, _Ticket] = {}
        self._sent: dict[str, ex.ExerciseSubmitted | ex.OutcomeUnknown | ex.ExecutionRefused] = {}

    def holds(self, preview_id: str) -> bool:
        return preview_id.strip() in self._open

    async def prepare(self, msg: ex.PrepareExercise) -> Reply:
        """Read the positions and the underlying's quote, plan, store, audit the preview."""
        symbol = msg.symbol.strip().upper()
        reads, journal = self._reads, self._journal
        found = await reads.positions(symbol)
        if isinstance(found, ex.ExecutionRefused):
            return found
        epoch, held = found
        option = choose_option(held, symbol, msg.position)
        if isinstance(option, ExerciseRefused):
            return _as_refusal(option)
        quotes = await reads.quotes(symbol, ())
        # the underlying comes last; without a price the plan only omits the intrinsic value
        spot = mid_or_last(quotes[-1]) if isinstance(quotes, tuple) and quotes else None
        shares = sum(p.quantity for p in held if p.sec_type == "STK")
        plan = plan_exercise(
            option,
            action=msg.action,
            quantity=msg.quantity,
            now=self.now(),
            spot=spot,
            shares_held=shares,
            available_funds=None,
        )
        if isinstance(plan, ExerciseRefused):
            return _as_refusal(plan)
        account_kind = account_kind_of(option.account, simulated=self._simulated)
        text = exercise_confirm_text(plan, account=option.account, account_kind=account_kind)
        pid = new_preview_id()
        wall = self.wall()
        ticket = _Ticket(
            preview_id=pid,
            symbol=symbol,
            account=option.account,
            account_kind=account_kind,
            plan=plan,
            confirm_text=text,
            epoch=epoch,
            expires_mono=self.mono() + self.ttl_s,
            expires_wall=wall + self.ttl_s,
        )
        self._open[pid] = ticket
        await journal.line(
            "preview",
            order_ref=pid,
            action=f"{plan.action}_preview",
            symbol=symbol,
            con_id=plan.con_id,
            quantity=plan.contracts,
            confirm_text=text,
        )
        expires_at = dt.datetime.fromtimestamp(ticket.expires_wall, dt.UTC)
        return ex.ExercisePreviewCreated(
            preview_id=pid,
            confirm_text=text,
            expires_at=expires_at.isoformat(timespec="seconds"),
            expires_in_s=self.ttl_s,
            symbol=symbol,
            account=option.account,
            account_kind=account_kind,
            action=plan.action,
            contract=plan.contract,
            con_id=plan.con_id,
            contracts=plan.contracts,
            shares=plan.shares,
            cash=plan.cash,
            shares_after=plan.shares_after,
            contracts_after=plan.contracts_after,
            intrinsic=plan.intrinsic,
            spot=spot,
            cutoff=plan.cutoff,
            cutoff_source=plan.cutoff_source,
            warnings=(*plan.warnings, *self._mode_warning()),
        )

    def _mode_warning(self) -> tuple[str, ...]:
        if self._settings.approval_mode != "tws":
            return ()
        # An exercise instruction has no transmit flag: it cannot wait in TWS like an order.
        return (
            "approval mode tws: an exercise has no Transmit step in TWS; execute_trade sends it",
        )

    async def execute(
        self, msg: ex.ExecutePreview, ready: bool, reconciled_epoch: int | None
    ) -> Reply:
        """The gate's rungs that apply to an instruction (no price or risk re-check: nothing
        is bought at a market price), then the fsync-ed ``submit`` line, then the send."""
        pid = msg.preview_id.strip()
        ticket = self._open[pid]
        reads, journal, store, breaker = self._reads, self._journal, self._store, self._breaker
        mode = self._settings.approval_mode
        refusal = self._admit(ticket, msg, mode, breaker, ready)
        if refusal is None:
            state = await reads.connection_state()
            refusal = _connection_refusal(ticket, state, reconciled_epoch)
            if refusal is not None and refusal.reason == "epoch_changed":
                self._open.pop(pid, None)
        if refusal is not None:
            await journal.refusal(pid, refusal)
            return refusal
        # Single use: execution handles one message at a time, so no other execute of this id
        # can run between the checks above and this mark.
        if self._open.pop(pid, None) is None:  # pragma: no cover
            return refused(ErrorCode.PREVIEW_USED, "already used", "make a fresh preview")
        store.remember_used(pid, ticket.symbol)
        plan = ticket.plan
        try:
            await journal.write_ahead_exercise(
                pid,
                msg.approval,
                action=plan.action,
                symbol=ticket.symbol,
                con_id=plan.con_id,
                quantity=plan.contracts,
                account=ticket.account,
                confirm_text=ticket.confirm_text,
            )
        except OSError as exc:
            return refused(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the audit log cannot be written ({exc}); nothing was sent",
                "fix the audit log and make a fresh preview",
                reason="audit_failed",
                order_ref=pid,
            )
        request = ExerciseOption(
            con_id=plan.con_id,
            symbol=ticket.symbol,
            account=ticket.account,
            quantity=plan.contracts,
            action=plan.action,
            exchange=EXERCISE_EXCHANGE,
        )
        try:
            reply = await reads.connection.call(
                request, timeout=max(1.0, remaining_budget(10.0) - 0.5)
            )
        except (ActorDown, CallTimeout) as exc:
            reply = None
            cause = f"{type(exc).__name__}: {exc}"
        answer = self._answer(ticket, reply if reply is not None else cause, breaker)
        self._sent[pid] = answer
        await journal.line("status", order_ref=pid, kind="exercise", answer=type(answer).__name__)
        return answer

    def _admit(
        self,
        ticket: _Ticket,
        msg: ex.ExecutePreview,
        mode: str | None,
        breaker: CircuitBreaker,
        ready: bool,
    ) -> ex.ExecutionRefused | None:
        pid = ticket.preview_id
        if mode is None:
            return refused(
                ErrorCode.APPROVAL_REQUIRED,
                "the approval setting is not recognised",
                "set SUMPPUMP_APPROVAL",
                reason="unknown_approval_mode",
                order_ref=pid,
            )
        if self.mono() >= ticket.expires_mono or self.wall() >= ticket.expires_wall:
            self._open.pop(pid, None)
            return refused(
                ErrorCode.PREVIEW_EXPIRED,
                "the exercise preview expired",
                "make a fresh one with exercise_option",
                reason="expired",
                order_ref=pid,
            )
        if not confirm_matches(ticket.confirm_text, msg.confirm_text):
            return refused(
                ErrorCode.CONFIRM_MISMATCH,
                "confirm_text does not match the preview's text",
                f"send exactly: {ticket.confirm_text}",
                reason="mismatch",
                order_ref=pid,
            )
        gate = approval_refusal(mode, msg.approval, pid)
        if gate is not None:
            return gate
        return breaker_refusal(breaker, pid) or (None if ready else busy(pid))

    def _answer(
        self, ticket: _Ticket, reply: Reply | str, breaker: CircuitBreaker
    ) -> ex.ExerciseSubmitted | ex.OutcomeUnknown | ex.ExecutionRefused:
        pid, plan = ticket.preview_id, ticket.plan
        match reply:
            case ExerciseDone():
                breaker.accepted()
                if plan.action == "lapse":
                    state = "lapse_sent"
                else:
                    state = "exercised" if reply.confirmed else "exercise_sent"
                return ex.ExerciseSubmitted(
                    order_ref=pid,
                    symbol=ticket.symbol,
                    action=plan.action,
                    contract=plan.contract,
                    quantity=reply.quantity,
                    state=state,
                    confirmed=reply.confirmed,
                    option_position_before=reply.option_position_before,
                    option_position_after=reply.option_position_after,
                    shares_before=reply.shares_before,
                    shares_after=reply.shares_after,
                    cash=plan.cash,
                    confirm_text=ticket.confirm_text,
                    account_kind=ticket.account_kind,
                    message=reply.detail,
                )
            case OrderRejected():
                if reply.code != 0:
                    breaker.rejected(f"{reply.code}: {reply.message}")
                return refused(
                    ErrorCode.ORDER_REJECTED,
                    f"the {plan.action} instruction was refused: {reply.message}",
                    "nothing changed; get_positions shows what is held",
                    reason="rejected",
                    order_ref=pid,
                )
            case str() | _:
                cause = reply if isinstance(reply, str) else type(reply).__name__
                return ex.OutcomeUnknown(
                    order_ref=pid,
                    message=f"the {plan.action} instruction may or may not have reached IB: "
                    f"{cause}",
                    hint="it is never sent again; get_positions shows whether it happened",
                )

    def status(self, ref: str) -> ex.OrderStatusReport | None:
        """GetOrderStatus of an instruction (None: not one of ours)."""
        found = self.outcome(ref)
        if found is None:
            return None
        state = {"filled": "exercised", "working": "lapse_sent", "not_sent": "previewed"}
        return ex.OrderStatusReport(
            order_ref=found.order_ref,
            found=True,
            state=state.get(found.outcome, found.outcome),
            symbol=found.symbol,
            message=found.message,
        )

    def outcome(self, ref: str) -> ex.OrderOutcome | None:
        """get_order_status of an instruction (None: not one of ours): ``filled`` once the
        positions showed the exercise, ``working`` for a lapse (it acts at expiry),
        ``outcome_unknown`` when sent but not seen, ``rejected``, ``not_sent`` while open."""
        ref = ref.strip()
        if ref in self._open:
            t = self._open[ref]
            return ex.OrderOutcome(
                order_ref=ref,
                outcome="not_sent",
                kind=t.plan.action,
                symbol=t.symbol,
                description=t.confirm_text,
                message="an exercise preview not executed yet",
                reason="open",
            )
        sent = self._sent.get(ref)
        match sent:
            case None:
                return None
            case ex.ExerciseSubmitted():
                outcome: ex.OrderOutcomeState = (
                    "filled"
                    if sent.confirmed
                    else ("working" if sent.action == "lapse" else "outcome_unknown")
                )
                shares = (
                    f"; shares {sent.shares_before:g} -> {sent.shares_after:g}, cash "
                    f"{sent.cash:+,.2f}"
                    if sent.confirmed
                    else ""
                )
                return ex.OrderOutcome(
                    order_ref=ref,
                    outcome=outcome,
                    kind=sent.action,
                    symbol=sent.symbol,
                    description=sent.confirm_text,
                    message=f"{sent.state} ({sent.quantity} {sent.contract}): contracts "
                    f"{sent.option_position_before:g} -> {sent.option_position_after:g}"
                    f"{shares}; {sent.message}",
                )
            case ex.OutcomeUnknown():
                return ex.OrderOutcome(
                    order_ref=ref,
                    outcome="outcome_unknown",
                    message=sent.message,
                    action="get_positions shows whether it happened",
                )
            case ex.ExecutionRefused():
                return ex.OrderOutcome(
                    order_ref=ref, outcome="rejected", message=sent.message, reason=sent.message
                )


def _as_refusal(r: ExerciseRefused) -> ex.ExecutionRefused:
    return refused(ErrorCode(r.code), r.message, r.hint)


def _connection_refusal(
    ticket: _Ticket, state: ConnectionState | str, reconciled_epoch: int | None
) -> ex.ExecutionRefused | None:
    """Connected, reconciled, and on the connection the preview was made on."""
    pid = ticket.preview_id
    refusal = connection_refusal(pid, state, reconciled_epoch)
    if refusal is not None or not isinstance(state, ConnectionState):
        return refusal
    if state.epoch != ticket.epoch:
        return refused(
            ErrorCode.NOT_CONNECTED,
            "the connection to TWS was re-established since the preview",
            "make a fresh preview with exercise_option",
            reason="epoch_changed",
            order_ref=pid,
        )
    return None
