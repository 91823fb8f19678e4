"""Account tools: get_account, get_positions, get_open_orders, get_order_status (read only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult

from sumppump.messages.connection import (
    AccountSnapshot,
    FetchAccount,
    FetchOpenOrders,
    FetchPositions,
    OpenOrders,
    Positions,
)
from sumppump.messages.execution import GetOrderOutcome, OrderOutcome
from sumppump.rendering import account as render
from sumppump.tools.common import OrderRef, expect, ok, read_tool, result_schema, tool_body

if TYPE_CHECKING:
    from sumppump.mcp_server import Service

__all__ = ["register"]


def register(app: FastMCP[Any], service: Service) -> None:
    """Register the account tools."""

    @app.tool(
        annotations=read_tool("Account balances"),
        output_schema=result_schema("account_id", "account_kind", "currency", "net_liquidation"),
    )
    @tool_body
    async def get_account() -> ToolResult:
        """Net liquidation, available funds, buying power, excess liquidity, margins, cash;
        LIVE or PAPER."""
        await service.connection_state()
        account = expect(await service.ask("connection", FetchAccount()), AccountSnapshot)
        return ok(service, render.account(account, kind=service.kind))

    @app.tool(annotations=read_tool("Positions"), output_schema=result_schema("positions"))
    @tool_body
    async def get_positions() -> ToolResult:
        """Every position: quantity, average cost (options per contract), market price and
        value, unrealised P&L."""
        await service.connection_state()
        positions = expect(await service.ask("connection", FetchPositions()), Positions)
        return ok(service, render.positions(positions.positions))

    @app.tool(annotations=read_tool("Open orders"), output_schema=result_schema("orders"))
    @tool_body
    async def get_open_orders() -> ToolResult:
        """Working orders in the account (all clients): terms, state, fills, order_ref."""
        await service.connection_state()
        orders = expect(await service.ask("connection", FetchOpenOrders()), OpenOrders)
        return ok(service, render.open_orders(orders.orders))

    @app.tool(
        annotations=read_tool("Order outcome"),
        output_schema=result_schema("order_ref", "outcome", "message"),
    )
    @tool_body
    async def get_order_status(order_ref: OrderRef) -> ToolResult:
        """Outcome of an order SumpPump placed or tried: working, filled (fills, price,
        commission), cancelled, rejected (IB's reason), never reached TWS, unknown."""
        done = expect(
            await service.ask("execution", GetOrderOutcome(order_ref=order_ref)), OrderOutcome
        )
        return ok(service, render.order_outcome(done))
