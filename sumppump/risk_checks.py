"""Pure account checks for one order: funds, risk share, loss and size limits, shares under short
calls, IB's what-if verdict, market hours and quote quality; and the verdict that fails closed for
live accounts. Plain data in, :class:`~sumppump.messages.risk.CheckResult` out; nothing here
knows about actors or TWS.

Every check answers ``passed``, ``failed`` or ``not_run`` (it had nothing to work on: no account
values, no quote, delayed data, what-if unavailable). :func:`decide` turns the list into a
verdict: any failure refuses; for a LIVE account a required check that did not run refuses too
(fail closed); for PAPER and SIMULATED it becomes a warning.

IB's hours strings (``ContractDetails.tradingHours`` / ``liquidHours``) are parsed by
:func:`parse_sessions`, both the current format ``20261125:0930-20261125:1600;20261126:CLOSED``
and the older one ``20261125:0930-1600;20261126:CLOSED`` (several ranges per day separated by
commas), in the contract's ``timeZoneId``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sumppump.messages.common import DataType
from sumppump.messages.connection import PositionInfo
from sumppump.messages.risk import AccountKind, CheckResult, RiskCode
from sumppump.strategies.model import StrategyLeg

__all__ = [
    "CHECK_NAMES",
    "CONTRACTS",
    "FUNDS",
    "MARKET",
    "MAX_LOSS",
    "QUOTES",
    "RISK_SHARE",
    "SHARES",
    "WHAT_IF",
    "MarketState",
    "Session",
    "Verdict",
    "WhatIfAccepted",
    "WhatIfRejected",
    "WhatIfUnavailable",
    "check_contracts",
    "check_funds",
    "check_market_open",
    "check_max_loss",
    "check_quotes",
    "check_risk_share",
    "check_shares",
    "check_what_if",
    "contracts_in",
    "decide",
    "market_state",
    "parse_sessions",
    "shares_committed",
    "wire_limit_price",
]

FUNDS: Final = "available_funds"
RISK_SHARE: Final = "max_risk_share"
MAX_LOSS: Final = "max_loss"
CONTRACTS: Final = "max_contracts"
SHARES: Final = "shares_for_short_calls"
WHAT_IF: Final = "ib_what_if"
MARKET: Final = "market_open"
QUOTES: Final = "live_quotes"
CHECK_NAMES: Final = (FUNDS, RISK_SHARE, MAX_LOSS, CONTRACTS, SHARES, WHAT_IF, MARKET, QUOTES)

#: IB's time-zone ids that are not IANA names, mapped to the IANA zone they mean.
_IB_ZONES: Final = {
    "EST": "America/New_York",
    "EST5EDT": "America/New_York",
    "US/Eastern": "America/New_York",
    "CST": "America/Chicago",
    "CST6CDT": "America/Chicago",
    "US/Central": "America/Chicago",
    "MST": "America/Denver",
    "US/Mountain": "America/Denver",
    "PST": "America/Los_Angeles",
    "US/Pacific": "America/Los_Angeles",
    "GMT": "UTC",
}


def _passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, status="passed", detail=detail)


def _failed(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, status="failed", detail=detail)


def _not_run(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, status="not_run", detail=detail)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# ---------------------------------------------------------------------- account facts


def shares_committed(positions: Iterable[PositionInfo]) -> dict[str, int]:
    """Shares per symbol already covering open short calls: every short call contract not paired
    with a long call of the same expiry and a lower (or equal) strike commits ``multiplier``
    shares. Pairing takes the lowest short strikes first and the highest qualifying long strike."""
    calls: dict[str, list[PositionInfo]] = {}
    for p in positions:
        if p.sec_type == "OPT" and p.right == "C" and p.quantity != 0:
            calls.setdefault(p.symbol, []).append(p)
    committed: dict[str, int] = {}
    for symbol, rows in calls.items():
        # Long calls, highest strike first, with how many contracts are still free to pair.
        longs = [
            [p, p.quantity]
            for p in sorted(rows, key=lambda p: -(p.strike or 0.0))
            if p.quantity > 0
        ]
        total = 0.0
        shorts = sorted(
            (p for p in rows if p.quantity < 0), key=lambda p: (p.expiry or "", p.strike or 0.0)
        )
        for short in shorts:
            left = -short.quantity
            for entry in longs:
                long_pos, free = entry[0], float(entry[1])  # type: ignore[arg-type]
                assert isinstance(long_pos, PositionInfo)
                if left <= 0:
                    break
                if (
                    free <= 0
                    or long_pos.expiry != short.expiry
                    or (long_pos.strike or 0.0) > (short.strike or 0.0)
                ):
                    continue
                used = min(free, left)
                entry[1] = free - used
                left -= used
            total += left * (short.multiplier or 100.0)
        if total > 0:
            committed[symbol] = round(total)
    return committed


def contracts_in(legs: Sequence[StrategyLeg], quantity: int) -> int:
    """The order's size in contracts for the ``max_contracts`` limit: the largest number of
    contracts on any one option leg (a 10-lot spread is 10, not 20)."""
    ratios = [leg.ratio for leg in legs if leg.is_option]
    return quantity * max(ratios) if ratios else 0


def wire_limit_price(
    limit: float, legs: Sequence[StrategyLeg], multiplier: int, stock_mid: float | None
) -> float:
    """The order's limit in IB's combo terms, ``Σ sign · ratio · price`` (per-share prices).

    The analysis prices in option-share terms (stock legs divided by the multiplier, see
    :mod:`sumppump.strategies.analysis`); for options only the two agree. With a stock leg the
    two differ by the stock part times ``multiplier − 1``; the stock part is anchored at
    ``stock_mid``, so the whole concession of the limit stays on the options.

    :raises ValueError: a stock leg without a stock mid.
    """
    stock = [leg for leg in legs if not leg.is_option]
    if not stock:
        return limit
    if stock_mid is None or not stock_mid > 0:
        raise ValueError("a stock leg needs the stock's mid to price the combo")
    stock_part = sum(leg.sign * leg.ratio * stock_mid for leg in stock) / multiplier
    return round(limit + stock_part * (multiplier - 1), 2)


# ---------------------------------------------------------------------- checks


def check_funds(available_funds: float | None, debit: float, commission: float) -> CheckResult:
    """Available funds ≥ debit paid + commission (a credit needs only the commission)."""
    need = max(0.0, debit) + max(0.0, commission)
    if not _finite(available_funds):
        return _not_run(FUNDS, "TWS reported no available funds for the account")
    assert available_funds is not None
    detail = f"needs {_usd(need)} (debit and commission); available {_usd(available_funds)}"
    return _passed(FUNDS, detail) if available_funds >= need else _failed(FUNDS, detail)


def check_risk_share(
    max_loss: float | None, net_liquidation: float | None, max_risk_pct: float
) -> CheckResult:
    """Max loss ≤ ``max_risk_pct`` % of net liquidation; an unbounded loss always fails."""
    if max_loss is None:
        return _failed(RISK_SHARE, "the loss is unbounded")
    if not _finite(net_liquidation) or net_liquidation is None or net_liquidation <= 0:
        return _not_run(RISK_SHARE, "TWS reported no net liquidation value for the account")
    allowed = net_liquidation * max_risk_pct / 100.0
    detail = (
        f"max loss {_usd(max_loss)} vs {max_risk_pct:g}% of net liquidation "
        f"{_usd(net_liquidation)} = {_usd(allowed)}"
    )
    return (
        _passed(RISK_SHARE, detail) if max_loss <= allowed + 1e-9 else _failed(RISK_SHARE, detail)
    )


def check_max_loss(max_loss: float | None, limit: float | None) -> CheckResult:
    """Max loss ≤ the configured ``SUMPPUMP_MAX_LOSS`` (passes when none is configured)."""
    if limit is None:
        return _passed(MAX_LOSS, "no SUMPPUMP_MAX_LOSS configured")
    if max_loss is None:
        return _failed(MAX_LOSS, f"the loss is unbounded; the limit is {_usd(limit)}")
    detail = f"max loss {_usd(max_loss)} vs the limit {_usd(limit)}"
    return _passed(MAX_LOSS, detail) if max_loss <= limit + 1e-9 else _failed(MAX_LOSS, detail)


def check_contracts(contracts: int, max_contracts: int) -> CheckResult:
    detail = f"{contracts} contracts vs the limit {max_contracts}"
    return _passed(CONTRACTS, detail) if contracts <= max_contracts else _failed(CONTRACTS, detail)


def check_shares(
    symbol: str, shares_used: int, shares_held: float | None, shares_committed: int
) -> CheckResult:
    """The held shares this order's short calls rely on are held and not already covering other
    short calls. ``shares_held`` ``None``: positions unknown (not run)."""
    if shares_used <= 0:
        return _passed(SHARES, "the order's short calls (if any) do not rely on held shares")
    if shares_held is None:
        return _not_run(SHARES, f"positions in {symbol} are unknown")
    free = max(0, int(shares_held) - shares_committed)
    detail = (
        f"uses {shares_used} shares of {symbol}; held {int(shares_held)}, "
        f"{shares_committed} already cover open short calls, {free} free"
    )
    return _passed(SHARES, detail) if shares_used <= free else _failed(SHARES, detail)


@dataclass(frozen=True, slots=True)
class WhatIfAccepted:
    init_margin_change: float | None
    commission: float | None


@dataclass(frozen=True, slots=True)
class WhatIfRejected:
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class WhatIfUnavailable:
    reason: str


WhatIfOutcome = WhatIfAccepted | WhatIfRejected | WhatIfUnavailable


def check_what_if(outcome: WhatIfOutcome, available_funds: float | None = None) -> CheckResult:
    """IB's own preview of the order: accepted (and, when both numbers are known, its initial
    margin change fits the available funds), rejected (permission, margin, …) or unavailable."""
    match outcome:
        case WhatIfRejected(code=code, message=message):
            return _failed(WHAT_IF, f"IB refused the order ({code}): {message}")
        case WhatIfUnavailable(reason=reason):
            return _not_run(WHAT_IF, f"IB's what-if did not run: {reason}")
        case WhatIfAccepted(init_margin_change=margin, commission=commission):
            parts = ["IB accepted the order"]
            if margin is not None:
                parts.append(f"initial margin change {_usd(margin)}")
            if commission is not None:
                parts.append(f"commission {_usd(commission)}")
            detail = "; ".join(parts)
            if margin is not None and available_funds is not None and margin > available_funds:
                return _failed(
                    WHAT_IF, f"{detail}, more than the available funds {_usd(available_funds)}"
                )
            return _passed(WHAT_IF, detail)


def check_quotes(data_type: DataType | None, missing: Sequence[str]) -> CheckResult:
    """Every leg priced from live quotes. Delayed or frozen data, or a leg without a two-sided
    quote, means the prices could not be checked (not run)."""
    if missing:
        return _not_run(QUOTES, f"no bid/ask for {', '.join(missing)}")
    if data_type is None:
        return _not_run(QUOTES, "no quotes")
    if data_type in ("live", "simulated"):
        return _passed(QUOTES, f"{data_type} quotes for every leg")
    return _not_run(QUOTES, f"{data_type} market data: prices may be stale")


# ---------------------------------------------------------------------- market hours


@dataclass(frozen=True, slots=True)
class Session:
    """One trading session, both ends timezone-aware UTC."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class MarketState:
    open: bool
    closes_at: dt.datetime | None
    next_open: dt.datetime | None


def _zone(time_zone: str) -> ZoneInfo:
    name = _IB_ZONES.get(time_zone.strip(), time_zone.strip())
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {time_zone!r}") from exc


def _stamp(day: str, hhmm: str, zone: ZoneInfo) -> dt.datetime:
    if len(day) != 8 or len(hhmm) != 4 or not (day.isdigit() and hhmm.isdigit()):
        raise ValueError(f"not IB's YYYYMMDD:HHMM: {day}:{hhmm}")
    local = dt.datetime(
        int(day[:4]), int(day[4:6]), int(day[6:]), int(hhmm[:2]) % 24, int(hhmm[2:]), tzinfo=zone
    )
    if hhmm == "2400":
        local += dt.timedelta(days=1)
    return local.astimezone(dt.UTC)


def parse_sessions(hours: str, time_zone: str) -> tuple[Session, ...]:
    """IB's hours string as sessions in UTC, sorted by start.

    Accepts ``20261125:0930-20261125:1600;20261126:CLOSED`` (sessions may cross midnight) and
    the older ``20261125:0930-1600,1700-1800;20261126:CLOSED``.

    :raises ValueError: empty or malformed text, or an unknown time zone.
    """
    zone = _zone(time_zone)
    text = hours.strip()
    if not text:
        raise ValueError("no hours")
    sessions: list[Session] = []
    for day_part in filter(None, (p.strip() for p in text.split(";"))):
        day, sep, ranges = day_part.partition(":")
        if not sep:
            raise ValueError(f"no date in {day_part!r}")
        if ranges.upper() == "CLOSED":
            if len(day) != 8 or not day.isdigit():
                raise ValueError(f"bad date in {day_part!r}")
            continue
        for rng in filter(None, (r.strip() for r in ranges.split(","))):
            first, dash, second = rng.partition("-")
            if not dash:
                raise ValueError(f"no range in {rng!r}")
            start = _stamp(day, first, zone)
            end_day, colon, end_hhmm = second.partition(":")
            end = _stamp(end_day, end_hhmm, zone) if colon else _stamp(day, second, zone)
            if end <= start:
                raise ValueError(f"session ends before it starts: {rng!r}")
            sessions.append(Session(start, end))
    sessions.sort(key=lambda s: s.start)
    return tuple(sessions)


def market_state(hours: str, time_zone: str, now: dt.datetime) -> MarketState:
    """Whether ``now`` (aware) is inside a session of ``hours``, when it closes, and the next
    open listed. :raises ValueError: as :func:`parse_sessions`."""
    sessions = parse_sessions(hours, time_zone)
    for s in sessions:
        if s.start <= now < s.end:
            return MarketState(open=True, closes_at=s.end, next_open=None)
    upcoming = [s.start for s in sessions if s.start > now]
    return MarketState(open=False, closes_at=None, next_open=min(upcoming, default=None))


def check_market_open(
    liquid_hours: str, trading_hours: str, time_zone: str, now: dt.datetime
) -> CheckResult:
    """Inside the regular session (``liquid_hours``; ``trading_hours`` when IB sent none).
    Options trade in the regular session only."""
    hours = liquid_hours or trading_hours
    if not hours or not time_zone:
        return _not_run(MARKET, "TWS sent no trading hours for the underlying")
    try:
        state = market_state(hours, time_zone, now)
    except ValueError as exc:
        return _not_run(MARKET, f"cannot read IB's trading hours: {exc}")
    if state.open:
        assert state.closes_at is not None
        return _passed(MARKET, f"open until {state.closes_at:%Y-%m-%d %H:%M} UTC")
    when = (
        f"; next open {state.next_open:%Y-%m-%d %H:%M} UTC"
        if state.next_open
        else "; no open listed in the next days"
    )
    return _failed(MARKET, f"the market is closed{when}")


# ---------------------------------------------------------------------- verdict


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    code: RiskCode | None
    message: str
    hint: str
    warnings: tuple[str, ...]


_FAILURE_CODES: Final[dict[str, RiskCode]] = {
    FUNDS: "INSUFFICIENT_FUNDS",
    RISK_SHARE: "RISK_LIMIT",
    MAX_LOSS: "RISK_LIMIT",
    CONTRACTS: "RISK_LIMIT",
    SHARES: "NOT_PERMITTED_LEVEL2",
    MARKET: "MARKET_CLOSED",
    QUOTES: "NO_MARKET_DATA",
}
_HINTS: Final[dict[RiskCode, str]] = {
    "INSUFFICIENT_FUNDS": "reduce the quantity or choose a cheaper structure",
    "RISK_LIMIT": "reduce the quantity or choose a structure with a smaller max loss; the limits "
    "are SUMPPUMP_MAX_RISK_PCT, SUMPPUMP_MAX_LOSS and SUMPPUMP_MAX_CONTRACTS",
    "NOT_PERMITTED_LEVEL2": "the account's options permissions do not allow this structure; "
    "check them in IBKR Client Portal → Settings → Trading Permissions",
    "MARKET_CLOSED": "options trade in the regular session; try again after the open",
    "NO_MARKET_DATA": "live quotes are needed for a live account: subscribe to US equity and "
    "OPRA options data, or wait until every leg is quoted",
    "ORDER_REJECTED": "IB's preview refused the order; see the message",
}
#: Order of precedence when several checks refuse: the most fundamental reason first.
_PRECEDENCE: Final[tuple[RiskCode, ...]] = (
    "NOT_PERMITTED_LEVEL2",
    "INSUFFICIENT_FUNDS",
    "RISK_LIMIT",
    "ORDER_REJECTED",
    "MARKET_CLOSED",
    "NO_MARKET_DATA",
)


def _what_if_code(detail: str) -> RiskCode:
    text = detail.upper()
    if "PERMISSION" in text or "NOT APPROVED" in text or "NOT PERMITTED" in text:
        return "NOT_PERMITTED_LEVEL2"
    if "MARGIN" in text or "EQUITY" in text or "FUNDS" in text:
        return "INSUFFICIENT_FUNDS"
    return "ORDER_REJECTED"


def _code(check: CheckResult) -> RiskCode:
    if check.name == WHAT_IF:
        return _what_if_code(check.detail)
    return _FAILURE_CODES.get(check.name, "RISK_LIMIT")


def decide(checks: Sequence[CheckResult], kind: AccountKind) -> Verdict:
    """The verdict on ``checks``: any failure refuses (the most fundamental reason names the
    code); for LIVE a required check that did not run refuses (fail closed); for PAPER and
    SIMULATED it is a warning."""
    failed = [c for c in checks if c.status == "failed"]
    skipped = [c for c in checks if c.status == "not_run"]
    warnings = tuple(f"check {c.name} did not run: {c.detail}" for c in skipped)
    refusing = failed + [c for c in skipped if c.required and kind == "LIVE"]
    if not refusing:
        return Verdict(ok=True, code=None, message="", hint="", warnings=warnings)
    coded = sorted(
        ((_code(c), c) for c in refusing),
        key=lambda pair: _PRECEDENCE.index(pair[0]) if pair[0] in _PRECEDENCE else 99,
    )
    code, first = coded[0]
    if first.status == "not_run":
        message = (
            f"check {first.name} could not run on a LIVE account ({first.detail}); the order is "
            "refused rather than sent unchecked"
        )
    else:
        message = f"check {first.name} failed: {first.detail}"
    others = [c.name for _code_, c in coded[1:]]
    if others:
        message += f" (also: {', '.join(others)})"
    return Verdict(
        ok=False, code=code, message=message, hint=_HINTS.get(code, ""), warnings=warnings
    )
