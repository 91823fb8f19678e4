"""``sumppump demo``: a scripted conversation against the simulated TWS, printed as a transcript.

It drives the real MCP server (in memory, through the fastmcp Client) exactly as Claude Desktop
would, from the chain to a confirmed order, its fill, the stop-loss prompt and the stop order.
Every panel is what the model reads in Claude Desktop (the result's text content: Claude Desktop
ignores structuredContent), and every later step takes its arguments (strikes, preview ids,
confirm texts, the stop) from that text, as the model must. Any error makes the demo exit
non-zero. When a system
Chromium is installed, it also renders the order ticket (the MCP App Claude Desktop shows) in
headless Chromium and saves a screenshot, whose path it prints.
"""

from __future__ import annotations

import base64
import json
import re
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
from rich.markup import escape
from rich.panel import Panel

from sumppump.mcp_server import create_app
from sumppump.rendering.profiles import claude_desktop
from sumppump.settings import Settings
from sumppump.ticket.host import find_chromium, screenshot_ticket

__all__ = ["main"]


@dataclass
class Step:
    said: str
    tool: str
    args: dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]] = field(default_factory=dict)
    remember: str = ""  # keep the result's text under this name for later steps
    when: Callable[[dict[str, str]], bool] | None = None  # run only if this says so


# ---------------------------------------------------------------------- reading the text
# The demo reads results as the model in Claude Desktop does: the text content only.


def _find(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise DemoError(f"the text has no {pattern!r}:\n{text}")
    return found


class DemoError(RuntimeError):
    """A result's text lacks a fact the next step needs."""


def chain_from_text(text: str) -> tuple[str, float, list[float]]:
    """Expiry, underlying price and strikes, from get_options_chain's text table."""
    head = _find(r"options expiring (\d{4}-\d{2}-\d{2}), underlying ([\d,.]+)", text)
    strikes = sorted(
        {float(m.group(1)) for m in re.finditer(r"^(\d+(?:\.\d+)?) [CP] ", text, re.MULTILINE)}
    )
    if not strikes:
        raise DemoError(f"no strikes in the chain text:\n{text}")
    return head.group(1), float(head.group(2).replace(",", "")), strikes


def preview_from_text(text: str) -> dict[str, str]:
    """preview_id and confirm_text, as a preview's text states them."""
    found = _find(r"Preview (\S+) expires \S+?\. Confirm text: (.+)$", text)
    return {"preview_id": found.group(1), "confirm_text": found.group(2)}


def stop_call_from_text(text: str) -> dict[str, Any]:
    """The arguments of the suggested set_stop_loss call in execute_trade's text."""
    found = _find(r"set_stop_loss\(([^)]*)\)", text)
    args: dict[str, Any] = {}
    for key, value in re.findall(r"(\w+)=(\"[^\"]*\"|'[^']*'|[\d.]+)", found.group(1)):
        args[key] = value[1:-1] if value[0] in "\"'" else float(value)
    return args


def _conversation_steps() -> list[Step]:
    def spread(memory: dict[str, str]) -> dict[str, Any]:
        expiry, spot, strikes = chain_from_text(memory["chain"])
        low = max((k for k in strikes if k <= spot), default=strikes[0])
        high = min((k for k in strikes if k > low + 4), default=strikes[-1])
        return {
            "symbol": "AAPL",
            "strategy": "bull_call_spread",
            "expiry": expiry,
            "strikes": [low, high],
            "quantity": 2,
        }

    def confirm(name: str) -> Callable[[dict[str, str]], dict[str, Any]]:
        return lambda memory: preview_from_text(memory[name])

    def order_ref(memory: dict[str, str], name: str) -> str:
        return _find(r"Order (sp-\S+) \(IB id", memory[name]).group(1)

    return [
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
        Step(
            "Yes, set the suggested stop.",
            "set_stop_loss",
            lambda memory: stop_call_from_text(memory["fill"]),
            remember="stop",
        ),
        Step("Confirmed, place the stop.", "execute_trade", confirm("stop")),
        Step("What do I hold now?", "get_positions"),
        Step(
            "I'd like out of the spread now.",
            "close_position",
            lambda memory: {"symbol": "AAPL", "position": order_ref(memory, "fill")},
            remember="close",
        ),
        Step("Yes, close it.", "execute_trade", confirm("close"), remember="closing"),
        Step(
            "It hasn't filled; move the limit to the natural price.",
            "modify_order",
            lambda memory: {
                "order_ref": order_ref(memory, "closing"),
                "limit_price": float(_find(r"natural (-?\d+(?:\.\d+)?)", memory["close"]).group(1)),
            },
            remember="move",
            when=lambda memory: "Filled, filled" not in memory["closing"],
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


async def _conversation(console: Console, out_dir: Path) -> int:
    # The demo's orders are simulated: they go in the demo's own audit log, never the user's.
    settings = Settings(audit_path=out_dir / "audit.jsonl")
    app = create_app(settings, simulated=True, cache_dir=out_dir / "cache")
    failures = 0
    memory: dict[str, str] = {}
    # Declares the MCP Apps extension, as Claude Desktop does.
    ui = advertise(UI_EXTENSION_ID, {"mimeTypes": [UI_MIME_TYPE]})
    async with Client(app, extensions=[ui]) as client:
        for step in _conversation_steps():
            if step.when is not None and not step.when(memory):
                continue
            try:
                args = step.args(memory) if callable(step.args) else step.args
            except DemoError as exc:
                failures += 1
                console.print(Panel(str(exc), title="demo", border_style="red"))
                break
            console.print(f"\n[bold cyan]You:[/] {step.said}")
            console.print(f"[dim]→ {step.tool}({json.dumps(args)})[/]")
            result = await client.call_tool(step.tool, args, raise_on_error=False)
            text = claude_desktop(result)
            if result.is_error:
                failures += 1
                console.print(Panel(escape(text), border_style="red"))
                if step.remember:
                    break  # later steps need this result
                continue
            if step.remember:
                memory[step.remember] = text
            console.print(
                Panel(
                    escape(text),
                    title="what the model reads in Claude Desktop",
                    title_align="left",
                    border_style="green",
                )
            )
            for block in result.content:
                if getattr(block, "type", "") == "image":
                    path = out_dir / "payoff.png"
                    path.write_bytes(base64.b64decode(block.data))
                    console.print(
                        f"[green]payoff chart (an image the model sees) saved to {path}[/]"
                    )
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
