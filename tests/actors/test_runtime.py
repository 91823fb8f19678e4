"""The caller contract of notes/architecture.md §2.3, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from sumppump.actors.runtime import (
    ActorDown,
    CallTimeout,
    MailboxFull,
    Ref,
    remaining_budget,
    start_actor,
)
from sumppump.supervisor import ChildSpec, Supervisor
from tests.support.toy_actors import (
    Boom,
    ConcurrentToy,
    Echo,
    Echoed,
    Forward,
    Forwarded,
    Silent,
    Sleep,
    ToyActor,
    WaitGate,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def supervised(
    ref: Ref, gate: anyio.Event, *, mailbox_size: int = 8, intensity: int = 10
) -> AsyncIterator[Supervisor]:
    sup = Supervisor(
        "test",
        [ChildSpec("toy", lambda: ToyActor(gate), ref, mailbox_size=mailbox_size, shutdown=0.5)],
        intensity=intensity,
        period=60.0,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        yield sup
        tg.cancel_scope.cancel()


async def wait_for_generation(ref: Ref, generation: int) -> None:
    while ref.generation < generation or not ref.alive:
        await anyio.sleep(0.001)


async def test_call_returns_the_typed_reply() -> None:
    with anyio.fail_after(5):
        async with start_actor(ToyActor, name="toy") as ref:
            reply = await ref.call(Echo(value=7), timeout=1)
    assert isinstance(reply, Echoed)
    assert reply.value == 7
    assert ref.generation == 1
    assert not ref.alive


async def test_call_to_an_address_that_never_started_is_actor_down_at_once() -> None:
    ref = Ref("nobody")
    with anyio.fail_after(1), pytest.raises(ActorDown) as info:
        await ref.call(Echo(value=1), timeout=10)
    assert info.value.reason is None
    with pytest.raises(ActorDown):
        ref.tell(Echo(value=1))


async def test_kill_mid_call_gives_actor_down_at_once_then_a_fresh_incarnation_answers() -> None:
    ref, gate = Ref("toy"), anyio.Event()
    with anyio.fail_after(5):
        async with supervised(ref, gate) as sup:
            first = await ref.call(Echo(value=1), timeout=1)
            assert isinstance(first, Echoed)
            outcome: list[BaseException] = []

            async def caller() -> None:
                try:
                    await ref.call(WaitGate(), timeout=30)
                except ActorDown as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(caller)
                await anyio.wait_all_tasks_blocked()
                killed_at = anyio.current_time()
                sup.kill("toy")
            assert len(outcome) == 1
            assert anyio.current_time() - killed_at < 1.0
            await wait_for_generation(ref, 2)
            second = await ref.call(Echo(value=2), timeout=1)
    assert isinstance(second, Echoed)
    assert second.handled_by != first.handled_by  # fresh state after the restart


async def test_crash_while_handling_gives_actor_down_with_the_cause() -> None:
    ref, gate = Ref("toy"), anyio.Event()
    with anyio.fail_after(5):
        async with supervised(ref, gate):
            with pytest.raises(ActorDown) as info:
                await ref.call(Boom(text="kaput"), timeout=5)
    assert isinstance(info.value.reason, RuntimeError)
    assert str(info.value.reason) == "kaput"
    assert info.value.__cause__ is info.value.reason


async def test_every_queued_call_gets_actor_down_when_the_actor_dies() -> None:
    ref, gate = Ref("toy"), anyio.Event()
    results: list[str] = []
    with anyio.fail_after(5):
        async with supervised(ref, gate, mailbox_size=8) as sup:

            async def caller(msg: WaitGate | Echo) -> None:
                try:
                    await ref.call(msg, timeout=30)
                    results.append("reply")
                except ActorDown:
                    results.append("down")

            async with anyio.create_task_group() as tg:
                tg.start_soon(caller, WaitGate())
                await anyio.wait_all_tasks_blocked()
                for value in range(6):
                    tg.start_soon(caller, Echo(value=value))
                await anyio.wait_all_tasks_blocked()
                sup.kill("toy")
            await wait_for_generation(ref, 2)
            # Queued requests are not carried over to the next incarnation.
            assert ref._incarnation is not None
            assert ref._incarnation.pending == set()
    assert results == ["down"] * 7


async def test_caller_blocked_on_a_full_mailbox_gets_actor_down_when_the_callee_dies() -> None:
    ref, gate = Ref("toy"), anyio.Event()
    outcome: list[str] = []

    async def caller(msg: WaitGate | Echo) -> None:
        try:
            await ref.call(msg, timeout=30)
            outcome.append("reply")
        except ActorDown:
            outcome.append("down")

    with anyio.fail_after(5):
        async with supervised(ref, gate, mailbox_size=1) as sup, anyio.create_task_group() as tg:
            tg.start_soon(caller, WaitGate())  # being handled
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(caller, Echo(value=1))  # fills the one-slot mailbox
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(caller, Echo(value=2))  # blocked in send
            await anyio.wait_all_tasks_blocked()
            sup.kill("toy")
    assert outcome == ["down", "down", "down"]


async def test_tell_into_a_full_mailbox_raises_mailbox_full() -> None:
    gate = anyio.Event()
    with anyio.fail_after(5):
        async with start_actor(lambda: ToyActor(gate), name="toy", mailbox_size=2) as ref:
            ref.tell(WaitGate())
            await anyio.wait_all_tasks_blocked()  # the actor is now busy with it
            ref.tell(Echo(value=1))
            ref.tell(Echo(value=2))
            with pytest.raises(MailboxFull):
                ref.tell(Echo(value=3))
            gate.set()


async def test_timeout_raises_call_timeout_and_the_late_reply_is_dropped() -> None:
    with anyio.fail_after(5):
        async with start_actor(ToyActor, name="toy") as ref:
            with pytest.raises(CallTimeout) as info:
                await ref.call(Sleep(seconds=0.2), timeout=0.05)
            assert isinstance(info.value, TimeoutError)
            # The actor finishes the slow request; its reply goes nowhere and the next call
            # gets its own reply, not the stale one.
            reply = await ref.call(Echo(value=42), timeout=2)
            assert isinstance(reply, Echoed)
            assert reply.value == 42
            assert ref.generation == 1  # the actor was not disturbed


async def test_a_call_abandoned_while_queued_never_reaches_the_actor() -> None:
    gate = anyio.Event()
    actors: list[ToyActor] = []

    def factory() -> ToyActor:
        actors.append(ToyActor(gate))
        return actors[-1]

    with anyio.fail_after(5):
        async with start_actor(factory, name="toy") as ref:
            ref.tell(WaitGate())
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(CallTimeout):
                await ref.call(Echo(value=99), timeout=0.05)
            gate.set()
            await ref.call(Echo(value=1), timeout=2)
    assert actors[0].handled == [1]


async def test_nested_call_inherits_the_remaining_deadline() -> None:
    gate = anyio.Event()
    with anyio.fail_after(5):
        async with (
            start_actor(lambda: ToyActor(gate), name="inner") as inner,
            start_actor(lambda: ToyActor(target=inner), name="outer") as outer,
        ):
            # The outer request has 0.2 s; the nested call asks for 30 s but must give up
            # with the outer request's deadline.
            with pytest.raises(CallTimeout):
                await outer.call(Forward(timeout=30), timeout=0.2)
            gate.set()
            reply = await outer.call(Forward(timeout=30), timeout=2)
    assert isinstance(reply, Forwarded)
    assert reply.outcome == "reply"


async def test_nested_call_reports_timeout_inside_the_actor_before_the_outer_deadline() -> None:
    gate = anyio.Event()
    with anyio.fail_after(5):
        async with (
            start_actor(lambda: ToyActor(gate), name="inner") as inner,
            start_actor(lambda: ToyActor(target=inner), name="outer") as outer,
        ):
            reply = await outer.call(Forward(timeout=0.05), timeout=2)
            gate.set()
    assert isinstance(reply, Forwarded)
    assert reply.outcome == "CallTimeout"
    assert reply.elapsed < 1.0


async def test_remaining_budget_sees_the_callers_cancel_scope() -> None:
    assert remaining_budget(default=-1.0) == -1.0
    with anyio.move_on_after(10):
        assert 9.0 < remaining_budget() <= 10.0
        await anyio.lowlevel.checkpoint()


async def test_a_handler_that_answers_a_call_with_nothing_crashes_instead_of_hanging() -> None:
    ref, gate = Ref("toy"), anyio.Event()
    with anyio.fail_after(5):
        async with supervised(ref, gate):
            with pytest.raises(ActorDown) as info:
                await ref.call(Silent(), timeout=30)
            assert "no reply" in str(info.value.reason)


async def test_a_concurrent_actor_handles_several_calls_at_once_and_keeps_backpressure() -> None:
    gate = anyio.Event()
    results: list[str] = []

    async def caller(ref: Ref) -> None:
        reply = await ref.call(WaitGate(), timeout=5)
        assert isinstance(reply, Echoed)
        results.append("reply")

    with anyio.fail_after(5):
        async with (
            start_actor(lambda: ConcurrentToy(gate), name="io", mailbox_size=1) as ref,
            anyio.create_task_group() as tg,
        ):
            for _ in range(4):
                tg.start_soon(caller, ref)
            await anyio.wait_all_tasks_blocked()
            # Four handlers are waiting on the gate at once; a fifth request queues and a
            # sixth finds the one-slot mailbox full.
            ref.tell(Echo(value=5))
            with pytest.raises(MailboxFull):
                ref.tell(Echo(value=6))
            gate.set()
    assert results == ["reply"] * 4


async def test_a_crash_in_one_concurrent_handler_releases_every_pending_call() -> None:
    gate = anyio.Event()
    ref = Ref("io")
    outcomes: list[str] = []
    sup = Supervisor("s", [ChildSpec("io", lambda: ConcurrentToy(gate), ref, shutdown=0.5)])

    async def waiter() -> None:
        try:
            await ref.call(WaitGate(), timeout=30)
            outcomes.append("reply")
        except ActorDown:
            outcomes.append("down")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            async with anyio.create_task_group() as callers:
                callers.start_soon(waiter)
                callers.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises(ActorDown):
                    await ref.call(Boom(), timeout=5)
            tg.cancel_scope.cancel()
    assert outcomes == ["down", "down"]
