"""OTP-style supervision for the actor tree, and the foreground entry point.

Semantics follow Erlang/OTP's ``supervisor`` (notes/architecture.md §1.1, §2):

* children start **in list order**, synchronously: a child becomes routable only after its start
  hook finished, and the next child starts only then; a child that fails to start at boot makes
  the supervisor fail (:class:`SupervisorGaveUp`);
* strategies: ``one_for_one`` restarts the dead child; ``rest_for_one`` stops the children after
  it (reverse order) and restarts it and them in order; ``one_for_all`` does that for all;
* restart types: ``permanent`` always, ``transient`` only after an abnormal exit, ``temporary``
  never (not even when a sibling's group restart stopped it);
* restart intensity: more than ``intensity`` restarts within ``period`` seconds (a sliding
  window) makes the supervisor stop every child in reverse start order and raise
  :class:`SupervisorGaveUp`, which its parent treats as that child's crash (escalation);
* shutdown: graceful first (the mailbox is closed and drained), then a kill after the child's
  ``shutdown`` grace; a child that ignores even the kill is abandoned after a second grace so the
  rest of the tree still stops in order;
* restart backoff (Akka-style, min/max/jitter/reset-after) for children that touch TWS. The
  supervisor never sleeps in its own loop: a delayed restart is a timer that wakes the loop, so
  exits and shutdown are handled meanwhile (OTP's ``try_again_restart``).

The production tree (DESIGN.md §2)::

    root  one_for_one (3 in 60 s)
    ├── rate_limiter
    ├── pricing
    └── broker  rest_for_one (5 in 60 s)
        ├── connection   (restart backoff)
        ├── chain_cache
        ├── risk
        └── execution    (restart backoff)

``python -m sumppump.supervisor`` (or ``sumppump run``) runs it in the foreground until SIGINT or
SIGTERM: exit code 0 after a signal, 1 when the root gives up.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from sumppump.actors.runtime import Actor, Incarnation, Ref, run_actor
from sumppump.messages.errors import SupervisorGaveUp
from sumppump.settings import Settings

__all__ = [
    "ActorRefs",
    "Backoff",
    "ChildSpec",
    "Killed",
    "Restart",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "Tree",
    "build_tree",
    "main",
]

log = logging.getLogger(__name__)

#: How long an abandoned-after-kill child is waited for before the supervisor moves on.
KILL_GRACE: Final = 1.0


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    REST_FOR_ONE = "rest_for_one"
    ONE_FOR_ALL = "one_for_all"


class Killed(Exception):
    """Exit reason of a child whose scope was cancelled by :meth:`Supervisor.kill` or by a
    shutdown that ran out of grace (OTP's ``killed``)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delay ``min(max, min * 2**(failures-1)) * (1 + U[0, jitter])``.

    ``failures`` counts consecutive crashes; it resets to 1 when the child had been up for at
    least ``reset_after`` seconds.
    """

    min: float = 1.0
    max: float = 30.0
    jitter: float = 0.2
    reset_after: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.max, self.min * 2.0 ** max(0, failures - 1))
        return base * (1.0 + rng.random() * self.jitter)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start and supervise one child.

    ``start`` is a factory called for every (re)start, so each incarnation has fresh state. It
    returns an :class:`Actor` (reached through ``ref``) or a nested :class:`Supervisor`
    (``ref`` is then ``None``).
    """

    id: str
    start: Callable[[], Actor | Supervisor]
    ref: Ref | None = None
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    mailbox_size: int = 64
    backoff: Backoff | None = None


@dataclass(eq=False, slots=True)
class _Child:
    spec: ChildSpec
    serial: int
    started_at: float
    # Shielded: only the supervisor stops a child, so that a cancellation of the whole tree
    # still stops the children one by one in reverse start order, each with its grace.
    scope: anyio.CancelScope = field(default_factory=lambda: anyio.CancelScope(shield=True))
    done: anyio.Event = field(default_factory=anyio.Event)
    started: anyio.Event = field(default_factory=anyio.Event)
    node: Supervisor | None = None
    reason: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Exit:
    child_id: str
    serial: int
    reason: BaseException | None


@dataclass(frozen=True, slots=True)
class _Wake:
    """A backoff timer expired: look again at which children may start."""


def _abnormal(reason: BaseException | None) -> bool:
    return reason is not None


class Supervisor:
    """Supervises an ordered list of children. Run it with :meth:`run` inside a task group.

    ``clock``, ``sleep`` and ``rng`` are injectable so that intensity windows and backoff
    schedules can be tested deterministically. ``events`` records ``(kind, child_id)`` pairs
    (start, exit, stop, abandon, restart_scheduled, give_up) for tests and diagnostics.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {name}: {ids}")
        if intensity < 0 or period <= 0:
            raise ValueError("intensity must be >= 0 and period > 0")
        self.name = name
        self.children: tuple[ChildSpec, ...] = tuple(children)
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.events: list[tuple[str, str]] = []
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._running: dict[str, _Child] = {}
        self._not_before: dict[str, float] = {}  # children waiting to (re)start -> earliest time
        self._failures: dict[str, int] = {}
        self._restarts: deque[float] = deque()
        self._serial = 0
        self._live: set[_Child] = set()
        self._timer_due = math.inf
        self._control: MemoryObjectSendStream[_Exit | _Wake] | None = None

    # ------------------------------------------------------------------ public API

    def running(self) -> tuple[str, ...]:
        """Ids of the children running now, in start order."""
        return tuple(spec.id for spec in self.children if spec.id in self._running)

    def child(self, child_id: str) -> Supervisor | None:
        """The nested supervisor running as ``child_id``, if any."""
        child = self._running.get(child_id)
        return child.node if child is not None else None

    def kill(self, path: str) -> None:
        """Fault injection: brutally kill a child (OTP ``exit(Pid, kill)``).

        ``path`` is a child id, or ``"broker/connection"`` for a child of a nested supervisor.

        :raises KeyError: no such child is running.
        """
        head, _, rest = path.partition("/")
        child = self._running[head]
        if rest:
            if child.node is None:
                raise KeyError(path)
            child.node.kill(rest)
        else:
            child.scope.cancel()

    async def run(
        self,
        *,
        on_started: Callable[[], None] | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start every child in order, then supervise until cancelled or giving up.

        ``on_started`` (or ``task_status.started()``) fires once every child has started.
        Cancellation stops the children in reverse start order, each within its grace.

        :raises SupervisorGaveUp: a child failed to start at boot, or the restart intensity was
            exceeded. Every child has been stopped by then.
        """
        control_tx, control_rx = anyio.create_memory_object_stream[_Exit | _Wake](math.inf)
        self._control = control_tx
        gave_up: SupervisorGaveUp | None = None
        try:
            async with anyio.create_task_group() as tg:
                try:
                    now = self._clock()
                    for spec in self.children:
                        self._not_before[spec.id] = now
                    await self._start_due(tg, booting=True)
                    if on_started is not None:
                        on_started()
                    task_status.started()
                    async for item in control_rx:
                        if isinstance(item, _Exit):
                            await self._on_exit(tg, item)
                        await self._start_due(tg, booting=False)
                except SupervisorGaveUp as exc:
                    gave_up = exc
                    tg.cancel_scope.cancel()
                finally:
                    # Stop children while their task group is still open; shielded so that a
                    # cancellation of the whole tree still waits for every grace period.
                    with anyio.CancelScope(shield=True):
                        await self._stop_all()
        finally:
            control_tx.close()
            control_rx.close()
        if gave_up is not None:
            raise gave_up

    # ------------------------------------------------------------------ starting

    async def _start_due(self, tg: TaskGroup, *, booting: bool) -> None:
        """Start, in spec order, every waiting child whose time has come.

        Under ``rest_for_one``/``one_for_all`` the order is a dependency order, so a child still
        backing off holds back every child after it; under ``one_for_one`` children are
        independent. A child that fails to restart is scheduled again (counting against the
        intensity) and the walk starts over.
        """
        while True:
            earliest_wait = math.inf
            failed = False
            for spec in self.children:
                not_before = self._not_before.get(spec.id)
                if not_before is None:
                    continue
                now = self._clock()
                if not_before > now:
                    earliest_wait = min(earliest_wait, not_before - now)
                    if self.strategy is Strategy.ONE_FOR_ONE:
                        continue
                    break
                del self._not_before[spec.id]
                error = await self._start(tg, spec)
                if error is None:
                    continue
                if booting:
                    raise SupervisorGaveUp(
                        f"{self.name}: {spec.id} failed to start: {error!r}"
                    ) from error
                # A failed restart counts as another restart (OTP add_restart on every retry).
                self._schedule_restart(spec, error, uptime=0.0)
                failed = True
                break
            if failed:
                continue
            if earliest_wait < self._timer_due - self._clock():
                self._timer_due = self._clock() + earliest_wait
                tg.start_soon(self._timer, earliest_wait)
            return

    async def _start(self, tg: TaskGroup, spec: ChildSpec) -> BaseException | None:
        self._serial += 1
        child = _Child(spec, self._serial, self._clock())
        self._live.add(child)
        tg.start_soon(self._child_task, child)
        # Wait until the child is routable or has ended, whichever comes first.
        async with anyio.create_task_group() as wait:

            async def until(event: anyio.Event) -> None:
                await event.wait()
                wait.cancel_scope.cancel()

            wait.start_soon(until, child.started)
            wait.start_soon(until, child.done)
        if child.started.is_set() and not child.done.is_set():
            self.events.append(("start", spec.id))
            log.debug("%s: started %s", self.name, spec.id)
            return None
        if child.started.is_set():
            # Started and ended at once: its exit is already queued and handled as usual.
            return None
        self._running.pop(spec.id, None)
        return child.reason or RuntimeError(f"{spec.id} ended during start")

    async def _child_task(self, child: _Child) -> None:
        spec = child.spec
        reason: BaseException | None = None

        def publish(incarnation: Incarnation | None = None) -> None:
            # Register first, then make the address routable, in one synchronous step: a kill
            # that follows the first successful call must find the child registered (P3).
            self._running[spec.id] = child
            if incarnation is not None and spec.ref is not None:
                spec.ref._publish(incarnation)
            child.started.set()

        try:
            try:
                with child.scope:
                    target = spec.start()
                    if isinstance(target, Supervisor):
                        child.node = target
                        await target.run(on_started=publish)
                    else:
                        if spec.ref is None:
                            raise TypeError(f"child {spec.id} is an actor but has no ref")
                        await run_actor(
                            target, spec.ref, mailbox_size=spec.mailbox_size, on_started=publish
                        )
            # A crash racing a cancellation arrives as BaseExceptionGroup([exc, Cancelled]);
            # except* keeps the crash as the reason and re-raises the Cancelled part (P6).
            except* Exception as group:
                reason = _first_cause(group)
            if reason is None and child.scope.cancelled_caught:
                reason = Killed(spec.id)
        finally:
            # In finally, so that an outside cancellation still signals the exit; otherwise a
            # shutdown waiting on `done` would wait forever (P1).
            child.reason = reason
            child.done.set()
            self._live.discard(child)
            if child.started.is_set() and self._control is not None:
                self._control.send_nowait(_Exit(spec.id, child.serial, reason))

    async def _timer(self, delay: float) -> None:
        await self._sleep(delay)
        self._timer_due = math.inf
        if self._control is not None:
            self._control.send_nowait(_Wake())

    # ------------------------------------------------------------------ exits and restarts

    async def _on_exit(self, tg: TaskGroup, exit_: _Exit) -> None:
        child = self._running.get(exit_.child_id)
        if child is None or child.serial != exit_.serial:
            return  # stale: we stopped this incarnation ourselves (group restart or shutdown)
        del self._running[exit_.child_id]
        spec = child.spec
        self.events.append(("exit", f"{spec.id}:{type(exit_.reason).__name__}"))
        if exit_.reason is not None:
            log.warning("%s: child %s exited: %r", self.name, spec.id, exit_.reason)
        if spec.restart is Restart.TEMPORARY:
            return
        if spec.restart is Restart.TRANSIENT and not _abnormal(exit_.reason):
            return
        uptime = self._clock() - child.started_at
        self._schedule_restart(spec, exit_.reason, uptime=uptime)
        await self._stop_group_of(spec)

    def _schedule_restart(
        self, spec: ChildSpec, reason: BaseException | None, *, uptime: float
    ) -> None:
        now = self._clock()
        # OTP add_restart/3: keep the restarts within the window, add this one, and give up
        # when there are more than `intensity` of them.
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - self.period:
            self._restarts.popleft()
        if len(self._restarts) > self.intensity:
            self.events.append(("give_up", spec.id))
            raise SupervisorGaveUp(
                f"{self.name}: more than {self.intensity} restarts in {self.period:g}s "
                f"(last: {spec.id})"
            ) from reason
        delay = 0.0
        if spec.backoff is not None:
            reset = uptime >= spec.backoff.reset_after
            failures = 1 if reset else self._failures.get(spec.id, 0) + 1
            self._failures[spec.id] = failures
            delay = spec.backoff.delay(failures, self._rng)
        for member in self._group_of(spec):
            if member.id == spec.id or member.restart is not Restart.TEMPORARY:
                self._not_before[member.id] = max(self._not_before.get(member.id, now), now + delay)
        self.events.append(("restart_scheduled", f"{spec.id}:{delay:.6g}"))

    def _group_of(self, spec: ChildSpec) -> list[ChildSpec]:
        match self.strategy:
            case Strategy.ONE_FOR_ONE:
                return [spec]
            case Strategy.ONE_FOR_ALL:
                return list(self.children)
            case Strategy.REST_FOR_ONE:
                index = self.children.index(spec)
                return list(self.children[index:])

    async def _stop_group_of(self, spec: ChildSpec) -> None:
        for member in reversed(self._group_of(spec)):
            child = self._running.pop(member.id, None)
            if child is not None:
                await self._stop(child)

    async def _stop(self, child: _Child) -> None:
        spec = child.spec
        if child.node is None and spec.ref is not None:
            incarnation = spec.ref._incarnation
            if incarnation is not None:
                incarnation.close_mailbox()  # graceful: drain what is queued, then exit
        else:
            child.scope.cancel()  # a nested supervisor stops its own children on cancellation
        with anyio.move_on_after(spec.shutdown):
            await child.done.wait()
        if not child.done.is_set():
            child.scope.cancel()
            with anyio.move_on_after(KILL_GRACE):
                await child.done.wait()
        if child.done.is_set():
            self.events.append(("stop", spec.id))
        else:
            # Structured concurrency cannot drop a task that shields itself: the task group
            # still waits for it at the very end, but the rest of the tree stops on time.
            self.events.append(("abandon", spec.id))
            log.error("%s: %s ignored its kill; abandoned", self.name, spec.id)

    async def _stop_all(self) -> None:
        self._not_before.clear()
        for spec in reversed(self.children):
            child = self._running.pop(spec.id, None)
            if child is not None:
                await self._stop(child)
        # A child interrupted in the middle of its start was never registered; its scope is
        # shielded, so it must be cancelled explicitly or the task group would wait for it.
        for child in list(self._live):
            child.scope.cancel()


def _first_cause(group: BaseExceptionGroup[Exception]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


# ---------------------------------------------------------------------- the production tree


@dataclass(frozen=True, slots=True)
class ActorRefs:
    """The addresses of the production actors; stable across restarts."""

    rate_limiter: Ref
    pricing: Ref
    connection: Ref
    chain_cache: Ref
    risk: Ref
    execution: Ref


@dataclass(frozen=True, slots=True)
class Tree:
    root: Supervisor
    refs: ActorRefs


NEW_YORK: Final = ZoneInfo("America/New_York")

#: Restart backoff for the children that touch TWS when they start (notes/architecture.md §2.1).
TWS_BACKOFF: Final = Backoff(min=1.0, max=30.0, jitter=0.2, reset_after=60.0)


def build_tree(
    settings: Settings,
    *,
    now: Callable[[], datetime] | None = None,
    cache_dir: Path | None = None,
    simulated: bool = False,
) -> Tree:
    """The supervision tree of DESIGN.md §2, with each actor built from ``settings``.

    ``now`` (wall-clock time: trading date, market hours), ``cache_dir`` (conIds on disk) and
    ``simulated`` (every account labelled SIMULATED) are seams for the simulator and tests.
    """
    from sumppump.actors.chain_cache import ChainCacheActor
    from sumppump.actors.connection import ConnectionActor
    from sumppump.actors.execution import CircuitBreaker, ExecutionActor
    from sumppump.actors.pricing import PricingActor
    from sumppump.actors.rate_limiter import RateLimiter
    from sumppump.actors.risk import RiskActor

    clock = now or (lambda: datetime.now(UTC))

    def today() -> date:
        """The trading date: US options trade on New York's calendar."""
        return clock().astimezone(NEW_YORK).date()

    refs = ActorRefs(
        rate_limiter=Ref("rate_limiter"),
        pricing=Ref("pricing"),
        connection=Ref("connection"),
        chain_cache=Ref("chain_cache"),
        risk=Ref("risk"),
        execution=Ref("execution"),
    )

    def connection() -> Actor:
        return ConnectionActor(
            settings,
            rate_limiter=refs.rate_limiter,
            subscribers=(refs.chain_cache, refs.risk, refs.execution),
        )

    def chain_cache() -> Actor:
        return ChainCacheActor(
            connection=refs.connection,
            pricing=refs.pricing,
            cache_dir=cache_dir,
            today=today,
        )

    def risk() -> Actor:
        return RiskActor(
            settings,
            connection=refs.connection,
            chain_cache=refs.chain_cache,
            simulated=simulated,
            now=now,
        )

    # One breaker for the process: an execution restart must not close it (only a reset or a
    # restart of sumppump may).
    breaker = CircuitBreaker()

    def execution() -> Actor:
        return ExecutionActor(
            settings,
            connection=refs.connection,
            chain_cache=refs.chain_cache,
            risk=refs.risk,
            breaker=breaker,
            simulated=simulated,
            now=now,
        )

    def rate_limiter() -> Actor:
        return RateLimiter(
            message_rate=settings.message_rate, lines_budget=settings.market_data_lines
        )

    broker = ChildSpec(
        id="broker",
        start=lambda: Supervisor(
            "broker",
            [
                ChildSpec(
                    "connection", connection, refs.connection, shutdown=5.0, backoff=TWS_BACKOFF
                ),
                ChildSpec("chain_cache", chain_cache, refs.chain_cache, shutdown=2.0),
                ChildSpec("risk", risk, refs.risk, shutdown=2.0),
                ChildSpec(
                    "execution",
                    execution,
                    refs.execution,
                    shutdown=10.0,
                    # Order-status and fill events are told while an execute is in flight; a
                    # full mailbox would drop them (the 30 s reconcile only covers the gap).
                    mailbox_size=1024,
                    backoff=TWS_BACKOFF,
                ),
            ],
            strategy=Strategy.REST_FOR_ONE,
            intensity=5,
            period=60.0,
        ),
        shutdown=math.inf,
    )
    root = Supervisor(
        "root",
        [
            ChildSpec(
                "rate_limiter", rate_limiter, refs.rate_limiter, shutdown=1.0, mailbox_size=256
            ),
            ChildSpec("pricing", PricingActor, refs.pricing, shutdown=1.0),
            broker,
        ],
        strategy=Strategy.ONE_FOR_ONE,
        intensity=3,
        period=60.0,
    )
    return Tree(root=root, refs=refs)


# ---------------------------------------------------------------------- foreground mode


async def _serve_until_signal(root: Supervisor) -> int:
    exit_code = 0
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("received %s; shutting down", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

            async def supervise() -> None:
                nonlocal exit_code
                try:
                    await root.run(on_started=lambda: log.info("supervision tree running"))
                except SupervisorGaveUp as exc:
                    log.error("root supervisor gave up: %s (cause: %r)", exc, exc.__cause__)
                    exit_code = 1
                tg.cancel_scope.cancel()

            tg.start_soon(stop_on_signal)
            tg.start_soon(supervise)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the production tree in the foreground until SIGINT/SIGTERM (``sumppump run``)."""
    del argv
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tree = build_tree(Settings())
    return anyio.run(_serve_until_signal, tree.root)


if __name__ == "__main__":
    sys.exit(main())
