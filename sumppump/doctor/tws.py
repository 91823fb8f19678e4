"""The doctor's checks through a real TWS API connection: handshake, account and market data
(the options permission probe is :mod:`sumppump.doctor.options`).

Only the connection actor talks to TWS (ib_async is not imported here); the doctor starts the
project's rate limiter and connection actor and uses their messages like every other actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Final

import anyio

from sumppump.actors.connection import ConnectionActor, ReconnectPolicy
from sumppump.actors.rate_limiter import RateLimiter
from sumppump.actors.runtime import Ref, start_actor
from sumppump.doctor.calls import call_actor, unexpected
from sumppump.doctor.options import check_options
from sumppump.doctor.results import (
    ACCOUNT,
    FIX_HANDSHAKE,
    HANDSHAKE,
    MARKET_DATA,
    OPTIONS,
    CheckResult,
    Report,
)
from sumppump.messages.common import NoMarketData, Quote, StockContract
from sumppump.messages.connection import (
    ConnectionState,
    FetchQuotes,
    GetConnectionState,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.settings import Settings
from sumppump.trading.account import is_paper

__all__ = ["DOCTOR_RECONNECT", "doctor_connection", "tws_checks"]

DOCTOR_RECONNECT: Final = ReconnectPolicy(first=0.2, cap=1.0, jitter=0.0, client_id_clash_wait=0.2)


@contextlib.asynccontextmanager
async def doctor_connection(settings: Settings) -> AsyncIterator[Ref]:
    """The project's rate limiter and connection actor for ``settings``' TWS (connecting in the
    background); both stop when the block ends, cancellation included."""
    async with (
        start_actor(
            lambda: RateLimiter(
                message_rate=settings.message_rate, lines_budget=settings.market_data_lines
            ),
            name="doctor.rate_limiter",
        ) as limiter,
        start_actor(
            lambda: ConnectionActor(settings, rate_limiter=limiter, policy=DOCTOR_RECONNECT),
            name="doctor.connection",
        ) as connection,
    ):
        yield connection


async def tws_checks(
    settings: Settings,
    symbol: str,
    today: date,
    timeout: float,
    what_if_timeout: float,
    add: Report,
) -> None:
    async with doctor_connection(settings) as connection:
        handshake, state = await _check_handshake(settings, connection, timeout)
        add(handshake)
        if state is None:
            for name in (ACCOUNT, MARKET_DATA, OPTIONS):
                add(CheckResult(name, "SKIP", "needs the API handshake"))
            return
        add(_check_account(state.accounts))
        market, stock, price = await _check_market_data(connection, symbol)
        add(market)
        if stock is None or not state.accounts:
            why = f"could not resolve {symbol}" if stock is None else "TWS reported no account"
            add(CheckResult(OPTIONS, "WARN", f"could not run: {why}"))
            return
        add(
            await check_options(connection, stock, price, state.accounts[0], today, what_if_timeout)
        )


async def _check_handshake(
    settings: Settings, connection: Ref, timeout: float
) -> tuple[CheckResult, ConnectionState | None]:
    """Wait for ``connected``; stop early on a failed attempt (326 without a spare id left)."""
    clashed: list[int] = []
    state: ConnectionState | None = None
    with anyio.move_on_after(timeout):
        while True:
            reply = await connection.call(GetConnectionState(), timeout=2.0)
            if isinstance(reply, ConnectionState):
                state = reply
                if state.state == "connected":
                    break
                if state.state == "backoff":
                    if "(326)" not in state.last_error:
                        break
                    if state.client_id not in clashed:
                        clashed.append(state.client_id)
                    if len(clashed) >= 1 + len(settings.spare_client_ids):
                        break  # every configured id is taken
            await anyio.sleep(0.05)
    ids = ", ".join(str(i) for i in clashed)
    if state is not None and state.state == "connected":
        detail = f"TWS API server version {state.server_version}, client id {state.client_id}"
        if clashed:
            return CheckResult(
                HANDSHAKE,
                "WARN",
                f"{detail}; client id {ids} already in use, connected with a spare id",
                "Close the other API client using that id, or set SUMPPUMP_CLIENT_ID to a free one",
            ), state
        return CheckResult(HANDSHAKE, "PASS", detail), state
    if clashed:
        return CheckResult(
            HANDSHAKE,
            "FAIL",
            f"client id {ids} is already in use (TWS error 326)",
            "Another API client uses that id (perhaps SumpPump inside a running Claude Desktop): "
            "close it, or set SUMPPUMP_CLIENT_ID to another number (never 0)",
        ), None
    if state is not None and state.state == "backoff":
        return CheckResult(
            HANDSHAKE, "FAIL", f"the API handshake failed: {state.last_error}", FIX_HANDSHAKE
        ), None
    return CheckResult(
        HANDSHAKE,
        "FAIL",
        f"the port accepts connections but TWS did not complete the API handshake within "
        f"{timeout:.0f}s",
        FIX_HANDSHAKE,
    ), None


def _check_account(accounts: Sequence[str]) -> CheckResult:
    if not accounts:
        return CheckResult(
            ACCOUNT, "WARN", "TWS reported no account", "Log TWS in to your IBKR account"
        )
    live = [a for a in accounts if not is_paper(a)]
    listed = ", ".join(accounts)
    if live:
        return CheckResult(
            ACCOUNT,
            "WARN",
            f"LIVE account {', '.join(live)}: orders placed through SumpPump spend REAL MONEY",
            "To practise, log TWS in to your paper account (DU…) instead",
        )
    return CheckResult(ACCOUNT, "PASS", f"PAPER account {listed} (simulated money at IBKR)")


def _price(quote: Quote) -> float | None:
    for value in (quote.mid, quote.last, quote.close):
        if value is not None and value > 0:
            return value
    return None


async def _check_market_data(
    connection: Ref, symbol: str
) -> tuple[CheckResult, StockContract | None, float | None]:
    resolved = await call_actor(connection, ResolveStock(symbol=symbol), timeout=10.0)
    if not isinstance(resolved, StockResolved):
        return unexpected(MARKET_DATA, f"resolving {symbol}", resolved), None, None
    stock = resolved.contract
    target = QuoteTarget(con_id=stock.con_id, symbol=stock.symbol, sec_type=stock.sec_type)
    reply = await call_actor(connection, FetchQuotes(targets=(target,), settle=3.0), timeout=8.0)
    match reply:
        case NoMarketData():
            return (
                CheckResult(
                    MARKET_DATA,
                    "FAIL",
                    f"no market data for {symbol} (TWS error {reply.code}: {reply.message})",
                    reply.subscribe_hint,
                ),
                stock,
                None,
            )
        case Quotes(quotes=(quote, *_)):
            return _judge_quote(symbol, quote, reply.notices), stock, _price(quote)
        case Quotes():
            return (
                CheckResult(
                    MARKET_DATA,
                    "WARN",
                    f"no quote for {symbol} arrived within 3 s",
                    "Check TWS's market data farm connections (green in the status bar) "
                    "and your market data subscriptions",
                ),
                stock,
                None,
            )
        case _:
            return unexpected(MARKET_DATA, f"quoting {symbol}", reply), stock, None


def _judge_quote(symbol: str, quote: Quote, notices: Sequence[str]) -> CheckResult:
    price = _price(quote)
    shown = f"{price:.2f}" if price is not None else "no price"
    match quote.data_type:
        case "live" | "frozen":
            closed = " (market closed: last session's data)" if quote.data_type == "frozen" else ""
            return CheckResult(MARKET_DATA, "PASS", f"live data for {symbol}: {shown}{closed}")
        case "delayed" | "delayed_frozen":
            notice = f"; TWS: {notices[0]}" if notices else ""
            return CheckResult(
                MARKET_DATA,
                "WARN",
                f"only DELAYED data (15-20 min old) for {symbol}: {shown}{notice}",
                "For live quotes subscribe in IBKR Client Portal → Settings → Market Data "
                "Subscriptions (US equities, and OPRA for options)",
            )
        case _:
            return CheckResult(MARKET_DATA, "WARN", f"{quote.data_type} data for {symbol}: {shown}")
