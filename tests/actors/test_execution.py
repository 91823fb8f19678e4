"""The execution actor against the simulated TWS with the real ib_async client: happy paths for
every Level-2 structure, fills and stop-loss prompts, stops, cancel, approval modes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sumppump.messages.execution import (
    CancelByRef,
    CancelResult,
    ExecutionRefused,
    Fills,
    GetFills,
    GetOrderStatus,
    OrderStatusReport,
    OrderSubmitted,
    PrepareStopLoss,
    PreviewCreated,
)
from sumppump.tws_sim import SimTWS
from tests.actors.test_execution_support import (
    ACCOUNT,
    LegWant,
    Tree,
    execute,
    execution_tree,
    preview,
    wait_ready,
    wait_until,
)
from tests.support.ib_harness import no_decoder_errors

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async needs asyncio


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=7) as sim:
        yield sim


@pytest.fixture
async def tree(sim: SimTWS, tmp_path: Path) -> AsyncIterator[Tree]:
    with no_decoder_errors():
        async with execution_tree(sim, tmp_path) as tree:
            await wait_ready(tree)
            yield tree


def audit(tree: Tree) -> list[dict[str, object]]:
    return [json.loads(line) for line in tree.audit_path.read_text().splitlines()]


async def test_long_call_is_placed_exactly_as_previewed_and_reports_its_fill(tree: Tree) -> None:
    created = await preview(tree, [("BUY", "C", 0)], quantity=2)
    assert created.order.order_ref == created.preview_id
    reply = await execute(tree, created)
    assert isinstance(reply, OrderSubmitted), reply
    assert reply.order_ref == created.preview_id and reply.order_id > 0
    assert reply.account_kind == "LIVE" and not reply.waiting_for_tws_transmit
    [received] = tree.placed(created.preview_id)
    wire = received.request  # type: ignore[attr-defined]
    leg = created.order.legs[0]
    assert (wire.contract.con_id, wire.contract.sec_type) == (leg.con_id, "OPT")
    assert (wire.action, wire.total_quantity, wire.order_type, wire.tif) == ("BUY", 2, "LMT", "DAY")
    assert wire.lmt_price == created.order.limit_price and wire.account == ACCOUNT
    assert wire.order_id == reply.order_id

    async def filled() -> bool:
        status = await tree.execution.call(GetOrderStatus(order_ref=created.preview_id), timeout=2)
        return isinstance(status, OrderStatusReport) and status.state == "filled"

    done = False
    for _ in range(200):
        if done := await filled():
            break
        await tree.sim.step()
    assert done
    events = [r["event"] for r in audit(tree) if r["order_ref"] == created.preview_id]
    assert events[:2] == ["preview", "submit"] and "fill" in events and "status" in events


@pytest.mark.parametrize(
    ("strategy", "wants"),
    [
        ("long_call", [("BUY", "C", 0)]),
        ("long_put", [("BUY", "P", 0)]),
        ("bull_call_spread", [("BUY", "C", 0), ("SELL", "C", 2)]),
        ("bear_put_spread", [("BUY", "P", 0), ("SELL", "P", -2)]),
        ("covered_call", [("SELL", "C", 2)]),  # on the 200 shares the account holds
        ("protective_put", [("BUY", "P", -1)]),
        ("collar", [("BUY", "P", -2), ("SELL", "C", 2)]),
        ("long_straddle", [("BUY", "C", 0), ("BUY", "P", 0)]),
        ("long_strangle", [("BUY", "C", 1), ("BUY", "P", -1)]),
    ],
)
async def test_every_level2_structure_is_placed_once_single_leg_or_guaranteed_bag(
    tree: Tree, strategy: str, wants: list[LegWant]
) -> None:
    created = await preview(tree, wants, strategy=strategy)
    assert strategy.replace("_", " ") in created.confirm_text
    reply = await execute(tree, created)
    assert isinstance(reply, OrderSubmitted), reply
    [received] = tree.placed(created.preview_id)
    wire = received.request  # type: ignore[attr-defined]
    assert wire.order_ref == created.preview_id and wire.order_type == "LMT"
    assert wire.lmt_price == created.order.limit_price and wire.tif == "DAY"
    if len(wants) == 1:
        assert wire.contract.sec_type == "OPT" and wire.action == wants[0][0]
    else:
        assert wire.contract.sec_type == "BAG" and wire.action == "BUY"
        assert wire.smart_combo_params == ()  # guaranteed, never NonGuaranteed
        assert [(leg.con_id, leg.action) for leg in wire.contract.combo_legs] == [
            (leg.con_id, leg.action) for leg in created.order.legs
        ]


async def test_partial_fill_then_fill_gives_two_stop_loss_prompts(tree: Tree) -> None:
    tree.sim.partial_fill_next_order([1])
    created = await preview(tree, [("BUY", "C", 0)], quantity=2)
    reply = await execute(tree, created)
    assert isinstance(reply, OrderSubmitted), reply
    prompts = [reply.stop_loss_prompt] if reply.stop_loss_prompt else []

    async def collect() -> None:
        fills = await tree.execution.call(GetFills(), timeout=2)
        assert isinstance(fills, Fills)
        prompts.extend(fills.stop_loss_prompts)

    for _ in range(200):
        await collect()
        if len(prompts) >= 2:
            break
        await tree.sim.step()
    assert [p.filled for p in prompts] == [1, 2]
    for prompt in prompts:
        assert prompt.order_ref == created.preview_id
        # half the premium, on an increment every option market rule accepts
        assert abs(prompt.suggested_stop - prompt.avg_fill_price * 0.5) <= 0.05 + 1e-9
        assert round(prompt.suggested_stop / 0.05, 6).is_integer()
        assert prompt.call.tool == "set_stop_loss"
        assert prompt.call.arguments["position"] == str(created.order.legs[0].con_id)
        assert "set_stop_loss(" in prompt.text
    again = await tree.execution.call(GetFills(), timeout=2)
    assert isinstance(again, Fills) and again.stop_loss_prompts == ()  # shown once
    assert {f.order_ref for f in again.fills} == {created.preview_id}


async def test_stop_loss_for_the_filled_call_is_a_gtc_stop_placed_through_execute(
    tree: Tree,
) -> None:
    created = await preview(tree, [("BUY", "C", 0)])
    reply = await execute(tree, created)
    assert isinstance(reply, OrderSubmitted)
    con_id = created.order.legs[0].con_id
    await wait_until(lambda: bool(tree.sim.broker.accounts[ACCOUNT].positions.get(con_id)))
    stop = await tree.execution.call(
        PrepareStopLoss(symbol="AAPL", position=str(con_id)), timeout=10
    )
    assert isinstance(stop, PreviewCreated), stop
    assert stop.kind == "stop" and stop.order.order_type == "STP" and stop.order.tif == "GTC"
    assert stop.order.legs[0].action == "SELL" and stop.order.quantity == 1
    assert stop.confirm_text.startswith("Protective stop on LIVE account")
    placed = await execute(tree, stop)
    assert isinstance(placed, OrderSubmitted), placed
    assert placed.stop_loss_prompt is None  # a stop is not prompted for a stop
    [received] = tree.placed(stop.preview_id)
    assert received.request.order_type == "STP"  # type: ignore[attr-defined]
    assert received.request.aux_price == stop.order.stop_price  # type: ignore[attr-defined]


async def test_stop_loss_for_held_stock_sells_all_shares_8_percent_below_cost(tree: Tree) -> None:
    stop = await tree.execution.call(PrepareStopLoss(symbol="AAPL", position="stock"), timeout=10)
    assert isinstance(stop, PreviewCreated), stop
    assert stop.order.legs[0].sec_type == "STK" and stop.order.quantity == 200
    placed = await execute(tree, stop)
    assert isinstance(placed, OrderSubmitted), placed
    assert placed.status in ("PreSubmitted", "Submitted")


async def test_stop_loss_for_a_spread_is_a_closing_guaranteed_combo_stop_limit(tree: Tree) -> None:
    created = await preview(tree, [("BUY", "C", 0), ("SELL", "C", 2)], strategy="bull_call_spread")
    reply = await execute(tree, created)
    assert isinstance(reply, OrderSubmitted)

    async def spread_filled() -> bool:
        status = await tree.execution.call(GetOrderStatus(order_ref=created.preview_id), timeout=2)
        return isinstance(status, OrderStatusReport) and status.filled >= 1

    for _ in range(200):
        if await spread_filled():
            break
        await tree.sim.step()
    stop = await tree.execution.call(
        PrepareStopLoss(symbol="AAPL", position=created.preview_id, stop_percent=40), timeout=10
    )
    assert isinstance(stop, PreviewCreated), stop
    assert stop.order.order_type == "STP LMT" and len(stop.order.legs) == 2
    assert [leg.action for leg in stop.order.legs] == ["SELL", "BUY"]
    assert stop.order.stop_price is not None and stop.order.stop_price < 0
    assert any("simulated" in note for note in stop.notes)
    placed = await execute(tree, stop)
    assert isinstance(placed, OrderSubmitted), placed
    [received] = tree.placed(stop.preview_id)
    assert received.request.contract.sec_type == "BAG"  # type: ignore[attr-defined]


async def test_cancel_by_order_ref(tree: Tree) -> None:
    created = await preview(tree, [("BUY", "C", 3)], limit_factor=0.5)  # rests unfilled
    reply = await execute(tree, created)
    assert isinstance(reply, OrderSubmitted) and reply.status == "Submitted"
    cancelled = await tree.execution.call(CancelByRef(order_ref=created.preview_id), timeout=8)
    assert isinstance(cancelled, CancelResult) and cancelled.status == "Cancelled"
    again = await tree.execution.call(CancelByRef(order_ref=created.preview_id), timeout=8)
    assert isinstance(again, ExecutionRefused) and again.reason == "done"
    manual = await tree.execution.call(CancelByRef(order_ref="manual-order"), timeout=8)
    assert isinstance(manual, ExecutionRefused) and manual.code == "INVALID_ARGUMENT"
    assert [r["event"] for r in audit(tree) if r["order_ref"] == created.preview_id][-1] in (
        "cancel",
        "status",
    )


async def test_tws_mode_stages_the_order_untransmitted(sim: SimTWS, tmp_path: Path) -> None:
    async with execution_tree(sim, tmp_path, approval="tws") as tree:
        await wait_ready(tree)
        created = await preview(tree, [("BUY", "C", 0)])
        assert created.order.transmit is False
        assert created.confirm_text.endswith("It waits for Transmit in TWS.")
        reply = await execute(tree, created, mode="tws")
        assert isinstance(reply, OrderSubmitted), reply
        assert reply.waiting_for_tws_transmit and "Transmit" in reply.message
        [received] = tree.placed(created.preview_id)
        assert received.request.transmit is False  # type: ignore[attr-defined]
