"""Protocol of the chain cache: chains, quotes, stats, history and news for any symbol (cached per
symbol, DESIGN.md §4). Reading another symbol voids nothing: ``switched_from`` is kept in the
replies for compatibility and is always None; :class:`SymbolSwitched` is no longer sent."""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.messages.base import Command, Event, Reply
from sumppump.messages.common import (
    DataType,
    GreeksSource,
    OptionContract,
    Quote,
    StockContract,
)
from sumppump.messages.connection import Bar, Headline

__all__ = [
    "Chain",
    "ChainCacheReply",
    "ChainCacheRequest",
    "ChainRow",
    "ExpiryNotListed",
    "GetChain",
    "GetHistory",
    "GetLegQuotes",
    "GetMarketStats",
    "GetNews",
    "GetQuote",
    "GetSession",
    "History",
    "LegKey",
    "LegQuote",
    "LegQuotes",
    "MarketStats",
    "News",
    "QuoteReply",
    "SessionInfo",
    "SymbolSwitched",
]

RightFilter = Literal["C", "P", "both"]


class GetQuote(Command, frozen=True, kw_only=True):
    symbol: str


class QuoteReply(Reply, frozen=True, kw_only=True):
    contract: StockContract
    quote: Quote
    switched_from: str | None = None
    market_open: bool | None = None


class GetChain(Command, frozen=True, kw_only=True):
    symbol: str
    expiry: str | None = None  # None: the nearest listed expiry at least 7 days out
    strikes_each_side: int = 8
    right: RightFilter = "both"
    #: A :mod:`sumppump.progress` listener told as each batch of quotes is requested (0: none).
    progress: int = 0


class ChainRow(msgspec.Struct, frozen=True, kw_only=True):
    con_id: int
    expiry: str
    strike: float
    right: Literal["C", "P"]
    multiplier: float
    bid: float | None
    ask: float | None
    last: float | None
    mid: float | None
    volume: float | None
    open_interest: float | None
    iv: float | None
    delta: float | None
    gamma: float | None
    theta: float | None
    vega: float | None
    greeks_source: GreeksSource | None
    data_type: DataType
    ts: int


class Chain(Reply, frozen=True, kw_only=True):
    symbol: str
    underlying: Quote
    expiry: str
    expiries: tuple[str, ...]
    trading_class: str
    multiplier: float
    rows: tuple[ChainRow, ...]
    partial: bool = False
    partial_reason: str = ""
    skipped: tuple[float, ...] = ()  # strikes in the window without a quote
    data_type: DataType = "live"
    notices: tuple[str, ...] = ()
    switched_from: str | None = None
    cached: bool = False


class ExpiryNotListed(Reply, frozen=True, kw_only=True):
    """The requested expiry is not listed; ``nearest`` are the closest listed ones. Never a
    silent substitute."""

    symbol: str
    requested: str
    nearest: tuple[str, ...]


class LegKey(msgspec.Struct, frozen=True, kw_only=True):
    expiry: str  # YYYY-MM-DD
    strike: float
    right: Literal["C", "P"]


class GetLegQuotes(Command, frozen=True, kw_only=True):
    """Contracts and fresh quotes for the option legs of one structure (and the underlying).

    The path execution and risk use: it never moves the current symbol. An expiry that is not
    listed is answered :class:`ExpiryNotListed`; a strike that is not listed appears in
    ``missing``.
    """

    symbol: str
    legs: tuple[LegKey, ...]


class LegQuote(msgspec.Struct, frozen=True, kw_only=True):
    key: LegKey
    contract: OptionContract
    quote: Quote | None


class LegQuotes(Reply, frozen=True, kw_only=True):
    symbol: str
    stock: StockContract
    underlying: Quote
    legs: tuple[LegQuote, ...]
    missing: tuple[LegKey, ...] = ()
    data_type: DataType = "live"
    market_open: bool | None = None
    switched_from: str | None = None


class GetMarketStats(Command, frozen=True, kw_only=True):
    symbol: str


class MarketStats(Reply, frozen=True, kw_only=True):
    symbol: str
    last: float | None
    day_low: float | None
    day_high: float | None
    week52_low: float | None
    week52_high: float | None
    volume: float | None
    avg_volume: float | None
    volume_vs_avg: float | None
    hist_vol_20d: float | None
    hist_vol_30d: float | None
    implied_vol: float | None
    iv_rank: float | None
    iv_percentile: float | None
    put_call_volume: float | None
    data_type: DataType
    notes: tuple[str, ...] = ()
    switched_from: str | None = None


class GetHistory(Command, frozen=True, kw_only=True):
    symbol: str
    duration: str = "1 M"
    bar_size: str = "1 day"


class History(Reply, frozen=True, kw_only=True):
    symbol: str
    duration: str
    bar_size: str
    bars: tuple[Bar, ...]
    switched_from: str | None = None


class GetNews(Command, frozen=True, kw_only=True):
    symbol: str
    limit: int = 5


class News(Reply, frozen=True, kw_only=True):
    symbol: str
    providers: tuple[str, ...]
    headlines: tuple[Headline, ...]
    switched_from: str | None = None


class GetSession(Command, frozen=True, kw_only=True):
    pass


class SessionInfo(Reply, frozen=True, kw_only=True):
    """``symbol``: the trade discussion's current symbol (the last one read); ``symbols``: every
    symbol whose data is cached, least recently used first."""

    symbol: str | None
    cached_expiries: tuple[str, ...]
    quotes_cached: int
    symbols: tuple[str, ...] = ()


class SymbolSwitched(Event, frozen=True, kw_only=True):
    """Formerly told to execution when the session moved to another symbol. The chain cache no
    longer sends it: reads void nothing (DESIGN.md §4). Kept while execution still matches it."""

    previous: str
    current: str


ChainCacheRequest = (
    GetQuote | GetChain | GetLegQuotes | GetMarketStats | GetHistory | GetNews | GetSession
)
ChainCacheReply = (
    QuoteReply | Chain | LegQuotes | ExpiryNotListed | MarketStats | History | News | SessionInfo
)
