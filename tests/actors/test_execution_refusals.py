"""Every way execute_trade refuses, against the simulated TWS (real ib_async): nothing is sent
unless the preview is genuine, confirmed with its exact text, fresh, on the same connection,
within the price and risk limits, through the configured approval, and the breaker is closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import msgspec
import pytest

from sumppump.messages.chain_cache import (
    Chain,
    GetChain,
    GetMarketStats,
    GetQuote,
    MarketStats,
    QuoteReply,
)
from sumppump.messages.execution import (
    BreakerState,
    CreatePreview,
    ExecutePreview,
    ExecutionRefused,
    GetBreaker,
    OrderSubmitted,
    PreviewCreated,
    ResetBreaker,
    Voided,
    VoidSymbol,
)
from sumppump.trading.previews import new_preview_id
from sumppump.trading.prices import option_price_tick, round_to_tick, structure_mid
from sumppump.tws_sim import SimTWS
from tests.actors.test_execution_support import (
    Tree,
    approval,
    build_order,
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
        async with execution_tree(sim, tmp_path) as tree:
            await wait_ready(tree)
            yield tree


def refused(reply: object, code: str, reason: str | None = None) -> ExecutionRefused:
    assert isinstance(reply, ExecutionRefused), reply
    assert reply.code == code, reply
    if reason is not None:
        assert reply.reason == reason, reply
    return reply


def placed_orders(tree: Tree) -> int:
    return len([o for o in tree.sim.orders_received if not o.what_if])


async def test_a_random_id_is_unknown_and_nothing_is_sent(tree: Tree) -> None:
    reply = await tree.execution.call(
        ExecutePreview(preview_id=new_preview_id(), confirm_text="yes", approval=approval()),
        timeout=10,
    )
    refused(reply, "PREVIEW_UNKNOWN", "unknown")
    assert placed_orders(tree) == 0


async def test_an_altered_confirm_text_is_refused_and_the_exact_text_still_works(
    tree: Tree,
) -> None:
    created = await preview(tree, CALL)
    altered = created.confirm_text.replace("You can lose at most", "You can lose at least")
    reply = refused(await execute(tree, created, altered), "CONFIRM_MISMATCH", "mismatch")
    assert created.confirm_text in reply.hint
    assert placed_orders(tree) == 0
    assert isinstance(await execute(tree, created), OrderSubmitted)


async def test_a_replay_is_refused_as_used_and_the_order_exists_once(tree: Tree) -> None:
    created = await preview(tree, CALL)
    assert isinstance(await execute(tree, created), OrderSubmitted)
    refused(await execute(tree, created), "PREVIEW_USED", "used")
    assert len(tree.placed(created.preview_id)) == 1


async def test_an_expired_preview_is_refused(sim: SimTWS, tmp_path: Path) -> None:
    async with execution_tree(sim, tmp_path, preview_ttl_s=0.3) as tree:
        await wait_ready(tree)
        created = await preview(tree, CALL)
        assert 0 < created.expires_in_s <= 0.3
        await anyio.sleep(0.35)
        refused(await execute(tree, created), "PREVIEW_EXPIRED", "expired")
        refused(await execute(tree, created), "PREVIEW_EXPIRED", "expired")
        assert placed_orders(tree) == 0


async def test_a_preview_survives_reading_other_symbols(tree: Tree) -> None:
    """Issue 21: a quote, a chain and market stats of another symbol void nothing."""
    created = await preview(tree, CALL)
    quote = await tree.chain.call(GetQuote(symbol="MSFT"), timeout=10)
    chain = await tree.chain.call(GetChain(symbol="NVDA"), timeout=25)
    stats = await tree.chain.call(GetMarketStats(symbol="MSFT"), timeout=20)
    assert isinstance(quote, QuoteReply) and quote.switched_from is None
    assert isinstance(chain, Chain) and chain.switched_from is None
    assert isinstance(stats, MarketStats) and stats.switched_from is None
    assert isinstance(await execute(tree, created), OrderSubmitted)
    assert len(tree.placed(created.preview_id)) == 1


async def test_void_symbol_command_voids_only_that_symbols_previews(tree: Tree) -> None:
    created = await preview(tree, CALL)
    other = await tree.execution.call(VoidSymbol(symbol="MSFT"), timeout=2)
    assert isinstance(other, Voided) and other.preview_ids == ()
    voided = await tree.execution.call(VoidSymbol(symbol="aapl"), timeout=2)
    assert isinstance(voided, Voided) and voided.preview_ids == (created.preview_id,)
    refused(await execute(tree, created), "PREVIEW_EXPIRED", "voided")


async def test_price_moved_refuses_with_a_fresh_preview_that_can_be_confirmed(
    tree: Tree,
) -> None:
    # The preview was made when the call was quoted 20 % lower than it is now.
    order, quotes, _ = await build_order(tree, CALL)
    leg_id = order.legs[0].con_id
    earlier = tuple(
        msgspec.structs.replace(q, bid=q.bid * 0.8, ask=q.ask * 0.8)  # type: ignore[operator]
        if q.con_id == leg_id
        else q
        for q in quotes
    )
    old_mid = structure_mid(order, earlier)
    assert old_mid is not None
    old_limit = round_to_tick(old_mid, option_price_tick(old_mid))
    created = await tree.execution.call(
        CreatePreview(
            order=msgspec.structs.replace(order, limit_price=old_limit),
            symbol="AAPL",
            strategy="long_call",
            max_loss=old_limit * 100,
            max_gain=None,
            net_debit=old_limit,
            quote_snapshot=earlier,
            epoch=await tree.epoch(),
            account_kind="LIVE",
        ),
        timeout=5,
    )
    assert isinstance(created, PreviewCreated)
    reply = refused(await execute(tree, created), "PRICE_MOVED", "superseded")
    fresh = reply.fresh_preview
    assert fresh is not None and fresh.preview_id != created.preview_id
    assert fresh.order.legs == created.order.legs and fresh.order.quantity == 1
    assert fresh.order.limit_price is not None and fresh.order.limit_price > old_limit
    assert fresh.max_loss == pytest.approx(fresh.order.limit_price * 100)
    assert placed_orders(tree) == 0
    refused(await execute(tree, created), "PREVIEW_EXPIRED", "superseded")
    done = await execute(tree, fresh)
    assert isinstance(done, OrderSubmitted), done
    [received] = tree.placed(fresh.preview_id)
    assert received.request.lmt_price == fresh.order.limit_price  # type: ignore[attr-defined]


async def test_a_move_within_the_allowance_is_placed(tree: Tree) -> None:
    order, quotes, limit = await build_order(tree, CALL)
    leg_id = order.legs[0].con_id
    nudged = tuple(
        msgspec.structs.replace(q, bid=q.bid * 0.97, ask=q.ask * 0.97)  # type: ignore[operator]
        if q.con_id == leg_id
        else q
        for q in quotes
    )
    created = await tree.execution.call(
        CreatePreview(
            order=order,
            symbol="AAPL",
            max_loss=limit * 100,
            max_gain=None,
            net_debit=limit,
            quote_snapshot=nudged,
            epoch=await tree.epoch(),
            account_kind="LIVE",
        ),
        timeout=5,
    )
    assert isinstance(created, PreviewCreated)
    assert isinstance(await execute(tree, created), OrderSubmitted)


async def test_a_reconnect_since_the_preview_voids_it(tree: Tree) -> None:
    created = await preview(tree, CALL)
    before = await tree.epoch()
    tree.sim.drop_connections()
    epoch = await tree.wait_connected(epoch=before + 1)
    await wait_ready(tree, epoch)
    refused(await execute(tree, created), "PREVIEW_EXPIRED", "epoch_changed")
    assert placed_orders(tree) == 0


async def test_while_reconciling_after_a_reconnect_execute_says_retry_and_sends_nothing(
    tree: Tree,
) -> None:
    created = await preview(tree, CALL)
    tree.sim.delay_responses("reqCompletedOrders", 1.5)
    tree.sim.drop_connections()
    await tree.wait_connected(epoch=2)
    reply = refused(await execute(tree, created), "NOT_CONNECTED", "reconciling")
    assert reply.retry_after is not None
    assert placed_orders(tree) == 0
    tree.sim.delay_responses("reqCompletedOrders", None)
    await wait_ready(tree, 2)
    refused(await execute(tree, created), "PREVIEW_EXPIRED", "epoch_changed")


async def test_not_connected_refuses_and_keeps_the_preview(tree: Tree) -> None:
    created = await preview(tree, CALL)
    await tree.sim.refuse_connections()
    tree.sim.drop_connections()
    reply = refused(await execute(tree, created), "NOT_CONNECTED")
    assert reply.reason in ("not_connected", "reconciling")
    assert placed_orders(tree) == 0


async def test_a_risk_failure_refuses_with_its_code_and_uses_up_the_preview(tree: Tree) -> None:
    created = await preview(tree, CALL)
    tree.risk_verdict.update(ok=False, code="INSUFFICIENT_FUNDS", detail="available 10 < 510")
    reply = refused(await execute(tree, created), "INSUFFICIENT_FUNDS", "risk_refused")
    assert any("funds: failed" in check for check in reply.checks)
    [request] = tree.risk_seen
    assert request.order == created.order and request.max_loss == created.max_loss
    assert request.debit == pytest.approx(created.net_debit * 100)
    assert placed_orders(tree) == 0
    tree.risk_verdict.update(ok=True)
    refused(await execute(tree, created), "PREVIEW_USED", "risk_refused")


async def test_three_rejections_open_the_breaker_until_it_is_reset(tree: Tree) -> None:
    for n in range(3):
        created = await preview(tree, CALL)
        tree.sim.reject_next_order(201, "Order rejected - reason:simulated")
        reply = refused(await execute(tree, created), "ORDER_REJECTED", "rejected")
        assert "201" in reply.message
        state = await tree.execution.call(GetBreaker(), timeout=2)
        assert isinstance(state, BreakerState) and state.open == (n == 2)
    sent = placed_orders(tree)
    blocked = await preview(tree, CALL)
    refused(await execute(tree, blocked), "ORDER_REJECTED", "breaker_open")
    assert placed_orders(tree) == sent
    reset = await tree.execution.call(ResetBreaker(), timeout=2)
    assert isinstance(reset, BreakerState) and not reset.open
    assert isinstance(await execute(tree, blocked), OrderSubmitted)


async def test_a_success_between_rejections_keeps_the_breaker_closed(tree: Tree) -> None:
    for reject in (True, True, False, True, True):
        created = await preview(tree, CALL)
        if reject:
            tree.sim.reject_next_order(201, "Order rejected - reason:simulated")
        await execute(tree, created)
    state = await tree.execution.call(GetBreaker(), timeout=2)
    assert isinstance(state, BreakerState) and not state.open and state.consecutive_rejections == 2


async def test_an_unknown_approval_setting_refuses_every_order(sim: SimTWS, tmp_path: Path) -> None:
    async with execution_tree(sim, tmp_path, approval="yolo") as tree:
        await wait_ready(tree)
        created = await preview(tree, CALL)
        reply = refused(
            await execute(tree, created, mode="yolo"), "APPROVAL_REQUIRED", "unknown_approval_mode"
        )
        assert "yolo" in reply.message
        assert placed_orders(tree) == 0


async def test_elicit_mode_needs_an_elicitation_the_client_can_show(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with execution_tree(sim, tmp_path, approval="elicit") as tree:
        await wait_ready(tree)
        created = await preview(tree, CALL)
        reply = refused(
            await execute(tree, created, mode="elicit"), "APPROVAL_REQUIRED", "elicitation_required"
        )
        assert "does not support elicitation" in reply.message
        refused(
            await execute(tree, created, mode="client", via="elicitation"),
            "APPROVAL_REQUIRED",
            "mode_mismatch",
        )
        assert placed_orders(tree) == 0
        done = await execute(
            tree, created, mode="elicit", via="elicitation", client_can_elicit=True
        )
        assert isinstance(done, OrderSubmitted), done


async def test_app_mode_needs_the_order_ticket(sim: SimTWS, tmp_path: Path) -> None:
    async with execution_tree(sim, tmp_path, approval="app") as tree:
        await wait_ready(tree)
        created = await preview(tree, CALL)
        refused(await execute(tree, created, mode="app"), "APPROVAL_REQUIRED", "ticket_required")
        done = await execute(tree, created, mode="app", via="ticket", client_has_ui=True)
        assert isinstance(done, OrderSubmitted), done
