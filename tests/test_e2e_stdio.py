"""End to end: `sumppump serve --sim` as a subprocess, driven over stdio by the fastmcp Client."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def transport(tmp_path: Path) -> StdioTransport:
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SUMPPUMP_AUDIT_PATH": str(tmp_path / "audit.jsonl"),
    }
    return StdioTransport(
        command=sys.executable,
        args=["-m", "sumppump", "serve", "--sim"],
        env=env,
        keep_alive=False,
    )


async def test_serve_sim_over_stdio_answers_tools_and_exits_cleanly(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with Client(transport(tmp_path)) as client:
            tools = await client.list_tools()
            model_visible = [t for t in tools if "visibility" not in (t.meta or {}).get("ui", {})]
            assert len(model_visible) == 20  # plus the order ticket's three app-only tools
            assert len(tools) == 23
            status = await client.call_tool("get_status", {})
            assert status.structured_content is not None
            assert status.structured_content["environment"] == "SIMULATED"
            chain = await client.call_tool(
                "get_options_chain", {"symbol": "AAPL", "strikes_each_side": 2}
            )
            data: dict[str, Any] = chain.structured_content or {}
            assert len(data["rows"]) == 8
            bad = await client.call_tool("get_quote", {"symbol": "ZZZZ"}, raise_on_error=False)
            assert bad.is_error


def test_stdout_carries_only_protocol_messages_and_eof_ends_the_process(tmp_path: Path) -> None:
    import json
    import subprocess

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_quote", "arguments": {"symbol": "MSFT"}},
        },
    ]
    stderr_log = (tmp_path / "stderr.log").open("w")
    with (
        stderr_log,
        subprocess.Popen(
            [sys.executable, "-m", "sumppump", "serve", "--sim"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_log,
            env=env,
            text=True,
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        try:
            answers: dict[int, dict[str, Any]] = {}
            for request in requests:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                if "id" not in request:
                    continue
                while request["id"] not in answers:
                    line = proc.stdout.readline()
                    assert line, "the server closed stdout early"
                    message = json.loads(line)  # every stdout line is a JSON-RPC message
                    assert message["jsonrpc"] == "2.0"
                    if "id" in message:
                        answers[message["id"]] = message
            listed = answers[2]["result"]["tools"]
            assert len(listed) == 23  # the design's 20 and the order ticket's three app-only tools
            assert sum("visibility" in t.get("_meta", {}).get("ui", {}) for t in listed) == 3
            assert answers[3]["result"]["structuredContent"]["environment"] == "SIMULATED"
            proc.stdin.close()  # the client goes away: the server must exit by itself
            proc.wait(timeout=20)
            rest = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    for line in rest.splitlines():
        assert json.loads(line)["jsonrpc"] == "2.0"


async def test_a_tool_call_after_an_actor_was_killed_still_gets_a_structured_answer(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "SUMPPUMP_SIM_FAULT_HOOK": "1",
    }
    server = StdioTransport(
        command=sys.executable, args=["-m", "sumppump", "serve", "--sim"], env=env, keep_alive=False
    )
    with anyio.fail_after(60):
        async with Client(server) as client:
            await client.call_tool("get_quote", {"symbol": "AAPL"})
            for actor in ("chain_cache", "connection", "execution"):
                await client.call_tool("sim_kill_actor", {"actor": actor})
                result = await client.call_tool(
                    "get_options_chain",
                    {"symbol": "AAPL", "strikes_each_side": 1},
                    raise_on_error=False,
                )
                data = result.structured_content or {}
                if result.is_error:  # during the restart: structured, never a traceback
                    assert data["error"]["code"] in ("SERVICE_UNAVAILABLE", "NOT_CONNECTED")
                else:
                    assert data["rows"]
            # After the restarts the service answers normally again.
            with anyio.fail_after(30):
                while True:
                    result = await client.call_tool(
                        "get_options_chain",
                        {"symbol": "AAPL", "strikes_each_side": 1},
                        raise_on_error=False,
                    )
                    if not result.is_error:
                        break
                    await anyio.sleep(0.5)
