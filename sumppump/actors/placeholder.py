"""An honest stand-in for an actor whose behaviour a later change fills in."""

from __future__ import annotations

from sumppump.actors.runtime import Actor
from sumppump.messages.base import Command, Message, Reply
from sumppump.messages.common import NotImplementedYet, Ping, Pong

__all__ = ["PlaceholderActor"]


class PlaceholderActor(Actor):
    """Answers :class:`Ping` and, to every other request, :class:`NotImplementedYet`.

    It never makes data up: a caller that receives ``NotImplementedYet`` must tell the person
    that the feature is not available yet.
    """

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        self.detail = detail

    async def handle(self, msg: Message) -> Reply | None:
        match msg:
            case Ping():
                return Pong(actor=self.name)
            case Command():
                return NotImplementedYet(
                    actor=self.name, request=type(msg).__name__, detail=self.detail
                )
            case _:
                return None  # events and other notifications are ignored
