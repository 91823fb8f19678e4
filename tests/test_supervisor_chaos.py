"""Chaos: random crashes and kills while callers hammer the tree. No call may ever hang."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sumppump.actors.runtime import ActorDown, CallTimeout, Ref
from sumppump.messages.errors import SupervisorGaveUp
from sumppump.supervisor import ChildSpec, Strategy, Supervisor
from tests.support.toy_actors import Boom, Echo, Echoed, Sleep, ToyActor

pytestmark = pytest.mark.anyio

NAMES = ("a", "b", "c")
CALL_DEADLINE = 2.0

Operation = tuple[str, int, int]  # (kind, actor index, argument)

operations = st.lists(
    st.tuples(
        st.sampled_from(["call", "call", "call", "slow", "boom", "kill", "pause"]),
        st.integers(0, len(NAMES) - 1),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=40,
)


def build(strategy: Strategy, intensity: int) -> tuple[Supervisor, dict[str, Ref]]:
    refs = {name: Ref(name) for name in NAMES}
    specs = [ChildSpec(n, ToyActor, refs[n], mailbox_size=2, shutdown=0.2) for n in NAMES]
    return Supervisor("chaos", specs, strategy=strategy, intensity=intensity, period=60), refs


async def drive(
    sup: Supervisor, refs: dict[str, Ref], ops: list[Operation]
) -> tuple[dict[str, int], float]:
    outcomes = {"reply": 0, "down": 0, "timeout": 0}
    worst = 0.0

    async def one_call(ref: Ref, msg: Echo | Sleep | Boom) -> None:
        nonlocal worst
        start = anyio.current_time()
        try:
            reply = await ref.call(msg, timeout=CALL_DEADLINE)
            assert isinstance(reply, Echoed)
            outcomes["reply"] += 1
        except ActorDown:
            outcomes["down"] += 1
        except CallTimeout:
            outcomes["timeout"] += 1
        worst = max(worst, anyio.current_time() - start)

    async with anyio.create_task_group() as callers:
        for kind, index, arg in ops:
            ref = refs[NAMES[index]]
            match kind:
                case "call":
                    callers.start_soon(one_call, ref, Echo(value=arg))
                case "slow":
                    callers.start_soon(one_call, ref, Sleep(seconds=arg / 1000))
                case "boom":
                    callers.start_soon(one_call, ref, Boom())
                case "kill":
                    if NAMES[index] in sup.running():
                        sup.kill(NAMES[index])
                case "pause":
                    await anyio.sleep(arg / 1000)
    return outcomes, worst


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, strategy=st.sampled_from(list(Strategy)), intensity=st.integers(0, 6))
async def test_random_kills_and_calls_never_hang(
    ops: list[Operation], strategy: Strategy, intensity: int
) -> None:
    sup, refs = build(strategy, intensity)
    gave_up = False

    async def supervise(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        nonlocal gave_up
        try:
            await sup.run(task_status=task_status)
        except SupervisorGaveUp:
            gave_up = True  # the callers go on and must all get ActorDown

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(supervise)
            outcomes, worst = await drive(sup, refs, ops)
            tg.cancel_scope.cancel()
    calls = sum(1 for kind, _, _ in ops if kind in ("call", "slow", "boom"))
    assert sum(outcomes.values()) == calls  # every call ended, in one of the three ways
    assert worst < CALL_DEADLINE + 0.5
    restarts = sum(1 for kind, _ in sup.events if kind == "restart_scheduled")
    crashes = sum(1 for kind, _ in sup.events if kind == "exit")
    # All of this runs inside one period: every crash is restarted until the (intensity+1)-th,
    # which escalates; the intensity is never exceeded without escalation.
    assert restarts <= intensity
    assert gave_up == (crashes > intensity)
    assert restarts == min(crashes, intensity)
    if gave_up:
        assert sup.running() == ()


@pytest.mark.parametrize("strategy", list(Strategy))
async def test_twenty_callers_under_random_crashes_and_kills(strategy: Strategy) -> None:
    sup, refs = build(strategy, intensity=100_000)
    rng = random.Random(1234)
    counts = {"reply": 0, "down": 0, "timeout": 0}
    worst = 0.0

    async def caller(seed: int) -> None:
        nonlocal worst
        local = random.Random(seed)
        for _ in range(40):
            ref = refs[local.choice(NAMES)]
            msg = Boom() if local.random() < 0.05 else Echo(value=1)
            start = anyio.current_time()
            try:
                await ref.call(msg, timeout=CALL_DEADLINE)
                counts["reply"] += 1
            except ActorDown:
                counts["down"] += 1
                await anyio.sleep(0.001)
            except CallTimeout:
                counts["timeout"] += 1
            worst = max(worst, anyio.current_time() - start)

    async def chaos_monkey() -> None:
        while True:
            await anyio.sleep(rng.uniform(0.001, 0.01))
            alive = sup.running()
            if alive:
                sup.kill(rng.choice(alive))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            monkey = anyio.CancelScope()

            async def run_monkey() -> None:
                with monkey:
                    await chaos_monkey()

            tg.start_soon(run_monkey)
            async with anyio.create_task_group() as callers:
                for seed in range(20):
                    callers.start_soon(caller, seed)
            monkey.cancel()
            tg.cancel_scope.cancel()
    assert sum(counts.values()) == 20 * 40
    assert counts["reply"] > 0 and counts["down"] > 0
    assert counts["timeout"] == 0
    assert worst < CALL_DEADLINE
