"""Protocol of the execution actor: previews, confirmed execution, stops, cancels, fills.

The one path from a conversation to an order (DESIGN.md §4, notes/competitors.md §10):

1. ``calculate_strategy`` / ``set_stop_loss`` / ``close_position`` / ``modify_order`` /
   ``roll_position`` end in :class:`CreatePreview` (or :class:`PrepareStopLoss`, which builds the
   order itself). Execution keeps the exact order on the server and answers
   :class:`PreviewCreated`: an opaque ``preview_id`` (``secrets``, 144 bits), ``confirm_text``
   (one line: the order and its max loss in words), and the expiry (TTL
   ``SUMPPUMP_PREVIEW_TTL_S``, on the monotonic *and* the wall clock, whichever ends first).
2. ``execute_trade(preview_id, confirm_text)`` becomes :class:`ExecutePreview`. The model can pass
   nothing else: legs, prices and quantity come from the stored preview. The answer is exactly one
   of :class:`OrderSubmitted`, :class:`ExecutionRefused` or :class:`OutcomeUnknown`.

Order of the checks in :class:`ExecutePreview` (the first failing one answers):

==============================  =========================  ======================================
check                           code                        preview afterwards
==============================  =========================  ======================================
approval setting unrecognised   ``APPROVAL_REQUIRED``       kept
id never issued / evicted       ``PREVIEW_UNKNOWN``         —
already used (or refused)       ``PREVIEW_USED``            tombstone (``reason`` says which)
expired / voided by a symbol    ``PREVIEW_EXPIRED``         tombstone (``reason``: ``expired`` /
switch / superseded                                         ``voided`` / ``superseded``)
confirm_text differs            ``CONFIRM_MISMATCH``        kept (the exact text may be sent)
approval gate (elicit/app)      ``APPROVAL_REQUIRED``       kept
circuit breaker open            ``ORDER_REJECTED``          kept (``reason="breaker_open"``)
reconciling after (re)connect   ``NOT_CONNECTED``           kept (``reason="reconciling"``,
                                                            ``retry_after``)
not connected                   ``NOT_CONNECTED``           kept
connection epoch changed        ``NOT_CONNECTED``           voided (``reason="epoch_changed"``)
mid moved beyond slippage       ``PRICE_MOVED``             superseded by ``fresh_preview``
risk re-check failed            ``RISK_LIMIT`` /            used up (``reason="risk_refused"``)
                                ``INSUFFICIENT_FUNDS`` /
                                ``MARKET_CLOSED``
IB rejected the order           ``ORDER_REJECTED``          used (counts toward the breaker)
==============================  =========================  ======================================

Once every check has passed, the preview is marked *submitting* (single use, no ``await`` between
the check and the mark) and a ``submit`` line is written to the audit log (fsync) **before**
``PlaceOrder`` is sent, so a restart finds it. If ``PlaceOrder`` ends in ``ActorDown`` /
``CallTimeout`` / ``OrderUnacknowledged`` / a disconnect, the answer is :class:`OutcomeUnknown`
and the order is never sent again; :class:`GetOrderStatus` reports its real state once
reconciliation has found it (or established that TWS never received it).

``exercise_option`` ends in :class:`PrepareExercise` → :class:`ExercisePreviewCreated`; its id
goes through the same :class:`ExecutePreview` (approval, single use, confirm text, breaker,
connection, a ``submit`` line with ``kind="exercise"`` before sending; no price or risk re-check:
nothing is bought at a market price), which sends the order desk's ``ExerciseOption`` and answers
:class:`ExerciseSubmitted`; :class:`GetOrderOutcome` reports it.

Callers: an ``ActorDown`` / ``CallTimeout`` from ``execution.call(ExecutePreview(...))`` itself
must be reported as ``ORDER_OUTCOME_UNKNOWN`` with the ``preview_id`` as ``order_ref`` (the MCP
layer does this); never retry the call.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.messages.base import Command, Reply
from sumppump.messages.common import AccountKind, Quote
from sumppump.messages.errors import ErrorCode
from sumppump.messages.exercise import (
    ExercisePreviewCreated,
    ExerciseSubmitted,
    PrepareExercise,
)
from sumppump.messages.orders import OrderSpec

__all__ = [
    "AccountKind",
    "ApprovalContext",
    "BreakerState",
    "CancelByRef",
    "CancelResult",
    "ChangeDetails",
    "CreatePreview",
    "DeclinePreview",
    "ExecutePreview",
    "ExecutionRefused",
    "ExecutionReply",
    "ExecutionRequest",
    "ExercisePreviewCreated",
    "ExerciseSubmitted",
    "FillInfo",
    "Fills",
    "GetBreaker",
    "GetFills",
    "GetOrderOutcome",
    "GetOrderStatus",
    "OrderOutcome",
    "OrderOutcomeState",
    "OrderStatusReport",
    "OrderSubmitted",
    "OrderTerms",
    "OutcomeUnknown",
    "PrepareClose",
    "PrepareExercise",
    "PrepareModify",
    "PrepareRoll",
    "PrepareStopLoss",
    "PreviewCreated",
    "PreviewKind",
    "ResetBreaker",
    "StopFollow",
    "StopLossPrompt",
    "SuggestedCall",
    "VoidSymbol",
    "Voided",
]

PreviewKind = Literal["open", "stop", "close", "modify", "roll"]
ApprovedVia = Literal["tool", "elicitation", "ticket"]


# ---------------------------------------------------------------- previews


class CreatePreview(Command, frozen=True, kw_only=True):
    """Store ``order`` on the server and hand out a single-use preview of it.

    * ``order``: exactly what will be placed, with ``order_ref=""`` (execution sets it to the
      preview id). Multi-leg orders are one guaranteed BAG; the limit price is the net per unit
      (positive debit, negative credit).
    * ``max_loss`` / ``max_gain``: money for the whole order (quantity and multiplier included);
      ``None`` = unbounded (said so in words). ``breakevens``: underlying prices.
    * ``net_debit``: per unit, as the limit price (negative = credit).
    * ``strategy``: a human name for confirm_text ("bull call spread"); ``description``: what the
      order is about when not obvious from the legs ("protective stop for …").
    * ``quote_snapshot``: the quotes the analysis used, one per leg con_id (and the underlying);
      the slippage check at execute time compares the structure's mid against it.
    * ``epoch``: the connection epoch the quotes and contracts came from.
    * ``replaces_order_ref``: for ``kind="modify"``, the working order (one of ours) being
      changed. Execution then sends ``ModifyOrder`` with that order's IB id and ``orderRef``
      (IB modifies an order by re-sending it under the same id), not a new order; the reply's
      ``order_ref`` is the modified order's.
    * ``order_max_loss``: the loss this order adds (``StrategyAnalysed.order_max_loss``), sent
      to the re-check as ``RecheckOrder.max_loss``; ``None`` = use ``max_loss``.
    * ``details``: what a close, modification or roll does (shown with the preview).
      ``opening_con_ids``: the legs that open a position (a roll's new legs); empty = all.
    * ``commission`` (the what-if estimate, dollars) and ``shares_held_used`` (held shares the
      order's short calls rely on) are passed to the risk re-check at execute time
      (``RecheckOrder``), together with the trading hours of the fresh quote.

    Reply: :class:`PreviewCreated`, or :class:`ExecutionRefused` (``INVALID_ARGUMENT``) when the
    order is malformed (no legs, quantity < 1, non-positive limit on a single leg, order_ref set,
    NonGuaranteed).
    """

    order: OrderSpec
    symbol: str
    kind: PreviewKind = "open"
    strategy: str = ""
    description: str = ""
    max_loss: float | None
    max_gain: float | None
    breakevens: tuple[float, ...] = ()
    net_debit: float
    quote_snapshot: tuple[Quote, ...] = ()
    underlying_price: float | None = None
    epoch: int
    account_kind: AccountKind
    min_tick: float = 0.01
    replaces_order_ref: str = ""
    warnings: tuple[str, ...] = ()
    commission: float = 0.0
    shares_held_used: int = 0
    order_max_loss: float | None = None
    details: ChangeDetails | None = None
    opening_con_ids: tuple[int, ...] = ()


class PreviewCreated(Reply, frozen=True, kw_only=True):
    """A stored preview. ``order.order_ref == preview_id``; ``digest`` is the sha256 of the
    canonical order (shown for audit, not something the person must copy)."""

    preview_id: str
    confirm_text: str
    expires_at: str  # ISO 8601, UTC
    expires_in_s: float
    order: OrderSpec
    kind: PreviewKind
    symbol: str
    max_loss: float | None
    max_gain: float | None
    breakevens: tuple[float, ...]
    net_debit: float
    account_kind: AccountKind
    digest: str
    notes: tuple[str, ...] = ()
    details: ChangeDetails | None = None
    replaces_order_ref: str = ""


class PrepareStopLoss(Command, frozen=True, kw_only=True):
    """Build a protective stop for a held position of ``symbol`` and preview it.

    ``stop_price`` (per share, per unit for a spread) or ``stop_percent`` (share of the entry
    price to give up, e.g. 50 = stop at half the premium paid); neither = the suggestion (50 % of
    premium for long options and debit spreads, 8 % below entry for stock). ``position`` picks one
    when several are held: a con_id, an ``order_ref`` of one of our filled orders (a spread
    opened here), or a description such as ``"AAPL 2026-12-18 230 C"`` / ``"stock"``.

    Orders built: stock or a single option → ``STP`` (GTC) that sells a long position / buys back
    a short one; a spread opened here as a BAG → a guaranteed BAG ``STP LMT`` that closes it
    (legs reversed, net price negative = credit received). IB simulates stop triggers on combos
    rather than routing them to an exchange; the preview's notes say so.

    Reply: :class:`PreviewCreated` (``kind="stop"``) or :class:`ExecutionRefused`
    (``INVALID_ARGUMENT`` no/ambiguous position or a stop on the wrong side of the market,
    ``NOT_CONNECTED``, ``NO_MARKET_DATA``).
    """

    symbol: str
    stop_price: float | None = None
    stop_percent: float | None = None
    position: str | None = None


class PrepareClose(Command, frozen=True, kw_only=True):
    """Preview closing (all or ``quantity`` units of) a held position of ``symbol``.

    ``position`` names it (see :mod:`sumppump.trading.holdings`): a conId or description from
    ``get_positions``, ``STK``, or the ``order_ref`` of a combo opened here. A structure opened
    together is closed as one guaranteed combo. ``limit_price`` is per share for a single leg,
    net per unit for a combo (negative = credit received); default the mid rounded to the tick.

    Reply: :class:`PreviewCreated` (``kind="close"``, ``details`` filled in) or
    :class:`ExecutionRefused`: ``INVALID_ARGUMENT`` (nothing held, ambiguous position,
    quantity above what is held, limit on the wrong side), ``NOT_PERMITTED_LEVEL2`` (what
    remains would hold an uncovered short; the hint names the combo to close instead),
    ``NOT_CONNECTED``, ``NO_MARKET_DATA``.
    """

    symbol: str
    position: str | None = None
    quantity: int | None = None
    limit_price: float | None = None


class PrepareModify(Command, frozen=True, kw_only=True):
    """Preview a change to the working order ``order_ref`` that SumpPump placed: a new limit,
    quantity or stop price (at least one). Executing it re-sends the order under its own IB
    id and orderRef (how IB modifies), after the same checks as any order.

    Reply: :class:`PreviewCreated` (``kind="modify"``, ``replaces_order_ref``; ``details.before``
    and ``details.after`` side by side) or :class:`ExecutionRefused` (``INVALID_ARGUMENT``: not
    ours, filled, cancelled, unknown, nothing changed, a field the order type does not have, a
    quantity not above what already filled or above what a stop protects).
    """

    order_ref: str
    limit_price: float | None = None
    quantity: int | None = None
    stop_price: float | None = None


class PrepareRoll(Command, frozen=True, kw_only=True):
    """Preview rolling a long option or a debit spread of ``symbol`` to ``new_expiry`` (and
    ``new_strikes``, default the same): one guaranteed combo that sells the held legs and buys
    the same structure at the later expiry. ``limit_price`` is the roll's net per unit
    (positive = debit paid, negative = credit); default the mid.

    Reply: :class:`PreviewCreated` (``kind="roll"``; ``max_loss``/``max_gain``/``breakevens``
    of the resulting position, ``details.cash`` the roll's net) or :class:`ExecutionRefused`
    (``INVALID_ARGUMENT``: not a long option or debit spread, expiry not later;
    ``NOT_PERMITTED_LEVEL2`` when the result would not be Level 2).
    """

    symbol: str
    new_expiry: str
    position: str | None = None
    new_strikes: tuple[float, ...] | None = None
    limit_price: float | None = None


class StopFollow(msgspec.Struct, frozen=True, kw_only=True):
    """What happens to one protective stop when the previewed order fills. ``how``:
    ``cancelled`` / ``reduced`` (by IB, through the shared OCA group), ``unchanged``, or
    ``not_ours`` (placed outside SumpPump: the person must see to it in TWS)."""

    order_ref: str
    description: str
    how: Literal["cancelled", "reduced", "unchanged", "not_ours"]
    quantity_before: float
    quantity_after: float


class OrderTerms(msgspec.Struct, frozen=True, kw_only=True):
    """A working order's terms, for the before/after of a modification."""

    order_type: str
    quantity: int
    limit_price: float | None = None
    stop_price: float | None = None
    max_loss: float | None = None
    max_gain: float | None = None


class ChangeDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What a close, modification or roll does, for the person to read before confirming.

    ``position_value`` is what one unit of the position being closed or rolled is worth at mid
    (per share, positive for a long); ``cash`` is money for the whole order at the limit
    (positive = received, negative = paid);
    ``realised_pnl`` the P&L against IB's average cost at the limit (commission excluded);
    ``closes_order_ref`` the order that opened the combo being closed or rolled (if one of
    ours); ``holds_after`` what the account holds in the symbol once it fills; ``level2`` the rule's
    verdict on that; ``stops`` what happens to the position's protective orders.
    """

    action: Literal["close", "modify", "roll"]
    position: str
    quantity: int
    closes_order_ref: str = ""
    held: int = 0
    limit_price: float | None = None
    mid: float | None = None
    natural: float | None = None
    position_value: float | None = None
    cash: float | None = None
    realised_pnl: float | None = None
    commission: float = 0.0
    holds_after: tuple[str, ...] = ()
    level2: str = ""
    stops: tuple[StopFollow, ...] = ()
    before: OrderTerms | None = None
    after: OrderTerms | None = None


class ApprovalContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the MCP layer knows about how the person approved this call.

    ``mode`` is ``SUMPPUMP_APPROVAL`` as the MCP layer read it (must agree with execution's own
    setting, else refused). ``approved_via``: ``tool`` (the client's own tool-approval prompt),
    ``elicitation`` (the person accepted the MCP elicitation showing confirm_text), ``ticket``
    (the MCP App order ticket's Confirm button, a tool the host keeps from the model).
    """

    mode: str
    client_can_elicit: bool = False
    client_has_ui: bool = False
    approved_via: ApprovedVia = "tool"

    @property
    def description(self) -> str:
        """How the person approved, in words (the audit's submit line carries it)."""
        return _APPROVED_WORDS[self.approved_via]


_APPROVED_WORDS: dict[str, str] = {
    "tool": "approved in the client's tool-approval prompt",
    "elicitation": "approved in the elicitation prompt",
    "ticket": "approved in ticket",
}


class ExecutePreview(Command, frozen=True, kw_only=True):
    """Place the stored order of ``preview_id`` once, after ``confirm_text`` matches exactly
    (surrounding whitespace ignored) and every check in the module docstring passes.

    Reply: :class:`OrderSubmitted`, :class:`ExecutionRefused` or :class:`OutcomeUnknown`.
    Give it at least 15 s: it asks connection, chain cache and risk, then waits up to 8 s for
    TWS to acknowledge.
    """

    preview_id: str
    confirm_text: str
    approval: ApprovalContext


class FillInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of one of our orders. For a BAG, ``con_id`` is the leg's (the combo-level
    report has the BAG's conId 28812380 and the net price)."""

    order_ref: str
    exec_id: str
    con_id: int
    symbol: str
    side: Literal["BOT", "SLD"]
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    time: str
    ts: int = 0


class SuggestedCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call the person can make (shown, never made for them)."""

    tool: str
    arguments: dict[str, str | float | int | None]


class StopLossPrompt(msgspec.Struct, frozen=True, kw_only=True):
    """After each fill of an opening order: suggest a protective stop.

    ``suggested_stop`` is per share (per unit for a spread): 50 % of the premium paid for long
    options and debit structures, 8 % below the fill for stock.
    """

    order_ref: str
    symbol: str
    position: str
    filled: float
    avg_fill_price: float
    suggested_stop: float
    rationale: str
    call: SuggestedCall
    text: str


class OrderSubmitted(Reply, frozen=True, kw_only=True):
    """TWS acknowledged the order. ``status`` is IB's (PreSubmitted, Submitted, Filled, …).
    ``waiting_for_tws_transmit``: approval mode ``tws`` sent it with ``transmit=False``; it rests
    in TWS until the person presses Transmit there. ``stop_loss_prompt`` is set when it filled
    (partly) already; later fills are returned by :class:`GetFills`."""

    order_ref: str
    order_id: int
    perm_id: int
    status: str
    filled: float
    remaining: float
    avg_fill_price: float | None
    fills: tuple[FillInfo, ...] = ()
    stop_loss_prompt: StopLossPrompt | None = None
    waiting_for_tws_transmit: bool = False
    account_kind: AccountKind
    symbol: str
    confirm_text: str
    message: str = ""


class ExecutionRefused(Reply, frozen=True, kw_only=True):
    """Nothing was sent to TWS (except for ``ORDER_REJECTED`` with ``reason="rejected"``:
    IB refused it). ``reason`` refines the code (``used``, ``expired``, ``voided``,
    ``superseded``, ``risk_refused``, ``epoch_changed``, ``reconciling``, ``breaker_open``,
    ``rejected``, ``unknown_approval_mode``, …)."""

    code: ErrorCode
    message: str
    hint: str
    reason: str = ""
    order_ref: str = ""
    fresh_preview: PreviewCreated | None = None
    checks: tuple[str, ...] = ()
    retry_after: float | None = None


class OutcomeUnknown(Reply, frozen=True, kw_only=True):
    """The order may have reached IB (code ``ORDER_OUTCOME_UNKNOWN``). Never retried; ask
    :class:`GetOrderStatus` (``order_ref``) after reconciliation."""

    code: ErrorCode = ErrorCode.ORDER_OUTCOME_UNKNOWN
    order_ref: str
    message: str
    hint: str


# ---------------------------------------------------------------- status, cancel, fills


class GetOrderStatus(Command, frozen=True, kw_only=True):
    """Reply :class:`OrderStatusReport` (``found=False`` when the ref is not ours/unknown)."""

    order_ref: str


class OrderStatusReport(Reply, frozen=True, kw_only=True):
    """``state``: ``submitting`` (sent, outcome unknown, reconciliation pending), ``working``,
    ``filled``, ``cancelled``, ``rejected``, ``not_received`` (reconciliation found that TWS
    never got it), ``unknown`` (not ours)."""

    order_ref: str
    found: bool
    state: str
    status: str = ""
    order_id: int | None = None
    perm_id: int | None = None
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float | None = None
    fills: tuple[FillInfo, ...] = ()
    symbol: str = ""
    reconciled: bool = False
    message: str = ""
    stop_loss_prompt: StopLossPrompt | None = None


OrderOutcomeState = Literal[
    "working",
    "filled",
    "cancelled",
    "rejected",
    "never_reached_tws",
    "outcome_unknown",
    "not_sent",
    "unknown",
]


class GetOrderOutcome(Command, frozen=True, kw_only=True):
    """What became of the order SumpPump placed or tried under ``order_ref`` (a preview id).
    Reply :class:`OrderOutcome`; read-only."""

    order_ref: str


class OrderOutcome(Reply, frozen=True, kw_only=True):
    """The true outcome of one order, by its ``outcome``:

    * ``working``: TWS holds it (``order`` its terms, ``filled`` so far);
    * ``filled``: ``fills``, ``avg_fill_price`` and ``commission`` (``None`` until IB reports
      it; not kept across a restart);
    * ``cancelled`` (``filled`` before the cancel), ``rejected`` (``reason``: IB's);
    * ``never_reached_tws``: the submit line was written but TWS never received it (nothing
      was placed, and it is never re-sent);
    * ``outcome_unknown``: it was handed to TWS and reconciliation has not established it yet
      (``action`` says what is being done);
    * ``not_sent``: the id is a preview that was never executed (``reason`` says why: open,
      expired, refused, …);
    * ``unknown``: not one of ours, or forgotten.

    ``message`` says the same in one line."""

    order_ref: str
    outcome: OrderOutcomeState
    message: str
    symbol: str = ""
    kind: str = ""
    description: str = ""
    order: OrderSpec | None = None
    status: str = ""
    order_id: int | None = None
    perm_id: int | None = None
    quantity: float = 0.0
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float | None = None
    commission: float | None = None
    fills: tuple[FillInfo, ...] = ()
    reason: str = ""
    action: str = ""
    reconciled: bool = False


class CancelByRef(Command, frozen=True, kw_only=True):
    """Cancel our working order ``order_ref``. Reply :class:`CancelResult` or
    :class:`ExecutionRefused` (``INVALID_ARGUMENT`` unknown ref / already done,
    ``NOT_CONNECTED``). An ``ActorDown``/``CallTimeout`` here is outcome-unknown too."""

    order_ref: str


class CancelResult(Reply, frozen=True, kw_only=True):
    order_ref: str
    order_id: int
    status: str
    message: str = ""


class GetFills(Command, frozen=True, kw_only=True):
    """Fills received since ``since_ns`` (wall clock ns) and the stop-loss prompts not shown yet.
    ``take_prompts=True`` marks the returned prompts as shown."""

    since_ns: int = 0
    take_prompts: bool = True


class Fills(Reply, frozen=True, kw_only=True):
    fills: tuple[FillInfo, ...]
    stop_loss_prompts: tuple[StopLossPrompt, ...]


class ResetBreaker(Command, frozen=True, kw_only=True):
    """Close the circuit breaker (an explicit human action). Reply :class:`BreakerState`."""


class GetBreaker(Command, frozen=True, kw_only=True):
    pass


class BreakerState(Reply, frozen=True, kw_only=True):
    """The circuit breaker, and whether execution accepts orders now (``ready``: reconciled
    for the current connection epoch ``reconciled_epoch``)."""

    open: bool
    consecutive_rejections: int
    threshold: int
    last_rejection: str = ""
    ready: bool = False
    reconciled_epoch: int | None = None


class VoidSymbol(Command, frozen=True, kw_only=True):
    """Void every open preview of ``symbol`` (session switched away from it). Also accepted as
    a tell; :class:`~sumppump.messages.chain_cache.SymbolSwitched` does the same."""

    symbol: str


class DeclinePreview(Command, frozen=True, kw_only=True):
    """The person declined ``preview_id`` (Cancel in the order ticket): retire it so nothing,
    neither the ticket nor ``execute_trade``, can place it. Reply :class:`Voided` (empty
    ``preview_ids`` when it was no longer open)."""

    preview_id: str


class Voided(Reply, frozen=True, kw_only=True):
    symbol: str
    preview_ids: tuple[str, ...]


ExecutionRequest = (
    CreatePreview
    | PrepareStopLoss
    | PrepareClose
    | PrepareModify
    | PrepareRoll
    | ExecutePreview
    | GetOrderStatus
    | GetOrderOutcome
    | CancelByRef
    | GetFills
    | ResetBreaker
    | GetBreaker
    | VoidSymbol
    | DeclinePreview
    | PrepareExercise
)
ExecutionReply = (
    PreviewCreated
    | OrderSubmitted
    | ExecutionRefused
    | OutcomeUnknown
    | OrderStatusReport
    | OrderOutcome
    | CancelResult
    | Fills
    | BreakerState
    | Voided
    | ExercisePreviewCreated
    | ExerciseSubmitted
)
