"""Close, modify and roll previews: the part of the execution actor that changes what is held.

:class:`PositionChanges` is a mixin of :class:`~sumppump.actors.execution.ExecutionActor`; it
builds the order (from the positions TWS reports, the combos SumpPump opened and its working
orders), applies the Level-2 rule to what would remain (:mod:`sumppump.holdings`), plans what
happens to the position's protective stops, and hands the result to the actor's ordinary
preview path (``CreatePreview``). Nothing here sends an order: every change is placed by
``ExecutePreview`` after the person confirms it, with the same checks as an opening order.

Protective stops follow their position. Every stop SumpPump places carries an OCA group
(``ocaType`` 2: when one order of the group fills, IB reduces the others by the quantity filled
and cancels those reduced to nothing), shared by every stop of that position. A close or roll
of the position joins the group, so IB itself cancels or shrinks the stop in the step that
fills the close, with no window in which the stop could open a new position. A stop that
cannot share the group (a stock stop sized in shares against a combo sized in units, a second
group) is followed by execution instead: cancelled or reduced as soon as the close's fill is
reported. The preview lists each stop and what will happen to it; working orders placed
outside SumpPump are listed as ``not_ours`` with a warning.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from sumppump.actors.runtime import ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.holdings import (
    Choice,
    OpenedCombo,
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
from sumppump.messages.base import Reply
from sumppump.messages.chain_cache import LegKey
from sumppump.messages.common import Quote
from sumppump.messages.connection import FetchPositions, PositionInfo, Positions
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    AccountKind,
    ChangeDetails,
    CreatePreview,
    ExecutionRefused,
    OrderTerms,
    PrepareClose,
    PrepareModify,
    PrepareRoll,
    StopFollow,
)
from sumppump.messages.orders import (
    FetchOrderBook,
    OrderBook,
    OrderLeg,
    OrderSpec,
)
from sumppump.messages.risk import AnalyseStrategy, RiskRejected, StrategyAnalysed
from sumppump.previews import (
    is_preview_id,
    option_leg_keys,
    option_price_tick,
    price_multiplier,
    round_to_tick,
    snapshot_quotes,
    strategy_legs,
    structure_mid,
)
from sumppump.reconciliation import TrackedOrder, is_done, state_of
from sumppump.strategies.analysis import LegPricing, estimate_commission, order_tick
from sumppump.strategies.coverage import CoverageVerdict

if TYPE_CHECKING:
    from sumppump.messages.connection import ConnectionState
    from sumppump.settings import Settings

__all__ = ["OCA_REDUCE", "FollowUp", "OrderMeta", "PositionChanges", "new_oca_group"]

log = logging.getLogger(__name__)

#: IB ``ocaType`` 2: the other orders of the group are reduced by the quantity filled (with
#: block, so the group cannot overfill); an order reduced to nothing is cancelled.
OCA_REDUCE: Final = 2
#: Strategies a roll keeps (the structure is re-opened at the later expiry).
ROLLABLE: Final = frozenset({"long call", "long put", "bull call spread", "bear put spread"})


def new_oca_group() -> str:
    """A fresh OCA group name for a position's protective orders."""
    return "SP-" + secrets.token_hex(6)


class OrderMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What execution remembers of an order it placed, beyond the order itself: the strategy
    name, the analysis' max loss/gain, and which legs opened a position (a roll's new legs)."""

    strategy: str = ""
    max_loss: float | None = None
    max_gain: float | None = None
    #: The loss the order itself adds (a covered call on held shares adds less than the
    #: structure's max loss): what the risk re-check of a modification compares.
    order_max_loss: float | None = None
    opening_con_ids: tuple[int, ...] = ()
    #: A close or roll of a combo opened here: that combo's order_ref (its units shrink).
    closes_order_ref: str = ""
    #: A roll's fill price is the roll's net; the new position's entry is that plus this (the
    #: old position's value per unit when the roll was previewed).
    entry_offset: float = 0.0


class FollowUp(msgspec.Struct, frozen=True, kw_only=True):
    """A stop to cancel (``reduce_by`` ≥ its size) or shrink once ``after_ref`` has filled:
    ``per_unit`` of the stop's quantity per unit of ``after_ref`` filled."""

    after_ref: str
    stop_ref: str
    per_unit: float


def _refused(code: ErrorCode, message: str, hint: str, **extra: object) -> ExecutionRefused:
    return ExecutionRefused(code=code, message=message, hint=hint, **extra)  # type: ignore[arg-type]


class PositionChanges:
    """Mixin: ``PrepareClose``, ``PrepareModify``, ``PrepareRoll`` for the execution actor.

    It reads the actor's order table (``_orders``, ``_specs``, ``_meta``) and asks connection,
    chain cache and risk within the request's budget; it answers with the actor's own
    ``_create`` (a :class:`PreviewCreated`) or an :class:`ExecutionRefused`, never raises.
    """

    _settings: Settings
    _connection: Ref
    _risk: Ref | None
    _orders: dict[str, TrackedOrder]
    _specs: dict[str, tuple[OrderSpec, str]]
    _meta: dict[str, OrderMeta]
    _follow_ups: dict[str, list[FollowUp]]

    if TYPE_CHECKING:

        async def _create(self, msg: CreatePreview) -> Reply: ...

        async def _connection_state(self) -> ConnectionState | str: ...

        async def _quotes_for(
            self, symbol: str, keys: tuple[LegKey, ...]
        ) -> tuple[Quote, ...] | ExecutionRefused: ...

        def _account_kind(self, account: str) -> AccountKind: ...

    # ------------------------------------------------------------------ shared lookups

    async def _epoch_and_positions(
        self, symbol: str
    ) -> tuple[int, list[PositionInfo]] | ExecutionRefused:
        state = await self._connection_state()
        if isinstance(state, str) or state.state != "connected":
            why = state if isinstance(state, str) else state.last_error
            return _refused(
                ErrorCode.NOT_CONNECTED,
                f"not connected to TWS {why}".strip(),
                "retry once TWS is connected",
            )
        try:
            reply = await self._connection.call(
                FetchPositions(), timeout=max(0.5, min(5.0, remaining_budget(5.0) - 1.0))
            )
        except (ActorDown, CallTimeout) as exc:
            return _refused(ErrorCode.NOT_CONNECTED, f"positions unavailable ({exc})", "retry")
        if not isinstance(reply, Positions):
            return _refused(
                ErrorCode.NOT_CONNECTED,
                f"positions unavailable ({type(reply).__name__})",
                "retry once TWS is connected",
            )
        held = [p for p in reply.positions if p.symbol == symbol and abs(p.quantity) > 1e-9]
        return state.epoch, held

    async def _order_book(self) -> OrderBook | None:
        """TWS's working orders (None when unavailable: stops are then planned from our own
        table, and the preview says the check of foreign orders did not run)."""
        try:
            reply = await self._connection.call(
                FetchOrderBook(), timeout=max(0.5, min(5.0, remaining_budget(5.0) - 1.0))
            )
        except (ActorDown, CallTimeout):
            return None
        return reply if isinstance(reply, OrderBook) else None

    def _opened_combos(self, symbol: str) -> list[OpenedCombo]:
        """Multi-leg orders of ours in ``symbol`` that opened something and filled, oldest
        first, with only the legs they opened."""
        closed: dict[str, float] = {}
        for ref, meta in self._meta.items():
            if meta.closes_order_ref and ref in self._orders:
                closed[meta.closes_order_ref] = (
                    closed.get(meta.closes_order_ref, 0.0) + self._orders[ref].filled
                )
        combos = []
        # Newest first: a combo opened in this session claims the positions before an older
        # record of the journal does.
        for ref, (spec, kind) in reversed(list(self._specs.items())):
            tracked = self._orders.get(ref)
            if kind not in ("open", "roll") or spec.symbol != symbol or tracked is None:
                continue
            meta = self._meta.get(ref, OrderMeta())
            opening = set(meta.opening_con_ids)
            legs = tuple(leg for leg in spec.legs if not opening or leg.con_id in opening)
            units = int(tracked.filled - closed.get(ref, 0.0) + 1e-9)
            if len(legs) < 2 or units <= 0:
                continue
            combos.append(
                OpenedCombo(
                    order_ref=ref,
                    legs=legs,
                    filled_units=units,
                    strategy=meta.strategy or _infer_strategy(legs),
                )
            )
        return combos

    def _opened_position(self, ref: str, avg_fill_price: float) -> tuple[OrderSpec, float]:
        """The order ``ref`` as the position it opened (a roll: only its new legs) and that
        position's entry price per unit (a roll: its fill plus the old position's value)."""
        spec, _kind = self._specs[ref]
        meta = self._meta.get(ref, OrderMeta())
        if not meta.opening_con_ids:
            return spec, avg_fill_price
        opening = set(meta.opening_con_ids)
        legs = tuple(leg for leg in spec.legs if leg.con_id in opening)
        return msgspec.structs.replace(spec, legs=legs), avg_fill_price + meta.entry_offset

    def _working(self, ref: str) -> bool:
        tracked = self._orders.get(ref)
        return tracked is not None and tracked.state == "working"

    def _stop_group(self, legs: Sequence[OrderLeg]) -> str:
        """The OCA group a new stop on ``legs`` joins: that of a working stop, close or roll of
        ours on the same contracts, or a fresh one. Only orders sized one contract per unit
        share a group (IB reduces the others by the filled quantity, in each order's units),
        so a stock stop never joins a buy-write's."""
        wanted = {leg.con_id: leg.ratio for leg in legs}
        for ref, (spec, kind) in self._specs.items():
            if kind not in ("stop", "close", "roll") or not self._working(ref):
                continue
            if not spec.oca_group:
                continue
            shared = [leg for leg in spec.legs if leg.con_id in wanted]
            if shared and all(leg.ratio == 1 and wanted[leg.con_id] == 1 for leg in shared):
                return spec.oca_group
        return new_oca_group()

    def _stop_plan(
        self, structure: Structure, units: int, book: OrderBook | None
    ) -> tuple[str, tuple[StopFollow, ...], tuple[FollowUp, ...], tuple[str, ...]]:
        """What happens to the stops protecting ``structure`` when ``units`` of it are closed
        (or rolled away): the OCA group the closing order joins (``""`` = none), what the
        preview says for each stop, the stops execution follows itself, and warnings."""
        con_ids = structure.con_ids
        live = {r.order_ref: r for r in (book.open if book else ())}
        closing = {leg.con_id: leg for leg in closing_legs(structure)}
        group = ""
        follows: list[StopFollow] = []
        follow_ups: list[FollowUp] = []
        for ref, (spec, kind) in self._specs.items():
            if kind != "stop" or not self._working(ref):
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
            record = live.get(ref)
            size = (record.quantity - record.filled) if record else float(spec.quantity)
            # Stop units that one unit of the close takes away.
            per_unit = max(closing[leg.con_id].ratio / leg.ratio for leg in shared)
            after = max(0.0, size - per_unit * units)
            how: Literal["cancelled", "reduced"] = "cancelled" if after <= 0 else "reduced"
            follows.append(
                StopFollow(
                    order_ref=ref,
                    description=_spec_words(spec),
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
                follow_ups.append(FollowUp(after_ref="", stop_ref=ref, per_unit=per_unit))
        if not group:
            # A group of its own, so a stop set later on this position can join it.
            group = self._stop_group(closing_legs(structure))
        warnings: list[str] = []
        for record in book.open if book else ():
            if record.order_ref in self._specs or is_done(state_of(record.status)):
                continue
            if set(record.leg_con_ids) & con_ids:
                follows.append(
                    StopFollow(
                        order_ref=record.order_ref or f"id {record.order_id}",
                        description=f"{record.action} {record.quantity:g} {record.order_type}",
                        how="not_ours",
                        quantity_before=record.quantity - record.filled,
                        quantity_after=record.quantity - record.filled,
                    )
                )
                warnings.append(
                    f"order {record.order_id} ({record.action} {record.quantity:g} "
                    f"{record.order_type}) on this position was not placed by SumpPump and stays "
                    "working: cancel or change it in TWS, or it may open a new position"
                )
        if book is None:
            warnings.append(
                "TWS's working orders could not be read: orders placed outside SumpPump on this "
                "position were not checked"
            )
        return group, tuple(follows), tuple(follow_ups), tuple(warnings)

    # ------------------------------------------------------------------ close

    async def _prepare_close(self, msg: PrepareClose) -> Reply:
        symbol = msg.symbol.strip().upper()
        if msg.quantity is not None and msg.quantity < 1:
            return _refused(ErrorCode.INVALID_ARGUMENT, "quantity must be at least 1", "or omit it")
        found = await self._epoch_and_positions(symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        structures = group_structures(held, self._opened_combos(symbol))
        chosen = choose_structure(msg.position, structures)
        if isinstance(chosen, Choice):
            return _choice_refusal(symbol, chosen, "close_position")
        structure = chosen
        single = structure.is_single
        cap = int(abs(structure.legs[0].position.quantity)) if single else structure.units
        units = msg.quantity if msg.quantity is not None else structure.units
        if units > cap:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"quantity {units} is more than the {cap} held of {structure.describe()}",
                f"give a quantity of at most {cap}, or omit it to close all of it",
            )
        legs = closing_legs(structure)
        remains = level2_after(held, legs, units)
        refusal = _level2_refusal(remains, structure, structures, symbol)
        if refusal is not None:
            return refusal
        keys = option_leg_keys(legs)
        quotes = await self._quotes_for(symbol, keys)
        if isinstance(quotes, ExecutionRefused):
            return quotes
        account = structure.legs[0].position.account
        draft = OrderSpec(order_ref="", account=account, symbol=symbol, legs=legs, quantity=units)
        mid = structure_mid(draft, quotes)
        natural = natural_price(legs, quotes)
        tick = _tick(legs, mid)
        limit = msg.limit_price
        if limit is None:
            if mid is None:
                return _refused(
                    ErrorCode.NO_MARKET_DATA,
                    "there is no two-sided quote to price the close at mid",
                    "give limit_price, or retry when the market is quoting",
                )
            limit = round_to_tick(mid, tick)
            if single and limit < tick:
                limit = tick
        if single and not limit > 0:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                "a single contract's limit price must be positive",
                "give the price per share you want, e.g. the bid",
            )
        off_tick = _off_tick(legs, limit, "limit_price")
        if off_tick is not None:
            return off_tick
        book = await self._order_book()
        group, follows, follow_ups, warnings = self._stop_plan(structure, units, book)
        order = msgspec.structs.replace(
            draft,
            limit_price=limit,
            oca_group=group,
            oca_type=OCA_REDUCE,
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
        commission = _commission(legs, units, quotes)
        after = positions_after(held, legs, units)
        details = ChangeDetails(
            action="close",
            position=structure.describe(),
            quantity=units,
            closes_order_ref=structure.opened_by,
            held=cap,
            limit_price=limit,
            mid=mid,
            natural=natural,
            position_value=None if mid is None else (-mid if not single else mid),
            cash=None if cash is None else round(cash, 2),
            realised_pnl=pnl,
            commission=commission,
            holds_after=_holdings_words(after),
            level2=remains.reason,
            stops=follows,
        )
        notes = [*warnings]
        if pnl is not None:
            notes.append(f"realised P&L at the limit about {pnl:+,.2f} before commission")
        reply = await self._create(
            CreatePreview(
                order=order,
                symbol=symbol,
                kind="close",
                strategy=structure.name,
                description=f"close {structure.describe()}",
                max_loss=0.0,
                max_gain=None,
                net_debit=_net_debit(order),
                quote_snapshot=quotes,
                epoch=epoch,
                account_kind=self._account_kind(account),
                min_tick=tick,
                warnings=tuple(notes),
                commission=commission,
                order_max_loss=0.0,
                details=details,
                opening_con_ids=(),
            )
        )
        self._remember_follow_ups(reply, follow_ups)
        return reply

    def _remember_follow_ups(self, reply: Reply, follow_ups: Sequence[FollowUp]) -> None:
        pid = getattr(reply, "preview_id", "")
        if pid and follow_ups:
            self._follow_ups[pid] = [msgspec.structs.replace(f, after_ref=pid) for f in follow_ups]

    # ------------------------------------------------------------------ modify

    async def _prepare_modify(self, msg: PrepareModify) -> Reply:
        ref = msg.order_ref.strip()
        if not is_preview_id(ref):
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"{ref!r} is not an order placed by SumpPump; it cannot be changed here",
                "change orders placed elsewhere in TWS; get_open_orders lists ours",
                order_ref=ref,
            )
        tracked = self._orders.get(ref)
        known = self._specs.get(ref)
        if tracked is None or known is None:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"no order of ours has order_ref {ref}",
                "use the order_ref from execute_trade or get_open_orders",
                order_ref=ref,
            )
        if is_done(tracked.state) or tracked.state != "working":
            state = tracked.state if tracked.state != "submitting" else "not yet acknowledged"
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"order {ref} is {state}; only a working order can be changed",
                "get_open_orders lists what is still working",
                order_ref=ref,
                reason="not_modifiable",
            )
        if msg.limit_price is None and msg.quantity is None and msg.stop_price is None:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                "nothing to change",
                "give limit_price, quantity or stop_price",
            )
        spec, kind = known
        book = await self._order_book()
        record = next((r for r in (book.open if book else ()) if r.order_ref == ref), None)
        current = spec
        if record is not None and int(record.quantity) != spec.quantity:
            # IB may have shrunk it (an OCA group): the change starts from what TWS holds.
            current = msgspec.structs.replace(spec, quantity=int(record.quantity))
        problem = _modify_problem(current, msg, tracked)
        if problem is not None:
            return _refused(ErrorCode.INVALID_ARGUMENT, problem[0], problem[1], order_ref=ref)
        for given, name in ((msg.limit_price, "limit_price"), (msg.stop_price, "stop_price")):
            off_tick = None if given is None else _off_tick(current.legs, given, name)
            if off_tick is not None:
                return off_tick
        limit, stop = _wire_prices(current, kind, msg)
        new = msgspec.structs.replace(
            current,
            order_ref="",
            limit_price=limit,
            stop_price=stop,
            quantity=msg.quantity if msg.quantity is not None else current.quantity,
        )
        if new == msgspec.structs.replace(current, order_ref=""):
            return _refused(
                ErrorCode.INVALID_ARGUMENT, "the new terms equal the working order's", "change one"
            )
        found = await self._epoch_and_positions(spec.symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        meta = self._meta.get(ref, OrderMeta())
        # The recorded max loss/gain are for the order as last accepted (``spec``), even when
        # IB has since shrunk it through an OCA group (``current``); a stop's loss is computed
        # from the order itself.
        before_loss, after_loss, before_gain, after_gain = _modified_risk(
            current if kind == "stop" else spec, new, kind, meta, held
        )
        if kind == "stop":
            quantity_problem = _stop_size_problem(new, held)
            if quantity_problem is not None:
                return _refused(
                    ErrorCode.INVALID_ARGUMENT, quantity_problem, "a stop protects what is held"
                )
        if new.quantity > current.quantity:
            opening = set(meta.opening_con_ids)
            closing = [
                leg for leg in new.legs if kind in ("close", "roll") and leg.con_id not in opening
            ]
            too_big = _close_size_problem(closing, new.quantity - tracked.filled, held)
            if too_big is not None:
                return _refused(
                    ErrorCode.INVALID_ARGUMENT,
                    too_big,
                    "a close can only be as large as what is held",
                    order_ref=ref,
                )
            verdict = level2_after(held, new.legs, int(new.quantity - tracked.filled))
            if not verdict.allowed:
                return _refused(
                    ErrorCode.NOT_PERMITTED_LEVEL2,
                    f"the larger order would leave an uncovered short: {verdict.reason}",
                    "keep the quantity, or open the rest with calculate_strategy",
                    order_ref=ref,
                    reason="level2_after",
                )
        quotes = await self._quotes_for(spec.symbol, option_leg_keys(new.legs))
        if isinstance(quotes, ExecutionRefused):
            return quotes
        mid = structure_mid(new, quotes)
        if kind == "stop" and len(new.legs) > 1 and mid is not None and new.stop_price is not None:
            value, level = -mid, -new.stop_price
            if level >= value:
                return _refused(
                    ErrorCode.INVALID_ARGUMENT,
                    f"a stop at {level:g} would trigger at once: the spread is worth {value:g}",
                    f"choose a stop below {value:g}",
                )
        details = ChangeDetails(
            action="modify",
            position=_spec_words(current),
            quantity=new.quantity,
            limit_price=new.limit_price,
            mid=mid,
            natural=natural_price(new.legs, quotes),
            commission=_commission(new.legs, new.quantity, quotes),
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
        return await self._create(
            CreatePreview(
                order=new,
                symbol=spec.symbol,
                kind="modify",
                strategy=meta.strategy if kind != "stop" else "stop",
                max_loss=after_loss,
                max_gain=after_gain,
                net_debit=_net_debit(new),
                quote_snapshot=quotes,
                epoch=epoch,
                account_kind=self._account_kind(spec.account),
                min_tick=_tick(new.legs, mid),
                replaces_order_ref=ref,
                warnings=tuple(notes),
                commission=details.commission,
                order_max_loss=0.0
                if kind in ("close", "stop")
                else _shifted(meta.order_max_loss, spec, new, after_loss),
                details=details,
            )
        )

    # ------------------------------------------------------------------ roll

    async def _prepare_roll(self, msg: PrepareRoll) -> Reply:
        symbol = msg.symbol.strip().upper()
        found = await self._epoch_and_positions(symbol)
        if isinstance(found, ExecutionRefused):
            return found
        epoch, held = found
        structures = group_structures(held, self._opened_combos(symbol))
        rollable = [s for s in structures if s.name in ROLLABLE]
        chosen = choose_structure(msg.position, rollable if msg.position is None else structures)
        if isinstance(chosen, Choice):
            return _choice_refusal(symbol, chosen, "roll_position")
        structure = chosen
        if structure.name not in ROLLABLE:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"{structure.describe()} is not a long option or a debit spread; "
                "roll_position rolls only those",
                "close it with close_position and open the new position with calculate_strategy",
            )
        old_expiry = max(leg.position.expiry or "" for leg in structure.legs)
        if msg.new_expiry <= old_expiry:
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"the new expiry {msg.new_expiry} is not later than {old_expiry}",
                "roll to a later expiry (get_options_chain lists them)",
            )
        strikes = tuple(sorted(leg.position.strike or 0.0 for leg in structure.legs))
        new_strikes = tuple(sorted(msg.new_strikes)) if msg.new_strikes else strikes
        if len(new_strikes) != len(strikes):
            return _refused(
                ErrorCode.INVALID_ARGUMENT,
                f"a {structure.name} has {len(strikes)} strike(s); got {len(new_strikes)}",
                f"give {len(strikes)} strike(s) in new_strikes, or omit them to keep {strikes}",
            )
        units = structure.units
        analysed = await self._analyse(symbol, structure.name, msg.new_expiry, new_strikes, units)
        if isinstance(analysed, ExecutionRefused):
            return analysed
        old_legs = closing_legs(structure)
        new_legs = analysed.order.legs
        legs = (*old_legs, *new_legs)
        remains = level2_after(held, legs, units)
        refusal = _level2_refusal(remains, structure, structures, symbol, roll=True)
        if refusal is not None:
            return refusal
        old_quotes = await self._quotes_for(symbol, option_leg_keys(old_legs))
        if isinstance(old_quotes, ExecutionRefused):
            return old_quotes
        quotes = _merge_quotes(old_quotes, snapshot_quotes(analysed.quote_snapshot))
        account = structure.legs[0].position.account
        draft = OrderSpec(order_ref="", account=account, symbol=symbol, legs=legs, quantity=units)
        mid = structure_mid(draft, quotes)
        if msg.limit_price is None and mid is None:
            return _refused(
                ErrorCode.NO_MARKET_DATA,
                "there is no two-sided quote on every leg to price the roll at mid",
                "give limit_price (the roll's net per unit), or retry when the market quotes",
            )
        limit = msg.limit_price if msg.limit_price is not None else round_to_tick(mid or 0.0, 0.01)
        book = await self._order_book()
        group, follows, follow_ups, warnings = self._stop_plan(structure, units, book)
        order = msgspec.structs.replace(
            draft, limit_price=limit, oca_group=group, oca_type=OCA_REDUCE
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
        commission = _commission(legs, units, quotes)
        after = positions_after(held, legs, units)
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
            holds_after=_holdings_words(after),
            level2=remains.reason,
            stops=follows,
        )
        side = "debit" if limit >= 0 else "credit"
        notes = [
            *warnings,
            f"roll net {side} {abs(limit):.2f} per unit ({abs(cash):,.2f} in all)"
            + (
                f"; the old position is worth {-old_mid:.2f} per unit at mid"
                if old_mid is not None
                else ""
            ),
            f"resulting position: {analysis.quantity} × {structure.name} {msg.new_expiry} "
            f"{'/'.join(f'{k:g}' for k in new_strikes)}",
            "after it fills you will be asked to set a stop for the new position",
            *analysed.warnings,
        ]
        if follows:
            notes.append("the old position's stop orders end with it (see details.stops)")
        reply = await self._create(
            CreatePreview(
                order=order,
                symbol=symbol,
                kind="roll",
                strategy=structure.name,
                description=f"roll {structure.describe()} to {msg.new_expiry}",
                max_loss=analysis.max_loss_with_commission,
                max_gain=analysis.max_gain,
                breakevens=analysis.breakevens,
                net_debit=limit,
                quote_snapshot=quotes,
                underlying_price=analysed.quote_snapshot.underlying_mid,
                epoch=epoch,
                account_kind=self._account_kind(account),
                min_tick=0.01,
                warnings=tuple(notes),
                commission=commission,
                order_max_loss=analysis.max_loss_with_commission,
                details=details,
                opening_con_ids=tuple(leg.con_id for leg in new_legs),
            )
        )
        self._remember_follow_ups(reply, follow_ups)
        return reply

    async def _analyse(
        self, symbol: str, strategy: str, expiry: str, strikes: tuple[float, ...], units: int
    ) -> StrategyAnalysed | ExecutionRefused:
        """The new structure of a roll, analysed by risk like ``calculate_strategy``."""
        if self._risk is None:
            return _refused(
                ErrorCode.SERVICE_UNAVAILABLE, "the risk actor is not wired", "restart sumppump"
            )
        try:
            reply = await self._risk.call(
                AnalyseStrategy(
                    symbol=symbol,
                    strategy=strategy.replace(" ", "_"),
                    expiry=expiry,
                    strikes=strikes,
                    quantity=units,
                ),
                timeout=max(1.0, remaining_budget(20.0) - 4.0),
            )
        except (ActorDown, CallTimeout) as exc:
            return _refused(
                ErrorCode.SERVICE_UNAVAILABLE, f"the analysis did not answer ({exc})", "retry"
            )
        if isinstance(reply, RiskRejected):
            try:
                code = ErrorCode(reply.code)
            except ValueError:
                code = ErrorCode.INVALID_ARGUMENT
            return _refused(code, f"the rolled position: {reply.message}", reply.hint)
        if not isinstance(reply, StrategyAnalysed):
            return _refused(
                ErrorCode.NO_MARKET_DATA,
                f"the new position could not be analysed ({type(reply).__name__})",
                "retry; check the expiry and strikes with get_options_chain",
            )
        if any(leg.sec_type != "OPT" for leg in reply.order.legs):
            return _refused(ErrorCode.INVALID_ARGUMENT, "a roll trades options only", "-")
        return reply


# ---------------------------------------------------------------------- pure helpers


def _infer_strategy(legs: Sequence[OrderLeg]) -> str:
    """A name for a two-leg vertical opened before its strategy was recorded."""
    if len(legs) == 2 and all(leg.sec_type == "OPT" for leg in legs):
        bought = next((leg for leg in legs if leg.action == "BUY"), None)
        sold = next((leg for leg in legs if leg.action == "SELL"), None)
        if bought and sold and bought.right == sold.right and bought.expiry == sold.expiry:
            low = (bought.strike or 0) < (sold.strike or 0)
            if bought.right == "C" and low:
                return "bull call spread"
            if bought.right == "P" and not low:
                return "bear put spread"
    return "combo"


def _off_tick(legs: Sequence[OrderLeg], price: float, name: str) -> ExecutionRefused | None:
    """``INVALID_ARGUMENT`` for a price the contract does not trade at (the rule
    ``calculate_strategy`` applies: :func:`~sumppump.strategies.analysis.order_tick`), with
    the two nearest valid prices; IB would reject it only at execute time."""
    tick = order_tick(strategy_legs(legs), price)
    steps = round(price / tick, 6)
    if abs(steps - round(steps)) < 1e-6:
        return None
    lower = math.floor(steps) * tick
    return _refused(
        ErrorCode.INVALID_ARGUMENT,
        f"{name} {price:g} is not a multiple of the tick {tick:g}",
        f"use {lower:.2f} or {lower + tick:.2f}",
    )


def _tick(legs: Sequence[OrderLeg], mid: float | None) -> float:
    if len(legs) == 1 and legs[0].sec_type == "OPT":
        return option_price_tick(mid or 0.0)
    return 0.01


def _net_debit(order: OrderSpec) -> float:
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


def _commission(legs: Sequence[OrderLeg], units: int, quotes: Sequence[Quote]) -> float:
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
        return _refused(
            ErrorCode.INVALID_ARGUMENT,
            f"{choice.message} ({symbol})",
            "get_positions shows what is held",
        )
    first = choice.options[0].split(":", 1)[0]
    return _refused(
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
    return _refused(
        ErrorCode.NOT_PERMITTED_LEVEL2,
        f"{what} {structure.describe()} would leave an uncovered short: {verdict.reason}",
        hint,
        reason="level2_after",
    )


def _spec_words(spec: OrderSpec) -> str:
    legs = ", ".join(f"{leg.action} {leg.ratio} {describe_leg(leg)}" for leg in spec.legs)
    return f"{spec.quantity} × {spec.order_type} ({legs})"


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
