"""What every tool shares: argument types, annotations, result builders and the error plumbing.

Every error a tool answers is ``{code, message, hint}``
(:class:`~sumppump.messages.errors.ToolError`), never a traceback: domain outcomes raise
:class:`Failure` inside a :func:`tool_body`, which turns them (and anything unexpected, and the
deadline) into a structured error result.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
import msgspec
from fastmcp.tools.base import ToolResult
from mcp.types import TextContent, ToolAnnotations
from pydantic import BeforeValidator, Field, StringConstraints

from sumppump.messages.base import Reply
from sumppump.messages.chain_cache import ExpiryNotListed
from sumppump.messages.common import (
    NoMarketData,
    NoSuchContract,
    NotConnected,
    NotImplementedYet,
    TwsError,
)
from sumppump.messages.errors import ErrorCode, ToolError
from sumppump.messages.rate_limiter import PacingDelayed
from sumppump.rendering import Rendered

if TYPE_CHECKING:
    from sumppump.mcp_server import Service

log = logging.getLogger(__name__)

AccountKind = Literal["LIVE", "PAPER", "SIMULATED", "UNKNOWN"]
TOOL_DEADLINE = 28.0  # every tool answers within 30 s; Claude Desktop drops a call after ~60 s
READ_TIMEOUT = 25.0


class Failure(Exception):
    """A tool ends with a structured error."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        hint: str,
        *,
        fresh_preview: Rendered | None = None,
    ) -> None:
        super().__init__(message)
        self.error = ToolError(code=code, message=message, hint=hint)
        #: ``PRICE_MOVED``: the same order at the current price, ready to show and confirm.
        self.fresh_preview = fresh_preview


# ---------------------------------------------------------------------- argument coercion


def parse_list(value: Any) -> Any:
    """Claude Desktop sometimes sends lists as JSON strings or comma-separated text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    return value


def upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Symbol = Annotated[
    str,
    BeforeValidator(upper),
    Field(
        min_length=1,
        max_length=12,
        pattern=r"^[A-Z][A-Z0-9.\-]{0,11}$",
        description="ticker, e.g. AAPL",
    ),
]
IsoDate = Annotated[
    # The pattern belongs to the string only: null, "" and "none" mean "not given".
    Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None,
    BeforeValidator(blank_to_none),
    Field(default=None, description="YYYY-MM-DD"),
]
#: The longest span IB serves per unit of a history request's duration.
HISTORY_LIMITS = {"S": 86_400, "D": 365, "W": 52, "M": 12, "Y": 20}


def history_span(value: str) -> str:
    """IB's duration ("30 D", "6 M", "1 Y"), within the spans IB serves."""
    amount, _, unit = value.strip().upper().partition(" ")
    if not amount.isdigit() or unit not in HISTORY_LIMITS:
        raise ValueError('a duration is a number and a unit: "30 D", "6 M", "1 Y"')
    if not 1 <= int(amount) <= HISTORY_LIMITS[unit]:
        raise ValueError(f"{unit} durations go from 1 to {HISTORY_LIMITS[unit]}")
    return f"{int(amount)} {unit}"


Strikes = Annotated[list[float], BeforeValidator(parse_list), Field(min_length=1, max_length=4)]
#: calculate_strategy's strikes: empty or omitted for ``custom`` (its legs carry them).
OptionalStrikes = Annotated[
    Annotated[list[float], Field(max_length=4)] | None, BeforeValidator(parse_list)
]
RightArg = Annotated[
    Literal["C", "P", "both"],
    BeforeValidator(lambda v: lower(v) if lower(v) == "both" else upper(v)),
]


#: An order's reference: the preview id it was placed under (``sp-…``).
OrderRef = Annotated[str, Field(min_length=1, max_length=100, description="sp-… ref of the order")]


def result_schema(*fields: str) -> dict[str, Any]:
    """The output schema of a result: an object with these top-level fields and
    ``environment``. Deliberately shallow: the description says what the fields mean, and
    nested shapes are plain JSON the model reads as it is."""
    properties: dict[str, Any] = {name: {} for name in fields}
    properties["environment"] = {"enum": ["LIVE", "PAPER", "SIMULATED", "UNKNOWN"]}
    return {"type": "object", "properties": properties, "required": ["environment"]}


def compact_input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema as the model reads it in every conversation, without noise: an
    optional ``X | None = None`` is listed as ``X`` (omitting it means none; the server still
    accepts null), and ``additionalProperties: false`` is left to the server to enforce."""
    properties = {}
    for name, spec in schema.get("properties", {}).items():
        spec = dict(spec)
        options = spec.get("anyOf")
        if (
            isinstance(options, list)
            and len(options) == 2
            and {"type": "null"} in options
            and spec.get("default", ...) is None
        ):
            other = next(o for o in options if o != {"type": "null"})
            spec = {**other, **{k: v for k, v in spec.items() if k not in ("anyOf", "default")}}
        properties[name] = spec
    out = {k: v for k, v in schema.items() if k != "additionalProperties"}
    out["properties"] = properties
    return out


def label(kind: str) -> str:
    """The account kind that starts every successful text: ``[SIMULATED] ``."""
    return "" if kind == "UNKNOWN" else f"[{kind}] "


def ok(service: Service, rendered: Rendered) -> ToolResult:
    """A successful result: the text content and the structured content of one rendered
    value, both labelled with the account kind."""
    data = {**rendered.data, "environment": service.kind}
    return ToolResult(
        content=[TextContent(type="text", text=label(service.kind) + rendered.text)],
        structured_content=data,
    )


def error_result(error: ToolError, fresh_preview: Rendered | None = None) -> ToolResult:
    """The structured error ``{"error": {code, message, hint}}``; a ``fresh_preview``
    (after ``PRICE_MOVED``) goes beside it, and into the text whole."""
    text = f"{error.code}: {error.message} — {error.hint}"
    structured: dict[str, Any] = {"error": msgspec.to_builtins(error)}
    if fresh_preview is not None:
        structured["fresh_preview"] = fresh_preview.data
        text += "\nFresh preview at the current price:\n" + fresh_preview.text
    return ToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=True,
    )


def raise_for_outcome(reply: Reply) -> Reply:
    match reply:
        case NotConnected(reason=reason, retry_in=retry_in):
            hint = "Start TWS or IB Gateway, log in, and enable the API (port in settings)."
            if retry_in is not None:
                hint += f" Next connection attempt in {retry_in:.0f}s."
            raise Failure(ErrorCode.NOT_CONNECTED, f"not connected to TWS: {reason}", hint)
        case NoSuchContract(symbol=symbol, detail=detail):
            raise Failure(
                ErrorCode.UNKNOWN_SYMBOL,
                f"unknown symbol {symbol}: {detail}",
                "Check the ticker; SumpPump trades US stocks and ETFs with options.",
            )
        case NoMarketData(code=10197, message=message, subscribe_hint=hint):
            raise Failure(
                ErrorCode.NO_MARKET_DATA,
                "no market data: another live session of your IB user (TWS elsewhere, IBKR "
                f"Mobile or the Client Portal) took it (10197: {message})",
                hint,
            )
        case NoMarketData(code=code, message=message, subscribe_hint=hint):
            raise Failure(ErrorCode.NO_MARKET_DATA, f"no market data ({code}): {message}", hint)
        case PacingDelayed(reason=reason, retry_after=after):
            raise Failure(
                ErrorCode.PACING, f"IB pacing: {reason}", f"Try again in {max(1, round(after))}s."
            )
        case ExpiryNotListed(symbol=symbol, requested=requested, nearest=nearest):
            raise Failure(
                ErrorCode.INVALID_ARGUMENT,
                f"{symbol} has no expiry on {requested}",
                f"Listed expiries nearby: {', '.join(nearest)}.",
            )
        case TwsError(code=code, message=message, request=request):
            raise Failure(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"TWS error {code} on {request}: {message}",
                "See the README's troubleshooting table for this code.",
            )
        case NotImplementedYet(actor=actor, request=request):
            raise Failure(
                ErrorCode.NOT_IMPLEMENTED,
                f"{request} is not available yet ({actor})",
                "This part of SumpPump is still being built.",
            )
        case _:
            return reply


T = TypeVar("T", bound=Reply)


def expect(reply: Reply, kind: type[T]) -> T:
    if not isinstance(reply, kind):
        raise Failure(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"unexpected answer {type(reply).__name__}",
            "Please report this.",
        )
    return reply


def tool_body(fn: Callable[..., Awaitable[ToolResult]]) -> Callable[..., Awaitable[ToolResult]]:
    """Structured errors only: domain failures become ``{code, message, hint}``, anything
    unexpected is logged and answered ``SERVICE_UNAVAILABLE``; every tool has a deadline."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> ToolResult:
        try:
            with anyio.fail_after(TOOL_DEADLINE):
                return await fn(*args, **kwargs)
        except Failure as failure:
            return error_result(failure.error, failure.fresh_preview)
        except TimeoutError:
            return error_result(
                ToolError(
                    code=ErrorCode.SERVICE_UNAVAILABLE,
                    message=f"no answer within {TOOL_DEADLINE:.0f}s",
                    hint="TWS may be slow; ask again.",
                )
            )
        except Exception:
            log.exception("tool %s failed", fn.__name__)
            return error_result(
                ToolError(
                    code=ErrorCode.SERVICE_UNAVAILABLE,
                    message=f"{fn.__name__} failed unexpectedly",
                    hint="Details are in SumpPump's log (stderr).",
                )
            )

    return wrapper


def preview_tool(title: str) -> ToolAnnotations:
    """A tool that answers a preview: nothing is sent to the broker, but each call makes a new
    single-use preview (not idempotent)."""
    return read_tool(title, idempotent=False)


def acting_tool(title: str, *, idempotent: bool) -> ToolAnnotations:
    """A tool that sends something to the broker: never read-only."""
    return ToolAnnotations(
        title=title,
        read_only_hint=False,
        destructive_hint=True,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


def read_tool(title: str, *, idempotent: bool = True) -> ToolAnnotations:
    """A tool that only reads (TWS is the open world it reads from)."""
    return ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


def refusal(code: str, message: str, hint: str) -> Failure:
    try:
        error_code = ErrorCode(code)
    except ValueError:
        error_code = ErrorCode.INVALID_ARGUMENT
    # Every error tells the person what to do next, even if an actor forgot to say.
    return Failure(error_code, message, hint or "Nothing was sent; adjust the request and retry.")
