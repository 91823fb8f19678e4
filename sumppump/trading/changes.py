"""Close and roll (pure): the planners of the previews that change what is held (modify:
:mod:`sumppump.trading.modify`).

Each change is planned in steps between the execution actor's reads (positions, quotes, TWS's
working orders, for a roll the analysis of the new position): a ``*_target`` step picks what the
request names and refuses what cannot be done, a ``plan_*`` step builds the
:class:`~sumppump.messages.execution.CreatePreview` from what was read. The Level-2 rule is
applied to what would remain (:mod:`sumppump.trading.holdings`), and the position's protective
stops are planned to follow it (:func:`sumppump.trading.stops.plan_stop_follow`). Nothing here
sends an order: every change is placed by ``ExecutePreview`` after the person confirms it, with
the same checks as an opening order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    AccountKind,
    ChangeDetails,
    CreatePreview,
    ExecutionRefused,
    PrepareClose,
    PrepareRoll,
)
from sumppump.messages.orders import OrderBook, OrderLeg, OrderSpec
from sumppump.messages.risk import StrategyAnalysed
from sumppump.strategies.analysis import LegPricing, estimate_commission, order_tick
from sumppump.strategies.coverage import CoverageVerdict
from sumppump.trading.holdings import (
    Choice,
    Structure,
    choose_structure,
    closing_legs,
    describe_leg,
    describe_position,
    group_structures,
    level2_after,
    natural_price,
    positions_after,
    realised_pnl,
)
from sumppump.trading.ledger import OrderLedger
from sumppump.trading.previews import FollowUp
from sumppump.trading.prices import (
    option_price_tick,
    price_multiplier,
    round_to_tick,
    snapshot_quotes,
    strategy_legs,
    structure_mid,
)
from sumppump.trading.refusals import refused
from sumppump.trading.stops import OCA_REDUCE, plan_stop_follow
from sumppump.trading.terms import open_terms, strategy_id

__all__ = [
    "ROLLABLE",
    "CloseTarget",
    "Plan",
    "RollTarget",
    "check_close_request",
    "check_roll",
    "close_target",
    "estimated_commission",
    "net_debit",
    "plan_close",
    "plan_roll",
    "price_tick",
    "roll_strategy",
    "roll_target",
    "tick_refusal",
]

#: Strategies a roll keeps (the structure is re-opened at the later expiry).
ROLLABLE: Final = frozenset(
    {"long call", "long put", "bull call spread", "bear put spread", "covered call", "short call"}
)
#: Structures whose roll moves only the option legs: a covered call's short call (held with
#: the shares, or on its own over shares held before); the shares stay, and the Level-2 rule
#: on the result (:func:`check_roll`) refuses a roll that would leave a call uncovered.
ROLL_OPTIONS_ONLY: Final = frozenset({"covered call", "short call"})


def roll_strategy(structure_name: str) -> str:
    """The catalog strategy the new position of a roll is analysed as."""
    return "covered_call" if structure_name in ROLL_OPTIONS_ONLY else strategy_id(structure_name)


@dataclass(frozen=True, slots=True)
class Plan:
    """A change's preview terms and the stops execution follows once it fills."""

    terms: CreatePreview
    follow_ups: tuple[FollowUp, ...] = ()


# ---------------------------------------------------------------------- close


@dataclass(frozen=True, slots=True)
class CloseTarget:
    """What a close takes away: ``units`` of ``structure`` through ``legs``, and the Level-2
    verdict on what remains."""

    symbol: str
    structure: Structure
    units: int
    cap: int
    legs: tuple[OrderLeg, ...]
    remains: CoverageVerdict

    @property
    def account(self) -> str:
        return self.structure.legs[0].position.account


def check_close_request(msg: PrepareClose) -> ExecutionRefused | None:
    """The arguments alone: a quantity, when given, of at least 1."""
    if msg.quantity is not None and msg.quantity < 1:
        return refused(ErrorCode.INVALID_ARGUMENT, "quantity must be at least 1", "or omit it")
    return None


def close_target(
    msg: PrepareClose, symbol: str, held: Sequence[PositionInfo], ledger: OrderLedger
) -> CloseTarget | ExecutionRefused:
    """The structure ``msg`` names among ``held`` (and the combos opened here), refused when
    ambiguous, too large, or when what remains would hold an uncovered short. The request
    passed :func:`check_close_request`."""
    structures = group_structures(held, ledger.opened_combos(symbol))
    chosen = choose_structure(msg.position, structures)
    if isinstance(chosen, Choice):
        return _choice_refusal(symbol, chosen, "close_position")
    structure = chosen
    cap = int(abs(structure.legs[0].position.quantity)) if structure.is_single else structure.units
    units = msg.quantity if msg.quantity is not None else structure.units
    if units > cap:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"quantity {units} is more than the {cap} held of {structure.describe()}",
            f"give a quantity of at most {cap}, or omit it to close all of it",
        )
    legs = closing_legs(structure)
    remains = level2_after(held, legs, units)
    refusal = _level2_refusal(remains, structure, structures, symbol)
    if refusal is not None:
        return refusal
    return CloseTarget(symbol, structure, units, cap, legs, remains)


def plan_close(
    target: CloseTarget,
    msg: PrepareClose,
    quotes: tuple[Quote, ...],
    book: OrderBook | None,
    ledger: OrderLedger,
    held: Sequence[PositionInfo],
    *,
    epoch: int,
    account_kind: AccountKind,
) -> Plan | ExecutionRefused:
    """The closing order at ``msg.limit_price`` or the mid rounded to the tick, joined to the
    position's stop group, with the cash, the realised P&L and what is held after."""
    structure, units, legs, symbol = target.structure, target.units, target.legs, target.symbol
    single = structure.is_single
    account = structure.legs[0].position.account
    draft = OrderSpec(order_ref="", account=account, symbol=symbol, legs=legs, quantity=units)
    mid = structure_mid(draft, quotes)
    natural = natural_price(legs, quotes)
    tick = price_tick(legs, mid)
    limit = msg.limit_price
    if limit is None:
        if mid is None:
            return refused(
                ErrorCode.NO_MARKET_DATA,
                "there is no two-sided quote to price the close at mid",
                "give limit_price, or retry when the market is quoting",
            )
        limit = round_to_tick(mid, tick)
        if single and limit < tick:
            limit = tick
    if single and not limit > 0:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            "a single contract's limit price must be positive",
            "give the price per share you want, e.g. the bid",
        )
    off_tick = tick_refusal(legs, limit, "limit_price")
    if off_tick is not None:
        return off_tick
    stops = plan_stop_follow(ledger, structure, units, book)
    order = msgspec.structs.replace(
        draft, limit_price=limit, oca_group=stops.group, oca_type=OCA_REDUCE
    )
    multiplier = price_multiplier(order)
    cash: float | None
    exits: dict[int, float]
    if single:
        sign = 1.0 if legs[0].action == "SELL" else -1.0
        cash = sign * limit * legs[0].multiplier * units
        exits = {legs[0].con_id: limit}
        concession = 0.0
    else:
        exits = {q.con_id: q.mid for q in quotes if q.mid is not None}
        concession = 0.0 if mid is None else (mid - limit) * multiplier * units
        at_mid = _cash_at(legs, exits, units)
        cash = None if at_mid is None else round(at_mid + concession, 2)
    pnl = realised_pnl(structure, units, exits, concession)
    commission = estimated_commission(legs, units, quotes)
    details = ChangeDetails(
        action="close",
        position=structure.describe(),
        quantity=units,
        closes_order_ref=structure.opened_by,
        held=target.cap,
        limit_price=limit,
        mid=mid,
        natural=natural,
        position_value=None if mid is None else (-mid if not single else mid),
        cash=None if cash is None else round(cash, 2),
        realised_pnl=pnl,
        commission=commission,
        holds_after=_holdings_words(positions_after(held, legs, units)),
        level2=target.remains.reason,
        stops=stops.follows,
    )
    notes = [*stops.warnings]
    if pnl is not None:
        notes.append(f"realised P&L at the limit about {pnl:+,.2f} before commission")
    terms = CreatePreview(
        order=order,
        symbol=symbol,
        kind="close",
        strategy=structure.name,
        description=f"close {structure.describe()}",
        max_loss=0.0,
        max_gain=None,
        net_debit=net_debit(order),
        quote_snapshot=quotes,
        epoch=epoch,
        account_kind=account_kind,
        min_tick=tick,
        warnings=tuple(notes),
        commission=commission,
        order_max_loss=0.0,
        details=details,
        opening_con_ids=(),
    )
    return Plan(terms, stops.follow_ups)


# ---------------------------------------------------------------------- roll


@dataclass(frozen=True, slots=True)
class RollTarget:
    """The held structure a roll moves to ``new_expiry`` at ``new_strikes``."""

    symbol: str
    structure: Structure
    structures: tuple[Structure, ...]
    new_expiry: str
    new_strikes: tuple[float, ...]

    @property
    def units(self) -> int:
        return self.structure.units

    @property
    def account(self) -> str:
        return self.structure.legs[0].position.account


def roll_target(
    msg: PrepareRoll, symbol: str, held: Sequence[PositionInfo], ledger: OrderLedger
) -> RollTarget | ExecutionRefused:
    """The long option or debit spread ``msg`` names, refused for another structure, an expiry
    that is not later, or a different number of strikes."""
    structures = group_structures(held, ledger.opened_combos(symbol))
    rollable = [s for s in structures if s.name in ROLLABLE]
    chosen = choose_structure(msg.position, rollable if msg.position is None else structures)
    if isinstance(chosen, Choice):
        return _choice_refusal(symbol, chosen, "roll_position")
    structure = chosen
    if structure.name not in ROLLABLE:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"{structure.describe()} is not a long option, a debit spread or a covered call; "
            "roll_position rolls only those",
            "close it with close_position and open the new position with calculate_strategy",
        )
    if structure.name in ROLL_OPTIONS_ONLY:
        # A covered call's short call is bought back and another sold; the shares stay.
        options = tuple(leg for leg in structure.legs if leg.position.sec_type == "OPT")
        structure = msgspec.structs.replace(structure, legs=options)
    old_expiry = max(leg.position.expiry or "" for leg in structure.legs)
    if msg.new_expiry <= old_expiry:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"the new expiry {msg.new_expiry} is not later than {old_expiry}",
            "roll to a later expiry (get_options_chain lists them)",
        )
    strikes = tuple(sorted(leg.position.strike or 0.0 for leg in structure.legs))
    new_strikes = tuple(sorted(msg.new_strikes)) if msg.new_strikes else strikes
    if len(new_strikes) != len(strikes):
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"a {structure.name} has {len(strikes)} strike(s); got {len(new_strikes)}",
            f"give {len(strikes)} strike(s) in new_strikes, or omit them to keep {strikes}",
        )
    return RollTarget(symbol, structure, tuple(structures), msg.new_expiry, new_strikes)


def check_roll(
    target: RollTarget, analysed: StrategyAnalysed, held: Sequence[PositionInfo]
) -> CoverageVerdict | ExecutionRefused:
    """The analysed new position must be options only (a covered call's shares are held, not
    traded), and what remains Level 2 (the new short call covered by the shares held)."""
    new_legs = roll_legs(target, analysed)
    if any(leg.sec_type != "OPT" for leg in new_legs):
        return refused(ErrorCode.INVALID_ARGUMENT, "a roll trades options only", "-")
    legs = (*closing_legs(target.structure), *new_legs)
    remains = level2_after(held, legs, target.units)
    refusal = _level2_refusal(
        remains, target.structure, target.structures, target.symbol, roll=True
    )
    return refusal if refusal is not None else remains


def roll_legs(target: RollTarget, analysed: StrategyAnalysed) -> tuple[OrderLeg, ...]:
    """The legs a roll opens: the analysed structure's, without the shares of a covered call
    (they are already held)."""
    legs = analysed.order.legs
    if target.structure.name in ROLL_OPTIONS_ONLY:
        legs = tuple(leg for leg in legs if leg.sec_type == "OPT")
    return legs


def plan_roll(
    target: RollTarget,
    msg: PrepareRoll,
    analysed: StrategyAnalysed,
    remains: CoverageVerdict,
    old_quotes: tuple[Quote, ...],
    book: OrderBook | None,
    ledger: OrderLedger,
    held: Sequence[PositionInfo],
    *,
    epoch: int,
    account_kind: AccountKind,
) -> Plan | ExecutionRefused:
    """One guaranteed combo that sells the held legs and buys the analysed ones, at
    ``msg.limit_price`` or the mid; the terms are the new position's (:func:`open_terms`)."""
    structure, units, symbol = target.structure, target.units, target.symbol
    options_only = structure.name in ROLL_OPTIONS_ONLY
    old_legs = closing_legs(structure)
    new_legs = roll_legs(target, analysed)
    legs = (*old_legs, *new_legs)
    quotes = _merge_quotes(old_quotes, snapshot_quotes(analysed.quote_snapshot))
    account = structure.legs[0].position.account
    draft = OrderSpec(order_ref="", account=account, symbol=symbol, legs=legs, quantity=units)
    mid = structure_mid(draft, quotes)
    if msg.limit_price is None and mid is None:
        return refused(
            ErrorCode.NO_MARKET_DATA,
            "there is no two-sided quote on every leg to price the roll at mid",
            "give limit_price (the roll's net per unit), or retry when the market quotes",
        )
    limit = msg.limit_price if msg.limit_price is not None else round_to_tick(mid or 0.0, 0.01)
    stops = plan_stop_follow(ledger, structure, units, book)
    order = msgspec.structs.replace(
        draft, limit_price=limit, oca_group=stops.group, oca_type=OCA_REDUCE
    )
    multiplier = price_multiplier(order)
    exits = {q.con_id: q.mid for q in old_quotes if q.mid is not None}
    old_mid = structure_mid(
        OrderSpec(order_ref="", account=account, symbol=symbol, legs=old_legs, quantity=1),
        old_quotes,
    )
    # The roll's concession against mid is counted on the closing side.
    concession = 0.0 if mid is None else (mid - limit) * multiplier * units
    pnl = realised_pnl(structure, units, exits, concession)
    analysis = analysed.analysis
    commission = estimated_commission(legs, units, quotes)
    cash = round(-limit * multiplier * units, 2)
    details = ChangeDetails(
        action="roll",
        position=structure.describe(),
        quantity=units,
        closes_order_ref=structure.opened_by,
        held=structure.units,
        limit_price=limit,
        mid=mid,
        natural=natural_price(legs, quotes),
        position_value=None if old_mid is None else -old_mid,
        cash=cash,
        realised_pnl=pnl,
        commission=commission,
        holds_after=_holdings_words(positions_after(held, legs, units)),
        level2=remains.reason,
        stops=stops.follows,
    )
    side = "debit" if limit >= 0 else "credit"
    notes = [
        *stops.warnings,
        f"roll net {side} {abs(limit):.2f} per unit ({abs(cash):,.2f} in all)"
        + (
            f"; the old position is worth {-old_mid:.2f} per unit at mid"
            if old_mid is not None
            else ""
        ),
        f"resulting position: {analysis.quantity} × {structure.name} {target.new_expiry} "
        f"{'/'.join(f'{k:g}' for k in target.new_strikes)}",
        "after it fills you will be asked to set a stop for the new position",
        *(
            [
                "max loss, max gain and breakevens are the covered call's as if the shares were "
                "bought now; the shares held stay"
            ]
            if options_only
            else []
        ),
        *analysed.warnings,
    ]
    if stops.follows:
        notes.append("the old position's stop orders end with it (see details.stops)")
    terms = msgspec.structs.replace(
        open_terms(analysed, structure.name),
        order=order,
        symbol=symbol,
        kind="roll",
        description=f"roll {structure.describe()} to {target.new_expiry}",
        net_debit=limit,
        quote_snapshot=quotes,
        account_kind=account_kind,
        epoch=epoch,
        min_tick=0.01,
        warnings=tuple(notes),
        commission=commission,
        # A covered call's roll adds at most its debit: assignment delivers the shares held.
        shares_held_used=round(units * multiplier) if options_only else 0,
        order_max_loss=round(max(limit, 0.0) * multiplier * units + commission, 2)
        if options_only
        else analysis.max_loss_with_commission,
        details=details,
        opening_con_ids=tuple(leg.con_id for leg in new_legs),
    )
    return Plan(terms, stops.follow_ups)


# ---------------------------------------------------------------------- helpers


def tick_refusal(legs: Sequence[OrderLeg], price: float, name: str) -> ExecutionRefused | None:
    """``INVALID_ARGUMENT`` for a price the contract does not trade at (the rule
    ``calculate_strategy`` applies: :func:`~sumppump.strategies.analysis.order_tick`), with
    the two nearest valid prices; IB would reject it only at execute time."""
    tick = order_tick(strategy_legs(legs), price)
    steps = round(price / tick, 6)
    if abs(steps - round(steps)) < 1e-6:
        return None
    lower = math.floor(steps) * tick
    return refused(
        ErrorCode.INVALID_ARGUMENT,
        f"{name} {price:g} is not a multiple of the tick {tick:g}",
        f"use {lower:.2f} or {lower + tick:.2f}",
    )


def price_tick(legs: Sequence[OrderLeg], mid: float | None) -> float:
    if len(legs) == 1 and legs[0].sec_type == "OPT":
        return option_price_tick(mid or 0.0)
    return 0.01


def net_debit(order: OrderSpec) -> float:
    """Per unit, positive paid, negative received: a single SELL is a credit."""
    limit = order.limit_price or 0.0
    if len(order.legs) == 1 and order.legs[0].action == "SELL":
        return -limit
    return limit


def _cash_at(legs: Sequence[OrderLeg], prices: dict[int, float], units: int) -> float | None:
    total = 0.0
    for leg in legs:
        price = prices.get(leg.con_id)
        if price is None:
            return None
        sign = 1 if leg.action == "SELL" else -1
        total += sign * price * leg.ratio * leg.multiplier * units
    return total


def estimated_commission(legs: Sequence[OrderLeg], units: int, quotes: Sequence[Quote]) -> float:
    mids = {q.con_id: q.mid for q in quotes}
    priced = [
        LegPricing(
            leg=plain,
            position=leg.ratio * units,
            multiplier=int(leg.multiplier),
            bid=None,
            ask=None,
            mid=mids.get(leg.con_id),
            natural=None,
        )
        for leg, plain in zip(legs, strategy_legs(legs), strict=True)
    ]
    return estimate_commission(priced).total


def _holdings_words(after: dict[int, tuple[PositionInfo | OrderLeg, float]]) -> tuple[str, ...]:
    words = []
    for what, qty in after.values():
        if abs(qty) <= 1e-9:
            continue
        name = describe_position(what) if isinstance(what, PositionInfo) else describe_leg(what)
        words.append(f"{qty:+g} {name}")
    return tuple(words) or ("nothing in this symbol",)


def _merge_quotes(*groups: Sequence[Quote]) -> tuple[Quote, ...]:
    merged: dict[int, Quote] = {}
    for group in groups:
        for q in group:
            merged.setdefault(q.con_id, q)
    return tuple(merged.values())


def _choice_refusal(symbol: str, choice: Choice, tool: str) -> ExecutionRefused:
    if not choice.options:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"{choice.message} ({symbol})",
            "get_positions shows what is held",
        )
    first = choice.options[0].split(":", 1)[0]
    return refused(
        ErrorCode.INVALID_ARGUMENT,
        f"{choice.message}. Held in {symbol}: " + "; ".join(choice.options),
        f'name one with position, e.g. {tool}(symbol="{symbol}", position="{first}")',
    )


def _level2_refusal(
    verdict: CoverageVerdict,
    structure: Structure,
    structures: Sequence[Structure],
    symbol: str,
    *,
    roll: bool = False,
) -> ExecutionRefused | None:
    """``NOT_PERMITTED_LEVEL2`` when ``verdict`` (the rule on what remains after the order)
    found an uncovered short, with the combo to close instead when one contains this
    position."""
    if verdict.allowed:
        return None
    parents = [s for s in structures if len(s.legs) > 1 and s.con_ids & structure.con_ids]
    if parents and not roll:
        parent = parents[0]
        hint = (
            f"close the whole {parent.name} as one order instead: "
            f'close_position(symbol="{symbol}", position="{parent.key}")'
        )
    else:
        hint = "close the short leg first (buying it back is always allowed), then this"
    what = "rolling" if roll else "closing"
    return refused(
        ErrorCode.NOT_PERMITTED_LEVEL2,
        f"{what} {structure.describe()} would leave an uncovered short: {verdict.reason}",
        hint,
        reason="level2_after",
    )
