"""Errors: the exception tree, and the structured error every tool answers.

Domain outcomes (not connected, refused by risk, no such contract) are *replies*, not exceptions
(see :mod:`sumppump.messages.common`). Exceptions are kept for failures of the machinery itself::

    SumpPumpError
    ├── ActorError                 -- the actor runtime (sumppump.actors.runtime)
    │   ├── ActorDown              -- the callee died while the call was queued or handled, was
    │   │                             restarting, or its supervisor gave up
    │   ├── CallTimeout            -- (also a TimeoutError) no reply before the deadline; a late
    │   │                             reply is dropped
    │   ├── MailboxFull            -- tell() into a full mailbox (load shedding)
    │   └── SupervisorGaveUp       -- restart intensity exceeded, or a child failed to start
    └── TradingError
        └── OrderOutcomeUnknown    -- an order call ended in ActorDown/CallTimeout/disconnect; the
                                      order may or may not have reached IB; never retried

Callers catch at the level they care about: the MCP layer turns ``ActorError`` into
``SERVICE_UNAVAILABLE`` for reads and ``OrderOutcomeUnknown`` into ``ORDER_OUTCOME_UNKNOWN``.

Every tool error is a :class:`ToolError` ``{code, message, hint}`` with a code from
:class:`ErrorCode` (DESIGN.md §7), never a traceback.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "ActorDown",
    "ActorError",
    "CallTimeout",
    "ErrorCode",
    "MailboxFull",
    "OrderOutcomeUnknown",
    "SumpPumpError",
    "SupervisorGaveUp",
    "ToolError",
    "TradingError",
]


class SumpPumpError(Exception):
    """Root of every exception this package raises on purpose."""


class ActorError(SumpPumpError):
    """A failure of the actor runtime or of supervision."""


class ActorDown(ActorError):
    """The callee is not running: it died, is restarting, or was never started.

    ``reason`` is the exception that ended the incarnation the call was routed to (also set as
    ``__cause__``), or ``None`` when there was no incarnation to route to or it stopped normally.
    """

    def __init__(self, name: str, reason: BaseException | None) -> None:
        detail = "not running" if reason is None else f"died: {type(reason).__name__}: {reason}"
        super().__init__(f"actor {name!r} is down ({detail})")
        self.name = name
        self.reason = reason


class CallTimeout(ActorError, TimeoutError):
    """No reply arrived before the call's deadline. The callee may still finish; its reply is
    dropped."""

    def __init__(self, name: str, request: str, timeout: float) -> None:
        super().__init__(f"actor {name!r}: no reply to {request} within {timeout:.3g}s")
        self.name = name
        self.request = request
        self.timeout = timeout


class MailboxFull(ActorError):
    """``tell()`` found the callee's bounded mailbox full; the message was not delivered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"actor {name!r}: mailbox full, message dropped")
        self.name = name


class SupervisorGaveUp(ActorError):
    """A supervisor exceeded its restart intensity (or a child failed to start at boot), stopped
    all its children and ended. Raised bare from :meth:`Supervisor.run`, never in a group."""


class TradingError(SumpPumpError):
    """A failure on the order path that the person must be told about."""


class OrderOutcomeUnknown(TradingError):
    """An order request ended without a definite answer (actor down, deadline, disconnect).

    The order may have reached IB. It is never retried automatically; execution reconciles by
    ``order_ref`` before it accepts new orders.
    """

    def __init__(self, order_ref: str, cause: str) -> None:
        super().__init__(f"outcome of order {order_ref} unknown: {cause}")
        self.order_ref = order_ref
        self.cause = cause


class ErrorCode(enum.StrEnum):
    """The error codes tools answer with (DESIGN.md §7). Clients and tests depend on them."""

    NOT_CONNECTED = "NOT_CONNECTED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    PACING = "PACING"
    NOT_PERMITTED_LEVEL2 = "NOT_PERMITTED_LEVEL2"
    RISK_LIMIT = "RISK_LIMIT"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    PREVIEW_EXPIRED = "PREVIEW_EXPIRED"
    PREVIEW_USED = "PREVIEW_USED"
    PREVIEW_UNKNOWN = "PREVIEW_UNKNOWN"
    CONFIRM_MISMATCH = "CONFIRM_MISMATCH"
    PRICE_MOVED = "PRICE_MOVED"
    MARKET_CLOSED = "MARKET_CLOSED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_OUTCOME_UNKNOWN = "ORDER_OUTCOME_UNKNOWN"
    APPROVAL_REQUIRED = "APPROVAL_REQUIRED"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"


class ToolError(msgspec.Struct, frozen=True, kw_only=True):
    """The structured error of every tool: what went wrong and what to do about it."""

    code: ErrorCode
    message: str
    hint: str
