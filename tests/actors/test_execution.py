"""The execution actor against the simulated TWS with the real ib_async client: happy paths for
every Level-2 structure, fills and stop-loss prompts, stops, cancel, approval modes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from sumppump.messages.execution import (
    CancelByRef,
    CancelResult,
    CreatePreview,
    ExecutePreview,
    ExecutionRefused,
    Fills,
    GetFills,
    GetOrderOutcome,
    GetOrderStatus,
    OrderOutcome,
    OrderStatusReport,
    OrderSubmitted,
    PrepareStopLoss,
    PreviewCreated,
)
from sumppump.messages.risk import AnalyseStrategy, StrategyAnalysed
from sumppump.trading.previews import new_preview_id
from sumppump.trading.prices import snapshot_quotes
from sumppump.tws_sim import SimTWS
from tests.actors.test_execution_support import (
    ACCOUNT,
    EXPIRY,
    LegWant,
    Tree,
    approval,
    chain_strikes,
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


async def test_stop_loss_for_a_spread_is_a_closing_guaranteed_combo_stop(tree: Tree) -> None:
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
    # IB lists BAG for STP but not STP LMT (notes/ib-behaviour.md §a): the simulator refuses
    # STP LMT on a BAG with 387, as TWS does.
    assert stop.order.order_type == "STP" and len(stop.order.legs) == 2
    assert stop.order.limit_price is None
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


async def test_modify_resends_the_working_order_under_its_own_id_and_ref(tree: Tree) -> None:
    created = await preview(tree, [("BUY", "C", 3)], limit_factor=0.5)  # rests
    placed = await execute(tree, created)
    assert isinstance(placed, OrderSubmitted) and placed.status == "Submitted"
    assert created.order.limit_price is not None
    higher = round(created.order.limit_price + 0.05, 2)
    change = await tree.execution.call(
        CreatePreview(
            order=msgspec.structs.replace(created.order, order_ref="", limit_price=higher),
            symbol="AAPL",
            kind="modify",
            replaces_order_ref=created.preview_id,
            max_loss=higher * 100,
            max_gain=None,
            net_debit=higher,
            quote_snapshot=(),
            epoch=await tree.epoch(),
            account_kind="LIVE",
        ),
        timeout=5,
    )
    assert isinstance(change, PreviewCreated), change
    assert change.confirm_text.startswith(f"Change order {created.preview_id}")
    modified = await execute(tree, change)
    assert isinstance(modified, OrderSubmitted), modified
    assert modified.order_ref == created.preview_id and modified.order_id == placed.order_id
    sent = tree.placed(created.preview_id)
    assert len(sent) == 2  # the order and its modification, one IB order
    assert sent[1].request.lmt_price == higher  # type: ignore[attr-defined]
    assert sent[1].request.order_id == placed.order_id  # type: ignore[attr-defined]
    assert not tree.placed(change.preview_id)
    assert (
        len([o for o in tree.sim.broker.orders.values() if o.order_ref == created.preview_id]) == 1
    )


async def test_modify_of_an_order_that_is_not_ours_is_refused(tree: Tree) -> None:
    created = await preview(tree, [("BUY", "C", 0)])
    change = await tree.execution.call(
        CreatePreview(
            order=msgspec.structs.replace(created.order, order_ref=""),
            symbol="AAPL",
            kind="modify",
            replaces_order_ref=new_preview_id(),
            max_loss=100.0,
            max_gain=None,
            net_debit=1.0,
            epoch=await tree.epoch(),
            account_kind="LIVE",
        ),
        timeout=5,
    )
    assert isinstance(change, PreviewCreated)
    reply = await execute(tree, change)
    assert isinstance(reply, ExecutionRefused) and reply.reason == "not_modifiable"
    assert tree.sim.orders_received == [] or all(
        o.order_ref != change.preview_id for o in tree.sim.orders_received
    )


async def test_the_real_risk_actor_analysis_previews_and_places_a_bull_call_spread(
    sim: SimTWS, tmp_path: Path
) -> None:
    """The path the MCP layer wires: AnalyseStrategy → CreatePreview → ExecutePreview, with
    the production risk actor re-checking at execute time."""
    async with execution_tree(sim, tmp_path, real_risk=True) as tree:
        await wait_ready(tree)
        strikes, spot = await chain_strikes(tree)
        atm = min(strikes, key=lambda k: abs(k - spot))
        upper = strikes[strikes.index(atm) + 2]
        analysed = await tree.risk.call(
            AnalyseStrategy(
                symbol="AAPL", strategy="bull_call_spread", expiry=EXPIRY, strikes=(atm, upper)
            ),
            timeout=20,
        )
        assert isinstance(analysed, StrategyAnalysed), analysed
        a = analysed.analysis
        created = await tree.execution.call(
            CreatePreview(
                order=analysed.order,
                symbol="AAPL",
                strategy="bull_call_spread",
                max_loss=a.max_loss,
                max_gain=a.max_gain,
                breakevens=a.breakevens,
                net_debit=analysed.order.limit_price or a.limit_price,
                quote_snapshot=snapshot_quotes(analysed.quote_snapshot),
                epoch=analysed.epoch,
                account_kind=analysed.account_kind,
                min_tick=a.tick,
                commission=analysed.what_if_commission or 0.0,
                shares_held_used=analysed.shares_held_used,
                order_max_loss=analysed.order_max_loss,
            ),
            timeout=5,
        )
        assert isinstance(created, PreviewCreated), created
        assert created.account_kind == "SIMULATED"
        reply = await execute(tree, created)
        assert isinstance(reply, OrderSubmitted), reply
        [received] = tree.placed(created.preview_id)
        assert received.request.contract.sec_type == "BAG"  # type: ignore[attr-defined]


async def test_get_order_outcome_tells_filled_from_cancelled_and_a_used_preview_says_which(
    tree: Tree,
) -> None:
    bought = await preview(tree, [("BUY", "C", 0)])
    assert isinstance(await execute(tree, bought), OrderSubmitted)
    resting = await preview(tree, [("BUY", "C", 3)], limit_factor=0.5)
    assert isinstance(await execute(tree, resting), OrderSubmitted)

    async def outcome(ref: str) -> OrderOutcome:
        reply = await tree.execution.call(GetOrderOutcome(order_ref=ref), timeout=2)
        assert isinstance(reply, OrderOutcome)
        return reply

    async def filled() -> bool:
        return (await outcome(bought.preview_id)).outcome == "filled"

    for _ in range(200):
        if await filled():
            break
        await tree.sim.step()
    done = await outcome(bought.preview_id)
    assert done.filled == 1 and done.avg_fill_price is not None and done.fills
    assert done.order == bought.order and done.order_id
    working = await outcome(resting.preview_id)
    assert working.outcome == "working" and working.order is not None
    assert working.order.limit_price == resting.order.limit_price
    cancelled = await tree.execution.call(CancelByRef(order_ref=resting.preview_id), timeout=8)
    assert isinstance(cancelled, CancelResult)
    assert (await outcome(resting.preview_id)).outcome == "cancelled"
    again = await execute(tree, bought)
    assert isinstance(again, ExecutionRefused) and again.reason == "used"
    assert f"order {bought.preview_id} filled 1" in again.message
    assert "get_order_status" in again.hint and "an order was sent" not in again.message
    open_preview = await preview(tree, [("BUY", "C", 1)])
    assert (await outcome(open_preview.preview_id)).outcome == "not_sent"
    assert (await outcome("manual-7")).outcome == "unknown"


async def test_a_submit_line_whose_order_never_reached_tws_is_reported_after_a_restart(
    sim: SimTWS, tmp_path: Path
) -> None:
    ref = new_preview_id()
    order = {
        "order_ref": ref,
        "account": ACCOUNT,
        "symbol": "AAPL",
        "legs": [
            {
                "con_id": 1,
                "symbol": "AAPL",
                "sec_type": "STK",
                "action": "BUY",
                "ratio": 1,
                "multiplier": 1.0,
            }
        ],
        "quantity": 1,
        "limit_price": 1.0,
    }
    line = {
        "ts": "2026-01-02T15:00:00+00:00",
        "event": "submit",
        "order_ref": ref,
        "symbol": "AAPL",
        "kind": "open",
        "order": order,
        "state": "submitting",
    }
    (tmp_path / "audit.jsonl").write_text(json.dumps(line) + "\n")
    with no_decoder_errors():
        async with execution_tree(sim, tmp_path) as tree:
            await wait_ready(tree)
            reply = await tree.execution.call(GetOrderOutcome(order_ref=ref), timeout=2)
            assert isinstance(reply, OrderOutcome), reply
            assert reply.outcome == "never_reached_tws" and "nothing was placed" in reply.message
            used = await tree.execution.call(
                ExecutePreview(preview_id=ref, confirm_text="x", approval=approval()), timeout=5
            )
            assert isinstance(used, ExecutionRefused) and used.reason == "used"
            assert "never reached TWS" in used.message


async def test_a_restart_writes_nothing_for_orders_that_did_not_change(
    sim: SimTWS, tmp_path: Path
) -> None:
    with no_decoder_errors():
        async with execution_tree(sim, tmp_path) as tree:
            await wait_ready(tree)
            bought = await preview(tree, [("BUY", "C", 0)])
            assert isinstance(await execute(tree, bought), OrderSubmitted)
            resting = await preview(tree, [("BUY", "C", 3)], limit_factor=0.5)
            assert isinstance(await execute(tree, resting), OrderSubmitted)
            for _ in range(200):
                status = await tree.execution.call(
                    GetOrderStatus(order_ref=bought.preview_id), timeout=2
                )
                if isinstance(status, OrderStatusReport) and status.state == "filled":
                    break
                await tree.sim.step()
        before = len(audit(tree))
        async with execution_tree(sim, tmp_path) as again:
            await wait_ready(again)
            outcome = await again.execution.call(
                GetOrderOutcome(order_ref=bought.preview_id), timeout=2
            )
            assert isinstance(outcome, OrderOutcome) and outcome.outcome == "filled"
            assert outcome.fills and outcome.order_id
            working = await again.execution.call(
                GetOrderOutcome(order_ref=resting.preview_id), timeout=2
            )
            assert isinstance(working, OrderOutcome) and working.outcome == "working"
        after = audit(again)
    repeated = [
        r for r in after[before:] if r["order_ref"] in (bought.preview_id, resting.preview_id)
    ]
    assert repeated == []
