"""Driving the simulated app as an MCP Apps host would: a fastmcp Client that declares (or not)
the ``io.modelcontextprotocol/ui`` extension, and the host's visibility rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastmcp import Client
from fastmcp.apps import UI_EXTENSION_ID, UI_MIME_TYPE
from mcp.client.extension import advertise

from sumppump.mcp_server import Service, create_app
from sumppump.settings import Settings


def ui_extension() -> Any:
    """What an MCP Apps host (Claude Desktop) declares at initialize."""
    return advertise(UI_EXTENSION_ID, {"mimeTypes": [UI_MIME_TYPE]})


@asynccontextmanager
async def ticket_app(
    tmp_path: Path, *, approval: str = "client", with_ui: bool = True, mode: str = "auto"
) -> AsyncIterator[tuple[Client[Any], Service]]:
    """The simulated app behind an in-memory client, connected to its TWS; audit in tmp_path.
    ``mode="legacy"`` forces the pre-2026 initialize handshake (as older hosts speak it)."""
    settings = Settings(audit_path=tmp_path / "audit.jsonl", approval=approval)
    app = create_app(settings, simulated=True, cache_dir=tmp_path)
    extensions = [ui_extension()] if with_ui else None
    async with Client(app, extensions=extensions, mode=mode) as client:  # type: ignore[arg-type]
        service: Service = app.state  # type: ignore[attr-defined]
        with anyio.fail_after(20):
            while True:
                status = await client.call_tool("get_status", {}, raise_on_error=False)
                data = status.structured_content or {}
                if data.get("connection", {}).get("state") == "connected":
                    break
                await anyio.sleep(0.05)
        yield client, service


async def spread_preview(client: Client[Any]) -> Any:
    """A bull call spread preview of AAPL (the whole CallToolResult, _meta included)."""
    chain = await client.call_tool("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
    data = chain.structured_content or {}
    strikes = sorted({row["strike"] for row in data["rows"]})
    return await client.call_tool(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": "bull_call_spread",
            "expiry": data["expiry"],
            "strikes": [strikes[2], strikes[4]],
        },
    )


def model_visible(tools: list[Any]) -> list[str]:
    """The host's rule (MCP Apps): a tool whose ``_meta.ui.visibility`` lacks "model" is kept
    from the model; no visibility means both audiences."""
    names = []
    for tool in tools:
        ui = (tool.meta or {}).get("ui")
        visibility = ui.get("visibility") if isinstance(ui, dict) else None
        if not isinstance(visibility, list) or "model" in visibility:
            names.append(tool.name)
    return names


def app_visible(tools: list[Any]) -> list[str]:
    names = []
    for tool in tools:
        ui = (tool.meta or {}).get("ui")
        visibility = ui.get("visibility") if isinstance(ui, dict) else None
        if not isinstance(visibility, list) or "app" in visibility:
            names.append(tool.name)
    return names


def placed(service: Service, ref: str | None = None) -> list[Any]:
    """Orders (not what-ifs) the simulated TWS received, optionally for one order_ref."""
    return [
        o
        for o in service.sim.orders_received
        if not o.what_if and (ref is None or o.order_ref == ref)
    ]
