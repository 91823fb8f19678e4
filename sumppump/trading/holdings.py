"""What the account holds in one symbol, as structures a person can name, close or roll.

Pure functions: execution gives them the positions TWS reports and the combos SumpPump opened,
and gets back

* :func:`group_structures`: the holdings as :class:`Structure` s. A combo that was opened here
  together (a spread, a collar, a buy-write) stays one structure for as many units as are still
  held on every leg; a short call left over is paired with shares it is covered by ("covered
  call"); everything else is a single position.
* :func:`choose_structure`: the structure (or the single leg of one) that ``position`` names;
  with no name, the only structure, else a :class:`Choice` error listing them. It never guesses.
* :func:`closing_legs`: the order legs that close ``units`` of a structure (each leg reversed).
* :func:`level2_after`: the Level-2 rule (:func:`~sumppump.strategies.coverage.check_coverage`)
  applied to what the account would hold after an order, so a close can never leave a naked
  short behind.
* :func:`realised_pnl`, :func:`natural_price`: the money a close would realise.

Names a person may use for ``position``: a structure's key (a conId for a single option,
``STK`` for shares, the opening ``order_ref`` for a combo opened here, ``<conId>+STK`` for a
covered call not opened as one order), a description (``"AAPL 2026-12-18 200 C"``,
``"2026-12-18 200 C"``, ``"stock"``/``"shares"``), or a structure's name (``"bull call spread"``)
when only one structure has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo
from sumppump.messages.orders import OrderLeg
from sumppump.strategies.coverage import CoverageVerdict, check_coverage
from sumppump.strategies.model import StrategyLeg

__all__ = [
    "Choice",
    "OpenedCombo",
    "Structure",
    "StructureLeg",
    "choose_structure",
    "closing_legs",
    "describe_leg",
    "describe_position",
    "group_structures",
    "level2_after",
    "natural_price",
    "position_names",
    "positions_after",
    "realised_pnl",
]

#: Contracts per unit are small integers; quantities below this are treated as zero.
_EPS = 1e-9


class OpenedCombo(msgspec.Struct, frozen=True, kw_only=True):
    """A multi-leg order SumpPump placed and that filled (at least partly): the legs it
    *opened* (for a roll, only the new legs), per unit, and how many units filled."""

    order_ref: str
    legs: tuple[OrderLeg, ...]
    filled_units: int
    strategy: str = ""


class StructureLeg(msgspec.Struct, frozen=True, kw_only=True):
    """One held leg of a structure, per unit: ``ratio`` contracts (or shares), long or short."""

    position: PositionInfo
    ratio: int
    long: bool

    @property
    def multiplier(self) -> float:
        return self.position.multiplier if self.position.sec_type == "OPT" else 1.0

    @property
    def entry_price(self) -> float:
        """The average entry price per share (IB reports an option's per contract)."""
        return self.position.avg_cost / self.multiplier


class Structure(msgspec.Struct, frozen=True, kw_only=True):
    """Something the person holds and can close as one order: ``units`` of ``legs``."""

    key: str
    name: str
    legs: tuple[StructureLeg, ...]
    units: int
    opened_by: str = ""

    @property
    def con_ids(self) -> frozenset[int]:
        return frozenset(leg.position.con_id for leg in self.legs)

    @property
    def is_single(self) -> bool:
        return len(self.legs) == 1

    def describe(self) -> str:
        """``2 × bull call spread (+1 AAPL 2026-12-18 200 C, -1 AAPL 2026-12-18 210 C)``."""
        if self.is_single:
            leg = self.legs[0]
            return f"{self.units:g} {describe_position(leg.position)} ({self.name})"
        parts = ", ".join(
            f"{'+' if leg.long else '-'}{leg.ratio} {describe_position(leg.position)}"
            for leg in self.legs
        )
        return f"{self.units} × {self.name} ({parts})"


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    """No single structure matched: ``message`` says why, ``options`` lists the names."""

    message: str
    options: tuple[str, ...]


# ---------------------------------------------------------------------- naming


def describe_position(p: PositionInfo) -> str:
    """``AAPL 2026-12-18 200 C`` for an option, ``AAPL shares`` for stock."""
    if p.sec_type == "OPT":
        return f"{p.symbol} {p.expiry} {(p.strike or 0.0):g} {p.right}"
    return f"{p.symbol} shares"


def describe_leg(leg: OrderLeg) -> str:
    """``AAPL 2026-12-18 200 C`` for an option leg, ``AAPL shares`` for stock."""
    if leg.sec_type == "OPT":
        return f"{leg.symbol} {leg.expiry} {(leg.strike or 0.0):g} {leg.right}"
    return f"{leg.symbol} shares"


def position_names(p: PositionInfo) -> set[str]:
    """Every name ``position`` may give for ``p`` (upper case, single spaces)."""
    names = {str(p.con_id)}
    if p.sec_type == "OPT":
        names.add(f"{p.symbol} {p.expiry} {(p.strike or 0.0):g} {p.right}".upper())
        names.add(f"{p.expiry} {(p.strike or 0.0):g} {p.right}".upper())
    else:
        names.update({"STK", "STOCK", "SHARES", p.symbol.upper(), f"{p.symbol.upper()} STK"})
        names.add(f"{p.symbol.upper()} SHARES")
    return names


def _normalise(text: str) -> str:
    return " ".join(text.replace("_", " ").strip().split()).upper()


def _single_name(p: PositionInfo, long: bool) -> str:
    if p.sec_type != "OPT":
        return "shares" if long else "short stock"
    right = "call" if p.right == "C" else "put"
    return f"{'long' if long else 'short'} {right}"


# ---------------------------------------------------------------------- grouping


def group_structures(
    positions: Iterable[PositionInfo], combos: Iterable[OpenedCombo] = ()
) -> tuple[Structure, ...]:
    """The holdings of one symbol as structures (see the module docstring).

    A combo counts for ``min(filled_units, held / ratio over its legs)`` units, where only
    positions on the same side as the leg count; what it takes is no longer available to later
    combos or to the singles. Combos are taken in the order given (oldest first).
    """
    left: dict[int, float] = {}
    by_id: dict[int, PositionInfo] = {}
    for p in positions:
        if abs(p.quantity) > _EPS:
            left[p.con_id] = left.get(p.con_id, 0.0) + p.quantity
            by_id[p.con_id] = p
    structures: list[Structure] = []
    for combo in combos:
        if len(combo.legs) < 2 or combo.filled_units <= 0:
            continue
        units = combo.filled_units
        for leg in combo.legs:
            held = left.get(leg.con_id, 0.0)
            same_side = held > 0 if leg.action == "BUY" else held < 0
            units = min(units, int(abs(held) // leg.ratio + _EPS) if same_side else 0)
        if units <= 0:
            continue
        legs = []
        for leg in combo.legs:
            sign = 1 if leg.action == "BUY" else -1
            left[leg.con_id] -= sign * leg.ratio * units
            legs.append(
                StructureLeg(position=by_id[leg.con_id], ratio=leg.ratio, long=leg.action == "BUY")
            )
        structures.append(
            Structure(
                key=combo.order_ref,
                name=combo.strategy or "combo",
                legs=tuple(legs),
                units=units,
                opened_by=combo.order_ref,
            )
        )
    structures.extend(_covered_calls(left, by_id))
    for con_id, qty in left.items():
        if abs(qty) <= _EPS:
            continue
        p = by_id[con_id]
        structures.append(
            Structure(
                key="STK" if p.sec_type != "OPT" else str(con_id),
                name=_single_name(p, qty > 0),
                legs=(StructureLeg(position=p, ratio=1, long=qty > 0),),
                units=round(abs(qty)),
            )
        )
    return tuple(structures)


def _covered_calls(left: dict[int, float], by_id: dict[int, PositionInfo]) -> list[Structure]:
    """Short calls not in a combo, each paired with the shares that cover it (consumed from
    ``left``)."""
    stock = next((cid for cid, p in by_id.items() if p.sec_type != "OPT" and left[cid] > 0), None)
    if stock is None:
        return []
    found: list[Structure] = []
    for con_id, p in sorted(by_id.items(), key=lambda kv: (kv[1].expiry or "", kv[1].strike or 0)):
        if p.sec_type != "OPT" or p.right != "C" or left[con_id] >= 0:
            continue
        per_unit = int(p.multiplier)
        units = min(int(-left[con_id]), int(left[stock] // per_unit))
        if units <= 0:
            continue
        left[con_id] += units
        left[stock] -= units * per_unit
        found.append(
            Structure(
                key=f"{con_id}+STK",
                name="covered call",
                legs=(
                    StructureLeg(position=by_id[stock], ratio=per_unit, long=True),
                    StructureLeg(position=p, ratio=1, long=False),
                ),
                units=units,
            )
        )
    return found


def choose_structure(wanted: str | None, structures: Sequence[Structure]) -> Structure | Choice:
    """The structure ``wanted`` names (see the module docstring), or a :class:`Choice`.

    Naming one leg of a multi-leg structure answers that leg alone, as a single structure of
    what is held of it in that structure; whether closing it alone is allowed is for
    :func:`level2_after` to say, never this function."""
    options = tuple(f"{s.key}: {s.describe()}" for s in structures)
    if not structures:
        return Choice(message="nothing is held in this symbol", options=())
    if wanted is None or not wanted.strip():
        if len(structures) == 1:
            return structures[0]
        return Choice(
            message=f"{len(structures)} positions are held; say which one with position",
            options=options,
        )
    key = _normalise(wanted)
    for s in structures:
        if _normalise(s.key) == key or (s.opened_by and _normalise(s.opened_by) == key):
            return s
    named = [s for s in structures if _normalise(s.name) == key]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        return Choice(message=f"{len(named)} positions are a {wanted.strip()}", options=options)
    singles = [s for s in structures if s.is_single and key in position_names(s.legs[0].position)]
    if len(singles) == 1:
        return singles[0]
    legs = [(s, leg) for s in structures for leg in s.legs if key in position_names(leg.position)]
    if legs and len({leg.position.con_id for _, leg in legs}) == 1:
        position = legs[0][1].position
        held = sum(leg.ratio * s.units for s, leg in legs)
        long = position.quantity > 0
        return Structure(
            key="STK" if position.sec_type != "OPT" else str(position.con_id),
            name=_single_name(position, long),
            legs=(StructureLeg(position=position, ratio=1, long=long),),
            units=int(held),
        )
    return Choice(message=f"no held position matches {wanted.strip()!r}", options=options)


# ---------------------------------------------------------------------- orders


def closing_legs(structure: Structure) -> tuple[OrderLeg, ...]:
    """The legs of the order that closes one unit of ``structure``: every leg reversed (a long
    is sold, a short bought back), with its ratio."""
    return tuple(
        _order_leg(leg.position, "SELL" if leg.long else "BUY", leg.ratio) for leg in structure.legs
    )


def _order_leg(p: PositionInfo, action: Literal["BUY", "SELL"], ratio: int) -> OrderLeg:
    is_option = p.sec_type == "OPT"
    return OrderLeg(
        con_id=p.con_id,
        symbol=p.symbol,
        sec_type="OPT" if is_option else "STK",
        action=action,
        ratio=ratio,
        multiplier=p.multiplier if is_option else 1.0,
        expiry=p.expiry if is_option else None,
        strike=p.strike if is_option else None,
        right=p.right if is_option and p.right in ("C", "P") else None,  # type: ignore[arg-type]
    )


def positions_after(
    positions: Iterable[PositionInfo], legs: Iterable[OrderLeg], units: int
) -> dict[int, tuple[PositionInfo | OrderLeg, float]]:
    """Signed quantity per conId after ``units`` of an order with ``legs`` fills (the position
    or, for a contract not held yet, the order leg that describes it)."""
    after: dict[int, tuple[PositionInfo | OrderLeg, float]] = {}
    for p in positions:
        held = after.get(p.con_id, (p, 0.0))[1]
        after[p.con_id] = (p, held + p.quantity)
    for leg in legs:
        what, held = after.get(leg.con_id, (leg, 0.0))
        after[leg.con_id] = (what, held + (1 if leg.action == "BUY" else -1) * leg.ratio * units)
    return after


def level2_after(
    positions: Iterable[PositionInfo],
    legs: Iterable[OrderLeg],
    units: int,
    *,
    multiplier: int = 100,
) -> CoverageVerdict:
    """The Level-2 rule on everything held in the symbol once the order has filled: every
    short call covered by shares or a long call (same expiry, strike at or below), every short
    put by a long put (same expiry, strike at or above), no short stock. The debit rule does
    not apply (nothing is being opened as a structure)."""
    book: list[StrategyLeg] = []
    for what, qty in positions_after(positions, legs, units).values():
        if abs(qty) <= _EPS:
            continue
        n = round(abs(qty))
        action: Literal["BUY", "SELL"] = "BUY" if qty > 0 else "SELL"
        if what.sec_type != "OPT":
            book.append(StrategyLeg(action=action, right="STK", ratio=n))
        else:
            book.append(
                StrategyLeg(
                    action=action,
                    right=what.right or "C",  # type: ignore[arg-type]
                    strike=what.strike,
                    expiry=what.expiry,
                    ratio=n,
                )
            )
    return check_coverage(book, 1, multiplier=multiplier)


def natural_price(legs: Sequence[OrderLeg], quotes: Iterable[Quote]) -> float | None:
    """The order's price at the far touch (buys at the ask, sells at the bid), in the limit
    price's convention: a single leg's own price, a combo's net per unit (negative = credit).
    ``None`` when a needed side is missing."""
    book = {q.con_id: q for q in quotes}
    if len(legs) == 1:
        q = book.get(legs[0].con_id)
        if q is None:
            return None
        return q.ask if legs[0].action == "BUY" else q.bid
    total = 0.0
    for leg in legs:
        q = book.get(leg.con_id)
        side = None if q is None else (q.ask if leg.action == "BUY" else q.bid)
        if side is None:
            return None
        total += (1 if leg.action == "BUY" else -1) * leg.ratio * side
    return round(total, 6)


def realised_pnl(
    structure: Structure, units: int, exit_prices: dict[int, float], concession: float = 0.0
) -> float | None:
    """Money realised by closing ``units`` of ``structure`` with each leg leaving at
    ``exit_prices[con_id]`` (per share), against the average cost IB reports, plus
    ``concession`` (money: how much better, or worse if negative, the order's limit is than
    those prices). Commission is not included. ``None`` when a leg has no exit price."""
    total = concession
    for leg in structure.legs:
        price = exit_prices.get(leg.position.con_id)
        if price is None:
            return None
        sign = 1 if leg.long else -1
        total += sign * (price - leg.entry_price) * leg.ratio * leg.multiplier * units
    return round(total, 2)
