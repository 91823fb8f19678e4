"""Base classes of every message that crosses an actor boundary.

Every message is a frozen, keyword-only, tagged :class:`msgspec.Struct`, so any union of them can be
decoded and dispatched with ``match`` (msgspec's asyncio key-value example). Three families:

* :class:`Command` -- a request from a caller. It carries an ``id`` (random hex, unique per command)
  and ``ts_init`` (wall clock, ns since the epoch) as nautilus_trader's commands do, so logs, the
  audit trail and replies can be correlated.
* :class:`Reply` -- what an actor answers. Domain outcomes (not connected, refused by risk, no such
  contract, not implemented yet) are replies, never exceptions: a caller matches on them.
* :class:`Event` -- something that happened (connection up, a fill), published to subscribers with
  ``ts_event`` (when it happened at the source) besides ``ts_init`` (when we learned of it).
"""

from __future__ import annotations

import time
import uuid

import msgspec

__all__ = ["Command", "Event", "Message", "Reply", "new_id", "now_ns"]


def new_id() -> str:
    """A random 128-bit identifier as 32 hex characters."""
    return uuid.uuid4().hex


def now_ns() -> int:
    """Wall-clock time in nanoseconds since the epoch."""
    return time.time_ns()


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Root of every message; ``tag=True`` makes unions of subclasses decodable."""


class Command(Message, frozen=True, kw_only=True):
    """A request sent to an actor with ``call`` or ``tell``."""

    id: str = msgspec.field(default_factory=new_id)
    ts_init: int = msgspec.field(default_factory=now_ns)


class Reply(Message, frozen=True, kw_only=True):
    """An actor's answer to a :class:`Command`."""


class Event(Message, frozen=True, kw_only=True):
    """A notification published to subscribers."""

    ts_event: int = msgspec.field(default_factory=now_ns)
    ts_init: int = msgspec.field(default_factory=now_ns)
