"""Messages every actor may answer, and value types shared by several protocols."""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.messages.base import Command, Reply

__all__ = [
    "AccountKind",
    "DataType",
    "Greeks",
    "GreeksSource",
    "NoMarketData",
    "NoSuchContract",
    "NotConnected",
    "NotImplementedYet",
    "OptionContract",
    "Ping",
    "Pong",
    "Quote",
    "Right",
    "StockContract",
    "TwsError",
]

#: Where a quote came from: live, frozen (last of the session), or delayed (15-20 min).
DataType = Literal["live", "frozen", "delayed", "delayed_frozen", "simulated"]
#: Where a greek came from: IB's model (tickOptionComputation) or our own Black-Scholes.
GreeksSource = Literal["ib_model", "bsm"]


class Ping(Command, frozen=True, kw_only=True):
    """Liveness probe every actor answers with :class:`Pong`."""


class Pong(Reply, frozen=True, kw_only=True):
    actor: str
    generation: int = 0


class NotImplementedYet(Reply, frozen=True, kw_only=True):
    """An honest placeholder: this actor cannot do ``request`` yet. Never invented data."""

    actor: str
    request: str
    detail: str = ""


class NotConnected(Reply, frozen=True, kw_only=True):
    """TWS is not reachable now; ``retry_in`` is the seconds until the next connect attempt."""

    reason: str
    attempt: int = 0
    retry_in: float | None = None


class NoSuchContract(Reply, frozen=True, kw_only=True):
    """IB knows no such instrument (error 200), or it is not an optionable US stock/ETF."""

    symbol: str
    detail: str = ""


class NoMarketData(Reply, frozen=True, kw_only=True):
    """No market data for this: no subscription (354, 10089, 10168; ``subscribe_hint`` names
    the one to add), or another live session of the IB user took the data (10197)."""

    code: int
    message: str
    subscribe_hint: str


class TwsError(Reply, frozen=True, kw_only=True):
    """TWS answered a request with an error that has no more specific reply."""

    code: int
    message: str
    request: str


Right = Literal["C", "P"]


class StockContract(msgspec.Struct, frozen=True, kw_only=True):
    """An underlying, as IB defines it (converted from ``ContractDetails`` at the edge)."""

    con_id: int
    symbol: str
    sec_type: Literal["STK", "IND"] = "STK"
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    long_name: str = ""
    min_tick: float = 0.01
    time_zone: str = ""
    trading_hours: str = ""
    liquid_hours: str = ""


class OptionContract(msgspec.Struct, frozen=True, kw_only=True):
    """One listed option. ``expiry`` is ``YYYY-MM-DD``; ``multiplier`` comes from IB."""

    con_id: int
    symbol: str
    expiry: str
    strike: float
    right: Right
    multiplier: float
    trading_class: str
    exchange: str = "SMART"
    currency: str = "USD"
    local_symbol: str = ""


class Greeks(msgspec.Struct, frozen=True, kw_only=True):
    """Greeks in IB's units (theta per day, vega per vol point) and where they came from."""

    delta: float | None
    gamma: float | None
    theta: float | None
    vega: float | None
    iv: float | None
    source: GreeksSource
    underlying_price: float | None = None


#: Which kind of account an answer comes from (simulated answers are labelled as such).
AccountKind = Literal["LIVE", "PAPER", "SIMULATED"]


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """A market-data snapshot for one contract. ``None`` means IB sent no value; nothing is
    filled in. ``ts`` is when it was received (ns since the epoch)."""

    con_id: int
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    close: float | None = None
    high: float | None = None
    low: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    volume: float | None = None
    avg_volume: float | None = None
    open_interest: float | None = None
    implied_vol: float | None = None
    hist_vol: float | None = None
    call_volume: float | None = None
    put_volume: float | None = None
    call_open_interest: float | None = None
    put_open_interest: float | None = None
    greeks: Greeks | None = None
    data_type: DataType = "live"
    ts: int = 0
    #: The next dividend, from IB's generic tick 456 ("IB Dividends": nextDate, nextAmount)
    #: when it was asked for; ``None`` when IB sent none.
    dividend_ex_date: str | None = None
    dividend_amount: float | None = None

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None or self.bid <= 0 or self.ask < self.bid:
            return None
        return round((self.bid + self.ask) / 2, 6)
