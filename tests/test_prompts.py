"""MCP prompts and argument completion, over an in-memory FastMCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

from sumppump import prompts
from sumppump.mcp_server import create_app
from sumppump.settings import Settings

pytestmark = pytest.mark.anyio

TOOL_NAMES_IN_PROMPTS = (
    "get_status",
    "get_quote",
    "get_market_stats",
    "suggest_strikes",
    "calculate_strategy",
    "get_account",
    "get_positions",
    "get_open_orders",
    "close_position",
    "roll_position",
    "set_stop_loss",
)


@pytest.fixture
async def client() -> AsyncIterator[Client[Any]]:
    app = FastMCP("prompts")
    prompts.register(app)
    async with Client(app) as connected:
        yield connected


def text_of(result: Any) -> str:
    [message] = result.messages
    assert message.role == "user"
    return str(message.content.text)


async def test_the_three_prompts_are_listed_with_their_arguments(client: Client[Any]) -> None:
    listed = {p.name: p for p in await client.list_prompts()}
    assert set(listed) == {"trade_idea", "review_positions", "expiring_this_week"}
    arguments = {a.name: a.required for a in listed["trade_idea"].arguments or []}
    assert arguments == {"symbol": True, "outlook": True, "budget": False}
    assert not listed["review_positions"].arguments
    assert all(p.description for p in listed.values())


@pytest.mark.parametrize(
    ("outlook", "strategy"),
    [("bullish", "bull call"), ("bearish", "bear put"), ("volatile", "straddle")],
)
async def test_trade_idea_names_the_symbol_outlook_and_tools_and_places_nothing(
    client: Client[Any], outlook: str, strategy: str
) -> None:
    text = text_of(await client.get_prompt("trade_idea", {"symbol": "aapl", "outlook": outlook}))
    assert f"I am {outlook} on AAPL" in text
    assert f'suggest_strikes(symbol="AAPL", outlook="{outlook}")' in text
    assert strategy in text
    assert "calculate_strategy" in text
    assert "wait until I confirm" in text
    assert "execute_trade" not in text


async def test_trade_idea_passes_a_budget_on_as_max_debit(client: Client[Any]) -> None:
    text = text_of(
        await client.get_prompt(
            "trade_idea", {"symbol": "SPY", "outlook": "bullish", "budget": "500"}
        )
    )
    assert "max_debit=500" in text
    assert "under 500" in text


async def test_trade_idea_refuses_an_unknown_outlook(client: Client[Any]) -> None:
    with pytest.raises(MCPError, match="outlook"):
        await client.get_prompt("trade_idea", {"symbol": "SPY", "outlook": "sideways"})


async def test_review_and_expiry_prompts_name_the_tools_they_need(client: Client[Any]) -> None:
    review = text_of(await client.get_prompt("review_positions", {}))
    for tool in ("get_account", "get_positions", "get_open_orders", "set_stop_loss"):
        assert tool in review
    expiring = text_of(await client.get_prompt("expiring_this_week", {}))
    assert f"by Friday {prompts.week_end(date.today()).isoformat()}" in expiring
    for tool in ("get_positions", "close_position", "roll_position"):
        assert tool in expiring


def test_every_tool_a_prompt_names_is_served() -> None:
    import anyio

    async def served() -> set[str]:
        return {t.name for t in await create_app(Settings()).list_tools()}

    names = anyio.run(served)
    texts = (
        prompts.trade_idea_text("X", "bullish", "1")
        + prompts.review_positions_text()
        + prompts.expiring_this_week_text(date(2026, 12, 3))
    )
    for tool in TOOL_NAMES_IN_PROMPTS:
        assert tool in texts and tool in names, tool


@pytest.mark.parametrize(
    ("today", "friday"),
    [
        (date(2026, 11, 30), date(2026, 12, 4)),  # Monday
        (date(2026, 12, 4), date(2026, 12, 4)),  # Friday itself
        (date(2026, 12, 5), date(2026, 12, 11)),  # Saturday: this week's have expired
        (date(2026, 12, 6), date(2026, 12, 11)),  # Sunday
    ],
)
def test_week_end_is_this_weeks_friday(today: date, friday: date) -> None:
    assert prompts.week_end(today) == friday


async def test_symbol_and_outlook_complete_by_prefix(client: Client[Any]) -> None:
    ref = PromptReference(type="ref/prompt", name="trade_idea")
    symbols = await client.complete(ref, {"name": "symbol", "value": "a"})
    assert symbols.values == ["AAPL", "AMZN", "AMD", "AVGO"]
    assert (await client.complete(ref, {"name": "symbol", "value": ""})).values == list(
        prompts.SUGGESTED_SYMBOLS
    )
    outlooks = await client.complete(ref, {"name": "outlook", "value": "b"})
    assert outlooks.values == ["bullish", "bearish"]
    other = PromptReference(type="ref/prompt", name="review_positions")
    assert (await client.complete(other, {"name": "symbol", "value": "A"})).values == []


async def test_the_server_serves_the_prompts() -> None:
    async with Client(create_app(Settings())) as connected:
        names = {p.name for p in await connected.list_prompts()}
    assert names == {"trade_idea", "review_positions", "expiring_this_week"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
