"""The book as a trader reads it: every holding as a structure, valued.

Pure: the caller gives what TWS reported (positions, quotes with greeks, working orders, the
account) and the date, and gets back a :class:`Portfolio`:

* :func:`structures_of`: the holdings of each symbol as structures. Combos SumpPump opened
  (``combos``) and covered calls come from
  :func:`sumppump.trading.holdings.group_structures`; what it
  leaves as singles is then paired here into the Level-2 shapes a person recognises (debit
  spreads, long straddles/strangles, protective puts, collars), marked ``inferred`` because
  nothing says they were opened together.
* :func:`value_portfolio`: per structure quantity, entry and mark (net per unit), unrealised
  P&L ($ and %), today's P&L, max loss still at risk, net greeks in dollars, days to expiry,
  distance to each breakeven and its protective stop; and account totals.

Conventions:

* Entry and mark are the net per unit in option-share terms (as
  :mod:`sumppump.strategies.analysis` prices an order): a debit is positive, a credit
  negative; dollars are ``net × units × multiplier``. A buy-write of 100 shares at 50.00 and a
  call sold at 1.20 is 48.80 per unit.
* A leg's mark is its quote's mid, else its last trade, else IB's portfolio mark; never the
  previous close. Missing data gives ``None`` and a note, never an invented figure.
* Today's P&L is ``Σ (mark − previous close) × signed size`` over the legs; a position opened
  today therefore includes the move before it was opened. ``None`` when a leg's previous close
  was not given.
* Max loss at risk is what the structure could still lose from its mark to the worst expiry
  outcome (:func:`sumppump.quant.payoff.analyse_expiry` with every leg entered at its mark),
  never below zero; ``None`` means unbounded. Legs with different expiries are valued at
  intrinsic on one date (noted).
* Greeks: delta in shares and dollars (``Σ delta × size × multiplier``, × spot), gamma in
  shares per $1 and in delta-dollars per 1 % move (``gamma shares × spot² / 100``), theta in
  dollars per calendar day, vega in dollars per vol point (IB's units, per share, scaled).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from sumppump.messages.common import Quote
from sumppump.messages.connection import AccountSnapshot, PositionInfo
from sumppump.quant.payoff import PayoffLeg, analyse_expiry
from sumppump.trading.holdings import (
    OpenedCombo,
    Structure,
    StructureLeg,
    describe_position,
    group_structures,
)

__all__ = [
    "AccountTotals",
    "Breakeven",
    "DollarGreeks",
    "LegValue",
    "Portfolio",
    "StopInfo",
    "StructureValue",
    "WorkingOrder",
    "structures_of",
    "value_portfolio",
    "value_structure",
]

_EPS = 1e-9
#: Order types that protect a position (IB's names).
STOP_TYPES = frozenset({"STP", "STP LMT", "TRAIL", "TRAIL LIMIT"})
#: IB statuses of an order that is live at IB (a stop waits PreSubmitted until triggered).
WORKING_STATUSES = frozenset({"Submitted", "PreSubmitted"})


class WorkingOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An open order as far as the book needs it: ``con_ids`` are the contracts it trades
    (one for a single-leg order, every leg of a combo)."""

    order_ref: str
    order_type: str
    action: Literal["BUY", "SELL"]
    quantity: float
    status: str
    con_ids: tuple[int, ...]
    stop_price: float | None = None
    limit_price: float | None = None


class LegValue(msgspec.Struct, frozen=True, kw_only=True):
    """One leg: ``size`` signed contracts (shares for stock) in this structure."""

    con_id: int
    description: str
    size: float
    entry: float
    mark: float | None
    mark_source: str
    previous_close: float | None


class DollarGreeks(msgspec.Struct, frozen=True, kw_only=True):
    """Net greeks of a structure (or the account); see the module docstring for units."""

    delta_shares: float
    delta_dollars: float
    gamma_shares: float
    gamma_dollars_1pct: float
    theta_day: float
    vega_point: float


class Breakeven(msgspec.Struct, frozen=True, kw_only=True):
    """An expiry breakeven and how far the underlying is from it (price − spot; % of spot)."""

    price: float
    distance: float | None
    distance_pct: float | None


class StopInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The protective stop on a structure. ``trigger`` is in the structure's own price
    (the contract's price for a single leg, the net per unit for a combo); ``distance`` is
    how far the price can move against the position before it triggers (negative: past it)."""

    order_ref: str
    order_type: str
    status: str
    working: bool
    trigger: float | None
    distance: float | None
    distance_pct: float | None


class StructureValue(msgspec.Struct, frozen=True, kw_only=True):
    """One structure, valued (module docstring: conventions)."""

    key: str
    symbol: str
    name: str
    description: str
    units: int
    inferred: bool
    legs: tuple[LegValue, ...]
    spot: float | None
    entry: float
    mark: float | None
    cost: float
    value: float | None
    unrealised_pnl: float | None
    unrealised_pct: float | None
    today_pnl: float | None
    max_loss_at_risk: float | None
    max_loss_bounded: bool
    greeks: DollarGreeks | None
    expiry: str | None
    days_to_expiry: int | None
    breakevens: tuple[Breakeven, ...]
    stop: StopInfo | None
    notes: tuple[str, ...] = ()


class AccountTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Sums over the structures (each total over those where the figure is known; the
    ``*_complete`` flags say whether every structure had it) and the account's own figures."""

    account_id: str
    currency: str
    net_liquidation: float | None
    available_funds: float | None
    buying_power: float | None
    excess_liquidity: float | None
    market_value: float
    unrealised_pnl: float
    unrealised_complete: bool
    today_pnl: float
    today_complete: bool
    max_loss_at_risk: float | None
    at_risk_pct_of_net_liq: float | None
    greeks: DollarGreeks
    greeks_complete: bool
    unprotected: int


class Portfolio(msgspec.Struct, frozen=True, kw_only=True):
    as_of: str
    structures: tuple[StructureValue, ...]
    totals: AccountTotals


# ---------------------------------------------------------------------- grouping


def structures_of(
    positions: Iterable[PositionInfo], combos: Iterable[OpenedCombo] = ()
) -> tuple[tuple[Structure, bool], ...]:
    """Every symbol's holdings as ``(structure, inferred)``: the combos SumpPump opened first;
    then debit verticals among what is left (before shares claim a short call, so a spread
    held beside shares stays a spread); then holdings' covered calls; then the singles paired
    into collars, protective puts and long straddles/strangles.

    Without ``combos`` the pairing is a reading of the legs, not a record: two spreads of one
    expiry whose strikes interleave may be paired differently from how they were opened."""
    by_symbol: dict[str, list[PositionInfo]] = defaultdict(list)
    for p in positions:
        if abs(p.quantity) > _EPS:
            by_symbol[p.symbol].append(p)
    combos_by_symbol: dict[str, list[OpenedCombo]] = defaultdict(list)
    for c in combos:
        if c.legs:
            combos_by_symbol[c.legs[0].symbol].append(c)
    found: list[tuple[Structure, bool]] = []
    for symbol in sorted(by_symbol):
        held = by_symbol[symbol]
        opened = [
            s for s in group_structures(held, combos_by_symbol.get(symbol, ())) if s.opened_by
        ]
        claimed: dict[int, float] = defaultdict(float)
        for s in opened:
            for leg in s.legs:
                claimed[leg.position.con_id] += (1 if leg.long else -1) * leg.ratio * s.units
        left = _Left(
            (p, round(p.quantity - claimed[p.con_id]))
            for p in held
            if abs(p.quantity - claimed[p.con_id]) > _EPS
        )
        found.extend((s, False) for s in opened)
        found.extend(_verticals(left))
        rest = [
            msgspec.structs.replace(p, quantity=float(left.qty[cid]))
            for cid, p in left.pos.items()
            if left.qty[cid] != 0
        ]
        found.extend(_pair_singles(group_structures(rest)))
    return tuple(found)


class _Left:
    """Singles still unpaired: signed quantity per conId."""

    def __init__(self, held: Iterable[tuple[PositionInfo, int]]) -> None:
        self.qty: dict[int, int] = {}
        self.pos: dict[int, PositionInfo] = {}
        for p, qty in held:
            self.qty[p.con_id] = qty
            self.pos[p.con_id] = p

    def options(self, right: str, long: bool) -> list[PositionInfo]:
        return sorted(
            (
                p
                for cid, p in self.pos.items()
                if p.sec_type == "OPT"
                and p.right == right
                and (self.qty[cid] > 0) == long
                and self.qty[cid] != 0
            ),
            key=lambda p: (p.expiry or "", p.strike or 0.0),
        )

    def take(self, con_id: int, units: int) -> None:
        q = self.qty[con_id]
        self.qty[con_id] = q - units if q > 0 else q + units

    def pair(self, name: str, legs: list[tuple[PositionInfo, int, bool]], units: int) -> Structure:
        """``units`` of ``legs`` (position, ratio, long) taken out as one inferred structure."""
        for p, ratio, _long in legs:
            self.take(p.con_id, ratio * units)
        key = "+".join("STK" if p.sec_type != "OPT" else str(p.con_id) for p, _, _ in legs)
        struct_legs = tuple(StructureLeg(position=p, ratio=r, long=lg) for p, r, lg in legs)
        return Structure(key=key, name=name, legs=struct_legs, units=units)


def _verticals(left: _Left) -> list[tuple[Structure, bool]]:
    """Debit verticals taken out of ``left``: a short option with a long one of the same
    expiry (call: nearest lower strike; put: nearest higher strike), the spread the Level-2
    rule calls covered."""
    found: list[tuple[Structure, bool]] = []
    for right, name in (("C", "bull call spread"), ("P", "bear put spread")):
        for short in left.options(right, long=False):
            for long in sorted(
                left.options(right, long=True),
                key=lambda p: abs((p.strike or 0.0) - (short.strike or 0.0)),
            ):
                covers = (
                    (long.strike or 0) < (short.strike or 0)
                    if right == "C"
                    else ((long.strike or 0) > (short.strike or 0))
                )
                units = min(abs(left.qty[short.con_id]), abs(left.qty[long.con_id]))
                if long.expiry == short.expiry and covers and units > 0:
                    found.append(
                        (left.pair(name, [(long, 1, True), (short, 1, False)], units), True)
                    )
    return found


def _pair_singles(grouped: Sequence[Structure]) -> list[tuple[Structure, bool]]:
    """Holdings' covered calls kept (a long put of the same expiry makes one a collar), and
    its singles paired into protective puts and long straddles/strangles."""
    kept = [(s, False) for s in grouped if not s.is_single]
    left = _Left(
        (s.legs[0].position, s.units if s.legs[0].long else -s.units)
        for s in grouped
        if s.is_single
    )
    paired: list[tuple[Structure, bool]] = []

    def add(name: str, legs: list[tuple[PositionInfo, int, bool]], units: int) -> None:
        paired.append((left.pair(name, legs, units), True))

    # Collars: a covered call with a long put of the same expiry on its shares.
    for i, (s, _) in enumerate(kept):
        if s.name != "covered call" or s.opened_by:
            continue
        call = s.legs[1].position
        for put in left.options("P", long=True):
            units = min(s.units, left.qty[put.con_id])
            if put.expiry == call.expiry and units == s.units:
                left.take(put.con_id, units)
                legs = (s.legs[0], StructureLeg(position=put, ratio=1, long=True), s.legs[1])
                kept[i] = (
                    Structure(key=f"{s.key}+{put.con_id}", name="collar", legs=legs, units=units),
                    True,
                )
                break
    # Protective puts: shares still free with a long put.
    stock = next(
        (p for cid, p in left.pos.items() if p.sec_type != "OPT" and left.qty[cid] > 0), None
    )
    if stock is not None:
        for put in left.options("P", long=True):
            per = int(put.multiplier)
            units = min(left.qty[put.con_id], left.qty[stock.con_id] // per)
            if units > 0:
                add("protective put", [(stock, per, True), (put, 1, True)], units)
    # Long straddles/strangles: a long call and a long put of the same expiry.
    for call in left.options("C", long=True):
        for put in left.options("P", long=True):
            units = min(left.qty[call.con_id], left.qty[put.con_id])
            if put.expiry == call.expiry and units > 0 and (put.strike or 0) <= (call.strike or 0):
                name = "long straddle" if put.strike == call.strike else "long strangle"
                add(name, [(call, 1, True), (put, 1, True)], units)
    singles = [
        (
            Structure(
                key="STK" if p.sec_type != "OPT" else str(cid),
                name=_single_name(p, left.qty[cid] > 0),
                legs=(StructureLeg(position=p, ratio=1, long=left.qty[cid] > 0),),
                units=abs(left.qty[cid]),
            ),
            False,
        )
        for cid, p in left.pos.items()
        if left.qty[cid] != 0
    ]
    return kept + paired + singles


def _single_name(p: PositionInfo, long: bool) -> str:
    if p.sec_type != "OPT":
        return "shares" if long else "short stock"
    return f"{'long' if long else 'short'} {'call' if p.right == 'C' else 'put'}"


# ---------------------------------------------------------------------- valuation


def _mark(p: PositionInfo, quote: Quote | None) -> tuple[float | None, str]:
    if quote is not None and quote.mid is not None:
        return quote.mid, "mid"
    if quote is not None and quote.last is not None and quote.last > 0:
        return quote.last, "last"
    if p.market_price is not None and p.market_price >= 0:
        return p.market_price, "ib_portfolio"
    return None, "none"


def _unit_multiplier(s: Structure) -> float:
    return next((leg.multiplier for leg in s.legs if leg.position.sec_type == "OPT"), 1.0)


def value_structure(
    s: Structure,
    *,
    inferred: bool,
    quotes: Mapping[int, Quote],
    spot: float | None,
    orders: Sequence[WorkingOrder],
    today: dt.date,
) -> StructureValue:
    """Value one structure (module docstring: every figure and its convention)."""
    notes: list[str] = []
    legs: list[LegValue] = []
    sizes: list[float] = []
    for leg in s.legs:
        p = leg.position
        size = (1 if leg.long else -1) * leg.ratio * s.units
        mark, source = _mark(p, quotes.get(p.con_id))
        q = quotes.get(p.con_id)
        legs.append(
            LegValue(
                con_id=p.con_id,
                description=describe_position(p),
                size=size,
                entry=round(leg.entry_price, 4),
                mark=mark,
                mark_source=source,
                previous_close=q.close if q is not None else None,
            )
        )
        sizes.append(size * leg.multiplier)
    unit_mult = _unit_multiplier(s) * s.units
    cost = sum(w * leg.entry_price for w, leg in zip(sizes, s.legs, strict=True))
    marks = [lv.mark for lv in legs]
    value: float | None = None
    known = [m for m in marks if m is not None]
    if len(known) == len(marks):
        value = sum(w * m for w, m in zip(sizes, known, strict=True))
    else:
        notes.append("no price for " + ", ".join(lv.description for lv in legs if lv.mark is None))
    pnl = None if value is None else value - cost
    pct = None if pnl is None or abs(cost) < _EPS else pnl / abs(cost) * 100

    closes = [lv.previous_close for lv in legs]
    today_pnl: float | None = None
    given = [c for c in closes if c is not None]
    if value is not None and len(given) == len(closes):
        today_pnl = sum(w * (m - c) for w, m, c in zip(sizes, known, given, strict=True))
    else:
        notes.append("today's P&L not given: no previous close for every leg")

    at_risk, bounded, breakevens = _risk(s, legs, spot, notes)
    expiries = sorted({leg.position.expiry for leg in s.legs if leg.position.expiry})
    if len(expiries) > 1:
        notes.append(
            "legs expire on different dates: expiry figures value every leg at "
            "intrinsic on one date"
        )
    expiry = expiries[0] if expiries else None
    days = (dt.date.fromisoformat(expiry) - today).days if expiry else None
    mark_per_unit = None if value is None else value / unit_mult
    return StructureValue(
        key=s.key,
        symbol=s.legs[0].position.symbol,
        name=s.name,
        description=s.describe(),
        units=s.units,
        inferred=inferred,
        legs=tuple(legs),
        spot=spot,
        entry=round(cost / unit_mult, 4),
        mark=None if mark_per_unit is None else round(mark_per_unit, 4),
        cost=round(cost, 2),
        value=None if value is None else round(value, 2),
        unrealised_pnl=None if pnl is None else round(pnl, 2),
        unrealised_pct=None if pct is None else round(pct, 2),
        today_pnl=None if today_pnl is None else round(today_pnl, 2),
        max_loss_at_risk=at_risk,
        max_loss_bounded=bounded,
        greeks=_greeks(s, quotes, spot, notes),
        expiry=expiry,
        days_to_expiry=days,
        breakevens=breakevens,
        stop=_stop(s, legs, mark_per_unit, orders),
        notes=tuple(notes),
    )


def _payoff_legs(s: Structure, prices: Sequence[float]) -> list[PayoffLeg]:
    return [
        PayoffLeg(
            right="STK" if leg.position.sec_type != "OPT" else leg.position.right,  # type: ignore[arg-type]
            strike=leg.position.strike if leg.position.sec_type == "OPT" else None,
            position=(1 if leg.long else -1) * leg.ratio * s.units,
            multiplier=leg.multiplier,
            entry_price=max(price, 0.0),
        )
        for leg, price in zip(s.legs, prices, strict=True)
    ]


def _risk(
    s: Structure, legs: Sequence[LegValue], spot: float | None, notes: list[str]
) -> tuple[float | None, bool, tuple[Breakeven, ...]]:
    """(max loss at risk from the marks, bounded?, breakevens from the entry prices)."""
    entry_profile = analyse_expiry(_payoff_legs(s, [leg.entry_price for leg in s.legs]))
    breakevens = tuple(
        Breakeven(
            price=round(b, 4),
            distance=None if spot is None else round(b - spot, 4),
            distance_pct=None if not spot else round((b - spot) / spot * 100, 2),
        )
        for b in entry_profile.breakevens
    )
    marks = [lv.mark for lv in legs]
    if any(m is None for m in marks):
        notes.append("max loss at risk not given: a leg has no price")
        bounded = entry_profile.max_loss is not None
        return None, bounded, breakevens
    profile = analyse_expiry(_payoff_legs(s, marks))  # type: ignore[arg-type]
    if profile.max_loss is None:
        return None, False, breakevens
    return round(max(profile.max_loss, 0.0), 2), True, breakevens


def _greeks(
    s: Structure, quotes: Mapping[int, Quote], spot: float | None, notes: list[str]
) -> DollarGreeks | None:
    delta = gamma = theta = vega = 0.0
    lacking = []
    for leg in s.legs:
        p = leg.position
        weight = (1 if leg.long else -1) * leg.ratio * s.units * leg.multiplier
        if p.sec_type != "OPT":
            delta += weight
            continue
        q = quotes.get(p.con_id)
        g = q.greeks if q is not None else None
        if g is None or None in (g.delta, g.gamma, g.theta, g.vega):
            lacking.append(describe_position(p))
            continue
        delta += weight * g.delta  # type: ignore[operator]
        gamma += weight * g.gamma  # type: ignore[operator]
        theta += weight * g.theta  # type: ignore[operator]
        vega += weight * g.vega  # type: ignore[operator]
    if lacking or spot is None:
        notes.append(
            "greeks not given: "
            + (f"no greeks for {', '.join(lacking)}" if lacking else "no underlying price")
        )
        return None
    return _dollar_greeks(delta, gamma, theta, vega, spot)


def _dollar_greeks(
    delta: float, gamma: float, theta: float, vega: float, spot: float
) -> DollarGreeks:
    return DollarGreeks(
        delta_shares=round(delta, 2),
        delta_dollars=round(delta * spot, 2),
        gamma_shares=round(gamma, 4),
        gamma_dollars_1pct=round(gamma * spot * spot / 100, 2),
        theta_day=round(theta, 2),
        vega_point=round(vega, 2),
    )


def _stop(
    s: Structure,
    legs: Sequence[LegValue],
    mark_per_unit: float | None,
    orders: Sequence[WorkingOrder],
) -> StopInfo | None:
    """The stop on exactly this structure's contracts. A combo stop is taken to close the
    structure: SumpPump's is a BUY of the reversed legs at ``-stop`` (execution's
    ``_combo_stop``), so its trigger in the structure's value is ``-stop``; a SELL of the
    same legs triggers at ``stop``."""
    ids = set(s.con_ids)
    stops = [o for o in orders if o.order_type in STOP_TYPES and set(o.con_ids) == ids]
    if not stops:
        return None
    order = next((o for o in stops if o.status in WORKING_STATUSES), stops[0])
    trigger: float | None = order.stop_price
    if s.is_single:
        price = legs[0].mark
        side = 1 if s.legs[0].long else -1
    else:
        price = mark_per_unit
        side = 1
        if trigger is not None and order.action == "BUY":
            trigger = -trigger
    distance = None if price is None or trigger is None else side * (price - trigger)
    return StopInfo(
        order_ref=order.order_ref,
        order_type=order.order_type,
        status=order.status,
        working=order.status in WORKING_STATUSES,
        trigger=trigger,
        distance=None if distance is None else round(distance, 4),
        distance_pct=None
        if distance is None or not price
        else round(distance / abs(price) * 100, 2),
    )


def value_portfolio(
    positions: Sequence[PositionInfo],
    *,
    quotes: Mapping[int, Quote],
    spots: Mapping[str, float | None],
    orders: Sequence[WorkingOrder],
    account: AccountSnapshot,
    today: dt.date,
    combos: Iterable[OpenedCombo] = (),
) -> Portfolio:
    """The whole book valued (module docstring). ``quotes`` by conId (options and stock),
    ``spots`` by symbol; ``orders`` the account's open orders."""
    valued = tuple(
        value_structure(
            s,
            inferred=inferred,
            quotes=quotes,
            spot=spots.get(s.legs[0].position.symbol),
            orders=orders,
            today=today,
        )
        for s, inferred in structures_of(positions, combos)
    )
    return Portfolio(as_of=today.isoformat(), structures=valued, totals=_totals(valued, account))


def _totals(valued: Sequence[StructureValue], account: AccountSnapshot) -> AccountTotals:
    with_greeks = [v.greeks for v in valued if v.greeks is not None]
    at_risk = [v.max_loss_at_risk for v in valued]
    bounded = [r for r in at_risk if r is not None]
    risk_total = round(sum(bounded), 2) if len(bounded) == len(at_risk) else None
    nl = account.net_liquidation
    return AccountTotals(
        account_id=account.account_id,
        currency=account.currency,
        net_liquidation=nl,
        available_funds=account.available_funds,
        buying_power=account.buying_power,
        excess_liquidity=account.excess_liquidity,
        market_value=round(sum(v.value or 0.0 for v in valued), 2),
        unrealised_pnl=round(sum(v.unrealised_pnl or 0.0 for v in valued), 2),
        unrealised_complete=all(v.unrealised_pnl is not None for v in valued),
        today_pnl=round(sum(v.today_pnl or 0.0 for v in valued), 2),
        today_complete=all(v.today_pnl is not None for v in valued),
        max_loss_at_risk=risk_total,
        at_risk_pct_of_net_liq=None
        if risk_total is None or not nl
        else round(risk_total / nl * 100, 2),
        greeks=DollarGreeks(
            delta_shares=round(sum(g.delta_shares for g in with_greeks), 2),
            delta_dollars=round(sum(g.delta_dollars for g in with_greeks), 2),
            gamma_shares=round(sum(g.gamma_shares for g in with_greeks), 4),
            gamma_dollars_1pct=round(sum(g.gamma_dollars_1pct for g in with_greeks), 2),
            theta_day=round(sum(g.theta_day for g in with_greeks), 2),
            vega_point=round(sum(g.vega_point for g in with_greeks), 2),
        ),
        greeks_complete=len(with_greeks) == len(valued),
        unprotected=sum(1 for v in valued if v.stop is None or not v.stop.working),
    )
