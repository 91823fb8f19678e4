"""The simulated instrument catalogue: optionable US stocks, ETFs and their listed options.

Prices are seeded (a few percent around a realistic level), dividends are ignored. Expiries are
derived from the simulated date: weeklies for the next six Fridays (where the underlying lists
weeklies) and the monthly third Friday for the next six months. Strikes are fixed per underlying
(finer near the seeded price, twice as coarse further out) and shared by all expiries.

Option conIds are computed, not allocated, so they are stable for a given seed and date and can be
decoded back into the contract: ``1_000_000_000 + underlying * 100_000_000
+ (expiry ordinal % 1000) * 100_000 + strike index * 2 + (1 if put)``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from .clock import liquid_hours, trading_hours
from .protocol import ContractDetailsView, WireContract

__all__ = [
    "MARKET_RULES",
    "Catalog",
    "Instrument",
    "OptionContract",
    "Underlying",
    "market_rule_id",
    "min_tick",
]

_OPTION_BASE = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Underlying:
    index: int
    symbol: str
    con_id: int
    primary_exchange: str
    long_name: str
    industry: str
    category: str
    stock_type: str  # COMMON or ETF
    price: float  # seeded reference price (the previous close at the simulator's start)
    base_iv: float  # at-the-money implied volatility level
    strike_step: float
    weeklies: bool
    strikes: tuple[float, ...]

    @property
    def sec_type(self) -> str:
        return "STK"

    @property
    def multiplier(self) -> float:
        return 1.0

    def wire(self, exchange: str = "SMART") -> WireContract:
        return WireContract(
            con_id=self.con_id,
            symbol=self.symbol,
            sec_type="STK",
            exchange=exchange,
            primary_exchange=self.primary_exchange,
            currency="USD",
            local_symbol=self.symbol,
            trading_class="NMS" if self.primary_exchange == "NASDAQ" else self.symbol,
        )


@dataclass(frozen=True, slots=True)
class OptionContract:
    con_id: int
    underlying: Underlying
    expiry: str  # YYYYMMDD
    strike: float
    right: str  # C or P

    @property
    def symbol(self) -> str:
        return self.underlying.symbol

    @property
    def sec_type(self) -> str:
        return "OPT"

    @property
    def multiplier(self) -> float:
        return 100.0

    @property
    def expiry_date(self) -> dt.date:
        return dt.datetime.strptime(self.expiry, "%Y%m%d").date()

    @property
    def local_symbol(self) -> str:
        """OCC symbology, e.g. ``AAPL  261218C00230000``."""
        return f"{self.symbol:<6}{self.expiry[2:]}{self.right}{round(self.strike * 1000):08d}"

    def wire(self, exchange: str = "SMART") -> WireContract:
        return WireContract(
            con_id=self.con_id,
            symbol=self.symbol,
            sec_type="OPT",
            last_trade_date=self.expiry,
            strike=self.strike,
            right=self.right,
            multiplier="100",
            exchange=exchange,
            currency="USD",
            local_symbol=self.local_symbol,
            trading_class=self.symbol,
        )


Instrument = Underlying | OptionContract

MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.01),),  # stocks
    32: ((0.0, 0.01), (3.0, 0.05)),  # penny-pilot options: 0.01 below $3, 0.05 from $3
    33: ((0.0, 0.01),),  # options quoted in pennies throughout (SPY)
}
"""Price increments by market rule id: (low edge, increment) pairs, as reqMarketRule gives."""

_PENNY_THROUGHOUT = frozenset({"SPY"})


def market_rule_id(inst: Underlying | OptionContract) -> int:
    if isinstance(inst, Underlying):
        return 26
    return 33 if inst.symbol in _PENNY_THROUGHOUT else 32


def min_tick(inst: Underlying | OptionContract, price: float) -> float:
    """The price increment that applies to ``inst`` at ``price``."""
    tick = 0.01
    for low_edge, increment in MARKET_RULES[market_rule_id(inst)]:
        if price >= low_edge - 1e-9:
            tick = increment
    return tick


# symbol, conId (IB's real ones), primary exchange, name, industry, category, type, price, iv,
# strike step near the money, weeklies
_UNIVERSE: tuple[tuple[str, int, str, str, str, str, str, float, float, float, bool], ...] = (
    (
        "AAPL",
        265598,
        "NASDAQ",
        "APPLE INC",
        "Technology",
        "Computers",
        "COMMON",
        230.0,
        0.26,
        5.0,
        True,
    ),
    (
        "MSFT",
        272093,
        "NASDAQ",
        "MICROSOFT CORP",
        "Technology",
        "Software",
        "COMMON",
        420.0,
        0.24,
        5.0,
        True,
    ),
    (
        "NVDA",
        4815747,
        "NASDAQ",
        "NVIDIA CORP",
        "Technology",
        "Semiconductors",
        "COMMON",
        140.0,
        0.48,
        2.5,
        True,
    ),
    (
        "AMZN",
        3691937,
        "NASDAQ",
        "AMAZON.COM INC",
        "Communications",
        "Internet",
        "COMMON",
        200.0,
        0.32,
        2.5,
        True,
    ),
    (
        "TSLA",
        76792991,
        "NASDAQ",
        "TESLA INC",
        "Consumer, Cyclical",
        "Auto Manufacturers",
        "COMMON",
        250.0,
        0.58,
        5.0,
        True,
    ),
    (
        "JPM",
        1520593,
        "NYSE",
        "JPMORGAN CHASE & CO",
        "Financial",
        "Banks",
        "COMMON",
        220.0,
        0.22,
        5.0,
        False,
    ),
    (
        "F",
        9599491,
        "NYSE",
        "FORD MOTOR CO",
        "Consumer, Cyclical",
        "Auto Manufacturers",
        "COMMON",
        11.0,
        0.36,
        0.5,
        True,
    ),
    (
        "SPY",
        756733,
        "ARCA",
        "SPDR S&P 500 ETF TRUST",
        "Funds",
        "Equity Fund",
        "ETF",
        590.0,
        0.14,
        5.0,
        True,
    ),
)

STOCK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,BENCHPX,COND,CONDORDER,DAY,DEACT,"
    "DEACTDIS,DEACTEOD,DIS,GAT,GTC,GTD,GTT,HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIT,MKT,MOC,MTL,"
    "NGCOMB,NONALGO,OCA,OPG,OPGREROUT,PEGBENCH,POSTATS,POSTONLY,PREOPGRTH,REL,RPI,RTH,SCALE,"
    "SCALEODD,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,SWEEP,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,"
    "WHATIF"
)
OPTION_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,"
    "GAT,GTC,GTD,GTT,HID,ICE,IOC,LIT,LMT,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,OPENCLOSE,PEGMIDVOL,"
    "PEGMKTVOL,PEGPRMVOL,PEGSRFVOL,POSTONLY,PRICECHK,REL,RELPCTOFS,RELSTK,SCALE,SCALERST,SIZECHK,"
    "SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,VOLAT,WHATIF"
)
STOCK_EXCHANGES = "SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,NASDAQ,DRCTEDGE,BEX,BATS,EDGEA,IEX"
OPTION_EXCHANGES = (
    "SMART,AMEX,CBOE,PHLX,PSE,ISE,BOX,BATS,NASDAQOM,CBOE2,NASDAQBX,MIAX,GEMINI,EDGX,MERCURY,"
    "PEARL,EMERALD,MEMX,IBUSOPT"
)


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_friday = first + dt.timedelta(days=(4 - first.weekday()) % 7)
    return first_friday + dt.timedelta(days=14)


def _strike_ladder(price: float, step: float) -> tuple[float, ...]:
    """Strikes every ``step`` within 20% of ``price`` and every ``2*step`` out to 50%."""
    strikes: set[float] = set()
    center = round(price / step) * step
    k = center
    while k >= price * 0.5 and k > 0:
        strikes.add(round(k, 2))
        k -= step if k > price * 0.8 else 2 * step
    k = center + step
    while k <= price * 1.5:
        strikes.add(round(k, 2))
        k += step if k < price * 1.2 else 2 * step
    return tuple(sorted(strikes))


class Catalog:
    """All instruments of one simulated world; deterministic for a given seed."""

    def __init__(self, seed: int = 0) -> None:
        rng = random.Random(f"sumppump-sim/catalog/{seed}")
        underlyings = []
        for index, row in enumerate(_UNIVERSE):
            symbol, con_id, exch, name, industry, category, stype, price, iv, step, weeklies = row
            seeded = round(price * (1.0 + rng.uniform(-0.04, 0.04)), 2)
            underlyings.append(
                Underlying(
                    index=index,
                    symbol=symbol,
                    con_id=con_id,
                    primary_exchange=exch,
                    long_name=name,
                    industry=industry,
                    category=category,
                    stock_type=stype,
                    price=seeded,
                    base_iv=round(iv * (1.0 + rng.uniform(-0.05, 0.05)), 4),
                    strike_step=step,
                    weeklies=weeklies,
                    strikes=_strike_ladder(seeded, step),
                )
            )
        self.seed = seed
        self.underlyings: dict[str, Underlying] = {u.symbol: u for u in underlyings}
        self._by_con_id: dict[int, Underlying] = {u.con_id: u for u in underlyings}
        self._by_index: dict[int, Underlying] = {u.index: u for u in underlyings}

    # --- lookup -----------------------------------------------------------------------------

    def underlying(self, symbol: str) -> Underlying | None:
        return self.underlyings.get(symbol.upper())

    def expiries(self, symbol: str, today: dt.date) -> list[str]:
        """Listed expiries (YYYYMMDD) on ``today``: weeklies and monthlies not yet expired."""
        und = self.underlying(symbol)
        if und is None:
            return []
        dates: set[dt.date] = set()
        if und.weeklies:
            friday = today + dt.timedelta(days=(4 - today.weekday()) % 7)
            for week in range(6):
                dates.add(friday + dt.timedelta(weeks=week))
        year, month = today.year, today.month
        monthlies = 0
        while monthlies < 6:
            third = _third_friday(year, month)
            if third >= today:
                dates.add(third)
                monthlies += 1
            month += 1
            if month > 12:
                year, month = year + 1, 1
        return [d.strftime("%Y%m%d") for d in sorted(dates)]

    def option(self, symbol: str, expiry: str, strike: float, right: str) -> OptionContract | None:
        """The option if ``strike`` is listed for the underlying (expiry is not checked)."""
        und = self.underlying(symbol)
        if und is None or right not in ("C", "P"):
            return None
        try:
            strike_index = und.strikes.index(round(strike, 2))
        except ValueError:
            return None
        ordinal = dt.datetime.strptime(expiry, "%Y%m%d").date().toordinal()
        con_id = (
            _OPTION_BASE
            + und.index * 100_000_000
            + (ordinal % 1000) * 100_000
            + strike_index * 2
            + (1 if right == "P" else 0)
        )
        return OptionContract(con_id, und, expiry, und.strikes[strike_index], right)

    def by_con_id(self, con_id: int, today: dt.date) -> Instrument | None:
        """Any instrument by conId; options are decoded from the conId (see module docstring)."""
        if con_id in self._by_con_id:
            return self._by_con_id[con_id]
        if con_id < _OPTION_BASE:
            return None
        rest = con_id - _OPTION_BASE
        und = self._by_index.get(rest // 100_000_000)
        if und is None:
            return None
        rest %= 100_000_000
        expiry_key, code = divmod(rest, 100_000)
        strike_index, is_put = divmod(code, 2)
        if strike_index >= len(und.strikes):
            return None
        # The one date within 500 days of today whose ordinal has this remainder.
        base = today.toordinal() - 500
        ordinal = base + ((expiry_key - base) % 1000)
        expiry = dt.date.fromordinal(ordinal).strftime("%Y%m%d")
        return OptionContract(
            con_id, und, expiry, und.strikes[strike_index], "P" if is_put else "C"
        )

    def match(self, wc: WireContract, today: dt.date) -> list[Instrument]:
        """What reqContractDetails answers for ``wc``: one stock, a set of options (strike and/or
        right left empty give a whole expiry or chain), or nothing."""
        if wc.currency and wc.currency.upper() != "USD":
            return []
        if wc.con_id:
            inst = self.by_con_id(wc.con_id, today)
            if inst is None or (wc.symbol and wc.symbol.upper() != inst.symbol):
                return []
            return [inst]
        symbol = wc.symbol.upper()
        if not symbol and wc.local_symbol:
            symbol = wc.local_symbol.split()[0].upper()
        und = self.underlying(symbol)
        if und is None:
            return []
        sec_type = wc.sec_type.upper()
        if sec_type in ("", "STK"):
            if wc.local_symbol and wc.local_symbol.upper() != und.symbol:
                return []
            return [und]
        if sec_type != "OPT":
            return []
        if wc.multiplier and wc.multiplier not in ("100", "100.0"):
            return []
        if wc.trading_class and wc.trading_class.upper() != und.symbol:
            return []
        right = {"C": "C", "CALL": "C", "P": "P", "PUT": "P", "": ""}.get(wc.right.upper())
        if right is None:
            return []
        expiries = [
            e for e in self.expiries(symbol, today) if e.startswith(wc.last_trade_date.strip())
        ]
        strikes = und.strikes if not wc.strike else [s for s in und.strikes if s == wc.strike]
        rights = [right] if right else ["C", "P"]
        found: list[Instrument] = []
        for expiry in expiries:
            for strike in strikes:
                for r in rights:
                    opt = self.option(symbol, expiry, strike, r)
                    if opt is not None and (
                        not wc.local_symbol or wc.local_symbol == opt.local_symbol
                    ):
                        found.append(opt)
        return found

    # --- contract details ---------------------------------------------------------------------

    def details(
        self, inst: Instrument, today: dt.date, exchange: str = "SMART"
    ) -> ContractDetailsView:
        if isinstance(inst, Underlying):
            return ContractDetailsView(
                contract=inst.wire(exchange or "SMART"),
                market_name="NMS" if inst.primary_exchange == "NASDAQ" else inst.symbol,
                min_tick=0.01,
                order_types=STOCK_ORDER_TYPES,
                valid_exchanges=STOCK_EXCHANGES,
                under_con_id=0,
                long_name=inst.long_name,
                contract_month="",
                industry=inst.industry,
                category=inst.category,
                subcategory=inst.category,
                time_zone_id="US/Eastern",
                trading_hours=trading_hours(today, extended=True),
                liquid_hours=liquid_hours(today),
                agg_group=1,
                under_symbol="",
                under_sec_type="",
                market_rule_ids=",".join(["26"] * len(STOCK_EXCHANGES.split(","))),
                real_expiration_date="",
                stock_type=inst.stock_type,
                min_size=1.0,
                size_increment=1.0,
                suggested_size_increment=100.0,
            )
        und = inst.underlying
        return ContractDetailsView(
            contract=inst.wire(exchange or "SMART"),
            market_name=und.symbol,
            min_tick=0.01,
            order_types=OPTION_ORDER_TYPES,
            valid_exchanges=OPTION_EXCHANGES,
            under_con_id=und.con_id,
            long_name=und.long_name,
            contract_month=inst.expiry[:6],
            industry=und.industry,
            category=und.category,
            subcategory=und.category,
            time_zone_id="US/Eastern",
            trading_hours=trading_hours(today, extended=False),
            liquid_hours=liquid_hours(today),
            agg_group=2,
            under_symbol=und.symbol,
            under_sec_type="STK",
            market_rule_ids=",".join(
                [str(market_rule_id(inst))] * len(OPTION_EXCHANGES.split(","))
            ),
            real_expiration_date=inst.expiry,
            stock_type="",
        )
