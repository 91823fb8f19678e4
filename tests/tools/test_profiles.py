"""Every tool's result, as each client hands it to the model, carries the facts a
conversation about it needs (issue 17 item 1): Claude Desktop reads only the text content,
Claude Code/VS Code only the JSON of structuredContent. Figures are checked against values
taken beside the tool (the actors' own replies, the ticket's full preview), not against the
result itself."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from sumppump import __version__
from sumppump.mcp_server import Service, create_app
from sumppump.messages.chain_cache import Chain, GetChain
from sumppump.messages.connection import FetchPositions, Positions
from sumppump.rendering.profiles import claude_desktop, structured_only
from sumppump.settings import Settings
from sumppump.ticket import FETCH_TOOL
from tests.tools.facts import Fact, check

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async and the simulated TWS need asyncio


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client[Any]]:
    app = create_app(Settings(audit_path=tmp_path / "a.jsonl"), simulated=True, cache_dir=tmp_path)
    async with Client(app) as client:
        client.service = app.state  # type: ignore[attr-defined]
        yield client


def service_of(client: Client[Any]) -> Service:
    return client.service  # type: ignore[attr-defined,no-any-return]


async def call(client: Client[Any], tool: str, **args: Any) -> Any:
    result = await client.call_tool(tool, args, raise_on_error=False)
    assert not result.is_error, result.content
    return result


async def test_market_data_results_carry_their_figures_in_both_profiles(
    client: Client[Any],
) -> None:
    status = await call(client, "get_status")
    check(status, ["connected", "SIMULATED", "U1234567", "live", "client"])
    assert client.server_info.version == __version__  # type: ignore[union-attr]

    quote = await call(client, "get_quote", symbol="AAPL")
    q = quote.structured_content
    check(quote, ["AAPL", q["bid"], q["ask"], q["last"], q["day_low"], q["day_high"], "live"])

    result = await call(client, "get_options_chain", symbol="AAPL", strikes_each_side=3)
    chain = await service_of(client).ask(
        "chain_cache", GetChain(symbol="AAPL", strikes_each_side=3)
    )
    assert isinstance(chain, Chain) and chain.rows
    facts: list[Fact] = [chain.expiry, "live", "ib_model"]
    for row in chain.rows:
        assert row.bid is not None and row.ask is not None and row.iv is not None
        assert row.delta is not None and row.open_interest is not None and row.mid is not None
        facts += [row.strike, row.bid, row.ask, row.mid, (row.iv * 100, 1), (row.delta, 3)]
        facts += [(row.open_interest, 0)]
    profiles = check(result, facts)
    per_row = {name: len(text) / len(chain.rows) for name, text in profiles.items()}
    assert per_row["claude_desktop"] <= 140 and per_row["structured"] <= 260, per_row

    stats = await call(client, "get_market_stats", symbol="AAPL")
    s = stats.structured_content
    check(stats, [s["last"], s["week52_low"], s["week52_high"], s["hist_vol_20d_pct"]])
    check(stats, [s["implied_vol_pct"], s["iv_rank"], s["put_call_volume"]])

    history = await call(client, "get_price_history", symbol="AAPL", duration="6 M")
    h = history.structured_content
    assert h["bar_count"] > 30 and len(h["bars"]) == 30  # cut, and said so
    last = h["bars"][-1]
    profiles = check(history, [*last[1:5], h["period"]["high"], h["period"]["low"]])
    assert "last 30 of" in profiles["claude_desktop"] and "last 30 of" in profiles["structured"]

    news = await call(client, "get_news", symbol="AAPL", limit=3)
    headlines = news.structured_content["headlines"]
    profiles = check(news, [*(h["untrusted_text"] for h in headlines), "BRFG"])
    assert "UNTRUSTED" in profiles["claude_desktop"]
    assert '"untrusted":true' in profiles["structured"]


async def test_account_and_trading_results_carry_their_figures_in_both_profiles(
    client: Client[Any],
) -> None:
    service = service_of(client)
    account = await call(client, "get_account")
    a = account.structured_content
    check(account, [a["net_liquidation"], a["available_funds"], a["buying_power"], "U1234567"])

    before = await call(client, "get_positions")
    held = await service.ask("connection", FetchPositions())
    assert isinstance(held, Positions) and len(held.positions) == 1
    [shares] = held.positions
    assert shares.market_value is not None and shares.unrealized_pnl is not None
    profiles = check(
        before, [shares.quantity, shares.avg_cost, shares.market_value, shares.unrealized_pnl]
    )
    assert profiles["claude_desktop"].startswith("[SIMULATED] 1 position:")

    ideas = await call(client, "suggest_strikes", symbol="AAPL", outlook="bullish")
    facts: list[Fact] = []
    for c in ideas.structured_content["candidates"]:
        facts += [*c["strikes"], c["debit"], c["max_loss"], c["expected_pnl"]]
        facts += [*c["breakevens"], (c["pop_pct"], 1)]
        if "max_gain" in c:
            facts.append(c["max_gain"])
    assert len(ideas.structured_content["candidates"]) == 6
    profiles = check(ideas, facts)
    assert profiles["claude_desktop"].count("unbounded") >= 1

    chain = await call(client, "get_options_chain", symbol="AAPL", strikes_each_side=3)
    rows = chain.structured_content["rows"]
    strikes = sorted({r["strike"] for r in rows})
    preview = await call(
        client,
        "calculate_strategy",
        symbol="AAPL",
        strategy="bull_call_spread",
        expiry=chain.structured_content["expiry"],
        strikes=[strikes[2], strikes[4]],
        quantity=2,
    )
    data = preview.structured_content
    full = (await call(client, FETCH_TOOL, preview_id=data["preview_id"])).structured_content
    fa = full["analysis"]
    facts = [
        f"{strikes[2]:g}",
        f"{strikes[4]:g}",
        fa["limit_price"],
        fa["net_mid"],
        fa["net_natural"],
        fa["max_loss_with_commission"],
        fa["max_gain"],
        *fa["breakevens"],
        (fa["probability_of_profit"] * 100, 1),
        (fa["greeks"]["delta"], 3),
        (fa["greeks"]["theta"], 2),
        (fa["greeks"]["vega"], 2),
        fa["commission"]["total"],
        full["what_if_init_margin_change"],
        full["preview_id"],
        full["expires_at"],
        full["confirm_text"],
        *(c["name"] for c in full["checks"]),
    ]
    for leg in fa["legs"]:
        facts += [leg["bid"], leg["ask"], leg["mid"], leg["natural"]]
    profiles = check(preview, facts)
    assert len(profiles["structured"]) <= 4000, len(profiles["structured"])
    assert "profile" not in profiles["structured"] and '"type":' not in profiles["structured"]

    placed = await call(
        client, "execute_trade", preview_id=data["preview_id"], confirm_text=data["confirm_text"]
    )
    p = placed.structured_content
    prompt = p["stop_loss_prompt"]
    check(placed, [p["order_ref"], p["status"], p["avg_fill_price"], prompt["suggested_stop"]])
    outcome = await call(client, "get_order_status", order_ref=p["order_ref"])
    o = outcome.structured_content
    assert o["outcome"] == "filled", o
    check(outcome, [p["order_ref"], "filled", o["filled"], o["avg_fill_price"], o["message"]])
    after = await call(client, "get_positions")
    assert claude_desktop(after).startswith("[SIMULATED] 3 positions:")

    stop = await call(client, "set_stop_loss", **prompt["call"]["arguments"])
    sd = stop.structured_content
    check(stop, [sd["preview_id"], sd["confirm_text"], sd["expires_at"], prompt["suggested_stop"]])
    await call(
        client, "execute_trade", preview_id=sd["preview_id"], confirm_text=sd["confirm_text"]
    )
    orders = await call(client, "get_open_orders")
    [working] = orders.structured_content["orders"]
    check(orders, [working["order_ref"], working["status"], working["aux_price"], "STP"])

    close = await call(client, "close_position", symbol="AAPL", position=p["order_ref"])
    cd = close.structured_content
    details = cd["details"]
    check(close, [cd["preview_id"], cd["confirm_text"], details["mid"], details["natural"]])
    check(close, [details["commission"], details["realised_pnl"], details["stops"][0]["how"]])

    cancelled = await call(client, "cancel_order", order_ref=working["order_ref"])
    check(cancelled, [working["order_ref"], cancelled.structured_content["status"]])


async def test_custom_takes_its_legs_with_strikes_empty_or_omitted(client: Client[Any]) -> None:
    chain = await call(client, "get_options_chain", symbol="AAPL", strikes_each_side=2)
    expiry = chain.structured_content["expiry"]
    strike = chain.structured_content["rows"][0]["strike"]
    legs = [{"action": "BUY", "right": "C", "strike": strike, "expiry": expiry, "ratio": 1}]
    omitted_or_empty: list[dict[str, Any]] = [{}, {"strikes": []}, {"strikes": ""}]
    for strikes in omitted_or_empty:
        result = await client.call_tool(
            "calculate_strategy",
            {"symbol": "AAPL", "strategy": "custom", "expiry": expiry, "legs": legs, **strikes},
            raise_on_error=False,
        )
        assert not result.is_error, (strikes, result.content)
        assert (result.structured_content or {})["legs"][0]["leg"]["action"] == "BUY"
        assert f"BUY 1 C {strike:g}" in claude_desktop(result)


async def test_the_listing_describes_every_parameter_and_names_allowed_values(
    client: Client[Any],
) -> None:
    tools = [
        t
        for t in await client.list_tools()
        if (t.meta or {}).get("ui", {}).get("visibility") != ["app"]
    ]
    for tool in tools:
        for name, spec in tool.input_schema.get("properties", {}).items():
            assert spec.get("description"), (tool.name, name)
    by_name = {t.name: t.input_schema["properties"] for t in tools}
    assert "bull_call_spread" in by_name["calculate_strategy"]["strategy"]["description"]
    assert "volatile" in json.dumps(by_name["suggest_strikes"]["outlook"])
    assert "both" in json.dumps(by_name["get_options_chain"]["right"])
    listing = json.dumps(
        [
            {"name": t.name, "description": t.description, "inputSchema": t.input_schema}
            for t in tools
        ],
        separators=(",", ":"),
    )
    assert len(listing) <= 10_000, len(listing)


def test_the_profiles_are_what_each_client_hands_the_model() -> None:
    result = {
        "content": [{"type": "text", "text": "AAPL 227.94"}, {"type": "image", "data": "x"}],
        "structuredContent": {"price": 227.94},
    }
    assert claude_desktop(result) == "AAPL 227.94"
    assert structured_only(result) == '{"price":227.94}'
    assert structured_only({"content": result["content"]}) == "AAPL 227.94"
