"""Order ticket benchmark: size of the HTML resources, and render time in headless Chromium.

Render time is measured in the browser's clock from the host posting the tool result to the
view to the ticket drawn (legs, checks, payoff chart, countdown), over several renders of a
bull call spread preview against the simulated TWS. Needs /usr/bin/chromium and playwright.

Run: ``.venv/bin/python bench/ticket.py [--screenshot docs/ticket.png]``.
Writes ``bench/results/ticket.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmcp import Client
from fastmcp.apps import UI_EXTENSION_ID, UI_MIME_TYPE
from mcp.client.extension import advertise

from bench.machine import host_info
from sumppump.mcp_server import create_app
from sumppump.settings import Settings
from sumppump.ticket import chain_html, ticket_html
from sumppump.ticket.host import find_chromium, screenshot_ticket

RESULTS = Path(__file__).resolve().parent / "results" / "ticket.json"
RENDERS = 5


async def run(screenshot: Path | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="sumppump-bench-ticket-"))
    app = create_app(Settings(audit_path=work / "audit.jsonl"), simulated=True, cache_dir=work)
    ui = advertise(UI_EXTENSION_ID, {"mimeTypes": [UI_MIME_TYPE]})
    async with Client(app, extensions=[ui]) as client:
        with anyio.fail_after(20):
            while True:
                status = await client.call_tool("get_status", {}, raise_on_error=False)
                if (status.structured_content or {}).get("connection", {}).get(
                    "state"
                ) == "connected":
                    break
                await anyio.sleep(0.05)
        chain = await client.call_tool(
            "get_options_chain", {"symbol": "AAPL", "strikes_each_side": 4}
        )
        data = chain.structured_content or {}
        strikes = sorted({row["strike"] for row in data["rows"]})
        args = {
            "symbol": "AAPL",
            "strategy": "bull_call_spread",
            "expiry": data["expiry"],
            "strikes": [strikes[3], strikes[5]],
            "quantity": 2,
        }
        renders = []
        for i in range(RENDERS):
            target = screenshot if (screenshot is not None and i == RENDERS - 1) else None
            shot = await screenshot_ticket(
                client, "calculate_strategy", args, target or work / f"ticket-{i}.png"
            )
            renders.append(shot.render_ms)
    return {
        "benchmark": "order ticket (MCP App) in headless Chromium",
        "host": host_info(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "ticket_html_bytes": len(ticket_html().encode()),
        "chain_html_bytes": len(chain_html().encode()),
        "renders": RENDERS,
        "render_ms_median": round(statistics.median(renders), 1),
        "render_ms_max": round(max(renders), 1),
        "render_ms_all": [round(r, 1) for r in renders],
        "note": "from the tool result posted to the view to the ticket drawn (browser clock); "
        "the first render includes the view's JavaScript start-up",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    if find_chromium() is None:
        print("bench/ticket.py skipped: no chromium (apt-get install chromium)", file=sys.stderr)
        return
    result = anyio.run(run, args.screenshot)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
