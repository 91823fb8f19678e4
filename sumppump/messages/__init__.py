"""Typed messages between actors: frozen, tagged msgspec Structs, one module per protocol."""

from __future__ import annotations

from sumppump.messages.base import Command as Command
from sumppump.messages.base import Event as Event
from sumppump.messages.base import Message as Message
from sumppump.messages.base import Reply as Reply
from sumppump.messages.common import NotConnected as NotConnected
from sumppump.messages.common import NotImplementedYet as NotImplementedYet
from sumppump.messages.common import Ping as Ping
from sumppump.messages.common import Pong as Pong
from sumppump.messages.errors import ErrorCode as ErrorCode
from sumppump.messages.errors import ToolError as ToolError
