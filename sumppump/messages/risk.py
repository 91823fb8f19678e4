"""Protocol of the risk actor: analysis of one structure against the account, strike suggestions,
the re-check at execute time, and the account state it holds.

Replies are typed outcomes (never exceptions). Besides the replies named per request, every
request that needs TWS may be answered with a pass-through of the connection's or the chain
cache's outcome: :class:`~sumppump.messages.common.NotConnected`,
:class:`~sumppump.messages.common.NoSuchContract`,
:class:`~sumppump.messages.chain_cache.ExpiryNotListed`,
:class:`~sumppump.messages.common.NoMarketData` or
:class:`~sumppump.messages.rate_limiter.PacingDelayed`.

Checks: every check of an order is reported by name (:data:`CHECK_NAMES`) with ``passed``,
``failed`` or ``not_run`` (it could not run: no quote, delayed data, what-if timeout, …). For a
LIVE account a required check that did not run refuses the order (fail closed); for PAPER and
SIMULATED accounts it becomes a warning.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from sumppump.messages.base import Command, Reply
from sumppump.messages.common import DataType, StockContract
from sumppump.messages.connection import PositionInfo
from sumppump.messages.orders import OrderSpec
from sumppump.strategies.analysis import StrategyAnalysis
from sumppump.strategies.search import Candidate

__all__ = [
    "AccountKind",
    "AccountState",
    "AnalyseStrategy",
    "CheckResult",
    "CheckStatus",
    "GetAccountState",
    "LegSnapshot",
    "QuoteSnapshot",
    "RecheckOrder",
    "RecheckResult",
    "RiskRejected",
    "RiskReply",
    "RiskRequest",
    "StrategyAnalysed",
    "StrikeSuggestions",
    "SuggestStrikes",
]

AccountKind = Literal["LIVE", "PAPER", "SIMULATED"]
CheckStatus = Literal["passed", "failed", "not_run"]
Outlook = Literal["bullish", "bearish", "volatile"]
RiskCode = Literal[
    "RISK_LIMIT",
    "INSUFFICIENT_FUNDS",
    "MARKET_CLOSED",
    "NOT_PERMITTED_LEVEL2",
    "INVALID_ARGUMENT",
    "NO_MARKET_DATA",
    "ORDER_REJECTED",
    "NOT_CONNECTED",
]


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """One named account check. ``detail`` says what was compared, in words and numbers."""

    name: str
    status: CheckStatus
    detail: str
    required: bool = True


# ---------------------------------------------------------------------- analyse


class AnalyseStrategy(Command, frozen=True, kw_only=True):
    """Analyse ``strategy`` on ``symbol`` against the account (the ``calculate_strategy`` tool).

    ``strikes`` in any order; ``limit_price`` the net per unit (positive debit; ``None`` = mid
    rounded to the tick); ``legs`` only for ``custom``, entries
    ``{action: BUY|SELL, right: C|P|STK, strike, expiry, ratio}``.

    Replies: :class:`StrategyAnalysed`, :class:`RiskRejected`, or a pass-through (module doc).
    """

    symbol: str
    strategy: str
    expiry: str | None = None
    strikes: tuple[float, ...] = ()
    quantity: int = 1
    limit_price: float | None = None
    legs: tuple[dict[str, Any], ...] | None = None


class LegSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The quote of one leg the analysis used (per share)."""

    con_id: int
    description: str  # "BUY 1 C 225 2026-12-18" / "BUY 100 STK"
    bid: float | None
    ask: float | None
    mid: float | None
    ts: int  # ns since the epoch when the quote was received


class QuoteSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Every price the analysis rests on, with when it was taken. Execution compares a fresh
    snapshot against this one (quote drift) before it places the order."""

    underlying_con_id: int
    underlying_bid: float | None
    underlying_ask: float | None
    underlying_last: float | None
    underlying_mid: float | None
    legs: tuple[LegSnapshot, ...]
    data_type: DataType
    ts: int  # ns since the epoch: the oldest quote of the snapshot


class StrategyAnalysed(Reply, frozen=True, kw_only=True):
    """The analysis, the exact order that would be sent, and the account checks.

    ``order.order_ref`` is ``""``: execution sets it to the preview id. ``order.limit_price`` is
    in IB's combo terms (Σ sign · ratio · price); it equals ``analysis.limit_price`` unless the
    structure has a stock leg (then the stock part is anchored at its mid, see
    :func:`sumppump.risk_checks.wire_limit_price`). ``epoch`` is the connection epoch the
    contracts and quotes came from.
    """

    analysis: StrategyAnalysis
    order: OrderSpec
    checks: tuple[CheckResult, ...]
    warnings: tuple[str, ...]
    account_id: str
    account_kind: AccountKind
    quote_snapshot: QuoteSnapshot
    epoch: int
    data_type: DataType
    notes: tuple[str, ...] = ()  # how the structure was built (shares held or bought, …)
    order_max_loss: float | None = None  # the loss this order adds: RecheckOrder.max_loss
    shares_held_used: int = 0  # held shares its short calls rely on: RecheckOrder's too
    stock: StockContract | None = None  # the underlying, with its trading hours and time zone
    what_if_init_margin_change: float | None = None
    what_if_commission: float | None = None
    switched_from: str | None = None


class RiskRejected(Reply, frozen=True, kw_only=True):
    """The order is refused. ``code`` is an :class:`~sumppump.messages.errors.ErrorCode` value;
    ``checks`` as far as they ran; ``analysis`` when the numbers were computed (so the person
    still sees them); ``level_needed`` for a Level-2 refusal."""

    code: RiskCode
    message: str
    hint: str
    checks: tuple[CheckResult, ...] = ()
    analysis: StrategyAnalysis | None = None
    level_needed: str | None = None
    account_kind: AccountKind | None = None


# ---------------------------------------------------------------------- suggest


class SuggestStrikes(Command, frozen=True, kw_only=True):
    """Ranked Level-2 candidates (the ``suggest_strikes`` tool). ``max_debit`` in dollars per
    unit. Replies :class:`StrikeSuggestions`, :class:`RiskRejected` (``INVALID_ARGUMENT``) or a
    pass-through."""

    symbol: str
    outlook: Outlook
    expiry: str | None = None
    target_price: float | None = None
    max_debit: float | None = None
    limit: int = 10


class StrikeSuggestions(Reply, frozen=True, kw_only=True):
    symbol: str
    expiry: str
    outlook: Outlook
    spot: float
    candidates: tuple[Candidate, ...]
    data_type: DataType
    partial: bool = False
    notes: tuple[str, ...] = ()
    switched_from: str | None = None


# ---------------------------------------------------------------------- re-check


class RecheckOrder(Command, frozen=True, kw_only=True):
    """Re-run the account checks for an order about to be placed (execution, at execute time).

    ``max_loss`` is in dollars (``None`` = unbounded), ``debit`` the dollars paid for the whole
    order (negative for a credit), ``commission`` the estimate, ``summary`` a one-line
    description for the check details. ``shares_held_used`` is how many held shares the order's
    short calls rely on. ``reduces_exposure``: the order only closes what is held (a close, or
    a change to one); the contract-count limit, which caps new exposure, does not apply to it.
    Replies :class:`RecheckResult` or ``NotConnected``.
    """

    order: OrderSpec
    max_loss: float | None
    debit: float
    reduces_exposure: bool = False
    commission: float = 0.0
    summary: str = ""
    shares_held_used: int = 0
    liquid_hours: str = ""
    trading_hours: str = ""
    time_zone: str = ""


class RecheckResult(Reply, frozen=True, kw_only=True):
    """``ok`` is False when a check failed, or (LIVE) a required check did not run; ``code`` then
    says which refusal applies."""

    checks: tuple[CheckResult, ...]
    ok: bool
    code: RiskCode | None = None
    message: str = ""
    account_kind: AccountKind = "LIVE"


# ---------------------------------------------------------------------- account


class GetAccountState(Command, frozen=True, kw_only=True):
    """The account as the risk actor holds it. ``refresh`` reloads it from TWS first."""

    refresh: bool = False


class AccountState(Reply, frozen=True, kw_only=True):
    """``stale`` is True when the last refresh failed or the connection is down since it."""

    account_id: str
    kind: AccountKind
    net_liquidation: float | None
    available_funds: float | None
    buying_power: float | None
    currency: str
    positions: tuple[PositionInfo, ...]
    shares_committed_by_open_short_calls: dict[str, int]
    refreshed_at: int  # ns since the epoch; 0 = never
    stale: bool


RiskRequest = AnalyseStrategy | SuggestStrikes | RecheckOrder | GetAccountState
RiskReply = StrategyAnalysed | RiskRejected | StrikeSuggestions | RecheckResult | AccountState
