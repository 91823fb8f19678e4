"""MCP prompts for the conversations people start with SumpPump, and completion of their
arguments.

Three prompts (Claude Desktop's prompt picker, ``/sumppump:<name>`` in Claude Code):

- ``trade_idea(symbol, outlook, budget)``: from a view on a stock to a previewed Level-2 order.
- ``review_positions()``: the account, its positions and working orders, with what needs care.
- ``expiring_this_week()``: the options that expire by Friday and what to do about each.

Each renders one user message that names the tools to call and the order to call them in; none
places an order (each says to wait for the person's confirmation of the exact previewed order).
``symbol`` completes from a list of liquid optionable US underlyings (any symbol is accepted);
``outlook`` completes from its three values. FastMCP serves one completion handler per server:
this module registers it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Final, Literal

from fastmcp import FastMCP
from mcp_types import CompletionArgument, CompletionContext, PromptReference
from pydantic import Field

__all__ = [
    "OUTLOOKS",
    "SUGGESTED_SYMBOLS",
    "complete_argument",
    "expiring_this_week_text",
    "register",
    "review_positions_text",
    "trade_idea_text",
    "week_end",
]

Outlook = Literal["bullish", "bearish", "volatile"]
OUTLOOKS: Final[tuple[Outlook, ...]] = ("bullish", "bearish", "volatile")

#: Completion suggestions only (any symbol IB knows works): index ETFs and the most traded
#: single-stock option underlyings.
SUGGESTED_SYMBOLS: Final = (
    "SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD",
    "NFLX", "AVGO", "JPM", "BAC", "XOM", "KO", "DIS", "INTC", "PLTR", "COIN", "UBER", "BA",
    "GLD", "SLV", "TLT", "XLF", "XLE", "SMH",
)  # fmt: skip

_STRATEGIES: Final[dict[Outlook, str]] = {
    "bullish": "a long call or a bull call (debit) spread",
    "bearish": "a long put or a bear put (debit) spread",
    "volatile": "a long straddle or strangle",
}

_NO_ORDER: Final = (
    "Do not place anything: show me the preview (max loss, max gain, breakeven, what it does "
    "to my account) and wait until I confirm that exact order."
)


def week_end(today: date) -> date:
    """The Friday of ``today``'s week (``today`` itself on a Friday; the next Friday on a
    weekend, when this week's options have already expired)."""
    return today + timedelta(days=(4 - today.weekday()) % 7)


def trade_idea_text(symbol: str, outlook: Outlook, budget: str = "") -> str:
    """The ``trade_idea`` prompt's message for ``symbol`` (any case) and ``outlook``."""
    ticker = symbol.strip().upper()
    limit = f" and keep the debit under {budget.strip()}" if budget.strip() else ""
    return (
        f"I am {outlook} on {ticker}. Find me a Level-2 options trade for that view{limit}.\n"
        "1. get_status: say whether this is a LIVE, PAPER or SIMULATED account.\n"
        f"2. get_quote and get_market_stats for {ticker}: where it trades, and whether implied "
        "volatility is high or low against its own history (it decides between buying options "
        "outright and a debit spread).\n"
        f'3. suggest_strikes(symbol="{ticker}", outlook="{outlook}"'
        + (f", max_debit={budget.strip()}" if budget.strip() else "")
        + f"): compare the top candidates ({_STRATEGIES[outlook]}) by max loss, max gain, "
        "breakeven, reward/risk and probability of profit, in a small table.\n"
        "4. Recommend one and preview it with calculate_strategy.\n" + _NO_ORDER
    )


def review_positions_text() -> str:
    """The ``review_positions`` prompt's message."""
    return (
        "Review my positions.\n"
        "1. get_status (LIVE, PAPER or SIMULATED), get_account, get_positions and "
        "get_open_orders.\n"
        "2. One table: each position with quantity, average cost, market value, unrealised P&L, "
        "days to expiry for options, and whether a working order (a stop) protects it.\n"
        "3. Flag what needs attention: options expiring within 7 days, in-the-money short legs "
        "(assignment risk), losses beyond my max risk, one underlying dominating the account, "
        "positions without a stop.\n"
        "4. For each flag, say what you would do (close_position, roll_position or "
        "set_stop_loss) and why, but preview only what I ask for. " + _NO_ORDER
    )


def expiring_this_week_text(today: date) -> str:
    """The ``expiring_this_week`` prompt's message, as of ``today``."""
    friday = week_end(today)
    return (
        f"What in my account expires by Friday {friday.isoformat()} (today is "
        f"{today.isoformat()})?\n"
        "1. get_status (LIVE, PAPER or SIMULATED) and get_positions; keep the options whose "
        f"expiry is on or before {friday.isoformat()}.\n"
        "2. For each: get_quote of the underlying, then in or out of the money and by how much, "
        "its value now, and what happens at expiry if I do nothing (expires worthless, "
        "exercised into shares, or assigned; whether I have the cash or shares for that).\n"
        "3. Working orders on them (get_open_orders).\n"
        "4. Suggest for each: let it expire, close (close_position) or roll to a later expiry "
        "(roll_position), and preview only what I ask for. " + _NO_ORDER
    )


def complete_argument(
    ref: PromptReference | Any,
    argument: CompletionArgument,
    context: CompletionContext | None = None,
) -> list[str] | None:
    """Candidates for a prompt argument: ``symbol`` from :data:`SUGGESTED_SYMBOLS` by prefix
    (case-insensitive), ``outlook`` from :data:`OUTLOOKS`; None for anything else."""
    if not isinstance(ref, PromptReference) or ref.name != "trade_idea":
        return None
    typed = argument.value.strip()
    match argument.name:
        case "symbol":
            return [s for s in SUGGESTED_SYMBOLS if s.startswith(typed.upper())]
        case "outlook":
            return [o for o in OUTLOOKS if o.startswith(typed.lower())]
        case _:
            return None


def register(app: FastMCP[Any]) -> None:
    """Add the prompts and the argument completion handler to ``app``."""

    @app.prompt(
        name="trade_idea",
        title="Trade idea",
        description="From a view on a stock (bullish, bearish or volatile) to a previewed "
        "Level-2 options order.",
    )
    def trade_idea(
        symbol: Annotated[str, Field(description="Stock or ETF ticker, e.g. AAPL")],
        outlook: Annotated[Outlook, Field(description="bullish, bearish or volatile")],
        budget: Annotated[str, Field(description="Largest debit you would pay (optional)")] = "",
    ) -> str:
        return trade_idea_text(symbol, outlook, budget)

    @app.prompt(
        name="review_positions",
        title="Review my positions",
        description="The account, its positions and working orders, and what needs attention.",
    )
    def review_positions() -> str:
        return review_positions_text()

    @app.prompt(
        name="expiring_this_week",
        title="What expires this week",
        description="Options in the account that expire by Friday, and what to do about each.",
    )
    def expiring_this_week() -> str:
        return expiring_this_week_text(date.today())

    app.add_completion_handler(complete_argument)
