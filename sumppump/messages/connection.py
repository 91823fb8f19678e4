"""Protocol of the connection actor, the only one that talks to TWS.

Every request is answered with typed data, or with one of the domain outcomes
:class:`~sumppump.messages.common.NotConnected`, :class:`~sumppump.messages.common.NoSuchContract`,
:class:`~sumppump.messages.common.NoMarketData`, :class:`~sumppump.messages.common.TwsError` or
:class:`~sumppump.messages.rate_limiter.PacingDelayed`. ib_async objects never leave the actor.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.messages.base import Command, Event, Reply
from sumppump.messages.common import DataType, OptionContract, Quote, StockContract

__all__ = [
    "AccountSnapshot",
    "Article",
    "Bar",
    "Bars",
    "ConnectionDown",
    "ConnectionReply",
    "ConnectionRequest",
    "ConnectionState",
    "ConnectionUp",
    "FetchAccount",
    "FetchArticle",
    "FetchHeadlines",
    "FetchHistory",
    "FetchOpenOrders",
    "FetchOptionContracts",
    "FetchOptionParams",
    "FetchPositions",
    "FetchQuotes",
    "GetConnectionState",
    "Headline",
    "Headlines",
    "LinkState",
    "OpenOrderInfo",
    "OpenOrders",
    "OptionContracts",
    "OptionParamSet",
    "OptionParams",
    "PositionInfo",
    "Positions",
    "QuoteTarget",
    "Quotes",
    "ResolveStock",
    "StockResolved",
]

LinkState = Literal["disconnected", "connecting", "connected", "degraded", "backoff"]


# ---------------------------------------------------------------- connection state and events


class GetConnectionState(Command, frozen=True, kw_only=True):
    pass


class ConnectionState(Reply, frozen=True, kw_only=True):
    state: LinkState
    epoch: int
    host: str
    port: int
    client_id: int
    accounts: tuple[str, ...] = ()
    server_version: int | None = None
    attempt: int = 0
    retry_in: float | None = None
    last_error: str = ""
    data_type: DataType = "live"
    since_ns: int = 0


class ConnectionUp(Event, frozen=True, kw_only=True):
    """Connected (epoch incremented), or IB's link restored with data lost (``resubscribe``)."""

    epoch: int
    accounts: tuple[str, ...]
    resubscribe: bool = False


class ConnectionDown(Event, frozen=True, kw_only=True):
    epoch: int
    reason: str


# ---------------------------------------------------------------- contracts


class ResolveStock(Command, frozen=True, kw_only=True):
    symbol: str


class StockResolved(Reply, frozen=True, kw_only=True):
    contract: StockContract


class FetchOptionParams(Command, frozen=True, kw_only=True):
    symbol: str
    underlying_con_id: int
    sec_type: Literal["STK", "IND"] = "STK"


class OptionParamSet(msgspec.Struct, frozen=True, kw_only=True):
    exchange: str
    trading_class: str
    multiplier: float
    expirations: tuple[str, ...]  # YYYY-MM-DD, ascending
    strikes: tuple[float, ...]  # ascending


class OptionParams(Reply, frozen=True, kw_only=True):
    sets: tuple[OptionParamSet, ...]


class FetchOptionContracts(Command, frozen=True, kw_only=True):
    """Every contract of one expiry and trading class, from ONE reqContractDetails with strike
    and right left empty (never qualified strike by strike)."""

    symbol: str
    expiry: str  # YYYY-MM-DD
    trading_class: str
    exchange: str = "SMART"


class OptionContracts(Reply, frozen=True, kw_only=True):
    contracts: tuple[OptionContract, ...]


# ---------------------------------------------------------------- market data


class QuoteTarget(msgspec.Struct, frozen=True, kw_only=True):
    con_id: int
    symbol: str
    sec_type: Literal["STK", "OPT", "IND"]
    exchange: str = "SMART"


class FetchQuotes(Command, frozen=True, kw_only=True):
    """Quotes for ``targets`` from short-lived streams or snapshots within the line budget.

    ``generic_ticks`` as IB's list ("100,101,104,106": volume, open interest, historical and
    implied vol). Each stream is held until its quote is complete (bid, ask and, for options,
    model greeks) or ``settle`` seconds passed, then cancelled. What could not be fetched before
    the request's deadline is listed in ``missing``.
    """

    targets: tuple[QuoteTarget, ...]
    generic_ticks: str = ""
    settle: float = 2.0
    #: One ``reqMktData(snapshot=True)`` per target: no cancels, but no generic ticks either
    #: (IB refuses them on snapshots), so ``generic_ticks`` is ignored.
    snapshot: bool = False
    #: A :mod:`sumppump.progress` listener told as each chunk of requests leaves (0: none).
    progress: int = 0


class Quotes(Reply, frozen=True, kw_only=True):
    quotes: tuple[Quote, ...]
    missing: tuple[int, ...] = ()
    notices: tuple[str, ...] = ()  # advisory TWS messages seen (delayed data, …)
    data_type: DataType = "live"


class FetchHistory(Command, frozen=True, kw_only=True):
    con_id: int
    symbol: str
    sec_type: Literal["STK", "OPT", "IND"] = "STK"
    duration: str = "1 M"
    bar_size: str = "1 day"
    what_to_show: str = "TRADES"
    use_rth: bool = True


class Bar(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    date: str  # YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS for intraday bars
    open: float
    high: float
    low: float
    close: float
    volume: float


class Bars(Reply, frozen=True, kw_only=True):
    bars: tuple[Bar, ...]
    what_to_show: str


# ---------------------------------------------------------------- news


class FetchHeadlines(Command, frozen=True, kw_only=True):
    con_id: int
    limit: int = 5


class Headline(msgspec.Struct, frozen=True, kw_only=True):
    time: str
    provider: str
    article_id: str
    headline: str


class Headlines(Reply, frozen=True, kw_only=True):
    providers: tuple[str, ...]
    headlines: tuple[Headline, ...]


class FetchArticle(Command, frozen=True, kw_only=True):
    provider: str
    article_id: str


class Article(Reply, frozen=True, kw_only=True):
    provider: str
    article_id: str
    text: str


# ---------------------------------------------------------------- account


class FetchAccount(Command, frozen=True, kw_only=True):
    pass


class AccountSnapshot(Reply, frozen=True, kw_only=True):
    account_id: str
    currency: str
    net_liquidation: float | None
    available_funds: float | None
    buying_power: float | None
    excess_liquidity: float | None = None
    init_margin: float | None = None
    maint_margin: float | None = None
    cash: float | None = None


class FetchPositions(Command, frozen=True, kw_only=True):
    pass


class PositionInfo(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    con_id: int
    symbol: str
    sec_type: str
    quantity: float
    avg_cost: float  # per unit as IB reports it (options: per contract, multiplier included)
    expiry: str | None = None
    strike: float | None = None
    right: str | None = None
    multiplier: float = 1.0
    market_price: float | None = None
    market_value: float | None = None
    unrealized_pnl: float | None = None


class Positions(Reply, frozen=True, kw_only=True):
    positions: tuple[PositionInfo, ...]


class FetchOpenOrders(Command, frozen=True, kw_only=True):
    pass


class OpenOrderInfo(msgspec.Struct, frozen=True, kw_only=True):
    order_id: int
    perm_id: int
    order_ref: str
    symbol: str
    description: str
    action: str
    quantity: float
    order_type: str
    limit_price: float | None
    aux_price: float | None
    tif: str
    status: str
    filled: float
    remaining: float


class OpenOrders(Reply, frozen=True, kw_only=True):
    orders: tuple[OpenOrderInfo, ...]


ConnectionRequest = (
    GetConnectionState
    | ResolveStock
    | FetchOptionParams
    | FetchOptionContracts
    | FetchQuotes
    | FetchHistory
    | FetchHeadlines
    | FetchArticle
    | FetchAccount
    | FetchPositions
    | FetchOpenOrders
)
ConnectionReply = (
    ConnectionState
    | StockResolved
    | OptionParams
    | OptionContracts
    | Quotes
    | Bars
    | Headlines
    | Article
    | AccountSnapshot
    | Positions
    | OpenOrders
)
