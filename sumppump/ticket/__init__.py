"""The order ticket and the chain table: MCP App views (``io.modelcontextprotocol/ui``).

A tool whose registration carries ``app=ticket_view()`` opens the order ticket in clients that
render MCP Apps (Claude Desktop): the person sees the legs, limit/mid/natural, max loss and gain
in dollars and as a share of net liquidation, breakevens, IB's what-if margin and commission,
the account and its kind (LIVE / PAPER / SIMULATED), the checks that ran and those that could
not, the preview's remaining time and an interactive payoff chart, and presses **Confirm**.

Confirm calls :data:`CONFIRM_TOOL`, a tool declared ``visibility: ["app"]``: the host lists it to
the view and keeps it from the model, so only the person's click reaches it. It needs the
``ticket_token`` the server put in the previewing result's ``_meta`` (app-facing metadata, not
the model-facing content), and it places the order through exactly the path of
``execute_trade`` (the execution actor's re-check, single use, epoch and breaker) with
``ApprovalContext(approved_via="ticket")``; the audit's submit line says "approved in ticket".

Nothing is taken away from the model-facing results (DESIGN.md §7): the view is added, so a
client without MCP Apps loses nothing. The views load nothing from the network (empty CSP
domain lists; one self-contained HTML file each, package data under ``static/``).

Hooking a tool (the one call for ``close_position``, ``modify_order``, ``roll_position``)::

    @app.tool(annotations=..., output_schema=..., app=ticket_view())

Its structured result must carry ``preview_id`` and ``confirm_text`` (and, to show them,
``expires_at``, ``account_kind``, ``max_loss``, ``max_gain``, ``net_debit``, ``order``): the
shape of ``PreviewResult`` / ``AnalysisResult`` in :mod:`sumppump.mcp_server`. That is all:
:class:`TicketMiddleware` issues the token for every such result, and :func:`install_views`
(called once by ``create_app``) registers the resources and the app-only tools.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any, Final

import msgspec
from fastmcp import Context, FastMCP
from fastmcp.apps import UI_EXTENSION_ID, AppConfig, ResourceCSP
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from mcp.types import CallToolRequestParams, TextContent, ToolAnnotations
from pydantic import Field

from sumppump.messages.errors import ErrorCode, ToolError
from sumppump.messages.execution import ApprovalContext

__all__ = [
    "APP_MODE_NOTE",
    "APP_MODE_NO_UI_NOTE",
    "APP_MODE_UNSEEN_NOTE",
    "CANCEL_TOOL",
    "CHAIN_URI",
    "CONFIRM_TOOL",
    "FETCH_TOOL",
    "META_KEY",
    "TICKET_PAYLOAD_KEY",
    "TICKET_URI",
    "IssuedTicket",
    "TicketBook",
    "TicketMiddleware",
    "chain_html",
    "chain_view",
    "client_can_elicit",
    "client_has_ui",
    "install_views",
    "ticket_html",
    "ticket_view",
]

log = logging.getLogger(__name__)

TICKET_URI: Final = "ui://sumppump/order-ticket.html"
CHAIN_URI: Final = "ui://sumppump/option-chain.html"
CONFIRM_TOOL: Final = "confirm_order_ticket"
CANCEL_TOOL: Final = "cancel_order_ticket"
#: The view's fetch of everything a ticket shows, by preview id (Claude Desktop strips
#: ``structuredContent`` and ``_meta`` from what it hands a view: ext-apps#696).
FETCH_TOOL: Final = "get_order_ticket"
#: Key under which a previewing tool hands the full preview to :class:`TicketMiddleware` in
#: its result's ``_meta``; the middleware moves it into the book (never sent to the client).
TICKET_PAYLOAD_KEY: Final = "sumppump/ticket-payload"
#: Key of the app-facing facts in a previewing result's ``_meta``.
META_KEY: Final = "sumppump/ticket"
_TOKEN_BYTES: Final = 18  # 144 bits, like preview ids
_BOOK_SIZE: Final = 256

#: Place a stored preview with the given approval; answers like ``execute_trade`` (a structured
#: result or a structured error, never raises). ``sumppump.mcp_server`` provides it.
PlacePreview = Callable[[str, str, ApprovalContext], Awaitable[ToolResult]]
#: The account's net liquidation (``None`` when not known); shown as the share max loss is of it.
NetLiquidation = Callable[[], Awaitable[float | None]]
#: Retire a preview the person declined (Cancel); ``True`` when it was still open.
DeclinePreview = Callable[[str], Awaitable[bool]]


def ticket_view() -> AppConfig:
    """The ``app=`` argument that attaches the order ticket to a tool registration:
    ``@app.tool(..., app=ticket_view())``. The tool stays visible to the model."""
    return AppConfig(resource_uri=TICKET_URI)


def chain_view() -> AppConfig:
    """The ``app=`` argument that attaches the sortable chain table (``get_options_chain``)."""
    return AppConfig(resource_uri=CHAIN_URI)


def _no_network() -> AppConfig:
    # Empty lists, not absent ones: the host's CSP then allows no origin at all.
    return AppConfig(
        csp=ResourceCSP(
            connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[]
        ),
        prefers_border=True,
    )


@functools.cache
def ticket_html() -> str:
    """The order ticket's HTML (package data, read once)."""
    return resources.files(__package__).joinpath("static/ticket.html").read_text("utf-8")


@functools.cache
def chain_html() -> str:
    """The chain table's HTML (package data, read once)."""
    return resources.files(__package__).joinpath("static/chain.html").read_text("utf-8")


def client_has_ui(ctx: Context) -> bool:
    """Whether the client declared the MCP Apps extension (``io.modelcontextprotocol/ui``) in
    its capabilities at initialize. ``False`` when there is no session to ask."""
    try:
        return ctx.client_supports_extension(UI_EXTENSION_ID)
    except (AttributeError, RuntimeError):
        return False


# ---------------------------------------------------------------------- tokens


class IssuedTicket(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket shown for ``preview_id``: the token its Confirm must send back, and the
    confirm_text it displayed (what execution checks against the stored preview)."""

    preview_id: str
    token: str
    confirm_text: str
    payload: dict[str, Any] | None = None


class TicketBook:
    """Which tickets the server handed out (bounded; the oldest is forgotten first).

    Not a second preview store: expiry, single use and the order itself stay with the
    execution actor. The book only proves that a Confirm comes from a ticket this server
    rendered for that preview, with a token the model-facing content never carried.
    Synchronous and owned by one event loop: no ``await`` inside, so no interleaving.
    """

    def __init__(self, size: int = _BOOK_SIZE) -> None:
        self._size = size
        self._tickets: OrderedDict[str, IssuedTicket] = OrderedDict()
        self._fetched: set[str] = set()

    @property
    def views_seen(self) -> bool:
        """Whether any view fetched a ticket in this session (the host renders views)."""
        return bool(self._fetched)

    def fetched(self, preview_id: str) -> bool:
        """Whether a view fetched the ticket of ``preview_id`` (it opened somewhere)."""
        return preview_id in self._fetched

    def fetch(self, preview_id: str) -> IssuedTicket | None:
        """The ticket of ``preview_id`` for a view, marked as opened; ``None`` if unknown."""
        ticket = self._tickets.get(preview_id)
        if ticket is not None:
            self._fetched.add(preview_id)
            if len(self._fetched) > self._size:
                self._fetched = set(self._tickets) & self._fetched | {preview_id}
        return ticket

    def issue(
        self, preview_id: str, confirm_text: str, payload: dict[str, Any] | None = None
    ) -> IssuedTicket:
        """A fresh ticket for ``preview_id`` (a repeat issue replaces the earlier token);
        ``payload`` is everything the ticket shows (the full preview)."""
        ticket = IssuedTicket(
            preview_id=preview_id,
            token=secrets.token_urlsafe(_TOKEN_BYTES),
            confirm_text=confirm_text,
            payload=payload,
        )
        self._tickets.pop(preview_id, None)
        self._tickets[preview_id] = ticket
        while len(self._tickets) > self._size:
            self._tickets.popitem(last=False)
        return ticket

    def lookup(self, preview_id: str, token: str) -> IssuedTicket | None:
        """The ticket when ``token`` is the one issued for ``preview_id`` (constant-time
        comparison), else ``None``."""
        ticket = self._tickets.get(preview_id)
        if ticket is None or not hmac.compare_digest(ticket.token.encode(), token.encode()):
            return None
        return ticket

    def forget(self, preview_id: str) -> bool:
        """Drop the ticket (Cancel); ``True`` when there was one."""
        return self._tickets.pop(preview_id, None) is not None


def _error(code: ErrorCode, message: str, hint: str) -> ToolResult:
    # The same {code, message, hint} shape as every other SumpPump error.
    error = ToolError(code=code, message=message, hint=hint)
    return ToolResult(
        content=[TextContent(type="text", text=f"{code}: {message} — {hint}")],
        structured_content={"error": msgspec.to_builtins(error)},
        is_error=True,
    )


#: Added to a previewing tool's text in approval mode ``app``: the model must not ask for
#: execute_trade, which refuses there.
APP_MODE_NOTE: Final = (
    "Approval mode app: the order ticket shown with this preview is the only way to place it; "
    "ask the person to review it and press Confirm there (execute_trade will refuse)."
)
APP_MODE_NO_UI_NOTE: Final = (
    "Approval mode app, but this client cannot show the order ticket (it declared no MCP Apps "
    "UI extension): this order cannot be placed from here. Approval mode tws "
    "(SUMPPUMP_APPROVAL=tws: press Transmit in TWS) or elicit would work in this client."
)
#: Approval mode ``app`` in a client that declared MCP Apps, but whose host has not opened
#: a single ticket view in this session (a local stdio server's views may never reach it).
APP_MODE_UNSEEN_NOTE: Final = (
    "Approval mode app: the order ticket is the only way to place this order, but no order "
    "ticket has opened in this client so far. If the person sees no ticket with Confirm, it did "
    "not open in this client: approval mode tws (SUMPPUMP_APPROVAL=tws: press Transmit in TWS) "
    "or elicit would work here. execute_trade will refuse."
)


class TicketMiddleware(Middleware):
    """Adds the app-facing facts to the result of every tool that carries the ticket view:
    ``_meta["sumppump/ticket"] = {token, net_liquidation}``. Results without a preview (errors,
    refusals) pass unchanged. The model-facing content is only added to: in approval mode
    ``app`` a line saying that the ticket's Confirm is the way to place the order."""

    def __init__(
        self,
        app: FastMCP[Any],
        book: TicketBook,
        net_liquidation: NetLiquidation,
        approval_mode: Callable[[], str],
    ):
        self._app = app
        self._book = book
        self._net_liquidation = net_liquidation
        self._approval_mode = approval_mode

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        result = await call_next(context)
        # The full preview is for the book only: never sent to the client in _meta.
        meta = dict(result.meta or {})
        payload = meta.pop(TICKET_PAYLOAD_KEY, None)
        result.meta = meta or None
        data = result.structured_content
        if result.is_error or not isinstance(data, dict):
            return result
        preview_id, confirm_text = data.get("preview_id"), data.get("confirm_text")
        if not isinstance(preview_id, str) or not isinstance(confirm_text, str):
            return result
        tool = await self._app.get_tool(context.message.name)
        ui = (tool.meta or {}).get("ui") if tool is not None else None
        if not isinstance(ui, dict) or ui.get("resourceUri") != TICKET_URI:
            return result
        if ui.get("visibility") == ["app"]:
            return result  # the ticket's own tools (the fetch answers the ticket, keeps its token)
        ticket = self._book.issue(
            preview_id, confirm_text, payload if isinstance(payload, dict) else None
        )
        try:
            net_liquidation = await self._net_liquidation()
        except Exception:  # the ticket still works; it shows n/a
            log.exception("net liquidation for the ticket")
            net_liquidation = None
        result.meta = {
            **(result.meta or {}),
            META_KEY: {"token": ticket.token, "net_liquidation": net_liquidation},
        }
        if self._approval_mode() == "app":
            ctx = context.fastmcp_context
            if ctx is None or not client_has_ui(ctx):
                note = APP_MODE_NO_UI_NOTE
            else:
                note = APP_MODE_NOTE if self._book.views_seen else APP_MODE_UNSEEN_NOTE
            result.content = [*result.content, TextContent(type="text", text=note)]
        return result


# ---------------------------------------------------------------------- registration


def install_views(
    app: FastMCP[Any],
    *,
    place: PlacePreview,
    net_liquidation: NetLiquidation,
    approval_mode: Callable[[], str],
    environment: Callable[[], str],
    decline: DeclinePreview,
) -> TicketBook:
    """Register the ticket and chain resources, the app-only Confirm/Cancel tools and the
    middleware that issues ticket tokens. Call once per app, after or before the tools that
    carry ``app=ticket_view()`` (they are matched by their metadata at call time).

    ``place(preview_id, confirm_text, approval)``: the execution path of ``execute_trade``.
    ``approval_mode()``: ``SUMPPUMP_APPROVAL`` as the tool layer reads it (must agree with
    execution's own reading, which refuses otherwise). ``environment()``: LIVE / PAPER /
    SIMULATED / UNKNOWN, carried by every successful result like the other tools'.
    ``decline(preview_id)``: the person's Cancel retires the preview in execution, so
    ``execute_trade`` cannot place it afterwards either.
    """
    book = TicketBook()

    @app.resource(
        TICKET_URI,
        name="order_ticket",
        description="SumpPump order ticket (MCP App view)",
        app=_no_network(),
    )
    def order_ticket() -> str:
        return ticket_html()

    @app.resource(
        CHAIN_URI,
        name="option_chain_table",
        description="SumpPump option chain table (MCP App view)",
        app=_no_network(),
    )
    def option_chain_table() -> str:
        return chain_html()

    app_only = AppConfig(resource_uri=TICKET_URI, visibility=["app"])

    @app.tool(
        name=CONFIRM_TOOL,
        app=app_only,
        annotations=ToolAnnotations(
            title="Order ticket: Confirm (the person's click)",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def confirm_order_ticket(
        preview_id: Annotated[str, Field(min_length=1, max_length=100)],
        ticket_token: Annotated[str, Field(min_length=1, max_length=100)],
        ctx: Context,
    ) -> ToolResult:
        """The order ticket's Confirm button (app only; the host keeps it from the model).
        Places the previewed order through execute_trade's checks, approved in the ticket."""
        if not client_has_ui(ctx):
            return _error(
                ErrorCode.APPROVAL_REQUIRED,
                "this client declared no MCP Apps UI extension, so no order ticket was shown",
                "Nothing was sent. Confirm in a client that renders the ticket (Claude "
                "Desktop), or use execute_trade where the approval mode allows it.",
            )
        ticket = book.lookup(preview_id.strip(), ticket_token.strip())
        if ticket is None:
            return _error(
                ErrorCode.APPROVAL_REQUIRED,
                "no open order ticket matches this preview and token (cancelled, replaced "
                "or never shown)",
                "Nothing was sent. Ask for a fresh preview: it opens a new ticket.",
            )
        approval = ApprovalContext(
            mode=approval_mode(),
            client_can_elicit=client_can_elicit(ctx),
            client_has_ui=True,
            approved_via="ticket",
        )
        return await place(ticket.preview_id, ticket.confirm_text, approval)

    @app.tool(
        name=FETCH_TOOL,
        app=app_only,
        annotations=ToolAnnotations(
            title="Order ticket: load",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def get_order_ticket(
        preview_id: Annotated[str, Field(min_length=1, max_length=100)],
    ) -> ToolResult:
        """Everything the order ticket shows for a preview (app only): the full preview with
        its payoff profile, the Confirm token, net liquidation, account kind, approval mode.
        In the text content too, since some hosts strip structuredContent from views."""
        ticket = book.fetch(preview_id.strip())
        if ticket is None or ticket.payload is None:
            return _error(
                ErrorCode.INVALID_ARGUMENT,
                f"no order ticket for preview {preview_id!r} (expired, cancelled or unknown)",
                "Ask for a fresh preview: it opens a new ticket.",
            )
        try:
            net_liq = await net_liquidation()
        except Exception:  # the ticket still works; it shows n/a
            log.exception("net liquidation for the ticket")
            net_liq = None
        data = {
            **ticket.payload,
            "environment": environment(),
            "approval_mode": approval_mode(),
            META_KEY: {"token": ticket.token, "net_liquidation": net_liq},
        }
        return ToolResult(
            content=[TextContent(type="text", text=json.dumps(data, separators=(",", ":")))],
            structured_content=data,
        )

    @app.tool(
        name=CANCEL_TOOL,
        app=app_only,
        annotations=ToolAnnotations(
            title="Order ticket: Cancel",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def cancel_order_ticket(
        preview_id: Annotated[str, Field(min_length=1, max_length=100)],
        ticket_token: Annotated[str, Field(min_length=1, max_length=100)],
    ) -> ToolResult:
        """The order ticket's Cancel button (app only): the person declined this preview;
        neither the ticket nor execute_trade can place it any more. Nothing is sent."""
        ticket = book.lookup(preview_id.strip(), ticket_token.strip())
        declined = False
        if ticket is not None:
            book.forget(ticket.preview_id)
            declined = await decline(ticket.preview_id)
        text = (
            "The person declined this order in the ticket: nothing was sent, and the preview "
            "can no longer be executed."
            if declined
            else "Ticket closed: nothing was sent."
        )
        return ToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content={
                "preview_id": preview_id,
                "cancelled": ticket is not None,
                "preview_voided": declined,
                "environment": environment(),
                "summary": text,
            },
        )

    app.add_middleware(TicketMiddleware(app, book, net_liquidation, approval_mode))
    return book


def client_can_elicit(ctx: Context) -> bool:
    """Whether the client declared MCP elicitation (the server may ask the person)."""
    try:
        capabilities = ctx.session.client_capabilities
    except (AttributeError, RuntimeError):
        return False
    return capabilities is not None and capabilities.elicitation is not None
