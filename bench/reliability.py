"""Reliability counts: the scenarios of ``tests/reliability`` run outside pytest, with counters.

Runs the same scenario functions the tests run (imported, not copied):

* the fault-injection matrix (``test_fault_matrix.run_matrix`` over every cell, 200 rounds as in
  CI): rounds, faults actually injected (a session cut short before its fault step injects
  none), completed sessions;
* the bad-input fuzz (``test_fuzz.run_fuzz``, 1,000 derandomized hostile calls as in CI):
  answers by outcome code;
* the preview-token attacks (every ``test_*`` of ``test_tokens``): scenarios passed.

Every app the scenarios start is wrapped so that, when it closes, its simulated TWS is read:
limit violations (message rate, market-data lines, historical pacing), orders received, orders
whose ``orderRef`` repeats (a preview that produced two orders), orders nobody confirmed, and the
simulator's internal errors. The scenarios also assert these per round; a failed assertion is
recorded (``failures``), not hidden. The load figures (``bench/load.py``, whose short run is
``test_load_smoke``) are in ``bench/results/load.json``.

Run: ``.venv/bin/python bench/reliability.py [--quick]``. Writes
``bench/results/reliability.json``. ``--quick``: 22 fault rounds and 50 fuzz examples.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import host_info
from tests.reliability import support, test_fault_matrix, test_fuzz, test_tokens

RESULTS = Path(__file__).resolve().parent / "results" / "reliability.json"


@dataclasses.dataclass
class Ledger:
    """What the simulators behind every closed app saw, summed."""

    apps: int = 0
    tool_calls: int = 0
    violations: Counter[str] = dataclasses.field(default_factory=Counter)
    orders_received: int = 0
    duplicate_orders: int = 0
    unconfirmed_orders: int = 0
    sim_internal_errors: int = 0

    def record(self, app: support.App) -> None:
        sim = app.sim
        refs = [order.order_ref for order in support.placed_orders(sim)]
        self.apps += 1
        self.tool_calls += app.calls
        self.violations.update(dict(sim.stats.violations))
        self.orders_received += len(refs)
        self.duplicate_orders += len(refs) - len(set(refs))
        self.unconfirmed_orders += sum(1 for ref in refs if ref not in app.confirmed)
        self.sim_internal_errors += sim.stats.internal_errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "apps": self.apps,
            "tool_calls": self.tool_calls,
            "violations": dict(self.violations),
            "total_violations": sum(self.violations.values()),
            "orders_received": self.orders_received,
            "duplicate_orders": self.duplicate_orders,
            "unconfirmed_orders": self.unconfirmed_orders,
            "sim_internal_errors": self.sim_internal_errors,
        }


def counting_running_app(ledger: Ledger) -> Callable[..., Any]:
    """``support.running_app`` that records each app into ``ledger`` when it closes."""

    @asynccontextmanager
    async def running_app(*args: Any, **kwargs: Any) -> AsyncIterator[support.App]:
        async with support.running_app(*args, **kwargs) as app:
            try:
                yield app
            finally:
                ledger.record(app)

    return running_app


def failure(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]


async def fault_matrix(workdir: Path) -> dict[str, Any]:
    ledger = Ledger()
    test_fault_matrix.running_app = counting_running_app(ledger)  # type: ignore[assignment]
    injected: Counter[str] = Counter()

    def counted(cell: test_fault_matrix.Cell) -> test_fault_matrix.Cell:
        async def inject(app: support.App, rng: random.Random) -> None:
            injected[cell.name] += 1
            await cell.inject(app, rng)

        return dataclasses.replace(cell, inject=inject)

    started = time.perf_counter()
    cells: dict[str, Any] = {}
    failures: list[str] = []
    try:
        results = await test_fault_matrix.run_matrix(
            workdir, tuple(counted(c) for c in test_fault_matrix.CELLS)
        )
        cells = {name: dict(stats) for name, stats in results.items()}
    except Exception as exc:  # a broken invariant: recorded as a failure
        failures.append(failure(exc))
    for name, stats in cells.items():
        stats["faults_injected"] = injected[name]
    return {
        "seed": test_fault_matrix.SEED,
        "seconds": round(time.perf_counter() - started, 1),
        "rounds": sum(s.get("rounds", 0) for s in cells.values()),
        "faults_injected": sum(injected.values()),
        "completed_sessions": sum(s.get("completed", 0) for s in cells.values()),
        "cells": cells,
        "failures": failures,
        **ledger.as_dict(),
    }


def fuzz(workdir: Path, examples: int) -> dict[str, Any]:
    ledger = Ledger()
    started = time.perf_counter()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(counting_running_app(ledger)(workdir)) as app,
    ):
        try:
            outcomes = test_fuzz.run_fuzz(portal, app, examples)
        except Exception as exc:
            failures.append(failure(exc))
    return {
        "examples": examples,
        "derandomized": True,
        "seconds": round(time.perf_counter() - started, 1),
        "bad_inputs": sum(outcomes.values()),
        "outcomes": dict(outcomes.most_common()),
        "failures": failures,
        **ledger.as_dict(),
    }


async def tokens(workdir: Path) -> dict[str, Any]:
    ledger = Ledger()
    test_tokens.running_app = counting_running_app(ledger)  # type: ignore[assignment]
    started = time.perf_counter()
    scenarios: dict[str, str] = {}
    failures: list[str] = []
    for name, test in inspect.getmembers(test_tokens, inspect.iscoroutinefunction):
        if not name.startswith("test_"):
            continue
        tmp = workdir / name
        tmp.mkdir()
        try:
            if "app" in inspect.signature(test).parameters:
                async with test_tokens.running_app(tmp) as app:
                    await test(app)
                    support.assert_order_invariants(app.sim, app.confirmed)
                    support.assert_no_violations(app.sim)
            else:
                await test(tmp)
            scenarios[name] = "passed"
        except Exception as exc:
            scenarios[name] = "failed"
            failures.append(f"{name}: {failure(exc)}")
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": scenarios,
        "passed": sum(1 for v in scenarios.values() if v == "passed"),
        "failures": failures,
        **ledger.as_dict(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="22 fault rounds, 50 fuzz examples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)  # faults are on purpose
    logging.getLogger("fastmcp").setLevel(logging.CRITICAL)  # the fuzz's bad arguments
    if args.quick:
        os.environ["SUMPPUMP_FAULT_ROUNDS"] = "22"
    host = host_info()
    with tempfile.TemporaryDirectory(prefix="sumppump-reliability-") as tmp:
        base = Path(tmp)
        for part in ("matrix", "fuzz", "tokens"):
            (base / part).mkdir()
        matrix = anyio.run(fault_matrix, base / "matrix", backend="asyncio")
        fuzzed = fuzz(base / "fuzz", 50 if args.quick else 1_000)
        token_runs = anyio.run(tokens, base / "tokens", backend="asyncio")
    parts = {"fault_matrix": matrix, "fuzz": fuzzed, "tokens": token_runs}
    totals = {
        key: sum(part[key] for part in parts.values())
        for key in (
            "total_violations",
            "duplicate_orders",
            "unconfirmed_orders",
            "sim_internal_errors",
            "tool_calls",
        )
    }
    totals["failures"] = sum(len(part["failures"]) for part in parts.values())
    results = {"benchmark": "reliability", "host": host, "quick": args.quick, **parts}
    results["totals"] = totals
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"fault matrix: {matrix['rounds']} rounds, {matrix['faults_injected']} faults injected, "
        f"{matrix['completed_sessions']} sessions completed, {matrix['seconds']} s"
    )
    print(f"fuzz: {fuzzed['bad_inputs']} hostile calls, outcomes {fuzzed['outcomes']}")
    print(f"tokens: {token_runs['passed']}/{len(token_runs['scenarios'])} scenarios passed")
    print(f"totals: {totals}")
    print(f"wrote {RESULTS}")
    if totals["failures"]:
        print(f"FAILURES: see {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
