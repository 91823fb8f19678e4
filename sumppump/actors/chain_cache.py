"""The chain cache: the session's current symbol, its option chain, quotes and reference data.

One symbol at a time (DESIGN.md §4). A request for another symbol switches the session: the old
symbol's quotes and contracts are dropped (its market-data lines are held only while a fetch runs,
so none are left open) and execution is told to void that symbol's previews; the reply says so.

What is cached, and for how long:

* contract definitions (conIds) of an expiry: in memory for the session and on disk for the
  trading day (one JSON file per day under the user cache dir) — never quotes;
* quotes: in memory for ``quote_ttl`` seconds, dropped on every new connection epoch;
* daily bars and implied-volatility history for market stats: ten minutes (IB paces historical
  requests; an identical one within 15 s would be refused anyway).

Expiries and strikes come from ``reqSecDefOptParams`` with the trading class chosen explicitly
(the one named like the symbol, e.g. SPX rather than SPXW, unless only one exists); all contracts of
an expiry from ONE ``reqContractDetails``. Greeks are IB's model greeks where they arrived,
otherwise Black–Scholes from the mid through the pricing actor, and every row says which.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Final, assert_never

import anyio
import msgspec
import platformdirs

from sumppump.actors.runtime import (
    Actor,
    ActorDown,
    CallTimeout,
    MailboxFull,
    Ref,
    remaining_budget,
)
from sumppump.messages.base import Message, Reply
from sumppump.messages.chain_cache import (
    Chain,
    ChainCacheRequest,
    ChainRow,
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
    SymbolSwitched,
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

__all__ = ["ChainCacheActor"]

log = logging.getLogger(__name__)

CHAIN_BUDGET: Final = 25.0  # seconds: every tool answers within 30 s (Claude Desktop drops ~60 s)
STATS_TTL: Final = 600.0
UNDERLYING_TICKS: Final = "100,101,104,106,165"
OPTION_TICKS: Final = "100,101,106"
RISK_FREE_RATE: Final = 0.04  # for our own BSM greeks when IB's model greeks are missing


class _Failed(Exception):
    """A step answered with a domain outcome that ends the request."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(type(reply).__name__)
        self.reply = reply


@dataclass(slots=True)
class _Session:
    symbol: str
    stock: StockContract
    params: OptionParamSet | None = None
    contracts: dict[str, tuple[OptionContract, ...]] = field(default_factory=dict)
    quotes: dict[int, tuple[Quote, float]] = field(default_factory=dict)  # con_id → (quote, at)
    bars: dict[str, tuple[Bars, float]] = field(default_factory=dict)


class ChainCacheActor(Actor):
    """See the module docstring."""

    def __init__(
        self,
        *,
        connection: Ref,
        pricing: Ref | None = None,
        execution: Ref | None = None,
        cache_dir: Path | None = None,
        quote_ttl: float = 5.0,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._connection = connection
        self._pricing = pricing
        self._execution = execution
        self._cache_dir = cache_dir or Path(platformdirs.user_cache_dir("sumppump", False))
        self._quote_ttl = quote_ttl
        self._today = today or (lambda: datetime.now().date())
        self._session: _Session | None = None
        self._disk: dict[str, list[OptionContract]] | None = None
        self._disk_day: str = ""

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
                if self._session is not None:
                    self._session.quotes.clear()  # a new epoch: old streams and quotes are gone
                return None
            case _:
                return None

    async def _dispatch(self, msg: ChainCacheRequest) -> Reply:
        match msg:
            case GetQuote(symbol=symbol):
                session, switched = await self._switch(symbol)
                quote = await self._underlying_quote(session, fresh=True)
                return QuoteReply(contract=session.stock, quote=quote, switched_from=switched)
            case GetChain():
                return await self._chain(msg)
            case GetLegQuotes():
                return await self._leg_quotes(msg)
            case GetMarketStats(symbol=symbol):
                return await self._market_stats(symbol)
            case GetHistory():
                session, switched = await self._switch(msg.symbol)
                bars = await self._bars(session, msg.duration, msg.bar_size, "TRADES", ttl=60.0)
                return History(
                    symbol=session.symbol,
                    duration=msg.duration,
                    bar_size=msg.bar_size,
                    bars=bars.bars,
                    switched_from=switched,
                )
            case GetNews(symbol=symbol, limit=limit):
                session, switched = await self._switch(symbol)
                reply = await self._ask(FetchHeadlines(con_id=session.stock.con_id, limit=limit))
                if not isinstance(reply, Headlines):
                    raise _Failed(reply)
                return News(
                    symbol=session.symbol,
                    providers=reply.providers,
                    headlines=reply.headlines,
                    switched_from=switched,
                )
            case GetSession():
                s = self._session
                return SessionInfo(
                    symbol=s.symbol if s else None,
                    cached_expiries=tuple(sorted(s.contracts)) if s else (),
                    quotes_cached=len(s.quotes) if s else 0,
                )
            case _:
                assert_never(msg)

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

    # ------------------------------------------------------------------ session

    async def _switch(self, symbol: str) -> tuple[_Session, str | None]:
        symbol = symbol.strip().upper()
        current = self._session
        if current is not None and current.symbol == symbol:
            return current, None
        reply = await self._ask(ResolveStock(symbol=symbol))
        if not isinstance(reply, StockResolved):
            raise _Failed(reply)
        self._session = _Session(symbol=symbol, stock=reply.contract)
        previous = current.symbol if current is not None else None
        if previous is not None:
            log.info("session: %s → %s", previous, symbol)
            if self._execution is not None:
                try:
                    self._execution.tell(SymbolSwitched(previous=previous, current=symbol))
                except (ActorDown, MailboxFull):
                    log.warning("could not tell execution to void %s previews", previous)
        return self._session, previous

    async def _option_params(self, session: _Session) -> OptionParamSet:
        if session.params is not None:
            return session.params
        reply = await self._ask(
            FetchOptionParams(symbol=session.symbol, underlying_con_id=session.stock.con_id)
        )
        if not isinstance(reply, OptionParams):
            raise _Failed(reply)
        session.params = choose_trading_class(session.symbol, reply.sets)
        if session.params is None:
            raise _Failed(
                NoMarketData(
                    code=0,
                    message=f"{session.symbol} has no listed options",
                    subscribe_hint="Choose an optionable stock or ETF.",
                )
            )
        return session.params

    async def _contracts(self, session: _Session, expiry: str) -> tuple[OptionContract, ...]:
        if expiry in session.contracts:
            return session.contracts[expiry]
        params = await self._option_params(session)
        key = f"{session.symbol}|{expiry}|{params.trading_class}"
        disk = await self._disk_cache()
        if key in disk:
            contracts = tuple(disk[key])
        else:
            reply = await self._ask(
                FetchOptionContracts(
                    symbol=session.symbol, expiry=expiry, trading_class=params.trading_class
                )
            )
            if not isinstance(reply, OptionContracts):
                raise _Failed(reply)
            contracts = reply.contracts
            disk[key] = list(contracts)
            await self._save_disk_cache()
        session.contracts[expiry] = contracts
        return contracts

    # ------------------------------------------------------------------ disk cache of conIds

    def _disk_path(self) -> Path:
        return self._cache_dir / f"contracts-{self._today().isoformat()}.json"

    async def _disk_cache(self) -> dict[str, list[OptionContract]]:
        day = self._today().isoformat()
        if self._disk is not None and self._disk_day == day:
            return self._disk
        self._disk, self._disk_day = {}, day
        path = anyio.Path(self._disk_path())
        try:
            raw = await path.read_bytes()
            self._disk = msgspec.json.decode(raw, type=dict[str, list[OptionContract]])
        except FileNotFoundError:
            pass
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("ignoring unreadable contract cache %s: %s", path, exc)
        return self._disk

    async def _save_disk_cache(self) -> None:
        if self._disk is None:
            return
        path = anyio.Path(self._disk_path())
        try:
            await path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            await tmp.write_bytes(msgspec.json.encode(self._disk))
            await tmp.replace(path)
        except OSError as exc:
            log.warning("could not write the contract cache %s: %s", path, exc)

    # ------------------------------------------------------------------ quotes

    async def _underlying_quote(self, session: _Session, *, fresh: bool = False) -> Quote:
        con_id = session.stock.con_id
        cached = session.quotes.get(con_id)
        if cached is not None and not fresh and anyio.current_time() - cached[1] < self._quote_ttl:
            return cached[0]
        target = QuoteTarget(con_id=con_id, symbol=session.symbol, sec_type="STK")
        reply = await self._ask(
            FetchQuotes(targets=(target,), generic_ticks=UNDERLYING_TICKS, settle=1.5)
        )
        if not isinstance(reply, Quotes):
            raise _Failed(reply)
        if not reply.quotes:
            raise _Failed(
                NoMarketData(
                    code=0,
                    message=f"no quote for {session.symbol}",
                    subscribe_hint="Check market data subscriptions.",
                )
            )
        quote = reply.quotes[0]
        session.quotes[con_id] = (quote, anyio.current_time())
        return quote

    async def _option_quotes(
        self, session: _Session, contracts: Sequence[OptionContract], *, max_age: float
    ) -> tuple[dict[int, Quote], tuple[str, ...], bool]:
        """Quotes for ``contracts``: cached ones younger than ``max_age``, the rest fetched.

        :returns: quotes by conId, TWS notices, and whether the budget ran out first.
        """
        now = anyio.current_time()
        quotes: dict[int, Quote] = {}
        wanted: list[OptionContract] = []
        for c in contracts:
            cached = session.quotes.get(c.con_id)
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
            reply = await self._ask(FetchQuotes(targets=targets, generic_ticks=OPTION_TICKS))
            if isinstance(reply, Quotes):
                at = anyio.current_time()
                for q in reply.quotes:
                    quotes[q.con_id] = q
                    session.quotes[q.con_id] = (q, at)
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
        session, switched = await self._switch(msg.symbol)
        params = await self._option_params(session)
        expiry = msg.expiry
        if expiry is None:
            expiry = nearest_expiry(params.expirations, self._today(), min_days=7)
            if expiry is None:
                raise _Failed(
                    ExpiryNotListed(
                        symbol=session.symbol,
                        requested="(≥ 7 days)",
                        nearest=params.expirations[-3:],
                    )
                )
        elif expiry not in params.expirations:
            return ExpiryNotListed(
                symbol=session.symbol,
                requested=expiry,
                nearest=nearest_listed(params.expirations, expiry),
            )
        underlying = await self._underlying_quote(session)
        contracts = await self._contracts(session, expiry)
        spot = reference_price(underlying)
        window = strike_window(contracts, spot, msg.strikes_each_side, msg.right)
        quotes, notices, ran_out = await self._option_quotes(
            session, window, max_age=self._quote_ttl
        )
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
            symbol=session.symbol,
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
            switched_from=switched,
        )

    async def _leg_quotes(self, msg: GetLegQuotes) -> Reply:
        session, switched = await self._switch(msg.symbol)
        params = await self._option_params(session)
        for key in msg.legs:
            if key.expiry not in params.expirations:
                return ExpiryNotListed(
                    symbol=session.symbol,
                    requested=key.expiry,
                    nearest=nearest_listed(params.expirations, key.expiry),
                )
        underlying = await self._underlying_quote(session, fresh=True)
        found: list[tuple[LegKey, OptionContract]] = []
        missing: list[LegKey] = []
        for key in msg.legs:
            by_key = {(c.strike, c.right): c for c in await self._contracts(session, key.expiry)}
            contract = by_key.get((key.strike, key.right))
            if contract is None:
                missing.append(key)
            else:
                found.append((key, contract))
        quotes, _, _ = await self._option_quotes(session, [c for _, c in found], max_age=0.0)
        legs = tuple(LegQuote(key=k, contract=c, quote=quotes.get(c.con_id)) for k, c in found)
        return LegQuotes(
            symbol=session.symbol,
            stock=session.stock,
            underlying=underlying,
            legs=legs,
            missing=tuple(missing),
            data_type=underlying.data_type,
            switched_from=switched,
        )

    # ------------------------------------------------------------------ stats and history

    async def _bars(
        self, session: _Session, duration: str, bar_size: str, what: str, *, ttl: float
    ) -> Bars:
        key = f"{duration}|{bar_size}|{what}"
        cached = session.bars.get(key)
        if cached is not None and anyio.current_time() - cached[1] < ttl:
            return cached[0]
        reply = await self._ask(
            FetchHistory(
                con_id=session.stock.con_id,
                symbol=session.symbol,
                duration=duration,
                bar_size=bar_size,
                what_to_show=what,
            )
        )
        if not isinstance(reply, Bars):
            raise _Failed(reply)
        session.bars[key] = (reply, anyio.current_time())
        return reply

    async def _market_stats(self, symbol: str) -> Reply:
        session, switched = await self._switch(symbol)
        quote = await self._underlying_quote(session, fresh=True)
        notes: list[str] = []
        year = await self._bars(session, "1 Y", "1 day", "TRADES", ttl=STATS_TTL)
        closes = [b.close for b in year.bars]
        ivs: list[float] = []
        try:
            iv_bars = await self._bars(
                session, "1 Y", "1 day", "OPTION_IMPLIED_VOLATILITY", ttl=STATS_TTL
            )
            ivs = [b.close for b in iv_bars.bars if b.close > 0]
        except _Failed as failed:
            notes.append(f"implied-volatility history unavailable: {type(failed.reply).__name__}")
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
            symbol=session.symbol,
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
            switched_from=switched,
        )


# ---------------------------------------------------------------------- pure helpers


def choose_trading_class(symbol: str, sets: Sequence[OptionParamSet]) -> OptionParamSet | None:
    """The SMART set whose trading class is the symbol itself (SPX, not SPXW), else the SMART
    set with the most expirations, else any."""
    smart = [s for s in sets if s.exchange == "SMART"] or list(sets)
    if not smart:
        return None
    named = [s for s in smart if s.trading_class == symbol]
    if named:
        return named[0]
    return max(smart, key=lambda s: (len(s.expirations), s.trading_class))


def nearest_expiry(expirations: Sequence[str], today: date, *, min_days: int) -> str | None:
    """The first listed expiry at least ``min_days`` calendar days after ``today``."""
    floor = (today + timedelta(days=min_days)).isoformat()
    return next((e for e in sorted(expirations) if e >= floor), None)


def nearest_listed(expirations: Sequence[str], requested: str, count: int = 3) -> tuple[str, ...]:
    """The ``count`` listed expiries closest in time to ``requested``."""
    try:
        target = date.fromisoformat(requested)
    except ValueError:
        return tuple(sorted(expirations)[:count])
    ranked = sorted(expirations, key=lambda e: abs((date.fromisoformat(e) - target).days))
    return tuple(sorted(ranked[:count]))


def reference_price(quote: Quote) -> float | None:
    """Mid if there is a two-sided market, else last, else the previous close."""
    for value in (quote.mid, quote.last, quote.close):
        if value is not None and value > 0:
            return value
    return None


def strike_window(
    contracts: Sequence[OptionContract], spot: float | None, each_side: int, right: str
) -> list[OptionContract]:
    """The ``each_side`` listed strikes below the spot and ``each_side`` at or above it."""
    strikes = sorted({c.strike for c in contracts})
    if not strikes:
        return []
    if spot is None:
        spot = strikes[len(strikes) // 2]
    split = bisect.bisect_left(strikes, spot)
    chosen = set(strikes[max(0, split - each_side) : split + each_side])
    rights = ("C", "P") if right == "both" else (right,)
    return sorted(
        (c for c in contracts if c.strike in chosen and c.right in rights),
        key=lambda c: (c.strike, c.right),
    )


def chain_row(contract: OptionContract, quote: Quote, own: Greeks | None) -> ChainRow:
    greeks = quote.greeks or own
    iv = None
    if greeks is not None and greeks.iv is not None:
        iv = greeks.iv
    elif quote.implied_vol is not None:
        iv = quote.implied_vol
    return ChainRow(
        con_id=contract.con_id,
        expiry=contract.expiry,
        strike=contract.strike,
        right=contract.right,
        multiplier=contract.multiplier,
        bid=quote.bid,
        ask=quote.ask,
        last=quote.last,
        mid=quote.mid,
        volume=quote.volume,
        open_interest=quote.open_interest,
        iv=iv,
        delta=greeks.delta if greeks else None,
        gamma=greeks.gamma if greeks else None,
        theta=greeks.theta if greeks else None,
        vega=greeks.vega if greeks else None,
        greeks_source=greeks.source if greeks else None,
        data_type=quote.data_type,
        ts=quote.ts,
    )


def historical_vol(closes: Sequence[float], days: int) -> float | None:
    """Annualised close-to-close volatility over the last ``days`` returns (252 trading days)."""
    if len(closes) < days + 1:
        return None
    window = closes[-(days + 1) :]
    returns = [math.log(b / a) for a, b in itertools.pairwise(window) if a > 0 < b]
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return math.sqrt(variance * 252)


def iv_rank_percentile(
    history: Sequence[float], current: float | None
) -> tuple[float | None, float | None]:
    """IV rank (where the current IV sits between the year's low and high, 0-100) and IV
    percentile (share of days with a lower IV, 0-100)."""
    if current is None or len(history) < 20:
        return None, None
    low, high = min(history), max(history)
    rank = 100.0 * (current - low) / (high - low) if high > low else None
    percentile = 100.0 * sum(1 for v in history if v < current) / len(history)
    return rank, percentile
