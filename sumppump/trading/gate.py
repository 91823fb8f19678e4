"""The execute gate (pure): the refusal ladder of :class:`ExecutePreview` as synchronous rungs.

The order, codes and reasons are those tabled in :mod:`sumppump.messages.execution`; the first
failing rung answers. The execution actor runs them between its awaits:

1. :func:`admit`: approval setting → unknown / finished id → integrity → confirm text →
   approval gate → circuit breaker → reconciling;
2. (await the connection state) :func:`check_connection`: not connected → reconciling for this
   epoch → epoch changed;
3. (await fresh quotes) :func:`check_market`: quotes unavailable → market closed → no mid →
   :class:`PriceMoved` (the actor makes the fresh preview, then :func:`price_moved`) → stop
   crossed; passes with the stock's trading hours;
4. (await the risk re-check) :func:`risk_refusal`.

Rungs that finish a preview (integrity, epoch changed, stop crossed, risk refused) retire it in
the store they are given: the store is pure and synchronous, so this is a decision too.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from sumppump.messages.chain_cache import LegQuotes
from sumppump.messages.common import NoMarketData, NotConnected, Quote
from sumppump.messages.connection import ConnectionState
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import ApprovalContext, ExecutionRefused, PreviewCreated
from sumppump.trading.breaker import CircuitBreaker
from sumppump.trading.confirm import confirm_matches
from sumppump.trading.previews import Preview, PreviewStore
from sumppump.trading.prices import mid_or_last, slippage_allowance, structure_mid
from sumppump.trading.refusals import refused, tombstone_refusal

__all__ = [
    "Hours",
    "PriceMoved",
    "RiskVerdict",
    "admit",
    "approval_refusal",
    "busy",
    "check_connection",
    "check_market",
    "price_moved",
    "risk_refusal",
    "unknown_mode",
]

#: The stock's (liquid_hours, trading_hours, time_zone) from the fresh quote.
Hours = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The risk re-check's answer: ``ok``, the checks that ran (``"name: outcome"``), and the
    error code to answer with when not ok (RISK_LIMIT, INSUFFICIENT_FUNDS, MARKET_CLOSED, …)."""

    ok: bool
    checks: tuple[str, ...] = ()
    code: ErrorCode = ErrorCode.RISK_LIMIT
    message: str = ""


@dataclass(frozen=True, slots=True)
class PriceMoved:
    """The mid moved beyond the allowance: make a fresh preview at ``now_mid`` from
    ``quotes``, then answer :func:`price_moved`."""

    now_mid: float
    allowance: float
    quotes: tuple[Quote, ...]


def unknown_mode(setting: str, pid: str) -> ExecutionRefused:
    return refused(
        ErrorCode.APPROVAL_REQUIRED,
        f"SUMPPUMP_APPROVAL={setting!r} is not a known approval mode; every order is refused",
        "set SUMPPUMP_APPROVAL to client, elicit, tws or app and restart",
        reason="unknown_approval_mode",
        order_ref=pid,
    )


def busy(pid: str) -> ExecutionRefused:
    """Reconciliation for the current connection has not finished: nothing is queued."""
    return refused(
        ErrorCode.NOT_CONNECTED,
        "execution is reconciling its orders with TWS after a (re)connect",
        "retry in a moment; nothing was sent",
        reason="reconciling",
        order_ref=pid,
        retry_after=1.0,
    )


def admit(
    pid: str,
    confirm_text: str,
    approval: ApprovalContext,
    *,
    mode: str | None,
    setting: str,
    store: PreviewStore,
    breaker: CircuitBreaker,
    ready: bool,
    used_outcome: str = "",
) -> Preview | ExecutionRefused:
    """The rungs that need no I/O, in the table's order. ``mode`` is the recognised approval
    mode (``None``: ``setting`` is not one); ``ready``: the journal is loaded and no gating
    reconciliation runs; ``used_outcome``: what became of the order, for a used id."""
    if mode is None:
        return unknown_mode(setting, pid)
    found = store.lookup(pid)
    if not isinstance(found, Preview):
        return tombstone_refusal(pid, found, outcome=used_outcome)
    if not found.intact():
        store.retire(pid, "evicted", "integrity check failed")
        return refused(
            ErrorCode.PREVIEW_UNKNOWN,
            "the stored preview failed its integrity check and was discarded",
            "make a fresh preview",
            reason="integrity",
            order_ref=pid,
        )
    if not confirm_matches(found.confirm_text, confirm_text):
        return refused(
            ErrorCode.CONFIRM_MISMATCH,
            "confirm_text does not match the preview's text",
            f"send exactly: {found.confirm_text}",
            reason="mismatch",
            order_ref=pid,
        )
    gate = approval_refusal(mode, approval, pid)
    if gate is not None:
        return gate
    refusal = breaker_refusal(breaker, pid)
    if refusal is not None:
        return refusal
    if not ready:
        return busy(pid)
    return found


def breaker_refusal(breaker: CircuitBreaker, pid: str) -> ExecutionRefused | None:
    """The refusal while the circuit breaker is open (``reason="breaker_open"``)."""
    if not breaker.open:
        return None
    return refused(
        ErrorCode.ORDER_REJECTED,
        f"the circuit breaker is open after {breaker.consecutive} consecutive "
        f"rejections (last: {breaker.last_rejection})",
        "check the rejections in TWS, then reset the breaker or restart sumppump",
        reason="breaker_open",
        order_ref=pid,
    )


def connection_refusal(
    pid: str, state: ConnectionState | str, reconciled_epoch: int | None
) -> ExecutionRefused | None:
    """Not connected (``reason="not_connected"``), or not reconciled for this epoch yet."""
    if not isinstance(state, ConnectionState) or state.state != "connected":
        why = state.last_error if isinstance(state, ConnectionState) else str(state)
        return refused(
            ErrorCode.NOT_CONNECTED,
            f"not connected to TWS: {why}".rstrip(": "),
            "start TWS (or wait for the reconnect), then execute again",
            reason="not_connected",
            order_ref=pid,
        )
    return busy(pid) if state.epoch != reconciled_epoch else None


def approval_refusal(mode: str, ctx: ApprovalContext, pid: str) -> ExecutionRefused | None:
    """The approval gate: the tool layer's mode must be execution's; ``elicit`` needs the
    elicitation, ``app`` the order ticket's Confirm (fail closed without a UI)."""
    if ctx.mode.strip().lower() != mode:
        return refused(
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
        return refused(
            ErrorCode.APPROVAL_REQUIRED,
            f"SUMPPUMP_APPROVAL=elicit: {detail}",
            "use a client that supports MCP elicitation, or choose approval mode tws",
            reason="elicitation_required",
            order_ref=pid,
        )
    if mode == "app" and ctx.approved_via != "ticket":
        if not ctx.client_has_ui:
            # Fail closed: without the UI extension no ticket can be shown at all.
            return refused(
                ErrorCode.APPROVAL_REQUIRED,
                "SUMPPUMP_APPROVAL=app, but this MCP client declared no UI extension "
                "(io.modelcontextprotocol/ui), so it cannot show the order ticket",
                "nothing was sent; use a client that renders MCP Apps (Claude Desktop), "
                "or choose approval mode tws or client",
                reason="ticket_required",
                order_ref=pid,
            )
        return refused(
            ErrorCode.APPROVAL_REQUIRED,
            "SUMPPUMP_APPROVAL=app: only the order ticket's Confirm button places orders",
            "press Confirm in the order ticket shown with the preview; nothing was sent",
            reason="ticket_required",
            order_ref=pid,
        )
    return None


def check_connection(
    preview: Preview,
    state: ConnectionState | str,
    *,
    reconciled_epoch: int | None,
    store: PreviewStore,
) -> ExecutionRefused | None:
    """Connected, reconciled for this epoch (``reason="reconciling"``: the actor wakes its
    reconciliation), and the preview's epoch is the current one (else it is retired)."""
    pid = preview.preview_id
    refusal = connection_refusal(pid, state, reconciled_epoch)
    if refusal is not None or not isinstance(state, ConnectionState):
        return refusal
    if state.epoch != preview.terms.epoch:
        store.retire(pid, "epoch_changed")
        return tombstone_refusal(pid, store.lookup(pid))
    return None


def check_market(
    preview: Preview,
    reply: object,
    *,
    max_slippage: float,
    store: PreviewStore,
) -> Hours | PriceMoved | ExecutionRefused:
    """Judge the fresh quotes (``reply``: the chain cache's answer, or a ``str`` saying why
    there is none): the slippage check for limit orders, the side check for single stops,
    market hours. Passes with the stock's hours for the risk re-check."""
    pid = preview.preview_id
    if isinstance(reply, str):
        return refused(
            ErrorCode.NO_MARKET_DATA,
            f"fresh quotes are not available ({reply})",
            "try again; nothing was sent",
            reason="quotes_unavailable",
            order_ref=pid,
        )
    if not isinstance(reply, LegQuotes):
        code = (
            ErrorCode.NOT_CONNECTED if isinstance(reply, NotConnected) else ErrorCode.NO_MARKET_DATA
        )
        detail = reply.reason if isinstance(reply, NotConnected) else type(reply).__name__
        if isinstance(reply, NoMarketData):
            detail = reply.message
        return refused(
            code,
            f"fresh quotes are not available: {detail}",
            "try again; nothing was sent",
            reason="quotes_unavailable",
            order_ref=pid,
        )
    if reply.switched_from is not None:
        store.retire(pid, "voided", f"the session was on {reply.switched_from}")
        return tombstone_refusal(pid, store.lookup(pid))
    order = preview.order
    if reply.market_open is False and not order.outside_rth:
        return refused(
            ErrorCode.MARKET_CLOSED,
            f"the market for {preview.symbol} is closed",
            "execute during regular trading hours (the preview may need renewing)",
            reason="market_closed",
            order_ref=pid,
        )
    quotes = leg_quotes(reply)
    if order.order_type == "LMT" and preview.snapshot_mid is not None:
        now_mid = structure_mid(order, quotes)
        if now_mid is None:
            return refused(
                ErrorCode.NO_MARKET_DATA,
                "there is no two-sided quote for every leg now; the price check cannot run",
                "try again when the market is quoting; nothing was sent",
                reason="no_mid",
                order_ref=pid,
            )
        terms = preview.terms
        reference = order.limit_price if order.limit_price is not None else terms.net_debit
        allowance = slippage_allowance(reference, max_slippage, terms.min_tick)
        if abs(now_mid - preview.snapshot_mid) > allowance + 1e-9:
            return PriceMoved(now_mid=now_mid, allowance=allowance, quotes=quotes)
    if order.order_type in ("STP", "STP LMT") and len(order.legs) == 1:
        leg = order.legs[0]
        price = mid_or_last(next((q for q in quotes if q.con_id == leg.con_id), None))
        stop = order.stop_price or 0.0
        if price is not None and (
            (leg.action == "SELL" and stop >= price) or (leg.action == "BUY" and stop <= price)
        ):
            store.retire(pid, "superseded", "the market crossed the stop")
            return refused(
                ErrorCode.PRICE_MOVED,
                f"the market ({price:g}) is already through the stop {stop:g}; "
                "the stop would trigger at once",
                "choose another stop price with set_stop_loss",
                reason="stop_crossed",
                order_ref=pid,
            )
    stock = reply.stock
    return (stock.liquid_hours, stock.trading_hours, stock.time_zone)


def leg_quotes(reply: LegQuotes) -> tuple[Quote, ...]:
    """The chain cache's answer as one quote per leg plus the underlying (by its conId)."""
    quotes = [leg.quote for leg in reply.legs if leg.quote is not None]
    quotes.append(msgspec.structs.replace(reply.underlying, con_id=reply.stock.con_id))
    return tuple(quotes)


def price_moved(
    preview: Preview, moved: PriceMoved, fresh: PreviewCreated | None
) -> ExecutionRefused:
    """``PRICE_MOVED`` with the fresh preview (the old one is superseded)."""
    return refused(
        ErrorCode.PRICE_MOVED,
        f"the mid moved from {preview.snapshot_mid:g} to {moved.now_mid:g} "
        f"(more than the allowed {moved.allowance:g})",
        "read the fresh preview; confirm it if you still want the trade",
        reason="superseded",
        order_ref=preview.preview_id,
        fresh=fresh,
    )


def risk_refusal(
    preview: Preview, verdict: RiskVerdict, store: PreviewStore
) -> ExecutionRefused | None:
    """The risk re-check's refusal (the preview is used up), or ``None`` when it passed."""
    if verdict.ok:
        return None
    pid = preview.preview_id
    store.retire(pid, "risk_refused", verdict.message)
    return refused(
        verdict.code,
        verdict.message or "the risk checks refused this order",
        "make a new preview within the limits",
        reason="risk_refused",
        order_ref=pid,
        checks=verdict.checks,
    )
