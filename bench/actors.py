"""Actor runtime benchmark: call round trip, throughput and restart time, on asyncio and trio.

The reference, run in the same process, is a bare request/reply over two anyio memory streams
(the floor any actor runtime on anyio pays); the ratio says what addressing, deadlines and the
reply registry cost on top of it. Reference and actor calls alternate in blocks, so that load
from other processes on a shared machine weighs on both alike.

Run: ``.venv/bin/python bench/actors.py``. Writes ``bench/results/actors.json``.
Targets (issue 3): p50 round trip <= 50 µs on asyncio, >= 20,000 calls/s, restart <= 5 ms.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio.lowlevel

from bench.machine import host_info
from sumppump.actors.runtime import Actor, Ref, start_actor
from sumppump.messages.base import Command, Message, Reply
from sumppump.supervisor import ChildSpec, Supervisor

CALLS = 20_000
BLOCKS = 10  # the reference and the actor alternate in blocks of CALLS / BLOCKS calls
RESTARTS = 300
RESULTS = Path(__file__).resolve().parent / "results" / "actors.json"


class Add(Command, frozen=True, kw_only=True):
    value: int


class Sum(Reply, frozen=True, kw_only=True):
    total: int


class Crash(Command, frozen=True, kw_only=True):
    pass


class Adder(Actor):
    def __init__(self) -> None:
        self.total = 0

    async def handle(self, msg: Message) -> Reply | None:
        match msg:
            case Add(value=value):
                self.total += value
                return Sum(total=self.total)
            case Crash():
                raise RuntimeError("crash on purpose")
            case _:
                return None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def round_trips(blocks: int = BLOCKS) -> tuple[dict[str, float], dict[str, float]]:
    """The reference and the actor, timed in alternating blocks of ``CALLS / blocks`` calls.

    The reference (the floor): one task answers requests over a pair of memory streams. The two
    are interleaved so that a busy neighbour on a shared machine slows both alike and the ratio
    survives; calls/s is the calls divided by the sum of their round trips.
    """
    req_tx, req_rx = anyio.create_memory_object_stream[int](1)
    rep_tx, rep_rx = anyio.create_memory_object_stream[int](1)
    bare: list[float] = []
    actor: list[float] = []

    async def server() -> None:
        async with req_rx, rep_tx:
            async for value in req_rx:
                await rep_tx.send(value + 1)

    per_block = CALLS // blocks
    async with (
        anyio.create_task_group() as tg,
        req_tx,
        rep_rx,
        start_actor(Adder, name="adder") as ref,
    ):
        tg.start_soon(server)
        for i in range(500):  # warm-up
            await req_tx.send(i)
            await rep_rx.receive()
            await ref.call(Add(value=1), timeout=5)
        for _ in range(blocks):
            for i in range(per_block):
                t0 = time.perf_counter()
                await req_tx.send(i)
                await rep_rx.receive()
                bare.append(time.perf_counter() - t0)
            for _ in range(per_block):
                t0 = time.perf_counter()
                await ref.call(Add(value=1), timeout=5)
                actor.append(time.perf_counter() - t0)
        await req_tx.aclose()
    return summarise(bare, sum(bare)), summarise(actor, sum(actor))


async def actor_concurrent_throughput(callers: int = 8) -> float:
    per_caller = CALLS // callers
    async with start_actor(Adder, name="adder", mailbox_size=64) as ref:

        async def caller() -> None:
            for _ in range(per_caller):
                await ref.call(Add(value=1), timeout=5)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        elapsed = time.perf_counter() - started
    return per_caller * callers / elapsed


async def restart_time() -> dict[str, float]:
    """From the crash reply (ActorDown) to the new incarnation answering its first call."""
    ref = Ref("adder")
    sup = Supervisor("bench", [ChildSpec("adder", Adder, ref)], intensity=RESTARTS * 2, period=60)
    samples: list[float] = []
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        for generation in range(1, RESTARTS + 1):
            while ref.generation < generation:
                await anyio.lowlevel.checkpoint()
            with contextlib.suppress(Exception):
                await ref.call(Crash(), timeout=5)
            t0 = time.perf_counter()
            while True:
                try:
                    await ref.call(Add(value=1), timeout=5)
                    break
                except Exception:
                    await anyio.lowlevel.checkpoint()
            samples.append(time.perf_counter() - t0)
        tg.cancel_scope.cancel()
    return {"p50_ms": statistics.median(samples) * 1e3, "p99_ms": percentile(samples, 0.99) * 1e3}


def summarise(samples: list[float], elapsed: float) -> dict[str, float]:
    return {
        "p50_us": statistics.median(samples) * 1e6,
        "p99_us": percentile(samples, 0.99) * 1e6,
        "calls_per_s": len(samples) / elapsed,
    }


async def run_backend() -> dict[str, Any]:
    bare, actor = await round_trips()
    return {
        "reference_bare_streams": bare,
        "actor_call": actor,
        "actor_vs_bare_p50_ratio": actor["p50_us"] / bare["p50_us"],
        "actor_concurrent_calls_per_s_8_callers": await actor_concurrent_throughput(),
        "restart": await restart_time(),
    }


def main() -> int:
    logging.getLogger("sumppump").setLevel(logging.ERROR)  # the restarts are on purpose
    results: dict[str, Any] = {
        "host": host_info(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "anyio": anyio.__version__ if hasattr(anyio, "__version__") else "",
        },
        "calls": CALLS,
        "interleaved_blocks": BLOCKS,
        "restarts": RESTARTS,
        "targets": {"p50_us_asyncio": 50, "calls_per_s": 20_000, "restart_ms": 5},
        "backends": {},
    }
    for backend in ("asyncio", "trio"):
        results["backends"][backend] = anyio.run(run_backend, backend=backend)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"{'backend':8} {'p50 µs':>8} {'p99 µs':>8} {'calls/s':>10} {'8 callers/s':>12} "
        f"{'bare p50':>9} {'ratio':>6} {'restart p50 ms':>15}"
    )
    for backend, r in results["backends"].items():
        a = r["actor_call"]
        print(
            f"{backend:8} {a['p50_us']:8.1f} {a['p99_us']:8.1f} {a['calls_per_s']:10.0f} "
            f"{r['actor_concurrent_calls_per_s_8_callers']:12.0f} "
            f"{r['reference_bare_streams']['p50_us']:9.1f} {r['actor_vs_bare_p50_ratio']:6.2f} "
            f"{r['restart']['p50_ms']:15.3f}"
        )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
