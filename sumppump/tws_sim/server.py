"""``SimTWS``: the socket server that speaks TWS's wire protocol to ib_async.

Usage::

    async with SimTWS(seed=1) as sim:            # 127.0.0.1, ephemeral port
        ib = IB()
        await ib.connectAsync("127.0.0.1", sim.port, clientId=17, raiseSyncErrors=True)

One asyncio task per client connection; :meth:`SimTWS.stop` aborts the sockets and awaits every
handler task (pitfall P12), so nothing is left running after ``async with``. A background task steps
the broker and pushes streaming quote changes every ``tick_interval`` wall seconds; tests that
freeze the clock drive time with :meth:`SimTWS.advance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from . import protocol as p
from .broker import AccountSpec, Broker, Execution, OrderRejected, SimOrder
from .catalog import MARKET_RULES, Catalog, Instrument, OptionContract, Underlying
from .clock import NEW_YORK, SimClock
from .expiry import ExerciseRefused, dividend_tick, exercise
from .faults import ERROR_TEXTS, Entitlement
from .limits import HistoricalPacer, LineLimiter, MessageRateLimiter, SimStats
from .market import BarRequestError, Greeks, MarketModel
from .news import PROVIDERS, NewsDesk
from .protocol import FieldReader, ProtocolError, WireContract

__all__ = ["REQUEST_NAMES", "ReceivedOrder", "RecordedRequest", "SimTWS"]

log = logging.getLogger("sumppump.tws_sim")

REQUEST_NAMES: dict[int, str] = {
    1: "reqMktData",
    2: "cancelMktData",
    3: "placeOrder",
    4: "cancelOrder",
    5: "reqOpenOrders",
    6: "reqAccountUpdates",
    7: "reqExecutions",
    8: "reqIds",
    9: "reqContractDetails",
    15: "reqAutoOpenOrders",
    16: "reqAllOpenOrders",
    17: "reqManagedAccts",
    20: "reqHistoricalData",
    21: "exerciseOptions",
    25: "cancelHistoricalData",
    49: "reqCurrentTime",
    54: "calculateImpliedVolatility",
    55: "calculateOptionPrice",
    56: "cancelCalculateImpliedVolatility",
    57: "cancelCalculateOptionPrice",
    58: "reqGlobalCancel",
    59: "reqMarketDataType",
    61: "reqPositions",
    62: "reqAccountSummary",
    63: "cancelAccountSummary",
    64: "cancelPositions",
    71: "startApi",
    76: "reqAccountUpdatesMulti",
    77: "cancelAccountUpdatesMulti",
    78: "reqSecDefOptParams",
    84: "reqNewsArticle",
    85: "reqNewsProviders",
    86: "reqHistoricalNews",
    92: "reqPnL",
    93: "cancelPnL",
    94: "reqPnLSingle",
    95: "cancelPnLSingle",
    81: "reqMatchingSymbols",
    91: "reqMarketRule",
    99: "reqCompletedOrders",
}

DELAY = dt.timedelta(minutes=15)
_DELAYED = {1: 66, 2: 67, 4: 68, 0: 69, 3: 70, 5: 71, 8: 74, 6: 72, 7: 73, 9: 75, 14: 76}
_DELAYED_GREEKS = {10: 80, 11: 81, 12: 82, 13: 83}
DELAYED_GENERIC_TICKS = frozenset({"101", "106", "165", "221", "232", "236", "258"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One client message as received: simulated and wall time, who sent it, raw fields."""

    sim_time: dt.datetime
    wall_time: float
    conn_id: int
    client_id: int
    msg_id: int
    name: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReceivedOrder:
    """A decoded placeOrder (what-if ones too)."""

    sim_time: dt.datetime
    client_id: int
    request: p.PlaceOrderRequest

    @property
    def order_ref(self) -> str:
        return self.request.order_ref

    @property
    def what_if(self) -> bool:
        return self.request.what_if


@dataclass(slots=True)
class _Line:
    req_id: int
    instrument: Instrument | None
    combo: WireContract | None
    generic_ticks: frozenset[str]
    delayed: bool
    sent: dict[tuple[str, int], Any] = field(default_factory=dict)


class _Connection:
    def __init__(self, conn_id: int, writer: asyncio.StreamWriter, sim: SimTWS) -> None:
        self.id = conn_id
        self.writer = writer
        self.sim = sim
        self.client_id = -1
        self.ready = False
        self.server_version = p.MAX_SERVER_VERSION
        self.rate = MessageRateLimiter(sim.max_msg_rate)
        self.md_type = 1
        self.lines: dict[int, _Line] = {}
        self.account_updates: str | None = None
        self.positions_subscribed = False
        self.pending: list[bytes] = []

    def send(self, fields: list[p.Field]) -> None:
        data = p.frame(fields)
        if fields and fields[0] == 4:
            with contextlib.suppress(ValueError, TypeError, IndexError):
                self.sim.stats.errors_sent[int(fields[3])] += 1  # type: ignore[arg-type]
        if self.sim.stalled:
            self.pending.append(data)
            return
        if not self.writer.is_closing():
            self.writer.write(data)

    def flush_pending(self) -> None:
        pending, self.pending = self.pending, []
        for data in pending:
            if not self.writer.is_closing():
                self.writer.write(data)

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()


class SimTWS:
    """A simulated TWS on a real socket; see the package docstring for the public API."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        clock: SimClock | None = None,
        accounts: list[AccountSpec] | None = None,
        paper: bool = False,
        scenario: str | None = None,
        server_version: int = p.MAX_SERVER_VERSION,
        max_lines: int = 100,
        max_msg_rate: int = 50,
        disconnect_on_rate_violation: bool = True,
        fill_policy: str = "mid",
        tick_interval: float = 0.25,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the simulator binds to loopback only (pitfall P13)")
        self.host = host
        self._requested_port = port
        self.seed = seed
        self.clock = clock or SimClock()
        if server_version != p.MAX_SERVER_VERSION:
            raise ValueError(
                f"the simulator writes server version {p.MAX_SERVER_VERSION} layouts only; "
                f"server_version={server_version} would be a lie at the handshake"
            )
        self.server_version = server_version
        self.max_msg_rate = max_msg_rate
        self.disconnect_on_rate_violation = disconnect_on_rate_violation
        self.tick_interval = tick_interval
        if accounts is None:
            accounts = [AccountSpec("DU1234567" if paper else "U1234567")]
        self.catalog = Catalog(seed)
        self.market = MarketModel(self.catalog, self.clock, seed)
        self.broker = Broker(
            self.catalog, self.market, self.clock, accounts, fill_policy=fill_policy
        )
        self.broker.listener = self
        self.news = NewsDesk(seed)
        self.stats = SimStats()
        self.lines = LineLimiter(self.stats, max_lines)
        self.pacer = HistoricalPacer(self.stats)
        self.entitlement_state = Entitlement()
        self.requests: list[RecordedRequest] = []
        self.handshakes: list[str] = []
        self.handshake_refusals: list[str] = []
        self._unanswered_what_ifs = 0
        self.resend_after_refused_modification = True
        """After refusing a modification, resend the live order's openOrder + orderStatus.
        Whether real TWS does is unverified (notes/ib-behaviour.md §e, "to check on paper");
        tests turn it off to prove a client re-reads the order itself."""
        self.exercise_requests: list[tuple[str, int, int, int]] = []
        """Accepted exerciseOptions: (account, option conId, 1 exercise / 2 lapse, quantity)."""
        self._response_delays: dict[
            str, float
        ] = {}  # client version ranges offered, e.g. "v157..178"
        self.orders_received: list[ReceivedOrder] = []
        self.stalled = False
        self.link_up = True
        self._resume = asyncio.Event()
        self._resume.set()
        self._server: asyncio.Server | None = None
        self._conns: dict[int, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._conn_seq = 0
        self._next_valid_id = 1
        self.port = port
        if scenario:
            from .scenarios import apply_scenario

            apply_scenario(self, scenario)

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> SimTWS:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one, then ``self.port`` tells which)."""
        # After a stop, start again on the same port (a TWS restart as clients see it).
        await self._listen(self.port or self._requested_port)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="tws-sim-ticker")

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("simulated TWS listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close the listener, abort every connection and await all tasks."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.stalled = False
        self._resume.set()
        for conn in list(self._conns.values()):
            conn.abort()
        await self._await_handlers()

    async def _await_handlers(self) -> None:
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=2.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- connection handling --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._conn_seq += 1
        conn = _Connection(self._conn_seq, writer, self)
        self._conns[conn.id] = conn
        self.stats.connections_accepted += 1
        try:
            await self._serve(conn, reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            self.stats.protocol_errors += 1
            log.error("protocol error from connection %d: %s", conn.id, exc)
        finally:
            self._conns.pop(conn.id, None)
            self.lines.release_connection(conn.id)
            conn.abort()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        lo, hi, _options = await p.read_handshake(reader)
        self.handshakes.append(f"v{lo}..{hi}")
        if f"v{lo}..{hi}" != p.EXPECTED_CLIENT_RANGE:
            log.warning(
                "client offers v%d..%d, not %s: ib_async is not 2.1.0 and production may speak "
                "another protocol (pitfall P11)",
                lo,
                hi,
                p.EXPECTED_CLIENT_RANGE,
            )
        # Honest negotiation: TWS answers min(client max, server max) (tws-wire-protocol.md §2)
        # and must then write that version's layouts. Every encoder here writes the v178
        # layouts, so a client whose range excludes 178 is refused at the handshake (the
        # socket is closed before any reply, with the reason logged and kept in
        # ``handshake_refusals``) instead of being told "157" and then sent v178 messages.
        version = min(hi, self.server_version)
        if not lo <= p.MAX_SERVER_VERSION <= hi or version != p.MAX_SERVER_VERSION:
            reason = (
                f"client offers v{lo}..{hi}; this simulator encodes only server version "
                f"{p.MAX_SERVER_VERSION} (ib_async 2.1.0's v{p.MIN_CLIENT_VERSION}.."
                f"{p.MAX_SERVER_VERSION}), so it refuses the connection rather than "
                "answer a version whose layouts it cannot write"
            )
            self.handshake_refusals.append(reason)
            log.error("handshake refused: %s", reason)
            return
        conn.server_version = version
        await self._resume.wait()
        conn.send(p.handshake_reply(version, self.clock.now().strftime("%Y%m%d %H:%M:%S UTC")))
        fields = await p.read_frame(reader)
        if not fields or fields[0] != "71":
            raise ProtocolError(f"expected startApi, got {fields[:3]}")
        client_id = int(fields[2])
        self._record(conn, fields, client_id)
        if any(c.ready and c.client_id == client_id for c in self._conns.values()):
            self.stats.connections_rejected += 1
            conn.send(p.error(-1, 326, ERROR_TEXTS[326]))
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
            conn.writer.close()
            return
        conn.client_id = client_id
        conn.ready = True
        self._next_valid_id = max(self._next_valid_id, self.broker.max_order_id + 1)
        conn.send(p.managed_accounts(list(self.broker.accounts)))
        conn.send(p.next_valid_id(self._next_valid_id))
        for code in (2104, 2106, 2158):
            conn.send(p.error(-1, code, ERROR_TEXTS[code]))
        while True:
            fields = await p.read_frame(reader)
            if conn.rate.record(time.monotonic()):
                self.stats.messages_rate_violations += 1
                self.stats.violation_log.append(
                    f"messages_rate: client {client_id} above {self.max_msg_rate}/s"
                )
                conn.send(p.error(-1, 100, ERROR_TEXTS[100]))
                if self.disconnect_on_rate_violation:
                    self.stats.forced_disconnects += 1
                    with contextlib.suppress(ConnectionError):
                        await conn.writer.drain()
                    return
            await self._resume.wait()
            if not fields:
                continue
            name = self._record(conn, fields, client_id)
            delay = self._response_delays.get(name)
            if delay:
                asyncio.get_running_loop().call_later(delay, self._dispatch_safely, conn, fields)
            else:
                self._dispatch_safely(conn, fields)
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()

    def _dispatch_safely(self, conn: _Connection, fields: list[str]) -> None:
        if conn.writer.is_closing():
            return  # a delayed request whose client has gone
        try:
            self._dispatch(conn, fields)
        except ProtocolError as exc:
            self.stats.protocol_errors += 1
            log.error("cannot parse %s from client %d: %s", fields[:2], conn.client_id, exc)
        except Exception:
            # A simulator bug must not kill the connection silently: count it (tests assert zero).
            self.stats.internal_errors += 1
            log.exception("simulator failed on %s from client %d", fields[:6], conn.client_id)

    def _record(self, conn: _Connection, fields: list[str], client_id: int) -> str:
        try:
            msg_id = int(fields[0])
        except ValueError:
            msg_id = -1
        name = REQUEST_NAMES.get(msg_id, f"unknown{msg_id}")
        self.stats.requests_by_type[name] += 1
        self.requests.append(
            RecordedRequest(
                self.clock.now(), time.time(), conn.id, client_id, msg_id, name, tuple(fields)
            )
        )
        return name

    def _dispatch(self, conn: _Connection, fields: list[str]) -> None:
        msg_id = int(fields[0])
        handler = getattr(self, f"_on_{REQUEST_NAMES.get(msg_id, '')}", None)
        if handler is None:
            self.stats.unknown_messages += 1
            log.warning("unhandled message id %s: %s", msg_id, fields[:6])
            return
        handler(conn, FieldReader(fields))

    # --- background ---------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            if not self.stalled:
                self._step()

    def _step(self) -> None:
        self.broker.step()
        if self.link_up:
            for conn in list(self._conns.values()):
                for line in list(conn.lines.values()):
                    self._send_ticks(conn, line, only_changes=True)

    async def step(self) -> None:
        """Let working orders fill and push quote changes now (instead of waiting a tick)."""
        self._step()
        await self._drain_all()

    async def advance(self, seconds: float) -> None:
        """Advance the simulated clock, then step the world (fills, stops, streaming ticks)."""
        self.clock.advance(seconds)
        await self.step()

    async def _drain_all(self) -> None:
        for conn in list(self._conns.values()):
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
        # Let the client's protocol see the data before the caller continues.
        await asyncio.sleep(0)

    def connections(self) -> list[int]:
        """Client ids of the API connections that completed the handshake."""
        return [c.client_id for c in self._conns.values() if c.ready]

    # --- broker listener ----------------------------------------------------------------------

    def _order_viewers(self, order: SimOrder) -> list[_Connection]:
        return [
            c
            for c in self._conns.values()
            if c.ready and (c.client_id == order.client_id or c.client_id == 0)
        ]

    def order_changed(self, order: SimOrder) -> None:
        for conn in self._order_viewers(order):
            self._send_order(conn, order)

    def _send_order(self, conn: _Connection, order: SimOrder) -> None:
        conn.send(p.open_order(order.contract, order.view(), self.broker.order_state(order)))
        conn.send(
            p.order_status(
                order.order_id,
                order.status,
                order.filled,
                order.remaining,
                round(order.avg_fill_price, 4),
                order.perm_id,
                order.parent_id,
                order.last_fill_price,
                order.client_id,
                order.why_held,
            )
        )

    def order_error(self, order: SimOrder, code: int, text: str) -> None:
        for conn in self._order_viewers(order):
            conn.send(p.error(order.order_id, code, text))

    def order_filled(self, order: SimOrder, executions: list[Execution]) -> None:
        for conn in self._order_viewers(order):
            for ex in executions:
                conn.send(p.exec_details(-1, ex.contract, self._exec_view(ex)))
            conn.send(
                p.order_status(
                    order.order_id,
                    order.status,
                    order.filled,
                    order.remaining,
                    round(order.avg_fill_price, 4),
                    order.perm_id,
                    order.parent_id,
                    order.last_fill_price,
                    order.client_id,
                )
            )
            conn.send(p.open_order(order.contract, order.view(), self.broker.order_state(order)))
            for ex in executions:
                conn.send(p.commission_report(ex.exec_id, ex.commission, "USD", ex.realized_pnl))
        changed = [ex.instrument for ex in executions if ex.instrument is not None]
        self._push_account_changes(order.account, changed)

    def positions_changed(self, account_id: str, instruments: list[Instrument]) -> None:
        self._push_account_changes(account_id, instruments)

    def _push_account_changes(self, account_id: str, instruments: list[Instrument]) -> None:
        acct = self.broker.accounts[account_id]
        for conn in list(self._conns.values()):
            if not conn.ready:
                continue
            if conn.positions_subscribed:
                for inst in instruments:
                    pos = acct.positions[inst.con_id]
                    conn.send(
                        p.position(account_id, inst.wire(""), pos.quantity, round(pos.avg_cost, 4))
                    )
            if conn.account_updates == account_id:
                for inst in instruments:
                    self._send_portfolio_item(conn, account_id, inst)
                self._send_account_values(conn, account_id)

    def _exec_view(self, ex: Execution) -> p.ExecutionView:
        return p.ExecutionView(
            exec_id=ex.exec_id,
            time=ex.time.strftime("%Y%m%d %H:%M:%S UTC"),
            account=ex.order.account,
            exchange="CBOE" if isinstance(ex.instrument, OptionContract) else "ISLAND",
            side=ex.side,
            shares=ex.shares,
            price=ex.price,
            perm_id=ex.order.perm_id,
            client_id=ex.order.client_id,
            order_id=ex.order.order_id,
            cum_qty=ex.cum_qty,
            avg_price=ex.avg_price,
            order_ref=ex.order.order_ref,
        )

    # --- request handlers (one per client message) ------------------------------------------------

    def _instrument(self, wc: WireContract) -> Instrument | None:
        matches = self.catalog.match(wc, self.clock.today())
        return matches[0] if len(matches) == 1 else None

    def _on_startApi(self, conn: _Connection, r: FieldReader) -> None:
        self.stats.protocol_errors += 1
        log.error("startApi received twice on connection %d", conn.id)

    def _on_reqMktData(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()  # version
        req_id = r.integer()
        wc = r.contract()
        legs = []
        if wc.sec_type == "BAG":
            legs = [
                p.ComboLegSpec(r.integer(), r.integer(), r.text(), r.text())
                for _ in range(r.integer())
            ]
        if r.flag():
            r.skip(3)
        generic = frozenset(t.strip() for t in r.text().split(",") if t.strip())
        snapshot = r.flag()
        r.flag()  # regulatory snapshot
        r.text()  # options
        inst: Instrument | None = None
        combo: WireContract | None = None
        if wc.sec_type == "BAG":
            today = self.clock.today()
            if not legs or any(self.catalog.by_con_id(leg.con_id, today) is None for leg in legs):
                conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
                return
            combo = WireContract(symbol=wc.symbol, sec_type="BAG", combo_legs=tuple(legs))
        else:
            inst = self._instrument(wc)
            if inst is None:
                conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
                return
        entitled = self._entitled_data(conn, req_id)
        if entitled is None:
            return
        delayed, data_type = entitled
        if delayed:
            # Delayed data accepts only these generic ticks (IB, "Delayed Streaming Data",
            # https://interactivebrokers.github.io/tws-api/delayed_data.html).
            generic = generic & DELAYED_GENERIC_TICKS
        if not snapshot and not self.lines.acquire((conn.id, req_id)):
            conn.send(p.error(req_id, 101, ERROR_TEXTS[101]))
            return
        line = _Line(req_id, inst, combo, generic, delayed)
        conn.send(p.market_data_type(req_id, data_type))
        conn.send(p.tick_req_params(req_id, 0.01, "SMART" if inst else "", 3))
        self._send_ticks(conn, line, only_changes=False)
        if snapshot:
            conn.send(p.tick_snapshot_end(req_id))
        else:
            conn.lines[req_id] = line

    def _entitled_data(self, conn: _Connection, req_id: int) -> tuple[bool, int] | None:
        """(delayed, market data type) the request gets, after sending IB's notice; None
        (after IB's error) when nothing will arrive. IB: type 1 live, 2 frozen, 3 delayed,
        4 delayed-frozen; 3/4 are "ignored if real-time data is available"
        (https://interactivebrokers.github.io/tws-api/market_data_type.html)."""
        ent = self.entitlement_state
        if ent.competing_session:
            # Another live login (TWS, mobile, web) holds the data session (IB message codes;
            # thetagang README FAQ): nothing arrives until it logs out.
            conn.send(p.error(req_id, 10197, ERROR_TEXTS[10197]))
            return None
        live_requested = conn.md_type in (1, 2)
        if ent.live and ent.api_subscription:
            if ent.advisory is not None:
                # 10090 / 10091 are advisory: the subscribed part keeps streaming.
                conn.send(p.error(req_id, ent.advisory, ERROR_TEXTS[ent.advisory]))
            return False, 2 if conn.md_type in (2, 4) else 1
        if live_requested:
            if ent.live:
                conn.send(p.error(req_id, 10089, ERROR_TEXTS[10089]))
            else:
                text = ERROR_TEXTS[354]
                if not ent.delayed:
                    text = text.replace("is available", "is not available")
                conn.send(p.error(req_id, 354, text))
            return None
        if ent.delayed:
            conn.send(p.error(req_id, 10167, ERROR_TEXTS[10167]))
            return True, conn.md_type
        conn.send(p.error(req_id, 10168, ERROR_TEXTS[10168]))
        return None

    def _on_cancelMktData(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        req_id = r.integer()
        if conn.lines.pop(req_id, None) is not None:
            self.lines.release((conn.id, req_id))

    def _send_ticks(self, conn: _Connection, line: _Line, *, only_changes: bool) -> None:
        ticks = self._tick_values(line)
        for key, value in ticks:
            if only_changes and line.sent.get(key) == value:
                continue
            line.sent[key] = value
            kind, tick_type = key
            if line.delayed:
                tick_type = _DELAYED.get(tick_type, _DELAYED_GREEKS.get(tick_type, tick_type))
            if kind == "price":
                price, size = value
                conn.send(p.tick_price(line.req_id, tick_type, price, size))
            elif kind == "size":
                conn.send(p.tick_size(line.req_id, tick_type, value))
            elif kind == "generic":
                conn.send(p.tick_generic(line.req_id, tick_type, value))
            elif kind == "string":
                if line.delayed and tick_type == 45:
                    tick_type = 88
                conn.send(p.tick_string(line.req_id, tick_type, value))
            elif kind == "greeks":
                iv, greeks, und = value
                conn.send(self._option_computation(line.req_id, tick_type, iv, greeks, und))

    @staticmethod
    def _option_computation(
        req_id: int, tick_type: int, iv: float | None, g: Greeks | None, und: float
    ) -> list[p.Field]:
        if g is None or iv is None:
            return p.tick_option_computation(
                req_id,
                tick_type,
                implied_vol=-1.0,
                delta=-2.0,
                opt_price=-1.0,
                pv_dividend=-1.0,
                gamma=-2.0,
                vega=-2.0,
                theta=-2.0,
                und_price=round(und, 4),
            )
        return p.tick_option_computation(
            req_id,
            tick_type,
            implied_vol=round(iv, 6),
            delta=round(g.delta, 6),
            opt_price=round(g.price, 4),
            pv_dividend=0.0,
            gamma=round(g.gamma, 6),
            vega=round(g.vega, 6),
            theta=round(g.theta, 6),
            und_price=round(und, 4),
        )

    def _tick_values(self, line: _Line) -> list[tuple[tuple[str, int], Any]]:
        # Delayed data is the world as it was 15 minutes ago, like IB's delayed feed.
        when = self.clock.now() - (DELAY if line.delayed else dt.timedelta(0))
        now_epoch = str(int(when.timestamp()))
        out: list[tuple[tuple[str, int], Any]] = []
        inst = line.instrument
        gen = line.generic_ticks
        if inst is None:
            assert line.combo is not None
            bid = ask = 0.0
            for leg in line.combo.combo_legs:
                leg_inst = self.catalog.by_con_id(leg.con_id, self.clock.today())
                assert leg_inst is not None
                b, a, _l = self.broker._quote(leg_inst)
                if leg.action == "BUY":
                    bid, ask = bid + leg.ratio * b, ask + leg.ratio * a
                else:
                    bid, ask = bid - leg.ratio * a, ask - leg.ratio * b
            out += [(("price", 1), (round(bid, 2), 1.0)), (("price", 2), (round(ask, 2), 1.0))]
            return out
        if isinstance(inst, Underlying):
            q = self.market.stock_quote(inst.symbol, when)
            out += [
                (("price", 1), (q.bid, q.bid_size)),
                (("price", 2), (q.ask, q.ask_size)),
                (("price", 4), (q.last, q.last_size)),
                (("size", 8), q.volume),
                (("price", 6), (q.high, 0.0)),
                (("price", 7), (q.low, 0.0)),
                (("price", 9), (q.close, 0.0)),
                (("price", 14), (q.open, 0.0)),
                (("string", 45), now_epoch),
            ]
            if "100" in gen:
                out += [(("size", 29), q.call_volume), (("size", 30), q.put_volume)]
            if "101" in gen:
                out += [(("size", 27), q.call_open_interest), (("size", 28), q.put_open_interest)]
            if "104" in gen:
                out.append((("generic", 23), round(q.hist_vol, 6)))
            if "106" in gen:
                out.append((("generic", 24), round(q.implied_vol, 6)))
            if "165" in gen:
                out.append((("size", 21), q.avg_volume))
            if "236" in gen:
                out.append((("generic", 46), 3.0))
            if "456" in gen:
                # IB Dividends: generic tick 456 -> tick string 59 (notes/ib-behaviour.md §f).
                out.append(
                    (("string", 59), dividend_tick(inst.symbol, when.astimezone(NEW_YORK).date()))
                )
            return out
        oq = self.market.option_quote(inst, when)
        out += [
            (("price", 1), (oq.bid, oq.bid_size)),
            (("price", 2), (oq.ask, oq.ask_size)),
            (("price", 4), (oq.last, oq.last_size)),
            (("size", 8), oq.volume),
            (("price", 9), (oq.close, 0.0)),
            (("string", 45), now_epoch),
            (("greeks", 10), (oq.bid_iv, oq.bid_greeks, oq.underlying)),
            (("greeks", 11), (oq.ask_iv, oq.ask_greeks, oq.underlying)),
            (("greeks", 13), (oq.iv, oq.model, oq.underlying)),
        ]
        if "101" in gen:
            out.append((("size", 27 if inst.right == "C" else 28), oq.open_interest))
        if "100" in gen:
            out.append((("size", 29 if inst.right == "C" else 30), oq.volume))
        if "104" in gen:
            day = self.clock.today()
            out.append((("generic", 23), round(self.market.realised_vol(inst.symbol, day), 6)))
        if "106" in gen:
            out.append((("generic", 24), round(oq.iv, 6)))
        return out

    def _on_reqMarketDataType(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        conn.md_type = r.integer()

    def _on_placeOrder(self, conn: _Connection, r: FieldReader) -> None:
        req = p.parse_place_order(r.fields, conn.server_version)
        self.orders_received.append(ReceivedOrder(self.clock.now(), conn.client_id, req))
        if req.unread_fields:
            self.stats.protocol_errors += 1
            log.error("placeOrder %d left %d fields unread", req.order_id, req.unread_fields)
        try:
            if req.what_if:
                state = self.broker.what_if(req)
                if self._unanswered_what_ifs > 0:
                    # TWS can first send an openOrder holding only warningText and unset
                    # values (erdewit/ib_insync#380): ib_async keeps waiting for a real one.
                    self._unanswered_what_ifs -= 1
                    state = p.OrderStateView(
                        status="PreSubmitted", warning_text="Preview not available yet"
                    )
                contract, _inst, _legs = self.broker._resolve(req)
                view = p.OpenOrderView(
                    order_id=req.order_id,
                    client_id=conn.client_id,
                    perm_id=0,
                    action=req.action,
                    total_quantity=req.total_quantity,
                    order_type=req.order_type,
                    lmt_price=req.lmt_price,
                    aux_price=req.aux_price,
                    tif=req.tif,
                    account=req.account or next(iter(self.broker.accounts)),
                    order_ref=req.order_ref,
                    what_if=True,
                )
                conn.send(p.open_order(contract, view, state))
                return
            self.broker.place(req, conn.client_id)
        except OrderRejected as exc:
            conn.send(p.error(req.order_id, exc.code, exc.text, exc.advanced_json))
            live = self.broker.orders.get((conn.client_id, req.order_id))
            if (
                self.resend_after_refused_modification
                and not req.what_if
                and live is not None
                and live.is_active
            ):
                # A refused modification leaves the order working as it was; say so, since
                # ib_async marks the trade ValidationError or Cancelled on the error alone.
                self._send_order(conn, live)
            return
        if self.link_up:
            self.broker.step()

    def _on_exerciseOptions(self, conn: _Connection, r: FieldReader) -> None:
        """exerciseOptions (message 21, version 2 as ib_async 2.1.0 sends it at v178: no
        manualOrderTime): reqId, the contract without primaryExchange, action, quantity,
        account, override. Refusals answer error 321 on the request id; a done exercise
        shows as position and account changes (see :mod:`.expiry`)."""
        r.integer()  # version
        req_id = r.integer()
        wc = WireContract(
            con_id=r.integer(),
            symbol=r.text(),
            sec_type=r.text(),
            last_trade_date=r.text(),
            strike=r.double() or 0.0,
            right=r.text(),
            multiplier=r.text(),
            exchange=r.text(),
            currency=r.text(),
            local_symbol=r.text(),
            trading_class=r.text(),
        )
        action = r.integer()
        quantity = r.integer()
        account = r.text()
        r.integer()  # override: ignored, the simulator has no exercise limits to override
        inst = self._instrument(dataclasses.replace(wc, exchange=""))
        if not isinstance(inst, OptionContract):
            conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
            return
        try:
            changed = exercise(
                self.broker, account, inst, wc.exchange, action, quantity, self.clock.now()
            )
        except ExerciseRefused as exc:
            conn.send(p.error(req_id, exc.code, exc.text))
            return
        self.exercise_requests.append((account, inst.con_id, action, quantity))
        if changed:
            self._push_account_changes(account, changed)

    def _on_cancelOrder(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        order_id = r.integer()
        try:
            self.broker.cancel(conn.client_id, order_id)
        except OrderRejected as exc:
            conn.send(p.error(order_id, exc.code, exc.text))

    def _on_reqGlobalCancel(self, conn: _Connection, r: FieldReader) -> None:
        self.broker.cancel_all()

    def _on_reqOpenOrders(self, conn: _Connection, r: FieldReader) -> None:
        for order in self.broker.orders.values():
            if order.is_active and (conn.client_id in (0, order.client_id)):
                self._send_order(conn, order)
        conn.send(p.open_order_end())

    def _on_reqAllOpenOrders(self, conn: _Connection, r: FieldReader) -> None:
        for order in self.broker.orders.values():
            if order.is_active:
                self._send_order(conn, order)
        conn.send(p.open_order_end())

    def _on_reqAutoOpenOrders(self, conn: _Connection, r: FieldReader) -> None:
        pass

    def _on_reqCompletedOrders(self, conn: _Connection, r: FieldReader) -> None:
        for order in self.broker.orders.values():
            if not order.is_active:
                conn.send(p.completed_order(order.contract, order.view(), order.status))
        conn.send(p.completed_orders_end())

    def _on_reqExecutions(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        req_id = r.integer()
        client_filter = r.integer()
        acct_filter, _time, symbol, sec_type, _exch, side = (r.text() for _ in range(6))
        side_code = {"BUY": "BOT", "SELL": "SLD"}.get(side.upper(), "")
        for ex in self.broker.executions:
            if client_filter and ex.order.client_id != client_filter:
                continue
            if acct_filter and ex.order.account != acct_filter:
                continue
            if symbol and ex.contract.symbol != symbol.upper():
                continue
            if sec_type and ex.contract.sec_type != sec_type.upper():
                continue
            if side_code and ex.side != side_code:
                continue
            conn.send(p.exec_details(req_id, ex.contract, self._exec_view(ex)))
            if ex.instrument is not None:
                conn.send(p.commission_report(ex.exec_id, ex.commission, "USD", ex.realized_pnl))
        conn.send(p.exec_details_end(req_id))

    def _on_reqIds(self, conn: _Connection, r: FieldReader) -> None:
        self._next_valid_id = max(self._next_valid_id, self.broker.max_order_id + 1)
        conn.send(p.next_valid_id(self._next_valid_id))

    def _on_reqManagedAccts(self, conn: _Connection, r: FieldReader) -> None:
        conn.send(p.managed_accounts(list(self.broker.accounts)))

    def _on_reqCurrentTime(self, conn: _Connection, r: FieldReader) -> None:
        conn.send(p.current_time(int(self.clock.timestamp())))

    def _on_reqContractDetails(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        req_id = r.integer()
        wc = r.contract()
        today = self.clock.today()
        matches = self.catalog.match(wc, today)
        if not matches:
            conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
            return
        for inst in matches:
            details = self.catalog.details(inst, today, wc.exchange or "SMART")
            conn.send(p.contract_details(req_id, details))
        conn.send(p.contract_details_end(req_id))

    def _on_reqSecDefOptParams(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        symbol = r.text()
        r.text()  # futFopExchange
        r.text()  # underlying secType
        con_id = r.integer()
        und = self.catalog.underlying(symbol)
        if und is None or (con_id and con_id != und.con_id):
            conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
            return
        today = self.clock.today()
        expiries = self.catalog.expiries(und.symbol, today)
        for exchange in ("SMART", "CBOE", "AMEX", "ISE"):
            conn.send(
                p.security_definition_option_parameter(
                    req_id, exchange, und.con_id, und.symbol, "100", expiries, und.strikes
                )
            )
        conn.send(p.security_definition_option_parameter_end(req_id))

    # --- accounts ----------------------------------------------------------------------------

    def _account_rows(self, account_id: str) -> list[tuple[str, str, str]]:
        acct = self.broker.accounts[account_id]
        values = self.broker.account_values(acct)
        rows = [
            ("AccountCode", account_id, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("Currency", "USD", "USD"),
        ]
        rows += [(k, f"{v:.2f}", "USD") for k, v in values.items()]
        rows += [
            ("CashBalance", f"{acct.cash:.2f}", "USD"),
            ("CashBalance", f"{acct.cash:.2f}", "BASE"),
            ("TotalCashBalance", f"{acct.cash:.2f}", "BASE"),
            ("NetLiquidationByCurrency", f"{values['NetLiquidation']:.2f}", "BASE"),
            ("DayTradesRemaining", "-1", ""),
            (
                "Leverage-S",
                f"{values['GrossPositionValue'] / values['NetLiquidation']:.2f}"
                if values["NetLiquidation"]
                else "0.00",
                "",
            ),
            ("RealCurrency", "USD", "USD"),
        ]
        return rows

    def _send_account_values(self, conn: _Connection, account_id: str) -> None:
        for key, value, currency in self._account_rows(account_id):
            conn.send(p.update_account_value(key, value, currency, account_id))
        conn.send(p.update_account_time(self.clock.now().astimezone(NEW_YORK).strftime("%H:%M")))

    def _send_portfolio_item(self, conn: _Connection, account_id: str, inst: Instrument) -> None:
        acct = self.broker.accounts[account_id]
        pos = acct.positions[inst.con_id]
        mark = self.market.mark(inst)
        value = pos.quantity * mark * inst.multiplier
        conn.send(
            p.update_portfolio(
                inst.wire(""),
                pos.quantity,
                round(mark, 4),
                round(value, 2),
                round(pos.avg_cost, 4),
                round(value - pos.quantity * pos.avg_cost, 2),
                round(pos.realized_pnl, 2),
                account_id,
            )
        )

    def _on_reqAccountUpdates(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        subscribe = r.flag()
        account_id = r.text() or next(iter(self.broker.accounts))
        if not subscribe:
            conn.account_updates = None
            return
        if account_id not in self.broker.accounts:
            conn.send(
                p.error(-1, 321, f"Error validating request.-'bB' : cause - Account {account_id}")
            )
            return
        conn.account_updates = account_id
        self._send_account_values(conn, account_id)
        for pos in self.broker.accounts[account_id].positions.values():
            if pos.quantity:
                self._send_portfolio_item(conn, account_id, pos.instrument)
        conn.send(p.account_download_end(account_id))

    def _on_reqAccountUpdatesMulti(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        req_id = r.integer()
        account = r.text()
        model = r.text()
        ids = list(self.broker.accounts) if account in ("", "All") else [account]
        for account_id in ids:
            if account_id not in self.broker.accounts:
                continue
            for key, value, currency in self._account_rows(account_id):
                conn.send(p.account_update_multi(req_id, account_id, model, key, value, currency))
        conn.send(p.account_update_multi_end(req_id))

    def _on_cancelAccountUpdatesMulti(self, conn: _Connection, r: FieldReader) -> None:
        pass

    def _on_reqAccountSummary(self, conn: _Connection, r: FieldReader) -> None:
        r.integer()
        req_id = r.integer()
        r.text()  # group
        tags = {t.strip() for t in r.text().split(",") if t.strip()}
        for account_id in self.broker.accounts:
            rows = self._account_rows(account_id)
            for tag, value, currency in rows:
                if tag == "AccountCode" or currency == "BASE":
                    continue
                if tag in tags or (
                    tag in ("CashBalance", "TotalCashBalance")
                    and any(t.startswith("$LEDGER") for t in tags)
                ):
                    conn.send(p.account_summary(req_id, account_id, tag, value, currency))
        conn.send(p.account_summary_end(req_id))

    def _on_cancelAccountSummary(self, conn: _Connection, r: FieldReader) -> None:
        pass

    def _on_reqPositions(self, conn: _Connection, r: FieldReader) -> None:
        conn.positions_subscribed = True
        for account_id, acct in self.broker.accounts.items():
            for pos in acct.positions.values():
                if pos.quantity:
                    conn.send(
                        p.position(
                            account_id,
                            pos.instrument.wire(""),
                            pos.quantity,
                            round(pos.avg_cost, 4),
                        )
                    )
        conn.send(p.position_end())

    def _on_cancelPositions(self, conn: _Connection, r: FieldReader) -> None:
        conn.positions_subscribed = False

    def _on_reqPnL(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        account_id = r.text()
        acct = self.broker.accounts.get(account_id)
        if acct is None:
            conn.send(
                p.error(req_id, 321, f"Error validating request.-'bF' : cause - {account_id}")
            )
            return
        values = self.broker.account_values(acct)
        conn.send(
            p.pnl(req_id, 0.0, round(values["UnrealizedPnL"], 2), round(acct.realized_pnl, 2))
        )

    def _on_reqPnLSingle(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        account_id = r.text()
        r.text()
        con_id = r.integer()
        acct = self.broker.accounts.get(account_id)
        pos = acct.positions.get(con_id) if acct else None
        if pos is None:
            conn.send(p.error(req_id, 321, "Error validating request.-'bG' : cause - no position"))
            return
        mark = self.market.mark(pos.instrument)
        value = pos.quantity * mark * pos.instrument.multiplier
        conn.send(
            p.pnl_single(
                req_id,
                pos.quantity,
                0.0,
                round(value - pos.quantity * pos.avg_cost, 2),
                round(pos.realized_pnl, 2),
                round(value, 2),
            )
        )

    def _on_cancelPnL(self, conn: _Connection, r: FieldReader) -> None:
        pass

    _on_cancelPnLSingle = _on_cancelPnL
    _on_cancelHistoricalData = _on_cancelPnL
    _on_cancelCalculateImpliedVolatility = _on_cancelPnL
    _on_cancelCalculateOptionPrice = _on_cancelPnL

    # --- option calculators, history, news ------------------------------------------------------

    def _on_calculateImpliedVolatility(self, conn: _Connection, r: FieldReader) -> None:
        self._calculate(conn, r, implied=True)

    def _on_calculateOptionPrice(self, conn: _Connection, r: FieldReader) -> None:
        self._calculate(conn, r, implied=False)

    def _calculate(self, conn: _Connection, r: FieldReader, *, implied: bool) -> None:
        from .market import bsm_greeks, implied_vol

        r.integer()
        req_id = r.integer()
        inst = self._instrument(r.contract())
        value = r.double() or 0.0
        under = r.double() or 0.0
        if not isinstance(inst, OptionContract):
            conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
            return
        t = self.market.time_to_expiry(inst)
        vol = implied_vol(value, under, inst.strike, t, inst.right) if implied else value
        greeks = bsm_greeks(under, inst.strike, t, vol, inst.right) if vol else None
        conn.send(self._option_computation(req_id, 13, vol, greeks, under))

    def _on_reqHistoricalData(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        wc = r.contract()
        r.flag()  # includeExpired
        end_text = r.text()
        bar_size = r.text()
        duration = r.text()
        use_rth = r.flag()
        what = r.text()
        format_date = r.integer(1)
        inst = self._instrument(wc)
        if inst is None:
            conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
            return
        weight = 2 if what.upper() == "BID_ASK" else 1
        identical = (inst.con_id, wc.exchange, end_text, bar_size, duration, use_rth, what)
        reason = self.pacer.check(
            self.clock.timestamp(), identical, (inst.con_id, wc.exchange, what), weight
        )
        if reason:
            conn.send(p.error(req_id, 162, ERROR_TEXTS[162]))
            return
        try:
            end = _parse_end(end_text, self.clock.now())
            bars = self.market.bars(inst, end, duration, bar_size, what, format_date)
        except BarRequestError as exc:
            conn.send(p.error(req_id, exc.code, exc.text))
            return
        start = bars[0].date
        conn.send(p.historical_data(req_id, start, end.strftime("%Y%m%d %H:%M:%S"), bars))

    def _on_reqMarketRule(self, conn: _Connection, r: FieldReader) -> None:
        rule_id = r.integer()
        increments = MARKET_RULES.get(rule_id)
        if increments is None:
            conn.send(
                p.error(-1, 321, f"Error validating request:-'bd' : Invalid market rule {rule_id}")
            )
            return
        conn.send(p.market_rule(rule_id, increments))

    def _on_reqMatchingSymbols(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        pattern = r.text().strip().upper()
        samples = [
            p.SymbolSample(
                u.con_id, u.symbol, "STK", u.primary_exchange, "USD", ("OPT",), u.long_name
            )
            for u in self.catalog.underlyings.values()
            if pattern and (u.symbol.startswith(pattern) or pattern in u.long_name)
        ]
        conn.send(p.symbol_samples(req_id, samples[:16]))

    def _on_reqNewsProviders(self, conn: _Connection, r: FieldReader) -> None:
        conn.send(p.news_providers(PROVIDERS))

    def _universe_names(self) -> dict[str, str]:
        return {s: u.long_name for s, u in self.catalog.underlyings.items()}

    def _on_reqHistoricalNews(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        con_id = r.integer()
        providers = {c for c in r.text().split("+") if c}
        r.text()  # start
        r.text()  # end
        total = r.integer(10)
        inst = self.catalog.by_con_id(con_id, self.clock.today())
        if inst is None:
            conn.send(p.error(req_id, 200, ERROR_TEXTS[200]))
            return
        und = inst if isinstance(inst, Underlying) else inst.underlying
        items = [
            h
            for h in self.news.headlines(und.symbol, und.long_name, self.clock.now())
            if not providers or h.provider in providers
        ]
        for h in items[:total]:
            stamp = h.time.strftime("%Y-%m-%d %H:%M:%S") + ".0"
            conn.send(p.historical_news(req_id, stamp, h.provider, h.article_id, h.headline))
        conn.send(p.historical_news_end(req_id, len(items) > total))

    def _on_reqNewsArticle(self, conn: _Connection, r: FieldReader) -> None:
        req_id = r.integer()
        r.text()  # provider
        article_id = r.text()
        found = self.news.article(article_id, self._universe_names(), self.clock.now())
        if found is None:
            conn.send(p.error(req_id, 10172, f"Failed to request news article: {article_id}"))
            return
        conn.send(p.news_article(req_id, 0, found.body))

    # --- faults and scenario hooks (documented in the package docstring) --------------------------

    def _broadcast(self, fields: list[p.Field]) -> None:
        for conn in self._conns.values():
            if conn.ready:
                conn.send(fields)

    def inject_error(
        self, code: int, req_id: int = -1, text: str | None = None, client_id: int | None = None
    ) -> None:
        """Send error ``code`` (IB's text unless given) to every client, or to ``client_id``."""
        fields = p.error(req_id, code, text if text is not None else ERROR_TEXTS.get(code, ""))
        for conn in self._conns.values():
            if conn.ready and (client_id is None or conn.client_id == client_id):
                conn.send(fields)

    def drop_connections(self) -> int:
        """Abort every client socket (TWS crash / network cut); returns how many were open."""
        conns = list(self._conns.values())
        for conn in conns:
            conn.abort()
        self.stats.forced_disconnects += len(conns)
        return len(conns)

    def stall(self) -> None:
        """Keep sockets open but stop answering (new connections get no handshake reply)."""
        self.stalled = True
        self._resume.clear()

    def resume(self) -> None:
        """End a stall: queued requests are answered and held replies are sent."""
        self.stalled = False
        self._resume.set()
        for conn in self._conns.values():
            conn.flush_pending()

    async def refuse_connections(self) -> None:
        """Stop listening (the client sees ConnectionRefusedError, IB's client-side 502);
        open connections stay up."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def accept_connections(self) -> None:
        """Listen again on the same port after :meth:`refuse_connections`."""
        if self._server is None:
            await self._listen(self.port)

    def connectivity_lost(self) -> None:
        """Error 1100 to every client: TWS lost IB's servers; the API socket stays up and
        streaming quotes stop."""
        self.link_up = False
        self._broadcast(p.error(-1, 1100, ERROR_TEXTS[1100]))

    def restored(self, data_lost: bool = True) -> None:
        """1101 (market-data subscriptions dropped: clients must resubscribe) or 1102."""
        self.link_up = True
        code = 1101 if data_lost else 1102
        if data_lost:
            for conn in self._conns.values():
                for req_id in list(conn.lines):
                    conn.lines.pop(req_id)
                    self.lines.release((conn.id, req_id))
        self._broadcast(p.error(-1, code, ERROR_TEXTS[code]))

    def delay_responses(self, request_name: str, seconds: float | None) -> None:
        """Answer requests of one kind (e.g. "reqContractDetails", "reqHistoricalData") only after
        ``seconds`` of wall time; None or 0 answers them at once again."""
        if seconds:
            self._response_delays[request_name] = seconds
        else:
            self._response_delays.pop(request_name, None)

    def reject_next_order(
        self, code: int = 201, text: str | None = None, advanced_json: str = ""
    ) -> None:
        """The next placeOrder or what-if is refused with ``code`` (and IB-style text);
        ``advanced_json`` travels in the error's advancedOrderRejectJson field."""
        self.broker.reject_next_order(
            code,
            text if text is not None else ERROR_TEXTS.get(code, "Order rejected - reason:"),
            advanced_json,
        )

    def what_if_unanswered(self, count: int = 1) -> None:
        """The next ``count`` what-ifs get only a warning-only openOrder with every value
        unset (what TWS sends before a real preview, or instead of one): ib_async 2.1.0's
        ``whatIfOrderAsync`` then waits forever."""
        self._unanswered_what_ifs += count

    def partial_fill_next_order(self, quantities: list[float]) -> None:
        """The next order fills in these slices, one per step (the rest keeps working)."""
        self.broker.partial_fill_next_order(quantities)

    def delay_next_fill(self, seconds: float) -> None:
        """The next order cannot fill until the simulated clock has moved ``seconds``."""
        self.broker.delay_next_fill(seconds)

    def entitlement(
        self,
        *,
        live: bool = True,
        delayed: bool = True,
        api_subscription: bool = True,
        competing_session: bool = False,
        advisory: int | None = None,
    ) -> None:
        """Market-data permissions (see :class:`Entitlement`): live off -> 354 for live
        requests, 10167 + delayed ticks for reqMarketDataType(3/4); delayed off too -> 10168;
        ``api_subscription=False`` -> 10089; ``competing_session`` -> 10197; ``advisory``
        10090 / 10091 sent before data that keeps coming."""
        if advisory not in (None, 10090, 10091):
            raise ValueError("advisory is 10090 or 10091")
        self.entitlement_state = Entitlement(
            live=live,
            delayed=delayed,
            api_subscription=api_subscription,
            competing_session=competing_session,
            advisory=advisory,
        )

    def press_transmit(self, order_ref: str) -> bool:
        """What the person does in TWS for an order sent with ``transmit=False``: transmit it.
        Returns False if no such untransmitted working order exists."""
        for order in self.broker.orders.values():
            if order.order_ref == order_ref and order.is_active and not order.transmit:
                order.transmit = True
                self.broker.step()
                return True
        return False

    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin an underlying's price (None: back to the random walk)."""
        self.market.set_price(symbol, price)

    def set_options_level(self, account_id: str, level: int) -> None:
        self.broker.accounts[account_id].options_level = level

    def requests_named(self, name: str) -> list[RecordedRequest]:
        return [req for req in self.requests if req.name == name]


def _parse_end(text: str, now: dt.datetime) -> dt.datetime:
    """endDateTime as ib_async formats it ("" = now, "YYYYmmdd HH:MM:SS UTC", "...-..." UTC,
    "YYYYmmdd HH:MM:SS <zone>", or local New York time without a zone)."""
    from zoneinfo import ZoneInfo

    text = text.strip()
    if not text:
        return now
    try:
        if "-" in text[:9] and len(text) >= 17:
            return dt.datetime.strptime(text[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
        parts = text.split(" ", 2)
        stamp = dt.datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")
        zone = ZoneInfo(parts[2]) if len(parts) == 3 else NEW_YORK
        return stamp.replace(tzinfo=zone).astimezone(dt.UTC)
    except (ValueError, IndexError, KeyError) as exc:
        raise BarRequestError(
            162, f"Historical Market Data Service error message:invalid end date {text!r}"
        ) from exc
