"""``get_portfolio``: the book as structures with P&L, risk, dollar greeks, stops and the
expiry watch (DESIGN.md §7).

Gathers from the connection actor what TWS reports (positions, account, open orders, fresh
quotes with model greeks for every held contract and each underlying) and hands it to the pure
cores :mod:`sumppump.trading.portfolio` and :mod:`sumppump.trading.expiry_watch`; the answer
is rendered by :mod:`sumppump.rendering.portfolio`.

Quotes are asked of the connection actor (``FetchQuotes``) in one request for every held
contract and underlying: a read of the whole book changes nothing in the session.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import anyio
from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult

from sumppump.messages.common import Quote
from sumppump.messages.connection import (
    AccountSnapshot,
    FetchAccount,
    FetchOpenOrders,
    FetchPositions,
    FetchQuotes,
    OpenOrders,
    PositionInfo,
    Positions,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.orders import FetchOrderBook, OrderBook
from sumppump.rendering import portfolio as render
from sumppump.rendering.portfolio import PortfolioResult, expiry_status_line, portfolio_result
from sumppump.tools.common import Failure, expect, ok, read_tool, result_schema, tool_body
from sumppump.trading.expiry_watch import Dividend, ExpiryWatch, watch_expiries
from sumppump.trading.portfolio import STOP_TYPES, WorkingOrder, value_portfolio

if TYPE_CHECKING:
    from sumppump.mcp_server import Service

__all__ = ["expiry_status", "gather_book", "occ_symbol", "register"]

NEW_YORK = ZoneInfo("America/New_York")
#: Seconds ``get_status`` gives the expiry watch before saying it is not available.
STATUS_DEADLINE = 10.0


def occ_symbol(p: PositionInfo) -> str:
    """The OCC (OSI) symbol IB uses as a US equity option's localSymbol:
    ``AAPL  261218C00200000`` (root padded to 6, YYMMDD, right, strike × 1000 on 8 digits)."""
    expiry = (p.expiry or "").replace("-", "")
    return f"{p.symbol:<6}{expiry[2:]}{p.right}{round((p.strike or 0.0) * 1000):08d}"


def _dividend(quote: Quote | None) -> Dividend | None:
    """The next dividend IB gave for an underlying (generic tick 456), if any."""
    if quote is None or quote.dividend_ex_date is None or quote.dividend_amount is None:
        return None
    return Dividend(ex_date=quote.dividend_ex_date, amount=quote.dividend_amount)


def _today(service: Service) -> dt.date:
    now = service.now() if service.now is not None else dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(NEW_YORK).date()


def _spot(quote: Quote | None, stock: PositionInfo | None) -> float | None:
    if quote is not None and quote.mid is not None:
        return quote.mid
    if quote is not None and quote.last is not None and quote.last > 0:
        return quote.last
    if stock is not None and stock.market_price:
        return stock.market_price
    return None


def _working_orders(
    book: OrderBook | None, listed: OpenOrders, held: list[PositionInfo]
) -> tuple[tuple[WorkingOrder, ...], int]:
    """Open orders with the contracts they trade, and how many stop orders could not be tied
    to a contract.

    A combo's contracts are its legs. A single-leg order is known only by its description
    (IB's localSymbol, else the ticker): an OCC symbol names one option; a bare ticker names
    the shares only when no option of that symbol is held, because ib_async keeps the
    contract an order was placed with (by conId, without localSymbol), so one of our option
    orders is described by its ticker too. Anything else stays untied, never guessed."""
    by_local = {occ_symbol(p): p.con_id for p in held if p.sec_type == "OPT"}
    optioned = {p.symbol for p in held if p.sec_type == "OPT"}
    for p in held:
        if p.sec_type != "OPT" and p.symbol not in optioned:
            by_local[p.symbol] = p.con_id
    described = {o.order_id: o.description for o in listed.orders}
    orders = []
    untied = 0
    for rec in book.open if book is not None else ():
        con_ids = rec.leg_con_ids
        if not con_ids:
            con_id = by_local.get(described.get(rec.order_id, ""))
            con_ids = (con_id,) if con_id is not None else ()
        if not con_ids:
            untied += rec.order_type in STOP_TYPES
            continue
        orders.append(
            WorkingOrder(
                order_ref=rec.order_ref,
                order_type=rec.order_type,
                action=rec.action,
                quantity=rec.quantity,
                status=rec.status,
                con_ids=con_ids,
                stop_price=rec.stop_price,
                limit_price=rec.limit_price,
            )
        )
    return tuple(orders), untied


async def gather_book(service: Service) -> tuple[PortfolioResult, ExpiryWatch]:
    """Ask TWS (through the connection actor) for everything the book needs and value it.

    Raises the tool failures of :meth:`Service.ask` (not connected, pacing, …)."""
    await service.connection_state()
    positions = expect(await service.ask("connection", FetchPositions()), Positions)
    account = expect(await service.ask("connection", FetchAccount()), AccountSnapshot)
    listed = expect(await service.ask("connection", FetchOpenOrders()), OpenOrders)
    notes: list[str] = []
    reply = await service.ask("connection", FetchOrderBook())
    book = reply if isinstance(reply, OrderBook) else None
    if book is None:
        notes.append("open orders' contracts unavailable: stops not matched")
    held = [p for p in positions.positions if abs(p.quantity) > 1e-9]
    stocks = {p.symbol: p for p in held if p.sec_type != "OPT"}
    targets = [
        QuoteTarget(
            con_id=p.con_id, symbol=p.symbol, sec_type="OPT" if p.sec_type == "OPT" else "STK"
        )
        for p in held
    ]
    underlying: dict[str, int] = {s: p.con_id for s, p in stocks.items()}
    for symbol in sorted({p.symbol for p in held} - set(stocks)):
        resolved = expect(
            await service.ask("connection", ResolveStock(symbol=symbol)), StockResolved
        )
        underlying[symbol] = resolved.contract.con_id
        targets.append(QuoteTarget(con_id=resolved.contract.con_id, symbol=symbol, sec_type="STK"))
    quotes: dict[int, Quote] = {}
    # Underlyings are asked with IB's generic tick 456 (their next dividend, for the
    # early-assignment check); options without it.
    for wanted, ticks in (("STK", "456"), ("OPT", "")):
        batch = tuple(t for t in targets if (t.sec_type == "OPT") == (wanted == "OPT"))
        if not batch:
            continue
        got = expect(
            await service.ask("connection", FetchQuotes(targets=batch, generic_ticks=ticks)),
            Quotes,
        )
        quotes.update((q.con_id, q) for q in got.quotes)
        if got.missing:
            notes.append(f"{len(got.missing)} quotes did not arrive in time")
        notes.extend(got.notices)
    orders, untied = _working_orders(book, listed, held)
    if untied:
        notes.append(
            f"{untied} stop order(s) could not be tied to a position (TWS did not say which "
            "contract they trade); see get_open_orders"
        )
    spots = {s: _spot(quotes.get(cid), stocks.get(s)) for s, cid in underlying.items()}
    today = _today(service)
    portfolio = value_portfolio(
        held,
        quotes=quotes,
        spots=spots,
        orders=orders,
        account=account,
        today=today,
    )
    watch = watch_expiries(
        held,
        quotes=quotes,
        spots=spots,
        available_funds=account.available_funds,
        today=today,
        dividends={s: _dividend(quotes.get(cid)) for s, cid in underlying.items()},
    )
    return portfolio_result(portfolio, watch, tuple(notes)), watch


async def expiry_status(service: Service, deadline: float = STATUS_DEADLINE) -> str:
    """The expiry watch as one line for ``get_status``: reads the whole book (positions,
    account, orders, one quote per held contract), so it costs what ``get_portfolio`` costs.
    Any failure, or no answer within ``deadline`` seconds, is said in the line, never raised
    (cancellation from outside propagates)."""
    with anyio.move_on_after(deadline):
        try:
            _result, watch = await gather_book(service)
        except Failure as failure:
            return f"Expiry watch: not available ({failure.error.code}: {failure.error.message})."
        return expiry_status_line(watch)
    return f"Expiry watch: not available (no answer within {deadline:g}s)."


def register(app: FastMCP[Any], service: Service) -> None:
    """Add ``get_portfolio`` to ``app``."""

    @app.tool(
        annotations=read_tool("Portfolio: structures, P&L, greeks, stops, expiry watch"),
        output_schema=result_schema("structures", "totals", "watch"),
    )
    @tool_body
    async def get_portfolio() -> ToolResult:
        """Holdings as structures: entry, mark, P&L, max loss at risk, dollar greeks, days
        to expiry, breakevens, stop; totals; expiry and assignment warnings."""
        result, _watch = await gather_book(service)
        return ok(service, render.portfolio(result))
