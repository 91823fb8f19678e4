"""Tool latency through the real MCP layer, in-process and over stdio, against the simulated TWS.

Two transports, the same sequence of calls:

* ``in_process``: ``fastmcp.Client(create_app(settings, simulated=True))`` in memory;
* ``stdio``: ``python -m sumppump serve --sim`` spawned as a subprocess and driven through
  fastmcp's stdio client transport (what Claude Desktop does).

Per tool, one caller at a time: p50 / p95 / max and n. The reference, measured in the same
process over the same transport just before, is a trivial MCP round trip: a FastMCP server whose
one tool returns a constant (``reference_noop``; FastMCP 4.2.3 answers the protocol's ``ping``
with "Method not found", so a no-op tool call stands in for it). ``ratio_to_reference`` is a
tool's p50 over the reference's p50, which stays meaningful when the machine is busy.
``tools/list`` on SumpPump is measured too.

``get_options_chain`` is measured twice: ``cold`` is the first fetch of the symbol in the
session (the call before switched the session to another symbol, which drops its contracts and
quotes; the conIds come from the on-disk contract cache after the very first fetch) and ``warm``
a repeat within the chain's 5 s quote lifetime (answered from memory). ``calculate_strategy``
asks for fresh leg quotes on every call; ``suggest_strikes`` works on the session's chain.

With ``--sim`` the simulated TWS runs inside the served process (and inside this process for the
in-process run): its CPU time is part of every figure here.

Run: ``.venv/bin/python bench/tools.py [--quick]``. Writes ``bench/results/tools.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmcp import Client, FastMCP
from fastmcp.client.transports import StdioTransport

from bench.machine import host_info
from sumppump.mcp_server import create_app
from sumppump.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "tools.json"
SYMBOL = "AAPL"
OTHER_SYMBOL = "MSFT"

#: Calls per tool (full run, quick run).
SIZES: dict[str, tuple[int, int]] = {
    "noop": (300, 30),
    "list_tools": (100, 10),
    "get_status": (200, 20),
    "get_account": (200, 20),
    "get_positions": (200, 20),
    "get_open_orders": (200, 20),
    "get_quote": (50, 5),
    "get_options_chain_cold": (12, 3),
    "get_options_chain_warm": (50, 5),
    "calculate_strategy": (30, 3),
    "suggest_strikes": (30, 3),
}


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted ``ordered``, inclusive method."""
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q) - 1]


def summarise(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 50) * 1e3, 3),
        "p95_ms": round(percentile(ordered, 95) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3),
    }


def noop_app() -> FastMCP[Any]:
    """The reference server: FastMCP with one tool that returns a constant structured result."""
    app: FastMCP[Any] = FastMCP("noop")

    @app.tool
    def noop() -> dict[str, str]:
        """Return a constant."""
        return {"environment": "REFERENCE"}

    return app


def noop_stdio_transport(workdir: Path) -> StdioTransport:
    """This script with ``--serve-noop``: the reference server over stdio."""
    return StdioTransport(
        command=sys.executable,
        args=[str(Path(__file__).resolve()), "--serve-noop"],
        keep_alive=False,
        log_file=workdir / "noop.stderr.log",
    )


def stdio_transport(workdir: Path) -> StdioTransport:
    """``python -m sumppump serve --sim`` with its cache and audit log in ``workdir``; its stderr
    goes to ``workdir/server.stderr.log``."""
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(workdir / "cache"),
        "SUMPPUMP_AUDIT_PATH": str(workdir / "audit.jsonl"),
    }
    return StdioTransport(
        command=sys.executable,
        args=["-m", "sumppump", "serve", "--sim"],
        env=env,
        cwd=str(Path(__file__).resolve().parent.parent),
        keep_alive=False,
        log_file=workdir / "server.stderr.log",
    )


async def wait_connected(client: Client[Any], timeout: float = 30.0) -> float:
    """Poll get_status until TWS (the simulator) is connected; return the seconds it took."""
    started = time.perf_counter()
    with anyio.fail_after(timeout):
        while True:
            status = await client.call_tool("get_status", {}, raise_on_error=False)
            content = status.structured_content or {}
            if content.get("connection", {}).get("state") == "connected":
                return time.perf_counter() - started
            await anyio.sleep(0.05)


async def call_ok(client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call ``tool``; a structured error is a failed benchmark (raises RuntimeError)."""
    result = await client.call_tool(tool, args, raise_on_error=False)
    content = result.structured_content
    if result.is_error or not isinstance(content, dict):
        raise RuntimeError(f"{tool}({args}) failed: {content or result.content}")
    return content


async def timed(
    n: int, call: Callable[[], Awaitable[Any]], before: Callable[[], Awaitable[Any]] | None = None
) -> dict[str, Any]:
    """``n`` sequential calls of ``call`` (``before`` runs untimed ahead of each)."""
    samples: list[float] = []
    for _ in range(n):
        if before is not None:
            await before()
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return summarise(samples)


async def measure_reference(client: Client[Any], quick: bool) -> dict[str, Any]:
    """The trivial round trip: ``noop`` on the reference server."""
    await client.call_tool("noop", {})
    return await timed(SIZES["noop"][1 if quick else 0], lambda: client.call_tool("noop", {}))


async def measure_tools(
    client: Client[Any], quick: bool, reference: dict[str, Any]
) -> dict[str, Any]:
    """The per-tool figures for one connected session (see the module docstring); each gets
    ``ratio_to_reference``: its p50 over the ``reference`` p50 (a trivial tool call)."""

    def size(key: str) -> int:
        return SIZES[key][1 if quick else 0]

    def tool(name: str, args: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: call_ok(client, name, args)

    figures: dict[str, Any] = {}
    await client.list_tools()
    figures["list_tools"] = await timed(size("list_tools"), client.list_tools)
    for name in ("get_status", "get_account", "get_positions", "get_open_orders"):
        await call_ok(client, name, {})  # first call outside the sample
        figures[name] = await timed(size(name), tool(name, {}))

    chain_args = {"symbol": SYMBOL, "strikes_each_side": 8}
    switch_away = tool("get_quote", {"symbol": OTHER_SYMBOL})
    first_t0 = time.perf_counter()
    chain = await call_ok(client, "get_options_chain", chain_args)
    figures["get_options_chain_first"] = summarise([time.perf_counter() - first_t0])
    figures["get_options_chain_first"]["options"] = len(chain["rows"])
    figures["get_options_chain_cold"] = await timed(
        size("get_options_chain_cold"), tool("get_options_chain", chain_args), before=switch_away
    )
    figures["get_options_chain_cold"]["options"] = len(chain["rows"])
    await call_ok(client, "get_options_chain", chain_args)
    figures["get_options_chain_warm"] = await timed(
        size("get_options_chain_warm"), tool("get_options_chain", chain_args)
    )
    figures["get_options_chain_warm"]["options"] = len(chain["rows"])
    figures["get_quote"] = await timed(size("get_quote"), tool("get_quote", {"symbol": SYMBOL}))

    strikes = sorted({row["strike"] for row in chain["rows"]})
    spot = chain["underlying"].get("last") or chain["underlying"].get("mid") or strikes[0]
    above = [s for s in strikes if s >= spot] or strikes
    pair = [above[0], above[min(2, len(above) - 1)]]
    strategy_args = {
        "symbol": SYMBOL,
        "strategy": "bull_call_spread",
        "expiry": chain["expiry"],
        "strikes": pair,
    }
    await call_ok(client, "calculate_strategy", strategy_args)
    figures["calculate_strategy"] = await timed(
        size("calculate_strategy"), tool("calculate_strategy", strategy_args)
    )
    suggest_args = {"symbol": SYMBOL, "outlook": "bullish"}
    await call_ok(client, "suggest_strikes", suggest_args)
    figures["suggest_strikes"] = await timed(
        size("suggest_strikes"), tool("suggest_strikes", suggest_args)
    )

    reference_p50 = reference["p50_ms"]
    for values in figures.values():
        values["ratio_to_reference"] = (
            round(values["p50_ms"] / reference_p50, 1) if reference_p50 else None
        )
    return figures


async def in_process(workdir: Path, quick: bool) -> dict[str, Any]:
    async with Client(noop_app()) as client:
        reference = await measure_reference(client, quick)
    settings = Settings(audit_path=workdir / "audit.jsonl")
    app = create_app(settings, simulated=True, cache_dir=workdir / "cache")
    async with Client(app) as client:
        connect_s = await wait_connected(client)
        tools = await measure_tools(client, quick, reference)
    return {"connect_to_tws_s": round(connect_s, 3), "reference_noop": reference, "tools": tools}


async def over_stdio(workdir: Path, quick: bool) -> dict[str, Any]:
    async with Client(noop_stdio_transport(workdir)) as client:
        reference = await measure_reference(client, quick)
    async with Client(stdio_transport(workdir)) as client:
        connect_s = await wait_connected(client)
        tools = await measure_tools(client, quick, reference)
    return {"connect_to_tws_s": round(connect_s, 3), "reference_noop": reference, "tools": tools}


async def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, runner in (("in_process", in_process), ("stdio", over_stdio)):
        with tempfile.TemporaryDirectory(prefix=f"sumppump-bench-{label}-") as tmp:
            out[label] = await runner(Path(tmp), quick)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few calls per tool (smoke run)")
    parser.add_argument("--serve-noop", action="store_true", help="serve the reference over stdio")
    args = parser.parse_args()
    if args.serve_noop:
        noop_app().run(transport="stdio", show_banner=False)
        return 0
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    host = host_info()
    transports = anyio.run(run, args.quick, backend="asyncio")
    results = {
        "benchmark": "tools",
        "host": host,
        "quick": args.quick,
        "simulator_in_served_process": True,
        "symbol": SYMBOL,
        "chain_window": {"strikes_each_side": 8, "right": "both"},
        "transports": transports,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for label, figures in transports.items():
        ref = figures["reference_noop"]
        print(
            f"{label} (connected to the simulator after {figures['connect_to_tws_s']} s; "
            f"reference no-op tool p50 {ref['p50_ms']:.2f} ms, p95 {ref['p95_ms']:.2f} ms)"
        )
        for name, f in figures["tools"].items():
            print(
                f"  {name:24} n={f['n']:4} p50 {f['p50_ms']:9.2f} ms  p95 {f['p95_ms']:9.2f} ms"
                f"  ×ref {f['ratio_to_reference']}"
            )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
