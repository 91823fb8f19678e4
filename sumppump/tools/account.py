"""Account tools: get_account, get_positions, get_open_orders (read only)."""

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
from sumppump.tools.common import (
    expect,
    money,
    ok,
    read_tool,
    schema_of,
    tool_body,
)

if TYPE_CHECKING:
    from sumppump.mcp_server import Service


def register(app: FastMCP[Any], service: Service) -> None:
    """Register the account tools."""

    @app.tool(annotations=read_tool("Account balances"), output_schema=schema_of(AccountSnapshot))
    @tool_body
    async def get_account() -> ToolResult:
        """Net liquidation, available funds, buying power and currency of the account, and
        whether it is LIVE or PAPER."""
        await service.connection_state()
        account = expect(await service.ask("connection", FetchAccount()), AccountSnapshot)
        summary = (
            f"Account {account.account_id} [{service.kind}]: net liquidation "
            f"{money(account.net_liquidation)} {account.currency}, available funds "
            f"{money(account.available_funds)}, buying power "
            f"{money(account.buying_power)}."
        )
        return ok(service, account, summary)

    @app.tool(annotations=read_tool("Positions"), output_schema=schema_of(Positions))
    @tool_body
    async def get_positions() -> ToolResult:
        """Every position in the account with quantity, average cost and market value."""
        await service.connection_state()
        positions = expect(await service.ask("connection", FetchPositions()), Positions)
        lines = "; ".join(
            f"{p.quantity:g} {p.symbol}"
            + (f" {p.expiry} {p.strike:g} {p.right}" if p.sec_type == "OPT" else "")
            for p in positions.positions
        )
        return ok(service, positions, f"{len(positions.positions)} positions: {lines or 'none'}.")

    @app.tool(annotations=read_tool("Open orders"), output_schema=schema_of(OpenOrders))
    @tool_body
    async def get_open_orders() -> ToolResult:
        """Working orders in the account (all clients), with their order_ref."""
        await service.connection_state()
        orders = expect(await service.ask("connection", FetchOpenOrders()), OpenOrders)
        lines = "; ".join(
            f"{o.action} {o.quantity:g} {o.description} {o.order_type} "
            f"{o.status} (ref {o.order_ref or 'n/a'})"
            for o in orders.orders
        )
        return ok(service, orders, f"{len(orders.orders)} open orders: {lines or 'none'}.")
