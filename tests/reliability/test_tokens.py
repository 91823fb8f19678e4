"""Attacks on the preview token through the real MCP layer: forged, truncated and re-prefixed
ids, replay, expiry, altered confirm_text, reads of other symbols (which void nothing), a
reconnect, a restart of execution, and a hundred concurrent submissions of one preview.

Each test ends by checking the order invariants on the simulator: no preview produced two
orders, and every order TWS received carries the id of a preview confirmed with execute_trade.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.reliability.support import (
    App,
    app_settings,
    assert_no_violations,
    assert_order_invariants,
    code_of,
    placed_orders,
    running_app,
    wait_connected,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running_app(tmp_path) as running:
        yield running
        assert_order_invariants(running.sim, running.confirmed)
        assert_no_violations(running.sim)


async def make_preview(app: App, symbol: str = "AAPL") -> dict[str, Any]:
    """A bull call spread preview on ``symbol`` (two strikes above the money)."""
    chain = await app.ok("get_options_chain", {"symbol": symbol, "strikes_each_side": 3})
    strikes = sorted({row["strike"] for row in chain["rows"]})
    return await app.ok(
        "calculate_strategy",
        {
            "symbol": symbol,
            "strategy": "bull_call_spread",
            "expiry": chain["expiry"],
            "strikes": [strikes[2], strikes[4]],
        },
    )


async def execute(app: App, preview_id: str, confirm_text: str) -> dict[str, Any]:
    return await app.call("execute_trade", {"preview_id": preview_id, "confirm_text": confirm_text})


def orders_for(app: App, ref: str) -> int:
    return sum(1 for order in placed_orders(app.sim) if order.order_ref == ref)


async def test_forged_truncated_and_reprefixed_ids_are_unknown_and_place_nothing(
    app: App,
) -> None:
    preview = await make_preview(app)
    real, text = preview["preview_id"], preview["confirm_text"]
    prefix, _, body = real.partition("-")
    forged = [
        "sp-" + secrets.token_urlsafe(18),
        secrets.token_hex(16),
        real[:-1],
        real[: len(real) // 2],
        real + "A",
        "xx-" + body,
        body,
        prefix.upper() + "-" + body,
        real.swapcase(),
        real[::-1],
        real.replace(body[0], "A" if body[0] != "A" else "B", 1),
    ]
    for fake in forged:
        answer = await execute(app, fake, text)
        assert code_of(answer) == "PREVIEW_UNKNOWN", (fake, answer)
    assert placed_orders(app.sim) == []
    placed = await execute(app, real, text)  # the real one is untouched by the attempts
    assert code_of(placed) is None, placed
    assert orders_for(app, real) == 1


async def test_a_used_preview_cannot_be_replayed(app: App) -> None:
    preview = await make_preview(app)
    first = await execute(app, preview["preview_id"], preview["confirm_text"])
    assert code_of(first) is None, first
    for _ in range(3):
        again = await execute(app, preview["preview_id"], preview["confirm_text"])
        assert code_of(again) == "PREVIEW_USED", again
    assert orders_for(app, preview["preview_id"]) == 1


async def test_an_expired_preview_is_refused(tmp_path: Path) -> None:
    async with running_app(tmp_path, app_settings(tmp_path, preview_ttl_s=0.5)) as app:
        preview = await make_preview(app)
        await anyio.sleep(1.0)
        answer = await execute(app, preview["preview_id"], preview["confirm_text"])
        assert code_of(answer) == "PREVIEW_EXPIRED", answer
        again = await execute(app, preview["preview_id"], preview["confirm_text"])
        assert code_of(again) in ("PREVIEW_EXPIRED", "PREVIEW_USED"), again
        assert placed_orders(app.sim) == []


def altered_texts(text: str) -> list[str]:
    """confirm_text with its meaning or its letters changed (whitespace reflow is allowed by
    design: clients rewrap long lines)."""
    numbers = re.findall(r"\d+(?:\.\d+)?", text)
    assert numbers, text
    changed = [
        text.upper(),
        text.lower(),
        text.swapcase(),
        text.replace(" ", ""),  # words run together: not a reflow
        text[:-1],
        text + ".",
        text.replace(numbers[0], str(int(float(numbers[0])) + 1), 1),
        text.replace(numbers[-1], numbers[-1] + "0", 1),
        text.replace(".", ",", 1) if "." in text else text + "!",
        re.sub(r"\d", "9", text),
        text.replace("Buy", "Sell").replace("buy", "sell").replace("BUY", "SELL") + " ",
    ]
    return [t for t in changed if t.split() != text.split()]


async def test_altered_confirm_text_is_refused_and_the_exact_text_still_works(app: App) -> None:
    preview = await make_preview(app)
    pid, text = preview["preview_id"], preview["confirm_text"]
    altered = altered_texts(text)
    assert len(altered) >= 8
    for wrong in altered:
        answer = await execute(app, pid, wrong)
        assert code_of(answer) == "CONFIRM_MISMATCH", (wrong, answer)
    assert placed_orders(app.sim) == []
    reflowed = "  " + text.replace(" ", "\n ", 2) + " \t"
    placed = await execute(app, pid, reflowed)
    assert code_of(placed) is None, placed
    assert orders_for(app, pid) == 1


async def test_a_preview_survives_reading_other_symbols(app: App) -> None:
    """Issue 21: asking "and where is MSFT?" before saying yes loses nothing."""
    preview = await make_preview(app, "AAPL")
    quote = await app.ok("get_quote", {"symbol": "MSFT"})
    await app.ok("get_options_chain", {"symbol": "MSFT"})
    await app.ok("get_market_stats", {"symbol": "NVDA"})
    assert quote.get("switched_from") is None
    answer = await execute(app, preview["preview_id"], preview["confirm_text"])
    assert code_of(answer) is None, answer
    assert orders_for(app, preview["preview_id"]) == 1


async def test_a_reconnect_voids_previews_made_on_the_old_connection(app: App) -> None:
    preview = await make_preview(app)
    before = (await app.ok("get_status"))["connection"]["epoch"]
    assert app.sim.drop_connections() >= 1
    answers: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        while True:  # refused while down / reconciling; then voided for the new epoch
            answer = await execute(app, preview["preview_id"], preview["confirm_text"])
            answers.append(answer)
            status = await app.call("get_status")
            if (
                code_of(status) is None
                and status["connection"]["state"] == "connected"
                and status["connection"]["epoch"] > before
                and "reconcil" not in answer["error"]["message"]
            ):
                break
            await anyio.sleep(0.1)
    assert all(code_of(a) in ("NOT_CONNECTED", "PREVIEW_EXPIRED") for a in answers), answers
    assert placed_orders(app.sim) == []
    fresh = await make_preview(app)  # a preview on the new connection goes through
    placed = await execute(app, fresh["preview_id"], fresh["confirm_text"])
    assert code_of(placed) is None, placed
    again = await execute(app, preview["preview_id"], preview["confirm_text"])
    assert code_of(again) is not None
    assert [o.order_ref for o in placed_orders(app.sim)] == [fresh["preview_id"]]


async def test_a_restart_of_execution_forgets_every_unused_preview(app: App) -> None:
    preview = await make_preview(app)
    execution = app.service.tree.refs.execution  # type: ignore[union-attr]
    generation = execution.generation
    app.service.tree.root.kill("broker/execution")  # type: ignore[union-attr]
    with anyio.fail_after(20):
        while not (execution.alive and execution.generation > generation):
            await anyio.sleep(0.05)
    codes: list[str | None] = []
    with anyio.fail_after(20):
        while True:
            answer = await execute(app, preview["preview_id"], preview["confirm_text"])
            codes.append(code_of(answer))
            if codes[-1] != "NOT_CONNECTED":  # reconciling after the restart
                break
            await anyio.sleep(0.1)
    assert codes[-1] == "PREVIEW_UNKNOWN", codes
    assert placed_orders(app.sim) == []


async def test_a_hundred_concurrent_submissions_of_one_preview_place_one_order(app: App) -> None:
    preview = await make_preview(app)
    pid, text = preview["preview_id"], preview["confirm_text"]
    answers: list[dict[str, Any]] = []

    async def submit() -> None:
        answers.append(await execute(app, pid, text))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(submit)
    assert len(answers) == 100
    outcomes = Counter(code_of(a) or "placed" for a in answers)
    assert outcomes["placed"] == 1, outcomes
    assert set(outcomes) == {"placed", "PREVIEW_USED"}, outcomes
    assert orders_for(app, pid) == 1
    assert len(placed_orders(app.sim)) == 1
    await wait_connected(app)
