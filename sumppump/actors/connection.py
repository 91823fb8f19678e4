"""The connection actor: owns the single ``ib_async.IB`` and every exchange with TWS.

Reconnecting is a state machine inside this actor, not a restart (notes/architecture.md §2.2)::

    Disconnected → Connecting → Connected(epoch) ⇄ Degraded(epoch)
                       ↑  ↓ fail                      │ socket lost / probe stalled
                     Backoff  ←───────────────────────┘

* connect fails (refused, timeout, handshake) → ``Backoff``: 1 s · 2^(n−1) capped at 60 s, with
  up to 20 % jitter; never gives up; the count resets after 60 s connected.
* error 326 (client id in use): TWS closes the socket and ib_async would only notice at its
  connect timeout; the error event ends the attempt at once, and the next attempt uses the next
  spare client id, or waits at least 5 s.
* 1100 (IB ↔ TWS lost; the socket stays up) → ``Degraded``: requests answer ``NotConnected``.
  1101 (restored, data lost) → ``Connected`` with a new epoch and ``ConnectionUp(resubscribe)``.
  1102 (restored, data kept) → ``Connected``, same epoch, nothing to resubscribe.
* an idle probe (``reqCurrentTime`` every ``probe_interval``) detects a stalled socket.

Every ``ConnectionUp``/``ConnectionDown`` is told to the subscribers. Requests are handled
concurrently (I/O-bound); each reserves its messages with the rate limiter first and runs under
the caller's deadline. ib_async objects never leave this module: replies are msgspec structs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, assert_never

import anyio
from ib_async import IB, Contract, HistoricalNews, Option, Stock, Ticker
from ib_async.wrapper import RequestError

from sumppump.actors.ib_requests import FixedKeyRequests
from sumppump.actors.ib_values import ib_number, ib_positive
from sumppump.actors.order_desk import OrderDesk
from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.messages.base import Message, Reply, now_ns
from sumppump.messages.common import (
    DataType,
    Greeks,
    NoMarketData,
    NoSuchContract,
    NotConnected,
    OptionContract,
    Ping,
    Pong,
    Quote,
    StockContract,
    TwsError,
)
from sumppump.messages.connection import (
    AccountSnapshot,
    Article,
    Bar,
    Bars,
    ConnectionDown,
    ConnectionRequest,
    ConnectionState,
    ConnectionUp,
    FetchAccount,
    FetchArticle,
    FetchHeadlines,
    FetchHistory,
    FetchOpenOrders,
    FetchOptionContracts,
    FetchOptionParams,
    FetchPositions,
    FetchQuotes,
    GetConnectionState,
    Headline,
    Headlines,
    LinkState,
    OpenOrderInfo,
    OpenOrders,
    OptionContracts,
    OptionParams,
    OptionParamSet,
    PositionInfo,
    Positions,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.errors import MailboxFull
from sumppump.messages.orders import OrdersRequest
from sumppump.messages.rate_limiter import (
    AcquireMessages,
    HistoricalPermit,
    LeaseLines,
    LinesLeased,
    MessagesGranted,
    PacingDelayed,
    ReleaseLines,
)
from sumppump.settings import Settings

__all__ = ["ConnectionActor", "ReconnectPolicy"]

log = logging.getLogger(__name__)

#: Advisory codes: the request stays alive (DESIGN.md §3).
ADVISORY_CODES: Final = frozenset({2104, 2106, 2158, 10090, 10091, 10167, 2103, 2105, 2157})
#: No market-data subscription: reported with what to subscribe to.
NO_SUBSCRIPTION_CODES: Final = frozenset({354, 10089, 10168})
MARKET_DATA_TYPES: Final[dict[int, DataType]] = {
    1: "live",
    2: "frozen",
    3: "delayed",
    4: "delayed_frozen",
}
SUBSCRIBE_HINT: Final = (
    "Subscribe in IBKR Client Portal → Settings → Market Data Subscriptions (US equities and "
    "OPRA options for the API), or accept delayed data."
)
#: Messages of the handshake and ib_async's start-up sync (startApi, positions, open and
#: completed orders, account updates, executions, market data type) plus headroom.
STARTUP_MESSAGES: Final = 12
#: Margin kept from the caller's deadline for cancelling streams and replying.
REPLY_MARGIN: Final = 0.5


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Backoff of the reconnect loop: ``min(cap, first · 2^(n−1)) · (1 + U[0, jitter])``."""

    first: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2
    reset_after: float = 60.0
    client_id_clash_wait: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.cap, self.first * 2.0 ** max(0, attempt - 1))
        return base * (1.0 + rng.random() * self.jitter)


class _ClientIdInUse(Exception):
    pass


@dataclass(slots=True)
class _Link:
    state: LinkState = "disconnected"
    epoch: int = 0
    attempt: int = 0
    retry_in: float | None = None
    last_error: str = ""
    accounts: tuple[str, ...] = ()
    server_version: int | None = None
    client_id: int = 0
    since_ns: int = field(default_factory=now_ns)

    def move(self, state: LinkState, *, error: str | None = None) -> None:
        if state != self.state:
            log.info("TWS link: %s → %s%s", self.state, state, f" ({error})" if error else "")
            self.since_ns = now_ns()
        self.state = state
        if error is not None:
            self.last_error = error


class ConnectionActor(Actor):
    """See the module docstring.

    ``ib_factory`` builds the ``IB`` client (a seam for tests of the state machine; the
    integration tests use the real one against the simulated TWS).
    """

    max_concurrency = 32

    def __init__(
        self,
        settings: Settings,
        *,
        rate_limiter: Ref | None,
        subscribers: Sequence[Ref] = (),
        policy: ReconnectPolicy = ReconnectPolicy(),
        probe_interval: float = 10.0,
        probe_timeout: float = 5.0,
        ib_factory: Callable[[], IB] = IB,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._rate_limiter = rate_limiter
        self._subscribers = tuple(subscribers)
        self._policy = policy
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._ib_factory = ib_factory
        self._rng = rng if rng is not None else random.Random()
        self._client_ids = (settings.client_id, *settings.spare_client_ids)
        self._client_id_index = 0
        self._link = _Link(client_id=settings.client_id)
        self._ib: IB | None = None
        self._lost = anyio.Event()
        self._clash = anyio.Event()
        self._request_errors: dict[int, list[tuple[int, str]]] = {}
        self._market_changed = anyio.Event()
        self._serial = FixedKeyRequests()
        self._data_type: DataType = "live"  # of the most recent quotes: what TWS is giving us
        self._notices: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    async def background(self) -> None:
        """The reconnect loop. Never returns; never gives up."""
        while True:
            ib = self._ib_factory()
            self._install(ib)
            client_id = self._client_ids[self._client_id_index % len(self._client_ids)]
            self._link.client_id = client_id
            self._link.move("connecting")
            self._link.retry_in = None
            try:
                # The handshake and ib_async's start-up sync send about ten messages in a burst;
                # they count against TWS's 50 msg/s like any other.
                await self._send_budget(STARTUP_MESSAGES, max_wait=60.0)
                await self._connect(ib, client_id)
            except _ClientIdInUse:
                self._discard(ib)
                self._link.attempt += 1
                wait = self._policy.delay(self._link.attempt, self._rng)
                if len(self._client_ids) > 1:
                    self._client_id_index += 1  # rotate to the next spare id
                else:
                    wait = max(wait, self._policy.client_id_clash_wait)
                await self._back_off(wait, f"client id {client_id} is already in use (326)")
                continue
            except (OSError, TimeoutError, ConnectionError) as exc:
                self._discard(ib)
                self._link.attempt += 1
                wait = self._policy.delay(self._link.attempt, self._rng)
                await self._back_off(wait, f"cannot connect to TWS: {exc!r}")
                continue
            connected_at = anyio.current_time()
            self._ib = ib
            self._link.epoch += 1
            self._link.accounts = tuple(ib.client.getAccounts())
            self._link.server_version = ib.client.serverVersion()
            self._link.move("connected", error="")
            self._publish(ConnectionUp(epoch=self._link.epoch, accounts=self._link.accounts))
            reason = await self._watch(ib)
            self._ib = None
            self._discard(ib)
            if anyio.current_time() - connected_at >= self._policy.reset_after:
                self._link.attempt = 0
            self._publish(ConnectionDown(epoch=self._link.epoch, reason=reason))
            self._link.attempt += 1
            await self._back_off(self._policy.delay(self._link.attempt, self._rng), reason)

    async def on_stop(self) -> None:
        if self._ib is not None:
            self._discard(self._ib)
            self._ib = None

    def _install(self, ib: IB) -> None:
        self._lost = anyio.Event()
        self._clash = anyio.Event()
        ib.RaiseRequestErrors = True
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.pendingTickersEvent += self._on_ticks
        self._serial = FixedKeyRequests()
        # One order desk per IB; it inherits the order refs of the previous one.
        previous_desk: OrderDesk | None = getattr(self, "_order_desk", None)
        self._order_desk = OrderDesk(
            ib,
            send_budget=self._send_budget,
            publish=self._publish,  # type: ignore[arg-type]
            known_refs=previous_desk.known_refs if previous_desk is not None else (),
            serial=self._serial,
        )
        self._order_desk.attach()

    def _discard(self, ib: IB) -> None:
        ib.errorEvent -= self._on_error
        ib.disconnectedEvent -= self._on_disconnected
        ib.pendingTickersEvent -= self._on_ticks
        desk: OrderDesk | None = getattr(self, "_order_desk", None)
        if desk is not None and desk.ib is ib:
            desk.detach()
        with contextlib.suppress(Exception):
            ib.disconnect()

    async def _connect(self, ib: IB, client_id: int) -> None:
        """Connect, failing fast on 326 instead of waiting out ib_async's connect timeout."""
        outcome: list[BaseException | None] = []
        async with anyio.create_task_group() as tg:

            async def connect() -> None:
                try:
                    await ib.connectAsync(
                        self._settings.tws_host,
                        self._settings.tws_port,
                        clientId=client_id,
                        timeout=self._settings.connect_timeout_s,
                        raiseSyncErrors=False,
                    )
                    outcome.append(None)
                except Exception as exc:
                    outcome.append(exc)
                tg.cancel_scope.cancel()

            async def clash() -> None:
                await self._clash.wait()
                outcome.append(_ClientIdInUse())
                tg.cancel_scope.cancel()

            tg.start_soon(connect)
            tg.start_soon(clash)
        if not outcome:
            raise TimeoutError("connect attempt ended without an outcome")
        if outcome[0] is not None:
            raise outcome[0]
        if not ib.isConnected():
            raise ConnectionError("TWS closed the connection during the handshake")
        ib.reqMarketDataType(3)  # live where subscribed, delayed otherwise; labelled per quote

    async def _back_off(self, wait: float, error: str) -> None:
        self._link.move("backoff", error=error)
        self._link.retry_in = wait
        log.warning("TWS: %s; next attempt in %.1fs", error, wait)
        await anyio.sleep(wait)

    async def _watch(self, ib: IB) -> str:
        """Wait until the socket is lost or the probe finds it stalled; return why."""
        while True:
            with anyio.move_on_after(self._probe_interval):
                await self._lost.wait()
                return self._link.last_error or "TWS closed the connection"
            try:
                with anyio.fail_after(self._probe_timeout):
                    await self._send_budget(1, max_wait=self._probe_timeout)
                    async with self._serial("currentTime"):
                        await ib.reqCurrentTimeAsync()
            except TimeoutError:
                self._link.last_error = f"TWS did not answer a probe within {self._probe_timeout}s"
                return self._link.last_error

    def _publish(self, event: ConnectionUp | ConnectionDown) -> None:
        for ref in self._subscribers:
            try:
                ref.tell(event)
            except (ActorDown, MailboxFull):
                # A subscriber that is down reads the state with GetConnectionState when it
                # starts; one whose mailbox is full is busy and will see the epoch change.
                log.debug("could not tell %s to %s", type(event).__name__, ref.name)

    # ------------------------------------------------------------------ ib_async events

    def _on_ticks(self, tickers: object) -> None:
        self._market_changed.set()

    def _on_disconnected(self) -> None:
        self._link.last_error = self._link.last_error or "TWS closed the connection"
        self._lost.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        match code:
            case 326:
                self._link.last_error = "client id already in use (326)"
                self._clash.set()
            case 1100:
                self._link.move("degraded", error="IB ↔ TWS connectivity lost (1100)")
            case 1101:
                self._link.epoch += 1
                self._link.move("connected", error="")
                self._publish(
                    ConnectionUp(
                        epoch=self._link.epoch, accounts=self._link.accounts, resubscribe=True
                    )
                )
            case 1102:
                self._link.move("connected", error="")
            case _ if code in ADVISORY_CODES:
                if code in (10090, 10091, 10167):
                    self._notices.append(f"{code}: {message}")
            case _:
                if req_id >= 0:
                    self._request_errors.setdefault(req_id, []).append((code, message))
                    self._market_changed.set()

    # ------------------------------------------------------------------ requests

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, ConnectionRequest):
            return await self._dispatch(msg)
        if isinstance(msg, OrdersRequest):
            return await self._dispatch_order(msg)
        if isinstance(msg, Ping):
            return Pong(actor="connection")
        return None

    async def _dispatch(self, msg: ConnectionRequest) -> Reply:
        if isinstance(msg, GetConnectionState):
            return self._state()
        ib = self._ib
        if ib is None or self._link.state != "connected":
            return self._not_connected()
        try:
            with anyio.fail_after(max(0.05, remaining_budget(30.0) - 0.05)):
                match msg:
                    case ResolveStock():
                        return await self._resolve_stock(ib, msg)
                    case FetchOptionParams():
                        return await self._option_params(ib, msg)
                    case FetchOptionContracts():
                        return await self._option_contracts(ib, msg)
                    case FetchQuotes():
                        return await self._quotes(ib, msg)
                    case FetchHistory():
                        return await self._history(ib, msg)
                    case FetchHeadlines():
                        return await self._headlines(ib, msg)
                    case FetchArticle():
                        return await self._article(ib, msg)
                    case FetchAccount():
                        return self._account(ib)
                    case FetchPositions():
                        return self._positions(ib)
                    case FetchOpenOrders():
                        return await self._open_orders(ib)
                    case _:
                        assert_never(msg)
        except RequestError as exc:
            return self._request_error(type(msg).__name__, exc.code, str(exc))
        except _Paced as paced:
            return paced.reply
        except TimeoutError:
            return TwsError(
                code=0, message="TWS did not answer in time", request=type(msg).__name__
            )
        except ConnectionError as exc:
            return NotConnected(reason=f"connection lost during the request: {exc}")

    async def _dispatch_order(self, msg: OrdersRequest) -> Reply:
        """Order requests, answered by the desk of the current ``IB``
        (:mod:`sumppump.actors.order_desk`); ``NotConnected`` unless connected. A request that
        the rate limiter paces is answered ``PacingDelayed`` before anything is sent."""
        ib = self._ib
        desk: OrderDesk | None = getattr(self, "_order_desk", None)
        if ib is None or desk is None or desk.ib is not ib or self._link.state != "connected":
            return self._not_connected()
        try:
            return await desk.handle(msg)
        except _Paced as paced:
            return paced.reply
        except RequestError as exc:
            return self._request_error(type(msg).__name__, exc.code, str(exc))
        except TimeoutError:
            return TwsError(
                code=0, message="TWS did not answer in time", request=type(msg).__name__
            )
        except ConnectionError as exc:
            return NotConnected(reason=f"connection lost during the request: {exc}")

    def _state(self) -> ConnectionState:
        link = self._link
        return ConnectionState(
            state=link.state,
            epoch=link.epoch,
            host=self._settings.tws_host,
            port=self._settings.tws_port,
            client_id=link.client_id,
            accounts=link.accounts,
            server_version=link.server_version,
            attempt=link.attempt,
            retry_in=link.retry_in,
            last_error=link.last_error,
            data_type=self._data_type,
            since_ns=link.since_ns,
        )

    def _not_connected(self) -> NotConnected:
        link = self._link
        reason = {
            "degraded": "TWS is up but its link to IB is down (1100)",
            "connecting": "connecting to TWS",
            "backoff": f"TWS unreachable: {link.last_error}",
            "disconnected": "not connected to TWS yet",
            "connected": "not connected",
        }[link.state]
        return NotConnected(reason=reason, attempt=link.attempt, retry_in=link.retry_in)

    def _request_error(self, request: str, code: int, message: str) -> Reply:
        if code in NO_SUBSCRIPTION_CODES:
            return NoMarketData(code=code, message=message, subscribe_hint=SUBSCRIBE_HINT)
        if code == 162 and "pacing" in message.lower():
            return PacingDelayed(reason=message, retry_after=15.0, limit="historical_window")
        return TwsError(code=code, message=message, request=request)

    async def _send_budget(self, count: int, *, max_wait: float | None = None) -> None:
        """Reserve ``count`` messages with the rate limiter and wait for the granted time.

        If the limiter itself is down (restarting), requests proceed: ib_async throttles itself
        at 45 msg/s, under TWS's 50.

        :raises _Paced: the limiter refused (the wait would outlast the deadline).
        """
        if self._rate_limiter is None:
            return
        budget = remaining_budget(30.0) if max_wait is None else max_wait
        remaining = count
        while remaining > 0:
            chunk = min(remaining, 40)
            try:
                reply = await self._rate_limiter.call(
                    AcquireMessages(count=chunk, max_wait=budget), timeout=min(2.0, budget + 0.1)
                )
            except (ActorDown, CallTimeout):
                log.warning("rate limiter unavailable; relying on ib_async's own throttle")
                return
            match reply:
                case MessagesGranted(wait=wait):
                    if wait > 0:
                        await anyio.sleep(wait)
                case PacingDelayed():
                    raise _Paced(reply)
                case _:
                    raise _Paced(
                        PacingDelayed(
                            reason=f"unexpected {reply!r}", retry_after=1.0, limit="messages"
                        )
                    )
            remaining -= chunk

    # ------------------------------------------------------------------ contracts

    async def _resolve_stock(self, ib: IB, msg: ResolveStock) -> Reply:
        await self._send_budget(1)
        try:
            details = await ib.reqContractDetailsAsync(Stock(msg.symbol, "SMART", "USD"))
        except RequestError as exc:
            if exc.code == 200:
                return NoSuchContract(symbol=msg.symbol, detail="no US stock or ETF by that name")
            raise
        stocks = [d for d in details if d.contract and d.contract.secType == "STK"]
        if not stocks:
            return NoSuchContract(symbol=msg.symbol, detail="no US stock or ETF by that name")
        d = stocks[0]
        c = d.contract
        assert c is not None
        return StockResolved(
            contract=StockContract(
                con_id=c.conId,
                symbol=c.symbol,
                exchange=c.exchange or "SMART",
                primary_exchange=c.primaryExchange,
                currency=c.currency,
                long_name=d.longName,
                min_tick=d.minTick or 0.01,
                time_zone=d.timeZoneId,
                trading_hours=d.tradingHours,
                liquid_hours=d.liquidHours,
            )
        )

    async def _option_params(self, ib: IB, msg: FetchOptionParams) -> Reply:
        await self._send_budget(1)
        chains = await ib.reqSecDefOptParamsAsync(
            msg.symbol, "", msg.sec_type, msg.underlying_con_id
        )
        sets = tuple(
            OptionParamSet(
                exchange=chain.exchange,
                trading_class=chain.tradingClass,
                multiplier=float(chain.multiplier or 100),
                expirations=tuple(sorted(_iso(e) for e in chain.expirations)),
                strikes=tuple(sorted(float(s) for s in chain.strikes)),
            )
            for chain in chains
        )
        return OptionParams(sets=sets)

    async def _option_contracts(self, ib: IB, msg: FetchOptionContracts) -> Reply:
        await self._send_budget(1)
        query = Option(
            msg.symbol,
            msg.expiry.replace("-", ""),
            0.0,
            "",
            msg.exchange,
            tradingClass=msg.trading_class,
            currency="USD",
        )
        details = await ib.reqContractDetailsAsync(query)
        contracts = []
        for d in details:
            c = d.contract
            if c is None or c.secType != "OPT" or c.right not in ("C", "P"):
                continue
            contracts.append(
                OptionContract(
                    con_id=c.conId,
                    symbol=c.symbol,
                    expiry=_iso(c.lastTradeDateOrContractMonth),
                    strike=float(c.strike),
                    right="C" if c.right == "C" else "P",
                    multiplier=float(c.multiplier or 100),
                    trading_class=c.tradingClass,
                    exchange=msg.exchange,
                    currency=c.currency,
                    local_symbol=c.localSymbol,
                )
            )
        contracts.sort(key=lambda c: (c.strike, c.right))
        return OptionContracts(contracts=tuple(contracts))

    # ------------------------------------------------------------------ market data

    async def _quotes(self, ib: IB, msg: FetchQuotes) -> Reply:
        targets = list(msg.targets)
        if not targets:
            return Quotes(quotes=())
        lease_id, lines = await self._lease_lines(len(targets))
        quotes: list[Quote] = []
        missing: list[int] = []
        no_data: NoMarketData | None = None
        notices_before = len(self._notices)
        try:
            for start in range(0, len(targets), lines):
                batch = targets[start : start + lines]
                budget = remaining_budget(30.0) - REPLY_MARGIN
                if budget <= 0.2:
                    missing.extend(t.con_id for t in targets[start:])
                    break
                got, lacking, refused = await self._quote_batch(ib, batch, msg, budget)
                quotes.extend(got)
                missing.extend(lacking)
                no_data = no_data or refused
        finally:
            if lease_id is not None and self._rate_limiter is not None:
                with contextlib.suppress(ActorDown, CallTimeout), anyio.CancelScope(shield=True):
                    await self._rate_limiter.call(ReleaseLines(lease_id=lease_id), timeout=1.0)
        if no_data is not None and not quotes:
            return no_data
        data_types = {q.data_type for q in quotes}
        if len(data_types) == 1:
            self._data_type = next(iter(data_types))
        return Quotes(
            quotes=tuple(quotes),
            missing=tuple(missing),
            notices=tuple(dict.fromkeys(self._notices[notices_before:])),
            data_type=data_types.pop() if len(data_types) == 1 else "live",
        )

    async def _lease_lines(self, wanted: int) -> tuple[int | None, int]:
        if self._rate_limiter is None:
            return None, min(wanted, self._settings.market_data_lines)
        try:
            reply = await self._rate_limiter.call(
                LeaseLines(holder="connection", count=wanted, partial=True, ttl=60.0),
                timeout=2.0,
            )
        except (ActorDown, CallTimeout):
            return None, min(wanted, 20)  # a small batch while the limiter restarts
        if isinstance(reply, LinesLeased):
            return reply.lease_id, reply.count
        raise _Paced(
            PacingDelayed(
                reason="every market-data line of the budget is in use",
                retry_after=2.0,
                limit="lines",
            )
        )

    async def _quote_batch(
        self, ib: IB, batch: list[QuoteTarget], msg: FetchQuotes, budget: float
    ) -> tuple[list[Quote], list[int], NoMarketData | None]:
        contracts = [_contract(t) for t in batch]
        await self._send_budget(len(contracts))
        tickers: list[Ticker] = []
        req_ids: dict[int, int] = {}
        try:
            for contract in contracts:
                ticker = ib.reqMktData(contract, msg.generic_ticks, False, False)
                # ib_async keeps one Ticker per contract across requests: without this, the
                # previous request's prices would look complete before any new tick arrived.
                _forget_quote(ticker)
                tickers.append(ticker)
                req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker)
                if req_id is not None:
                    req_ids[contract.conId] = req_id
            wants_oi = "101" in msg.generic_ticks.split(",")
            with anyio.move_on_after(min(msg.settle, budget)):
                while not all(_complete(t, wants_oi) or self._failed(req_ids, t) for t in tickers):
                    self._market_changed = anyio.Event()
                    await self._market_changed.wait()
        finally:
            requested = [t.contract for t in tickers if t.contract is not None]
            with anyio.CancelScope(shield=True):
                await self._send_budget(len(requested), max_wait=5.0)
                for contract in requested:
                    with contextlib.suppress(Exception):
                        ib.cancelMktData(contract)
        quotes, lacking = [], []
        refused: NoMarketData | None = None
        for target, ticker in zip(batch, tickers, strict=True):
            errors = self._request_errors.pop(req_ids.get(target.con_id, -1), [])
            for code, text in errors:
                if code in NO_SUBSCRIPTION_CODES:
                    refused = NoMarketData(code=code, message=text, subscribe_hint=SUBSCRIBE_HINT)
            quote = _quote(target, ticker)
            if (
                quote.bid is None
                and quote.ask is None
                and quote.last is None
                and quote.close is None
            ):
                lacking.append(target.con_id)
            else:
                quotes.append(quote)
        return quotes, lacking, refused

    def _failed(self, req_ids: dict[int, int], ticker: Ticker) -> bool:
        contract = ticker.contract
        if contract is None:
            return True
        return bool(self._request_errors.get(req_ids.get(contract.conId, -1)))

    # ------------------------------------------------------------------ history and news

    async def _history(self, ib: IB, msg: FetchHistory) -> Reply:
        if self._rate_limiter is not None:
            request_key = "|".join(
                (str(msg.con_id), msg.duration, msg.bar_size, msg.what_to_show, str(msg.use_rth))
            )
            try:
                permit = await self._rate_limiter.call(
                    HistoricalPermit(request_key=request_key, contract_key=str(msg.con_id)),
                    timeout=2.0,
                )
            except (ActorDown, CallTimeout):
                return PacingDelayed(
                    reason="the rate limiter is restarting",
                    retry_after=1.0,
                    limit="historical_window",
                )
            if isinstance(permit, PacingDelayed):
                return permit
        await self._send_budget(1)
        bars = await ib.reqHistoricalDataAsync(
            _contract(QuoteTarget(con_id=msg.con_id, symbol=msg.symbol, sec_type=msg.sec_type)),
            endDateTime="",
            durationStr=msg.duration,
            barSizeSetting=msg.bar_size,
            whatToShow=msg.what_to_show,
            useRTH=msg.use_rth,
            formatDate=2,
            # 0 = no timeout of ib_async's own: on its timeout it returns [] — no data would
            # look like zero bars. The request's deadline (fail_after in _dispatch) ends it
            # instead, and the caller is told TWS did not answer.
            timeout=0,
        )
        return Bars(
            bars=tuple(
                Bar(
                    date=_bar_date(b.date),
                    open=b.open,
                    high=b.high,
                    low=b.low,
                    close=b.close,
                    volume=float(b.volume),
                )
                for b in bars
            ),
            what_to_show=msg.what_to_show,
        )

    async def _headlines(self, ib: IB, msg: FetchHeadlines) -> Reply:
        await self._send_budget(1)
        async with self._serial("newsProviders"):
            providers = await ib.reqNewsProvidersAsync()
        codes = tuple(p.code for p in providers)
        if not codes:
            return Headlines(providers=(), headlines=())
        await self._send_budget(1)
        result: object = await ib.reqHistoricalNewsAsync(
            msg.con_id, "+".join(codes), "", "", max(1, min(msg.limit, 50))
        )
        # reqHistoricalNewsAsync returns a list despite its annotation (pitfall P10).
        items: list[HistoricalNews] = result if isinstance(result, list) else []
        headlines = tuple(
            Headline(
                time=_timestamp(n.time),
                provider=n.providerCode,
                article_id=n.articleId,
                headline=n.headline,
            )
            for n in items
        )
        return Headlines(providers=codes, headlines=headlines[: msg.limit])

    async def _article(self, ib: IB, msg: FetchArticle) -> Reply:
        await self._send_budget(1)
        article = await ib.reqNewsArticleAsync(msg.provider, msg.article_id)
        return Article(
            provider=msg.provider,
            article_id=msg.article_id,
            text=getattr(article, "articleText", "") or "",
        )

    # ------------------------------------------------------------------ account

    def _account_id(self, ib: IB) -> str:
        accounts = ib.client.getAccounts()
        return accounts[0] if accounts else ""

    def _account(self, ib: IB) -> Reply:
        account = self._account_id(ib)
        values: dict[str, tuple[float, str]] = {}
        for v in ib.accountValues(account):
            if v.currency in ("", "BASE"):
                continue
            with contextlib.suppress(ValueError):
                values.setdefault(v.tag, (float(v.value), v.currency))

        def get(tag: str) -> float | None:
            return values[tag][0] if tag in values else None

        currency = values.get("NetLiquidation", (0.0, "USD"))[1]
        return AccountSnapshot(
            account_id=account,
            currency=currency,
            net_liquidation=get("NetLiquidation"),
            available_funds=get("AvailableFunds"),
            buying_power=get("BuyingPower"),
            excess_liquidity=get("ExcessLiquidity"),
            init_margin=get("InitMarginReq"),
            maint_margin=get("MaintMarginReq"),
            cash=get("TotalCashValue"),
        )

    def _positions(self, ib: IB) -> Reply:
        prices = {item.contract.conId: item for item in ib.portfolio()}
        rows = []
        for p in ib.positions():
            c = p.contract
            item = prices.get(c.conId)
            rows.append(
                PositionInfo(
                    account=p.account,
                    con_id=c.conId,
                    symbol=c.symbol,
                    sec_type=c.secType,
                    quantity=float(p.position),
                    avg_cost=float(p.avgCost),
                    expiry=_iso(c.lastTradeDateOrContractMonth) if c.secType == "OPT" else None,
                    strike=float(c.strike) if c.secType == "OPT" else None,
                    right=c.right or None,
                    multiplier=float(c.multiplier or 1),
                    market_price=ib_number(item.marketPrice) if item else None,
                    market_value=ib_number(item.marketValue) if item else None,
                    unrealized_pnl=ib_number(item.unrealizedPNL) if item else None,
                )
            )
        rows.sort(key=lambda r: (r.symbol, r.sec_type, r.expiry or "", r.strike or 0.0))
        return Positions(positions=tuple(rows))

    async def _open_orders(self, ib: IB) -> Reply:
        await self._send_budget(1)
        async with self._serial("openOrders"):
            trades = await ib.reqAllOpenOrdersAsync()
        orders = []
        for trade in trades:
            o, c, s = trade.order, trade.contract, trade.orderStatus
            orders.append(
                OpenOrderInfo(
                    order_id=o.orderId,
                    perm_id=o.permId,
                    order_ref=o.orderRef or "",
                    symbol=c.symbol,
                    description=c.localSymbol or c.symbol,
                    action=o.action,
                    quantity=float(o.totalQuantity),
                    order_type=o.orderType,
                    limit_price=ib_number(o.lmtPrice),
                    aux_price=ib_number(o.auxPrice),
                    tif=o.tif,
                    status=s.status,
                    filled=float(s.filled),
                    remaining=float(s.remaining),
                )
            )
        return OpenOrders(orders=tuple(orders))


class _Paced(Exception):
    def __init__(self, reply: PacingDelayed) -> None:
        super().__init__(reply.reason)
        self.reply = reply


# ---------------------------------------------------------------------- conversions at the edge


def _contract(target: QuoteTarget) -> Contract:
    return Contract(
        conId=target.con_id,
        symbol=target.symbol,
        secType=target.sec_type,
        exchange=target.exchange,
        currency="USD",
    )


def _complete(ticker: Ticker, wants_open_interest: bool) -> bool:
    """Enough to answer: an ask (a far out-of-the-money option may have no bid at all) and, for
    options, IB's model greeks (and open interest when it was asked for)."""
    contract = ticker.contract
    if ib_positive(ticker.ask) is None:
        return False
    if contract is not None and contract.secType == "OPT":
        if ticker.modelGreeks is None:
            return False
        if wants_open_interest and _open_interest(ticker) is None:
            return False
    return True


def _forget_quote(ticker: Ticker) -> None:
    """Clear what a previous subscription left on a reused Ticker (no tick has been read yet:
    reqMktData only sent the request)."""
    for name in (
        "bid",
        "ask",
        "last",
        "close",
        "high",
        "low",
        "bidSize",
        "askSize",
        "volume",
        "avVolume",
        "impliedVolatility",
        "histVolatility",
        "callOpenInterest",
        "putOpenInterest",
        "callVolume",
        "putVolume",
    ):
        setattr(ticker, name, math.nan)
    ticker.modelGreeks = None
    ticker.bidGreeks = None
    ticker.askGreeks = None
    ticker.lastGreeks = None


def _open_interest(ticker: Ticker) -> float | None:
    """An option's own open interest: IB sends it as tick 27 for a call, 28 for a put."""
    contract = ticker.contract
    if contract is None or contract.secType != "OPT":
        return None
    call, put = ib_number(ticker.callOpenInterest), ib_number(ticker.putOpenInterest)
    return call if call is not None else put


def _quote(target: QuoteTarget, ticker: Ticker) -> Quote:
    greeks = None
    model = ticker.modelGreeks
    if model is not None:
        greeks = Greeks(
            delta=ib_number(model.delta),
            gamma=ib_number(model.gamma),
            theta=ib_number(model.theta),
            vega=ib_number(model.vega),
            iv=ib_number(model.impliedVol),
            source="ib_model",
            underlying_price=ib_positive(model.undPrice),
        )
    stamp = ticker.time.timestamp() if ticker.time is not None else time.time()
    return Quote(
        con_id=target.con_id,
        bid=ib_positive(ticker.bid),
        ask=ib_positive(ticker.ask),
        last=ib_positive(ticker.last),
        close=ib_positive(ticker.close),
        high=ib_positive(ticker.high),
        low=ib_positive(ticker.low),
        bid_size=ib_number(ticker.bidSize),
        ask_size=ib_number(ticker.askSize),
        volume=ib_number(ticker.volume),
        avg_volume=ib_number(ticker.avVolume),
        open_interest=_open_interest(ticker),
        implied_vol=ib_number(ticker.impliedVolatility),
        hist_vol=ib_number(ticker.histVolatility),
        call_volume=ib_number(ticker.callVolume),
        put_volume=ib_number(ticker.putVolume),
        call_open_interest=ib_number(ticker.callOpenInterest),
        put_open_interest=ib_number(ticker.putOpenInterest),
        greeks=greeks,
        data_type=MARKET_DATA_TYPES.get(ticker.marketDataType, "live"),
        ts=int(stamp * 1e9),
    )


def _iso(ib_date: str) -> str:
    """IB's ``YYYYMMDD`` (optionally with a time) as ``YYYY-MM-DD``."""
    digits = ib_date.strip()[:8]
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


def _bar_date(value: date | datetime | str) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
