"""Pure helpers of the chain cache: which trading class, which expiry, which strikes, a chain
row from a contract and its quote, and the market-stats arithmetic (no I/O, no actors)."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from datetime import date, timedelta

from sumppump.messages.chain_cache import ChainRow
from sumppump.messages.common import Greeks, OptionContract, Quote
from sumppump.messages.connection import OptionParamSet

__all__ = [
    "chain_row",
    "choose_trading_class",
    "historical_vol",
    "iv_rank_percentile",
    "nearest_expiry",
    "nearest_listed",
    "reference_price",
    "strike_window",
]


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
