"""``sumppump doctor``: check the TWS and Claude Desktop set-up, one line of fix per problem.

Checks, in order (each PASS, WARN, FAIL or SKIP; :func:`run_checks`):

1. **TWS port**: a plain TCP connect to the configured host and port.
2. **API handshake**: the real connection path — the project's rate limiter and connection actor —
   until TWS reports the accounts; error 326 (client id in use) is a FAIL.
3. **Account**: the account ids; LIVE (anything but ``DU…``/``DF…``) is a loud WARN.
4. **Market data**: a quote for a test stock (AAPL): live PASS, delayed WARN, none FAIL.
5. **Options permission**: a what-if (never transmitted) of one near-the-money call at a
   one-nickel limit; a permission rejection or TWS's Read-Only API mode is a FAIL.
6. **Claude Desktop**: its config exists and its ``sumppump`` entry starts this install.
7. **Order ticket**: whether the configured client is known to render MCP Apps (Claude Desktop
   does), so the order ticket shows, and whether the approval mode works with that client
   (``app`` needs the ticket; ``elicit`` is refused by Claude Desktop, which cannot elicit).

When the port is closed or the handshake fails, the checks that need TWS are SKIP. The exit code
of :func:`main` is 1 when any check FAILs, 0 otherwise. Only the connection actor talks to TWS
(ib_async is not imported here); the doctor uses the actor's messages like every other actor.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Literal

import anyio
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sumppump import __version__, claude_config
from sumppump.actors.connection import ConnectionActor, ReconnectPolicy
from sumppump.actors.rate_limiter import RateLimiter
from sumppump.actors.runtime import ActorDown, CallTimeout, Ref, start_actor
from sumppump.messages.base import Reply, new_id
from sumppump.messages.common import (
    NoMarketData,
    NoSuchContract,
    NotConnected,
    NotImplementedYet,
    OptionContract,
    Quote,
    StockContract,
    TwsError,
)
from sumppump.messages.connection import (
    ConnectionState,
    FetchOptionContracts,
    FetchOptionParams,
    FetchQuotes,
    GetConnectionState,
    OptionContracts,
    OptionParams,
    OptionParamSet,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.orders import OrderLeg, OrderRejected, OrderSpec, WhatIf, WhatIfResult
from sumppump.messages.rate_limiter import PacingDelayed
from sumppump.settings import Settings
from sumppump.trading.account import is_paper

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "Status",
    "check_order_ticket",
    "environment_report",
    "exit_code",
    "main",
    "run_checks",
]

log = logging.getLogger(__name__)

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]

PORT, HANDSHAKE, ACCOUNT, MARKET_DATA, OPTIONS, CLAUDE, TICKET = (
    "TWS port",
    "API handshake",
    "Account",
    "Market data",
    "Options permission",
    "Claude Desktop",
    "Order ticket",
)
CHECK_NAMES: Final = (PORT, HANDSHAKE, ACCOUNT, MARKET_DATA, OPTIONS, CLAUDE, TICKET)

FIX_START_TWS: Final = (
    "Start TWS or IB Gateway; API → Settings → Enable ActiveX and Socket Clients; port 7497 "
    "(TWS paper) / 7496 (TWS live) / 4002 (Gateway paper) / 4001 (Gateway live)"
)
FIX_HANDSHAKE: Final = (
    "Log TWS in; accept its 'incoming API connection' prompt or add 127.0.0.1 to API → Settings "
    "→ Trusted IPs; check that this port belongs to TWS or IB Gateway"
)
FIX_READ_ONLY: Final = "Untick Read-Only API in TWS: API → Settings → Read-Only API"
FIX_OPTIONS_LEVEL: Final = (
    "Ask IBKR for options trading permission (Level 2): Client Portal → Settings → "
    "Trading Permissions → Options"
)
FIX_INSTALL_CLAUDE: Final = "Run: sumppump install-claude (then restart Claude Desktop)"
#: A one-nickel limit conforms to every US option tick size and is never marketable.
WHAT_IF_LIMIT: Final = 0.05
#: TWS answers a what-if in well under a second; silence means it will not answer.
WHAT_IF_TIMEOUT: Final = 8.0
#: Reconnect quickly: the doctor waits for at most one or two attempts.
DOCTOR_RECONNECT: Final = ReconnectPolicy(first=0.2, cap=1.0, jitter=0.0, client_id_clash_wait=0.2)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome; ``fix`` is one line telling the person what to do (empty on PASS)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


Report = Callable[[CheckResult], None]


def exit_code(results: Sequence[CheckResult]) -> int:
    """1 if any check failed, else 0."""
    return 1 if any(r.status == "FAIL" for r in results) else 0


# ---------------------------------------------------------------------- the checks


async def run_checks(
    settings: Settings,
    *,
    test_symbol: str = "AAPL",
    today: date | None = None,
    handshake_timeout: float | None = None,
    what_if_timeout: float = WHAT_IF_TIMEOUT,
    report: Report | None = None,
) -> list[CheckResult]:
    """Run every check against ``settings`` (host, port, client id) and return the results in
    :data:`CHECK_NAMES` order; ``report`` is called with each result as soon as it is known.

    ``today`` picks the option expiry of the what-if (default: the local date);
    ``handshake_timeout`` defaults to ``settings.connect_timeout_s + 2`` seconds; a what-if
    unanswered within ``what_if_timeout`` seconds is a FAIL (see :func:`_unanswered`). Needs the
    asyncio backend (the connection actor runs ib_async). Never raises for anything TWS does;
    cancellation stops the actors it started and propagates.
    """
    results: list[CheckResult] = []

    def add(result: CheckResult) -> None:
        results.append(result)
        if report is not None:
            report(result)

    port_result = await _check_port(settings)
    add(port_result)
    if port_result.status == "FAIL":
        for name in (HANDSHAKE, ACCOUNT, MARKET_DATA, OPTIONS):
            add(CheckResult(name, "SKIP", "needs the TWS port"))
    else:
        timeout = (
            settings.connect_timeout_s + 2.0 if handshake_timeout is None else handshake_timeout
        )
        await _tws_checks(
            settings, test_symbol, today or date.today(), timeout, what_if_timeout, add
        )
    add(check_claude_desktop(settings))
    add(check_order_ticket(settings))
    return results


async def _check_port(settings: Settings) -> CheckResult:
    where = f"{settings.tws_host}:{settings.tws_port}"
    try:
        with anyio.fail_after(3.0):
            stream = await anyio.connect_tcp(settings.tws_host, settings.tws_port)
        await stream.aclose()
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else _os_reason(exc)
        return CheckResult(
            PORT, "FAIL", f"nothing accepts connections at {where} ({reason})", FIX_START_TWS
        )
    return CheckResult(PORT, "PASS", f"{where} accepts connections")


def _os_reason(exc: OSError) -> str:
    # anyio reports "All connection attempts failed" and chains the socket's own error.
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    return os.strerror(cause.errno) if cause.errno else str(cause)


async def _tws_checks(
    settings: Settings,
    symbol: str,
    today: date,
    timeout: float,
    what_if_timeout: float,
    add: Report,
) -> None:
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
            await _check_options(
                connection, stock, price, state.accounts[0], today, what_if_timeout
            )
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
    resolved = await _call(connection, ResolveStock(symbol=symbol), timeout=10.0)
    if not isinstance(resolved, StockResolved):
        return _unexpected(MARKET_DATA, f"resolving {symbol}", resolved), None, None
    stock = resolved.contract
    target = QuoteTarget(con_id=stock.con_id, symbol=stock.symbol, sec_type=stock.sec_type)
    reply = await _call(connection, FetchQuotes(targets=(target,), settle=3.0), timeout=8.0)
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
            return _unexpected(MARKET_DATA, f"quoting {symbol}", reply), stock, None


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


def _choose_expiry(expirations: Sequence[str], today: date) -> str:
    """The first expiry at least a week away (less likely to stop trading during the check),
    else the last one listed."""
    horizon = (today + timedelta(days=7)).isoformat()
    for expiry in expirations:
        if expiry >= horizon:
            return expiry
    return expirations[-1]


def _choose_param_set(sets: Sequence[OptionParamSet], symbol: str) -> OptionParamSet | None:
    usable = [s for s in sets if s.expirations and s.strikes]
    for s in usable:
        if s.exchange == "SMART" and s.trading_class == symbol:
            return s
    for s in usable:
        if s.exchange == "SMART":
            return s
    return usable[0] if usable else None


async def _check_options(
    connection: Ref,
    stock: StockContract,
    price: float | None,
    account: str,
    today: date,
    what_if_timeout: float,
) -> CheckResult:
    params = await _call(
        connection,
        FetchOptionParams(
            symbol=stock.symbol, underlying_con_id=stock.con_id, sec_type=stock.sec_type
        ),
        timeout=10.0,
    )
    if not isinstance(params, OptionParams):
        return _could_not_run(f"option parameters of {stock.symbol}", params)
    chosen = _choose_param_set(params.sets, stock.symbol)
    if chosen is None:
        return CheckResult(
            OPTIONS, "WARN", f"could not run: TWS lists no options on {stock.symbol}"
        )
    expiry = _choose_expiry(chosen.expirations, today)
    listed = await _call(
        connection,
        FetchOptionContracts(
            symbol=stock.symbol, expiry=expiry, trading_class=chosen.trading_class
        ),
        timeout=15.0,
    )
    if not isinstance(listed, OptionContracts):
        return _could_not_run(f"the {expiry} options of {stock.symbol}", listed)
    calls = [c for c in listed.contracts if c.right == "C"]
    if not calls:
        return CheckResult(OPTIONS, "WARN", f"could not run: no {expiry} calls on {stock.symbol}")
    call = _near_the_money(calls, price)
    spec = OrderSpec(
        order_ref=f"doctor-{new_id()[:12]}",
        account=account,
        symbol=stock.symbol,
        legs=(
            OrderLeg(
                con_id=call.con_id,
                symbol=call.symbol,
                sec_type="OPT",
                action="BUY",
                ratio=1,
                multiplier=call.multiplier,
                expiry=call.expiry,
                strike=call.strike,
                right="C",
                exchange=call.exchange,
            ),
        ),
        quantity=1,
        order_type="LMT",
        limit_price=WHAT_IF_LIMIT,
        tif="DAY",
    )
    what = f"what-if BUY 1 {stock.symbol} {call.expiry} {call.strike:g} C LMT {WHAT_IF_LIMIT}"
    reply = await _call(connection, WhatIf(spec=spec), timeout=what_if_timeout)
    match reply:
        case WhatIfResult():
            cost = f", commission {reply.commission:.2f}" if reply.commission is not None else ""
            warning = f"; TWS warns: {reply.warning}" if reply.warning else ""
            return CheckResult(
                OPTIONS, "PASS", f"{what} accepted (options orders allowed){cost}{warning}"
            )
        case TwsError(code=0) | NoReply(timed_out=True):
            return _unanswered(what, what_if_timeout)
        case OrderRejected() | TwsError():
            return _judge_rejection(what, reply.code, reply.message)
        case NotImplementedYet():
            return CheckResult(
                OPTIONS,
                "WARN",
                f"could not run: this version cannot send what-if orders yet ({reply.detail})",
            )
        case _:
            return _could_not_run(what, reply)


def _near_the_money(calls: Sequence[OptionContract], price: float | None) -> OptionContract:
    if price is None:
        strikes = sorted({c.strike for c in calls})
        price = strikes[len(strikes) // 2]
    reference = price
    return min(calls, key=lambda c: (abs(c.strike - reference), c.strike))


def _unanswered(what: str, timeout: float) -> CheckResult:
    # ib_async treats error 321 (how TWS refuses orders in Read-Only API mode) as a warning and
    # never ends the what-if request, so read-only mode shows up as silence, not as a rejection.
    # SumpPump could not confirm a preview either, hence FAIL.
    return CheckResult(
        OPTIONS,
        "FAIL",
        f"{what}: TWS did not answer within {timeout:.0f}s (the usual cause is Read-Only API)",
        FIX_READ_ONLY,
    )


def _judge_rejection(what: str, code: int, message: str) -> CheckResult:
    text = message.lower()
    detail = f"{what} rejected (TWS error {code}: {message})"
    if "read-only" in text or "read only" in text or "readonly" in text:
        return CheckResult(OPTIONS, "FAIL", detail, FIX_READ_ONLY)
    if any(
        marker in text
        for marker in ("permission", "not approved", "not allowed to trade", "not permitted")
    ):
        return CheckResult(OPTIONS, "FAIL", detail, FIX_OPTIONS_LEVEL)
    return CheckResult(
        OPTIONS,
        "WARN",
        detail,
        "Read TWS's message; if it mentions permissions, ask IBKR for options Level 2",
    )


@dataclass(frozen=True, slots=True)
class NoReply:
    """Why a call got no reply: the deadline passed (``timed_out``) or the actor stopped."""

    reason: str
    timed_out: bool = False


async def _call(ref: Ref, msg: Any, *, timeout: float) -> Reply | NoReply:
    """The reply, or why there is none (deadline passed, actor down)."""
    try:
        return await ref.call(msg, timeout=timeout)
    except CallTimeout:
        return NoReply(f"no answer within {timeout:.0f}s", timed_out=True)
    except ActorDown as exc:
        return NoReply(f"the connection actor stopped ({exc.__cause__ or exc})")


def _describe(reply: Reply | NoReply) -> str:
    match reply:
        case NoReply():
            return reply.reason
        case NotConnected():
            return f"not connected ({reply.reason})"
        case NoSuchContract():
            return f"TWS knows no {reply.symbol} {reply.detail}".rstrip()
        case TwsError():
            return f"TWS error {reply.code}: {reply.message}"
        case NoMarketData():
            return f"no market data (TWS error {reply.code}: {reply.message})"
        case PacingDelayed():
            return f"paced ({reply.reason}); retry in {reply.retry_after:.0f}s"
        case _:
            return f"unexpected reply {type(reply).__name__}"


def _unexpected(name: str, doing: str, reply: Reply | NoReply) -> CheckResult:
    if isinstance(reply, NotConnected):
        fix = "Check that TWS is logged in and connected to IBKR (its status bar), then retry"
    elif isinstance(reply, NoSuchContract):
        fix = "Check TWS's data farm connections (status bar); the test symbol should exist"
    else:
        fix = "Retry; if it persists, run `sumppump -v doctor` and read TWS's API log"
    return CheckResult(name, "FAIL", f"{doing}: {_describe(reply)}", fix)


def _could_not_run(doing: str, reply: Reply | NoReply) -> CheckResult:
    return CheckResult(OPTIONS, "WARN", f"could not run ({doing}: {_describe(reply)})")


# ---------------------------------------------------------------------- Claude Desktop


def _setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


def check_claude_desktop(settings: Settings) -> CheckResult:
    """Claude Desktop's config exists, is valid, and its ``sumppump`` entry starts this install
    with the TWS host/port/client id the doctor checked. Never raises."""
    path = claude_config.config_path()
    try:
        config = claude_config.read_config(path)
    except claude_config.ConfigUnreadable as exc:
        return CheckResult(
            CLAUDE,
            "FAIL",
            f"Claude Desktop cannot load its config: {exc}",
            "Fix the JSON (or restore a .bak- copy next to it), then run: sumppump install-claude",
        )
    if config is None:
        return CheckResult(CLAUDE, "WARN", f"no config at {path}", FIX_INSTALL_CLAUDE)
    entry = (config.get("mcpServers") or {}).get(claude_config.SERVER_NAME)
    if entry is None:
        return CheckResult(
            CLAUDE,
            "WARN",
            f"{path} has no '{claude_config.SERVER_NAME}' server",
            FIX_INSTALL_CLAUDE,
        )
    if not isinstance(entry, dict):
        return CheckResult(
            CLAUDE,
            "FAIL",
            f"the '{claude_config.SERVER_NAME}' entry in {path} is not an object",
            FIX_INSTALL_CLAUDE,
        )
    command = entry.get("command")
    resolved = claude_config.resolve_command(command)
    if resolved is None:
        return CheckResult(
            CLAUDE,
            "FAIL",
            f"Claude Desktop would run {command!r}, which is not an executable file",
            FIX_INSTALL_CLAUDE + " from this install",
        )
    expected = claude_config.server_entry()
    # This install runs as its script or as ``python -m sumppump``; either is fine.
    ours = (expected["command"], os.path.abspath(sys.executable))
    if not any(_same_file(str(resolved), candidate) for candidate in ours):
        return CheckResult(
            CLAUDE,
            "WARN",
            f"Claude Desktop runs another install: {command} (this one is {expected['command']})",
            FIX_INSTALL_CLAUDE + " from the install you want Claude to use",
        )
    args = entry.get("args") or []
    if not isinstance(args, list) or "serve" not in args:
        return CheckResult(
            CLAUDE, "WARN", f"the entry's args {args!r} do not run 'serve'", FIX_INSTALL_CLAUDE
        )
    env = entry.get("env")
    mismatch = _tws_mismatch(settings, env if isinstance(env, dict) else {})
    if mismatch:
        return CheckResult(
            CLAUDE,
            "WARN",
            f"Claude Desktop's SumpPump uses {mismatch}",
            'Run doctor with the same settings, or change "env" in ' + str(path),
        )
    return CheckResult(CLAUDE, "PASS", f"{path} starts {command} {' '.join(map(str, args))}")


#: MCP clients known to render MCP Apps (the ``io.modelcontextprotocol/ui`` extension).
CLIENTS_RENDERING_APPS: Final = {"Claude Desktop": True}


def check_order_ticket(settings: Settings) -> CheckResult:
    """Whether the configured client renders the order ticket (an MCP App), and whether the
    approval mode it runs SumpPump with can place orders there. Never raises.

    The mode is the Claude entry's ``SUMPPUMP_APPROVAL`` when it sets one, else ``settings``'.
    """
    path = claude_config.config_path()
    try:
        config = claude_config.read_config(path)
    except claude_config.ConfigUnreadable:
        config = None
    entry = ((config or {}).get("mcpServers") or {}).get(claude_config.SERVER_NAME)
    env = entry.get("env") if isinstance(entry, dict) else None
    mode = str((env or {}).get("SUMPPUMP_APPROVAL", settings.approval)).strip().lower()
    if mode not in ("client", "elicit", "tws", "app"):
        return CheckResult(
            TICKET,
            "FAIL",
            f"SUMPPUMP_APPROVAL={mode!r} is not an approval mode: every order is refused",
            "Set SUMPPUMP_APPROVAL to client, app, tws or elicit",
        )
    if not isinstance(entry, dict):
        if mode == "app":
            return CheckResult(
                TICKET,
                "WARN",
                "approval mode app needs a client that renders MCP Apps; none is configured",
                FIX_INSTALL_CLAUDE,
            )
        return CheckResult(
            TICKET, "SKIP", "no MCP client configured (Claude Desktop renders the ticket)"
        )
    client = "Claude Desktop"
    if mode == "elicit":
        return CheckResult(
            TICKET,
            "WARN",
            f"{client} renders MCP Apps (the ticket shows) but cannot elicit: approval mode "
            "elicit refuses every order there",
            'Set "SUMPPUMP_APPROVAL": "app" (Confirm in the ticket) or "client" in ' + str(path),
        )
    renders = CLIENTS_RENDERING_APPS.get(client, False)
    how = {
        "client": "orders by the ticket's Confirm or Claude's tool prompt",
        "app": "orders only by the ticket's Confirm",
        "tws": "orders wait for Transmit in TWS",
    }[mode]
    return CheckResult(
        TICKET,
        "PASS" if renders else "WARN",
        f"{client} renders MCP Apps: the order ticket shows with every preview "
        f"(approval mode {mode}: {how})",
    )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _tws_mismatch(settings: Settings, env: dict[str, Any]) -> str:
    """Which of host, port and client id the Claude entry sets differently from ``settings``."""
    differences = []
    for field, variable in (
        ("tws_host", "SUMPPUMP_TWS_HOST"),
        ("tws_port", "SUMPPUMP_TWS_PORT"),
        ("client_id", "SUMPPUMP_CLIENT_ID"),
    ):
        configured = str(env.get(variable, _setting_default(field))).strip()
        checked = str(getattr(settings, field))
        if configured != checked:
            differences.append(f"{field.replace('_', ' ')} {configured} (doctor checked {checked})")
    return "; ".join(differences)


# ---------------------------------------------------------------------- command


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report(settings: Settings) -> list[tuple[str, str]]:
    """Versions and the settings in effect, as (name, value) rows. Secrets are shown only as
    "set" / "not set"."""
    rows = [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("sumppump", __version__),
        ("ib_async", _version("ib_async")),
        ("platform", f"{platform.system()} {platform.release()}"),
        ("claude config", str(claude_config.config_path())),
    ]
    for name, value in settings.model_dump().items():
        if name == "http_token":
            rows.append((name, "set" if value else "not set"))
        else:
            rows.append((name, str(value)))
    return rows


_STYLES: Final[dict[Status, str]] = {
    "PASS": "bold green",
    "WARN": "bold yellow",
    "FAIL": "bold red",
    "SKIP": "dim",
}


def _print_result(console: Console, result: CheckResult) -> None:
    style = _STYLES[result.status]
    console.print(
        f"[{style}]{result.status}[/] {escape(result.name)}: {escape(result.detail)}",
        soft_wrap=True,
    )
    if result.fix:
        console.print(f"     fix: {escape(result.fix)}", soft_wrap=True)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The doctor reports what the actors and ib_async would log; keep stderr quiet unless
    debug logging was asked for."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("ib_async", "sumppump")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def main(host: str | None, port: int | None) -> int:
    """Run ``sumppump doctor``; print the report to stdout; 0 if nothing FAILed, else 1.

    ``host``/``port`` override the settings' TWS address.
    """
    console = Console(highlight=False)
    overrides: dict[str, Any] = {}
    if host:
        overrides["tws_host"] = host
    if port is not None:
        overrides["tws_port"] = port
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        console.print("[bold red]FAIL[/] Settings: the SUMPPUMP_* settings are invalid")
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            console.print(f"     {escape(where)}: {escape(error['msg'])}", soft_wrap=True)
        return 1
    table = Table(title="SumpPump doctor", show_header=False, title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in environment_report(settings):
        table.add_row(escape(name), escape(value))
    console.print(table)
    console.print(
        f"Checking TWS at {settings.tws_host}:{settings.tws_port} with client id "
        f"{settings.client_id}…"
    )
    with _quiet_logs():
        results = anyio.run(
            lambda: run_checks(settings, report=lambda r: _print_result(console, r)),
            backend="asyncio",
        )
    counts = {status: sum(r.status == status for r in results) for status in _STYLES}
    code = exit_code(results)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(
        f"[{'bold red' if code else 'bold green'}]"
        f"{'Problems found' if code else 'No failures'}[/]: {summary}"
    )
    return code
