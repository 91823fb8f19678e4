"""The order ticket in a real browser: headless system Chromium (never downloaded) loads the
ticket inside our MCP Apps host page, which relays to the in-process server over 127.0.0.1.

Skipped only when no Chromium is installed (.ci/run installs Debian's ``chromium``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sumppump.ticket import CHAIN_URI, FETCH_TOOL, TICKET_URI
from sumppump.ticket.host import HostRelay, chromium, find_chromium
from sumppump.trading.confirm import money
from tests.ticket.support import placed, ticket_app

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(find_chromium() is None, reason="no chromium (apt-get install chromium)"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # playwright, the simulated TWS and ib_async need asyncio


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def spread_args(client: Any) -> dict[str, Any]:
    chain = await client.call_tool("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
    data = chain.structured_content
    strikes = sorted({row["strike"] for row in data["rows"]})
    return {
        "symbol": "AAPL",
        "strategy": "bull_call_spread",
        "expiry": data["expiry"],
        "strikes": [strikes[2], strikes[4]],
        "quantity": 2,
    }


def dollars(text: str) -> float:
    match = re.search(r"(-?)\$([\d,]+\.\d\d)", text)
    assert match, text
    return (-1 if match.group(1) else 1) * float(match.group(2).replace(",", ""))


async def test_ticket_shows_the_structured_max_loss_and_its_confirm_places_one_order(
    tmp_path: Path, browser: Any
) -> None:
    async with ticket_app(tmp_path, approval="app") as (client, service):
        args = await spread_args(client)
        async with HostRelay(client) as relay:
            page = await browser.new_page(viewport={"width": 820, "height": 1200})
            await page.goto(relay.page_url(TICKET_URI, "calculate_strategy", args))
            ticket = page.frame_locator("#view")
            await ticket.locator("body[data-rendered-at]").wait_for(timeout=10_000)
            # The view fetched everything it shows by the preview id (app-only tool).
            [(first, _, _), (fetch, fetch_args, shown)] = relay.calls
            assert (first, fetch) == ("calculate_strategy", FETCH_TOOL)
            data = shown["structuredContent"]
            assert fetch_args == {"preview_id": data["preview_id"]}
            worst = data["analysis"]["max_loss_with_commission"]
            max_loss_text = await ticket.get_by_test_id("max-loss").inner_text()
            assert max_loss_text.splitlines()[0] == money(worst)
            assert dollars(max_loss_text) == worst
            assert "SIMULATED" in await ticket.get_by_test_id("account-kind").inner_text()
            legs = await ticket.get_by_test_id("legs").locator("tr").all_inner_texts()
            assert [row.split()[:2] for row in legs[1:]] == [
                [leg["leg"]["action"], str(abs(leg["position"]))]
                for leg in data["analysis"]["legs"]
            ]
            assert data["confirm_text"] == await ticket.get_by_test_id("confirm-text").inner_text()
            breakeven = data["analysis"]["breakevens"][0]
            assert f"{breakeven:.2f}" in await ticket.get_by_test_id("breakevens").inner_text()
            assert await ticket.get_by_test_id("checks").locator("li").count() == len(
                [c for c in data["checks"] if c["status"] != "not_run"]
            )
            timer = await ticket.get_by_test_id("timer").inner_text()
            assert re.match(r"expires in [01]:\d\d", timer), timer
            await page.locator("#frame-wrap").screenshot(path=str(tmp_path / "ticket.png"))
            assert (tmp_path / "ticket.png").stat().st_size > 10_000

            # A double click sends one Confirm: the button is disabled by the first.
            await ticket.get_by_test_id("confirm").dblclick()
            status = ticket.get_by_test_id("status")
            await status.wait_for(timeout=15_000)
            assert data["preview_id"] in await status.inner_text()
            assert [name for name, _, _ in relay.calls].count("confirm_order_ticket") == 1
            assert len(placed(service)) == 1
            assert len(placed(service, data["preview_id"])) == 1

            # After the fill: the stop-loss prompt, and "Set stop" opens the stop's ticket.
            await ticket.get_by_test_id("set-stop").click()
            await ticket.locator("h1", has_text="AAPL stop").wait_for(timeout=10_000)
            name, _, stop = relay.calls[-2]
            assert name == "set_stop_loss" and not stop.get("isError"), stop
            assert relay.calls[-1][0] == FETCH_TOOL
            stop_data = relay.calls[-1][2]["structuredContent"]
            assert stop_data["kind"] == "stop"
            assert (
                stop_data["confirm_text"]
                == await ticket.get_by_test_id("confirm-text").inner_text()
            )
            assert await ticket.get_by_test_id("confirm").is_enabled()
            assert len(placed(service)) == 1  # the stop is only previewed until its Confirm


async def test_hovering_the_chart_at_the_breakeven_shows_no_profit_no_loss(
    tmp_path: Path, browser: Any
) -> None:
    async with ticket_app(tmp_path) as (client, _):
        args = await spread_args(client)
        async with HostRelay(client) as relay:
            page = await browser.new_page(viewport={"width": 820, "height": 1200})
            await page.goto(relay.page_url(TICKET_URI, "calculate_strategy", args))
            ticket = page.frame_locator("#view")
            await ticket.locator("body[data-rendered-at]").wait_for(timeout=10_000)
            mark = await ticket.get_by_test_id("breakeven-mark").bounding_box()
            spot_mark = await ticket.get_by_test_id("spot-mark").bounding_box()
            assert mark is not None and spot_mark is not None
            frame_box = await page.locator("#view").bounding_box()
            assert frame_box is not None
            y = mark["y"] + mark["height"] / 2
            await page.mouse.move(mark["x"] + mark["width"] / 2, y)
            tip = ticket.get_by_test_id("chart-tip")
            text = await tip.inner_text()
            expiry_pnl = dollars(text.split("expiry", 1)[1])
            assert abs(expiry_pnl) < 15, text  # within a pixel's worth of the breakeven
            # Left of the breakeven (lower prices) a bull call spread loses at expiry.
            await page.mouse.move(frame_box["x"] + 80, y)
            assert dollars((await tip.inner_text()).split("expiry", 1)[1]) < 0


async def test_the_chain_opens_as_a_table_that_sorts_by_a_clicked_column(
    tmp_path: Path, browser: Any
) -> None:
    async with ticket_app(tmp_path) as (client, _), HostRelay(client) as relay:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        args = {"symbol": "AAPL", "strikes_each_side": 3}
        await page.goto(relay.page_url(CHAIN_URI, "get_options_chain", args))
        table = page.frame_locator("#view").get_by_test_id("chain")
        await table.wait_for(timeout=10_000)
        rows = relay.calls[0][2]["structuredContent"]["rows"]
        assert await table.locator("tbody tr").count() == len(rows)
        headers = [h.strip() for h in await table.locator("th").all_inner_texts()]
        iv_column = headers.index("IV") + 1
        await table.locator("th", has_text="IV").click()
        shown = await table.locator(f"tbody td:nth-child({iv_column})").all_inner_texts()
        values = [float(v.rstrip("%")) for v in shown if v != "–"]
        assert values == sorted(values) and len(set(values)) > 1
        await table.locator("th", has_text="IV").click()  # again: descending
        shown = await table.locator(f"tbody td:nth-child({iv_column})").all_inner_texts()
        values = [float(v.rstrip("%")) for v in shown if v != "–"]
        assert values == sorted(values, reverse=True)


async def render_standalone(browser: Any, result: dict[str, Any]) -> Any:
    """The ticket page on its own (its parent is itself), handed ``result`` as a tool result:
    for states the simulator does not produce (a LIVE account, a check that could not run)."""
    from sumppump.ticket import ticket_html

    page = await browser.new_page(viewport={"width": 820, "height": 1200})
    await page.set_content(ticket_html())
    await page.evaluate(
        "r => window.postMessage({jsonrpc: '2.0', method: 'ui/notifications/tool-result',"
        " params: r}, '*')",
        result,
    )
    return page


async def test_a_live_account_a_check_not_run_and_an_expired_preview_are_impossible_to_miss(
    tmp_path: Path, browser: Any
) -> None:
    async with ticket_app(tmp_path) as (client, _):
        preview = await client.call_tool("calculate_strategy", await spread_args(client))
        fetched = await client.call_tool_mcp(
            FETCH_TOOL, {"preview_id": preview.structured_content["preview_id"]}
        )
    # What the view renders: the ticket it fetched by the preview id.
    result = fetched.model_dump(by_alias=True, exclude_none=True, mode="json")
    result.pop("content")
    data = result["structuredContent"]
    data["account_kind"] = "LIVE"
    data["checks"][-1] = {**data["checks"][-1], "status": "not_run", "detail": "no quote"}
    page = await render_standalone(browser, result)
    await page.locator("body[data-rendered-at]").wait_for(timeout=5_000)
    banner = page.get_by_test_id("account-kind")
    assert "LIVE ACCOUNT — REAL MONEY" in await banner.inner_text()
    assert "LIVE" in (await banner.get_attribute("class") or "").split()
    not_run = await page.get_by_test_id("checks-not-run").inner_text()
    assert data["checks"][-1]["name"].replace("_", " ") in not_run and "no quote" in not_run
    assert await page.get_by_test_id("confirm").is_enabled()

    data["expires_at"] = "2000-01-01T00:00:00+00:00"  # long gone
    expired = await render_standalone(browser, result)
    await expired.locator("body[data-rendered-at]").wait_for(timeout=5_000)
    assert "expired" in await expired.get_by_test_id("timer").inner_text()
    assert not await expired.get_by_test_id("confirm").is_enabled()

    del data["sumppump/ticket"]["token"]  # no token from the server: nothing to confirm with
    data["expires_at"] = "2999-01-01T00:00:00+00:00"
    untokened = await render_standalone(browser, result)
    await untokened.locator("body[data-rendered-at]").wait_for(timeout=5_000)
    assert not await untokened.get_by_test_id("confirm").is_enabled()


async def test_the_close_ticket_shows_what_the_close_does(tmp_path: Path, browser: Any) -> None:
    async with ticket_app(tmp_path) as (client, service):
        opened = await client.call_tool("calculate_strategy", await spread_args(client))
        ref = opened.structured_content["preview_id"]
        done = await client.call_tool(
            "execute_trade",
            {"preview_id": ref, "confirm_text": opened.structured_content["confirm_text"]},
        )
        assert not done.is_error
        async with HostRelay(client) as relay:
            page = await browser.new_page(viewport={"width": 820, "height": 1200})
            args = {"symbol": "AAPL", "position": ref}
            await page.goto(relay.page_url(TICKET_URI, "close_position", args))
            ticket = page.frame_locator("#view")
            await ticket.locator("body[data-rendered-at]").wait_for(timeout=10_000)
            data = relay.calls[1][2]["structuredContent"]  # the fetched ticket
            details = await ticket.get_by_test_id("change-details").inner_text()
            assert details.startswith("Close: " + data["details"]["position"])
            assert data["confirm_text"] == await ticket.get_by_test_id("confirm-text").inner_text()
            await ticket.get_by_test_id("confirm").click()
            await ticket.get_by_test_id("status").wait_for(timeout=15_000)
            assert len(placed(service, data["preview_id"])) == 1


async def test_a_host_that_strips_structured_content_and_meta_still_gets_a_working_ticket(
    tmp_path: Path, browser: Any
) -> None:
    """Claude Desktop hands a view no structuredContent and no _meta for a local server
    (modelcontextprotocol/ext-apps#696): the ticket finds the preview id in the text, fetches
    the rest, and five clicks on Confirm place exactly one order."""
    async with ticket_app(tmp_path, approval="app") as (client, service):
        args = await spread_args(client)
        async with HostRelay(client) as relay:
            page = await browser.new_page(viewport={"width": 820, "height": 1200})
            await page.goto(relay.page_url(TICKET_URI, "calculate_strategy", args, strip=True))
            ticket = page.frame_locator("#view")
            await ticket.locator("body[data-rendered-at]").wait_for(timeout=10_000)
            handed = await page.evaluate("window.__host.toolResult")
            assert "structuredContent" in handed  # the server sent it; the host withheld it
            [(_, _, _), (fetch, _, shown)] = relay.calls
            assert fetch == FETCH_TOOL
            data = shown["structuredContent"]
            assert data["confirm_text"] == await ticket.get_by_test_id("confirm-text").inner_text()
            worst = data["analysis"]["max_loss_with_commission"]
            assert dollars(await ticket.get_by_test_id("max-loss").inner_text()) == worst
            assert await ticket.locator("svg").count() >= 1  # the payoff chart, from the fetch
            confirm = ticket.get_by_test_id("confirm")
            assert await confirm.is_enabled()
            for _ in range(5):
                await confirm.click(force=True, no_wait_after=True)
            status = ticket.get_by_test_id("status")
            await status.wait_for(timeout=15_000)
            assert data["preview_id"] in await status.inner_text()
            assert [name for name, _, _ in relay.calls].count("confirm_order_ticket") == 1
            assert len(placed(service)) == 1
            assert len(placed(service, data["preview_id"])) == 1
