"""Trading tools: suggest_strikes, calculate_strategy, execute_trade, set_stop_loss,
cancel_order. Every order starts as a server-held preview; :func:`execute_preview` is the one
path from an approved preview to an order (``execute_trade`` and the ticket's Confirm)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError as FastMCPToolError
from fastmcp.tools.base import ToolResult
from mcp.types import ImageContent
from pydantic import BeforeValidator, Field

from sumppump.actors.runtime import ActorDown, CallTimeout
from sumppump.charts import PayoffChart, render_payoff_chart
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import (
    ApprovalContext,
    CancelByRef,
    CancelResult,
    ExecutePreview,
    ExecutionRefused,
    ExerciseSubmitted,
    OrderSubmitted,
    OutcomeUnknown,
    PrepareStopLoss,
    PreviewCreated,
)
from sumppump.messages.risk import (
    AnalyseStrategy,
    RiskRejected,
    StrategyAnalysed,
    StrikeSuggestions,
    SuggestStrikes,
)
from sumppump.rendering import trading as render
from sumppump.rendering.trading import AnalysisResult, PreviewResult
from sumppump.strategies.analysis import StrategyAnalysis
from sumppump.ticket import TICKET_PAYLOAD_KEY, client_can_elicit, client_has_ui, ticket_view
from sumppump.tools.common import (
    TOOL_DEADLINE,
    Failure,
    IsoDate,
    OptionalStrikes,
    OrderRef,
    Symbol,
    acting_tool,
    expect,
    lower,
    ok,
    parse_list,
    preview_tool,
    raise_for_outcome,
    read_tool,
    refusal,
    result_schema,
    tool_body,
)
from sumppump.trading.terms import open_terms

if TYPE_CHECKING:
    from sumppump.mcp_server import Service

__all__ = [
    "PREVIEW_FIELDS",
    "STRATEGIES",
    "approve",
    "execute_preview",
    "preview_result",
    "previewed",
    "register",
]

#: The Level-2 strategies calculate_strategy builds by name (sumppump.strategies.catalog);
#: other names are refused with the reason and the permission they would need.
STRATEGIES = (
    "long_call, long_put, bull_call_spread, bear_put_spread, covered_call, protective_put, "
    "collar, long_straddle, long_strangle, custom"
)
#: The top-level fields of every preview result (stop, close, change, roll).
PREVIEW_FIELDS = (
    "kind", "symbol", "order", "net_debit", "max_loss", "max_gain", "preview_id",
    "expires_at", "confirm_text",
)  # fmt: skip
ANALYSIS_FIELDS = (
    "symbol", "strategy", "legs", "limit_price", "net_mid", "net_natural", "max_loss",
    "max_loss_with_commission", "max_gain", "breakevens", "pop_pct", "greeks", "commission",
    "what_if_init_margin_change", "checks", "preview_id", "expires_at", "confirm_text",
)  # fmt: skip


def chart_png(symbol: str, strategy: str, analysis: StrategyAnalysis, spot: float | None) -> bytes:
    profile = analysis.profile
    return render_payoff_chart(
        PayoffChart(
            title=f"{symbol} {strategy.replace('_', ' ')} × {analysis.quantity}",
            prices=profile.prices,
            pnl_expiry=profile.at_expiry,
            pnl_today=profile.today or (),
            breakevens=analysis.breakevens,
            max_loss=analysis.max_loss,
            max_gain=analysis.max_gain,
            spot=spot,
        )
    )


def with_ticket(result: ToolResult, full: msgspec.Struct) -> ToolResult:
    """Hand the full preview (payoff profile included) to the order ticket: the ticket
    middleware keeps it for the app-only fetch and takes it out of ``_meta``."""
    result.meta = {**(result.meta or {}), TICKET_PAYLOAD_KEY: msgspec.to_builtins(full)}
    return result


async def previewed(
    service: Service, request: Any, verb: render.Verb, *, kind: str = "execution"
) -> ToolResult:
    """Send a ``Prepare*`` request to execution and answer its preview (with the ticket)."""
    reply = await service.ask(kind, request)
    if isinstance(reply, ExecutionRefused):
        raise refusal(reply.code, reply.message, reply.hint)
    full = preview_result(expect(reply, PreviewCreated))
    return with_ticket(ok(service, render.preview(full, verb)), full)


def register(app: FastMCP[Any], service: Service) -> None:
    """Register the analysis and order tools."""

    @app.tool(
        annotations=read_tool("Suggest Level-2 strategies"),
        output_schema=result_schema("symbol", "expiry", "outlook", "spot", "candidates"),
    )
    @tool_body
    async def suggest_strikes(
        symbol: Symbol,
        outlook: Annotated[
            Literal["bullish", "bearish", "volatile"],
            BeforeValidator(lower),
            Field(description="bullish, bearish or volatile (a big move either way)"),
        ],
        expiry: Annotated[
            IsoDate, Field(description="YYYY-MM-DD; omit for the nearest ≥ 7 days out")
        ] = None,
        target_price: Annotated[
            float | None, Field(gt=0, description="where you expect the stock by expiry")
        ] = None,
        max_debit: Annotated[
            float | None, Field(gt=0, description="most to pay per unit, per share")
        ] = None,
    ) -> ToolResult:
        """Ranked Level-2 ideas per unit: strikes, debit, max loss, max gain (absent:
        unbounded), breakeven, reward/risk, probability of profit. Ideas only:
        calculate_strategy previews one."""
        await service.connection_state()
        reply = await service.ask(
            "risk",
            SuggestStrikes(
                symbol=symbol,
                outlook=outlook,
                expiry=expiry,
                target_price=target_price,
                max_debit=max_debit,
                limit=6,
            ),
        )
        if isinstance(reply, RiskRejected):
            raise refusal(reply.code, reply.message, reply.hint)
        return ok(service, render.suggestions(expect(reply, StrikeSuggestions)))

    @app.tool(
        annotations=preview_tool("Analyse a strategy and preview its order"),
        output_schema=result_schema(*ANALYSIS_FIELDS),
        app=ticket_view(),
    )
    @tool_body
    async def calculate_strategy(
        symbol: Symbol,
        strategy: Annotated[
            str,
            BeforeValidator(lower),
            Field(max_length=40, description=f"one of: {STRATEGIES} (custom takes legs)"),
        ],
        expiry: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")],
        strikes: Annotated[
            OptionalStrikes,
            Field(description="ascending, as many as the strategy has; empty for custom"),
        ] = None,
        quantity: Annotated[int, Field(ge=1, le=1000, description="contracts or spreads")] = 1,
        limit_price: Annotated[
            float | None, Field(gt=0, description="net per unit; omit for the mid")
        ] = None,
        legs: Annotated[
            list[dict[str, Any]] | None,
            BeforeValidator(parse_list),
            Field(
                description="custom only: [{action BUY/SELL, right C/P/STK, strike, expiry, ratio}]"
            ),
        ] = None,
    ) -> ToolResult:
        """The exact order that would be placed: legs, limit vs mid/natural, max loss, max
        gain, breakevens, probability of profit, greeks, commission, IB margin, checks, a
        payoff chart, a single-use preview_id and confirm_text. Show it all; only the
        person's explicit yes leads to execute_trade."""
        await service.connection_state()
        reply = await service.ask(
            "risk",
            AnalyseStrategy(
                symbol=symbol,
                strategy=strategy,
                expiry=expiry,
                strikes=tuple(strikes or ()),
                quantity=quantity,
                limit_price=limit_price,
                legs=tuple(legs) if legs is not None else None,
            ),
        )
        if isinstance(reply, RiskRejected):
            raise refusal(reply.code, reply.message, reply.hint)
        done = expect(reply, StrategyAnalysed)
        preview = await service.ask("execution", open_terms(done, strategy))
        if isinstance(preview, ExecutionRefused):
            raise refusal(preview.code, preview.message, preview.hint)
        created = expect(preview, PreviewCreated)
        spot = done.quote_snapshot.underlying_mid
        full = AnalysisResult(
            symbol=symbol,
            strategy=strategy,
            account_id=done.account_id,
            account_kind=done.account_kind,
            analysis=done.analysis,
            checks=done.checks,
            warnings=done.warnings,
            notes=done.notes,
            what_if_init_margin_change=done.what_if_init_margin_change,
            what_if_commission=done.what_if_commission,
            data_type=done.data_type,
            preview_id=created.preview_id,
            confirm_text=created.confirm_text,
            expires_at=created.expires_at,
            underlying_price=spot,
        )
        result = ok(service, render.analysis(full))
        png = chart_png(symbol, strategy, done.analysis, spot)
        result.content.append(
            ImageContent(type="image", mime_type="image/png", data=base64.b64encode(png).decode())
        )
        return with_ticket(result, full)

    @app.tool(
        annotations=acting_tool(
            "Place the previewed order (needs the person's explicit yes)", idempotent=False
        ),
        output_schema=result_schema("order_ref", "status", "filled", "stop_loss_prompt"),
    )
    @tool_body
    async def execute_trade(
        preview_id: Annotated[
            str, Field(min_length=1, max_length=100, description="from the preview")
        ],
        confirm_text: Annotated[
            str, Field(min_length=1, max_length=1000, description="the preview's, verbatim")
        ],
        ctx: Context,
    ) -> ToolResult:
        """Places exactly the previewed order (or exercise). Only after the person read the
        preview and its max loss and explicitly confirmed it."""
        approval = await approve(service, ctx, confirm_text)
        return await execute_preview(service, preview_id, confirm_text, approval)

    @app.tool(
        annotations=preview_tool("Preview a stop loss"),
        output_schema=result_schema(*PREVIEW_FIELDS),
        app=ticket_view(),
    )
    @tool_body
    async def set_stop_loss(
        symbol: Symbol,
        stop_price: Annotated[float | None, Field(gt=0, description="trigger price")] = None,
        stop_percent: Annotated[
            float | None, Field(gt=0, lt=100, description="or % below entry")
        ] = None,
        position: Annotated[
            str | None, Field(max_length=100, description="which, if several; e.g. order_ref")
        ] = None,
    ) -> ToolResult:
        """Preview a protective stop (stop_price or stop_percent); placed through
        execute_trade once the person confirms."""
        return await previewed(
            service,
            PrepareStopLoss(
                symbol=symbol, stop_price=stop_price, stop_percent=stop_percent, position=position
            ),
            "stop",
        )

    @app.tool(
        annotations=acting_tool("Cancel an order", idempotent=True),
        output_schema=result_schema("order_ref", "status"),
    )
    @tool_body
    async def cancel_order(
        order_ref: OrderRef,
    ) -> ToolResult:
        """Cancels a working order placed by SumpPump (reduces exposure)."""
        reply = await service.ask("execution", CancelByRef(order_ref=order_ref))
        if isinstance(reply, ExecutionRefused):
            raise refusal(reply.code, reply.message, reply.hint)
        return ok(service, render.cancelled(expect(reply, CancelResult)))


async def execute_preview(
    service: Service, preview_id: str, confirm_text: str, approval: ApprovalContext
) -> ToolResult:
    """The one path from an approved preview to an order, shared by ``execute_trade`` and the
    order ticket's Confirm: :class:`ExecutePreview` to the execution actor (re-check, single
    use, epoch, breaker), then the structured answer. Raises :class:`Failure`."""
    request = ExecutePreview(preview_id=preview_id, confirm_text=confirm_text, approval=approval)
    try:
        reply = await service.ref("execution").call(request, timeout=TOOL_DEADLINE - 2)
    except (ActorDown, CallTimeout) as exc:
        # Never retried: the order may or may not have reached IB; execution reconciles
        # by orderRef (= the preview id) before it accepts anything new.
        raise Failure(
            ErrorCode.ORDER_OUTCOME_UNKNOWN,
            f"the outcome of order {preview_id} is unknown ({type(exc).__name__})",
            "Do not resend it. Check get_open_orders and get_positions in a "
            "moment: SumpPump reconciles by this order_ref.",
        ) from exc
    match reply:
        case ExecutionRefused(code=code, message=message, hint=hint, fresh_preview=fresh):
            if (
                code == ErrorCode.APPROVAL_REQUIRED
                and approval.approved_via == "tool"
                and service.approval_mode == "app"
                and not service.ticket_fetched(preview_id)
            ):
                message += "; no order ticket opened for this preview in this client"
                hint = (
                    "The order ticket did not open in this client, so it cannot be confirmed "
                    "here. Nothing was sent. Approval mode tws (SUMPPUMP_APPROVAL=tws: press "
                    "Transmit in TWS) or elicit would work in this client."
                )
            failure = refusal(code, message, hint)
            if fresh is not None:
                failure.fresh_preview = render.preview(preview_result(fresh))
            raise failure
        case OutcomeUnknown(order_ref=ref, message=message, hint=hint):
            raise Failure(ErrorCode.ORDER_OUTCOME_UNKNOWN, f"{message} (order {ref})", hint)
    if isinstance(reply, ExerciseSubmitted):  # an exercise or lapse instruction was sent
        return ok(service, render.exercised(reply))
    submitted = expect(raise_for_outcome(reply), OrderSubmitted)
    return ok(service, render.submitted(submitted))


async def approve(service: Service, ctx: Context, confirm_text: str) -> ApprovalContext:
    """The person's approval, as the configured mode asks for it.

    ``elicit``: the server itself asks the person (MCP elicitation) with the order's text; a
    decline or cancel ends the call with ``APPROVAL_REQUIRED``. Execution still checks that the
    text equals the stored preview's, so what was approved is exactly what is placed. Other
    modes are enforced by execution (``tws`` sends with transmit off; unknown modes refuse).
    """
    mode = service.approval_mode
    can_elicit = client_can_elicit(ctx)
    if mode != "elicit" or not can_elicit:
        # In mode app execution refuses a tool-approved call: only the ticket's Confirm places.
        return ApprovalContext(
            mode=mode,
            client_can_elicit=can_elicit,
            client_has_ui=client_has_ui(ctx),
            approved_via="tool",
        )
    place, keep = "Place this order", "Do not place it"
    try:
        answer = await ctx.elicit(f"SumpPump order — {confirm_text}", response_type=[place, keep])
    except FastMCPToolError as exc:
        # MCP 2026-07-28 removed server-initiated requests; this server does not implement the
        # newer input-required round trip yet, so it cannot ask and must not place the order.
        raise Failure(
            ErrorCode.APPROVAL_REQUIRED,
            f"SUMPPUMP_APPROVAL=elicit, but the server cannot ask this client ({exc})",
            "Nothing was sent. Use approval mode tws (press Transmit in TWS) or client.",
        ) from exc
    if getattr(answer, "action", "") != "accept" or getattr(answer, "data", None) != place:
        raise Failure(
            ErrorCode.APPROVAL_REQUIRED,
            "the order was not approved in the prompt",
            "Nothing was sent. Ask again if you want to place it.",
        )
    return ApprovalContext(mode=mode, client_can_elicit=True, approved_via="elicitation")


def preview_result(created: PreviewCreated) -> PreviewResult:
    """The full preview value (what the ticket shows) of a stored preview."""
    return PreviewResult(
        preview_id=created.preview_id,
        confirm_text=created.confirm_text,
        expires_at=created.expires_at,
        kind=created.kind,
        symbol=created.symbol,
        max_loss=created.max_loss,
        max_gain=created.max_gain,
        net_debit=created.net_debit,
        account_kind=created.account_kind,
        notes=created.notes,
        breakevens=created.breakevens,
        order=created.order,
        replaces_order_ref=created.replaces_order_ref,
        details=created.details,
    )
