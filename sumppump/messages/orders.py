"""Orders as they cross the boundary to TWS: the exact order to place, what-if, cancel, the
order book for reconciliation, and the events TWS reports afterwards.

The connection actor is the only one that turns these into ib_async ``Contract``/``Order``
objects. A multi-leg order is one guaranteed combo (BAG, never ``NonGuaranteed``) whose limit
price is the net per unit: positive = debit paid, negative = credit received (IB's convention).
``order_ref`` is the preview id, so every order can be found again by it after a crash.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.messages.base import Command, Event, Reply

__all__ = [
    "CancelOrder",
    "CancelRequested",
    "CommissionReported",
    "ExerciseAction",
    "ExerciseDone",
    "ExerciseOption",
    "FetchOrderBook",
    "FillReported",
    "ModifyOrder",
    "OrderAction",
    "OrderBook",
    "OrderLeg",
    "OrderPlaced",
    "OrderRecord",
    "OrderRejected",
    "OrderSpec",
    "OrderStatusChanged",
    "OrderUnacknowledged",
    "OrdersReply",
    "OrdersRequest",
    "PlaceOrder",
    "WhatIf",
    "WhatIfResult",
    "WhatIfUnanswered",
]

OrderAction = Literal["BUY", "SELL"]
OrderType = Literal["LMT", "STP", "STP LMT", "MKT"]
TimeInForce = Literal["DAY", "GTC"]


class OrderLeg(msgspec.Struct, frozen=True, kw_only=True):
    con_id: int
    symbol: str
    sec_type: Literal["OPT", "STK"]
    action: OrderAction
    ratio: int
    multiplier: float
    expiry: str | None = None  # YYYY-MM-DD
    strike: float | None = None
    right: Literal["C", "P"] | None = None
    exchange: str = "SMART"


class OrderSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly what is sent. One leg: that contract, ``legs[0].action``, ``quantity × ratio``.
    Several legs: a BAG with these legs, action BUY, ``limit_price`` the net per unit."""

    order_ref: str
    account: str
    symbol: str
    legs: tuple[OrderLeg, ...]
    quantity: int
    order_type: OrderType = "LMT"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = "DAY"
    transmit: bool = True
    oca_group: str = ""
    oca_type: int = 0  # IB's ocaType: 1 cancel the rest, 2 reduce the rest (with block)
    outside_rth: bool = False


class PlaceOrder(Command, frozen=True, kw_only=True):
    """Place ``spec`` once. Never retried by anyone: on a timeout the outcome is unknown and
    execution reconciles by ``order_ref``."""

    spec: OrderSpec


class ModifyOrder(Command, frozen=True, kw_only=True):
    """Send ``spec`` again with the same IB order id (how IB modifies a working order)."""

    order_id: int
    spec: OrderSpec


class OrderPlaced(Reply, frozen=True, kw_only=True):
    order_ref: str
    order_id: int
    perm_id: int
    status: str  # IB's: PreSubmitted, Submitted, Filled, ...
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float | None = None


class OrderRejected(Reply, frozen=True, kw_only=True):
    order_ref: str
    code: int
    message: str


class OrderUnacknowledged(Reply, frozen=True, kw_only=True):
    """The order was sent but TWS did not acknowledge it before the deadline: its outcome is
    unknown until reconciliation."""

    order_ref: str
    order_id: int


class WhatIf(Command, frozen=True, kw_only=True):
    spec: OrderSpec


class WhatIfResult(Reply, frozen=True, kw_only=True):
    init_margin_change: float | None
    maint_margin_change: float | None
    equity_with_loan_change: float | None
    init_margin_after: float | None
    commission: float | None
    min_commission: float | None
    max_commission: float | None
    warning: str = ""


class CancelOrder(Command, frozen=True, kw_only=True):
    order_ref: str


class CancelRequested(Reply, frozen=True, kw_only=True):
    order_ref: str
    order_id: int
    status: str


class FetchOrderBook(Command, frozen=True, kw_only=True):
    """Open orders (all clients), completed orders and today's executions, for reconciliation."""


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    order_ref: str
    order_id: int
    perm_id: int
    client_id: int
    symbol: str
    action: OrderAction
    quantity: float
    order_type: str
    limit_price: float | None
    stop_price: float | None
    tif: str
    status: str
    filled: float
    remaining: float
    avg_fill_price: float | None
    leg_con_ids: tuple[int, ...] = ()


class FillReported(Event, frozen=True, kw_only=True):
    """One execution (partial or complete) of an order of ours."""

    order_ref: str
    order_id: int
    exec_id: str
    con_id: int
    symbol: str
    side: Literal["BOT", "SLD"]
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    time: str


class OrderBook(Reply, frozen=True, kw_only=True):
    open: tuple[OrderRecord, ...]
    completed: tuple[OrderRecord, ...]
    fills: tuple[FillReported, ...]


class OrderStatusChanged(Event, frozen=True, kw_only=True):
    order_ref: str
    order_id: int
    perm_id: int
    status: str
    filled: float
    remaining: float
    avg_fill_price: float | None
    last_fill_price: float | None
    why_held: str = ""
    error_code: int | None = None
    error_message: str = ""


class CommissionReported(Event, frozen=True, kw_only=True):
    exec_id: str
    commission: float
    currency: str
    realized_pnl: float | None


class WhatIfUnanswered(Reply, frozen=True, kw_only=True):
    """TWS gave no populated preview within the deadline (ib_async 2.1.0's what-if waits
    forever without one: notes/ib-behaviour.md §d). Nothing was placed; the preview is simply
    not available."""

    order_ref: str
    waited_seconds: float
    message: str


ExerciseAction = Literal["exercise", "lapse"]


class ExerciseOption(Command, frozen=True, kw_only=True):
    """Exercise, or instruct not to exercise (lapse), ``quantity`` contracts of a long option
    position, with IB's ``exerciseOptions`` (1 = exercise, 2 = lapse). ``exchange`` is the
    option's listing exchange: IB refuses SMART for exercise requests. Irrevocable at IB."""

    con_id: int
    symbol: str
    account: str
    quantity: int
    action: ExerciseAction
    exchange: str = "CBOE"
    override: bool = False


class ExerciseDone(Reply, frozen=True, kw_only=True):
    """What TWS showed after an :class:`ExerciseOption` (IB sends no confirmation message, so
    the outcome is read from positions). ``confirmed``: the option position went down by the
    quantity and the shares moved (an exercise); a lapse instruction changes nothing until
    expiry, so it is never confirmed, only not refused within the wait."""

    con_id: int
    account: str
    action: ExerciseAction
    quantity: int
    confirmed: bool
    option_position_before: float
    option_position_after: float
    underlying_con_id: int | None = None
    shares_before: float | None = None
    shares_after: float | None = None
    detail: str = ""


OrdersRequest = PlaceOrder | ModifyOrder | WhatIf | CancelOrder | FetchOrderBook | ExerciseOption
OrdersReply = (
    OrderPlaced
    | OrderRejected
    | OrderUnacknowledged
    | WhatIfResult
    | CancelRequested
    | OrderBook
    | WhatIfUnanswered
    | ExerciseDone
)
