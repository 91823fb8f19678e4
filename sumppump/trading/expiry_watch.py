"""What costs option traders money around expiry, said before it happens.

Pure: :func:`watch_expiries` reads the positions, their marks, the underlying prices, the
account's available funds and (optionally) each symbol's next dividend, and returns
:class:`ExpiryWatch`: warnings, each with what can be done and the tool that does it, and the
checks that could not run (never a silent pass).

Facts it relies on (sources in /work/shared/notes/ib-behaviour.md §f):

* the OCC auto-exercises an option expiring ≥ $0.01 in the money (IB KB
  https://ibkr.info/article/1767): a long call buys 100 shares a contract, a long put sells
  (delivers) them; a short option is assigned the other way;
* IB checks post-expiry margin from three days before expiry and may liquidate, let options
  lapse or refuse exercise (ibkr.info/article/1767), so the watch looks three trading days ahead;
* a short call whose extrinsic value is below an upcoming dividend is likely to be assigned
  the day before the ex-date (IB KB *Considerations for Exercising Call Options Prior to
  Expiration*; tastytrade's rule of thumb).

Trading days skip weekends and the NYSE holidays in :data:`NYSE_HOLIDAYS` (2026–2027).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo

__all__ = [
    "NYSE_HOLIDAYS",
    "WATCH_TRADING_DAYS",
    "Dividend",
    "ExpiryAction",
    "ExpiryWarning",
    "ExpiryWatch",
    "is_trading_day",
    "summary_line",
    "trading_days_until",
    "watch_expiries",
]

#: Options expiring within this many trading days are watched (IB's post-expiry margin check
#: starts three days before expiry: ibkr.info/article/1767).
WATCH_TRADING_DAYS = 3
#: The OCC's auto-exercise threshold, dollars per share in the money.
AUTO_EXERCISE_ITM = 0.01

#: NYSE full-day closures, 2026–2027, from https://www.nyse.com/markets/hours-calendars
#: (holidays falling on a Saturday are observed the Friday before, on a Sunday the Monday after).
NYSE_HOLIDAYS: frozenset[dt.date] = frozenset(
    dt.date.fromisoformat(d)
    for d in (
        "2026-01-01",
        "2026-01-19",
        "2026-02-16",
        "2026-04-03",
        "2026-05-25",
        "2026-06-19",
        "2026-07-03",
        "2026-09-07",
        "2026-11-26",
        "2026-12-25",
        "2027-01-01",
        "2027-01-18",
        "2027-02-15",
        "2027-03-26",
        "2027-05-31",
        "2027-06-18",
        "2027-07-05",
        "2027-09-06",
        "2027-11-25",
        "2027-12-24",
    )
)


class Dividend(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's next dividend (IB's generic tick 456 gives it as nextDate/nextAmount)."""

    ex_date: str  # YYYY-MM-DD
    amount: float  # per share


Kind = Literal["itm_expiry", "funds_needed", "short_stock", "worthless_expiry", "early_assignment"]


class ExpiryAction(msgspec.Struct, frozen=True, kw_only=True):
    what: str
    tool: str


class ExpiryWarning(msgspec.Struct, frozen=True, kw_only=True):
    """One warning. ``shares``: what exercise/assignment would add (+ bought, − delivered);
    ``cash``: the money it moves (− paid); ``shortfall``: cash needed beyond available funds."""

    kind: Kind
    symbol: str
    contract: str
    expiry: str
    trading_days_left: int
    message: str
    actions: tuple[ExpiryAction, ...]
    shares: float | None = None
    cash: float | None = None
    shortfall: float | None = None

    @classmethod
    def on(
        cls,
        p: PositionInfo,
        kind: Kind,
        left: int,
        *,
        message: str,
        actions: tuple[ExpiryAction, ...],
        shares: float | None = None,
        cash: float | None = None,
    ) -> ExpiryWarning:
        """A warning about option position ``p``, ``left`` trading days before its expiry."""
        return cls(
            kind=kind,
            symbol=p.symbol,
            contract=_contract(p),
            expiry=p.expiry or "",
            trading_days_left=left,
            message=message,
            actions=actions,
            shares=shares,
            cash=cash,
        )


class ExpiryWatch(msgspec.Struct, frozen=True, kw_only=True):
    warnings: tuple[ExpiryWarning, ...]
    not_run: tuple[str, ...] = ()


def is_trading_day(day: dt.date) -> bool:
    """Monday to Friday and not an NYSE holiday (table covers 2026–2027)."""
    return day.weekday() < 5 and day not in NYSE_HOLIDAYS


def trading_days_until(today: dt.date, expiry: dt.date) -> int:
    """Trading days after ``today`` up to and including ``expiry`` (0: it expires today or has
    expired; 1: the next session)."""
    days, day = 0, today
    while day < expiry:
        day += dt.timedelta(days=1)
        days += is_trading_day(day)
    return days


def _intrinsic(p: PositionInfo, spot: float) -> float:
    strike = p.strike or 0.0
    return max(spot - strike, 0.0) if p.right == "C" else max(strike - spot, 0.0)


def _mark(quote: Quote | None) -> float | None:
    if quote is None:
        return None
    return quote.mid if quote.mid is not None else quote.last


def _contract(p: PositionInfo) -> str:
    return f"{p.symbol} {p.expiry} {(p.strike or 0.0):g} {p.right}"


def _close(p: PositionInfo) -> ExpiryAction:
    return ExpiryAction(
        what=f'close it: close_position(symbol="{p.symbol}", position="{_contract(p)}")',
        tool="close_position",
    )


def _roll(p: PositionInfo) -> ExpiryAction:
    return ExpiryAction(
        what=f'roll it to a later expiry: roll_position(symbol="{p.symbol}", '
        f'position="{_contract(p)}", new_expiry=...)',
        tool="roll_position",
    )


def _exercise(p: PositionInfo, action: Literal["exercise", "lapse"], what: str) -> ExpiryAction:
    return ExpiryAction(
        what=f'{what}: exercise_option(symbol="{p.symbol}", position="{_contract(p)}", '
        f'action="{action}")',
        tool="exercise_option",
    )


def watch_expiries(
    positions: Sequence[PositionInfo],
    *,
    quotes: Mapping[int, Quote],
    spots: Mapping[str, float | None],
    available_funds: float | None,
    today: dt.date,
    dividends: Mapping[str, Dividend | None] | None = None,
) -> ExpiryWatch:
    """Warnings for ``positions`` (module docstring). ``dividends`` by symbol; a symbol with a
    short call and no entry makes the dividend check for it "not run"."""
    warnings: list[ExpiryWarning] = []
    not_run: list[str] = []
    cash_by_expiry: dict[tuple[str, str], float] = defaultdict(float)
    shares_held: dict[str, float] = defaultdict(float)
    for p in positions:
        if p.sec_type != "OPT":
            shares_held[p.symbol] += p.quantity
    options = sorted(
        (p for p in positions if p.sec_type == "OPT" and abs(p.quantity) > 1e-9 and p.expiry),
        key=lambda p: (p.symbol, p.expiry or "", p.strike or 0.0),
    )
    for p in options:
        expiry = dt.date.fromisoformat(p.expiry or "")
        if expiry < today:
            continue
        left = trading_days_until(today, expiry)
        spot = spots.get(p.symbol)
        long = p.quantity > 0
        n = abs(p.quantity)
        if spot is None:
            if left <= WATCH_TRADING_DAYS:
                not_run.append(f"{_contract(p)}: no underlying price, moneyness not checked")
            continue
        itm = _intrinsic(p, spot)
        if left <= WATCH_TRADING_DAYS and itm >= AUTO_EXERCISE_ITM:
            shares = p.quantity * p.multiplier * (1 if p.right == "C" else -1)
            cash = -shares * (p.strike or 0.0)
            cash_by_expiry[(p.symbol, p.expiry or "")] += cash
            warnings.append(_itm_warning(p, left, itm, shares, cash, long))
        elif left <= WATCH_TRADING_DAYS and long:
            mark = _mark(quotes.get(p.con_id))
            worth = "" if mark is None else f"; it is still worth {mark * n * p.multiplier:,.2f}"
            warnings.append(
                ExpiryWarning.on(
                    p,
                    "worthless_expiry",
                    left,
                    message=f"long {n:g} {_contract(p)} is out of the money ({spot:g}) and "
                    f"expires in {left} trading day(s): it lapses worthless unless the price "
                    f"moves{worth}",
                    actions=(_close(p), _roll(p)),
                )
            )
        if p.right == "C" and not long:
            warning = _dividend_check(p, spot, quotes, left, today, dividends, not_run)
            if warning is not None:
                warnings.append(warning)
    for (symbol, expiry_text), cash in cash_by_expiry.items():
        if cash >= 0:
            continue
        need = -cash
        shortfall = None if available_funds is None else max(0.0, need - available_funds)
        if shortfall is None:
            verdict = "available funds are not known"
        elif shortfall > 0:
            verdict = f"available funds {available_funds:,.2f} fall short by {shortfall:,.2f}"
        else:
            verdict = f"available funds {available_funds:,.2f} cover it"
        warnings.append(
            ExpiryWarning(
                kind="funds_needed",
                symbol=symbol,
                contract=f"{symbol} {expiry_text}",
                expiry=expiry_text,
                trading_days_left=trading_days_until(today, dt.date.fromisoformat(expiry_text)),
                message=f"exercise and assignment at {expiry_text} would need {need:,.2f} in cash "
                f"or margin; {verdict}. IB checks post-expiry margin from three days before "
                "expiry and may liquidate or let options lapse (ibkr.info/article/1767)",
                actions=(
                    ExpiryAction(
                        what="close or roll the in-the-money options", tool="close_position"
                    ),
                    ExpiryAction(
                        what="instruct do-not-exercise on a long option", tool="exercise_option"
                    ),
                ),
                cash=round(cash, 2),
                shortfall=None if shortfall is None else round(shortfall, 2),
            )
        )
    for symbol in sorted({w.symbol for w in warnings if w.kind == "itm_expiry"}):
        held = shares_held[symbol]
        delivered = sum(
            w.shares or 0.0 for w in warnings if w.symbol == symbol and w.kind == "itm_expiry"
        )
        if held + delivered < -1e-9:
            warnings.append(
                ExpiryWarning(
                    kind="short_stock",
                    symbol=symbol,
                    contract=f"{symbol} shares",
                    expiry="",
                    trading_days_left=0,
                    message=f"after expiry the account would be short {-(held + delivered):g} "
                    f"{symbol} shares (more delivered than held): short stock is not allowed "
                    "on Level 2 and needs margin",
                    actions=(
                        ExpiryAction(
                            what="close or roll the in-the-money options", tool="close_position"
                        ),
                        ExpiryAction(
                            what="instruct do-not-exercise on a long put", tool="exercise_option"
                        ),
                    ),
                    shares=held + delivered,
                )
            )
    return ExpiryWatch(warnings=tuple(warnings), not_run=tuple(not_run))


def _itm_warning(
    p: PositionInfo, left: int, itm: float, shares: float, cash: float, long: bool
) -> ExpiryWarning:
    verb = "buys" if shares > 0 else "delivers"
    actions: tuple[ExpiryAction, ...]
    if long:
        what = "exercised automatically"
        actions = (
            _close(p),
            _roll(p),
            _exercise(p, "exercise", f"exercise it ({abs(shares):g} shares, {cash:,.2f})"),
            _exercise(p, "lapse", "do not exercise (forfeits the intrinsic value)"),
        )
    else:
        what = "assigned"
        actions = (_close(p), _roll(p))
    return ExpiryWarning.on(
        p,
        "itm_expiry",
        left,
        message=f"{'long' if long else 'short'} {abs(p.quantity):g} {_contract(p)} is "
        f"{itm:.2f} in the money and expires in {left} trading day(s): it will be {what} "
        f"(OCC: ≥ $0.01 ITM), which {verb} {abs(shares):g} shares for {abs(cash):,.2f}",
        actions=actions,
        shares=shares,
        cash=round(cash, 2),
    )


def _dividend_check(
    p: PositionInfo,
    spot: float,
    quotes: Mapping[int, Quote],
    left: int,
    today: dt.date,
    dividends: Mapping[str, Dividend | None] | None,
    not_run: list[str],
) -> ExpiryWarning | None:
    dividend = (dividends or {}).get(p.symbol)
    if dividend is None:
        not_run.append(f"{_contract(p)}: early-assignment check not run (no dividend data)")
        return None
    ex_date = dt.date.fromisoformat(dividend.ex_date)
    if not today <= ex_date <= dt.date.fromisoformat(p.expiry or ""):
        return None
    mark = _mark(quotes.get(p.con_id))
    if mark is None:
        not_run.append(f"{_contract(p)}: early-assignment check not run (no option price)")
        return None
    extrinsic = mark - _intrinsic(p, spot)
    if extrinsic >= dividend.amount:
        return None
    return ExpiryWarning.on(
        p,
        "early_assignment",
        left,
        message=f"short {abs(p.quantity):g} {_contract(p)}: extrinsic value {extrinsic:.2f} is "
        f"below the {dividend.amount:.2f} dividend going ex on {dividend.ex_date}: likely "
        f"assigned the day before, delivering {abs(p.quantity) * p.multiplier:g} shares",
        actions=(_close(p), _roll(p)),
        shares=-abs(p.quantity) * p.multiplier,
        cash=round(abs(p.quantity) * p.multiplier * (p.strike or 0.0), 2),
    )


def summary_line(watch: ExpiryWatch) -> str:
    """One line for ``get_status``: how many warnings of which kind, or all clear."""
    if not watch.warnings:
        tail = f" ({len(watch.not_run)} checks not run)" if watch.not_run else ""
        return (
            f"Expiry watch: nothing expiring in the money or worthless within 3 trading days{tail}."
        )
    counts: dict[str, int] = defaultdict(int)
    for w in watch.warnings:
        counts[w.kind] += 1
    words = {
        "itm_expiry": "in the money near expiry",
        "funds_needed": "cash need at expiry",
        "short_stock": "short stock after expiry",
        "worthless_expiry": "expiring worthless",
        "early_assignment": "early-assignment risk (dividend)",
    }
    parts = ", ".join(f"{n} {words[k]}" for k, n in counts.items())
    return f"Expiry watch: {parts}."
