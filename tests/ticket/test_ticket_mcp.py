"""The order ticket through MCP, in memory: metadata, the view resources, app-only tools, the
approval modes, and one order for five simultaneous clicks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from sumppump.ticket import (
    APP_MODE_NO_UI_NOTE,
    APP_MODE_NOTE,
    APP_MODE_UNSEEN_NOTE,
    CANCEL_TOOL,
    CHAIN_URI,
    CONFIRM_TOOL,
    FETCH_TOOL,
    META_KEY,
    TICKET_URI,
)
from tests.ticket.support import (
    app_visible,
    model_visible,
    placed,
    spread_preview,
    ticket_app,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the simulated TWS and ib_async need asyncio


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.structured_content
    error = (result.structured_content or {})["error"]
    assert set(error) == {"code", "message", "hint"}
    return error


async def confirm(client: Any, preview: Any, token: str | None = None) -> Any:
    """Click Confirm as the view does: it fetches the ticket by preview id, then confirms."""
    data = preview.structured_content
    await client.call_tool(FETCH_TOOL, {"preview_id": data["preview_id"]}, raise_on_error=False)
    return await client.call_tool(
        CONFIRM_TOOL,
        {
            "preview_id": data["preview_id"],
            "ticket_token": token if token is not None else preview.meta[META_KEY]["token"],
        },
        raise_on_error=False,
    )


async def test_preview_tools_open_the_ticket_and_the_chain_opens_the_table(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path) as (client, _):
        tools = {t.name: t for t in await client.list_tools()}
        for name in ("calculate_strategy", "set_stop_loss"):
            assert tools[name].meta["ui"]["resourceUri"] == TICKET_URI
        assert tools["get_options_chain"].meta["ui"]["resourceUri"] == CHAIN_URI
        # execute_trade opens nothing: it is the model's path, not the ticket's.
        assert "ui" not in (tools["execute_trade"].meta or {})


async def test_view_resources_are_mcp_app_html_that_load_nothing_from_the_network(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path) as (client, _):
        listed = {str(r.uri): r for r in await client.list_resources()}
        for uri in (TICKET_URI, CHAIN_URI):
            assert listed[uri].mime_type == "text/html;profile=mcp-app"
            csp = listed[uri].meta["ui"]["csp"]
            assert csp == {
                "connectDomains": [],
                "resourceDomains": [],
                "frameDomains": [],
                "baseUriDomains": [],
            }
            (content,) = await client.read_resource(uri)
            assert content.mime_type == "text/html;profile=mcp-app"
            html = content.text
            assert html.lstrip().lower().startswith("<!doctype html>")
            # Everything inline: no external script, style, image, font or fetch.
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
            assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|import)\s*\(", html)
            assert "@import" not in html and "url(" not in html


async def test_app_only_tools_are_kept_from_the_model_and_listed_for_the_app(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path) as (client, _):
        tools = await client.list_tools()
        for_model, for_app = model_visible(tools), app_visible(tools)
        for name in (CONFIRM_TOOL, CANCEL_TOOL):
            assert name not in for_model
            assert name in for_app
        assert {"calculate_strategy", "execute_trade", "set_stop_loss"} <= set(for_model)
        assert {"calculate_strategy", "set_stop_loss"} <= set(for_app)


async def test_the_ticket_token_rides_in_meta_only_and_the_model_facing_result_is_unchanged(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path) as (client, _):
        preview = await spread_preview(client)
        facts = preview.meta[META_KEY]
        token = facts["token"]
        assert len(token) >= 24
        assert facts["net_liquidation"] > 0
        model_facing = json.dumps(preview.structured_content) + "".join(
            getattr(block, "text", "") for block in preview.content
        )
        assert token not in model_facing
        data = preview.structured_content
        # The model gets every figure of the order, the confirm text and the chart ...
        assert data["confirm_text"] in preview.content[0].text
        assert data["max_loss_with_commission"] > 0
        assert [b.type for b in preview.content] == ["text", "image"]
        assert data["underlying_price"] > 0
        # ... and the full preview (payoff profile) stays with the server for the ticket.
        assert "profile" not in json.dumps(data) and "ticket-payload" not in json.dumps(
            preview.meta
        )


async def test_app_mode_refuses_execute_trade_and_places_once_for_five_simultaneous_clicks(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path, approval="app") as (client, service):
        preview = await spread_preview(client)
        data = preview.structured_content
        refused = await client.call_tool(
            "execute_trade",
            {"preview_id": data["preview_id"], "confirm_text": data["confirm_text"]},
            raise_on_error=False,
        )
        error = error_of(refused)
        assert error["code"] == "APPROVAL_REQUIRED"
        # No view fetched this ticket yet: the model learns it did not open, and what works.
        assert "did not open in this client" in error["hint"] and "tws" in error["hint"]
        assert placed(service) == []
        # The model is told with the preview itself that no ticket has opened in this client.
        texts = [getattr(block, "text", "") for block in preview.content]
        assert texts[-1] == APP_MODE_UNSEEN_NOTE
        assert data["confirm_text"] in texts[0]
        # Once the view has fetched the ticket, the refusal points at its Confirm instead.
        fetched = await client.call_tool(FETCH_TOOL, {"preview_id": data["preview_id"]})
        assert not fetched.is_error
        refused = await client.call_tool(
            "execute_trade",
            {"preview_id": data["preview_id"], "confirm_text": data["confirm_text"]},
            raise_on_error=False,
        )
        assert "press Confirm in the order ticket" in error_of(refused)["hint"]
        status = await client.call_tool("get_status", {})
        assert status.structured_content["ticket_views_seen"] is True
        assert "order-ticket views seen this session: yes" in status.content[0].text

        results: list[Any] = []

        async def click() -> None:
            results.append(await confirm(client, preview))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(click)
        ok = [r for r in results if not r.is_error]
        assert len(ok) == 1, [r.structured_content for r in results]
        assert ok[0].structured_content["order_ref"] == data["preview_id"]
        codes = sorted(error_of(r)["code"] for r in results if r.is_error)
        assert codes == ["PREVIEW_USED"] * 4
        assert len(placed(service, data["preview_id"])) == 1
        assert len(placed(service)) == 1

        submits = [
            json.loads(line)
            for line in (tmp_path / "audit.jsonl").read_text().splitlines()
            if '"submit"' in line
        ]
        assert [s["approval"] for s in submits] == ["approved in ticket"]


async def test_app_mode_fails_closed_for_a_client_without_the_ui_extension(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path, approval="app", with_ui=False) as (client, service):
        preview = await spread_preview(client)
        data = preview.structured_content
        refused = await client.call_tool(
            "execute_trade",
            {"preview_id": data["preview_id"], "confirm_text": data["confirm_text"]},
            raise_on_error=False,
        )
        error = error_of(refused)
        assert error["code"] == "APPROVAL_REQUIRED"
        assert "UI extension" in error["message"]
        assert getattr(preview.content[-1], "text", "") == APP_MODE_NO_UI_NOTE
        assert "nothing was sent" in error["hint"].lower()
        # Even with the right token, a client that shows no ticket cannot confirm one.
        clicked = await confirm(client, preview)
        assert error_of(clicked)["code"] == "APPROVAL_REQUIRED"
        assert placed(service) == []


async def test_client_mode_places_through_execute_trade_and_through_the_ticket(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path, approval="client") as (client, service):
        first = await spread_preview(client)
        d1 = first.structured_content
        by_tool = await client.call_tool(
            "execute_trade",
            {"preview_id": d1["preview_id"], "confirm_text": d1["confirm_text"]},
            raise_on_error=False,
        )
        assert not by_tool.is_error, by_tool.structured_content
        second = await spread_preview(client)
        by_ticket = await confirm(client, second)
        assert not by_ticket.is_error, by_ticket.structured_content
        # The ticket's view of the outcome: status, fills so far, and the stop-loss prompt.
        outcome = by_ticket.structured_content
        assert outcome["order_ref"] == second.structured_content["preview_id"]
        assert outcome["status"]
        assert len(placed(service)) == 2
        approvals = [
            json.loads(line)["approval"]
            for line in (tmp_path / "audit.jsonl").read_text().splitlines()
            if '"submit"' in line
        ]
        assert approvals == [
            "approved in the client's tool-approval prompt",
            "approved in ticket",
        ]


async def test_a_wrong_or_cancelled_ticket_token_places_nothing(tmp_path: Path) -> None:
    async with ticket_app(tmp_path, approval="app") as (client, service):
        preview = await spread_preview(client)
        data = preview.structured_content
        forged = await confirm(client, preview, token="x" * 24)
        assert error_of(forged)["code"] == "APPROVAL_REQUIRED"
        cancelled = await client.call_tool(
            CANCEL_TOOL,
            {"preview_id": data["preview_id"], "ticket_token": preview.meta[META_KEY]["token"]},
        )
        assert cancelled.structured_content["cancelled"] is True
        assert cancelled.structured_content["preview_voided"] is True
        after_cancel = await confirm(client, preview)
        assert error_of(after_cancel)["code"] == "APPROVAL_REQUIRED"
        # a cancelled ticket cannot be fetched again either
        refetch = await client.call_tool(
            FETCH_TOOL, {"preview_id": data["preview_id"]}, raise_on_error=False
        )
        assert error_of(refetch)["code"] == "INVALID_ARGUMENT"
        assert placed(service) == []


async def test_cancel_in_the_ticket_also_stops_execute_trade(tmp_path: Path) -> None:
    async with ticket_app(tmp_path, approval="client") as (client, service):
        preview = await spread_preview(client)
        data = preview.structured_content
        await client.call_tool(
            CANCEL_TOOL,
            {"preview_id": data["preview_id"], "ticket_token": preview.meta[META_KEY]["token"]},
        )
        late = await client.call_tool(
            "execute_trade",
            {"preview_id": data["preview_id"], "confirm_text": data["confirm_text"]},
            raise_on_error=False,
        )
        error = error_of(late)
        assert error["code"] == "PREVIEW_EXPIRED"
        assert "declined" in error["message"]
        assert placed(service) == []


async def test_the_stop_loss_preview_opens_a_ticket_with_the_exact_order(tmp_path: Path) -> None:
    async with ticket_app(tmp_path, approval="app") as (client, service):
        preview = await spread_preview(client)
        filled = await confirm(client, preview)
        prompt = filled.structured_content["stop_loss_prompt"]
        assert prompt is not None and prompt["call"]["tool"] == "set_stop_loss"
        stop = await client.call_tool("set_stop_loss", prompt["call"]["arguments"])
        data = stop.structured_content
        assert data["kind"] == "stop"
        assert data["order"]["order_type"] in ("STP", "STP LMT")
        assert len(data["order"]["legs"]) == 2
        assert stop.meta[META_KEY]["token"]
        placed_stop = await confirm(client, stop)
        assert not placed_stop.is_error, placed_stop.structured_content
        assert len(placed(service, data["preview_id"])) == 1


async def test_a_host_on_the_legacy_initialize_handshake_is_recognised(tmp_path: Path) -> None:
    """Hosts that still speak the pre-2026 handshake declare the extension there too."""
    async with ticket_app(tmp_path, approval="app", mode="legacy") as (client, service):
        preview = await spread_preview(client)
        clicked = await confirm(client, preview)
        assert not clicked.is_error, clicked.structured_content
        assert len(placed(service)) == 1


async def test_closing_a_position_opens_its_ticket_and_confirm_places_the_close(
    tmp_path: Path,
) -> None:
    async with ticket_app(tmp_path, approval="app") as (client, service):
        tools = {t.name: t for t in await client.list_tools()}
        for name in ("close_position", "modify_order", "roll_position"):
            assert tools[name].meta["ui"]["resourceUri"] == TICKET_URI
        opened = await spread_preview(client)
        filled = await confirm(client, opened)
        assert not filled.is_error, filled.structured_content
        ref = opened.structured_content["preview_id"]
        close = await client.call_tool("close_position", {"symbol": "AAPL", "position": ref})
        data = close.structured_content
        assert data["kind"] == "close" and data["details"]["action"] == "close"
        assert close.meta[META_KEY]["token"]
        # a view fetched the opening's ticket earlier in this session (in confirm())
        assert getattr(close.content[-1], "text", "") == APP_MODE_NOTE
        closed = await confirm(client, close)
        assert not closed.is_error, closed.structured_content
        assert len(placed(service, data["preview_id"])) == 1
