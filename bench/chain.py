"""Chain fetch benchmark against the simulated TWS with IB's limits on.

For a 32-option window (8 strikes each side, both rights) and the "200" window (50 strikes each
side of SPY; the simulator lists 83 SPY strikes, so 166 options), measures: cold (empty contract
cache), warm (conIds from the on-disk cache, fresh process state) and a repeat call within the
quote TTL.

The reference is the one-message-per-option floor (issue 21): (options + contract-detail
requests) ÷ TWS's 50 msg/s, where the contract-detail requests are the ``reqContractDetails`` and
``reqSecDefOptParams`` the fetch made TWS receive (the stock, the expiries, the expiry's
options). Also reported: every message the fetch made TWS receive, counted until the link is
quiet again (cancels may leave after the reply: ``messages_after_reply``).

``modes`` measures the wide window cold with each way of asking for option quotes
(``chain_cache.CHAIN_QUOTES``): snapshots, streams with deferred cancels, and "auto" (the
product's choice: streams up to 60 options, snapshots beyond).

Run: ``.venv/bin/python bench/chain.py``. Writes ``bench/results/chain.json``.
Targets: wide window cold ≤ 1.2 × the floor (issue 21); warm 32-option window ≤ 1.5 s; repeat
within the TTL ≤ 50 ms; no IB limit violated.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import host_info
from sumppump.actors import chain_cache
from sumppump.messages.chain_cache import Chain, GetChain
from sumppump.messages.connection import ConnectionState, GetConnectionState
from sumppump.settings import Settings
from sumppump.supervisor import Tree, build_tree
from sumppump.tws_sim import SimTWS

RESULTS = Path(__file__).resolve().parent / "results" / "chain.json"
WINDOWS = {"32": ("AAPL", 8), "200": ("SPY", 50)}


async def connected_tree(sim: SimTWS, cache: Path) -> tuple[Tree, anyio.abc.TaskGroup]:
    settings = Settings(tws_port=sim.port, connect_timeout_s=2.0)
    tree = build_tree(settings, now=sim.clock.now, cache_dir=cache, simulated=True)
    tg = anyio.create_task_group()
    await tg.__aenter__()
    await tg.start(tree.root.run)
    while True:
        state = await tree.refs.connection.call(GetConnectionState(), timeout=2)
        if isinstance(state, ConnectionState) and state.state == "connected":
            break
        await anyio.sleep(0.01)
    await anyio.sleep(1.2)  # let the handshake's burst leave the rate window
    return tree, tg


async def quiet(sim: SimTWS, period: float = 1.5) -> None:
    """Wait until the simulator has received nothing for ``period`` seconds: ib_async may still
    hold messages of the last call in its own throttle queue (45 per rolling second, so up to a
    second with nothing sent before the rest goes out)."""
    count = -1
    while count != len(sim.requests):
        count = len(sim.requests)
        await anyio.sleep(period)


async def timed_chain(tree: Tree, sim: SimTWS, symbol: str, each_side: int) -> dict[str, Any]:
    """One chain call: the seconds until the reply, and the messages it made TWS receive —
    counted until the link is quiet again, since cancels can trail the reply."""
    await quiet(sim)
    before = len(sim.requests)
    started = time.perf_counter()
    chain = await tree.refs.chain_cache.call(
        GetChain(symbol=symbol, strikes_each_side=each_side), timeout=29
    )
    elapsed = time.perf_counter() - started
    assert isinstance(chain, Chain), chain
    at_reply = len(sim.requests) - before
    await quiet(sim)
    received = [r.name for r in sim.requests[before:]]
    details = received.count("reqContractDetails") + received.count("reqSecDefOptParams")
    options = len(chain.rows) + 2 * len(chain.skipped) if received else 0
    floor = (options + details) / 50.0
    return {
        "seconds": elapsed,
        "options": len(chain.rows),
        "partial": chain.partial,
        "messages_sent": len(received),
        "option_requests": received.count("reqMktData"),
        "cancels": received.count("cancelMktData"),
        "contract_detail_requests": details,
        "floor_seconds_at_50_per_s": floor,
        "ratio_to_floor": elapsed / floor if floor else None,
        "messages_after_reply": len(received) - at_reply,
    }


async def run() -> tuple[dict[str, Any], dict[str, Any]]:
    out: dict[str, Any] = {}
    async with SimTWS(seed=3) as sim:
        for label, (symbol, each_side) in WINDOWS.items():
            cache = Path(tempfile.mkdtemp(prefix="sumppump-bench-"))
            tree, tg = await connected_tree(sim, cache)
            cold = await timed_chain(tree, sim, symbol, each_side)
            repeat = await timed_chain(tree, sim, symbol, each_side)
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            tree, tg = await connected_tree(sim, cache)  # fresh actors, conIds from disk
            warm = await timed_chain(tree, sim, symbol, each_side)
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            out[label] = {"symbol": symbol, "cold": cold, "warm": warm, "repeat": repeat}
        symbol, each_side = WINDOWS["200"]
        modes: dict[str, Any] = {}
        for mode in ("snapshot", "stream", "auto"):
            chain_cache.CHAIN_QUOTES = mode
            cache = Path(tempfile.mkdtemp(prefix="sumppump-bench-"))
            tree, tg = await connected_tree(sim, cache)
            modes[mode] = await timed_chain(tree, sim, symbol, each_side)
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        chain_cache.CHAIN_QUOTES = "auto"
        out["simulator"] = {
            "violations": sim.stats.violations,
            "max_open_lines": sim.stats.max_open_lines,
        }
    return out, modes


def main() -> int:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    windows, modes = anyio.run(run)
    results = {
        "host": host_info(),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "targets": {"cold_ratio_to_floor": 1.2, "warm_32_seconds": 1.5, "repeat_seconds": 0.05},
        "windows": windows,
        "wide_window_cold_by_quote_mode": modes,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'window':>7} {'phase':>7} {'seconds':>8} {'msgs':>5} {'floor s':>8} {'ratio':>6}")
    for label in WINDOWS:
        for phase in ("cold", "warm", "repeat"):
            r = results["windows"][label][phase]
            ratio = "—" if r["ratio_to_floor"] is None else f"{r['ratio_to_floor']:.2f}"
            print(
                f"{label:>7} {phase:>7} {r['seconds']:8.3f} {r['messages_sent']:5d} "
                f"{r['floor_seconds_at_50_per_s']:8.2f} {ratio:>6}"
            )
    for mode, r in results["wide_window_cold_by_quote_mode"].items():
        print(
            f"wide cold, {mode:>8}: {r['seconds']:.3f} s, {r['messages_sent']} messages "
            f"({r['cancels']} cancels), {r['ratio_to_floor']:.2f}× floor, partial={r['partial']}"
        )
    print(f"simulator: {results['windows']['simulator']}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
