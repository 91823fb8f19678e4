"""Protective stops (pure): the suggestion after a fill, the stop-loss prompt, the stop a person
asks for (a single position or a combo opened here), the OCA group a stop joins, and what a
close or roll does to the stops of its position.

Protective stops follow their position. Every stop SumpPump places carries an OCA group
(``ocaType`` 2: when one order of the group fills, IB reduces the others by the quantity filled
and cancels those reduced to nothing), shared by every stop of that position. A close or roll
of the position joins the group, so IB itself cancels or shrinks the stop in the step that
fills the close, with no window in which the stop could open a new position. A stop that
cannot share the group (a stock stop sized in shares against a combo sized in units, a second
group) is followed by execution instead (:class:`~sumppump.trading.previews.FollowUp`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from sumppump.messages.chain_cache import LegKey
from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    AccountKind,
    CreatePreview,
    ExecutionRefused,
    PrepareStopLoss,
    StopFollow,
    StopLossPrompt,
    SuggestedCall,
)
from sumppump.messages.orders import OrderBook, OrderLeg, OrderSpec
from sumppump.trading.holdings import (
    Structure,
    closing_legs,
    describe_leg,
    describe_position,
    position_names,
)
from sumppump.trading.ib_shapes import doctor_refusal
from sumppump.trading.ledger import OrderLedger, OrderRecord
from sumppump.trading.previews import FollowUp
from sumppump.trading.prices import (
    mid_or_last,
    option_leg_keys,
    option_price_tick,
    price_multiplier,
    round_to_tick,
    structure_mid,
)
from sumppump.trading.reconciliation import is_done, state_of
from sumppump.trading.refusals import refused

__all__ = [
    "OCA_REDUCE",
    "OPTION_STOP_FRACTION",
    "STOCK_STOP_FRACTION",
    "ComboStop",
    "FollowStep",
    "SingleStop",
    "StopPlan",
    "check_stop_request",
    "choose_position",
    "closing_combo_legs",
    "combo_stop",
    "follow_steps",
    "joined_stop_group",
    "new_oca_group",
    "plan_combo_stop",
    "plan_single_stop",
    "plan_stop",
    "plan_stop_follow",
    "single_stop",
    "spec_words",
    "stop_group",
    "stop_loss_prompt",
    "stop_target",
    "stored_terms",
    "suggest_stop",
]

#: IB ``ocaType`` 2: the other orders of the group are reduced by the quantity filled (with
#: block, so the group cannot overfill); an order reduced to nothing is cancelled.
OCA_REDUCE: Final = 2
#: Stop suggestions: give up half the premium of long options/debit structures, 8 % of stock.
OPTION_STOP_FRACTION: Final = 0.5
STOCK_STOP_FRACTION: Final = 0.08


def new_oca_group() -> str:
    """A fresh OCA group name for a position's protective orders."""
    return "SP-" + secrets.token_hex(6)


def suggest_stop(order: OrderSpec, avg_fill_price: float) -> tuple[float, str]:
    """A protective stop price for a just-filled opening order, per share (per unit for a
    combo), and why: 50 % of the premium paid for options and debit structures, 8 % below the
    fill for stock. Single options are rounded to an increment every option market rule
    accepts (:func:`~sumppump.trading.prices.option_price_tick`); combos and stock to 0.01."""
    has_options = any(leg.sec_type == "OPT" for leg in order.legs)
    single_option = has_options and len(order.legs) == 1

    def tick_for(price: float) -> float:
        return option_price_tick(price) if single_option else 0.01

    if single_option and order.legs[0].action == "SELL":
        raw = avg_fill_price * (1 + OPTION_STOP_FRACTION)
        stop = round_to_tick(raw, tick_for(raw))
        return stop, "buy back if the short option's price rises 50 % above what you received"
    if has_options and not any(leg.sec_type == "STK" for leg in order.legs):
        raw = abs(avg_fill_price) * OPTION_STOP_FRACTION
        stop = max(tick_for(raw), round_to_tick(raw, tick_for(raw)))
        return stop, "exit if the position loses half of the premium paid"
    raw = abs(avg_fill_price) * (1 - STOCK_STOP_FRACTION)
    stop = max(0.01, round_to_tick(raw, 0.01))
    return stop, "exit 8 % below the fill price (below recent support is a good refinement)"


def stop_loss_prompt(ledger: OrderLedger, record: OrderRecord) -> StopLossPrompt | None:
    """A stop-loss prompt when an opening order's filled quantity grew since the last one (the
    record remembers it was prompted)."""
    order = record.tracked
    if record.spec is None or record.kind not in ("open", "roll"):
        return None
    if order.filled <= record.prompted_filled + 1e-9 or order.avg_fill_price is None:
        return None
    record.prompted_filled = order.filled
    spec, entry = ledger.opened_position(record.ref, order.avg_fill_price)
    stop, rationale = suggest_stop(spec, entry)
    if len(spec.legs) > 1:
        position = record.ref
    elif spec.legs[0].sec_type == "OPT":
        position = str(spec.legs[0].con_id)
    else:
        position = "stock"
    call = SuggestedCall(
        tool="set_stop_loss",
        arguments={"symbol": spec.symbol, "stop_price": stop, "position": position},
    )
    prompt = StopLossPrompt(
        order_ref=record.ref,
        symbol=spec.symbol,
        position=position,
        filled=order.filled,
        avg_fill_price=order.avg_fill_price,
        suggested_stop=stop,
        rationale=rationale,
        call=call,
        text=(
            f"Filled {order.filled:g} of {order.quantity:g} at {order.avg_fill_price:g}"
            + (f" (entry {entry:g} per unit)" if entry != order.avg_fill_price else "")
            + ". "
            f"Set a stop loss? Suggested stop {stop:g} ({rationale}): "
            f'set_stop_loss(symbol="{spec.symbol}", stop_price={stop:g}, '
            f'position="{position}")'
        ),
    )
    record.last_prompt = prompt
    return prompt


# ---------------------------------------------------------------- OCA groups and follow-ups


def stop_group(ledger: OrderLedger, legs: Sequence[OrderLeg]) -> str:
    """The OCA group a new stop on ``legs`` joins: that of a working stop, close or roll of
    ours on the same contracts, or a fresh one. Only orders sized one contract per unit
    share a group (IB reduces the others by the filled quantity, in each order's units),
    so a stock stop never joins a buy-write's."""
    wanted = {leg.con_id: leg.ratio for leg in legs}
    for record, spec in ledger.with_spec():
        if record.kind not in ("stop", "close", "roll") or not record.working:
            continue
        if not spec.oca_group:
            continue
        shared = [leg for leg in spec.legs if leg.con_id in wanted]
        if shared and all(leg.ratio == 1 and wanted[leg.con_id] == 1 for leg in shared):
            return spec.oca_group
    return new_oca_group()


def joined_stop_group(ledger: OrderLedger, order: OrderSpec) -> tuple[OrderSpec, tuple[str, ...]]:
    """An opening order that sells a contract one of our stops sells (or buys back one it
    buys back) nets against the protected position: it joins that stop's OCA group, so IB
    shrinks the stop as the order fills and no stop is left on a position that is gone.
    Where the group cannot be shared (sizes in different units) the preview warns."""
    legs = {leg.con_id: leg for leg in order.legs}
    notes: list[str] = []
    for record, spec in ledger.with_spec():
        if record.kind != "stop" or not record.working:
            continue
        shared = [
            leg for leg in spec.legs if leg.con_id in legs and legs[leg.con_id].action == leg.action
        ]
        if not shared:
            continue
        names = ", ".join(describe_leg(leg) for leg in shared)
        if (
            spec.oca_group
            and not order.oca_group
            and all(leg.ratio == 1 and legs[leg.con_id].ratio == 1 for leg in shared)
        ):
            order = msgspec.structs.replace(order, oca_group=spec.oca_group, oca_type=OCA_REDUCE)
            notes.append(
                f"this order trades {names}, which your stop {record.ref} protects: IB shrinks "
                "that stop by what fills (shared OCA group)"
            )
        else:
            notes.append(
                f"this order trades {names}, which your stop {record.ref} protects: the stop "
                "stays as it is; change it with modify_order or cancel_order"
            )
    return order, tuple(notes)


def stored_terms(
    terms: CreatePreview,
    ledger: OrderLedger,
    approval_mode: str | None,
    *,
    ib_refusal: Callable[[OrderSpec], str | None] = doctor_refusal,
) -> CreatePreview | ExecutionRefused:
    """``terms`` as stored: an opening order joins the OCA group of the stops it nets against
    (:func:`joined_stop_group`, with the preview's warning), and approval mode ``tws`` stages
    every order untransmitted; an untransmitted order in another mode is refused. When IB
    refused the order's shape on the account today (``ib_refusal``; by default the doctor's
    kept report), that is the preview's first warning, so it is said up front rather than
    discovered at execute."""
    if terms.kind == "open" and not terms.order.oca_group:
        order, joined = joined_stop_group(ledger, terms.order)
        terms = msgspec.structs.replace(terms, order=order, warnings=(*terms.warnings, *joined))
    refusal = ib_refusal(terms.order)
    if refusal:
        terms = msgspec.structs.replace(terms, warnings=(refusal, *terms.warnings))
    if approval_mode == "tws":
        staged = msgspec.structs.replace(terms.order, transmit=False)
        terms = msgspec.structs.replace(terms, order=staged)
    if not terms.order.transmit and approval_mode != "tws":
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            "only approval mode 'tws' stages orders without transmitting them",
            "leave transmit on",
        )
    return terms


@dataclass(frozen=True, slots=True)
class StopPlan:
    """What happens to the stops protecting a structure when part of it is closed: the OCA
    group the closing order joins, what the preview says for each stop, the stops execution
    follows itself, and warnings."""

    group: str
    follows: tuple[StopFollow, ...]
    follow_ups: tuple[FollowUp, ...]
    warnings: tuple[str, ...]


def plan_stop_follow(
    ledger: OrderLedger, structure: Structure, units: int, book: OrderBook | None
) -> StopPlan:
    """The :class:`StopPlan` for closing (or rolling away) ``units`` of ``structure``;
    ``book`` is TWS's working orders (``None``: not readable, the preview says so)."""
    con_ids = structure.con_ids
    live = {r.order_ref: r for r in (book.open if book else ())}
    closing = {leg.con_id: leg for leg in closing_legs(structure)}
    group = ""
    follows: list[StopFollow] = []
    follow_ups: list[FollowUp] = []
    for record, spec in ledger.with_spec():
        if record.kind != "stop" or not record.working:
            continue
        # A stop is affected when it trades a contract of the structure the way the close
        # does (it sells what the close sells): a stop on one leg, a spread's combo stop,
        # or a spread's combo stop when one of its legs is closed alone.
        shared = [
            leg
            for leg in spec.legs
            if leg.con_id in closing and leg.action == closing[leg.con_id].action
        ]
        if not shared:
            continue
        ib = live.get(record.ref)
        size = (ib.quantity - ib.filled) if ib else float(spec.quantity)
        # Stop units that one unit of the close takes away.
        per_unit = max(closing[leg.con_id].ratio / leg.ratio for leg in shared)
        after = max(0.0, size - per_unit * units)
        how: Literal["cancelled", "reduced"] = "cancelled" if after <= 0 else "reduced"
        follows.append(
            StopFollow(
                order_ref=record.ref,
                description=spec_words(spec),
                how=how,
                quantity_before=size,
                quantity_after=after,
            )
        )
        # IB reduces a group's orders by the quantity filled, in the filled order's units:
        # only stops sized one contract per unit can share the group.
        if per_unit == 1.0 and spec.oca_group and group in ("", spec.oca_group):
            group = spec.oca_group
        else:
            follow_ups.append(FollowUp(after_ref="", stop_ref=record.ref, per_unit=per_unit))
    if not group:
        # A group of its own, so a stop set later on this position can join it.
        group = stop_group(ledger, closing_legs(structure))
    warnings: list[str] = []
    for ib in book.open if book else ():
        if ib.order_ref in ledger or is_done(state_of(ib.status)):
            continue
        if set(ib.leg_con_ids) & con_ids:
            follows.append(
                StopFollow(
                    order_ref=ib.order_ref or f"id {ib.order_id}",
                    description=f"{ib.action} {ib.quantity:g} {ib.order_type}",
                    how="not_ours",
                    quantity_before=ib.quantity - ib.filled,
                    quantity_after=ib.quantity - ib.filled,
                )
            )
            warnings.append(
                f"order {ib.order_id} ({ib.action} {ib.quantity:g} "
                f"{ib.order_type}) on this position was not placed by SumpPump and stays "
                "working: cancel or change it in TWS, or it may open a new position"
            )
    if book is None:
        warnings.append(
            "TWS's working orders could not be read: orders placed outside SumpPump on this "
            "position were not checked"
        )
    return StopPlan(group, tuple(follows), tuple(follow_ups), tuple(warnings))


@dataclass(frozen=True, slots=True)
class FollowStep:
    """One stop to cancel (``smaller is None``) or to shrink to ``smaller`` now that the
    close or roll it follows is done."""

    stop: OrderRecord
    order_id: int
    smaller: OrderSpec | None


def follow_steps(ledger: OrderLedger, ref: str) -> list[FollowStep]:
    """The steps for the stops the close or roll ``ref`` takes along once it is done (its
    follow-ups are consumed): cancel a stop the fill used up, shrink one it reduced. Stops no
    longer working, or not yet acknowledged, are left alone."""
    order = ledger.get(ref)
    steps: list[FollowStep] = []
    for follow in ledger.take_follow_ups(ref):
        stop = ledger.get(follow.stop_ref)
        if order is None or stop is None or stop.spec is None or not stop.working:
            continue
        order_id = stop.tracked.order_id
        if order_id is None:
            continue
        left = round(stop.spec.quantity - follow.per_unit * order.tracked.filled)
        smaller = (
            None
            if left <= stop.tracked.filled + 1e-9
            else msgspec.structs.replace(stop.spec, quantity=left)
        )
        steps.append(FollowStep(stop, order_id, smaller))
    return steps


def spec_words(spec: OrderSpec) -> str:
    legs = ", ".join(f"{leg.action} {leg.ratio} {describe_leg(leg)}" for leg in spec.legs)
    return f"{spec.quantity} × {spec.order_type} ({legs})"


# ---------------------------------------------------------------- set_stop_loss


def check_stop_request(msg: PrepareStopLoss) -> ExecutionRefused | None:
    """The arguments alone: a positive stop price, a percentage strictly between 0 and 100."""
    if msg.stop_price is not None and msg.stop_price <= 0:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            "stop_price must be positive",
            "give a stop price above zero, or stop_percent (e.g. 50 for half the premium)",
        )
    if msg.stop_percent is not None and not 0 < msg.stop_percent < 100:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            "stop_percent must be between 0 and 100",
            "give the share of the position's value to risk, e.g. 50",
        )
    return None


def _describe(p: PositionInfo) -> str:
    return f"{p.quantity:g} {describe_position(p)}"


def choose_position(
    msg: PrepareStopLoss, held: Sequence[PositionInfo], ledger: OrderLedger, symbol: str
) -> PositionInfo | tuple[str, OrderSpec] | ExecutionRefused:
    """The position to protect: a held single position, or a combo opened here (its ref and
    the order with only the legs it opened)."""
    combos: dict[str, OrderSpec] = {}
    for combo in ledger.opened_combos(symbol):
        record = ledger.get(combo.order_ref)
        assert record is not None and record.spec is not None  # opened_combos lists known specs
        combos[combo.order_ref] = msgspec.structs.replace(record.spec, legs=combo.legs)
    target = _choose(msg.position, held, combos)
    if isinstance(target, str):
        names = [f"{p.con_id} ({_describe(p)})" for p in held] + [
            f"{ref} (spread)" for ref in combos
        ]
        hint = "position can be: " + ", ".join(names) if names else "open a position first"
        return refused(ErrorCode.INVALID_ARGUMENT, target, hint)
    return target


def _choose(
    wanted: str | None, held: Sequence[PositionInfo], combos: dict[str, OrderSpec]
) -> PositionInfo | tuple[str, OrderSpec] | str:
    if wanted is not None and wanted.strip():
        key = " ".join(wanted.strip().split()).upper()
        for ref, spec in combos.items():
            if ref.upper() == key:
                return ref, spec
        matches = [p for p in held if key in position_names(p)]
        if len(matches) == 1:
            return matches[0]
        return f"no single held position matches {wanted!r}"
    if len(combos) == 1 and not [
        p for p in held if p.con_id not in {leg.con_id for s in combos.values() for leg in s.legs}
    ]:
        ref, spec = next(iter(combos.items()))
        return ref, spec
    if len(held) == 1 and not combos:
        return held[0]
    if not held and not combos:
        return "no position in this symbol to protect"
    return "several positions are held; name one with position"


def _right(value: str | None) -> Literal["C", "P"] | None:
    return "C" if value == "C" else "P" if value == "P" else None


@dataclass(frozen=True, slots=True)
class SingleStop:
    """A stop on one held position, before the market is checked."""

    position: PositionInfo
    stop: float
    entry: float
    multiplier: float
    long: bool
    keys: tuple[LegKey, ...]

    @property
    def is_option(self) -> bool:
        return self.position.sec_type == "OPT"

    @property
    def symbol(self) -> str:
        return self.position.symbol

    @property
    def account(self) -> str:
        return self.position.account


def single_stop(msg: PrepareStopLoss, position: PositionInfo) -> SingleStop | ExecutionRefused:
    """The stop price for one held position (given, a percentage, or the default fraction of
    the entry), rounded to a tick every market accepts, and the option leg to quote."""
    is_option = position.sec_type == "OPT"
    multiplier = position.multiplier if is_option else 1.0
    entry = position.avg_cost / multiplier if is_option else position.avg_cost
    long = position.quantity > 0
    default_fraction = OPTION_STOP_FRACTION if is_option else STOCK_STOP_FRACTION
    fraction = (msg.stop_percent / 100) if msg.stop_percent is not None else default_fraction
    if msg.stop_price is not None:
        stop = msg.stop_price
    else:
        stop = entry * (1 - fraction) if long else entry * (1 + fraction)
    stop = round_to_tick(stop, option_price_tick(stop) if is_option else 0.01)
    if stop <= 0:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            "the stop price rounds to zero",
            "choose a stop price of at least one tick (0.01 or 0.05)",
        )
    keys: tuple[LegKey, ...] = ()
    if is_option:
        right = _right(position.right)
        if position.expiry is None or position.strike is None or right is None:
            return refused(
                ErrorCode.INVALID_ARGUMENT,
                "the option position is incomplete",
                "check get_positions: name a position that has its expiry, strike and right",
            )
        keys = (LegKey(expiry=position.expiry, strike=position.strike, right=right),)
    return SingleStop(position, stop, entry, multiplier, long, keys)


def plan_single_stop(
    target: SingleStop,
    quotes: tuple[Quote, ...],
    ledger: OrderLedger,
    *,
    epoch: int,
    account_kind: AccountKind,
) -> CreatePreview | ExecutionRefused:
    """The ``STP`` (GTC) that sells a long position or buys back a short one, refused when the
    market is already through the stop."""
    position, stop, long = target.position, target.stop, target.long
    market = mid_or_last(next((q for q in quotes if q.con_id == position.con_id), None))
    if market is not None and ((long and stop >= market) or (not long and stop <= market)):
        side = "below" if long else "above"
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"a stop at {stop:g} would trigger at once: the market is {market:g}",
            f"choose a stop {side} {market:g}",
        )
    right = _right(position.right) if target.is_option else None
    leg = OrderLeg(
        con_id=position.con_id,
        symbol=position.symbol,
        sec_type="OPT" if target.is_option else "STK",
        action="SELL" if long else "BUY",
        ratio=1,
        multiplier=target.multiplier,
        expiry=position.expiry,
        strike=position.strike,
        right=right,
    )
    quantity = int(abs(position.quantity))
    order = OrderSpec(
        order_ref="",
        account=position.account,
        symbol=position.symbol,
        legs=(leg,),
        quantity=quantity,
        order_type="STP",
        stop_price=stop,
        tif="GTC",
        oca_group=stop_group(ledger, (leg,)),
        oca_type=OCA_REDUCE,
    )
    entry = target.entry
    loss = (entry - stop if long else stop - entry) * target.multiplier * quantity
    return CreatePreview(
        order=order,
        symbol=position.symbol,
        kind="stop",
        strategy="",
        description=f"protective stop for {_describe(position)}",
        max_loss=round(max(loss, 0.0), 2),
        max_gain=None,
        net_debit=0.0,
        quote_snapshot=quotes,
        epoch=epoch,
        account_kind=account_kind,
        warnings=(
            "a stop (STP) becomes a market order when triggered: in a gap the fill can be "
            "worse than the stop price",
            "an option stop triggers on IB's default for US options (double bid/ask), a stock "
            "stop on the last trade",
        ),
    )


@dataclass(frozen=True, slots=True)
class ComboStop:
    """A stop on a combo opened here (``ref``), before the market is checked."""

    ref: str
    spec: OrderSpec
    stop: float
    entry: float
    quantity: int

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def account(self) -> str:
        return self.spec.account

    @property
    def keys(self) -> tuple[LegKey, ...]:
        return option_leg_keys(self.spec.legs)


def combo_stop(msg: PrepareStopLoss, ref: str, spec: OrderSpec, ledger: OrderLedger) -> ComboStop:
    """The stop and its limit for the combo ``ref`` (``spec``: the legs it opened), from the
    entry per unit (the fill, for a roll plus the old position's value)."""
    record = ledger.get(ref)
    assert record is not None
    tracked = record.tracked
    _opened, entry = ledger.opened_position(ref, tracked.avg_fill_price or spec.limit_price or 0.0)
    entry = abs(entry)
    fraction = (msg.stop_percent / 100) if msg.stop_percent is not None else OPTION_STOP_FRACTION
    stop = msg.stop_price if msg.stop_price is not None else entry * (1 - fraction)
    stop = round_to_tick(stop, 0.01)
    return ComboStop(ref, spec, stop, entry, max(1, int(tracked.filled)))


def plan_combo_stop(
    target: ComboStop,
    quotes: tuple[Quote, ...],
    ledger: OrderLedger,
    *,
    epoch: int,
    account_kind: AccountKind,
) -> CreatePreview | ExecutionRefused:
    """A guaranteed BAG ``STP`` that closes the combo (legs reversed, net price negative =
    credit received), refused when the spread is already worth less than the stop.

    IB's order-type table lists BAG for STP but not for STP LMT, and a type a contract does
    not allow is refused with 387 (IBKR Campus *Order Types*; notes/ib-behaviour.md §a). IB
    simulates combo stops and triggers them on "Last" by default, which option combos rarely
    print, so the order desk sends them with ``triggerMethod`` 4 (bid/ask)."""
    spec, stop = target.spec, target.stop
    value = structure_mid(spec, quotes)
    if value is not None and stop >= value:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"a stop at {stop:g} would trigger at once: the spread is worth {value:g}",
            f"choose a stop below {value:g}",
        )
    # The closing combo is bought at a negative price (a credit): a BUY stop at -stop
    # triggers when -value rises to -stop, i.e. when the spread falls to the stop.
    closing = closing_combo_legs(spec)
    order = OrderSpec(
        order_ref="",
        account=spec.account,
        symbol=spec.symbol,
        legs=closing,
        quantity=target.quantity,
        order_type="STP",
        stop_price=-stop,
        tif="GTC",
        oca_group=stop_group(ledger, closing),
        oca_type=OCA_REDUCE,
    )
    loss = (target.entry - stop) * price_multiplier(spec) * target.quantity
    return CreatePreview(
        order=order,
        symbol=spec.symbol,
        kind="stop",
        description=f"protective stop for the spread opened as {target.ref}",
        max_loss=round(max(loss, 0.0), 2),
        max_gain=None,
        net_debit=0.0,
        quote_snapshot=quotes,
        epoch=epoch,
        account_kind=account_kind,
        warnings=(
            "a combo stop (STP) is held by IB itself (simulated, not exchange-native) and "
            "triggers when the combo's bid/ask reaches the stop (triggerMethod 4); check the "
            "working order in TWS",
            "when triggered it closes the spread at market: in a gap the fill can be worse "
            "than the stop price, so the loss can exceed the figure shown",
        ),
    )


def stop_target(
    msg: PrepareStopLoss, target: PositionInfo | tuple[str, OrderSpec], ledger: OrderLedger
) -> SingleStop | ComboStop | ExecutionRefused:
    """The stop for the position :func:`choose_position` picked."""
    if isinstance(target, PositionInfo):
        return single_stop(msg, target)
    return combo_stop(msg, *target, ledger)


def plan_stop(
    target: SingleStop | ComboStop,
    quotes: tuple[Quote, ...],
    ledger: OrderLedger,
    *,
    epoch: int,
    account_kind: AccountKind,
) -> CreatePreview | ExecutionRefused:
    """The stop's preview terms, once its legs' quotes are read."""
    if isinstance(target, SingleStop):
        return plan_single_stop(target, quotes, ledger, epoch=epoch, account_kind=account_kind)
    return plan_combo_stop(target, quotes, ledger, epoch=epoch, account_kind=account_kind)


def closing_combo_legs(spec: OrderSpec) -> tuple[OrderLeg, ...]:
    """The combo's legs reversed (what closes it)."""
    return tuple(
        msgspec.structs.replace(leg, action="SELL" if leg.action == "BUY" else "BUY")
        for leg in spec.legs
    )
