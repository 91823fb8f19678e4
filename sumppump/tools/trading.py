"""Trading tools: suggest_strikes, calculate_strategy, execute_trade, set_stop_loss,
cancel_order. Every order starts as a server-held preview."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

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
    ChangeDetails,
    CreatePreview,
    ExecutePreview,
    ExecutionRefused,
    OrderSubmitted,
    OutcomeUnknown,
    PrepareStopLoss,
    PreviewCreated,
)
from sumppump.messages.orders import OrderSpec
from sumppump.messages.risk import (
    AnalyseStrategy,
    CheckResult,
    RiskRejected,
    StrategyAnalysed,
    StrikeSuggestions,
    SuggestStrikes,
)
from sumppump.previews import snapshot_quotes
from sumppump.strategies.analysis import StrategyAnalysis
from sumppump.ticket import client_has_ui, ticket_view
from sumppump.tools.common import (
    TOOL_DEADLINE,
    Failure,
    IsoDate,
    Strikes,
    Symbol,
    acting_tool,
    expect,
    lower,
    ok,
    parse_list,
    pct,
    preview_tool,
    raise_for_outcome,
    read_tool,
    refusal,
    schema_of,
    tool_body,
)

if TYPE_CHECKING:
    from sumppump.mcp_server import Service


class AnalysisResult(msgspec.Struct, kw_only=True):
    """calculate_strategy's answer: the analysis of the exact order and its preview."""

    symbol: str
    strategy: str
    account_id: str
    account_kind: str
    analysis: StrategyAnalysis
    checks: tuple[CheckResult, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    what_if_init_margin_change: float | None
    what_if_commission: float | None
    data_type: str
    preview_id: str | None
    confirm_text: str | None
    expires_at: str | None
    underlying_price: float | None = None


#: Parts of a preview result described in prose (the tool descriptions), not in the schema.
PREVIEW_OPAQUE: Final = ("ChangeDetails", "OrderSpec")


class PreviewResult(msgspec.Struct, kw_only=True):
    """A stored, single-use preview (stop loss, close, modify, roll)."""

    preview_id: str
    confirm_text: str
    expires_at: str
    kind: str
    symbol: str
    max_loss: float | None
    max_gain: float | None
    net_debit: float
    account_kind: str
    notes: tuple[str, ...]
    breakevens: tuple[float, ...] = ()
    order: OrderSpec | None = None  # exactly what would be sent (legs, type, prices, TIF)
    replaces_order_ref: str = ""
    details: ChangeDetails | None = None


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


def register(app: FastMCP[Any], service: Service) -> None:
    """The analysis and order tools: every order starts as a server-held preview."""

    @app.tool(
        annotations=read_tool("Suggest Level-2 strategies"),
        output_schema=schema_of(StrikeSuggestions),
    )
    @tool_body
    async def suggest_strikes(
        symbol: Symbol,
        outlook: Annotated[Literal["bullish", "bearish", "volatile"], BeforeValidator(lower)],
        expiry: IsoDate = None,
        target_price: Annotated[float | None, Field(gt=0)] = None,
        max_debit: Annotated[float | None, Field(gt=0)] = None,
    ) -> ToolResult:
        """Ranked Level-2 candidates (long options, debit spreads, straddles/strangles) with
        max loss, max gain, breakeven, reward/risk and probability of profit, per unit."""
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
        found = expect(reply, StrikeSuggestions)
        lines = "; ".join(
            f"{c.strategy} {'/'.join(f'{k:g}' for k in c.strikes)}: debit {c.debit:.2f}, "
            f"max loss ${c.max_loss:,.0f}, PoP {pct(c.probability_of_profit)}"
            for c in found.candidates[:4]
        )
        summary = (
            f"{len(found.candidates)} {outlook} ideas on {found.symbol} "
            f"{found.expiry} (spot {found.spot:,.2f}): {lines}. These are ideas, not "
            "orders: calculate_strategy previews one."
        )
        return ok(service, found, summary)

    @app.tool(
        annotations=preview_tool("Analyse a strategy and preview its order"),
        output_schema=schema_of(AnalysisResult),
        app=ticket_view(),
    )
    @tool_body
    async def calculate_strategy(
        symbol: Symbol,
        strategy: Annotated[str, BeforeValidator(lower), Field(max_length=40)],
        expiry: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")],
        strikes: Strikes,
        quantity: Annotated[int, Field(ge=1, le=1000)] = 1,
        limit_price: Annotated[float | None, Field(gt=0)] = None,
        legs: Annotated[list[dict[str, Any]] | None, BeforeValidator(parse_list)] = None,
    ) -> ToolResult:
        """Exact max loss, max gain and breakevens of the order that would be placed, account
        checks, IB what-if, a payoff chart, and a single-use preview_id with confirm_text.
        Show all of it to the person; only their explicit yes leads to execute_trade."""
        await service.connection_state()
        reply = await service.ask(
            "risk",
            AnalyseStrategy(
                symbol=symbol,
                strategy=strategy,
                expiry=expiry,
                strikes=tuple(strikes),
                quantity=quantity,
                limit_price=limit_price,
                legs=tuple(legs) if legs is not None else None,
            ),
        )
        if isinstance(reply, RiskRejected):
            raise refusal(reply.code, reply.message, reply.hint)
        done = expect(reply, StrategyAnalysed)
        analysis = done.analysis
        preview = await service.ask(
            "execution",
            CreatePreview(
                order=done.order,
                symbol=symbol,
                kind="open",
                strategy=strategy.replace("_", " "),
                max_loss=analysis.max_loss_with_commission,
                max_gain=analysis.max_gain,
                breakevens=analysis.breakevens,
                net_debit=analysis.limit_price,
                quote_snapshot=snapshot_quotes(done.quote_snapshot),
                underlying_price=done.quote_snapshot.underlying_mid,
                epoch=done.epoch,
                account_kind=done.account_kind,
                min_tick=analysis.tick,
                warnings=done.warnings,
                commission=done.what_if_commission or analysis.commission.total,
                shares_held_used=done.shares_held_used,
                order_max_loss=done.order_max_loss,
            ),
        )
        if isinstance(preview, ExecutionRefused):
            raise refusal(preview.code, preview.message, preview.hint)
        created = expect(preview, PreviewCreated)
        png = chart_png(symbol, strategy, analysis, done.quote_snapshot.underlying_mid)
        result = AnalysisResult(
            symbol=symbol,
            strategy=strategy,
            account_id=done.account_id,
            account_kind=done.account_kind,
            analysis=analysis,
            checks=done.checks,
            warnings=done.warnings,
            notes=done.notes,
            what_if_init_margin_change=done.what_if_init_margin_change,
            what_if_commission=done.what_if_commission,
            data_type=done.data_type,
            preview_id=created.preview_id,
            confirm_text=created.confirm_text,
            expires_at=created.expires_at,
            underlying_price=done.quote_snapshot.underlying_mid,
        )
        worst = analysis.max_loss_with_commission
        loss = "unbounded" if worst is None else f"${worst:,.2f} (commission included)"
        gain = "unbounded" if analysis.max_gain is None else f"${analysis.max_gain:,.2f}"
        bes = ", ".join(f"{b:,.2f}" for b in analysis.breakevens) or "none"
        summary = (
            f"{created.confirm_text}\nMax loss {loss}, max gain "
            f"{gain}, breakeven {bes}. Preview {created.preview_id} expires "
            f"{created.expires_at}. Ask the person to confirm this exact order before "
            "calling execute_trade."
        )
        tool_result = ok(service, result, summary)
        tool_result.content.append(
            ImageContent(type="image", mime_type="image/png", data=base64.b64encode(png).decode())
        )
        return tool_result

    @app.tool(
        annotations=acting_tool(
            "Place the previewed order (needs the person's explicit yes)", idempotent=False
        ),
        output_schema=schema_of(OrderSubmitted),
    )
    @tool_body
    async def execute_trade(
        preview_id: Annotated[str, Field(min_length=1, max_length=100)],
        confirm_text: Annotated[str, Field(min_length=1, max_length=1000)],
        ctx: Context,
    ) -> ToolResult:
        """Places exactly the previewed order as a limit order. Call only after the person has
        read the preview and its max loss and explicitly confirmed this exact order."""
        approval = await approve(service, ctx, confirm_text)
        return await execute_preview(service, preview_id, confirm_text, approval)

    @app.tool(
        annotations=preview_tool("Preview a stop loss"),
        output_schema=schema_of(PreviewResult, opaque=PREVIEW_OPAQUE),
        app=ticket_view(),
    )
    @tool_body
    async def set_stop_loss(
        symbol: Symbol,
        stop_price: Annotated[float | None, Field(gt=0)] = None,
        stop_percent: Annotated[float | None, Field(gt=0, lt=100)] = None,
        position: str | None = None,
    ) -> ToolResult:
        """Builds a protective stop order for a position and returns a preview; it is placed
        through execute_trade after the person confirms."""
        reply = await service.ask(
            "execution",
            PrepareStopLoss(
                symbol=symbol, stop_price=stop_price, stop_percent=stop_percent, position=position
            ),
        )
        if isinstance(reply, ExecutionRefused):
            raise refusal(reply.code, reply.message, reply.hint)
        created = expect(reply, PreviewCreated)
        return ok(
            service,
            preview_result(created),
            f"{created.confirm_text} Preview {created.preview_id} expires "
            f"{created.expires_at}; confirm it with the person, then execute_trade.",
        )

    @app.tool(
        annotations=acting_tool("Cancel an order", idempotent=True),
        output_schema=schema_of(CancelResult),
    )
    @tool_body
    async def cancel_order(
        order_ref: Annotated[str, Field(min_length=1, max_length=100)],
    ) -> ToolResult:
        """Cancels a working order placed by SumpPump (reduces exposure)."""
        reply = await service.ask("execution", CancelByRef(order_ref=order_ref))
        if isinstance(reply, ExecutionRefused):
            raise refusal(reply.code, reply.message, reply.hint)
        done = expect(reply, CancelResult)
        return ok(service, done, f"Cancel of {done.order_ref}: {done.status}. {done.message}")


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
            failure = refusal(code, message, hint)
            if fresh is not None:
                failure.fresh_preview = preview_result(fresh)
            raise failure
        case OutcomeUnknown(order_ref=ref, message=message, hint=hint):
            raise Failure(ErrorCode.ORDER_OUTCOME_UNKNOWN, f"{message} (order {ref})", hint)
    submitted = expect(raise_for_outcome(reply), OrderSubmitted)
    summary = f"{submitted.message or submitted.status}\n{submitted.confirm_text}"
    if submitted.stop_loss_prompt is not None:
        summary += f"\n{submitted.stop_loss_prompt.text}"
    return ok(service, submitted, summary)


def client_can_elicit(ctx: Context) -> bool:
    try:
        capabilities = ctx.session.client_capabilities
    except (AttributeError, RuntimeError):
        return False
    return capabilities is not None and capabilities.elicitation is not None


async def approve(service: Service, ctx: Context, confirm_text: str) -> ApprovalContext:
    """The person's approval, as the configured mode asks for it.

    ``elicit``: the server itself asks the person (MCP elicitation) with the order's text; a
    decline or cancel ends the call with ``APPROVAL_REQUIRED``. Execution still checks that the
    text equals the stored preview's, so what was approved is exactly what is placed. Other
    modes are enforced by execution (``tws`` sends with transmit off; unknown modes refuse).
    """
    mode = service.settings.approval.strip().lower()
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
