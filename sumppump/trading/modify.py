"""Modify (pure): the planner of ``modify_order``'s preview, a change of a working order of
ours (limit, quantity or stop price) with the risk before and after. Executing it re-sends the
order under its own IB id and orderRef, after the same checks as any order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    AccountKind,
    ChangeDetails,
    CreatePreview,
    ExecutionRefused,
    OrderTerms,
    PrepareModify,
)
from sumppump.messages.orders import OrderBook, OrderLeg, OrderSpec
from sumppump.trading.changes import (
    Plan,
    estimated_commission,
    net_debit,
    price_tick,
    tick_refusal,
)
from sumppump.trading.holdings import (
    describe_leg,
    level2_after,
    natural_price,
)
from sumppump.trading.ledger import OrderLedger, OrderMeta, OrderRecord
from sumppump.trading.previews import is_preview_id
from sumppump.trading.prices import (
    price_multiplier,
    round_to_tick,
    structure_mid,
)
from sumppump.trading.reconciliation import TrackedOrder
from sumppump.trading.refusals import refused
from sumppump.trading.stops import spec_words

__all__ = ["ModifyDraft", "modify_draft", "modify_target", "plan_modify"]


def modify_target(msg: PrepareModify, ledger: OrderLedger) -> OrderRecord | ExecutionRefused:
    """The working order of ours ``msg`` changes (with a known spec), or why not."""
    ref = msg.order_ref.strip()
    if not is_preview_id(ref):
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"{ref!r} is not an order placed by SumpPump; it cannot be changed here",
            "change orders placed elsewhere in TWS; get_open_orders lists ours",
            order_ref=ref,
        )
    record = ledger.get(ref)
    if record is None or record.spec is None:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"no order of ours has order_ref {ref}",
            "use the order_ref from execute_trade or get_open_orders",
            order_ref=ref,
        )
    if not record.working:
        state = record.state if record.state != "submitting" else "not yet acknowledged"
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            f"order {ref} is {state}; only a working order can be changed",
            "get_open_orders lists what is still working",
            order_ref=ref,
            reason="not_modifiable",
        )
    if msg.limit_price is None and msg.quantity is None and msg.stop_price is None:
        return refused(
            ErrorCode.INVALID_ARGUMENT,
            "nothing to change",
            "give limit_price, quantity or stop_price",
        )
    return record


@dataclass(frozen=True, slots=True)
class ModifyDraft:
    """A change's order before the account is read: ``spec`` as last accepted, ``current`` as
    TWS holds it (IB may have shrunk it through an OCA group), ``new`` with the change."""

    record: OrderRecord
    spec: OrderSpec
    current: OrderSpec
    new: OrderSpec


def modify_draft(
    msg: PrepareModify, record: OrderRecord, book: OrderBook | None
) -> ModifyDraft | ExecutionRefused:
    """The changed order, refused when a field does not fit the order type, a price is off
    the tick, or nothing would change."""
    spec = record.spec
    assert spec is not None  # modify_target admits only known specs
    ref = record.ref
    ib = next((r for r in (book.open if book else ()) if r.order_ref == ref), None)
    current = spec
    if ib is not None and int(ib.quantity) != spec.quantity:
        current = msgspec.structs.replace(spec, quantity=int(ib.quantity))
    problem = _modify_problem(current, msg, record.tracked)
    if problem is not None:
        return refused(ErrorCode.INVALID_ARGUMENT, problem[0], problem[1], order_ref=ref)
    for given, name in ((msg.limit_price, "limit_price"), (msg.stop_price, "stop_price")):
        off_tick = None if given is None else tick_refusal(current.legs, given, name)
        if off_tick is not None:
            return off_tick
    limit, stop = _wire_prices(current, record.kind, msg)
    new = msgspec.structs.replace(
        current,
        order_ref="",
        limit_price=limit,
        stop_price=stop,
        quantity=msg.quantity if msg.quantity is not None else current.quantity,
    )
    if new == msgspec.structs.replace(current, order_ref=""):
        return refused(
            ErrorCode.INVALID_ARGUMENT, "the new terms equal the working order's", "change one"
        )
    return ModifyDraft(record, spec, current, new)


def plan_modify(
    draft: ModifyDraft,
    held: Sequence[PositionInfo],
    quotes: tuple[Quote, ...],
    *,
    epoch: int,
    account_kind: AccountKind,
) -> Plan | ExecutionRefused:
    """The change's preview with the risk before and after, refused when a stop would outgrow
    its position or trigger at once, or a larger order would close more than is held or leave
    an uncovered short."""
    record, spec, current, new = draft.record, draft.spec, draft.current, draft.new
    kind, meta, ref, tracked = record.kind, record.meta, record.ref, record.tracked
    # The recorded max loss/gain are for the order as last accepted (``spec``), even when
    # IB has since shrunk it through an OCA group (``current``); a stop's loss is computed
    # from the order itself.
    before_loss, after_loss, before_gain, after_gain = _modified_risk(
        current if kind == "stop" else spec, new, kind, meta, held
    )
    if kind == "stop":
        quantity_problem = _stop_size_problem(new, held)
        if quantity_problem is not None:
            return refused(
                ErrorCode.INVALID_ARGUMENT, quantity_problem, "a stop protects what is held"
            )
    if new.quantity > current.quantity:
        opening = set(meta.opening_con_ids)
        closing = [
            leg for leg in new.legs if kind in ("close", "roll") and leg.con_id not in opening
        ]
        too_big = _close_size_problem(closing, new.quantity - tracked.filled, held)
        if too_big is not None:
            return refused(
                ErrorCode.INVALID_ARGUMENT,
                too_big,
                "a close can only be as large as what is held",
                order_ref=ref,
            )
        verdict = level2_after(held, new.legs, int(new.quantity - tracked.filled))
        if not verdict.allowed:
            return refused(
                ErrorCode.NOT_PERMITTED_LEVEL2,
                f"the larger order would leave an uncovered short: {verdict.reason}",
                "keep the quantity, or open the rest with calculate_strategy",
                order_ref=ref,
                reason="level2_after",
            )
    mid = structure_mid(new, quotes)
    if kind == "stop" and len(new.legs) > 1 and mid is not None and new.stop_price is not None:
        value, level = -mid, -new.stop_price
        if level >= value:
            return refused(
                ErrorCode.INVALID_ARGUMENT,
                f"a stop at {level:g} would trigger at once: the spread is worth {value:g}",
                f"choose a stop below {value:g}",
            )
    details = ChangeDetails(
        action="modify",
        position=spec_words(current),
        quantity=new.quantity,
        limit_price=new.limit_price,
        mid=mid,
        natural=natural_price(new.legs, quotes),
        commission=estimated_commission(new.legs, new.quantity, quotes),
        before=_terms(current, before_loss, before_gain),
        after=_terms(new, after_loss, after_gain),
    )
    raises = after_loss is None or (before_loss is not None and after_loss > before_loss)
    notes = [
        f"was: {_terms_words(current)}; becomes: {_terms_words(new)}",
        "the change raises the risk; the account checks run again before it is sent"
        if raises
        else "the change does not raise the risk; the account checks still run again",
    ]
    terms = CreatePreview(
        order=new,
        symbol=spec.symbol,
        kind="modify",
        strategy=meta.strategy if kind != "stop" else "stop",
        max_loss=after_loss,
        max_gain=after_gain,
        net_debit=net_debit(new),
        quote_snapshot=quotes,
        epoch=epoch,
        account_kind=account_kind,
        min_tick=price_tick(new.legs, mid),
        replaces_order_ref=ref,
        warnings=tuple(notes),
        commission=details.commission,
        order_max_loss=0.0
        if kind in ("close", "stop")
        else _shifted(meta.order_max_loss, spec, new, after_loss),
        details=details,
    )
    return Plan(terms)


# ---------------------------------------------------------------------- helpers


def _terms(spec: OrderSpec, loss: float | None, gain: float | None) -> OrderTerms:
    return OrderTerms(
        order_type=spec.order_type,
        quantity=spec.quantity,
        limit_price=spec.limit_price,
        stop_price=spec.stop_price,
        max_loss=loss,
        max_gain=gain,
    )


def _terms_words(spec: OrderSpec) -> str:
    parts = [f"{spec.quantity} {spec.order_type}"]
    if spec.stop_price is not None:
        parts.append(f"stop {spec.stop_price:g}")
    if spec.limit_price is not None:
        parts.append(f"limit {spec.limit_price:g}")
    return " ".join(parts)


def _wire_prices(
    order: OrderSpec, kind: str, msg: PrepareModify
) -> tuple[float | None, float | None]:
    """The new (limit, stop) in the order's own convention.

    A combo stop closes a spread by buying the reversed combo at a negative price (a credit),
    but a person names the spread's value: ``stop_price=1.00`` means "sell when the spread is
    worth 1.00". Those are negated here, and when only the stop moves its limit keeps the same
    distance below it, so the stop-limit can still fill."""
    limit = msg.limit_price if msg.limit_price is not None else order.limit_price
    stop = msg.stop_price if msg.stop_price is not None else order.stop_price
    if kind != "stop" or len(order.legs) < 2:
        return limit, stop
    if msg.stop_price is not None:
        stop = -abs(msg.stop_price)
    if msg.limit_price is not None:
        limit = -abs(msg.limit_price)
    elif (
        stop is not None
        and msg.stop_price is not None
        and order.stop_price
        and order.limit_price is not None
    ):
        limit = round_to_tick(stop * (order.limit_price / order.stop_price), 0.01)
    return limit, stop


def _modify_problem(
    spec: OrderSpec, msg: PrepareModify, tracked: TrackedOrder
) -> tuple[str, str] | None:
    if msg.stop_price is not None and spec.order_type not in ("STP", "STP LMT"):
        return (
            f"the order is {spec.order_type}; it has no stop price",
            "change limit_price or quantity",
        )
    if msg.limit_price is not None and spec.order_type not in ("LMT", "STP LMT"):
        return (f"the order is {spec.order_type}; it has no limit price", "change stop_price")
    single = len(spec.legs) == 1
    combo_stop = not single and spec.order_type in ("STP", "STP LMT")
    for value, name in ((msg.limit_price, "limit_price"), (msg.stop_price, "stop_price")):
        if value is not None and (single or combo_stop) and not value > 0:
            return (f"{name} must be positive for a single contract", f"give a positive {name}")
    if msg.quantity is not None and msg.quantity <= tracked.filled:
        return (
            f"{tracked.filled:g} of the order already filled; the new quantity must be larger",
            f"give a quantity above {tracked.filled:g}, or cancel the rest with cancel_order",
        )
    return None


def _close_size_problem(
    legs: Sequence[OrderLeg], units: float, held: Sequence[PositionInfo]
) -> str | None:
    """A closing leg may trade at most what is held on the other side (a close never opens)."""
    for leg in legs:
        position = next((p for p in held if p.con_id == leg.con_id), None)
        have = position.quantity if position else 0.0
        wanted = leg.ratio * units
        side_ok = have > 0 if leg.action == "SELL" else have < 0
        if not side_ok or wanted > abs(have) + 1e-9:
            return (
                f"the close would {leg.action.lower()} {wanted:g} of {describe_leg(leg)}; "
                f"{abs(have):g} is held"
            )
    return None


def _stop_size_problem(order: OrderSpec, held: Sequence[PositionInfo]) -> str | None:
    if len(order.legs) != 1:
        return None
    leg = order.legs[0]
    position = next((p for p in held if p.con_id == leg.con_id), None)
    size = abs(position.quantity) if position else 0.0
    if order.quantity * leg.ratio > size + 1e-9:
        return (
            f"a stop for {order.quantity * leg.ratio} is more than the {size:g} held; it would "
            "open a new position when it triggers"
        )
    return None


def _modified_risk(
    old: OrderSpec,
    new: OrderSpec,
    kind: str,
    meta: OrderMeta,
    held: Sequence[PositionInfo],
) -> tuple[float | None, float | None, float | None, float | None]:
    """(max loss before, after, max gain before, after) of the working order and its change.

    Opening orders: the whole P&L curve moves by the change in price (times multiplier and
    quantity) and scales with the quantity. Stops: the loss from the entry to the stop (to the
    limit for a stop-limit combo). Closes add no loss."""
    if kind == "close":
        return 0.0, 0.0, None, None
    mult = price_multiplier(old)
    if kind == "stop":
        return _stop_loss(old, held, mult), _stop_loss(new, held, mult), None, None
    if meta.max_loss is None and meta.max_gain is None:
        return None, None, None, None
    per_unit_loss = None if meta.max_loss is None else meta.max_loss / old.quantity
    per_unit_gain = None if meta.max_gain is None else meta.max_gain / old.quantity
    shift = ((new.limit_price or 0.0) - (old.limit_price or 0.0)) * mult
    loss_after = None if per_unit_loss is None else round((per_unit_loss + shift) * new.quantity, 2)
    gain_after = None if per_unit_gain is None else round((per_unit_gain - shift) * new.quantity, 2)
    return meta.max_loss, loss_after, meta.max_gain, gain_after


def _shifted(
    loss: float | None, old: OrderSpec, new: OrderSpec, fallback: float | None
) -> float | None:
    """``loss`` (an order's own added loss) moved by a change of price and quantity, like
    :func:`_modified_risk` moves the structure's; ``fallback`` when it was not recorded."""
    if loss is None:
        return fallback
    shift = ((new.limit_price or 0.0) - (old.limit_price or 0.0)) * price_multiplier(old)
    return round((loss / old.quantity + shift) * new.quantity, 2)


def _stop_loss(order: OrderSpec, held: Sequence[PositionInfo], mult: float) -> float | None:
    """Loss from the average entry to where the stop sells (per the order's convention)."""
    if len(order.legs) == 1:
        leg = order.legs[0]
        position = next((p for p in held if p.con_id == leg.con_id), None)
        if position is None or order.stop_price is None:
            return None
        per_share = position.avg_cost / (position.multiplier if leg.sec_type == "OPT" else 1.0)
        long = leg.action == "SELL"
        per = (per_share - order.stop_price) if long else (order.stop_price - per_share)
        scale = leg.multiplier if leg.sec_type == "OPT" else 1.0
        return round(max(per, 0.0) * scale * order.quantity, 2)
    entry = 0.0
    for leg in order.legs:
        position = next((p for p in held if p.con_id == leg.con_id), None)
        if position is None:
            return None
        per_share = position.avg_cost / (position.multiplier if leg.sec_type == "OPT" else 1.0)
        # closing legs are reversed: a SELL closes a long bought at per_share
        entry += (1 if leg.action == "SELL" else -1) * per_share * leg.ratio
    floor = -(order.limit_price or 0.0)
    return round(max(entry - floor, 0.0) * mult * order.quantity, 2)
