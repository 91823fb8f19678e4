"""Dividends, option exercise and expiry settlement in the simulated world.

IB's facts, with sources (notes/ib-behaviour.md §f):

* **Dividends** reach the API through generic tick 456 ("IB Dividends"), delivered as tick
  string 59 ``"past12,next12,nextDate,nextAmount"``, e.g. ``"0.83,0.92,20130219,0.23"``
  (https://interactivebrokers.github.io/tws-api/tick_types.html#ib_dividends; ib_async 2.1.0
  ``wrapper.tickString`` parses it into ``ticker.dividends``).
* **Exercise / lapse** instructions: ``exerciseOptions(contract, 1 = exercise / 2 = lapse, qty,
  account, override)``; the contract's exchange must not be SMART (tws-api EClient reference,
  cited by https://rdrr.io/cran/IBrokers/man/exerciseOptions.html). For US options the broker
  must receive an exercise request by **17:25 ET** on expiry day
  (https://interactivebrokers.com/en/index.php?f=63269). Exercises and lapses are irrevocable.
* **Auto-exercise**: at expiration "clearinghouses automatically exercise options at
  in-the-money levels as low as $0.01 per share" (IB KB https://ibkr.info/article/1767); an
  option below that lapses. A short option that finishes in the money is assigned.

IB documents no error code for a refused exercise request and no API confirmation of an
exercise (notes §f: "not found"); the simulator answers a refused request with 321
("Error validating request") and IB's cause, and reports a done exercise the way TWS shows it
through the API: as position and account changes. Exercise and assignment book the shares at
the strike and close the option at zero (its premium realised), so cash and P&L add up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalog import Instrument, OptionContract, Underlying
from .clock import NEW_YORK, is_trading_day, session_bounds

if TYPE_CHECKING:
    from .broker import Account, Broker

__all__ = [
    "AUTO_EXERCISE_THRESHOLD",
    "DIVIDENDS",
    "EXERCISE_CUTOFF",
    "DividendSchedule",
    "ExerciseRefused",
    "dividend_tick",
    "exercise",
    "settle_expired",
]

AUTO_EXERCISE_THRESHOLD = 0.01
"""OCC's exercise-by-exception threshold: $0.01 per share in the money (ibkr.info 1767)."""
EXERCISE_CUTOFF = dt.time(17, 25)
"""IB's deadline for exercise and lapse instructions on a US expiry day, New York time."""
SETTLEMENT_TIME = dt.time(17, 30)
"""When the simulator settles an expiry day's options (after IB's cut-off, New York time)."""


@dataclass(frozen=True, slots=True)
class DividendSchedule:
    """A regular cash dividend: ``amount`` every ``every_months`` months from ``first_ex``."""

    symbol: str
    amount: float
    first_ex: dt.date
    every_months: int = 3

    def ex_dates(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Ex-dates in ``[start, end]`` (a weekend ex-date moves to the Friday before)."""
        out: list[dt.date] = []
        k = 0
        while True:
            month = self.first_ex.month - 1 + k * self.every_months
            year = self.first_ex.year + month // 12
            day = _weekday_on_or_before(dt.date(year, month % 12 + 1, self.first_ex.day))
            k += 1
            if day > end:
                return out
            if day >= start:
                out.append(day)


def _weekday_on_or_before(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


DIVIDENDS: dict[str, DividendSchedule] = {
    # Simulated schedules: AAPL goes ex before the December monthly expiry (2026-12-18), so
    # a short AAPL call is an early-assignment candidate; SPY goes ex on its quarterly
    # third Friday, like the real ETF.
    "AAPL": DividendSchedule("AAPL", 0.26, dt.date(2025, 12, 7)),
    "SPY": DividendSchedule("SPY", 1.85, dt.date(2025, 12, 19)),
}


def dividend_tick(symbol: str, today: dt.date) -> str:
    """Tick 59's value for ``symbol`` on ``today``: past 12 months' total, next 12 months'
    total, next ex-date (YYYYMMDD) and its amount. A stock without dividends: "0,0,,"."""
    schedule = DIVIDENDS.get(symbol)
    if schedule is None:
        return "0,0,,"
    year = dt.timedelta(days=365)
    past = schedule.ex_dates(today - year, today - dt.timedelta(days=1))
    coming = schedule.ex_dates(today, today + year)
    next_date = coming[0].strftime("%Y%m%d") if coming else ""
    next_amount = f"{schedule.amount:g}" if coming else ""
    return (
        f"{schedule.amount * len(past):g},{schedule.amount * len(coming):g},"
        f"{next_date},{next_amount}"
    )


class ExerciseRefused(Exception):
    """An exercise or lapse instruction TWS would refuse: ``code`` and IB-style ``text``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def _refused(cause: str) -> ExerciseRefused:
    return ExerciseRefused(321, f"Error validating request.-'bE' : cause - {cause}")


def exercise(
    broker: Broker,
    account_id: str,
    option: OptionContract,
    exchange: str,
    action: int,
    quantity: int,
    now: dt.datetime,
) -> list[Instrument]:
    """Apply an ``exerciseOptions`` request; returns the instruments whose positions changed
    (none for a lapse instruction, which applies at settlement).

    :raises ExerciseRefused: SMART exchange, unknown account, action not 1/2, quantity not
        held long, an expired option or a request after IB's cut-off.
    """
    if exchange.upper() in ("", "SMART"):
        raise _refused("exercise requests need a listing exchange, not SMART")
    acct = broker.accounts.get(account_id) if account_id else None
    if acct is None:
        raise _refused(f"invalid account {account_id!r}")
    if action not in (1, 2):
        raise _refused(f"exercise action {action} is not 1 (exercise) or 2 (lapse)")
    local = now.astimezone(NEW_YORK)
    if option.expiry_date < local.date() or (
        option.expiry_date == local.date() and local.time() >= EXERCISE_CUTOFF
    ):
        raise _refused("the exercise cut-off (17:25 ET on expiry day) has passed")
    pos = acct.positions.get(option.con_id)
    held = pos.quantity if pos is not None else 0.0
    pending = broker.lapse_instructions.get((account_id, option.con_id), 0)
    if quantity <= 0 or held - pending < quantity:
        raise _refused(f"exercise quantity {quantity} exceeds the long position {held:g}")
    if action == 2:
        broker.lapse_instructions[(account_id, option.con_id)] = pending + quantity
        return []
    return _deliver(acct, option, quantity, assigned=False)


def settle_expired(broker: Broker, now: dt.datetime) -> dict[str, list[Instrument]]:
    """Settle every option position whose expiry day's settlement time has passed: long and
    short options at least $0.01 in the money exercise (or are assigned) unless a lapse
    instruction covers them; the rest lapse. Returns the changed instruments per account."""
    changed: dict[str, list[Instrument]] = {}
    local = now.astimezone(NEW_YORK)
    for account_id, acct in broker.accounts.items():
        for pos in list(acct.positions.values()):
            inst = pos.instrument
            if not isinstance(inst, OptionContract) or pos.quantity == 0:
                continue
            if inst.expiry_date > local.date() or (
                inst.expiry_date == local.date() and local.time() < SETTLEMENT_TIME
            ):
                continue
            spot = _closing_price(broker, inst)
            itm = spot - inst.strike if inst.right == "C" else inst.strike - spot
            contracts = int(abs(pos.quantity))
            lapse = broker.lapse_instructions.pop((account_id, inst.con_id), 0)
            moved: list[Instrument] = []
            if itm >= AUTO_EXERCISE_THRESHOLD - 1e-9:
                exercised = max(0, contracts - lapse) if pos.quantity > 0 else contracts
                if exercised:
                    moved = _deliver(acct, inst, exercised, assigned=pos.quantity < 0)
            if pos.quantity != 0:
                _book(acct, inst, -pos.quantity, 0.0)
                moved.append(inst)
            changed.setdefault(account_id, []).extend(moved)
    return changed


def _closing_price(broker: Broker, option: OptionContract) -> float:
    """The underlying's price at the close of the expiry day (the settlement reference)."""
    day = option.expiry_date
    if not is_trading_day(day):
        return broker.market.spot(option.symbol)
    _open, close_at = session_bounds(day)
    return broker.market.spot(option.symbol, close_at)


def _deliver(
    acct: Account, option: OptionContract, contracts: int, *, assigned: bool
) -> list[Instrument]:
    """Exercise (``assigned=False``, a long position) or assignment (a short one) of
    ``contracts``: shares change hands at the strike and the option closes at zero."""
    shares = contracts * option.multiplier
    # A call exercised buys the shares; a call assigned sells them; puts the other way round.
    buys = (option.right == "C") != assigned
    und: Underlying = option.underlying
    _book(acct, und, shares if buys else -shares, option.strike)
    acct.cash += (-1 if buys else 1) * shares * option.strike
    _book(acct, option, contracts if assigned else -contracts, 0.0)
    return [und, option]


def _book(acct: Account, inst: Instrument, signed_quantity: float, price: float) -> None:
    """Move ``signed_quantity`` of ``inst`` into the account at ``price`` per unit (no cash:
    the caller books it), realising P&L on the part that closes, IB's avgCost convention."""
    from .broker import Position

    pos = acct.positions.get(inst.con_id)
    if pos is None:
        pos = acct.positions[inst.con_id] = Position(inst)
    mult = inst.multiplier
    buy = signed_quantity > 0
    quantity = abs(signed_quantity)
    if pos.quantity == 0 or (pos.quantity > 0) == buy:
        total = abs(pos.quantity) * pos.avg_cost + quantity * price * mult
        pos.quantity += signed_quantity
        pos.avg_cost = total / abs(pos.quantity)
        return
    closing = min(quantity, abs(pos.quantity))
    direction = 1.0 if pos.quantity > 0 else -1.0
    realized = (price * mult - pos.avg_cost) * closing * direction
    pos.realized_pnl += realized
    acct.realized_pnl += realized
    pos.quantity += signed_quantity
    if abs(pos.quantity) < 1e-9:
        pos.quantity = 0.0
        pos.avg_cost = 0.0
    elif quantity > closing:
        pos.avg_cost = price * mult


def unique(instruments: Iterable[Instrument]) -> list[Instrument]:
    """``instruments`` without repeats, in order."""
    seen: dict[int, Instrument] = {}
    for inst in instruments:
        seen.setdefault(inst.con_id, inst)
    return list(seen.values())
