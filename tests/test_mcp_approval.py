"""Approval modes through the MCP layer: elicit, tws, and unknown values (refuse everything)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult

from sumppump.mcp_server import Service, create_app
from sumppump.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def preview(client: Client[Any]) -> dict[str, Any]:
    chain = await client.call_tool("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 2})
    data = chain.structured_content or {}
    strike = sorted({row["strike"] for row in data["rows"]})[1]
    result = await client.call_tool(
        "calculate_strategy",
        {"symbol": "AAPL", "strategy": "long_call", "expiry": data["expiry"], "strikes": [strike]},
    )
    assert result.structured_content is not None
    return result.structured_content


def placed(service: Service, ref: str) -> list[Any]:
    return [o for o in service.sim.orders_received if o.order_ref == ref and not o.what_if]


async def execute(client: Client[Any], p: dict[str, Any]) -> Any:
    return await client.call_tool(
        "execute_trade",
        {"preview_id": p["preview_id"], "confirm_text": p["confirm_text"]},
        raise_on_error=False,
    )


async def test_elicit_mode_never_places_an_order_the_server_could_not_ask_about(
    tmp_path: Path,
) -> None:
    """The fastmcp client speaks MCP 2026-07-28, which has no server-initiated elicitation: the
    server cannot ask, so it refuses, even though the client would have accepted."""
    prompts: list[str] = []

    async def accept_everything(message: str, response_type: Any, params: Any, context: Any) -> Any:
        prompts.append(message)
        return ElicitResult(action="accept", content={"value": "Place this order"})

    app = create_app(Settings(approval="elicit"), simulated=True, cache_dir=tmp_path)
    async with Client(app, elicitation_handler=accept_everything) as client:
        p = await preview(client)
        result = await execute(client, p)
        service: Service = app.state  # type: ignore[attr-defined]
        error = (result.structured_content or {})["error"]
        assert error["code"] == "APPROVAL_REQUIRED"
        assert "Nothing was sent" in error["hint"]
        assert placed(service, p["preview_id"]) == []


async def test_elicit_mode_refuses_a_client_that_cannot_elicit(tmp_path: Path) -> None:
    app = create_app(Settings(approval="elicit"), simulated=True, cache_dir=tmp_path)
    async with Client(app) as client:
        p = await preview(client)
        result = await execute(client, p)
        service: Service = app.state  # type: ignore[attr-defined]
        assert (result.structured_content or {})["error"]["code"] == "APPROVAL_REQUIRED"
        assert placed(service, p["preview_id"]) == []


async def test_tws_mode_sends_with_transmit_off_and_waits_for_the_person_in_tws(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(approval="tws"), simulated=True, cache_dir=tmp_path)
    async with Client(app) as client:
        p = await preview(client)
        result = await execute(client, p)
        service: Service = app.state  # type: ignore[attr-defined]
        data = result.structured_content or {}
        assert not result.is_error, result.content
        assert data["waiting_for_tws_transmit"] is True
        [order] = placed(service, p["preview_id"])
        assert order.request.transmit is False
        positions = await client.call_tool("get_positions", {})
        assert all(
            p["sec_type"] == "STK" for p in (positions.structured_content or {})["positions"]
        )
        assert " C:" not in positions.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["yolo", "", "auto"])
async def test_an_unknown_approval_mode_refuses_every_order(tmp_path: Path, mode: str) -> None:
    app = create_app(Settings(approval=mode), simulated=True, cache_dir=tmp_path)
    async with Client(app) as client:
        p = await preview(client)
        result = await execute(client, p)
        service: Service = app.state  # type: ignore[attr-defined]
        assert (result.structured_content or {})["error"]["code"] == "APPROVAL_REQUIRED"
        assert placed(service, p["preview_id"]) == []
