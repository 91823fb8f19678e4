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
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, assert_never

import anyio
from anyio.abc import TaskGroup
from ib_async import IB
from ib_async.wrapper import RequestError

from sumppump import progress
from sumppump.actors.ib_reference import ReferenceData
from sumppump.actors.ib_requests import FixedKeyRequests
from sumppump.actors.market_data import (
    COMPETING_SESSION_CODE,
    COMPETING_SESSION_HINT,
    NO_SUBSCRIPTION_CODES,
    MarketSignals,
    QuoteFetcher,
    subscription_hint,
)
from sumppump.actors.order_desk import OrderDesk
from sumppump.actors.runtime import Actor, ActorDown, Ref, remaining_budget
from sumppump.actors.send_budget import IB_SAFETY_NET, MessageBudget, Paced
from sumppump.messages.base import Message, Reply, now_ns
from sumppump.messages.common import (
    DataType,
    NoMarketData,
    NotConnected,
    Ping,
    Pong,
    TwsError,
)
from sumppump.messages.connection import (
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
    LinkState,
    Quotes,
    ResolveStock,
)
from sumppump.messages.errors import MailboxFull
from sumppump.messages.orders import OrdersRequest
from sumppump.messages.rate_limiter import PacingDelayed
from sumppump.settings import Settings

__all__ = ["ConnectionActor", "ReconnectPolicy"]

log = logging.getLogger(__name__)

#: Advisory codes: the request stays alive (DESIGN.md §3).
ADVISORY_CODES: Final = frozenset({2104, 2106, 2158, 10090, 10091, 10167, 2103, 2105, 2157})
#: Messages of the handshake and ib_async's start-up sync (startApi, positions, open and
#: completed orders, account updates, executions, market data type) plus headroom.
STARTUP_MESSAGES: Final = 12


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
        self._signals = MarketSignals()
        self._budget = MessageBudget(rate_limiter)
        self._serial = FixedKeyRequests()
        self._reference = ReferenceData(self._budget, self._serial)
        self._deferred: TaskGroup | None = None
        self._data_type: DataType = "live"  # of the most recent quotes: what TWS is giving us

    # ------------------------------------------------------------------ lifecycle

    async def background(self) -> None:
        """The reconnect loop, beside a task group that finishes cancels and line releases after
        their reply was sent. Never returns; never gives up."""
        async with anyio.create_task_group() as deferred:
            self._deferred = deferred
            await self._reconnect_loop()

    async def _reconnect_loop(self) -> None:
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
                await self._budget(STARTUP_MESSAGES, max_wait=60.0)
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
        # One throttle: the rate limiter's. ib_async's stays as a net that never queues a
        # message the limiter paced (see send_budget.IB_SAFETY_NET).
        ib.client.MaxRequests = IB_SAFETY_NET if self._rate_limiter is not None else 45
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.pendingTickersEvent += self._on_ticks
        self._serial = FixedKeyRequests()
        self._reference = ReferenceData(self._budget, self._serial)
        self._quotes = QuoteFetcher(
            ib,
            budget=self._budget,
            signals=self._signals,
            deferred=self._deferred,
            lines_budget=self._settings.market_data_lines,
        )
        # One order desk per IB; it inherits the order refs of the previous one.
        previous_desk: OrderDesk | None = getattr(self, "_order_desk", None)
        self._order_desk = OrderDesk(
            ib,
            send_budget=self._budget,
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
                    await self._budget(1, max_wait=self._probe_timeout)
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
        self._signals.changed()

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
                    self._signals.notices.append(f"{code}: {message}")
                    del self._signals.notices[:-200]  # keep the recent ones
            case _:
                if req_id >= 0:
                    self._signals.error(req_id, code, message)

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
                reference = self._reference
                match msg:
                    case ResolveStock():
                        return await reference.resolve_stock(ib, msg)
                    case FetchOptionParams():
                        return await reference.option_params(ib, msg)
                    case FetchOptionContracts():
                        return await reference.option_contracts(ib, msg)
                    case FetchQuotes():
                        return await self._fetch_quotes(msg)
                    case FetchHistory():
                        return await reference.history(ib, msg)
                    case FetchHeadlines():
                        return await reference.headlines(ib, msg)
                    case FetchArticle():
                        return await reference.article(ib, msg)
                    case FetchAccount():
                        return reference.account(ib)
                    case FetchPositions():
                        return reference.positions(ib)
                    case FetchOpenOrders():
                        return await reference.open_orders(ib)
                    case _:
                        assert_never(msg)
        except RequestError as exc:
            return self._request_error(type(msg).__name__, exc.code, str(exc))
        except Paced as paced:
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
        except Paced as paced:
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
            hint = subscription_hint(code, "OPT" if "Option" in request else "STK")
            return NoMarketData(code=code, message=message, subscribe_hint=hint)
        if code == COMPETING_SESSION_CODE:
            return NoMarketData(code=code, message=message, subscribe_hint=COMPETING_SESSION_HINT)
        if code == 162 and "pacing" in message.lower():
            return PacingDelayed(reason=message, retry_after=15.0, limit="historical_window")
        return TwsError(code=code, message=message, request=request)

    async def _fetch_quotes(self, msg: FetchQuotes) -> Reply:
        if not msg.targets:
            return Quotes(quotes=())

        def told(done: int, total: int) -> None:
            progress.report(msg.progress, done, total, f"requested {done} of {total} quotes")

        reply = await self._quotes.fetch(
            msg,
            anyio.current_time() + remaining_budget(30.0),
            told if msg.progress else None,
        )
        if isinstance(reply, Quotes) and reply.quotes:
            self._data_type = reply.data_type
        return reply
