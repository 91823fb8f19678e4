"""``sumppump demo``: a scripted conversation against the simulated TWS, printed as a transcript.

It drives the real MCP server (in memory, through the fastmcp Client) exactly as Claude Desktop
would, from the chain to a confirmed order, its fill, the stop-loss prompt and the stop order:
every panel is what a tool answered. Any error makes the demo exit non-zero. When a system
Chromium is installed, it also renders the order ticket (the MCP App Claude Desktop shows) in
headless Chromium and saves a screenshot, whose path it prints.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastmcp import Client
from fastmcp.apps import UI_EXTENSION_ID, UI_MIME_TYPE
from mcp.client.extension import advertise
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sumppump.mcp_server import create_app
from sumppump.settings import Settings
from sumppump.ticket.host import find_chromium, screenshot_ticket

__all__ = ["main"]


@dataclass
class Step:
    said: str
    tool: str
    args: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(default_factory=dict)
    remember: str = ""  # keep the structured result under this name for later steps
    when: Callable[[dict[str, Any]], bool] | None = None  # run only if this says so


def _chain_table(data: dict[str, Any]) -> Table:
    table = Table(
        title=f"{data['symbol']} {data['expiry']} ({data['data_type']}, {data['environment']})",
        show_lines=False,
    )
    for col in ("strike", "right", "bid", "ask", "mid", "iv", "delta", "theta", "OI", "greeks"):
        table.add_column(col, justify="right")
    for row in data["rows"]:
        table.add_row(
            f"{row['strike']:g}",
            row["right"],
            _f(row["bid"]),
            _f(row["ask"]),
            _f(row["mid"]),
            _f(row["iv"], pct=True),
            _f(row["delta"], digits=3),
            _f(row["theta"], digits=3),
            _f(row["open_interest"], digits=0),
            row["greeks_source"] or "—",
        )
    return table


def _f(value: float | None, *, digits: int = 2, pct: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if pct else f"{value:,.{digits}f}"


async def _conversation(console: Console, out_dir: Path) -> int:
    # The demo's orders are simulated: they go in the demo's own audit log, never the user's.
    settings = Settings(audit_path=out_dir / "audit.jsonl")
    app = create_app(settings, simulated=True, cache_dir=out_dir / "cache")

    def spread(memory: dict[str, Any]) -> dict[str, Any]:
        chain = memory["chain"]
        strikes = sorted({row["strike"] for row in chain["rows"]})
        quote = chain["underlying"]
        spot = (quote["bid"] + quote["ask"]) / 2 if quote["bid"] and quote["ask"] else quote["last"]
        low = max((k for k in strikes if k <= spot), default=strikes[0])
        high = min((k for k in strikes if k > low + 4), default=strikes[-1])
        return {
            "symbol": "AAPL",
            "strategy": "bull_call_spread",
            "expiry": chain["expiry"],
            "strikes": [low, high],
            "quantity": 2,
        }

    def confirm(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda memory: {
            "preview_id": memory[name]["preview_id"],
            "confirm_text": memory[name]["confirm_text"],
        }

    def stop(memory: dict[str, Any]) -> dict[str, Any]:
        call = memory["fill"]["stop_loss_prompt"]["call"]["arguments"]
        return {k: v for k, v in call.items() if v is not None}

    steps = [
        Step("Is everything connected?", "get_status"),
        Step("What is Apple trading at?", "get_quote", {"symbol": "AAPL"}),
        Step(
            "Show me AAPL's options for next week.",
            "get_options_chain",
            {"symbol": "AAPL", "strikes_each_side": 4},
            remember="chain",
        ),
        Step("How volatile has it been?", "get_market_stats", {"symbol": "AAPL"}),
        Step("Any news?", "get_news", {"symbol": "AAPL", "limit": 3}),
        Step(
            "I'm bullish. What would a trade look like?",
            "suggest_strikes",
            {"symbol": "AAPL", "outlook": "bullish"},
        ),
        Step(
            "Work out a bull call spread, two of them.",
            "calculate_strategy",
            spread,
            remember="preview",
        ),
        Step(
            "Yes — place exactly that order.", "execute_trade", confirm("preview"), remember="fill"
        ),
        Step("Yes, set the suggested stop.", "set_stop_loss", stop, remember="stop"),
        Step("Confirmed, place the stop.", "execute_trade", confirm("stop")),
        Step("What do I hold now?", "get_positions"),
        Step(
            "I'd like out of the spread now.",
            "close_position",
            lambda memory: {"symbol": "AAPL", "position": memory["fill"]["order_ref"]},
            remember="close",
        ),
        Step("Yes, close it.", "execute_trade", confirm("close"), remember="closing"),
        Step(
            "It hasn't filled; move the limit to the natural price.",
            "modify_order",
            lambda memory: {
                "order_ref": memory["closing"]["order_ref"],
                "limit_price": memory["close"]["details"]["natural"],
            },
            remember="move",
            when=lambda memory: memory["closing"]["status"] != "Filled",
        ),
        Step(
            "Yes, change it.",
            "execute_trade",
            confirm("move"),
            when=lambda memory: "move" in memory,
        ),
        Step("What do I hold now, and is anything still working?", "get_positions"),
        Step("And the orders?", "get_open_orders"),
    ]
    failures = 0
    memory: dict[str, Any] = {}
    # Declares the MCP Apps extension, as Claude Desktop does.
    ui = advertise(UI_EXTENSION_ID, {"mimeTypes": [UI_MIME_TYPE]})
    async with Client(app, extensions=[ui]) as client:
        for step in steps:
            if step.when is not None and not step.when(memory):
                continue
            args = step.args(memory) if callable(step.args) else step.args
            console.print(f"\n[bold cyan]You:[/] {step.said}")
            console.print(f"[dim]→ {step.tool}({json.dumps(args)})[/]")
            result = await client.call_tool(step.tool, args, raise_on_error=False)
            data = result.structured_content or {}
            if result.is_error:
                error = data.get("error", {})
                failures += 1
                console.print(
                    Panel(
                        f"{error.get('code')}: {error.get('message')}\n[dim]{error.get('hint')}[/]",
                        border_style="red",
                    )
                )
                if step.remember:
                    break  # later steps need this result
                continue
            if step.remember:
                memory[step.remember] = data
            if step.tool == "get_options_chain":
                console.print(_chain_table(data))
            console.print(Panel(data.get("summary", ""), title="SumpPump", border_style="green"))
            for block in result.content:
                if getattr(block, "type", "") == "image":
                    path = out_dir / "payoff.png"
                    path.write_bytes(base64.b64decode(block.data))  # type: ignore[union-attr]
                    console.print(f"[green]payoff chart saved to {path}[/]")
            if step.tool == "calculate_strategy":
                await _ticket_screenshot(console, client, args, out_dir / "ticket.png")
    return failures


async def _ticket_screenshot(
    console: Console, client: Client[Any], args: dict[str, Any], path: Path
) -> None:
    """The order ticket as Claude Desktop would show it (a separate preview of the same order,
    never confirmed), rendered in headless Chromium. Skipped, saying why, without Chromium."""
    if find_chromium() is None:
        console.print("[yellow]order ticket screenshot skipped: no chromium installed[/]")
        return
    try:
        shot = await screenshot_ticket(client, "calculate_strategy", args, path)
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[yellow]order ticket screenshot skipped: {exc}[/]")
        return
    console.print(
        f"[green]order ticket screenshot saved to {shot.path}[/] "
        f"[dim](rendered in {shot.render_ms:.0f} ms)[/]",
        soft_wrap=True,  # the path stays on one line, whole
    )


def main() -> int:
    console = Console(width=110)
    console.print(
        Panel(
            "SumpPump demo — a conversation with the [bold]SIMULATED[/] TWS. "
            "Nothing here reaches a broker.",
            border_style="magenta",
        )
    )
    out_dir = Path(tempfile.mkdtemp(prefix="sumppump-demo-"))
    started = time.perf_counter()
    failures = anyio.run(_conversation, console, out_dir)
    console.print(
        f"\n[dim]demo finished in {time.perf_counter() - started:.1f}s; files in {out_dir}[/]"
    )
    return 1 if failures else 0
