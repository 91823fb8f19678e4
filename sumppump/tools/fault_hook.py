"""A test-only tool of the simulator mode (``SUMPPUMP_SIM_FAULT_HOOK=1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult
from mcp.types import TextContent, ToolAnnotations

from sumppump.messages.errors import ErrorCode, ToolError
from sumppump.tools.common import (
    error_result,
)

if TYPE_CHECKING:
    from sumppump.mcp_server import Service


def register(app: FastMCP[Any], service: Service) -> None:
    """A test-only tool, in simulator mode and only when asked for: kill one actor."""

    @app.tool(
        annotations=ToolAnnotations(
            title="[sim test hook] kill an actor",
            read_only_hint=False,
            destructive_hint=True,
            open_world_hint=False,
        )
    )
    async def sim_kill_actor(
        actor: Literal["rate_limiter", "pricing", "connection", "chain_cache", "risk", "execution"],
    ) -> ToolResult:
        """Test hook of the simulator mode: brutally kill one actor of the tree."""
        tree = service.tree
        if tree is None:
            return error_result(
                ToolError(
                    code=ErrorCode.SERVICE_UNAVAILABLE, message="no tree", hint="wait for start-up"
                )
            )
        path = actor if actor in ("rate_limiter", "pricing") else f"broker/{actor}"
        try:
            tree.root.kill(path)
        except KeyError:
            return ToolResult(content=[TextContent(type="text", text=f"{path} is not running")])
        return ToolResult(content=[TextContent(type="text", text=f"killed {path}")])
