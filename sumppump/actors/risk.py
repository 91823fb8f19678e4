"""The risk actor: analyses one structure against the account and says whether it may be sent.

It holds the account state (net liquidation, available funds, buying power, positions and the
shares already committed to open short calls), loaded from the connection when it starts, on
every ``ConnectionUp`` and after every ``FillReported``; ``ConnectionDown`` marks it stale.

``AnalyseStrategy`` (the ``calculate_strategy`` tool), in order:

1. build the legs with the pure builders (:mod:`sumppump.strategies.builders`), knowing the
   shares held and committed;
2. contracts and fresh quotes for the option legs from the chain cache (``GetLegQuotes``);
3. the pure analysis (:func:`~sumppump.strategies.analysis.analyse_order`) and the Level-2 rule
   at the limit price (:func:`~sumppump.strategies.builders.require_level2`);
4. the exact :class:`OrderSpec` (``order_ref=""``: execution sets the preview id);
5. the account checks of :mod:`sumppump.risk_checks`, IB's what-if through the connection
   included, and the verdict (fail closed for LIVE accounts).

Refusals are :class:`RiskRejected` replies; outcomes of the connection or the chain cache
(``NotConnected``, ``NoSuchContract``, ``ExpiryNotListed``, ``NoMarketData``,
``PacingDelayed``) are passed through unchanged. Calls downstream run under the caller's
deadline (``remaining_budget``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, assert_never

import anyio
import msgspec

from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.messages.base import Message, Reply, now_ns
from sumppump.messages.chain_cache import Chain, GetChain, GetLegQuotes, LegKey, LegQuotes
from sumppump.messages.common import (
    DataType,
    NotConnected,
    Ping,
    Pong,
    StockContract,
)
from sumppump.messages.connection import (
    AccountSnapshot,
    ConnectionDown,
    ConnectionState,
    ConnectionUp,
    FetchAccount,
    FetchPositions,
    GetConnectionState,
    PositionInfo,
    Positions,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.orders import (
    FillReported,
    OrderRejected,
    OrderSpec,
    WhatIf,
    WhatIfResult,
)
from sumppump.messages.risk import (
    AccountKind,
    AccountState,
    AnalyseStrategy,
    CheckResult,
    GetAccountState,
    RecheckOrder,
    RecheckResult,
    RiskRejected,
    RiskRequest,
    StrategyAnalysed,
    StrikeSuggestions,
    SuggestStrikes,
)
from sumppump.risk_checks import (
    CONTRACTS,
    WhatIfAccepted,
    WhatIfOutcome,
    WhatIfRejected,
    WhatIfUnavailable,
    check_contracts,
    check_funds,
    check_market_open,
    check_max_loss,
    check_quotes,
    check_risk_share,
    check_shares,
    check_what_if,
    contracts_in,
    decide,
    shares_committed,
)
from sumppump.settings import Settings
from sumppump.strategies.analysis import (
    analyse_order,
)
from sumppump.strategies.builders import BuiltStrategy, build_strategy, require_level2
from sumppump.strategies.model import StrategyLeg, StrategyRefused
from sumppump.strategies.search import suggest
from sumppump.trading.account import account_kind
from sumppump.trading.prices import mid_last_or_close, strategy_legs
from sumppump.trading.strategy_orders import (
    chain_slice,
    data_type_of,
    leg_multiplier,
    order_max_loss,
    order_spec,
    quote_snapshot,
    quoted_legs,
)

__all__ = ["RiskActor"]

log = logging.getLogger(__name__)

#: Budget of a request when the caller set no deadline.
DEFAULT_BUDGET: Final = 25.0
#: Longest wait for IB's what-if (it is one round trip; a slow one is reported as not run).
WHAT_IF_TIMEOUT: Final = 5.0
#: Longest wait for the account values when (re)loading them.
ACCOUNT_TIMEOUT: Final = 5.0
#: Strikes each side of the spot fetched for a strike search (a 40-strike window).
SEARCH_STRIKES_EACH_SIDE: Final = 20


class _Outcome(Exception):
    """A downstream step answered with an outcome that ends the request (passed through)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(type(reply).__name__)
        self.reply = reply


@dataclass(slots=True)
class _Account:
    account_id: str = ""
    currency: str = "USD"
    net_liquidation: float | None = None
    available_funds: float | None = None
    buying_power: float | None = None
    positions: tuple[PositionInfo, ...] = ()
    committed: dict[str, int] = field(default_factory=dict)
    refreshed_at: int = 0
    stale: bool = True

    def shares_held(self, symbol: str) -> float | None:
        if not self.refreshed_at:
            return None
        return sum(p.quantity for p in self.positions if p.symbol == symbol and p.sec_type == "STK")


class RiskActor(Actor):
    """See the module docstring.

    ``simulated`` labels every answer SIMULATED (the simulator, ``serve --sim``); otherwise the
    account id says LIVE or PAPER. ``now`` is the clock for market hours and ``today`` the
    trading date for days to expiry (seams for the simulator's clock).
    """

    max_concurrency = 4

    def __init__(
        self,
        settings: Settings,
        *,
        connection: Ref,
        chain_cache: Ref,
        simulated: bool = False,
        now: Callable[[], dt.datetime] | None = None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        self._settings = settings
        self._connection = connection
        self._chain_cache = chain_cache
        self._simulated = simulated
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._today = today or (lambda: self._now().date())
        self._account = _Account()
        self._refreshing = anyio.Lock()

    # ------------------------------------------------------------------ lifecycle and events

    async def background(self) -> None:
        """Load the account once at start (TWS may not be connected yet: then ConnectionUp
        brings it)."""
        await self._refresh()

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, RiskRequest):
            return await self._dispatch(msg)
        match msg:
            case Ping():
                return Pong(actor="risk")
            case ConnectionUp() | FillReported():
                await self._refresh()
                return None
            case ConnectionDown():
                self._account.stale = True
                return None
            case _:
                return None

    async def _dispatch(self, msg: RiskRequest) -> Reply:
        try:
            match msg:
                case AnalyseStrategy():
                    return await self._analyse(msg)
                case SuggestStrikes():
                    return await self._suggest(msg)
                case RecheckOrder():
                    return await self._recheck(msg)
                case GetAccountState():
                    if msg.refresh or not self._account.refreshed_at:
                        await self._refresh()
                    return self._account_state()
                case _:
                    assert_never(msg)
        except _Outcome as outcome:
            return outcome.reply

    @property
    def _kind(self) -> AccountKind:
        return account_kind(self._account.account_id, simulated=self._simulated)

    # ------------------------------------------------------------------ account

    async def _call(self, ref: Ref, msg: object, cap: float = DEFAULT_BUDGET) -> Reply:
        """Call ``ref`` within the request's budget; a dead or silent callee is NotConnected."""
        timeout = max(0.1, min(cap, remaining_budget(DEFAULT_BUDGET) - 0.2))
        try:
            return await ref.call(msg, timeout=timeout)  # type: ignore[arg-type]
        except (ActorDown, CallTimeout) as exc:
            raise _Outcome(NotConnected(reason=f"{ref.name} is not available ({exc})")) from exc

    async def _refresh(self) -> bool:
        """Reload account values and positions; True when both arrived. Never raises."""
        async with self._refreshing:
            try:
                snapshot = await self._call(self._connection, FetchAccount(), ACCOUNT_TIMEOUT)
                positions = await self._call(self._connection, FetchPositions(), ACCOUNT_TIMEOUT)
            except _Outcome:
                self._account.stale = True
                return False
            if not isinstance(snapshot, AccountSnapshot) or not isinstance(positions, Positions):
                self._account.stale = True
                return False
            mine = tuple(
                p
                for p in positions.positions
                if not snapshot.account_id or p.account == snapshot.account_id
            )
            self._account = _Account(
                account_id=snapshot.account_id,
                currency=snapshot.currency,
                net_liquidation=snapshot.net_liquidation,
                available_funds=snapshot.available_funds,
                buying_power=snapshot.buying_power,
                positions=mine,
                committed=shares_committed(mine),
                refreshed_at=now_ns(),
                stale=False,
            )
            return True

    def _account_state(self) -> AccountState:
        a = self._account
        return AccountState(
            account_id=a.account_id,
            kind=self._kind,
            net_liquidation=a.net_liquidation,
            available_funds=a.available_funds,
            buying_power=a.buying_power,
            currency=a.currency,
            positions=a.positions,
            shares_committed_by_open_short_calls=dict(a.committed),
            refreshed_at=a.refreshed_at,
            stale=a.stale,
        )

    async def _fresh_account(self) -> _Account:
        """The account, reloaded (the connection answers from ib_async's live account
        subscription, without a TWS round trip); the last one when the reload fails but one was
        loaded; ``NotConnected`` (passed through) when none could be loaded at all."""
        await self._refresh()
        if not self._account.refreshed_at:
            raise _Outcome(NotConnected(reason="the account could not be loaded from TWS"))
        return self._account

    async def _epoch(self) -> int:
        state = await self._call(self._connection, GetConnectionState(), 2.0)
        if not isinstance(state, ConnectionState):
            raise _Outcome(state)
        if state.state != "connected":
            raise _Outcome(NotConnected(reason=f"TWS link is {state.state}"))
        return state.epoch

    # ------------------------------------------------------------------ analyse

    async def _analyse(self, msg: AnalyseStrategy) -> Reply:
        epoch = await self._epoch()
        account = await self._fresh_account()
        symbol = msg.symbol.strip().upper()
        held = int(account.shares_held(symbol) or 0)
        committed = account.committed.get(symbol, 0)
        try:
            built = self._build(msg, symbol, 100, held, committed)
            legs_reply = await self._leg_quotes(symbol, built.legs)
            multiplier = leg_multiplier(legs_reply)
            if multiplier != built.multiplier:
                built = self._build(msg, symbol, multiplier, held, committed)
            quoted, missing = quoted_legs(built, legs_reply, self._today())
            spot = mid_last_or_close(legs_reply.underlying)
            analysis = analyse_order(
                quoted,
                built.quantity,
                msg.limit_price,
                underlying_price=spot,
                held_shares=built.held_shares_included,
                today=self._today(),
            )
            require_level2(built, analysis.limit_price)
        except StrategyRefused as refused:
            return RiskRejected(
                code=refused.code,
                message=refused.message,
                hint=refused.hint,
                level_needed=refused.level_needed,
                account_kind=self._kind,
            )
        try:
            order = order_spec(built, legs_reply, analysis, account.account_id)
        except ValueError as exc:
            return RiskRejected(
                code="NO_MARKET_DATA",
                message=str(exc),
                hint="retry when the underlying is quoting",
                analysis=analysis,
                account_kind=self._kind,
            )
        what_if, result = await self._what_if(order)
        data_type = data_type_of(legs_reply)
        checks = self._order_checks(
            symbol=symbol,
            legs=built.legs,
            quantity=built.quantity,
            max_loss=order_max_loss(analysis),
            debit=analysis.net_debit_total,
            commission=(
                result.commission
                if result is not None and result.commission is not None
                else analysis.commission.total
            ),
            shares_used=built.coverage.held_shares_used,
            what_if=what_if,
            stock=legs_reply.stock,
            data_type=data_type,
            missing=missing,
        )
        verdict = decide(checks, self._kind)
        if not verdict.ok:
            assert verdict.code is not None
            return RiskRejected(
                code=verdict.code,
                message=verdict.message,
                hint=verdict.hint,
                checks=checks,
                analysis=analysis,
                account_kind=self._kind,
            )
        return StrategyAnalysed(
            analysis=analysis,
            order=order,
            checks=checks,
            warnings=(*analysis.warnings, *verdict.warnings),
            account_id=account.account_id,
            account_kind=self._kind,
            quote_snapshot=quote_snapshot(built, legs_reply),
            epoch=epoch,
            data_type=data_type,
            notes=built.notes,
            what_if_init_margin_change=result.init_margin_change if result else None,
            what_if_commission=result.commission if result else None,
            switched_from=legs_reply.switched_from,
            order_max_loss=order_max_loss(analysis),
            shares_held_used=built.coverage.held_shares_used,
            stock=legs_reply.stock,
        )

    def _build(
        self, msg: AnalyseStrategy, symbol: str, multiplier: int, held: int, committed: int
    ) -> BuiltStrategy:
        return build_strategy(
            symbol=symbol,
            strategy=msg.strategy,
            expiry=msg.expiry,
            strikes=list(msg.strikes),
            quantity=msg.quantity,
            multiplier=multiplier,
            shares_held=held,
            shares_committed=committed,
            legs=list(msg.legs) if msg.legs is not None else None,
        )

    async def _leg_quotes(self, symbol: str, legs: Sequence[StrategyLeg]) -> LegQuotes:
        keys = tuple(
            LegKey(expiry=leg.expiry, strike=leg.strike, right=leg.right)  # type: ignore[arg-type]
            for leg in legs
            if leg.is_option
        )
        reply = await self._call(self._chain_cache, GetLegQuotes(symbol=symbol, legs=keys))
        if not isinstance(reply, LegQuotes):
            raise _Outcome(reply)
        if reply.missing:
            listed = ", ".join(f"{k.right} {k.strike:g} {k.expiry}" for k in reply.missing)
            raise StrategyRefused(
                "INVALID_ARGUMENT",
                f"not listed: {listed}",
                "choose strikes from get_options_chain",
            )
        return reply

    async def _what_if(self, order: OrderSpec) -> tuple[WhatIfOutcome, WhatIfResult | None]:
        try:
            reply = await self._call(self._connection, WhatIf(spec=order), WHAT_IF_TIMEOUT)
        except _Outcome as outcome:
            return WhatIfUnavailable(type(outcome.reply).__name__), None
        match reply:
            case WhatIfResult():
                return WhatIfAccepted(reply.init_margin_change, reply.commission), reply
            case OrderRejected(code=code, message=message):
                return WhatIfRejected(code, message), None
            case _:
                detail = getattr(reply, "message", "") or getattr(reply, "reason", "")
                return WhatIfUnavailable(f"{type(reply).__name__} {detail}".strip()), None

    def _order_checks(
        self,
        *,
        symbol: str,
        legs: Sequence[StrategyLeg],
        quantity: int,
        max_loss: float | None,
        debit: float,
        commission: float,
        shares_used: int,
        what_if: WhatIfOutcome,
        stock: StockContract | None,
        data_type: DataType | None,
        missing: Sequence[str],
        with_quotes: bool = True,
    ) -> tuple[CheckResult, ...]:
        a = self._account
        checks = [
            check_funds(a.available_funds, debit, commission),
            check_risk_share(max_loss, a.net_liquidation, self._settings.max_risk_pct),
            check_max_loss(max_loss, self._settings.max_loss),
            check_contracts(contracts_in(legs, quantity), self._settings.max_contracts),
            check_shares(symbol, shares_used, a.shares_held(symbol), a.committed.get(symbol, 0)),
            check_what_if(what_if, a.available_funds),
            check_market_open(
                stock.liquid_hours if stock else "",
                stock.trading_hours if stock else "",
                stock.time_zone if stock else "",
                self._now(),
            ),
        ]
        if with_quotes:
            checks.append(check_quotes(data_type, missing))
        return tuple(checks)

    # ------------------------------------------------------------------ suggest

    async def _suggest(self, msg: SuggestStrikes) -> Reply:
        reply = await self._call(
            self._chain_cache,
            GetChain(
                symbol=msg.symbol,
                expiry=msg.expiry,
                strikes_each_side=SEARCH_STRIKES_EACH_SIDE,
                right="both",
            ),
        )
        if not isinstance(reply, Chain):
            raise _Outcome(reply)
        spot = mid_last_or_close(reply.underlying)
        if spot is None:
            return RiskRejected(
                code="NO_MARKET_DATA",
                message=f"no price for {reply.symbol}",
                hint="retry when the market is quoting",
            )
        try:
            chain = chain_slice(reply, spot, self._today())
            candidates = suggest(
                chain,
                msg.outlook,
                target_price=msg.target_price,
                max_debit=msg.max_debit,
                limit=msg.limit,
            )
        except StrategyRefused as refused:
            return RiskRejected(code=refused.code, message=refused.message, hint=refused.hint)
        notes = []
        if reply.partial:
            notes.append(f"partial chain: {reply.partial_reason}")
        return StrikeSuggestions(
            symbol=reply.symbol,
            expiry=reply.expiry,
            outlook=msg.outlook,
            spot=spot,
            candidates=candidates,
            data_type=reply.data_type,
            partial=reply.partial,
            notes=tuple(notes),
            switched_from=reply.switched_from,
        )

    # ------------------------------------------------------------------ re-check

    async def _recheck(self, msg: RecheckOrder) -> Reply:
        await self._epoch()
        await self._refresh()
        if not self._account.refreshed_at:
            raise _Outcome(NotConnected(reason="the account could not be loaded from TWS"))
        order = msg.order
        stock: StockContract | None = None
        if msg.liquid_hours or msg.trading_hours:
            stock = StockContract(
                con_id=0,
                symbol=order.symbol,
                liquid_hours=msg.liquid_hours,
                trading_hours=msg.trading_hours,
                time_zone=msg.time_zone,
            )
        else:
            resolved = await self._call(self._connection, ResolveStock(symbol=order.symbol))
            if isinstance(resolved, StockResolved):
                stock = resolved.contract
        what_if, _result = await self._what_if(order)
        legs = strategy_legs(order.legs)
        checks = self._order_checks(
            symbol=order.symbol,
            legs=legs,
            quantity=order.quantity,
            max_loss=msg.max_loss,
            debit=msg.debit,
            commission=msg.commission,
            shares_used=msg.shares_held_used,
            what_if=what_if,
            stock=stock,
            data_type=None,
            missing=(),
            with_quotes=False,
        )
        if msg.reduces_exposure:
            checks = tuple(
                _passed_as_closing(c) if c.name == CONTRACTS and c.status == "failed" else c
                for c in checks
            )
        verdict = decide(checks, self._kind)
        return RecheckResult(
            checks=checks,
            ok=verdict.ok,
            code=verdict.code,
            message=verdict.message,
            account_kind=self._kind,
        )


# ---------------------------------------------------------------------- pure helpers


def _passed_as_closing(check: CheckResult) -> CheckResult:
    return msgspec.structs.replace(
        check, status="passed", detail=f"{check.detail}; the order only closes what is held"
    )
