"""Crash safety against the simulated TWS (real ib_async): execution killed between placeOrder
and the acknowledgement, the socket dropped right after placeOrder, and the restart's
reconciliation. Each time TWS holds exactly one order for the preview and the tool reports its
real state; nothing is ever re-sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from sumppump.actors.runtime import ActorDown
from sumppump.messages.base import Reply
from sumppump.messages.execution import (
    ExecutionRefused,
    GetOrderStatus,
    OrderStatusReport,
    OutcomeUnknown,
    PreviewCreated,
)
from sumppump.tws_sim import SimTWS
from tests.actors.test_execution_support import (
    Tree,
    execute,
    execution_tree,
    preview,
    wait_ready,
)
from tests.support.ib_harness import no_decoder_errors

pytestmark = pytest.mark.anyio

CALL = [("BUY", "C", 0)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=7) as sim:
        yield sim


@pytest.fixture
async def tree(sim: SimTWS, tmp_path: Path) -> AsyncIterator[Tree]:
    with no_decoder_errors():
        async with execution_tree(sim, tmp_path, ack_window=1.0) as tree:
            await wait_ready(tree)
            yield tree


def sent(tree: Tree, ref: str) -> int:
    """placeOrder requests TWS received carrying ``ref`` (recorded on arrival)."""
    return sum(1 for r in tree.sim.requests_named("placeOrder") if ref in r.fields)


async def status_until(
    tree: Tree, ref: str, states: set[str], timeout: float = 10.0
) -> OrderStatusReport:
    with anyio.fail_after(timeout):
        while True:
            try:
                report = await tree.execution.call(GetOrderStatus(order_ref=ref), timeout=2)
            except ActorDown:
                report = None
            if isinstance(report, OrderStatusReport) and report.state in states:
                return report
            await anyio.sleep(0.05)


async def run_execute(tree: Tree, created: PreviewCreated, out: list[object]) -> None:
    try:
        out.append(await execute(tree, created))
    except ActorDown as exc:
        out.append(exc)


async def test_execution_killed_between_place_order_and_ack_reconciles_to_one_order(
    tree: Tree,
) -> None:
    created = await preview(tree, CALL)
    ref = created.preview_id
    tree.sim.delay_responses("placeOrder", 1.0)  # TWS acknowledges a second later
    outcome: list[object] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_execute, tree, created, outcome)
        with anyio.fail_after(5):
            while sent(tree, ref) == 0:
                await anyio.sleep(0.01)
        tree.supervisor.kill("execution")
    # The MCP layer turns this ActorDown into ORDER_OUTCOME_UNKNOWN for `ref`.
    assert len(outcome) == 1 and isinstance(outcome[0], ActorDown)
    tree.sim.delay_responses("placeOrder", None)

    report = await status_until(tree, ref, {"working", "filled"})
    assert report.found and report.order_id is not None
    assert sent(tree, ref) == 1
    assert len([o for o in tree.sim.broker.orders.values() if o.order_ref == ref]) == 1
    # The new incarnation read the write-ahead record: the id is used, never executable again.
    again = await execute(tree, created)
    assert isinstance(again, ExecutionRefused) and again.code == "PREVIEW_USED"
    assert sent(tree, ref) == 1


async def test_socket_dropped_right_after_place_order_is_outcome_unknown_then_found(
    tree: Tree,
) -> None:
    created = await preview(tree, CALL)
    ref = created.preview_id
    tree.sim.delay_responses("placeOrder", 0.3)
    outcome: list[object] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_execute, tree, created, outcome)
        with anyio.fail_after(5):
            while sent(tree, ref) == 0:
                await anyio.sleep(0.005)
        tree.sim.stall()  # TWS accepts the order but its acknowledgement is held back ...
        with anyio.fail_after(5):
            while not [o for o in tree.sim.broker.orders.values() if o.order_ref == ref]:
                await anyio.sleep(0.005)
        tree.sim.drop_connections()  # ... and lost with the socket
        tree.sim.resume()
        tree.sim.delay_responses("placeOrder", None)
    [reply] = outcome
    assert isinstance(reply, OutcomeUnknown), reply
    assert reply.code == "ORDER_OUTCOME_UNKNOWN" and reply.order_ref == ref

    report = await status_until(tree, ref, {"working", "filled"})
    assert report.reconciled and report.order_id is not None
    assert sent(tree, ref) == 1
    assert len([o for o in tree.sim.broker.orders.values() if o.order_ref == ref]) == 1


async def test_an_order_tws_never_received_is_reported_not_received_and_not_resent(
    tree: Tree,
) -> None:
    created = await preview(tree, CALL)
    ref = created.preview_id
    tree.sim.delay_responses("placeOrder", 1.0)
    outcome: list[object] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_execute, tree, created, outcome)
        with anyio.fail_after(5):
            while sent(tree, ref) == 0:
                await anyio.sleep(0.01)
        tree.sim.drop_connections()  # the delayed request dies with its socket
    [reply] = outcome
    assert isinstance(reply, OutcomeUnknown), reply
    report = await status_until(tree, ref, {"not_received"})
    assert report.reconciled and "never received" in report.message
    assert not [o for o in tree.sim.broker.orders.values() if o.order_ref == ref]
    assert sent(tree, ref) == 1  # the one request that died; nothing re-sent
    again = await execute(tree, created)
    assert isinstance(again, ExecutionRefused) and again.code == "PREVIEW_USED"


async def test_restart_adopts_orders_placed_by_the_previous_incarnation(tree: Tree) -> None:
    created = await preview(tree, CALL, limit_factor=0.5)  # rests
    reply: Reply = await execute(tree, created)
    assert not isinstance(reply, ExecutionRefused)
    tree.supervisor.kill("execution")
    report = await status_until(tree, created.preview_id, {"working"})
    assert report.reconciled and report.status == "Submitted"
