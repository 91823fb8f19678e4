"""The MCP surface in memory (fastmcp Client) against the embedded simulated TWS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from sumppump.mcp_server import Service, create_app

pytestmark = pytest.mark.anyio

TOOLS = {
    "get_status",
    "get_quote",
    "get_options_chain",
    "get_market_stats",
    "get_price_history",
    "get_news",
    "get_account",
    "get_positions",
    "get_open_orders",
    "get_order_status",
    "suggest_strikes",
    "calculate_strategy",
    "execute_trade",
    "set_stop_loss",
    "cancel_order",
    "close_position",
    "modify_order",
    "roll_position",
    "get_portfolio",
    "exercise_option",
}
READ_ONLY = TOOLS - {"execute_trade", "cancel_order"}  # previews are read-only: nothing is sent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client[Any]]:
    app = create_app(simulated=True, cache_dir=tmp_path)
    async with Client(app) as client:
        client.service = app.state  # type: ignore[attr-defined]
        yield client


async def call(client: Client[Any], name: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(name, args, raise_on_error=False)
    assert result.structured_content is not None
    return result.structured_content


async def test_every_tool_is_listed_with_annotations_and_only_execution_is_destructive(
    client: Client[Any],
) -> None:
    listed = {tool.name: tool for tool in await client.list_tools()}
    # The order ticket's Confirm/Cancel are app-only: the host keeps them from the model.
    app_only = {n for n, t in listed.items() if (t.meta or {}).get("ui", {}).get("visibility")}
    assert app_only == {"confirm_order_ticket", "cancel_order_ticket", "get_order_ticket"}
    tools = {n: t for n, t in listed.items() if n not in app_only}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        ann = tool.annotations
        assert ann is not None, name
        assert ann.read_only_hint is (name in READ_ONLY), name
        assert ann.destructive_hint is (name not in READ_ONLY), name
        assert ann.open_world_hint is True
        assert tool.description
    assert tools["execute_trade"].annotations.read_only_hint is False  # type: ignore[union-attr]


async def test_read_tools_answer_structured_results_labelled_simulated(
    client: Client[Any],
) -> None:
    status = await call(client, "get_status")
    assert status["environment"] == "SIMULATED"
    assert status["connection"]["state"] == "connected"
    quote = await call(client, "get_quote", symbol="aapl")
    assert quote["symbol"] == "AAPL"
    assert quote["bid"] <= quote["ask"]
    chain = await call(client, "get_options_chain", symbol="AAPL", strikes_each_side="3", right="c")
    assert chain["environment"] == "SIMULATED"
    assert len(chain["rows"]) == 6
    assert {row["right"] for row in chain["rows"]} == {"C"}
    # one source for every row: stated once, not per row
    assert chain["greeks_source"] == "ib_model"
    assert not any("greeks_source" in row for row in chain["rows"])
    account = await call(client, "get_account")
    assert account["net_liquidation"] > 0
    positions = await call(client, "get_positions")
    assert positions["positions"]
    orders = await call(client, "get_open_orders")
    assert orders["orders"] == []
    history = await call(client, "get_price_history", symbol="MSFT", duration="1 M")
    assert len(history["bars"]) >= 15
    stats = await call(client, "get_market_stats", symbol="MSFT")
    assert stats["hist_vol_20d_pct"] > 0


async def test_news_is_wrapped_as_untrusted_text(client: Client[Any]) -> None:
    news = await call(client, "get_news", symbol="AAPL", limit="3")
    assert news["untrusted"] is True
    assert "untrusted" in news["notice"].lower()
    assert news["headlines"] and all("untrusted_text" in h for h in news["headlines"])
    text = await client.call_tool("get_news", {"symbol": "AAPL", "limit": 3})
    assert "UNTRUSTED" in text.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tool", "args", "code"),
    [
        ("get_quote", {"symbol": "ZZZZ"}, "UNKNOWN_SYMBOL"),
        ("get_quote", {"symbol": 5}, "INVALID_ARGUMENT"),
        ("get_quote", {"symbol": "AAPL; DROP"}, "INVALID_ARGUMENT"),
        ("get_options_chain", {"symbol": "AAPL", "expiry": "2026-13-45"}, "INVALID_ARGUMENT"),
        ("get_options_chain", {"symbol": "AAPL", "expiry": "2026-12-05"}, "INVALID_ARGUMENT"),
        ("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 500}, "INVALID_ARGUMENT"),
        ("get_price_history", {"symbol": "AAPL", "bar_size": "2 years"}, "INVALID_ARGUMENT"),
        ("get_news", {"symbol": "AAPL", "limit": "lots"}, "INVALID_ARGUMENT"),
    ],
)
async def test_bad_input_gets_a_structured_error_never_a_traceback(
    client: Client[Any], tool: str, args: dict[str, Any], code: str
) -> None:
    result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error
    assert result.structured_content is not None
    error = result.structured_content["error"]
    assert error["code"] == code
    assert error["message"] and error["hint"]
    assert "Traceback" not in result.content[0].text  # type: ignore[union-attr]


async def test_unlisted_expiry_names_the_nearest_listed_ones(client: Client[Any]) -> None:
    result = await client.call_tool(
        "get_options_chain", {"symbol": "AAPL", "expiry": "2026-12-05"}, raise_on_error=False
    )
    assert result.structured_content is not None
    assert "2026-12-04" in result.structured_content["error"]["hint"]


async def test_a_killed_actor_still_gets_a_structured_answer_and_recovers(
    client: Client[Any],
) -> None:
    service: Service = client.service  # type: ignore[attr-defined]
    assert service.tree is not None
    outcomes: list[dict[str, Any]] = []

    async def ask() -> None:
        result = await client.call_tool(
            "get_options_chain", {"symbol": "NVDA"}, raise_on_error=False
        )
        assert result.structured_content is not None
        outcomes.append(result.structured_content)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await anyio.sleep(0.05)
        service.tree.root.kill("broker/chain_cache")
    assert outcomes[0].get("error", {}).get("code") in (None, "SERVICE_UNAVAILABLE")
    chain = await call(client, "get_options_chain", symbol="NVDA")
    assert chain["rows"]


async def test_when_the_root_gives_up_every_tool_answers_service_unavailable(
    client: Client[Any],
) -> None:
    service: Service = client.service  # type: ignore[attr-defined]
    assert service.tree is not None
    pricing = service.tree.refs.pricing
    for generation in range(1, 5):  # the root allows 3 restarts in 60 s; the 4th escalates
        while (pricing.generation < generation or not pricing.alive) and service.failure is None:
            await anyio.sleep(0.01)
        if service.failure is not None:
            break
        service.tree.root.kill("pricing")
    with anyio.fail_after(5):
        while service.failure is None:
            await anyio.sleep(0.01)
    for tool, args in [("get_status", {}), ("get_quote", {"symbol": "AAPL"})]:
        result = await client.call_tool(tool, args, raise_on_error=False)
        assert result.is_error
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == "SERVICE_UNAVAILABLE"


async def test_close_position_previews_selling_the_held_shares_and_sends_nothing(
    client: Client[Any],
) -> None:
    sim = client.service.sim  # type: ignore[attr-defined]
    before = len(sim.orders_received)
    result = await call(client, "close_position", symbol="AAPL", position="STK", quantity=50)
    assert result["kind"] == "close"
    assert result["details"]["quantity"] == 50
    assert result["details"]["holds_after"] == ["+150 AAPL shares"]
    assert "SELL 50 shares of AAPL" in result["confirm_text"]
    assert len(sim.orders_received) == before


async def test_analyse_confirm_fill_and_stop_loss_through_the_mcp_layer(
    client: Client[Any],
) -> None:
    chain = await call(client, "get_options_chain", symbol="AAPL", strikes_each_side=3)
    strikes = sorted({row["strike"] for row in chain["rows"]})
    result = await client.call_tool(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": "bull_call_spread",
            "expiry": chain["expiry"],
            "strikes": f"{strikes[2]},{strikes[4]}",
            "quantity": "2",
        },
        raise_on_error=False,
    )
    assert not result.is_error, result.content
    analysis = result.structured_content
    assert analysis is not None
    assert {block.type for block in result.content} == {"text", "image"}
    a = analysis
    # A debit spread: max loss = debit × quantity × multiplier, max gain = width × … − that.
    width = strikes[4] - strikes[2]
    assert a["max_loss"] == pytest.approx(a["limit_price"] * 2 * 100)
    assert a["max_gain"] == pytest.approx((width - a["limit_price"]) * 2 * 100)
    assert a["breakevens"] == [pytest.approx(strikes[2] + a["limit_price"])]
    assert "profile" not in str(a)  # the payoff arrays go to the ticket, not the model
    assert analysis["preview_id"] and "at most" in analysis["confirm_text"]
    wrong = await client.call_tool(
        "execute_trade",
        {"preview_id": analysis["preview_id"], "confirm_text": "buy 100 contracts"},
        raise_on_error=False,
    )
    assert wrong.structured_content["error"]["code"] == "CONFIRM_MISMATCH"  # type: ignore[index]
    placed = await call(
        client,
        "execute_trade",
        preview_id=analysis["preview_id"],
        confirm_text=analysis["confirm_text"],
    )
    assert placed["order_ref"] == analysis["preview_id"]
    assert placed["status"] == "Filled"
    assert placed["stop_loss_prompt"]["call"]["tool"] == "set_stop_loss"
    replay = await client.call_tool(
        "execute_trade",
        {"preview_id": analysis["preview_id"], "confirm_text": analysis["confirm_text"]},
        raise_on_error=False,
    )
    assert replay.structured_content["error"]["code"] == "PREVIEW_USED", replay.content  # type: ignore[index]
    service: Service = client.service  # type: ignore[attr-defined]
    orders = [
        o
        for o in service.sim.orders_received
        if o.order_ref == analysis["preview_id"] and not o.what_if  # the re-check's what-if
    ]
    assert len(orders) == 1
    stop = await call(
        client,
        "set_stop_loss",
        symbol="AAPL",
        position=placed["stop_loss_prompt"]["call"]["arguments"]["position"],
    )
    assert stop["kind"] == "stop" and stop["preview_id"] != analysis["preview_id"]
    assert stop["environment"] == "SIMULATED" and "SIMULATED" in stop["confirm_text"]


async def test_level3_strategies_are_refused_with_the_level_they_need(
    client: Client[Any],
) -> None:
    chain = await call(client, "get_options_chain", symbol="AAPL", strikes_each_side=2)
    strikes = sorted({row["strike"] for row in chain["rows"]})
    result = await client.call_tool(
        "calculate_strategy",
        {
            "symbol": "AAPL",
            "strategy": "bull_put_spread",
            "expiry": chain["expiry"],
            "strikes": [strikes[0], strikes[1]],
        },
        raise_on_error=False,
    )
    assert result.is_error
    error = result.structured_content["error"]  # type: ignore[index]
    assert error["code"] == "NOT_PERMITTED_LEVEL2"
    assert "level" in (error["message"] + error["hint"]).lower()
