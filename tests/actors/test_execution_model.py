"""A hypothesis model of the order path against the simulated TWS (real ib_async): random
interleavings of previews, executes (also two at once, and with an altered text), kills of the
execution actor in the middle of an execute, and reconnects. Whatever happens, TWS never holds
two orders for one preview, and never an order without a preview that was confirmed with its
exact text."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sumppump.actors.runtime import ActorDown, CallTimeout
from sumppump.audit import read_audit_tail
from sumppump.messages.execution import CreatePreview, PreviewCreated
from sumppump.tws_sim import SimTWS
from tests.actors.test_execution_support import (
    Tree,
    build_order,
    execute,
    execution_tree,
    wait_ready,
)

pytestmark = pytest.mark.anyio

Op = tuple[str, int]
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["preview", "preview", "execute", "execute", "twice", "wrong", "kill", "reconnect"]
        ),
        st.integers(min_value=0, max_value=5),
    ),
    min_size=3,
    max_size=9,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Model:
    def __init__(self, tree: Tree, order: CreatePreview) -> None:
        self.tree = tree
        self.template = order
        self.previews: list[PreviewCreated] = []
        self.confirmed: set[str] = set()  # ids sent with their exact confirm_text

    async def preview(self) -> None:
        msg = msgspec.structs.replace(self.template, epoch=await self.tree.epoch())
        created = await self.tree.execution.call(msg, timeout=5)
        assert isinstance(created, PreviewCreated)
        self.previews.append(created)

    def pick(self, n: int) -> PreviewCreated | None:
        return self.previews[n % len(self.previews)] if self.previews else None

    async def execute(self, created: PreviewCreated, *, exact: bool = True) -> None:
        if exact:
            self.confirmed.add(created.preview_id)
        text = created.confirm_text if exact else created.confirm_text + " and more"
        # ActorDown / CallTimeout = outcome unknown: the invariants below must hold anyway.
        with contextlib.suppress(ActorDown, CallTimeout):
            await execute(self.tree, created, text)

    async def execute_then(self, created: PreviewCreated, action: str, n: int) -> None:
        """Execute, and kill execution / drop the socket while it is in flight."""
        seen = len(self.tree.risk_seen)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.execute, created)
            with anyio.move_on_after(3):
                while len(self.tree.risk_seen) == seen:
                    await anyio.sleep(0.001)
            await anyio.sleep((n % 3) * 0.01)
            if action == "kill":
                self.tree.supervisor.kill("execution")
            else:
                self.tree.sim.drop_connections()
        await self.settle()

    async def settle(self) -> None:
        await self.tree.wait_connected()
        await wait_ready(self.tree)


async def run_model(ops: list[Op]) -> None:
    workdir = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp))
    async with SimTWS(seed=7) as sim, execution_tree(sim, workdir, ack_window=0.5) as tree:
        await wait_ready(tree)
        order, quotes, limit = await build_order(tree, [("BUY", "C", 0)])
        model = Model(
            tree,
            CreatePreview(
                order=order,
                symbol="AAPL",
                strategy="long_call",
                max_loss=limit * 100,
                max_gain=None,
                net_debit=limit,
                quote_snapshot=quotes,
                epoch=0,
                account_kind="LIVE",
            ),
        )
        for op, n in ops:
            created = model.pick(n)
            match op:
                case "preview":
                    await model.preview()
                case "execute" if created is not None:
                    await model.execute(created)
                case "twice" if created is not None:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(model.execute, created)
                        tg.start_soon(model.execute, created)
                case "wrong" if created is not None:
                    await model.execute(created, exact=False)
                case "kill" | "reconnect" if created is not None:
                    await model.execute_then(created, op, n)
                case "kill":
                    tree.supervisor.kill("execution")
                    await model.settle()
                case "reconnect":
                    tree.sim.drop_connections()
                    await model.settle()
                case _:
                    pass
        await model.settle()

        refs = [
            next((f for f in r.fields if f.startswith("sp-")), "")
            for r in sim.requests_named("placeOrder")
        ]
        what_if = {o.order_ref for o in sim.orders_received if o.what_if}
        refs = [ref for ref in refs if ref not in what_if]
        assert len(refs) == len(set(refs)), f"a preview was sent twice: {refs}"
        issued = {p.preview_id for p in model.previews}
        for ref in refs:
            assert ref in issued, f"an order without a preview: {ref}"
            assert ref in model.confirmed, f"an order nobody confirmed: {ref}"
        broker_refs = [o.order_ref for o in sim.broker.orders.values()]
        assert len(broker_refs) == len(set(broker_refs))
        # Execution's own layer (the order desk would also refuse a known ref): one write-ahead
        # submit per preview, only for confirmed ones.
        records = await read_audit_tail(tree.audit_path)
        submits = [r["order_ref"] for r in records if r["event"] == "submit"]
        assert len(submits) == len(set(submits)), f"submitted twice: {submits}"
        assert set(submits) <= model.confirmed


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
async def test_never_two_orders_for_one_preview_nor_one_nobody_confirmed(ops: list[Op]) -> None:
    with anyio.fail_after(50):
        await run_model(ops)
