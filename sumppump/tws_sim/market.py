"""The simulated market: a seeded random walk per underlying and Black-Scholes option quotes.

Price path. For every trading day ``d`` the close ``C(d)`` follows a daily log-normal walk anchored
so that the close before the simulator's start date equals the catalogue price. Inside the regular
session the price follows a Brownian bridge from the day's open to its close, sampled every five
minutes and linearly interpolated; before the open it is the previous close, after the close the
day's close. Every random number comes from ``random.Random`` seeded with the world seed, the symbol
and the day, so a price depends only on (seed, start date, symbol, time) and history is available
backwards as well as forwards.

Options. Black-Scholes (no dividends, rate 4%) on the walk's price, with a volatility smile in
standardised moneyness and a mild term structure; the bid/ask spread widens with premium and with
distance from the money. Greeks are in IB's units: vega per one volatility point, theta per calendar
day. The simulator carries its own small BSM (``math.erf``) on purpose: it is an independent world
against which the product's pricing is tested.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import zlib
from dataclasses import dataclass

from .catalog import Catalog, OptionContract, Underlying, min_tick
from .clock import NEW_YORK, SimClock, is_trading_day, session_bounds
from .protocol import Bar

__all__ = [
    "RISK_FREE_RATE",
    "BarRequestError",
    "Greeks",
    "MarketModel",
    "OptionQuote",
    "StockQuote",
    "bsm_greeks",
    "bsm_price",
    "implied_vol",
]

RISK_FREE_RATE = 0.04
_NODES = 78  # five-minute intervals in the 6.5 h regular session
_YEAR_SECONDS = 365.0 * 86400.0


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def bsm_price(
    spot: float, strike: float, t: float, vol: float, right: str, r: float = RISK_FREE_RATE
) -> float:
    """Black-Scholes price per share; intrinsic value when ``t`` or ``vol`` is zero."""
    if t <= 0 or vol <= 0:
        return max(0.0, spot - strike) if right == "C" else max(0.0, strike - spot)
    sq = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (r + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    disc = math.exp(-r * t)
    if right == "C":
        return spot * _norm_cdf(d1) - strike * disc * _norm_cdf(d2)
    return strike * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


@dataclass(frozen=True, slots=True)
class Greeks:
    """IB units: delta and gamma per $1 of underlying, vega per 1 vol point, theta per day."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def bsm_greeks(
    spot: float, strike: float, t: float, vol: float, right: str, r: float = RISK_FREE_RATE
) -> Greeks:
    price = bsm_price(spot, strike, t, vol, right, r)
    if t <= 0 or vol <= 0:
        itm = (spot > strike) if right == "C" else (spot < strike)
        delta = (1.0 if right == "C" else -1.0) if itm else 0.0
        return Greeks(price, delta, 0.0, 0.0, 0.0)
    sqt = math.sqrt(t)
    d1 = (math.log(spot / strike) + (r + 0.5 * vol * vol) * t) / (vol * sqt)
    d2 = d1 - vol * sqt
    pdf = _norm_pdf(d1)
    disc = math.exp(-r * t)
    gamma = pdf / (spot * vol * sqt)
    vega = spot * pdf * sqt / 100.0
    decay = -(spot * pdf * vol) / (2.0 * sqt)
    if right == "C":
        delta = _norm_cdf(d1)
        theta = (decay - r * strike * disc * _norm_cdf(d2)) / 365.0
    else:
        delta = _norm_cdf(d1) - 1.0
        theta = (decay + r * strike * disc * _norm_cdf(-d2)) / 365.0
    return Greeks(price, delta, gamma, vega, theta)


def implied_vol(price: float, spot: float, strike: float, t: float, right: str) -> float | None:
    """Volatility reproducing ``price`` (Newton steps, bisection when they stray), or None below
    intrinsic value or without time."""
    if t <= 0 or price <= 0:
        return None
    lo, hi = 1e-4, 5.0
    if price < bsm_price(spot, strike, t, lo, right) or price > bsm_price(
        spot, strike, t, hi, right
    ):
        return None
    vol = 0.3
    for _ in range(50):
        g = bsm_greeks(spot, strike, t, vol, right)
        diff = g.price - price
        if abs(diff) < 1e-7:
            return vol
        if diff > 0:
            hi = vol
        else:
            lo = vol
        step = diff / (g.vega * 100.0) if g.vega > 1e-8 else 0.0
        candidate = vol - step
        vol = candidate if lo < candidate < hi else 0.5 * (lo + hi)
    return vol


@dataclass(frozen=True, slots=True)
class StockQuote:
    bid: float
    ask: float
    last: float
    bid_size: float
    ask_size: float
    last_size: float
    volume: float
    open: float
    high: float
    low: float
    close: float  # previous session's close
    hist_vol: float  # 30-day realised, annualised
    implied_vol: float  # 30-day at-the-money
    call_open_interest: float
    put_open_interest: float
    call_volume: float
    put_volume: float
    avg_volume: float


@dataclass(frozen=True, slots=True)
class OptionQuote:
    bid: float
    ask: float
    last: float
    bid_size: float
    ask_size: float
    last_size: float
    volume: float
    open_interest: float
    close: float
    underlying: float
    iv: float
    model: Greeks
    bid_iv: float | None
    ask_iv: float | None
    bid_greeks: Greeks | None
    ask_greeks: Greeks | None


class BarRequestError(ValueError):
    """A historical request the simulator (like TWS) cannot answer; ``code`` is IB's error."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _round_tick(value: float, tick: float, up: bool) -> float:
    steps = value / tick
    steps = math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)
    return round(steps * tick, 2)


def _stable_unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (cheap; for sizes and volumes)."""
    return (zlib.crc32("/".join(map(str, parts)).encode()) & 0xFFFFFF) / float(0x1000000)


class MarketModel:
    """Prices, quotes and bars of the simulated world at the clock's current time."""

    def __init__(self, catalog: Catalog, clock: SimClock, seed: int = 0) -> None:
        self.catalog = catalog
        self.clock = clock
        self.seed = seed
        # The close before the start day is the catalogue price.
        start_day = clock.now().astimezone(NEW_YORK).date()
        self._anchor = self._previous_trading_day(start_day)
        self._closes: dict[str, dict[dt.date, float]] = {
            sym: {self._anchor: und.price} for sym, und in catalog.underlyings.items()
        }
        self._overrides: dict[str, float] = {}
        self._paths: dict[tuple[str, dt.date], tuple[float, ...]] = {}

    # --- the walk -------------------------------------------------------------------------------

    @staticmethod
    def _previous_trading_day(day: dt.date) -> dt.date:
        day -= dt.timedelta(days=1)
        while not is_trading_day(day):
            day -= dt.timedelta(days=1)
        return day

    @staticmethod
    def _next_trading_day(day: dt.date) -> dt.date:
        day += dt.timedelta(days=1)
        while not is_trading_day(day):
            day += dt.timedelta(days=1)
        return day

    def _daily_sigma(self, und: Underlying) -> float:
        return und.base_iv * 0.9 / math.sqrt(252.0)

    def _daily_return(self, und: Underlying, day: dt.date) -> float:
        rng = random.Random(f"{self.seed}/{und.symbol}/day/{day.isoformat()}")
        sigma = self._daily_sigma(und)
        return sigma * rng.gauss(0.0, 1.0) - 0.5 * sigma * sigma

    def close(self, symbol: str, day: dt.date) -> float:
        """The close of trading day ``day`` (for a non-trading day: the last close before it)."""
        while not is_trading_day(day):
            day -= dt.timedelta(days=1)
        und = self.catalog.underlyings[symbol]
        closes = self._closes[symbol]
        if day in closes:
            return closes[day]
        if day > self._anchor:
            known = max(d for d in closes if d < day)
            value = closes[known]
            d = known
            while d < day:
                d = self._next_trading_day(d)
                value *= math.exp(self._daily_return(und, d))
                closes[d] = value
        else:
            known = min(d for d in closes if d > day)
            value = closes[known]
            d = known
            while d > day:
                value /= math.exp(self._daily_return(und, d))
                d = self._previous_trading_day(d)
                closes[d] = value
        return closes[day]

    def _session_path(self, symbol: str, day: dt.date) -> tuple[float, ...]:
        """Prices at the 79 five-minute nodes of ``day``'s regular session (cached)."""
        key = (symbol, day)
        cached = self._paths.get(key)
        if cached is None:
            cached = self._paths[key] = self._make_session_path(symbol, day)
        return cached

    def _make_session_path(self, symbol: str, day: dt.date) -> tuple[float, ...]:
        und = self.catalog.underlyings[symbol]
        prev_close = self.close(symbol, self._previous_trading_day(day))
        close = self.close(symbol, day)
        rng = random.Random(f"{self.seed}/{symbol}/path/{day.isoformat()}")
        sigma = self._daily_sigma(und)
        open_ = prev_close * math.exp(0.25 * sigma * rng.gauss(0.0, 1.0))
        walk = [0.0]
        step = sigma / math.sqrt(_NODES)
        for _ in range(_NODES):
            walk.append(walk[-1] + step * rng.gauss(0.0, 1.0))
        log_o, log_c = math.log(open_), math.log(close)
        path = []
        for k, w in enumerate(walk):
            frac = k / _NODES
            path.append(math.exp(log_o + frac * (log_c - log_o) + w - frac * walk[-1]))
        return tuple(path)

    def spot(self, symbol: str, when: dt.datetime | None = None) -> float:
        """The underlying's price at ``when`` (default: now)."""
        if symbol in self._overrides:
            return self._overrides[symbol]
        when = when or self.clock.now()
        local = when.astimezone(NEW_YORK)
        day = local.date()
        if not is_trading_day(day):
            return self.close(symbol, day)
        open_at, close_at = session_bounds(day)
        if when < open_at:
            return self.close(symbol, self._previous_trading_day(day))
        if when >= close_at:
            return self.close(symbol, day)
        path = self._session_path(symbol, day)
        position = (when - open_at).total_seconds() / 300.0
        k = int(position)
        frac = position - k
        return path[k] + (path[k + 1] - path[k]) * frac

    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin an underlying's price (tests: make an order marketable); None resumes the walk."""
        if price is None:
            self._overrides.pop(symbol, None)
        else:
            self._overrides[symbol] = price

    def _day_range(self, symbol: str, when: dt.datetime) -> tuple[float, float, float]:
        """(open, high, low) of the session containing ``when`` up to ``when``."""
        local = when.astimezone(NEW_YORK)
        day = local.date()
        spot = self.spot(symbol, when)
        if not is_trading_day(day):
            return spot, spot, spot
        open_at, _close = session_bounds(day)
        if when < open_at:
            return spot, spot, spot
        path = self._session_path(symbol, day)
        upto = min(_NODES, int((when - open_at).total_seconds() // 300))
        seen = [*path[: upto + 1], spot]
        return path[0], max(seen), min(seen)

    def realised_vol(self, symbol: str, day: dt.date, window: int = 30) -> float:
        closes = []
        d = day
        for _ in range(window + 1):
            d = self._previous_trading_day(d)
            closes.append(self.close(symbol, d))
        rets = [math.log(closes[i] / closes[i + 1]) for i in range(window)]
        mean = sum(rets) / window
        var = sum((x - mean) ** 2 for x in rets) / (window - 1)
        return math.sqrt(var * 252.0)

    def iv_level(self, symbol: str, day: dt.date) -> float:
        """The at-the-money 30-day implied volatility on ``day`` (slowly varying, seeded)."""
        phase = _stable_unit(self.seed, symbol, "iv-phase") * 2 * math.pi
        wobble = 0.12 * math.sin(day.toordinal() / 23.0 + phase)
        noise = 0.03 * (_stable_unit(self.seed, symbol, "iv", day.isoformat()) - 0.5)
        return self.catalog.underlyings[symbol].base_iv * (1.0 + wobble + noise)

    # --- quotes ---------------------------------------------------------------------------------

    def stock_quote(self, symbol: str, when: dt.datetime | None = None) -> StockQuote:
        """The quote at ``when`` (default now; delayed data asks for 15 minutes ago)."""
        now = when or self.clock.now()
        spot = self.spot(symbol, now)
        half = max(0.01, round(spot * 0.0001, 2)) / 2
        bid = _round_tick(spot - half, 0.01, up=False)
        ask = max(_round_tick(spot + half, 0.01, up=True), bid + 0.01)
        minute = int(now.timestamp() // 60)
        day = now.astimezone(NEW_YORK).date()
        open_, high, low = self._day_range(symbol, now)
        open_at, close_at = session_bounds(day)
        elapsed = min(1.0, max(0.0, (now - open_at).total_seconds() / (close_at - open_at).seconds))
        avg_volume = round(2e7 * (0.5 + _stable_unit(self.seed, symbol, "avgvol")), -2)
        oi_scale = 2e5 * (0.5 + _stable_unit(self.seed, symbol, "oi"))
        return StockQuote(
            bid=bid,
            ask=ask,
            last=round(spot, 2),
            # Sizes and volumes in shares: "Effective in TWS version 985 and later, for US
            # stocks the bid, ask, and last size quotes are shown in shares (not in lots)"
            # (IB's notice, quoted in erdewit/ib_insync#382); API 10.18 release notes: "Now
            # historical data ticks are delivered in shares" (ibkrguides TWS API release
            # notes). ib_async 2.1.0 speaks v178, far above those releases.
            bid_size=100.0 * (1 + int(9 * _stable_unit(symbol, minute, "bs"))),
            ask_size=100.0 * (1 + int(9 * _stable_unit(symbol, minute, "as"))),
            last_size=100.0 * (1 + int(4 * _stable_unit(symbol, minute, "ls"))),
            volume=float(round(avg_volume * elapsed)),
            open=round(open_, 2),
            high=round(high, 2),
            low=round(low, 2),
            close=round(self.close(symbol, self._previous_trading_day(day)), 2),
            hist_vol=self.realised_vol(symbol, day),
            implied_vol=self.iv_level(symbol, day),
            call_open_interest=round(oi_scale * 1.2),
            put_open_interest=round(oi_scale),
            call_volume=round(oi_scale * 0.3 * elapsed),
            put_volume=round(oi_scale * 0.25 * elapsed),
            avg_volume=avg_volume,
        )

    def time_to_expiry(self, opt: OptionContract, when: dt.datetime | None = None) -> float:
        when = when or self.clock.now()
        _open, expiry_close = session_bounds(opt.expiry_date)
        return max(0.0, (expiry_close - when).total_seconds() / _YEAR_SECONDS)

    def option_vol(
        self, opt: OptionContract, spot: float, t: float, when: dt.datetime | None = None
    ) -> float:
        """Smile in standardised moneyness x = ln(K/S) / (atm * sqrt(T)): puts richer than calls."""
        day = (when or self.clock.now()).astimezone(NEW_YORK).date()
        atm = self.iv_level(opt.symbol, day) * (1.0 + 0.08 * (math.sqrt(max(t, 1 / 365) * 12) - 1))
        x = math.log(opt.strike / spot) / (atm * math.sqrt(max(t, 2.0 / 365.0)))
        smile = 1.0 - 0.08 * x + 0.025 * x * x
        return atm * min(2.5, max(0.6, smile))

    def option_quote(self, opt: OptionContract, when: dt.datetime | None = None) -> OptionQuote:
        """The quote at ``when`` (default now; delayed data asks for 15 minutes ago)."""
        now = when or self.clock.now()
        spot = self.spot(opt.symbol, now)
        t = self.time_to_expiry(opt, now)
        vol = self.option_vol(opt, spot, t, now)
        model = bsm_greeks(spot, opt.strike, t, vol, opt.right)
        theo = model.price
        atm = self.iv_level(opt.symbol, now.astimezone(NEW_YORK).date())
        x = abs(math.log(opt.strike / spot)) / (atm * math.sqrt(max(t, 2.0 / 365.0)))
        spread = (0.02 + 0.012 * theo) * (1.0 + 0.5 * x)
        raw_bid, raw_ask = theo - spread / 2, theo + spread / 2
        bid = _round_tick(raw_bid, min_tick(opt, raw_bid), up=False)
        ask = _round_tick(raw_ask, min_tick(opt, raw_ask), up=True)
        if bid <= 0:
            bid = 0.0
        ask = max(ask, round(bid + min_tick(opt, bid), 2), 0.01)
        minute = int(now.timestamp() // 60)
        liquidity = math.exp(-0.5 * x * x / 4.0)
        oi = round(100 + 20000 * liquidity * (0.3 + _stable_unit(self.seed, opt.con_id, "oi")))
        day = now.astimezone(NEW_YORK).date()
        open_at, close_at = session_bounds(day)
        elapsed = min(1.0, max(0.0, (now - open_at).total_seconds() / (close_at - open_at).seconds))
        bid_iv = implied_vol(bid, spot, opt.strike, t, opt.right) if bid > 0 else None
        ask_iv = implied_vol(ask, spot, opt.strike, t, opt.right)
        prev_day = self._previous_trading_day(day)
        prev_close = bsm_price(
            self.close(opt.symbol, prev_day),
            opt.strike,
            t + 1.0 / 365.0,
            vol,
            opt.right,
        )
        return OptionQuote(
            bid=bid,
            ask=ask,
            last=round(min(max(theo, bid), ask), 2),
            bid_size=0.0
            if bid == 0
            else float(1 + int(40 * _stable_unit(opt.con_id, minute, "b"))),
            ask_size=float(1 + int(40 * _stable_unit(opt.con_id, minute, "a"))),
            last_size=float(1 + int(5 * _stable_unit(opt.con_id, minute, "l"))),
            volume=float(round(oi * 0.2 * elapsed * _stable_unit(self.seed, opt.con_id, "v"))),
            open_interest=float(oi),
            close=round(prev_close, 2),
            underlying=spot,
            iv=vol,
            model=model,
            bid_iv=bid_iv,
            ask_iv=ask_iv,
            bid_greeks=bsm_greeks(spot, opt.strike, t, bid_iv, opt.right) if bid_iv else None,
            ask_greeks=bsm_greeks(spot, opt.strike, t, ask_iv, opt.right) if ask_iv else None,
        )

    def mark(self, inst: Underlying | OptionContract) -> float:
        """Mid price used for portfolio valuation."""
        if isinstance(inst, Underlying):
            return round(self.spot(inst.symbol), 2)
        q = self.option_quote(inst)
        return round((q.bid + q.ask) / 2, 4) if q.bid > 0 else q.ask / 2

    # --- history ----------------------------------------------------------------------------

    def bars(
        self,
        inst: Underlying | OptionContract,
        end: dt.datetime,
        duration: str,
        bar_size: str,
        what_to_show: str,
        format_date: int = 1,
    ) -> list[Bar]:
        """Historical bars ending at ``end`` (never later than now).

        Supports durations ``N S|D|W|M|Y``, bar sizes ``1 day``, ``1 hour``, ``30 mins``,
        ``15 mins``, ``5 mins`` and whatToShow TRADES, MIDPOINT, BID, ASK, ADJUSTED_LAST,
        HISTORICAL_VOLATILITY, OPTION_IMPLIED_VOLATILITY. Raises :class:`BarRequestError` (code
        162 like TWS's HMDS, which ib_async treats as a failed request) otherwise.
        """
        end = min(end, self.clock.now())
        start = _duration_start(end, duration)
        size = bar_size.strip().lower()
        what = what_to_show.strip().upper()
        if what not in {
            "TRADES",
            "MIDPOINT",
            "BID",
            "ASK",
            "BID_ASK",
            "ADJUSTED_LAST",
            "HISTORICAL_VOLATILITY",
            "OPTION_IMPLIED_VOLATILITY",
        }:
            raise BarRequestError(
                162,
                f"Historical Market Data Service error message:Invalid whatToShow {what_to_show}",
            )
        symbol = inst.symbol
        if size in ("1 day", "1 days"):
            bars = self._daily_bars(inst, start, end, what)
        elif size in ("1 hour", "1 hours", "30 mins", "15 mins", "5 mins"):
            minutes = {"1 hour": 60, "1 hours": 60, "30 mins": 30, "15 mins": 15, "5 mins": 5}[size]
            bars = self._intraday_bars(inst, start, end, minutes, what, format_date)
        else:
            raise BarRequestError(
                162,
                "Historical Market Data Service error message:Historical data bar size setting "
                f"is invalid. Legal ones are: 1 day, 1 hour, 30 mins, 15 mins, 5 mins ({bar_size})",
            )
        if not bars:
            raise BarRequestError(
                162,
                "Historical Market Data Service error message:HMDS query returned no data: "
                f"{symbol}",
            )
        return bars

    def _value(self, inst: Underlying | OptionContract, when: dt.datetime, what: str) -> float:
        if what == "HISTORICAL_VOLATILITY":
            return self.realised_vol(inst.symbol, when.astimezone(NEW_YORK).date())
        if what == "OPTION_IMPLIED_VOLATILITY":
            return self.iv_level(inst.symbol, when.astimezone(NEW_YORK).date())
        spot = self.spot(inst.symbol, when)
        if isinstance(inst, Underlying):
            return spot
        t = self.time_to_expiry(inst, when)
        return bsm_price(spot, inst.strike, t, self.option_vol(inst, spot, t, when), inst.right)

    def _daily_bars(
        self, inst: Underlying | OptionContract, start: dt.datetime, end: dt.datetime, what: str
    ) -> list[Bar]:
        bars = []
        day = start.astimezone(NEW_YORK).date()
        last_day = end.astimezone(NEW_YORK).date()
        while day <= last_day:
            if is_trading_day(day):
                open_at, close_at = session_bounds(day)
                if open_at <= end:
                    until = min(end, close_at)
                    bars.append(self._bar(inst, open_at, until, what, day.strftime("%Y%m%d"), 13))
            day += dt.timedelta(days=1)
        return bars

    def _intraday_bars(
        self,
        inst: Underlying | OptionContract,
        start: dt.datetime,
        end: dt.datetime,
        minutes: int,
        what: str,
        format_date: int,
    ) -> list[Bar]:
        bars = []
        day = start.astimezone(NEW_YORK).date()
        last_day = end.astimezone(NEW_YORK).date()
        while day <= last_day:
            if is_trading_day(day):
                open_at, close_at = session_bounds(day)
                # IB's first hourly bar is 09:30-10:00; later bars start on the hour.
                edges = [open_at]
                t = open_at
                while t < close_at:
                    local = t.astimezone(NEW_YORK)
                    nxt = local + dt.timedelta(minutes=minutes)
                    if minutes == 60:
                        nxt = local.replace(minute=0) + dt.timedelta(hours=1)
                    t = min(nxt.astimezone(dt.UTC), close_at)
                    edges.append(t)
                for a, b in itertools.pairwise(edges):
                    if a < start or a >= end:
                        continue
                    label = (
                        str(int(a.timestamp()))
                        if format_date == 2
                        else a.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
                    )
                    bars.append(self._bar(inst, a, min(b, end), what, label, max(1, minutes // 5)))
            day += dt.timedelta(days=1)
        return bars

    def _bar(
        self,
        inst: Underlying | OptionContract,
        a: dt.datetime,
        b: dt.datetime,
        what: str,
        label: str,
        samples: int,
    ) -> Bar:
        n = max(2, samples + 1)
        span = (b - a).total_seconds()
        values = [
            self._value(inst, a + dt.timedelta(seconds=span * i / (n - 1)), what) for i in range(n)
        ]
        digits = 6 if what in ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY") else 2
        o, c = round(values[0], digits), round(values[-1], digits)
        h, lo = round(max(values), digits), round(min(values), digits)
        if what in ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY"):
            volume, count = 0.0, 0
        else:
            scale = 1e7 if isinstance(inst, Underlying) else 2e2
            frac = span / 23400.0
            volume = float(round(scale * frac * (0.5 + _stable_unit(inst.con_id, label))))
            count = int(volume // 7) + 1
        return Bar(label, o, h, lo, c, volume, round((o + h + lo + c) / 4, digits), count)


def _duration_start(end: dt.datetime, duration: str) -> dt.datetime:
    parts = duration.split()
    if len(parts) != 2 or not parts[0].isdigit() or parts[1].upper() not in "SDWMY":
        raise BarRequestError(
            162, f"Historical Market Data Service error message:Invalid duration {duration!r}"
        )
    n, unit = int(parts[0]), parts[1].upper()
    if unit == "S":
        return end - dt.timedelta(seconds=n)
    if unit == "D":
        # N trading days back, counting the end day.
        day = end.astimezone(NEW_YORK).date()
        counted = 0
        while True:
            if is_trading_day(day):
                counted += 1
                if counted == n:
                    break
            day -= dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(0, 0), NEW_YORK).astimezone(dt.UTC)
    if unit == "W":
        return end - dt.timedelta(weeks=n)
    local = end.astimezone(NEW_YORK)
    months = n if unit == "M" else 12 * n
    year, month = divmod(local.month - 1 - months, 12)
    target_year, target_month = local.year + year, month + 1
    days_in = [31, 29 if target_year % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    day_of_month = min(local.day, days_in[target_month - 1])
    start = local.replace(year=target_year, month=target_month, day=day_of_month)
    return (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def nearest_strike(strikes: tuple[float, ...], price: float) -> float:
    """The listed strike closest to ``price``."""
    i = bisect.bisect_left(strikes, price)
    candidates = strikes[max(0, i - 1) : i + 1]
    return min(candidates, key=lambda k: abs(k - price))
