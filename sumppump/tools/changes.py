"""Position-change tools: close_position, modify_order, roll_position, exercise_option. Each
answers a preview (the first three with the order ticket), placed through execute_trade after
the person's explicit yes (execute_trade's own description says so: the tool descriptions
leave it out to keep the listing within its 10,000-character budget)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult
from pydantic import Field

from sumppump.messages.execution import (
    ExecutionRefused,
    ExercisePreviewCreated,
    PrepareClose,
    PrepareExercise,
    PrepareModify,
    PrepareRoll,
)
from sumppump.rendering import trading as render
from sumppump.ticket import ticket_view
from sumppump.tools.common import (
    Strikes,
    Symbol,
    expect,
    ok,
    preview_tool,
    refusal,
    result_schema,
    tool_body,
)
from sumppump.tools.trading import PREVIEW_FIELDS, previewed

if TYPE_CHECKING:
    from sumppump.mcp_server import Service

__all__ = ["register"]

_POSITION = Field(max_length=100, description="which, if several: order_ref or description")
_PRICE = Field(ge=-100_000, le=100_000)
EXERCISE_FIELDS = (
    "kind", "contract", "shares", "cash", "shares_after", "contracts_after", "cutoff",
    "preview_id", "expires_at", "confirm_text",
)  # fmt: skip


def register(app: FastMCP[Any], service: Service) -> None:
    """Register the position-change tools."""

    @app.tool(
        annotations=preview_tool("Preview closing a position"),
        output_schema=result_schema(*PREVIEW_FIELDS, "details"),
        app=ticket_view(),
    )
    @tool_body
    async def close_position(
        symbol: Symbol,
        position: Annotated[str | None, _POSITION] = None,
        quantity: Annotated[
            int | None, Field(ge=1, le=100_000, description="units to close; omit for all")
        ] = None,
        limit_price: Annotated[
            float | None, _PRICE, Field(description="net per unit; omit for the mid")
        ] = None,
    ) -> ToolResult:
        """Preview closing all or part of a position (a combo closes as one): proceeds,
        realised P&L, commission, what remains, its stops."""
        return await previewed(
            service,
            PrepareClose(
                symbol=symbol, position=position, quantity=quantity, limit_price=limit_price
            ),
            "close",
        )

    @app.tool(
        annotations=preview_tool("Preview changing a working order"),
        output_schema=result_schema(*PREVIEW_FIELDS, "details", "replaces_order_ref"),
        app=ticket_view(),
    )
    @tool_body
    async def modify_order(
        order_ref: Annotated[
            str, Field(min_length=1, max_length=100, description="sp-… ref of the order")
        ],
        limit_price: Annotated[float | None, _PRICE, Field(description="new limit")] = None,
        quantity: Annotated[int | None, Field(ge=1, le=100_000, description="new quantity")] = None,
        stop_price: Annotated[float | None, _PRICE, Field(description="new stop")] = None,
    ) -> ToolResult:
        """Preview a new limit, quantity or stop for a working SumpPump order, old vs new
        (the same IB order, modified)."""
        return await previewed(
            service,
            PrepareModify(
                order_ref=order_ref,
                limit_price=limit_price,
                quantity=quantity,
                stop_price=stop_price,
            ),
            "change",
        )

    @app.tool(
        annotations=preview_tool("Preview rolling a position"),
        output_schema=result_schema(*PREVIEW_FIELDS, "details", "breakevens"),
        app=ticket_view(),
    )
    @tool_body
    async def roll_position(
        symbol: Symbol,
        new_expiry: Annotated[
            str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, later")
        ],
        position: Annotated[str | None, _POSITION] = None,
        new_strikes: Annotated[
            Strikes | None, Field(description="omit to keep the strikes")
        ] = None,
        limit_price: Annotated[
            float | None, _PRICE, Field(description="net per unit; omit for the mid")
        ] = None,
    ) -> ToolResult:
        """Preview rolling a long option, debit spread or covered call's short call to a later
        expiry (and strikes) as one combo: new max loss, max gain, breakevens, net price."""
        return await previewed(
            service,
            PrepareRoll(
                symbol=symbol,
                new_expiry=new_expiry,
                position=position,
                new_strikes=tuple(new_strikes) if new_strikes else None,
                limit_price=limit_price,
            ),
            "roll",
        )

    @app.tool(
        annotations=preview_tool("Preview exercising or lapsing an option"),
        output_schema=result_schema(*EXERCISE_FIELDS),
    )
    @tool_body
    async def exercise_option(
        symbol: Symbol,
        position: Annotated[
            str | None, Field(max_length=100, description="'expiry strike C|P'")
        ] = None,
        quantity: Annotated[int | None, Field(ge=1, le=100_000, description="omit: all")] = None,
        action: Annotated[
            Literal["exercise", "lapse"], Field(description="lapse: do not exercise")
        ] = "exercise",
    ) -> ToolResult:
        """Preview exercising or lapsing a long option: shares, cash, position after, IB's
        cut-off. Irrevocable once executed."""
        request = PrepareExercise(
            symbol=symbol, position=position, quantity=quantity, action=action
        )
        reply = await service.ask("execution", request)
        if isinstance(reply, ExecutionRefused):
            raise refusal(reply.code, reply.message, reply.hint)
        return ok(service, render.exercise_preview(expect(reply, ExercisePreviewCreated)))
