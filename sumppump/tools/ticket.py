"""The order ticket's app-only tools (sumppump.ticket): Confirm places through
:func:`~sumppump.tools.trading.execute_preview`, exactly as ``execute_trade`` does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult

from sumppump.messages.connection import (
    AccountSnapshot,
    FetchAccount,
)
from sumppump.messages.execution import (
    ApprovalContext,
    DeclinePreview,
    Voided,
)
from sumppump.ticket import install_views
from sumppump.tools.common import (
    Failure,
    tool_body,
)
from sumppump.tools.trading import execute_preview

if TYPE_CHECKING:
    from sumppump.mcp_server import Service


def register(app: FastMCP[Any], service: Service) -> None:
    """The MCP App views (sumppump.ticket): the ticket's Confirm places through
    :func:`execute_preview`, exactly as ``execute_trade`` does."""

    @tool_body
    async def place_from_ticket(
        preview_id: str, confirm_text: str, approval: ApprovalContext
    ) -> ToolResult:
        return await execute_preview(service, preview_id, confirm_text, approval)

    async def net_liquidation() -> float | None:
        try:
            reply = await service.ask("connection", FetchAccount(), timeout=3)
        except Failure:
            return None
        return reply.net_liquidation if isinstance(reply, AccountSnapshot) else None

    async def decline(preview_id: str) -> bool:
        try:
            reply = await service.ask("execution", DeclinePreview(preview_id=preview_id), timeout=5)
        except Failure:
            return False
        return isinstance(reply, Voided) and bool(reply.preview_ids)

    service.tickets = install_views(
        app,
        place=place_from_ticket,
        net_liquidation=net_liquidation,
        approval_mode=lambda: service.approval_mode,
        environment=lambda: service.kind,
        decline=decline,
    )
