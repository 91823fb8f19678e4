"""get_options_chain reports progress per batch of quote requests (issue 21), through the real
MCP layer: increasing values from 0 to 100, several in between."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from fastmcp import Client

from bench.tools import wait_connected
from sumppump.mcp_server import create_app
from sumppump.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_wide_chain_reports_progress_per_batch(tmp_path: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    app = create_app(
        Settings(audit_path=tmp_path / "audit.jsonl"), simulated=True, cache_dir=tmp_path
    )
    with anyio.fail_after(60):
        async with Client(app) as client:
            await wait_connected(client)
            result = await client.call_tool(
                "get_options_chain",
                {"symbol": "SPY", "strikes_each_side": 25},
                progress_handler=on_progress,
            )
    assert not result.is_error
    values = [v for v, _, _ in seen]
    assert values[0] == 0 and values[-1] == 100
    assert values == sorted(set(values))  # strictly increasing, as MCP requires
    between = [v for v in values if 0 < v < 100]
    assert len(between) >= 5, seen
    assert any(m and "quotes" in m for _, _, m in seen)
