"""The actor runtime: addresses, bounded mailboxes, request/reply with deadlines.

An *actor* owns its state and is reached only through a :class:`Ref`. Each life of an actor (an
*incarnation*) has its own bounded mailbox; a supervisor (:mod:`sumppump.supervisor`) starts a new
incarnation after a crash and re-points the same :class:`Ref` at it, bumping
:attr:`Ref.generation`.

The caller contract (notes/architecture.md §2.3), guaranteed by :meth:`Ref.call`:

* a reply arrives -> it is returned (domain outcomes are replies, not exceptions);
* the callee dies while handling the call, while the call is queued, or while the caller is
  blocked on its full mailbox -> :class:`ActorDown` at once, with the cause as ``__cause__``;
  the request is *not* carried over to the next incarnation;
* the callee is restarting, backing off, or was never started -> :class:`ActorDown` at once;
* the deadline passes -> :class:`CallTimeout` (a :class:`TimeoutError`); the callee may still
  finish, and its late reply is dropped;
* the caller is cancelled -> the cancellation propagates; a request still queued is skipped by
  the callee, a reply is dropped.

Deadlines propagate: a call made while an actor handles a request never outlives that request's
deadline, so nested calls cannot outlive the MCP tool call that started them.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Final, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from sumppump.messages.base import Command, Message, Reply
from sumppump.messages.errors import ActorDown, CallTimeout, MailboxFull

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "Actor",
    "ActorDown",
    "CallTimeout",
    "Incarnation",
    "MailboxFull",
    "Ref",
    "StopActor",
    "remaining_budget",
    "run_actor",
    "start_actor",
]

log = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT: Final = 5.0

#: Absolute deadline (``anyio.current_time()`` scale) of the request being handled in this task.
_request_deadline: contextvars.ContextVar[float] = contextvars.ContextVar(
    "sumppump_request_deadline", default=math.inf
)


def remaining_budget(default: float = math.inf) -> float:
    """Seconds left before the deadline of the request this task is handling (or of the
    caller's own cancel scopes), or ``default`` when there is none."""
    deadline = min(_request_deadline.get(), anyio.current_effective_deadline())
    if math.isinf(deadline):
        return default
    return max(0.0, deadline - anyio.current_time())


@dataclass(eq=False, slots=True)
class _PendingCall:
    """The reply slot of one ``call()``: a one-item stream, like an OTP process alias."""

    reply_tx: MemoryObjectSendStream[Reply]
    deadline: float
    abandoned: bool = False


@dataclass(eq=False, slots=True)
class _Envelope:
    msg: Message
    call: _PendingCall | None  # None for tell()


@final
class Incarnation:
    """One life of an actor: its mailbox and the calls registered on it.

    :meth:`close` is the OTP monitor: every caller still waiting on this incarnation wakes with
    :class:`ActorDown`, wherever its request is (being handled, queued, or blocked in ``send``).
    """

    __slots__ = ("_rx", "_tx", "pending", "reason")

    def __init__(self, mailbox_size: int) -> None:
        if mailbox_size < 1 or math.isinf(mailbox_size):
            raise ValueError("a mailbox must be bounded and hold at least one message")
        self._tx, self._rx = anyio.create_memory_object_stream[_Envelope](mailbox_size)
        self.pending: set[_PendingCall] = set()
        self.reason: BaseException | None = None

    def close_mailbox(self) -> None:
        """Graceful stop: refuse new messages; the actor drains what is queued, then exits."""
        self._tx.close()

    def close(self, reason: BaseException | None) -> None:
        self.reason = reason
        self._tx.close()
        # Closing the receive end also wakes senders blocked on a full mailbox
        # (BrokenResourceError), so they get ActorDown instead of waiting out their deadline.
        self._rx.close()
        for pending in self.pending:
            pending.reply_tx.close()
        self.pending.clear()


class Ref:
    """The stable address of an actor; it survives restarts.

    :attr:`generation` counts the incarnations this address has pointed at (0 = never started),
    so tests can see restarts.
    """

    __slots__ = ("_incarnation", "generation", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.generation = 0
        self._incarnation: Incarnation | None = None

    def __repr__(self) -> str:
        state = "up" if self._incarnation is not None else "down"
        return f"<Ref {self.name} gen={self.generation} {state}>"

    @property
    def alive(self) -> bool:
        """Whether the address currently routes to a running incarnation."""
        return self._incarnation is not None

    def _publish(self, incarnation: Incarnation) -> None:
        self._incarnation = incarnation
        self.generation += 1

    def _retract(self, incarnation: Incarnation) -> None:
        if self._incarnation is incarnation:
            self._incarnation = None

    async def call(self, msg: Command, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> Reply:
        """Send ``msg`` and wait for the reply.

        The deadline is the earliest of ``timeout`` from now, the deadline of the request this
        task is handling (if it is an actor), and the caller's own cancel scopes. Waiting for room
        in a full mailbox counts against it (backpressure).

        :raises ActorDown: the callee is not running, or died before replying.
        :raises CallTimeout: no reply before the deadline; a late reply is dropped.
        """
        incarnation = self._incarnation
        if incarnation is None:
            raise ActorDown(self.name, None)
        deadline = min(
            anyio.current_time() + timeout,
            _request_deadline.get(),
            anyio.current_effective_deadline(),
        )
        reply_tx, reply_rx = anyio.create_memory_object_stream[Reply](1)
        pending = _PendingCall(reply_tx, deadline)
        incarnation.pending.add(pending)
        try:
            with reply_rx, anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                await incarnation._tx.send(_Envelope(msg, pending))
                return await reply_rx.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ActorDown(self.name, incarnation.reason) from incarnation.reason
        except TimeoutError:
            raise CallTimeout(self.name, type(msg).__name__, timeout) from None
        finally:
            pending.abandoned = True
            incarnation.pending.discard(pending)
            reply_tx.close()  # a late reply is now dropped, like an OTP alias

    def tell(self, msg: Message) -> None:
        """Deliver ``msg`` without waiting for anything (fire-and-forget).

        :raises ActorDown: the callee is not running.
        :raises MailboxFull: the mailbox is full; the message was not delivered.
        """
        incarnation = self._incarnation
        if incarnation is None:
            raise ActorDown(self.name, None)
        try:
            incarnation._tx.send_nowait(_Envelope(msg, None))
        except anyio.WouldBlock:
            raise MailboxFull(self.name) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ActorDown(self.name, incarnation.reason) from incarnation.reason


class Actor:
    """Base class of every actor. Subclasses override the hooks they need.

    State lives in the instance, which a factory creates afresh for every incarnation, so a
    restart never sees the state a crash left behind.

    * :meth:`on_start` runs before the address becomes routable; keep it short, the supervisor
      waits for it. If it raises, the start fails.
    * :meth:`handle` answers one message at a time. For a ``call`` it must return a
      :class:`Reply`; for a ``tell`` the result is ignored. An exception crashes the actor.
    * :meth:`background` runs beside the mailbox loop for the whole incarnation (a reconnect
      loop, a probe). If it raises, the actor crashes; if it returns, the mailbox loop goes on.
    * :meth:`on_stop` runs after the last message, also after a crash or a kill, shielded and
      bounded to one second.

    :attr:`max_concurrency` is 1 by default: one message at a time, so state needs no locks.
    An I/O-bound actor may raise it to handle several requests at once; a crash in any of them
    still ends the whole incarnation, and every pending call gets :class:`ActorDown`.
    """

    max_concurrency: int = 1

    async def on_start(self) -> None:
        return None

    async def handle(self, msg: Message) -> Reply | None:
        raise NotImplementedError(f"{type(self).__name__} handles no {type(msg).__name__}")

    async def background(self) -> None:
        return None

    async def on_stop(self) -> None:
        return None


class StopActor(Exception):
    """Raise from :meth:`Actor.handle` to end the incarnation normally (OTP ``{stop, normal}``).

    ``reply`` is sent to the caller first, when the message was a call. A normal exit is not a
    crash: a ``transient`` child is not restarted after it.
    """

    def __init__(self, reply: Reply | None = None) -> None:
        super().__init__("actor stopped normally")
        self.reply = reply


class _NoReply(RuntimeError):
    """A handler returned nothing for a call: a bug, surfaced as a crash so the caller is not
    left waiting for its deadline."""


def _unwrap(exc: BaseException) -> BaseException:
    """Task groups wrap errors in groups; report the single root cause when there is one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@dataclass(slots=True)
class _MailboxLoop:
    actor: Actor
    rx: MemoryObjectReceiveStream[_Envelope]
    handled: int = field(default=0)

    async def run(self) -> None:
        if self.actor.max_concurrency <= 1:
            async for envelope in self.rx:
                if not await self._handle(envelope):
                    return
            return
        # Concurrent actors (I/O-bound ones such as the TWS connection) handle up to
        # `max_concurrency` requests at once. A slot is taken *before* the next envelope is
        # read, so when every slot is busy the mailbox fills and callers feel backpressure.
        slots = anyio.CapacityLimiter(self.actor.max_concurrency)
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as reading:

                async def handle_one(envelope: _Envelope, slot: object) -> None:
                    try:
                        if not await self._handle(envelope):
                            reading.cancel()
                    finally:
                        slots.release_on_behalf_of(slot)

                while True:
                    slot = object()
                    await slots.acquire_on_behalf_of(slot)
                    try:
                        envelope = await self.rx.receive()
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        slots.release_on_behalf_of(slot)
                        return
                    tg.start_soon(handle_one, envelope, slot)

    async def _handle(self, envelope: _Envelope) -> bool:
        """Handle one envelope; ``False`` when the actor asked to stop."""
        call = envelope.call
        if call is not None and call.abandoned:
            return True  # the caller gave up while this was queued: nothing reaches the actor
        token = _request_deadline.set(call.deadline if call is not None else math.inf)
        try:
            result = await self.actor.handle(envelope.msg)
        except StopActor as stop:
            if call is not None and stop.reply is not None:
                _deliver(call, stop.reply)
            return False
        finally:
            _request_deadline.reset(token)
        self.handled += 1
        if call is None:
            return True
        if result is None:
            raise _NoReply(
                f"{type(self.actor).__name__} returned no reply to {type(envelope.msg).__name__}"
            )
        _deliver(call, result)
        return True


def _deliver(call: _PendingCall, reply: Reply) -> None:
    # The caller may have gone (deadline, cancellation): its slot is closed and the reply is
    # dropped. A one-item buffer that is only ever written once never blocks.
    with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.WouldBlock):
        call.reply_tx.send_nowait(reply)


async def run_actor(
    actor: Actor,
    ref: Ref,
    *,
    mailbox_size: int,
    on_started: Callable[[Incarnation], None] | None = None,
) -> None:
    """Run one incarnation of ``actor`` until its mailbox is closed or it crashes.

    After :meth:`Actor.on_start` returns, ``on_started`` is called synchronously with the new
    incarnation; it must make ``ref`` routable (``ref._publish``). Without it the address is
    published directly. Whatever ends the incarnation, every caller waiting on it is released
    with :class:`ActorDown` before this returns or raises.

    :raises BaseException: whatever ended the incarnation abnormally (the crash reason, or the
        cancellation that killed it).
    """
    incarnation = Incarnation(mailbox_size)
    reason: BaseException | None = None
    try:
        await actor.on_start()
        if on_started is None:
            ref._publish(incarnation)
        else:
            on_started(incarnation)
        loop = _MailboxLoop(actor, incarnation._rx)
        async with anyio.create_task_group() as tg:
            tg.start_soon(actor.background)
            await loop.run()
            tg.cancel_scope.cancel()
    except BaseException as exc:
        reason = _unwrap(exc)
        raise
    finally:
        ref._retract(incarnation)
        incarnation.close(reason)
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            try:
                await actor.on_stop()
            except Exception:
                log.exception("%s: on_stop failed", ref.name)


@asynccontextmanager
async def start_actor(
    factory: Callable[[], Actor], *, name: str, mailbox_size: int = 64
) -> AsyncIterator[Ref]:
    """Run one unsupervised actor for the duration of the block (tests, tools, benchmarks).

    On exit the mailbox is closed, queued messages are handled, and the actor stops. A crash
    inside the block is re-raised on exit; it is not restarted.
    """
    ref = Ref(name)
    started = anyio.Event()

    def publish(incarnation: Incarnation) -> None:
        ref._publish(incarnation)
        started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: run_actor(factory(), ref, mailbox_size=mailbox_size, on_started=publish)
        )
        await started.wait()
        try:
            yield ref
        finally:
            incarnation = ref._incarnation
            if incarnation is not None:
                incarnation.close_mailbox()
