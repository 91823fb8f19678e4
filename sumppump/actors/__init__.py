"""Actors and the runtime they live in (see :mod:`sumppump.actors.runtime`)."""

from __future__ import annotations

from sumppump.actors.runtime import DEFAULT_CALL_TIMEOUT as DEFAULT_CALL_TIMEOUT
from sumppump.actors.runtime import Actor as Actor
from sumppump.actors.runtime import ActorDown as ActorDown
from sumppump.actors.runtime import CallTimeout as CallTimeout
from sumppump.actors.runtime import MailboxFull as MailboxFull
from sumppump.actors.runtime import Ref as Ref
from sumppump.actors.runtime import StopActor as StopActor
from sumppump.actors.runtime import remaining_budget as remaining_budget
from sumppump.actors.runtime import run_actor as run_actor
from sumppump.actors.runtime import start_actor as start_actor
