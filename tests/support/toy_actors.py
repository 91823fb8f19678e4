"""Small actors and messages for runtime and supervision tests."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from sumppump.actors.runtime import Actor, Ref, StopActor
from sumppump.messages.base import Command, Message, Reply


class Echo(Command, frozen=True, kw_only=True):
    value: int


class Echoed(Reply, frozen=True, kw_only=True):
    value: int
    handled_by: int  # the instance serial: a fresh instance per incarnation


class WaitGate(Command, frozen=True, kw_only=True):
    """Handled by waiting on the actor's gate (so a test can hold the actor busy)."""


class Boom(Command, frozen=True, kw_only=True):
    """Crash the actor (Akka's Throw message)."""

    text: str = "boom"


class Sleep(Command, frozen=True, kw_only=True):
    seconds: float


class Forward(Command, frozen=True, kw_only=True):
    """Call ``target`` with WaitGate using a long timeout: tests deadline propagation."""

    timeout: float


class Forwarded(Reply, frozen=True, kw_only=True):
    outcome: str
    elapsed: float


class Silent(Command, frozen=True, kw_only=True):
    """A request the handler wrongly answers with nothing."""


class Stopping(Command, frozen=True, kw_only=True):
    """Ask the actor to exit normally (transient children are then not restarted)."""


_serial = 0


class ToyActor(Actor):
    def __init__(
        self,
        gate: anyio.Event | None = None,
        *,
        target: Ref | None = None,
        log: list[str] | None = None,
        name: str = "toy",
        fail_start: Callable[[], bool] | None = None,
        ignore_cancel: float = 0.0,
    ) -> None:
        global _serial
        _serial += 1
        self.serial = _serial
        self.gate = gate or anyio.Event()
        self.target = target
        self.log = log
        self.name = name
        self.fail_start = fail_start
        self.ignore_cancel = ignore_cancel
        self.handled: list[int] = []

    async def on_start(self) -> None:
        if self.fail_start is not None and self.fail_start():
            raise RuntimeError(f"{self.name} refused to start")
        if self.log is not None:
            self.log.append(f"start:{self.name}")

    async def on_stop(self) -> None:
        if self.log is not None:
            self.log.append(f"stop:{self.name}")

    async def handle(self, msg: Message) -> Reply | None:
        match msg:
            case Echo(value=value):
                self.handled.append(value)
                return Echoed(value=value, handled_by=self.serial)
            case WaitGate():
                if self.ignore_cancel:
                    with anyio.CancelScope(shield=True):
                        await anyio.sleep(self.ignore_cancel)
                await self.gate.wait()
                return Echoed(value=-1, handled_by=self.serial)
            case Boom(text=text):
                raise RuntimeError(text)
            case Sleep(seconds=seconds):
                await anyio.sleep(seconds)
                return Echoed(value=0, handled_by=self.serial)
            case Forward(timeout=timeout):
                assert self.target is not None
                start = anyio.current_time()
                try:
                    await self.target.call(WaitGate(), timeout=timeout)
                    outcome = "reply"
                except TimeoutError as exc:
                    outcome = type(exc).__name__
                return Forwarded(outcome=outcome, elapsed=anyio.current_time() - start)
            case Silent():
                return None
            case Stopping():
                raise StopActor(Echoed(value=0, handled_by=self.serial))
            case _:
                return None


class ConcurrentToy(ToyActor):
    max_concurrency = 4
