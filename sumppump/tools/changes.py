"""Position-change tools: close_position, modify_order, roll_position (each a preview,
placed through execute_trade)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult
from pydantic import Field

from sumppump.messages.execution import (
    ChangeDetails,
    ExecutionRefused,
    OrderTerms,
    PrepareClose,
    PrepareModify,
    PrepareRoll,
    PreviewCreated,
)
from sumppump.ticket import ticket_view
from sumppump.tools.common import (
    Strikes,
    Symbol,
    expect,
    ok,
    preview_tool,
    refusal,
    schema_of,
    tool_body,
)
from sumppump.tools.trading import PREVIEW_OPAQUE, PreviewResult, preview_result

if TYPE_CHECKING:
    from sumppump.mcp_server import Service


def change_words(d: ChangeDetails) -> str:
    """The close/modify/roll facts in one paragraph for the model-facing summary."""
    parts = [f"{d.action.capitalize()}: {d.position}."]
    prices = [f"limit {d.limit_price:g}" if d.limit_price is not None else ""]
    if d.mid is not None:
        prices.append(f"mid {d.mid:g}")
    if d.natural is not None:
        prices.append(f"natural {d.natural:g}")
    parts.append(", ".join(p for p in prices if p) + ".")
    if d.cash is not None:
        parts.append(f"{'Proceeds' if d.cash >= 0 else 'Cost'} {abs(d.cash):,.2f}.")
    if d.realised_pnl is not None:
        parts.append(f"Realised P&L about {d.realised_pnl:+,.2f}.")
    parts.append(f"Commission about {d.commission:,.2f}.")
    if d.before is not None and d.after is not None:
        parts.append(f"Was {terms_words(d.before)}; becomes {terms_words(d.after)}.")
    if d.holds_after:
        parts.append("Holds afterwards: " + "; ".join(d.holds_after) + ".")
    parts.extend(
        f"Stop {stop.order_ref} ({stop.description}): {stop.how.replace('_', ' ')}."
        for stop in d.stops
    )
    return " ".join(parts)


def terms_words(t: OrderTerms) -> str:
    words = [f"{t.quantity} {t.order_type}"]
    if t.stop_price is not None:
        words.append(f"stop {t.stop_price:g}")
    if t.limit_price is not None:
        words.append(f"limit {t.limit_price:g}")
    if t.max_loss is not None:
        words.append(f"max loss {t.max_loss:,.2f}")
    return " ".join(words)


def register(app: FastMCP[Any], service: Service) -> None:
    """Register the position-change tools."""

    async def previewed(
        request: PrepareClose | PrepareModify | PrepareRoll, verb: str
    ) -> ToolResult:
        reply = await service.ask("execution", request)
        if isinstance(reply, ExecutionRefused):
            raise refusal(reply.code, reply.message, reply.hint)
        created = expect(reply, PreviewCreated)
        details = created.details
        lines = [created.confirm_text]
        if details is not None:
            lines.append(change_words(details))
        lines.append(
            f"Preview {created.preview_id} expires {created.expires_at}. Show this to the "
            f"person; only their explicit yes to this exact {verb} leads to execute_trade."
        )
        return ok(service, preview_result(created), "\n".join(lines))

    @app.tool(
        annotations=preview_tool("Preview closing a position"),
        output_schema=schema_of(PreviewResult, opaque=PREVIEW_OPAQUE),
        app=ticket_view(),
    )
    @tool_body
    async def close_position(
        symbol: Symbol,
        position: Annotated[str | None, Field(max_length=100)] = None,
        quantity: Annotated[int | None, Field(ge=1, le=100_000)] = None,
        limit_price: Annotated[float | None, Field(ge=-100_000, le=100_000)] = None,
    ) -> ToolResult:
        """Preview closing all or part (quantity) of a position: proceeds or cost, realised
        P&L, commission, what remains and what happens to its stops. A spread, collar or
        buy-write opened together closes as one combo. Placed through execute_trade."""
        return await previewed(
            PrepareClose(
                symbol=symbol, position=position, quantity=quantity, limit_price=limit_price
            ),
            "close",
        )

    @app.tool(
        annotations=preview_tool("Preview changing a working order"),
        output_schema=schema_of(PreviewResult, opaque=PREVIEW_OPAQUE),
        app=ticket_view(),
    )
    @tool_body
    async def modify_order(
        order_ref: Annotated[str, Field(min_length=1, max_length=100)],
        limit_price: Annotated[float | None, Field(ge=-100_000, le=100_000)] = None,
        quantity: Annotated[int | None, Field(ge=1, le=100_000)] = None,
        stop_price: Annotated[float | None, Field(ge=-100_000, le=100_000)] = None,
    ) -> ToolResult:
        """Preview a new limit, quantity or stop for a working order SumpPump placed, old and
        new side by side. Placed through execute_trade (same IB order, modified)."""
        return await previewed(
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
        output_schema=schema_of(PreviewResult, opaque=PREVIEW_OPAQUE),
        app=ticket_view(),
    )
    @tool_body
    async def roll_position(
        symbol: Symbol,
        new_expiry: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")],
        position: Annotated[str | None, Field(max_length=100)] = None,
        new_strikes: Strikes | None = None,
        limit_price: Annotated[float | None, Field(ge=-100_000, le=100_000)] = None,
    ) -> ToolResult:
        """Preview rolling a long option or debit spread to a later expiry (optionally other
        strikes) as one combo: the resulting position's max loss, max gain and breakevens,
        and the roll's net debit or credit. Placed through execute_trade."""
        return await previewed(
            PrepareRoll(
                symbol=symbol,
                new_expiry=new_expiry,
                position=position,
                new_strikes=tuple(new_strikes) if new_strikes else None,
                limit_price=limit_price,
            ),
            "roll",
        )
