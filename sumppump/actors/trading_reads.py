"""What the execution actor reads from the other actors before it decides: the connection
state, positions and working orders (connection), quotes (chain cache), a roll's analysis and
the risk re-check (risk). Each read has a deadline taken from the caller's and answers a value
or an :class:`ExecutionRefused` (fail closed), never raises.

The split of the execute path's deadline (``ExecutePreview`` asks for at least 15 s) is a
design decision, named here: the fresh quotes leave :data:`QUOTES_LEAVE_S` for the re-check and
the placement, the re-check leaves :data:`RISK_LEAVES_S` for the placement (the order desk waits
up to 5 s for TWS's acknowledgement).
"""

from __future__ import annotations

from typing import Final

from sumppump.actors.runtime import ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.messages.chain_cache import GetLegQuotes, LegKey, LegQuotes
from sumppump.messages.common import NotConnected, Quote
from sumppump.messages.connection import (
    ConnectionState,
    FetchPositions,
    GetConnectionState,
    PositionInfo,
    Positions,
)
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import ExecutionRefused
from sumppump.messages.orders import FetchOrderBook, OrderBook
from sumppump.messages.risk import (
    AnalyseStrategy,
    RecheckOrder,
    RecheckResult,
    RiskRejected,
    StrategyAnalysed,
)
from sumppump.trading.changes import RollTarget, roll_strategy
from sumppump.trading.gate import Hours, RiskVerdict, leg_quotes
from sumppump.trading.previews import Preview
from sumppump.trading.prices import option_leg_keys, price_multiplier
from sumppump.trading.refusals import not_connected, refused

__all__ = ["QUOTES_LEAVE_S", "RISK_LEAVES_S", "TradingReads", "risk_via_actor"]

QUOTES_LEAVE_S: Final = 8.0
RISK_LEAVES_S: Final = 6.0


class TradingReads:
    """The reads of one execution incarnation (its Refs); ``chain_cache``/``risk`` may be
    absent in a set-up fault, which every read then refuses."""

    def __init__(self, connection: Ref, chain_cache: Ref | None, risk: Ref | None) -> None:
        self.connection = connection
        self._chain_cache = chain_cache
        self._risk = risk

    async def connection_state(self) -> ConnectionState | str:
        """The connection's state, or why it is not known."""
        try:
            reply = await self.connection.call(
                GetConnectionState(), timeout=min(2.0, remaining_budget(2.0))
            )
        except (ActorDown, CallTimeout) as exc:
            return f"the connection actor is not available ({exc})"
        return reply if isinstance(reply, ConnectionState) else type(reply).__name__

    async def positions(self, symbol: str) -> tuple[int, list[PositionInfo]] | ExecutionRefused:
        """The connection epoch and the positions held in ``symbol``."""
        state = await self.connection_state()
        if isinstance(state, str) or state.state != "connected":
            return not_connected(state if isinstance(state, str) else state.last_error)
        try:
            reply = await self.connection.call(
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

    async def order_book(self) -> OrderBook | None:
        """TWS's working orders (None when unavailable: stops are then planned from the
        ledger, and the preview says the check of foreign orders did not run)."""
        try:
            reply = await self.connection.call(
                FetchOrderBook(), timeout=max(0.5, min(5.0, remaining_budget(5.0) - 1.0))
            )
        except (ActorDown, CallTimeout):
            return None
        return reply if isinstance(reply, OrderBook) else None

    async def quotes(
        self, symbol: str, keys: tuple[LegKey, ...]
    ) -> tuple[Quote, ...] | ExecutionRefused:
        """One quote per leg plus the underlying, for a preview being prepared."""
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
        return leg_quotes(reply)

    async def fresh_quotes(self, preview: Preview) -> object:
        """The chain cache's answer for the legs of ``preview`` at execute time (for
        :func:`~sumppump.trading.gate.check_market`: any reply, or a ``str`` saying why there
        is none), or an :class:`ExecutionRefused` when no quote source is wired."""
        if self._chain_cache is None:
            return refused(
                ErrorCode.NO_MARKET_DATA,
                "no quote source is wired; the price check cannot run",
                "this is a set-up error; nothing was sent",
                reason="no_quote_source",
                order_ref=preview.preview_id,
            )
        try:
            return await self._chain_cache.call(
                GetLegQuotes(symbol=preview.symbol, legs=option_leg_keys(preview.order.legs)),
                timeout=max(0.5, min(10.0, remaining_budget(10.0) - QUOTES_LEAVE_S)),
            )
        except (ActorDown, CallTimeout) as exc:
            return str(exc)

    async def recheck(self, preview: Preview, hours: Hours) -> RiskVerdict:
        """The risk re-check at execute time (:func:`risk_via_actor`)."""
        budget = max(0.5, min(5.0, remaining_budget(11.0) - RISK_LEAVES_S))
        return await risk_via_actor(self._risk, preview, budget, hours)

    async def analyse(self, target: RollTarget) -> StrategyAnalysed | ExecutionRefused:
        """The new structure of a roll, analysed by risk like ``calculate_strategy``."""
        if self._risk is None:
            return refused(
                ErrorCode.SERVICE_UNAVAILABLE, "the risk actor is not wired", "restart sumppump"
            )
        request = AnalyseStrategy(
            symbol=target.symbol,
            strategy=roll_strategy(target.structure.name),
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


async def risk_via_actor(
    risk: Ref | None, preview: Preview, budget: float, hours: Hours = ("", "", "")
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
