"""Read-load benchmark through the real MCP layer against the simulated TWS with IB's limits on.

50 concurrent callers (one in-memory MCP session) call get_quote / get_options_chain /
get_market_stats / get_account round-robin for a fixed time, in two modes:

* ``one``: every call is about AAPL (the session's one current symbol never changes);
* ``mixed``: symbols rotate over AAPL, MSFT, SPY, NVDA (the chain cache holds each symbol's
  data side by side; reading another symbol voids nothing);
* ``rounds`` (issue 21), what a model does with parallel tool calls: rounds of nine calls at
  once (get_options_chain, get_quote, get_market_stats × AAPL, MSFT, NVDA), a pause of
  ``ROUND_PAUSE_S`` between rounds. The first round is cold; the later ones are *warm reads*
  (symbols, contracts and histories cached; quotes fetched afresh). Targets: warm p50 ≤ 1 s,
  0 PACING answers, 0 IB limit violations. ``--clients`` does not apply.

Reported per mode and tool: calls, p50 / p95 / max latency, answers by outcome (ok or error
code), throughput; and the simulator's limit counters (message rate, market-data lines,
historical pacing), which must all be zero.

Run: ``.venv/bin/python bench/load.py [--duration 60] [--clients 50] [--modes one,mixed]``.
Writes ``bench/results/load.json``. ``run_load`` is also called by
``tests/reliability/test_load_smoke.py`` with a short duration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmcp import Client

from bench.machine import host_info
from sumppump.mcp_server import create_app
from sumppump.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
TOOLS = ("get_quote", "get_options_chain", "get_market_stats", "get_account")
SYMBOLS = {
    "one": ("AAPL",),
    "mixed": ("AAPL", "MSFT", "SPY", "NVDA"),
    "rounds": ("AAPL", "MSFT", "NVDA"),
}
ROUND_TOOLS = ("get_options_chain", "get_quote", "get_market_stats")
ROUND_PAUSE_S = 2.0


def _args(tool: str, symbol: str) -> dict[str, Any]:
    if tool == "get_account":
        return {}
    if tool == "get_options_chain":
        return {"symbol": symbol, "strikes_each_side": 4}
    return {"symbol": symbol}


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


async def run_load(
    duration_s: float, *, clients: int = 50, mode: str = "one", workdir: Path | None = None
) -> dict[str, Any]:
    """Run ``clients`` concurrent callers for ``duration_s`` against a fresh simulated app and
    return the figures (see the module docstring). Each answer is checked to be structured;
    an unstructured one is counted under ``unstructured``."""
    symbols = SYMBOLS[mode]
    with tempfile.TemporaryDirectory() as tmp:
        base = workdir or Path(tmp)
        settings = Settings(audit_path=base / "audit.jsonl")
        app = create_app(settings, simulated=True, cache_dir=base)
        latencies: dict[str, list[float]] = defaultdict(list)
        outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        async with Client(app) as client:
            service = app.state  # type: ignore[attr-defined]
            sim = service.sim
            with anyio.fail_after(30):
                while True:
                    status = await client.call_tool("get_status", {}, raise_on_error=False)
                    content = status.structured_content or {}
                    if content.get("connection", {}).get("state") == "connected":
                        break
                    await anyio.sleep(0.05)
            counter = 0
            started = time.perf_counter()
            stop_at = started + duration_s

            async def follow_wall_clock() -> None:
                # The embedded simulator's clock is frozen unless advanced; TWS's is not.
                last = time.perf_counter()
                while True:
                    await anyio.sleep(0.25)
                    now = time.perf_counter()
                    await sim.advance(now - last)
                    last = now

            async def one_call(tool: str, symbol: str, label: str) -> None:
                t0 = time.perf_counter()
                result = await client.call_tool(tool, _args(tool, symbol), raise_on_error=False)
                latencies[label].append(time.perf_counter() - t0)
                content = result.structured_content
                if not isinstance(content, dict):
                    outcomes[label]["unstructured"] += 1
                elif result.is_error:
                    outcomes[label][str(content.get("error", {}).get("code"))] += 1
                else:
                    outcomes[label]["ok"] += 1

            async def rounds() -> None:
                first = True
                while first or time.perf_counter() < stop_at:
                    async with anyio.create_task_group() as calls:
                        for symbol in symbols:
                            for tool in ROUND_TOOLS:
                                label = f"{tool} ({'cold' if first else 'warm'})"
                                calls.start_soon(one_call, tool, symbol, label)
                    first = False
                    await anyio.sleep(ROUND_PAUSE_S)

            async def caller() -> None:
                nonlocal counter
                while time.perf_counter() < stop_at:
                    n = counter
                    counter += 1
                    tool = TOOLS[n % len(TOOLS)]
                    symbol = symbols[(n // len(TOOLS)) % len(symbols)]
                    await one_call(tool, symbol, tool)

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow_wall_clock)
                if mode == "rounds":
                    await rounds()
                else:
                    async with anyio.create_task_group() as callers:
                        for _ in range(clients):
                            callers.start_soon(caller)
                tg.cancel_scope.cancel()
            elapsed = time.perf_counter() - started
            stats = sim.stats
            total = sum(len(v) for v in latencies.values())
            warm = sorted(v for label, vs in latencies.items() if "(warm)" in label for v in vs)
            return {
                "mode": mode,
                "symbols": list(symbols),
                "clients": clients,
                "duration_s": round(elapsed, 2),
                "calls": total,
                "calls_per_s": round(total / elapsed, 1),
                "tools": {
                    tool: {
                        "calls": len(values),
                        "p50_ms": round(_percentile(sorted(values), 50) * 1000, 1),
                        "p95_ms": round(_percentile(sorted(values), 95) * 1000, 1),
                        "max_ms": round(max(values) * 1000, 1),
                        "outcomes": dict(outcomes[tool]),
                    }
                    for tool, values in sorted(latencies.items())
                },
                "warm_p50_ms": round(_percentile(warm, 50) * 1000, 1) if warm else None,
                "pacing_answers": sum(o.get("PACING", 0) for o in outcomes.values()),
                "violations": dict(stats.violations),
                "total_violations": stats.total_violations,
                "max_open_lines": stats.max_open_lines,
                "requests_to_tws": sum(stats.requests_by_type.values()),
                "internal_errors": stats.internal_errors,
            }


async def _main(duration: float, clients: int, modes: list[str]) -> dict[str, Any]:
    host = host_info()
    runs = [await run_load(duration, clients=clients, mode=mode) for mode in modes]
    return {
        "benchmark": "load",
        "host": host,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "limits": {"message_rate_per_s": 50, "market_data_lines": 100, "pacing": "IB historical"},
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per mode")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--modes", default="one,mixed,rounds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    result = anyio.run(_main, args.duration, args.clients, args.modes.split(","), backend="asyncio")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for run in result["runs"]:
        print(
            f"{run['mode']}: {run['calls']} calls in {run['duration_s']} s "
            f"({run['calls_per_s']}/s), violations {run['violations']}, "
            f"PACING answers {run['pacing_answers']}, warm p50 {run['warm_p50_ms']} ms"
        )
        for tool, figures in run["tools"].items():
            print(
                f"  {tool:26} n={figures['calls']:6} p50 {figures['p50_ms']:7.1f} ms "
                f"p95 {figures['p95_ms']:7.1f} ms  {figures['outcomes']}"
            )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
