"""Order specs as ib_async objects: the conversions at the edge of the connection boundary.

Used by :mod:`sumppump.actors.order_desk` (and only code the connection actor hands the ``IB``
to). One leg → that contract by ``conId`` (exchange SMART) with a ``LimitOrder`` /
``StopOrder`` / ``StopLimitOrder`` / ``MarketOrder``; several legs → one guaranteed BAG (never
the ``NonGuaranteed`` tag), action BUY, ``lmtPrice`` the net per unit (positive = debit).
"""

from __future__ import annotations

import uuid
from typing import Final, assert_never

from ib_async import ComboLeg, Contract, LimitOrder, MarketOrder, Order, StopLimitOrder, StopOrder

from sumppump.messages.orders import OrderSpec

__all__ = ["COMBO_STOP_TRIGGER_METHOD", "build_contract", "build_order", "new_oca_group"]

#: IB's ``triggerMethod`` for combo stops: 4 = bid/ask. IB simulates combo stops and defaults
#: them to "Last" (trigger-method table, COMBO row,
#: https://interactivebrokers.github.io/tws-api/trigger_method_limit.html), and option combos
#: rarely print a last, so a default combo stop may never fire (notes/ib-behaviour.md §a).
COMBO_STOP_TRIGGER_METHOD: Final = 4


def build_contract(spec: OrderSpec) -> Contract:
    """The ib_async contract of ``spec``: the leg's contract by conId, or one BAG of all legs.

    :raises ValueError: ``spec`` has no legs.
    """
    if not spec.legs:
        raise ValueError("an order needs at least one leg")
    if len(spec.legs) == 1:
        leg = spec.legs[0]
        return Contract(
            conId=leg.con_id,
            symbol=leg.symbol,
            secType=leg.sec_type,
            exchange=leg.exchange or "SMART",
            currency="USD",
        )
    bag = Contract(secType="BAG", symbol=spec.symbol, exchange="SMART", currency="USD")
    bag.comboLegs = [
        ComboLeg(
            conId=leg.con_id,
            ratio=leg.ratio,
            action=leg.action,
            exchange=leg.exchange or "SMART",
        )
        for leg in spec.legs
    ]
    return bag


def build_order(spec: OrderSpec, order_id: int) -> Order:
    """The ib_async order of ``spec`` with our own ``order_id`` (never the NonGuaranteed tag).

    :raises ValueError: a price the order type needs is missing.
    """
    if len(spec.legs) == 1:
        action: str = spec.legs[0].action
        quantity = float(spec.quantity * spec.legs[0].ratio)
    else:
        action = "BUY"  # the combo's direction lives in its legs; the price is the net
        quantity = float(spec.quantity)
    order: Order
    match spec.order_type:
        case "LMT":
            order = LimitOrder(action, quantity, _required(spec.limit_price, "limit"))
        case "STP":
            order = StopOrder(action, quantity, _required(spec.stop_price, "stop"))
        case "STP LMT":
            order = StopLimitOrder(
                action,
                quantity,
                _required(spec.limit_price, "limit"),
                _required(spec.stop_price, "stop"),
            )
        case "MKT":
            order = MarketOrder(action, quantity)
        case _:
            assert_never(spec.order_type)
    order.orderId = order_id
    order.orderRef = spec.order_ref
    order.account = spec.account
    order.tif = spec.tif
    order.transmit = spec.transmit
    order.ocaGroup = spec.oca_group
    if spec.oca_group:
        order.ocaType = spec.oca_type
    order.outsideRth = spec.outside_rth
    order.smartComboRoutingParams = []
    if len(spec.legs) > 1 and spec.order_type in ("STP", "STP LMT"):
        order.triggerMethod = COMBO_STOP_TRIGGER_METHOD
    return order


def new_oca_group(prefix: str) -> str:
    """A fresh OCA group name: ``prefix`` plus a random suffix. IB never accepts a group name
    twice, "even after the order fills or is canceled" (TWS guide, Miscellaneous order fields;
    notes/ib-behaviour.md §c), so every new group (every roll or change) needs its own."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _required(value: float | None, what: str) -> float:
    if value is None:
        raise ValueError(f"the order type needs a {what} price")
    return value
