"""OTP supervision semantics, on asyncio and trio (notes/architecture.md §1.1, §2, §6)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from sumppump.actors.runtime import ActorDown, Ref
from sumppump.messages.common import NotImplementedYet, Ping, Pong
from sumppump.messages.errors import SupervisorGaveUp
from sumppump.settings import Settings
from sumppump.supervisor import (
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    build_tree,
)
from tests.support.toy_actors import Boom, Echo, Echoed, Stopping, ToyActor, WaitGate

pytestmark = pytest.mark.anyio


class FakeClock:
    """An injected clock whose sleeps advance it instantly and are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def toy_specs(
    names: Sequence[str], log: list[str] | None = None, **kwargs: object
) -> tuple[list[ChildSpec], dict[str, Ref]]:
    refs = {name: Ref(name) for name in names}
    specs = [
        ChildSpec(
            name, (lambda n=name: ToyActor(log=log, name=n)), refs[name], shutdown=0.5, **kwargs
        )  # type: ignore[arg-type]
        for name in names
    ]
    return specs, refs


@asynccontextmanager
async def running(sup: Supervisor) -> AsyncIterator[Supervisor]:
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        yield sup
        tg.cancel_scope.cancel()


async def settle(refs: dict[str, Ref], generations: dict[str, int]) -> None:
    """Wait until every ref is routable at (at least) the given generation."""
    while any(not refs[n].alive or refs[n].generation < g for n, g in generations.items()):
        await anyio.sleep(0.001)


async def crash(ref: Ref) -> None:
    with pytest.raises(ActorDown):
        await ref.call(Boom(), timeout=2)


def generations(refs: dict[str, Ref]) -> dict[str, int]:
    return {name: ref.generation for name, ref in refs.items()}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.ONE_FOR_ONE, {"a": 1, "b": 2, "c": 1}),
        (Strategy.REST_FOR_ONE, {"a": 1, "b": 2, "c": 2}),
        (Strategy.ONE_FOR_ALL, {"a": 2, "b": 2, "c": 2}),
    ],
)
async def test_strategy_restarts_exactly_the_right_siblings(
    strategy: Strategy, expected: dict[str, int]
) -> None:
    log: list[str] = []
    specs, refs = toy_specs(["a", "b", "c"], log)
    with anyio.fail_after(5):
        async with running(Supervisor("s", specs, strategy=strategy, intensity=5)) as sup:
            await crash(refs["b"])
            await settle(refs, expected)
            await anyio.sleep(0.05)  # nothing else restarts afterwards
            assert generations(refs) == expected
            assert sup.running() == ("a", "b", "c")
            for ref in refs.values():
                assert isinstance(await ref.call(Echo(value=1), timeout=1), Echoed)
    restarted = [n for n, g in expected.items() if g == 2 and n != "b"]
    # Siblings are stopped in reverse start order before the group restarts in start order.
    stops = [entry for entry in log if entry.startswith("stop:")][: len(restarted) + 1]
    assert stops[0] == "stop:b"
    assert stops[1:] == [f"stop:{n}" for n in sorted(restarted, reverse=True)]


async def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    log: list[str] = []
    specs, refs = toy_specs(["a", "b", "c"], log)
    with anyio.fail_after(5):
        async with running(Supervisor("s", specs)):
            assert all(ref.alive for ref in refs.values())
    assert log == ["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"]
    assert not any(ref.alive for ref in refs.values())


async def test_restart_intensity_exceeded_escalates_and_leaves_nothing_running() -> None:
    specs, refs = toy_specs(["a", "b"])
    sup = Supervisor("s", specs, intensity=3, period=60)
    with anyio.fail_after(5), pytest.RaisesGroup(SupervisorGaveUp):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            for generation in range(1, 5):
                await settle(refs, {"a": generation})
                await crash(refs["a"])
    assert sup.events.count(("give_up", "a")) == 1
    assert refs["a"].generation == 4  # the first start plus three restarts
    assert not refs["a"].alive and not refs["b"].alive
    with pytest.raises(ActorDown):
        await refs["b"].call(Echo(value=1), timeout=1)


async def test_supervisor_gave_up_rises_bare_from_run() -> None:
    specs, refs = toy_specs(["a"])
    sup = Supervisor("s", specs, intensity=0)

    async def crash_soon() -> None:
        await settle(refs, {"a": 1})
        await crash(refs["a"])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(crash_soon)
            with pytest.raises(SupervisorGaveUp):  # not wrapped in an ExceptionGroup
                await sup.run()


async def test_crashes_spaced_further_apart_than_the_period_never_escalate() -> None:
    clock = FakeClock()
    specs, refs = toy_specs(["a"])
    sup = Supervisor("s", specs, intensity=1, period=10, clock=clock, sleep=clock.sleep)
    with anyio.fail_after(5):
        async with running(sup):
            for generation in range(1, 6):
                await settle(refs, {"a": generation})
                clock.now += 11
                await crash(refs["a"])
            await settle(refs, {"a": 6})
    assert ("give_up", "a") not in sup.events


@pytest.mark.parametrize(
    ("restart", "exit_kind", "restarted"),
    [
        (Restart.PERMANENT, "normal", True),
        (Restart.PERMANENT, "crash", True),
        (Restart.PERMANENT, "kill", True),
        (Restart.TRANSIENT, "normal", False),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TRANSIENT, "kill", True),
        (Restart.TEMPORARY, "normal", False),
        (Restart.TEMPORARY, "crash", False),
        (Restart.TEMPORARY, "kill", False),
    ],
)
async def test_restart_type_matrix(restart: Restart, exit_kind: str, restarted: bool) -> None:
    specs, refs = toy_specs(["a", "b"], restart=restart)
    with anyio.fail_after(5):
        async with running(Supervisor("s", specs, intensity=5)) as sup:
            if exit_kind == "normal":
                await refs["a"].call(Stopping(), timeout=1)
            elif exit_kind == "crash":
                await crash(refs["a"])
            else:
                sup.kill("a")
            while ("exit", "a") not in [(k, v.split(":")[0]) for k, v in sup.events]:
                await anyio.sleep(0.001)
            await anyio.sleep(0.02)
            assert (refs["a"].generation == 2) is restarted
            assert refs["a"].alive is restarted
            assert refs["b"].generation == 1


async def test_temporary_sibling_stopped_by_a_group_restart_is_not_restarted() -> None:
    refs = {name: Ref(name) for name in "abc"}
    specs = [
        ChildSpec("a", ToyActor, refs["a"]),
        ChildSpec("b", ToyActor, refs["b"], restart=Restart.TEMPORARY),
        ChildSpec("c", ToyActor, refs["c"]),
    ]
    with anyio.fail_after(5):
        async with running(Supervisor("s", specs, strategy=Strategy.ONE_FOR_ALL)) as sup:
            await crash(refs["a"])
            await settle(refs, {"a": 2, "c": 2})
            assert sup.running() == ("a", "c")
            assert not refs["b"].alive


async def test_a_busy_child_is_killed_after_its_shutdown_grace() -> None:
    gate = anyio.Event()  # never set: the child stays busy
    ref = Ref("busy")
    sup = Supervisor("s", [ChildSpec("busy", lambda: ToyActor(gate), ref, shutdown=0.1)])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            ref.tell(WaitGate())
            await anyio.wait_all_tasks_blocked()
            started = anyio.current_time()
            tg.cancel_scope.cancel()
        elapsed = anyio.current_time() - started
    assert 0.1 <= elapsed < 1.0
    assert ("stop", "busy") in sup.events


async def test_a_child_that_ignores_its_kill_is_abandoned_and_its_siblings_still_stop() -> None:
    log: list[str] = []
    refs = {name: Ref(name) for name in ("first", "stubborn")}
    gate = anyio.Event()
    specs = [
        ChildSpec("first", lambda: ToyActor(log=log, name="first"), refs["first"], shutdown=0.1),
        ChildSpec(
            "stubborn",
            lambda: ToyActor(gate, ignore_cancel=1.5, log=log, name="stubborn"),
            refs["stubborn"],
            shutdown=0.1,
        ),
    ]
    sup = Supervisor("s", specs)
    with anyio.fail_after(8):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            refs["stubborn"].tell(WaitGate())
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    # Grace 0.1 s + kill grace 1 s < 1.5 s of shielded work: the supervisor moved on to stop
    # "first" while "stubborn" was still busy.
    assert sup.events[-2:] == [("abandon", "stubborn"), ("stop", "first")]
    assert log.index("stop:first") < log.index("stop:stubborn")


async def test_backoff_schedule_doubles_up_to_the_cap_without_jitter() -> None:
    clock = FakeClock()
    ref = Ref("tws")
    backoff = Backoff(min=0.5, max=4.0, jitter=0.0, reset_after=60.0)
    spec = ChildSpec("tws", ToyActor, ref, backoff=backoff)
    sup = Supervisor("s", [spec], intensity=100, period=60, clock=clock, sleep=clock.sleep)
    with anyio.fail_after(5):
        async with running(sup):
            for generation in range(1, 7):
                await settle({"tws": ref}, {"tws": generation})
                await crash(ref)
            await settle({"tws": ref}, {"tws": 7})
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_backoff_resets_after_the_child_stayed_up_long_enough() -> None:
    clock = FakeClock()
    ref = Ref("tws")
    backoff = Backoff(min=1.0, max=30.0, jitter=0.0, reset_after=60.0)
    sup = Supervisor(
        "s",
        [ChildSpec("tws", ToyActor, ref, backoff=backoff)],
        intensity=100,
        period=1,
        clock=clock,
        sleep=clock.sleep,
    )
    with anyio.fail_after(5):
        async with running(sup):
            for generation, uptime in enumerate([0, 0, 0, 61, 0], start=1):
                await settle({"tws": ref}, {"tws": generation})
                clock.now += uptime
                await crash(ref)
            await settle({"tws": ref}, {"tws": 6})
    assert clock.sleeps == [1.0, 2.0, 4.0, 1.0, 2.0]


async def test_backoff_jitter_stays_within_its_factor() -> None:
    backoff = Backoff(min=1.0, max=60.0, jitter=0.2)
    rng = random.Random(7)
    delays = [backoff.delay(n, rng) for n in range(1, 10) for _ in range(50)]
    bases = [min(60.0, 2 ** (n - 1)) for n in range(1, 10) for _ in range(50)]
    assert all(b <= d <= b * 1.2 for d, b in zip(delays, bases, strict=True))
    assert len({round(d, 9) for d in delays}) > 100


async def test_supervisor_handles_other_exits_while_a_child_backs_off() -> None:
    """The backoff is a timer, not a sleep in the loop: a sibling crashing meanwhile restarts
    at once (one_for_one)."""
    gate = anyio.Event()
    clock = FakeClock()

    async def held_sleep(seconds: float) -> None:
        await gate.wait()
        await clock.sleep(seconds)

    refs = {"tws": Ref("tws"), "pure": Ref("pure")}
    specs = [
        ChildSpec("tws", ToyActor, refs["tws"], backoff=Backoff(min=5, max=5, jitter=0)),
        ChildSpec("pure", ToyActor, refs["pure"]),
    ]
    sup = Supervisor("s", specs, intensity=10, clock=clock, sleep=held_sleep)
    with anyio.fail_after(5):
        async with running(sup):
            await crash(refs["tws"])
            await crash(refs["pure"])
            await settle(refs, {"pure": 2})
            assert not refs["tws"].alive  # still backing off
            gate.set()
            await settle(refs, {"tws": 2})


async def test_start_failure_at_boot_makes_the_supervisor_fail_and_stops_earlier_children() -> None:
    log: list[str] = []
    refs = {name: Ref(name) for name in ("ok", "bad")}
    specs = [
        ChildSpec("ok", lambda: ToyActor(log=log, name="ok"), refs["ok"]),
        ChildSpec("bad", lambda: ToyActor(fail_start=lambda: True), refs["bad"]),
    ]
    with anyio.fail_after(5), pytest.raises(SupervisorGaveUp) as info:
        await Supervisor("s", specs).run()
    assert "bad failed to start" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert log == ["start:ok", "stop:ok"]


async def test_failing_restarts_count_against_the_intensity() -> None:
    attempts: list[int] = []

    def fails_after_first_start() -> bool:
        attempts.append(1)
        return len(attempts) > 1

    ref = Ref("flaky")
    spec = ChildSpec("flaky", lambda: ToyActor(fail_start=fails_after_first_start), ref)
    sup = Supervisor("s", [spec], intensity=3, period=60)
    with anyio.fail_after(5), pytest.RaisesGroup(SupervisorGaveUp):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await crash(ref)
    assert len(attempts) == 4  # boot + three failed restarts, the fourth restart escalates


async def test_rest_for_one_when_a_later_sibling_fails_to_restart_the_group_retries() -> None:
    """OTP's rest_for_one_other_child_fails_restart: the group is retried, counting each try."""
    failures = [True, True, False]
    refs = {name: Ref(name) for name in ("a", "b")}
    started_b = [0]

    def b_fails() -> bool:
        started_b[0] += 1
        return started_b[0] > 1 and failures.pop(0)

    specs = [
        ChildSpec("a", ToyActor, refs["a"]),
        ChildSpec("b", lambda: ToyActor(fail_start=b_fails), refs["b"]),
    ]
    sup = Supervisor("s", specs, strategy=Strategy.REST_FOR_ONE, intensity=5, period=60)
    with anyio.fail_after(5):
        async with running(sup):
            await crash(refs["a"])
            await settle(refs, {"a": 2, "b": 2})
    assert started_b[0] == 4


async def test_tree_can_be_shut_down_while_a_child_is_in_a_failing_restart_loop() -> None:
    """OTP hanging_restart_loop: shutdown is processed while restarts keep failing."""
    clock = FakeClock()
    starts = [0]

    def always_fails_after_boot() -> bool:
        starts[0] += 1
        return starts[0] > 1

    ref = Ref("loop")
    spec = ChildSpec(
        "loop",
        lambda: ToyActor(fail_start=always_fails_after_boot),
        ref,
        backoff=Backoff(min=0.01, max=0.01, jitter=0),
    )
    sup = Supervisor("s", [spec], intensity=10_000, period=60)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await crash(ref)
            while starts[0] < 5:
                await anyio.sleep(0.005)
            tg.cancel_scope.cancel()
    assert not ref.alive
    del clock


async def test_nested_supervisor_giving_up_is_restarted_by_its_parent() -> None:
    refs = {name: Ref(name) for name in ("pure", "leaf")}

    def broker() -> Supervisor:
        return Supervisor("broker", [ChildSpec("leaf", ToyActor, refs["leaf"])], intensity=0)

    specs = [
        ChildSpec("pure", ToyActor, refs["pure"]),
        ChildSpec("broker", broker, shutdown=float("inf")),
    ]
    root = Supervisor("root", specs, intensity=3, period=60)
    with anyio.fail_after(5):
        async with running(root):
            await crash(refs["leaf"])  # intensity 0: the broker gives up at once
            await settle(refs, {"leaf": 2})
            assert refs["pure"].generation == 1
            assert any(e == ("exit", "broker:SupervisorGaveUp") for e in root.events)
            while "broker" not in root.running():  # leaf is routable before broker finished
                await anyio.sleep(0.001)  # starting, as in OTP
            root.kill("broker/leaf")
            await settle(refs, {"leaf": 3})


async def test_kill_of_an_unknown_child_is_a_key_error() -> None:
    specs, _ = toy_specs(["a"])
    with anyio.fail_after(5):
        async with running(Supervisor("s", specs)) as sup:
            with pytest.raises(KeyError):
                sup.kill("nope")
            with pytest.raises(KeyError):
                sup.kill("a/deeper")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the production tree runs ib_async
async def test_production_tree_starts_and_every_actor_answers(tmp_path: Path) -> None:
    tree = build_tree(Settings(tws_port=1), cache_dir=tmp_path)  # TWS unreachable: backs off
    with anyio.fail_after(5):
        async with running(tree.root) as root:
            for field in (
                "rate_limiter",
                "pricing",
                "connection",
                "chain_cache",
                "risk",
                "execution",
            ):
                ref: Ref = getattr(tree.refs, field)
                reply = await ref.call(Ping(), timeout=1)
                assert isinstance(reply, Pong | NotImplementedYet)
            broker = root.child("broker")
            assert broker is not None
            assert broker.running() == ("connection", "chain_cache", "risk", "execution")
            root.kill("broker/chain_cache")  # rest_for_one: risk and execution restart too
            await settle(
                {"risk": tree.refs.risk, "execution": tree.refs.execution},
                {"risk": 2, "execution": 2},
            )
            assert tree.refs.connection.generation == 1


def _make_specs_for_chaos(
    names: Sequence[str], factory: Callable[[str], ToyActor]
) -> tuple[list[ChildSpec], dict[str, Ref]]:
    refs = {name: Ref(name) for name in names}
    return [
        ChildSpec(n, (lambda n=n: factory(n)), refs[n], mailbox_size=4, shutdown=0.2) for n in names
    ], refs
