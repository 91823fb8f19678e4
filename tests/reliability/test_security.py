"""Security of ``sumppump serve --sim --transport http``: it listens on 127.0.0.1 only (read
from /proc/net/tcp{,6}), refuses MCP requests without the bearer token or with a wrong one,
serves them with the right one, never writes the token to the audit log (even when a client
sends it as tool arguments), and wraps news as untrusted text.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx  # fastmcp 4 ships httpx as httpx2
import pytest
from fastmcp import Client

from tests.reliability.support import check_answer, code_of

REPO = Path(__file__).resolve().parents[2]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "reliability-test", "version": "0"},
    },
}
SERVE = (sys.executable, "-m", "sumppump", "serve", "--sim", "--transport", "http")
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Server:
    url: str
    port: int
    token: str
    audit: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listeners(port: int) -> list[str]:
    """Local addresses listening on ``port`` (TCP state 0A), from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":
                found.append(_address(address))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # per-word little endian
    return socket.inet_ntop(socket.AF_INET6, words)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("http")
    token = "tok-" + secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "SUMPPUMP_HTTP_TOKEN": token,
        "SUMPPUMP_AUDIT_PATH": str(tmp / "audit.jsonl"),
    }
    stderr = (tmp / "stderr.log").open("wb")
    process = subprocess.Popen(
        [*SERVE, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        deadline = time.monotonic() + 30
        while not listeners(port):
            assert process.poll() is None, (tmp / "stderr.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the HTTP server did not start within 30 s"
            time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}/mcp", port, token, tmp / "audit.jsonl", process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        stderr.close()


def test_http_transport_listens_on_loopback_only(server: Server) -> None:
    addresses = listeners(server.port)
    assert addresses, "nothing listens on the port"
    assert set(addresses) == {"127.0.0.1"}, addresses


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz", "bearer {token}x", "{token}"],
)
def test_requests_without_the_right_bearer_token_are_refused(
    server: Server, authorization: str | None
) -> None:
    headers = dict(HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=server.token)
    response = httpx.post(server.url, json=INITIALIZE, headers=headers, timeout=10)
    assert response.status_code == 401, (response.status_code, response.text[:200])
    assert server.token not in response.text


def test_the_right_bearer_token_is_served(server: Server) -> None:
    headers = {**HEADERS, "Authorization": f"Bearer {server.token}"}
    response = httpx.post(server.url, json=INITIALIZE, headers=headers, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert "SumpPump" in response.text


async def _session(server: Server) -> dict[str, Any]:
    """A conversation over HTTP that sends the token as tool arguments too."""
    async with Client(server.url, auth=server.token) as client:

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            return check_answer(await client.call_tool(name, args, raise_on_error=False), name)

        news = await call("get_news", {"symbol": "AAPL", "limit": 3})
        chain = await call("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 2})
        strikes = sorted({row["strike"] for row in chain["rows"]})
        preview = await call(
            "calculate_strategy",
            {
                "symbol": "AAPL",
                "strategy": "long_call",
                "expiry": chain["expiry"],
                "strikes": [strikes[1]],
            },
        )
        smuggled = await call(
            "execute_trade", {"preview_id": server.token, "confirm_text": server.token}
        )
        mismatch = await call(
            "execute_trade",
            {"preview_id": preview["preview_id"], "confirm_text": f"Bearer {server.token}"},
        )
        placed = await call(
            "execute_trade",
            {"preview_id": preview["preview_id"], "confirm_text": preview["confirm_text"]},
        )
        cancel = await call("cancel_order", {"order_ref": server.token})
        return {
            "news": news,
            "codes": [code_of(smuggled), code_of(mismatch), code_of(placed), code_of(cancel)],
        }


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_audit_log_never_holds_the_token_and_news_is_untrusted(server: Server) -> None:
    with anyio.fail_after(45):
        seen = await _session(server)
    assert seen["codes"][:3] == ["PREVIEW_UNKNOWN", "CONFIRM_MISMATCH", None], seen["codes"]
    news = seen["news"]
    assert news["untrusted"] is True and "untrusted" in news["notice"].lower()
    assert news["headlines"] and all(set(h) >= {"untrusted_text"} for h in news["headlines"])
    assert all("headline" not in h for h in news["headlines"])  # never bare, always wrapped
    # (structured results carry no text summary now; the text's UNTRUSTED label is checked in
    # tests/test_mcp_server.py and per client profile in tests/tools/test_profiles.py)
    text = server.audit.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    events = {line.get("event") for line in lines}
    assert {"preview", "submit", "refusal"} <= events, events
    assert server.token not in text
    assert server.token[4:] not in text  # not even without its prefix
    assert oct(server.audit.stat().st_mode & 0o777) == "0o600"
