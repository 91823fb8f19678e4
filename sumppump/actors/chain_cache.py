"""The chain cache: option chains, quotes, market stats, history and news, for several symbols.

Per-symbol state (DESIGN.md §4): up to ``max_symbols`` symbols are held, least recently used
first out, and a symbol unused for ``symbol_ttl`` seconds is dropped. Reading any symbol voids
nothing: a preview carries its own terms and is re-checked at execute, so replies never report a
switch (``switched_from`` stays None). The trade discussion's *current symbol* is only what
``GetSession``/``get_status`` reports: the last symbol the person asked about through a read
(quote, chain, stats, history, news). ``GetLegQuotes`` (execution and risk) reads any symbol
without moving it.

Requests are served concurrently; identical ones in flight share one request to TWS
(:class:`InFlight`), so parallel tool calls neither duplicate work nor queue behind each other.

What is cached, and for how long:

* contract definitions (conIds) of an expiry: in memory for the symbol's life and on disk for
  the trading day (:class:`ContractDiskCache`) — never quotes;
* quotes: in memory for ``quote_ttl`` seconds, dropped on every new connection epoch;
* daily bars and implied-volatility history for market stats: ten minutes (IB paces historical
  requests; an identical one within 15 s would be refused anyway).

Expiries and strikes come from ``reqSecDefOptParams`` with the trading class chosen explicitly
(the one named like the symbol, e.g. SPX rather than SPXW, unless only one exists); all contracts
of an expiry from ONE ``reqContractDetails``; option quotes as one snapshot per option
(:data:`CHAIN_QUOTES`, see :mod:`sumppump.actors.market_data`). Greeks are IB's model greeks where
they arrived, otherwise Black–Scholes from the mid through the pricing actor, and every row says
which.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Final, Literal, assert_never

import anyio
import platformdirs

from sumppump.actors.chain_math import (
    chain_row,
    choose_trading_class,
    historical_vol,
    iv_rank_percentile,
    nearest_expiry,
    nearest_listed,
    reference_price,
    strike_window,
)
from sumppump.actors.contract_cache import ContractDiskCache
from sumppump.actors.in_flight import InFlight
from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.messages.base import Message, Reply
from sumppump.messages.chain_cache import (
    Chain,
    ChainCacheRequest,
    ExpiryNotListed,
    GetChain,
    GetHistory,
    GetLegQuotes,
    GetMarketStats,
    GetNews,
    GetQuote,
    GetSession,
    History,
    LegKey,
    LegQuote,
    LegQuotes,
    MarketStats,
    News,
    QuoteReply,
    SessionInfo,
)
from sumppump.messages.common import (
    DataType,
    Greeks,
    NoMarketData,
    NotConnected,
    OptionContract,
    Ping,
    Pong,
    Quote,
    StockContract,
)
from sumppump.messages.connection import (
    Bars,
    ConnectionUp,
    FetchHeadlines,
    FetchHistory,
    FetchOptionContracts,
    FetchOptionParams,
    FetchQuotes,
    Headlines,
    OptionContracts,
    OptionParams,
    OptionParamSet,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.pricing import ChainGreeks, ChainGreeksResult, ImpliedVols, ImpliedVolsResult

__all__ = ["CHAIN_QUOTES", "ChainCacheActor"]

log = logging.getLogger(__name__)

CHAIN_BUDGET: Final = 25.0  # seconds: every tool answers within 30 s (Claude Desktop drops ~60 s)
STATS_TTL: Final = 600.0
UNDERLYING_TICKS: Final = "100,101,104,106,165"
OPTION_TICKS: Final = "100,101,106"
RISK_FREE_RATE: Final = 0.04  # for our own BSM greeks when IB's model greeks are missing
ChainQuotes = Literal["auto", "snapshot", "stream"]
#: How a chain's option quotes are asked for; bench/chain.py measures all three. Both ways send
#: one message per option before the reply. Streams carry open interest (a generic tick, which
#: IB refuses on snapshots) and their cancels are sent after the reply; but a window wider than
#: the lines must cancel one batch before the next, which snapshots never do. "auto" streams a
#: window of up to :data:`STREAM_WINDOW_MAX` options and takes snapshots beyond.
CHAIN_QUOTES: ChainQuotes = "auto"
STREAM_WINDOW_MAX: Final = 60
NO_OPEN_INTEREST: Final = (
    f"open interest is not sent with snapshot quotes (an IB rule), used for windows of more than "
    f"{STREAM_WINDOW_MAX} options; ask for fewer strikes to see it"
)


class _Failed(Exception):
    """A step answered with a domain outcome that ends the request."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(type(reply).__name__)
        self.reply = reply


@dataclass(slots=True)
class _SymbolState:
    symbol: str
    stock: StockContract
    used_at: float
    params: OptionParamSet | None = None
    contracts: dict[str, tuple[OptionContract, ...]] = field(default_factory=dict)
    quotes: dict[int, tuple[Quote, float]] = field(default_factory=dict)  # con_id → (quote, at)
    bars: dict[str, tuple[Bars, float]] = field(default_factory=dict)


class ChainCacheActor(Actor):
    """See the module docstring."""

    max_concurrency = 16

    def __init__(
        self,
        *,
        connection: Ref,
        pricing: Ref | None = None,
        cache_dir: Path | None = None,
        quote_ttl: float = 5.0,
        today: Callable[[], date] | None = None,
        max_symbols: int = 8,
        symbol_ttl: float = 1800.0,
        chain_quotes: ChainQuotes | None = None,
    ) -> None:
        self._connection = connection
        self._pricing = pricing
        self._quote_ttl = quote_ttl
        self._today = today or (lambda: datetime.now().date())
        self._disk = ContractDiskCache(
            cache_dir or Path(platformdirs.user_cache_dir("sumppump", False)), self._today
        )
        self._max_symbols = max_symbols
        self._symbol_ttl = symbol_ttl
        self._chain_quotes: ChainQuotes = chain_quotes or CHAIN_QUOTES
        self._symbols: OrderedDict[str, _SymbolState] = OrderedDict()
        self._current: str | None = None
        self._shared: InFlight[object] = InFlight()

    # ------------------------------------------------------------------ dispatch

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, ChainCacheRequest):
            try:
                return await self._dispatch(msg)
            except _Failed as failed:
                return failed.reply
        match msg:
            case Ping():
                return Pong(actor="chain_cache")
            case ConnectionUp():
                for state in self._symbols.values():
                    state.quotes.clear()  # a new epoch: old streams and quotes are gone
                return None
            case _:
                return None

    async def _dispatch(self, msg: ChainCacheRequest) -> Reply:
        match msg:
            case GetQuote(symbol=symbol):
                state = await self._symbol(symbol, focus=True)
                quote = await self._underlying_quote(state, fresh=True)
                return QuoteReply(contract=state.stock, quote=quote)
            case GetChain():
                key = (msg.symbol.strip().upper(), msg.expiry, msg.strikes_each_side, msg.right)
                return await self._share(("chain", *key), lambda: self._chain(msg))
            case GetLegQuotes():
                return await self._leg_quotes(msg)
            case GetMarketStats(symbol=symbol):
                await self._symbol(symbol, focus=True)
                name = symbol.strip().upper()
                return await self._share(("stats", name), lambda: self._market_stats(name))
            case GetHistory():
                state = await self._symbol(msg.symbol, focus=True)
                bars = await self._bars(state, msg.duration, msg.bar_size, "TRADES", 60.0)
                return History(
                    symbol=state.symbol,
                    duration=msg.duration,
                    bar_size=msg.bar_size,
                    bars=bars.bars,
                )
            case GetNews(symbol=symbol, limit=limit):
                state = await self._symbol(symbol, focus=True)
                reply = await self._share(
                    ("news", state.symbol, limit),
                    lambda: self._ask(FetchHeadlines(con_id=state.stock.con_id, limit=limit)),
                )
                if not isinstance(reply, Headlines):
                    raise _Failed(reply)
                return News(
                    symbol=state.symbol, providers=reply.providers, headlines=reply.headlines
                )
            case GetSession():
                current = self._symbols.get(self._current or "")
                return SessionInfo(
                    symbol=self._current,
                    cached_expiries=tuple(sorted(current.contracts)) if current else (),
                    quotes_cached=sum(len(s.quotes) for s in self._symbols.values()),
                    symbols=tuple(self._symbols),
                )
            case _:
                assert_never(msg)

    async def _share(self, key: tuple[object, ...], work: Callable[[], Awaitable[Reply]]) -> Reply:
        """``work()``'s reply, shared with identical requests in flight."""
        reply = await self._shared.run(key, work)
        assert isinstance(reply, Reply)
        return reply

    async def _ask(
        self,
        request: FetchQuotes
        | ResolveStock
        | FetchOptionParams
        | FetchOptionContracts
        | FetchHistory
        | FetchHeadlines,
    ) -> Reply:
        """Call the connection within the request's remaining budget."""
        budget = remaining_budget(CHAIN_BUDGET)
        try:
            return await self._connection.call(request, timeout=max(0.1, budget))
        except (ActorDown, CallTimeout) as exc:
            reason = f"the TWS connection is not available ({exc})"
            raise _Failed(NotConnected(reason=reason)) from exc

    # ------------------------------------------------------------------ per-symbol state

    async def _symbol(self, symbol: str, *, focus: bool = False) -> _SymbolState:
        """The state of ``symbol``, resolving it on first use. ``focus`` makes it the trade
        discussion's current symbol; nothing is voided or dropped by that."""
        name = symbol.strip().upper()
        now = anyio.current_time()
        self._expire(now)
        state = self._symbols.get(name)
        if state is None:
            reply = await self._shared.run(
                ("stock", name), lambda: self._ask(ResolveStock(symbol=name))
            )
            if not isinstance(reply, StockResolved):
                raise _Failed(reply)  # type: ignore[arg-type]
            state = self._symbols.get(name) or _SymbolState(
                symbol=name, stock=reply.contract, used_at=now
            )
            self._symbols[name] = state
        state.used_at = now
        self._symbols.move_to_end(name)
        while len(self._symbols) > self._max_symbols:
            dropped, _ = self._symbols.popitem(last=False)
            log.info("chain cache: dropped %s (least recently used)", dropped)
        if focus and self._current != name:
            log.info("current symbol: %s → %s", self._current, name)
            self._current = name
        return state

    def _expire(self, now: float) -> None:
        for name in [n for n, s in self._symbols.items() if now - s.used_at > self._symbol_ttl]:
            del self._symbols[name]

    async def _option_params(self, state: _SymbolState) -> OptionParamSet:
        if state.params is not None:
            return state.params
        reply = await self._share(
            ("params", state.symbol),
            lambda: self._ask(
                FetchOptionParams(symbol=state.symbol, underlying_con_id=state.stock.con_id)
            ),
        )
        if not isinstance(reply, OptionParams):
            raise _Failed(reply)
        state.params = choose_trading_class(state.symbol, reply.sets)
        if state.params is None:
            raise _Failed(
                NoMarketData(
                    code=0,
                    message=f"{state.symbol} has no listed options",
                    subscribe_hint="Choose an optionable stock or ETF.",
                )
            )
        return state.params

    async def _contracts(self, state: _SymbolState, expiry: str) -> tuple[OptionContract, ...]:
        if expiry in state.contracts:
            return state.contracts[expiry]
        params = await self._option_params(state)
        key = f"{state.symbol}|{expiry}|{params.trading_class}"
        contracts = await self._disk.get(key)
        if contracts is None:
            reply = await self._share(
                ("contracts", key),
                lambda: self._ask(
                    FetchOptionContracts(
                        symbol=state.symbol, expiry=expiry, trading_class=params.trading_class
                    )
                ),
            )
            if not isinstance(reply, OptionContracts):
                raise _Failed(reply)
            contracts = reply.contracts
            await self._disk.put(key, contracts)
        state.contracts[expiry] = contracts
        return contracts

    # ------------------------------------------------------------------ quotes

    async def _underlying_quote(self, state: _SymbolState, *, fresh: bool = False) -> Quote:
        con_id = state.stock.con_id
        cached = state.quotes.get(con_id)
        if cached is not None and not fresh and anyio.current_time() - cached[1] < self._quote_ttl:
            return cached[0]
        target = QuoteTarget(con_id=con_id, symbol=state.symbol, sec_type="STK")
        reply = await self._share(
            ("underlying", con_id),
            lambda: self._ask(
                FetchQuotes(targets=(target,), generic_ticks=UNDERLYING_TICKS, settle=1.5)
            ),
        )
        if not isinstance(reply, Quotes):
            raise _Failed(reply)
        if not reply.quotes:
            raise _Failed(
                NoMarketData(
                    code=0,
                    message=f"no quote for {state.symbol}",
                    subscribe_hint="Check market data subscriptions.",
                )
            )
        quote = reply.quotes[0]
        state.quotes[con_id] = (quote, anyio.current_time())
        return quote

    async def _option_quotes(
        self,
        state: _SymbolState,
        contracts: Sequence[OptionContract],
        *,
        max_age: float,
        snapshot: bool,
        progress: int = 0,
    ) -> tuple[dict[int, Quote], tuple[str, ...], bool]:
        """Quotes for ``contracts``: cached ones younger than ``max_age``, the rest fetched.

        :returns: quotes by conId, TWS notices, and whether the budget ran out first.
        """
        now = anyio.current_time()
        quotes: dict[int, Quote] = {}
        wanted: list[OptionContract] = []
        for c in contracts:
            cached = state.quotes.get(c.con_id)
            if cached is not None and now - cached[1] < max_age:
                quotes[c.con_id] = cached[0]
            else:
                wanted.append(c)
        notices: tuple[str, ...] = ()
        ran_out = False
        if wanted:
            targets = tuple(
                QuoteTarget(con_id=c.con_id, symbol=c.symbol, sec_type="OPT") for c in wanted
            )
            reply = await self._ask(
                FetchQuotes(
                    targets=targets,
                    generic_ticks=OPTION_TICKS,
                    snapshot=snapshot,
                    progress=progress,
                )
            )
            if isinstance(reply, Quotes):
                at = anyio.current_time()
                for q in reply.quotes:
                    quotes[q.con_id] = q
                    state.quotes[q.con_id] = (q, at)
                notices = reply.notices
                ran_out = bool(reply.missing) and remaining_budget(CHAIN_BUDGET) < 1.0
            elif not quotes:
                raise _Failed(reply)
        return quotes, notices, ran_out

    async def _fill_greeks(
        self, spot: float | None, expiry: str, rows: list[tuple[OptionContract, Quote]]
    ) -> dict[int, Greeks]:
        """Our own BSM greeks (from the mid's implied vol) where IB sent no model greeks."""
        lacking = [(c, q) for c, q in rows if q.greeks is None and q.mid is not None]
        if not lacking or spot is None or self._pricing is None:
            return {}
        years = max(1e-6, (date.fromisoformat(expiry) - self._today()).days / 365.0)
        strikes = tuple(c.strike for c, _ in lacking)
        rights = tuple(c.right for c, _ in lacking)
        try:
            ivs = await self._pricing.call(
                ImpliedVols(
                    spot=spot,
                    rate=RISK_FREE_RATE,
                    strikes=strikes,
                    years=(years,) * len(lacking),
                    rights=rights,
                    prices=tuple(q.mid or 0.0 for _, q in lacking),
                ),
                timeout=2.0,
            )
            if not isinstance(ivs, ImpliedVolsResult):
                return {}
            solved = [(i, s) for i, s in enumerate(ivs.sigma) if s is not None]
            if not solved:
                return {}
            greeks = await self._pricing.call(
                ChainGreeks(
                    spot=spot,
                    rate=RISK_FREE_RATE,
                    strikes=tuple(strikes[i] for i, _ in solved),
                    years=(years,) * len(solved),
                    rights=tuple(rights[i] for i, _ in solved),
                    sigmas=tuple(s for _, s in solved),
                ),
                timeout=2.0,
            )
        except (ActorDown, CallTimeout):
            return {}
        if not isinstance(greeks, ChainGreeksResult):
            return {}
        out: dict[int, Greeks] = {}
        for k, (i, sigma) in enumerate(solved):
            out[lacking[i][0].con_id] = Greeks(
                delta=greeks.delta[k],
                gamma=greeks.gamma[k],
                theta=greeks.theta[k],
                vega=greeks.vega[k],
                iv=sigma,
                source="bsm",
                underlying_price=spot,
            )
        return out

    # ------------------------------------------------------------------ chain

    async def _chain(self, msg: GetChain) -> Reply:
        state = await self._symbol(msg.symbol, focus=True)
        params = await self._option_params(state)
        expiry = msg.expiry
        if expiry is None:
            expiry = nearest_expiry(params.expirations, self._today(), min_days=7)
            if expiry is None:
                raise _Failed(
                    ExpiryNotListed(
                        symbol=state.symbol,
                        requested="(≥ 7 days)",
                        nearest=params.expirations[-3:],
                    )
                )
        elif expiry not in params.expirations:
            return ExpiryNotListed(
                symbol=state.symbol,
                requested=expiry,
                nearest=nearest_listed(params.expirations, expiry),
            )
        underlying, contracts = await self._underlying_and_contracts(state, expiry)
        spot = reference_price(underlying)
        window = strike_window(contracts, spot, msg.strikes_each_side, msg.right)
        snapshot = self._chain_quotes == "snapshot" or (
            self._chain_quotes == "auto" and len(window) > STREAM_WINDOW_MAX
        )
        quotes, notices, ran_out = await self._option_quotes(
            state, window, max_age=self._quote_ttl, snapshot=snapshot, progress=msg.progress
        )
        if snapshot and any(
            quotes[c.con_id].open_interest is None for c in window if c.con_id in quotes
        ):
            notices = (*notices, NO_OPEN_INTEREST)
        greeks = await self._fill_greeks(
            spot, expiry, [(c, quotes[c.con_id]) for c in window if c.con_id in quotes]
        )
        rows = tuple(
            chain_row(c, quotes[c.con_id], greeks.get(c.con_id))
            for c in window
            if c.con_id in quotes
        )
        skipped = tuple(sorted({c.strike for c in window if c.con_id not in quotes}))
        data_types = {r.data_type for r in rows} | {underlying.data_type}
        data_type: DataType = data_types.pop() if len(data_types) == 1 else "delayed"
        reason = ""
        if skipped:
            reason = (
                "the 25 s budget ran out before every quote arrived"
                if ran_out
                else "no quote arrived for some strikes"
            )
        return Chain(
            symbol=state.symbol,
            underlying=underlying,
            expiry=expiry,
            expiries=params.expirations,
            trading_class=params.trading_class,
            multiplier=params.multiplier,
            rows=rows,
            partial=bool(skipped),
            partial_reason=reason,
            skipped=skipped,
            data_type=data_type,
            notices=notices,
        )

    async def _underlying_and_contracts(
        self, state: _SymbolState, expiry: str
    ) -> tuple[Quote, tuple[OptionContract, ...]]:
        """The underlying's quote and the expiry's contracts, asked for at once."""
        found: dict[str, Quote | tuple[OptionContract, ...]] = {}
        failed: list[_Failed] = []

        async def quote() -> None:
            try:
                found["quote"] = await self._underlying_quote(state)
            except _Failed as exc:
                failed.append(exc)

        async def contracts() -> None:
            try:
                found["contracts"] = await self._contracts(state, expiry)
            except _Failed as exc:
                failed.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(quote)
            tg.start_soon(contracts)
        if failed:
            raise failed[0]
        underlying, listed = found["quote"], found["contracts"]
        assert isinstance(underlying, Quote) and isinstance(listed, tuple)
        return underlying, listed

    async def _leg_quotes(self, msg: GetLegQuotes) -> Reply:
        """Fresh quotes for execution and risk: never moves the current symbol."""
        state = await self._symbol(msg.symbol)
        params = await self._option_params(state)
        for key in msg.legs:
            if key.expiry not in params.expirations:
                return ExpiryNotListed(
                    symbol=state.symbol,
                    requested=key.expiry,
                    nearest=nearest_listed(params.expirations, key.expiry),
                )
        underlying = await self._underlying_quote(state, fresh=True)
        found: list[tuple[LegKey, OptionContract]] = []
        missing: list[LegKey] = []
        for key in msg.legs:
            by_key = {(c.strike, c.right): c for c in await self._contracts(state, key.expiry)}
            contract = by_key.get((key.strike, key.right))
            if contract is None:
                missing.append(key)
            else:
                found.append((key, contract))
        quotes, _, _ = await self._option_quotes(
            state, [c for _, c in found], max_age=0.0, snapshot=False
        )
        legs = tuple(LegQuote(key=k, contract=c, quote=quotes.get(c.con_id)) for k, c in found)
        return LegQuotes(
            symbol=state.symbol,
            stock=state.stock,
            underlying=underlying,
            legs=legs,
            missing=tuple(missing),
            data_type=underlying.data_type,
        )

    # ------------------------------------------------------------------ stats and history

    async def _bars(
        self, state: _SymbolState, duration: str, bar_size: str, what: str, ttl: float
    ) -> Bars:
        key = f"{duration}|{bar_size}|{what}"
        cached = state.bars.get(key)
        if cached is not None and anyio.current_time() - cached[1] < ttl:
            return cached[0]
        reply = await self._share(
            ("bars", state.stock.con_id, key),
            lambda: self._ask(
                FetchHistory(
                    con_id=state.stock.con_id,
                    symbol=state.symbol,
                    duration=duration,
                    bar_size=bar_size,
                    what_to_show=what,
                )
            ),
        )
        if not isinstance(reply, Bars):
            raise _Failed(reply)
        state.bars[key] = (reply, anyio.current_time())
        return reply

    async def _market_stats(self, symbol: str) -> Reply:
        state = await self._symbol(symbol)
        # The quote and both histories are asked for at once: three independent waits.
        outcomes: dict[str, Quote | Bars | _Failed] = {}

        async def get(name: str, work: Callable[[], Awaitable[Quote | Bars]]) -> None:
            try:
                outcomes[name] = await work()
            except _Failed as failed:
                outcomes[name] = failed

        async with anyio.create_task_group() as tg:
            tg.start_soon(get, "quote", lambda: self._underlying_quote(state, fresh=True))
            tg.start_soon(
                get, "year", lambda: self._bars(state, "1 Y", "1 day", "TRADES", STATS_TTL)
            )
            tg.start_soon(
                get,
                "iv",
                lambda: self._bars(state, "1 Y", "1 day", "OPTION_IMPLIED_VOLATILITY", STATS_TTL),
            )
        quote, year, iv_bars = outcomes["quote"], outcomes["year"], outcomes["iv"]
        for outcome in (quote, year):
            if isinstance(outcome, _Failed):
                raise outcome
        assert isinstance(quote, Quote) and isinstance(year, Bars)
        notes: list[str] = []
        closes = [b.close for b in year.bars]
        ivs: list[float] = []
        if isinstance(iv_bars, _Failed):
            notes.append(f"implied-volatility history unavailable: {type(iv_bars.reply).__name__}")
        elif isinstance(iv_bars, Bars):
            ivs = [b.close for b in iv_bars.bars if b.close > 0]
        current_iv = (
            quote.implied_vol if quote.implied_vol is not None else (ivs[-1] if ivs else None)
        )
        rank, percentile = iv_rank_percentile(ivs, current_iv)
        avg_volume = quote.avg_volume
        volume = quote.volume
        put_call = None
        if quote.put_volume is not None and quote.call_volume:
            put_call = quote.put_volume / quote.call_volume
        return MarketStats(
            symbol=state.symbol,
            last=quote.last if quote.last is not None else quote.close,
            day_low=quote.low,
            day_high=quote.high,
            week52_low=min((b.low for b in year.bars), default=None),
            week52_high=max((b.high for b in year.bars), default=None),
            volume=volume,
            avg_volume=avg_volume,
            volume_vs_avg=(volume / avg_volume) if volume is not None and avg_volume else None,
            hist_vol_20d=historical_vol(closes, 20),
            hist_vol_30d=historical_vol(closes, 30),
            implied_vol=current_iv,
            iv_rank=rank,
            iv_percentile=percentile,
            put_call_volume=put_call,
            data_type=quote.data_type,
            notes=tuple(notes),
        )
