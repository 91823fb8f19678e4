"""Shared helpers of the reliability suite: a running app behind the real MCP layer, a checked
tool call, and the order invariants every reliability test asserts.

Everything goes through ``fastmcp.Client(create_app(simulated=True, ...))`` in memory; the
service behind it is ``app.state`` (``service.sim`` is the simulated TWS, ``service.tree`` the
supervision tree).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastmcp import Client
from mcp.types import CallToolResult

from sumppump.mcp_server import Service, create_app
from sumppump.messages.errors import ErrorCode
from sumppump.settings import Settings

ACCOUNT = "U1234567"
ERROR_CODES = frozenset(code.value for code in ErrorCode)
#: Text that would mean a traceback or an internal repr leaked into an answer.
LEAKS = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
#: Every tool answers within 30 s (DESIGN.md §3); the client's own wait is a little longer.
TOOL_DEADLINE_S = 31.0


def soak() -> bool:
    """``SUMPPUMP_SOAK=1`` selects the big sizes."""
    return os.environ.get("SUMPPUMP_SOAK", "").strip() not in ("", "0")


def size(ci: int, soak_size: int, env: str | None = None) -> int:
    """A run size: ``env`` (if set) wins, else the soak size under SUMPPUMP_SOAK, else ``ci``."""
    if env and os.environ.get(env, "").strip():
        return int(os.environ[env])
    return soak_size if soak() else ci


def app_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test app: audit log in ``tmp_path`` (never the user's data directory)."""
    return Settings(audit_path=tmp_path / "audit.jsonl", **overrides)


@dataclass
class App:
    """A running app: the MCP client, the service behind it, and what the test did to it."""

    client: Client[Any]
    service: Service
    #: Preview ids the test confirmed with execute_trade (the only refs allowed to reach TWS).
    confirmed: set[str] = field(default_factory=set)
    calls: int = 0

    @property
    def sim(self) -> Any:
        return self.service.sim

    async def call(
        self, name: str, args: dict[str, Any] | None = None, *, deadline: float = TOOL_DEADLINE_S
    ) -> dict[str, Any]:
        """Call ``name`` and return its structured answer after :func:`check_answer`.

        :raises AssertionError: no answer within ``deadline`` or an answer of the wrong shape.
        """
        args = args or {}
        if name == "execute_trade" and isinstance(args.get("preview_id"), str):
            # Recorded before the call: a call that ends in ORDER_OUTCOME_UNKNOWN may have placed.
            self.confirmed.add(args["preview_id"])
        self.calls += 1
        started = time.monotonic()
        with anyio.move_on_after(deadline) as scope:
            result = await self.client.call_tool(name, args, raise_on_error=False)
        assert not scope.cancelled_caught, f"{name}({args!r}) gave no answer within {deadline}s"
        answer = check_answer(result, name)
        answer.setdefault("_elapsed", time.monotonic() - started)
        return answer

    async def ok(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.call(name, args)
        assert "error" not in answer, f"{name}({args!r}) failed: {answer['error']}"
        return answer


def check_answer(result: CallToolResult, name: str = "?") -> dict[str, Any]:
    """Assert that ``result`` is a structured result or a structured ``{code, message, hint}``
    error with a known code, and that no traceback leaked; return its structured content."""
    texts = [block.text for block in result.content if getattr(block, "type", "") == "text"]
    for text in texts:
        assert not LEAKS.search(text), f"{name}: traceback text in answer: {text[:300]!r}"
    answer = result.structured_content
    assert isinstance(answer, dict), f"{name}: unstructured answer {result.content!r}"
    if result.is_error:
        error = answer.get("error")
        assert isinstance(error, dict), f"{name}: error without structure: {answer!r}"
        assert set(error) == {"code", "message", "hint"}, f"{name}: {error!r}"
        assert error["code"] in ERROR_CODES, f"{name}: unknown code {error['code']!r}"
        assert isinstance(error["message"], str) and error["message"], error
        assert isinstance(error["hint"], str) and error["hint"], error
        assert not LEAKS.search(error["message"] + error["hint"]), error
    else:
        assert "error" not in answer, f"{name}: success flag with an error: {answer!r}"
        assert answer.get("environment") == "SIMULATED", f"{name}: {answer.get('environment')!r}"
    return answer


def code_of(answer: dict[str, Any]) -> str | None:
    error = answer.get("error")
    return error["code"] if isinstance(error, dict) else None


@asynccontextmanager
async def running_app(
    tmp_path: Path,
    settings: Settings | None = None,
    *,
    seed: int = 7,
    follow_wall_clock: bool = True,
) -> AsyncIterator[App]:
    """A simulated app behind an in-memory MCP client, connected to its TWS.

    ``follow_wall_clock``: the embedded simulator's clock is frozen (it only moves when a test
    advances it) while SumpPump's rate limiter measures IB's pacing windows in wall time; a
    frozen clock would count an identical historical request 20 wall seconds later as a
    violation. The clock is advanced with the wall clock, as TWS's is.
    """
    app = create_app(
        settings or app_settings(tmp_path), simulated=True, sim_seed=seed, cache_dir=tmp_path
    )
    async with Client(app) as client, anyio.create_task_group() as tg:
        running = App(client=client, service=app.state)  # type: ignore[attr-defined]
        if follow_wall_clock:
            tg.start_soon(_follow_wall_clock, running)
        await wait_connected(running)
        yield running
        tg.cancel_scope.cancel()


async def _follow_wall_clock(app: App, period: float = 0.25) -> None:
    last = anyio.current_time()
    while True:
        await anyio.sleep(period)
        now = anyio.current_time()
        await app.sim.advance(now - last)
        last = now


async def wait_connected(app: App, timeout: float = 20.0) -> dict[str, Any]:
    """Poll get_status until the link is connected; return the status."""
    with anyio.fail_after(timeout):
        while True:
            status = await app.call("get_status")
            if code_of(status) is None and status["connection"]["state"] == "connected":
                return status
            await anyio.sleep(0.05)


# ---------------------------------------------------------------------- order invariants


def placed_orders(sim: Any) -> list[Any]:
    """The non-what-if orders TWS received, in arrival order."""
    return [order for order in sim.orders_received if not order.what_if]


def assert_order_invariants(sim: Any, confirmed: Iterable[str]) -> None:
    """No preview produced two orders, and every order TWS received carries the id of a preview
    that was confirmed with execute_trade.

    A confirmed ``modify_order`` preview re-sends the working order under its own IB id and
    ref (how IB modifies): a ref may repeat with the *same* order id, never with two.
    """
    allowed = set(confirmed)
    ids_by_ref: dict[str, set[int]] = {}
    for order in placed_orders(sim):
        ids_by_ref.setdefault(order.order_ref, set()).add(order.request.order_id)
    duplicated = {ref: ids for ref, ids in ids_by_ref.items() if len(ids) > 1}
    assert not duplicated, f"a preview produced more than one order: {duplicated}"
    stray = [ref for ref in ids_by_ref if ref not in allowed]
    assert not stray, f"orders TWS received that nobody confirmed: {stray}"


def assert_no_violations(sim: Any) -> None:
    violations = sim.stats.violations
    assert sim.stats.total_violations == 0, (violations, sim.stats.violation_log[-5:])


def sim_book(sim: Any, account: str = ACCOUNT) -> tuple[dict[int, float], set[str]]:
    """What the simulator holds: {con_id: quantity} of non-zero positions, and the order refs
    of the working (active) orders."""
    broker = sim.broker
    positions = {
        con_id: round(pos.quantity, 6)
        for con_id, pos in broker.accounts[account].positions.items()
        if abs(pos.quantity) > 1e-9
    }
    working = {order.order_ref for order in broker.orders.values() if order.is_active}
    return positions, working


async def reported_book(app: App) -> tuple[dict[int, float], set[str]] | dict[str, Any]:
    """What get_positions / get_open_orders report, or the error either answered."""
    positions = await app.call("get_positions")
    orders = await app.call("get_open_orders")
    if code_of(positions) or code_of(orders):
        return positions.get("error") or orders["error"]
    held = {
        p["con_id"]: round(p["quantity"], 6)
        for p in positions["positions"]
        if p["account"] == ACCOUNT and abs(p["quantity"]) > 1e-9
    }
    working = {
        o["order_ref"]
        for o in orders["orders"]
        if o["status"] in ("PendingSubmit", "PreSubmitted", "Submitted")
    }
    return held, working


#: D2 (fixed; test_concurrent_open_order_queries_all_answer): concurrent reqAllOpenOrders shared
#: one ib_async future and the loser answered this after READ_TIMEOUT. ``d2_hits`` lets a caller
#: retry and count it instead of failing, should it come back while being fixed again.
D2_TEXT = "TWS did not answer in time"


async def assert_book_matches(
    app: App, timeout: float = 10.0, d2_hits: list[str] | None = None
) -> None:
    """After recovery, positions and open orders reported through MCP equal the simulator's
    book (polled: fills and status changes reach ib_async as events)."""
    last: Any = None
    deadline = anyio.current_time() + timeout
    while anyio.current_time() < deadline:
        reported = await reported_book(app)
        if isinstance(reported, dict) and D2_TEXT in reported.get("message", ""):
            if d2_hits is None:
                raise AssertionError(f"D2: {reported}")
            d2_hits.append(reported["message"])
            deadline = max(deadline, anyio.current_time() + timeout)
            continue
        expected = sim_book(app.sim)
        if reported == expected:
            return
        last = (reported, expected)
        await anyio.sleep(0.1)
    raise AssertionError(f"reported book != simulator's book after {timeout}s: {last}")
