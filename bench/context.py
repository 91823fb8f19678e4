"""What the model reads: model-facing characters and estimated tokens per tool and for the
demo conversation, in each client profile (issue 17).

- Claude Desktop hands the model only a result's text content (images apart);
- Claude Code / VS Code / Codex only the JSON of its structuredContent.

The conversation is ``sumppump demo``'s, driven in-process against the simulated TWS, with its
arguments taken from the text as the demo does. Tokens are estimated as characters / 4. Also
measured: chain characters per row, calculate_strategy's structured size, and the tool listing
as the model gets it (name, description, input schema; app-only tools excluded).

Run: ``.venv/bin/python bench/context.py``. Writes ``bench/results/context.json``.
"""

from __future__ import annotations

import json
import platform
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
from sumppump.demo import _conversation_steps
from sumppump.mcp_server import create_app
from sumppump.rendering.profiles import claude_desktop, images, structured_only
from sumppump.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "context.json"
PROFILES = ("claude_desktop", "structured")
TARGETS = {
    "conversation_tokens_max": 3000,
    "chain_text_chars_per_row_max": 140,
    "chain_structured_chars_per_row_max": 260,
    "calculate_strategy_structured_chars_max": 4000,
    "tool_listing_chars_max": 10000,
}


def tokens(chars: int) -> int:
    return round(chars / 4)


async def listing(client: Client[Any]) -> dict[str, Any]:
    tools = [
        t
        for t in await client.list_tools()
        if (t.meta or {}).get("ui", {}).get("visibility") != ["app"]
    ]
    entries = [
        {"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools
    ]
    parameters = [
        (t.name, name, spec)
        for t in tools
        for name, spec in t.input_schema.get("properties", {}).items()
    ]
    return {
        "tools": len(tools),
        "chars": len(json.dumps(entries, separators=(",", ":"), ensure_ascii=False)),
        "parameters": len(parameters),
        "parameters_without_description": [
            f"{tool}.{name}" for tool, name, spec in parameters if not spec.get("description")
        ],
    }


async def run() -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="sumppump-bench-context-"))
    app = create_app(Settings(audit_path=work / "audit.jsonl"), simulated=True, cache_dir=work)
    ui = advertise(UI_EXTENSION_ID, {"mimeTypes": [UI_MIME_TYPE]})
    calls: list[dict[str, Any]] = []
    memory: dict[str, str] = {}
    async with Client(app, extensions=[ui]) as client:
        listed = await listing(client)
        for step in _conversation_steps():
            if step.when is not None and not step.when(memory):
                continue
            args = step.args(memory) if callable(step.args) else step.args
            result = await client.call_tool(step.tool, args, raise_on_error=False)
            if result.is_error:
                raise RuntimeError(f"{step.tool} failed: {claude_desktop(result)}")
            text = claude_desktop(result)
            if step.remember:
                memory[step.remember] = text
            data = result.structured_content or {}
            call = {
                "tool": step.tool,
                "claude_desktop_chars": len(text),
                "structured_chars": len(structured_only(result)),
                "images": images(result),
            }
            if step.tool == "get_options_chain":
                call["rows"] = len(data.get("rows", []))
            calls.append(call)
    totals = {p: sum(c[f"{p}_chars"] for c in calls) for p in PROFILES}
    chain = next(c for c in calls if c["tool"] == "get_options_chain")
    calc = next(c for c in calls if c["tool"] == "calculate_strategy")
    measured = {
        "conversation_tokens": {p: tokens(totals[p]) for p in PROFILES},
        "chain_text_chars_per_row": round(chain["claude_desktop_chars"] / chain["rows"], 1),
        "chain_structured_chars_per_row": round(chain["structured_chars"] / chain["rows"], 1),
        "calculate_strategy_structured_chars": calc["structured_chars"],
        "tool_listing_chars": listed["chars"],
    }
    met = {
        "conversation_tokens<=3000": max(measured["conversation_tokens"].values())
        <= TARGETS["conversation_tokens_max"],
        "chain_text_per_row<=140": measured["chain_text_chars_per_row"]
        <= TARGETS["chain_text_chars_per_row_max"],
        "chain_structured_per_row<=260": measured["chain_structured_chars_per_row"]
        <= TARGETS["chain_structured_chars_per_row_max"],
        "calculate_strategy_structured<=4000": measured["calculate_strategy_structured_chars"]
        <= TARGETS["calculate_strategy_structured_chars_max"],
        "tool_listing<=10000": listed["chars"] <= TARGETS["tool_listing_chars_max"],
        "every_parameter_described": not listed["parameters_without_description"],
    }
    return {
        "benchmark": "model-facing context per client profile",
        "host": host_info(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "calls": calls,
        "conversation": {
            "calls": len(calls),
            "chars": totals,
            "tokens": measured["conversation_tokens"],
            "images": sum(c["images"] for c in calls),
        },
        "tool_listing": listed,
        "measured": measured,
        "targets": TARGETS,
        "targets_met": met,
        "note": "tokens estimated as characters / 4; images (the payoff chart PNG, shown to "
        "the model by Claude Desktop) are counted apart, not in the characters",
    }


def main() -> None:
    result = anyio.run(run)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("conversation", "measured", "targets_met")}, indent=2))


if __name__ == "__main__":
    main()
