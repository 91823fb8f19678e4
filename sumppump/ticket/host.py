"""A small MCP Apps host for tests and ``sumppump demo``: a page that renders one view in a
sandboxed iframe, relaying the view's requests to an MCP client over a 127.0.0.1 HTTP endpoint,
and a headless Chromium (the system's, never downloaded) to look at it.

``HostRelay(client)`` serves ``/<secret>/host.html`` (the host page, package data) and
``/<secret>/rpc`` (``tools/list``, ``tools/call``, ``resources/read`` as JSON, answered by the
client). It binds 127.0.0.1 on an ephemeral port; the random path segment keeps other local
programs from using it during its short life. asyncio only (it runs beside ib_async's loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

__all__ = [
    "CHROMIUM_ARGS",
    "HostRelay",
    "TicketShot",
    "chromium",
    "find_chromium",
    "screenshot_ticket",
]

log = logging.getLogger(__name__)

#: The network is closed here: without these Chromium stalls on start-up fetches.
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_CHROMIUM_PATHS: Final = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def find_chromium() -> str | None:
    """The system Chromium's path (Debian's package ``chromium``), or ``None``."""
    for path in _CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


@dataclass
class HostRelay:
    """The host page and its JSON relay to ``client`` (a connected ``fastmcp.Client``).

    ``calls`` records every ``tools/call`` relayed, as ``(name, arguments, result)`` with the
    result in wire form (``structuredContent``, ``_meta``, ``isError``).
    """

    client: Any
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _secret: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    port: int = 0

    def page_url(
        self, uri: str, tool: str, arguments: dict[str, Any], *, strip: bool = False
    ) -> str:
        """The host page that opens view ``uri`` for a call of ``tool`` with ``arguments``.
        ``strip``: hand the view results without ``structuredContent`` and ``_meta``, as
        Claude Desktop does for local servers (modelcontextprotocol/ext-apps#696)."""
        query = f"uri={quote(uri)}&tool={quote(tool)}&args={quote(json.dumps(arguments))}"
        if strip:
            query += "&strip=1"
        return f"http://127.0.0.1:{self.port}/{self._secret}/host.html?{query}"

    async def __aenter__(self) -> HostRelay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, ctype, payload = await self._route(method, target.split("?", 1)[0], body)
            writer.write(
                (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # a half-open or malformed request: nothing to answer
        finally:
            writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[str, str, bytes]:
        prefix = f"/{self._secret}"
        if method == "GET" and path == f"{prefix}/host.html":
            page = resources.files(__package__).joinpath("static/host.html").read_bytes()
            return "200 OK", "text/html; charset=utf-8", page
        if method == "POST" and path == f"{prefix}/rpc":
            request = json.loads(body or b"{}")
            try:
                result = await self._relay(request.get("method", ""), request.get("params") or {})
            except Exception as exc:
                log.exception("relay %s", request.get("method"))
                answer: dict[str, Any] = {"error": {"message": f"{type(exc).__name__}: {exc}"}}
            else:
                answer = {"result": result}
            return "200 OK", "application/json", json.dumps(answer).encode()
        return "404 Not Found", "text/plain", b"not found"

    async def _relay(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/list":
            listed = await self.client.list_tools_mcp()
            return _wire(listed)
        if method == "resources/read":
            return _wire(await self.client.read_resource_mcp(params["uri"]))
        if method == "tools/call":
            name, arguments = params["name"], params.get("arguments") or {}
            result = _wire(await self.client.call_tool_mcp(name, arguments))
            self.calls.append((name, arguments, result))
            return result
        raise ValueError(f"unsupported method {method!r}")


def _wire(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return data


@asynccontextmanager
async def chromium(executable: str | None = None) -> AsyncIterator[Any]:
    """A headless Chromium browser (playwright's async API over the system binary).

    :raises RuntimeError: no Chromium on this machine, or playwright is not installed.
    """
    path = executable or find_chromium()
    if path is None:
        raise RuntimeError("no chromium binary (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # a dev extra
        raise RuntimeError("the playwright package is not installed (a dev extra)") from exc
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            await browser.close()


@dataclass(frozen=True)
class TicketShot:
    """A rendered ticket: where its screenshot went and how long it took to render (from the
    tool result reaching the view to the ticket drawn, in the browser's clock)."""

    path: Path
    render_ms: float
    result: dict[str, Any]


async def screenshot_ticket(
    client: Any, tool: str, arguments: dict[str, Any], path: Path, *, uri: str | None = None
) -> TicketShot:
    """Open the order ticket for ``tool(arguments)`` in headless Chromium and save a PNG of it.

    :raises RuntimeError: no Chromium or no playwright (see :func:`chromium`).
    :raises TimeoutError: the ticket did not render within 15 s.
    """
    from sumppump.ticket import TICKET_URI

    async with HostRelay(client) as relay, chromium() as browser:
        page = await browser.new_page(viewport={"width": 820, "height": 1200})
        await page.goto(relay.page_url(uri or TICKET_URI, tool, arguments))
        frame = page.frame_locator("#view")
        started = time.monotonic()
        await frame.locator("body[data-rendered-at]").wait_for(timeout=15_000)
        log.debug("ticket rendered after %.2fs", time.monotonic() - started)
        posted = await page.evaluate("window.__host.resultPostedAt")
        rendered = float(await frame.locator("body").get_attribute("data-rendered-at") or 0)
        await page.wait_for_timeout(100)  # the size-changed round trip
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.locator("#frame-wrap").screenshot(path=str(path))
        result = await page.evaluate("window.__host.toolResult")
        return TicketShot(path=path, render_ms=rendered - posted, result=result)
