"""Quotes from TWS at the message-rate floor: the connection hands its ``IB`` to this module.

Two ways to ask, both one message per contract on the way in:

* **snapshot** (``reqMktData(snapshot=True)``): TWS answers once and ends the request itself
  with ``tickSnapshotEnd``, so no cancel is ever sent. IB allows no generic ticks on a snapshot
  (error 321, tws-api ``md_request.html``), so no open interest. A snapshot holds a
  market-data line until it ends (up to 11 s, notes/pricing.md "Snapshot mode"): never more
  snapshots in flight than the lines leased. Option chains use this.
* **stream**: a streaming request per contract, held until its quote is complete; the cancels
  are deferred past the reply (sent by the connection's background task group) unless another
  batch needs the lines. Quotes that need generic ticks (the underlying, legs) use this.

Each chunk of requests is sent as soon as the rate limiter grants it (one throttle only). The
settle window starts when the last request is out and ends early once every contract has its
quote (or its snapshot ended, or TWS refused it). ib_async objects never leave this module and
the connection: replies are :class:`~sumppump.messages.common.Quote` structs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
from anyio.abc import TaskGroup
from ib_async import IB, Contract, Ticker

from sumppump.actors.ib_values import ib_number, ib_positive
from sumppump.actors.send_budget import MessageBudget, Paced
from sumppump.messages.common import DataType, Greeks, NoMarketData, Quote
from sumppump.messages.connection import FetchQuotes, Quotes, QuoteTarget

__all__ = [
    "COMPETING_SESSION_CODE",
    "COMPETING_SESSION_HINT",
    "MARKET_DATA_TYPES",
    "NO_SUBSCRIPTION_CODES",
    "SUBSCRIBE_HINT",
    "MarketSignals",
    "QuoteFetcher",
    "ib_contract",
    "subscription_hint",
]

log = logging.getLogger(__name__)

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
#: 10197 "No market data during competing live session": another live login holds the market
#: data session (notes/ib-behaviour.md §g; thetagang's FAQ). Not a subscription problem.
COMPETING_SESSION_CODE: Final = 10197
COMPETING_SESSION_HINT: Final = (
    "Another live session of this IB user (TWS on another computer, IBKR Mobile or the Client "
    "Portal web site) took the market data. Log out there, or in that session give the data "
    "back, then ask again; a second user for the API avoids this."
)


def subscription_hint(code: int, sec_type: str) -> str:
    """The subscription to add for ``code`` (354 / 10089 / 10168) on a ``sec_type`` quote:
    OPRA for options, the US securities bundle for stocks and ETFs (IB's bundle names, Client
    Portal → Settings → Market Data Subscriptions); 10089 means TWS shows it but the API needs
    its own subscription; 10168 that delayed data is not enabled either."""
    wanted = (
        "OPRA (US Options Exchanges)"
        if sec_type in ("OPT", "BAG")
        else "US Securities Snapshot and Futures Value Bundle (US stocks and ETFs)"
    )
    where = "IBKR Client Portal → Settings → Market Data Subscriptions"
    if code == 10089:
        return (
            f"TWS has this data for display only: add the API subscription for {wanted} in {where}."
        )
    delayed = " (delayed data is not enabled on this account either)" if code == 10168 else ""
    return f"Subscribe to {wanted} in {where}, or accept delayed data{delayed}."


#: Margin kept from the caller's deadline for replying.
REPLY_MARGIN: Final = 0.5
#: IB ends a snapshot within 11 s (tws-api md_request.html); a little more before we give up.
SNAPSHOT_LIFETIME: Final = 12.0
#: Lines a snapshot fetch may hold at once: leaves lines for quotes asked meanwhile.
SNAPSHOT_LINES: Final = 60

Progress = Callable[[int, int], None]


class MarketSignals:
    """What ib_async's events tell the fetches waiting on them: a tick arrived, a request failed,
    a snapshot ended. Every waiter wakes on every change (no waiter can orphan another's wake)."""

    def __init__(self) -> None:
        self.errors: dict[int, list[tuple[int, str]]] = {}
        self.notices: list[str] = []
        self._changed = anyio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def error(self, req_id: int, code: int, message: str) -> None:
        self.errors.setdefault(req_id, []).append((code, message))
        self.changed()

    async def wait(self) -> None:
        await self._changed.wait()


@dataclass(slots=True)
class _Request:
    target: QuoteTarget
    ticker: Ticker
    req_id: int
    ended: asyncio.Future[object] | None = None  # snapshots: done at tickSnapshotEnd


@dataclass(slots=True)
class _Fetch:
    """One FetchQuotes in progress."""

    msg: FetchQuotes
    deadline: float
    progress: Progress | None
    sent: list[_Request] = field(default_factory=list)  # the batch in flight
    quotes: dict[int, Quote] = field(default_factory=dict)  # collected, by conId
    refused: NoMarketData | None = None

    def budget(self) -> float:
        return self.deadline - anyio.current_time()


class QuoteFetcher:
    """Answers :class:`FetchQuotes` for one ``IB``.

    ``deferred`` is the task group in which cancels and line releases finish after the reply.
    """

    def __init__(
        self,
        ib: IB,
        *,
        budget: MessageBudget,
        signals: MarketSignals,
        deferred: TaskGroup | None,
        lines_budget: int,
    ) -> None:
        self._ib = ib
        self._budget = budget
        self._signals = signals
        self._deferred = deferred
        self._lines_budget = lines_budget

    async def fetch(
        self, msg: FetchQuotes, deadline: float, progress: Progress | None
    ) -> Quotes | NoMarketData:
        """Quotes for ``msg.targets`` by ``deadline`` (what did not come is in ``missing``);
        :class:`NoMarketData` when TWS refused for want of a subscription and nothing came.

        :raises Paced: no market-data line or message grant within the deadline, before
            anything was sent. Cancellation cancels or ends what was sent (shielded).
        """
        fetch = _Fetch(msg=msg, deadline=deadline - REPLY_MARGIN, progress=progress)
        targets = list(msg.targets)
        cap = min(SNAPSHOT_LINES, self._lines_budget) if msg.snapshot else self._lines_budget
        lease_id, lines = await self._budget.lease_lines(
            len(targets), cap=cap, budget=max(0.0, fetch.budget())
        )
        notices_before = len(self._signals.notices)
        released = False
        try:
            if msg.snapshot:
                await self._snapshots(fetch, targets, lines)
                released = self._finish_snapshots(fetch, lease_id)
            else:
                released = await self._streams(fetch, targets, lines, lease_id)
        finally:
            if not released:
                with anyio.CancelScope(shield=True):
                    await self._release(fetch.sent, lease_id, snapshot=msg.snapshot)
        return self._reply(fetch, targets, notices_before)

    # ------------------------------------------------------------------ sending

    async def _send(self, fetch: _Fetch, targets: Sequence[QuoteTarget], room: int) -> None:
        """Send requests for ``targets`` chunk by chunk as the limiter grants them; a snapshot
        fetch never has more than ``room`` requests in flight."""
        sent = 0
        try:
            async for count in self._budget.chunks(len(targets), max_wait=max(0.0, fetch.budget())):
                if fetch.msg.snapshot:
                    while _in_flight(fetch) + count > room:
                        await self._signals.wait()
                for target in targets[sent : sent + count]:
                    fetch.sent.append(self._request(target, fetch.msg))
                sent += count
                if fetch.progress is not None:
                    fetch.progress(len(fetch.quotes) + len(fetch.sent), len(fetch.msg.targets))
        except Paced:
            if not fetch.sent and not fetch.quotes:
                raise  # nothing was sent: the caller is told when to retry

    def _request(self, target: QuoteTarget, msg: FetchQuotes) -> _Request:
        ib = self._ib
        contract = ib_contract(target)
        if msg.snapshot:
            # What IB.reqTickersAsync does, one contract at a time so the chunk leaves now.
            req_id = ib.client.getReqId()
            ended: asyncio.Future[object] = ib.wrapper.startReq(req_id, contract)  # type: ignore[no-untyped-call]
            ended.add_done_callback(self._on_snapshot_end)
            ticker = ib.wrapper.startTicker(req_id, contract, "snapshot")
            _forget_quote(ticker)
            ib.client.reqMktData(req_id, contract, "", True, False, [])  # type: ignore[no-untyped-call]
            return _Request(target=target, ticker=ticker, req_id=req_id, ended=ended)
        ticker = ib.reqMktData(contract, msg.generic_ticks, False, False)
        # ib_async keeps one Ticker per contract across requests: without this, the previous
        # request's prices would look complete before any new tick arrived.
        _forget_quote(ticker)
        req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker, -1)
        return _Request(target=target, ticker=ticker, req_id=req_id)

    def _on_snapshot_end(self, future: asyncio.Future[object]) -> None:
        if not future.cancelled():
            future.exception()  # a refused snapshot's error is read from MarketSignals
        self._signals.changed()

    # ------------------------------------------------------------------ snapshots

    async def _snapshots(self, fetch: _Fetch, targets: list[QuoteTarget], lines: int) -> None:
        with anyio.move_on_after(max(0.0, fetch.budget())):
            await self._send(fetch, targets, lines)
        await self._settle(fetch)
        self._collect(fetch)

    def _finish_snapshots(self, fetch: _Fetch, lease_id: int | None) -> bool:
        """Hand snapshots still open (their quote complete, their end not yet arrived) to the
        deferred group, which keeps their lines leased until they end. True when handed."""
        open_ = [r for r in fetch.sent if r.ended is not None and not r.ended.done()]
        if not open_ or self._deferred is None:
            return False
        for request in fetch.sent:
            if request not in open_:
                self._ib.wrapper.endTicker(request.ticker, "snapshot")
        self._deferred.start_soon(self._await_snapshot_ends, open_, lease_id)
        return True

    async def _await_snapshot_ends(self, open_: list[_Request], lease_id: int | None) -> None:
        with anyio.move_on_after(SNAPSHOT_LIFETIME):
            while any(r.ended is not None and not r.ended.done() for r in open_):
                await self._signals.wait()
        await self._release(open_, lease_id, snapshot=True)

    # ------------------------------------------------------------------ streams

    async def _streams(
        self, fetch: _Fetch, targets: list[QuoteTarget], lines: int, lease_id: int | None
    ) -> bool:
        """Batches of ``lines`` streams. Cancels go out before the next batch (it needs the
        lines) and after the reply for the last one. True when the release was deferred."""
        for start in range(0, len(targets), lines):
            if fetch.budget() <= 0.2:
                break
            if fetch.sent:  # the previous batch's lines are needed now
                await self._release(fetch.sent, None, snapshot=False)
                fetch.sent = []
            with anyio.move_on_after(max(0.0, fetch.budget())):
                await self._send(fetch, targets[start : start + lines], lines)
            await self._settle(fetch)
            self._collect(fetch)
        if self._deferred is None or not fetch.sent:
            return False
        self._deferred.start_soon(self._release, list(fetch.sent), lease_id, False)
        return True

    # ------------------------------------------------------------------ settling and replying

    async def _settle(self, fetch: _Fetch) -> None:
        """Wait (from now: every request is out) until each sent request has its quote, ended
        or failed, for at most ``settle`` seconds and never past the deadline."""
        wants_oi = "101" in fetch.msg.generic_ticks.split(",")
        with anyio.move_on_after(max(0.0, min(fetch.msg.settle, fetch.budget()))):
            while not all(self._done(r, wants_oi) for r in fetch.sent):
                await self._signals.wait()

    def _done(self, request: _Request, wants_oi: bool) -> bool:
        if request.ended is not None and request.ended.done():
            return True
        return _complete(request.ticker, wants_oi) or bool(self._signals.errors.get(request.req_id))

    async def _release(
        self, requests: Sequence[_Request], lease_id: int | None, snapshot: bool
    ) -> None:
        """Cancel what is still open (budgeted), then return the lines. Never raises."""
        ib = self._ib
        open_ = [r for r in requests if r.ended is None or not r.ended.done()]
        with anyio.CancelScope(shield=True):
            if open_ and ib.isConnected():
                with contextlib.suppress(Exception):
                    await self._budget(len(open_), max_wait=5.0)
                for request in open_:
                    with contextlib.suppress(Exception):
                        # By our own request id: ib_async's cancelMktData(contract) would cancel
                        # whichever request for that contract came last, maybe another caller's.
                        ib.client.cancelMktData(request.req_id)  # type: ignore[no-untyped-call]
                        if snapshot:
                            ib.wrapper.tickSnapshotEnd(request.req_id)  # ends ib_async's future
                        elif (
                            ib.wrapper.ticker2ReqId["mktData"].get(request.ticker) == request.req_id
                        ):
                            ib.wrapper.endTicker(request.ticker, "mktData")
            if snapshot:
                for request in requests:
                    ib.wrapper.endTicker(request.ticker, "snapshot")
            await self._budget.release_lines(lease_id)

    def _collect(self, fetch: _Fetch) -> None:
        """Read the settled batch's quotes (before its streams are cancelled) and errors."""
        for request in fetch.sent:
            for code, text in self._signals.errors.pop(request.req_id, []):
                if code in NO_SUBSCRIPTION_CODES:
                    hint = subscription_hint(code, request.target.sec_type)
                    fetch.refused = NoMarketData(code=code, message=text, subscribe_hint=hint)
                elif code == COMPETING_SESSION_CODE:
                    fetch.refused = NoMarketData(
                        code=code, message=text, subscribe_hint=COMPETING_SESSION_HINT
                    )
            quote = ticker_quote(request.target, request.ticker)
            if any(v is not None for v in (quote.bid, quote.ask, quote.last, quote.close)):
                fetch.quotes[request.target.con_id] = quote

    def _reply(
        self, fetch: _Fetch, targets: list[QuoteTarget], notices_before: int
    ) -> Quotes | NoMarketData:
        quotes = [fetch.quotes[t.con_id] for t in targets if t.con_id in fetch.quotes]
        if fetch.refused is not None and not quotes:
            return fetch.refused
        missing = [t.con_id for t in targets if t.con_id not in fetch.quotes]
        data_types = {q.data_type for q in quotes}
        return Quotes(
            quotes=tuple(quotes),
            missing=tuple(missing),
            notices=tuple(dict.fromkeys(self._signals.notices[notices_before:])),
            data_type=data_types.pop() if len(data_types) == 1 else "live",
        )


def _in_flight(fetch: _Fetch) -> int:
    return sum(1 for r in fetch.sent if r.ended is not None and not r.ended.done())


# ---------------------------------------------------------------------- conversions at the edge


def ib_contract(target: QuoteTarget) -> Contract:
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
    the request was only just sent)."""
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


def ticker_quote(target: QuoteTarget, ticker: Ticker) -> Quote:
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
    dividend = ticker.dividends  # generic tick 456, parsed by ib_async into Dividends
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
        dividend_ex_date=(
            dividend.nextDate.isoformat()
            if dividend is not None and dividend.nextDate is not None
            else None
        ),
        dividend_amount=ib_positive(dividend.nextAmount) if dividend is not None else None,
    )
