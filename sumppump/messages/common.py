"""Messages every actor may answer, and value types shared by several protocols."""

from __future__ import annotations

from typing import Literal

from sumppump.messages.base import Command, Reply

__all__ = [
    "DataType",
    "GreeksSource",
    "NotConnected",
    "NotImplementedYet",
    "Ping",
    "Pong",
]

#: Where a quote came from: live, frozen (last of the session), or delayed (15-20 min).
DataType = Literal["live", "frozen", "delayed", "delayed_frozen", "simulated"]
#: Where a greek came from: IB's model (tickOptionComputation) or our own Black-Scholes.
GreeksSource = Literal["ib_model", "bsm"]


class Ping(Command, frozen=True, kw_only=True):
    """Liveness probe every actor answers with :class:`Pong`."""


class Pong(Reply, frozen=True, kw_only=True):
    actor: str
    generation: int = 0


class NotImplementedYet(Reply, frozen=True, kw_only=True):
    """An honest placeholder: this actor cannot do ``request`` yet. Never invented data."""

    actor: str
    request: str
    detail: str = ""


class NotConnected(Reply, frozen=True, kw_only=True):
    """TWS is not reachable now; ``retry_in`` is the seconds until the next connect attempt."""

    reason: str
    attempt: int = 0
    retry_in: float | None = None
