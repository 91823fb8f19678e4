"""The served process: start-up time, resident memory after big chains, and the size of the tool
listing the model sees.

Everything here spawns ``python -m sumppump serve --sim`` (what Claude Desktop runs, with the
simulated TWS embedded) and speaks MCP to it over stdio with fastmcp's client:

* start-up: from spawning the process until the ``tools/list`` answer arrives (the client's
  ``initialize`` handshake included), ``--runs`` times after one first launch with empty caches
  (reported apart); p50 and max. Also reported: until the ``initialize`` answer, and until
  ``get_status`` says TWS (the simulator) is connected.
* memory: the server's VmRSS and VmHWM (peak) from ``/proc/<pid>/status`` after start-up, after
  a 100-option SPY chain (25 strikes each side, both rights) and after a second SPY expiry of the
  same size: 200 options fetched in the session. One chain cannot hold 200: the tool caps
  ``strikes_each_side`` at 30 (120 options) and the simulator lists 83 SPY strikes. With
  ``--sim`` the simulated TWS — its instrument catalogue, quote model and sockets — lives in
  the same process, so the figures include it; a real deployment's process holds no simulator.
* imports: the wall time of ``python -c "import sumppump.mcp_server"`` and the cumulative
  import time of the heaviest packages (``-X importtime``): the share of start-up that is Python
  importing modules before any server code runs.
* tool listing: the JSON of the ``tools/list`` result as sent (``by_alias``, no nulls), which is
  what the client puts in front of the model, in characters; plus the server's ``instructions``.

Run: ``.venv/bin/python bench/serve.py [--runs 7]``. Writes ``bench/results/serve.json``.
Targets: start-up ≤ 2 s, RSS ≤ 250 MB, tool listing ≤ 25,000 characters.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmcp import Client

from bench.machine import host_info
from bench.tools import call_ok, stdio_transport, wait_connected

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
TARGETS = {"startup_p50_s": 2.0, "rss_mb": 250.0, "tool_listing_chars": 25_000}
#: 25 strikes each side × both rights = 100 options per expiry; two expiries make the 200.
BIG_CHAIN = {"symbol": "SPY", "strikes_each_side": 25, "right": "both"}


def server_pid() -> int:
    """The pid of this process's ``sumppump serve`` child.

    :raises RuntimeError: there is none (or more than one).
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line[:5] == "PPid:")
        if ppid == os.getpid() and b"sumppump" in cmdline and b"serve" in cmdline:
            found.append(int(entry.name))
    if len(found) != 1:
        raise RuntimeError(f"expected one sumppump serve child, found {found}")
    return found[0]


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB (10^6 bytes)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) * 1024 / 1e6, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


async def one_start(workdir: Path) -> dict[str, float]:
    """Spawn the server, list its tools, wait until TWS is connected; the three times in s."""
    started = time.perf_counter()
    async with Client(stdio_transport(workdir)) as client:
        initialized = time.perf_counter() - started
        await client.list_tools()
        listed = time.perf_counter() - started
        await wait_connected(client)
        connected = time.perf_counter() - started
    return {"initialize_s": initialized, "tools_list_s": listed, "tws_connected_s": connected}


async def startup(runs: int) -> dict[str, Any]:
    """``runs`` start-ups sharing one cache directory: the first is a first launch (matplotlib
    builds its font cache, no contract cache), the others are what every later launch of Claude
    Desktop sees; p50 / max are over those later launches."""
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="sumppump-start-") as tmp:
        for _ in range(runs + 1):
            samples.append(await one_start(Path(tmp)))  # noqa: PERF401 (sequential on purpose)
    first, later = samples[0], samples[1:]
    out: dict[str, Any] = {
        "runs": len(later),
        "first_launch": {key: round(value, 3) for key, value in first.items()},
    }
    for key in ("initialize_s", "tools_list_s", "tws_connected_s"):
        values = [s[key] for s in later]
        out[key] = {
            "p50": round(statistics.median(values), 3),
            "max": round(max(values), 3),
            "min": round(min(values), 3),
        }
    return out


#: Modules whose cumulative import time is reported (the served process imports all of them).
IMPORTS = ("sumppump.mcp_server", "fastmcp", "mcp", "ib_async", "sumppump.charts", "matplotlib")


def import_times(runs: int = 3) -> dict[str, Any]:
    """How much of start-up is Python imports: the wall time of ``python -c "import
    sumppump.mcp_server"`` (median of ``runs``) and, from one ``-X importtime`` run, the
    cumulative import time of the modules in ``IMPORTS`` (each where it is first imported)."""
    command = [sys.executable, "-c", "import sumppump.mcp_server"]
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parent.parent)
        walls.append(time.perf_counter() - started)
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import sumppump.mcp_server"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    cumulative: dict[str, float] = {}
    for line in traced.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, total, name = line.split("|", 2)
        name = name.strip()
        if name in IMPORTS and name not in cumulative and total.strip().isdigit():
            cumulative[name] = round(int(total) / 1e6, 3)
    return {
        "python_import_mcp_server_s": round(statistics.median(walls), 3),
        "cumulative_import_s": cumulative,
    }


async def memory_and_listing(workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    async with Client(stdio_transport(workdir)) as client:
        listing = await client.list_tools_mcp()
        pid = server_pid()
        listing_json = listing.model_dump_json(by_alias=True, exclude_none=True)
        per_tool = {
            tool.name: len(tool.model_dump_json(by_alias=True, exclude_none=True))
            for tool in listing.tools
        }
        instructions = client.instructions or ""
        tool_listing = {
            "tools": len(listing.tools),
            "chars": len(listing_json),
            "bytes_utf8": len(listing_json.encode()),
            "instructions_chars": len(instructions),
            "largest_tools_chars": dict(sorted(per_tool.items(), key=lambda kv: -kv[1])[:5]),
        }
        await wait_connected(client)
        after_start = memory_mb(pid)
        first = await call_ok(client, "get_options_chain", BIG_CHAIN)
        after_first = memory_mb(pid)
        later = [e for e in first["expiries"] if e > first["expiry"]]
        second_args = {**BIG_CHAIN, "expiry": later[0]}
        second = await call_ok(client, "get_options_chain", second_args)
        after_second = memory_mb(pid)
        memory = {
            "simulator_in_same_process": True,
            "after_startup": after_start,
            "after_chain": {
                **after_first,
                "options": len(first["rows"]),
                "expiry": first["expiry"],
                "partial": first["partial"],
                "skipped_strikes": first["skipped"],
            },
            "after_second_chain": {
                **after_second,
                "options": len(second["rows"]),
                "options_in_session": len(first["rows"]) + len(second["rows"]),
                "expiry": second["expiry"],
                "partial": second["partial"],
                "skipped_strikes": second["skipped"],
            },
            "chain_args": BIG_CHAIN,
        }
    return memory, tool_listing


async def run(runs: int) -> dict[str, Any]:
    start = await startup(runs)
    start["imports"] = import_times()
    with tempfile.TemporaryDirectory(prefix="sumppump-mem-") as tmp:
        memory, listing = await memory_and_listing(Path(tmp))
    peak = max(memory["after_second_chain"]["peak_rss_mb"], memory["after_chain"]["peak_rss_mb"])
    return {
        "startup": start,
        "memory": memory,
        "tool_listing": listing,
        "targets": TARGETS,
        "targets_met": {
            "startup_p50_s": start["tools_list_s"]["p50"] <= TARGETS["startup_p50_s"],
            "rss_mb": peak <= TARGETS["rss_mb"],
            "tool_listing_chars": listing["chars"] <= TARGETS["tool_listing_chars"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="start-ups to time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    host = host_info()
    figures = anyio.run(run, args.runs, backend="asyncio")
    results = {"benchmark": "serve", "host": host, "command": "python -m sumppump serve --sim"}
    results.update(figures)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    s = figures["startup"]
    listed = s["tools_list_s"]
    print(
        f"start-up to tools/list: p50 {listed['p50']} s, max {listed['max']} s ({s['runs']} runs)"
        f"; to TWS connected p50 {s['tws_connected_s']['p50']} s"
    )
    m = figures["memory"]
    for key in ("after_startup", "after_chain", "after_second_chain"):
        print(f"  {key:20} {m[key]}")
    print(f"tool listing: {figures['tool_listing']}")
    print(f"targets met: {figures['targets_met']}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
