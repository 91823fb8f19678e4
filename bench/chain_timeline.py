"""Diagnostic (not part of ``make bench``): the wire timeline of one 100-option chain fetch.

Fetches SPY with 25 strikes each side (100 options: one batch of 90 market-data lines, the
line budget, then one of 10) through the in-memory MCP client against the simulated app, a few
times, and prints for each run whether the chain came back partial and what the simulated TWS
received, grouped: message name, count, first and last arrival (seconds after the first
request). It shows when requests really reach TWS, which is not when SumpPump's rate limiter
granted them: ib_async throttles itself as well (45 messages per rolling second) and queues the
rest. ``--no-ib-throttle`` switches ib_async's own throttle off (``Client.MaxRequests = 0``),
leaving SumpPump's rate limiter as the only pacing: an experiment, not a fix. On the tree of
2026-11-24 it shows the 90 requests of the first batch leaving in one burst (the simulator counts
a rate violation and drops the link at the 51st): the connection actor reserves a batch's
messages with the limiter chunk by chunk, waits for the last grant, then sends them all at once.

Since issue 21 every chunk leaves as the limiter grants it, the chain's option quotes are
snapshots (one message each, no cancel) and ib_async's throttle no longer queues them.

Run: ``.venv/bin/python bench/chain_timeline.py [--runs 4] [--wide] [--no-ib-throttle]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmcp import Client

from bench.tools import wait_connected
from sumppump.mcp_server import create_app
from sumppump.settings import Settings

CHAIN = {"symbol": "SPY", "strikes_each_side": 25}
if "--wide" in sys.argv:
    CHAIN["strikes_each_side"] = 30


def grouped(requests: list[Any]) -> list[tuple[str, int, float, float]]:
    """Consecutive requests of one name as (name, count, first s, last s)."""
    start = requests[0].wall_time
    runs: list[list[Any]] = []
    for request in requests:
        offset = request.wall_time - start
        if runs and runs[-1][0] == request.name:
            runs[-1][1] += 1
            runs[-1][3] = offset
        else:
            runs.append([request.name, 1, offset, offset])
    return [(name, count, first, last) for name, count, first, last in runs]


async def one_run(workdir: Path) -> None:
    settings = Settings(audit_path=workdir / "audit.jsonl")
    app = create_app(settings, simulated=True, cache_dir=workdir)
    async with Client(app) as client:
        await wait_connected(client)
        await anyio.sleep(2.0)  # let the connect handshake leave the rate window
        sim = app.state.sim  # type: ignore[attr-defined]
        before = len(sim.requests)
        result = await client.call_tool("get_options_chain", CHAIN, raise_on_error=False)
        chain = result.structured_content or {}
        print(
            f"{len(chain.get('rows', []))} options, partial={chain.get('partial')} "
            f"{chain.get('partial_reason', '')} skipped={chain.get('skipped')}"
        )
        for name, count, first, last in grouped(sim.requests[before:]):
            print(f"  {name:20} ×{count:<3} {first:6.2f} s – {last:6.2f} s")


async def run(runs: int) -> None:
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="sumppump-timeline-") as tmp:
            await one_run(Path(tmp))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--no-ib-throttle", action="store_true")
    parser.add_argument(
        "--wide", action="store_true", help="30 strikes each side (120 options): the tool's widest"
    )
    args = parser.parse_args()
    if args.no_ib_throttle:
        from ib_async.client import Client as IBClient

        IBClient.MaxRequests = 0
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    anyio.run(run, args.runs, backend="asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
