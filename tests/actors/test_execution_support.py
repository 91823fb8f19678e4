"""A broker tree with the real execution actor against the simulated TWS (real ib_async).

Only the risk actor is scripted (its actor had not landed when these tests were written): it
answers ``RecheckOrder`` with the verdict the test sets. Connection, order desk, chain cache and
execution are the production actors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio

from sumppump.actors.chain_cache import ChainCacheActor
from sumppump.actors.connection import ConnectionActor
from sumppump.actors.execution import CircuitBreaker, ExecutionActor
from sumppump.actors.rate_limiter import RateLimiter
from sumppump.actors.risk import RiskActor
from sumppump.actors.runtime import Actor, ActorDown, CallTimeout, Ref
from sumppump.messages.base import Message, Reply
from sumppump.messages.chain_cache import Chain, GetChain, GetLegQuotes, LegKey, LegQuotes
from sumppump.messages.common import Ping, Pong, Quote
from sumppump.messages.connection import ConnectionState, GetConnectionState
from sumppump.messages.execution import (
    ApprovalContext,
    BreakerState,
    CreatePreview,
    ExecutePreview,
    GetBreaker,
    PreviewCreated,
)
from sumppump.messages.orders import OrderLeg, OrderSpec
from sumppump.messages.risk import CheckResult, RecheckOrder, RecheckResult
from sumppump.settings import Settings
from sumppump.supervisor import ChildSpec, Supervisor
from sumppump.trading.prices import option_price_tick, round_to_tick, structure_mid
from sumppump.tws_sim import SimTWS
from tests.support.ib_harness import FAST_RECONNECT

ACCOUNT = "U1234567"
EXPIRY = "2026-12-18"


class ScriptedRisk(Actor):
    """Answers RecheckOrder with ``verdict`` (a dict the test mutates); records the requests."""

    def __init__(self, verdict: dict[str, object], seen: list[RecheckOrder]) -> None:
        self.verdict = verdict
        self.seen = seen

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, Ping):
            return Pong(actor="risk")
        if isinstance(msg, RecheckOrder):
            self.seen.append(msg)
            ok = bool(self.verdict.get("ok", True))
            return RecheckResult(
                checks=(
                    CheckResult(
                        name="funds",
                        status="passed" if ok else "failed",
                        detail=str(self.verdict.get("detail", "available 100,000 ≥ debit")),
                    ),
                ),
                ok=ok,
                code=self.verdict.get("code"),  # type: ignore[arg-type]
            )
        return None


class Recorder(Actor):
    def __init__(self, sink: list[Message]) -> None:
        self.sink = sink

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, Ping):
            return Pong(actor="recorder")
        self.sink.append(msg)
        return None


@dataclass
class Tree:
    sim: SimTWS
    settings: Settings
    supervisor: Supervisor
    connection: Ref
    chain: Ref
    execution: Ref
    risk: Ref
    breaker: CircuitBreaker
    risk_verdict: dict[str, object] = field(default_factory=dict)
    risk_seen: list[RecheckOrder] = field(default_factory=list)
    events: list[Message] = field(default_factory=list)

    @property
    def audit_path(self) -> Path:
        return self.settings.audit_path

    async def epoch(self) -> int:
        state = await self.connection.call(GetConnectionState(), timeout=2)
        assert isinstance(state, ConnectionState)
        return state.epoch

    async def wait_connected(self, epoch: int | None = None, timeout: float = 10.0) -> int:
        with anyio.fail_after(timeout):
            while True:
                state = await self.connection.call(GetConnectionState(), timeout=2)
                if (
                    isinstance(state, ConnectionState)
                    and state.state == "connected"
                    and (epoch is None or state.epoch >= epoch)
                ):
                    return state.epoch
                await anyio.sleep(0.02)

    def placed(self, ref: str) -> list[object]:
        return [o for o in self.sim.orders_received if o.order_ref == ref and not o.what_if]


@asynccontextmanager
async def execution_tree(
    sim: SimTWS,
    tmp_path: Path,
    *,
    ack_window: float = 1.0,
    real_risk: bool = False,
    **settings_overrides: object,
) -> AsyncIterator[Tree]:
    settings = Settings(
        tws_port=sim.port,
        connect_timeout_s=2.0,
        audit_path=tmp_path / "audit.jsonl",
        **settings_overrides,  # type: ignore[arg-type]
    )
    refs = {n: Ref(n) for n in ("rate_limiter", "recorder", "connection", "chain", "risk", "exec")}
    breaker = CircuitBreaker()
    verdict: dict[str, object] = {"ok": True}
    seen: list[RecheckOrder] = []
    events: list[Message] = []
    today = sim.clock.today()
    specs = [
        ChildSpec(
            "rate_limiter",
            lambda: RateLimiter(message_rate=45.0, lines_budget=90),
            refs["rate_limiter"],
            mailbox_size=256,
        ),
        ChildSpec("recorder", lambda: Recorder(events), refs["recorder"], mailbox_size=4096),
        ChildSpec(
            "connection",
            lambda: ConnectionActor(
                settings,
                rate_limiter=refs["rate_limiter"],
                subscribers=[refs["exec"], refs["recorder"], refs["risk"]],
                policy=FAST_RECONNECT,
            ),
            refs["connection"],
            shutdown=2.0,
        ),
        ChildSpec(
            "chain_cache",
            lambda: ChainCacheActor(
                connection=refs["connection"],
                cache_dir=tmp_path / "cache",
                today=lambda: today,
            ),
            refs["chain"],
        ),
        ChildSpec(
            "risk",
            (
                (
                    lambda: RiskActor(
                        settings,
                        connection=refs["connection"],
                        chain_cache=refs["chain"],
                        simulated=True,
                        today=lambda: today,
                        now=sim.clock.now,
                    )
                )
                if real_risk
                else (lambda: ScriptedRisk(verdict, seen))
            ),
            refs["risk"],
        ),
        ChildSpec(
            "execution",
            lambda: ExecutionActor(
                settings,
                connection=refs["connection"],
                chain_cache=refs["chain"],
                risk=refs["risk"],
                breaker=breaker,
                ack_window=ack_window,
            ),
            refs["exec"],
            mailbox_size=1024,
            shutdown=3.0,
        ),
    ]
    supervisor = Supervisor("test-execution", specs, intensity=20, period=60)
    tree = Tree(
        sim,
        settings,
        supervisor,
        refs["connection"],
        refs["chain"],
        refs["exec"],
        refs["risk"],
        breaker,
        verdict,
        seen,
        events,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.run)
        await tree.wait_connected()
        yield tree
        tg.cancel_scope.cancel()


LegWant = tuple[Literal["BUY", "SELL"], Literal["C", "P", "STK"], int]  # action, right, offset


async def chain_strikes(tree: Tree) -> tuple[list[float], float]:
    chain = await tree.chain.call(
        GetChain(symbol="AAPL", expiry=EXPIRY, strikes_each_side=4), timeout=10
    )
    assert isinstance(chain, Chain), chain
    strikes = sorted({row.strike for row in chain.rows})
    spot = chain.underlying.mid or chain.underlying.last
    assert spot is not None
    return strikes, spot


async def build_order(
    tree: Tree, wants: list[LegWant], quantity: int = 1, limit_factor: float = 1.0
) -> tuple[OrderSpec, tuple[Quote, ...], float]:
    """The order for ``wants`` (strike offsets from the at-the-money strike) at its mid."""
    strikes, spot = await chain_strikes(tree)
    atm = min(range(len(strikes)), key=lambda i: abs(strikes[i] - spot))
    keys = [
        LegKey(expiry=EXPIRY, strike=strikes[atm + off], right=right)  # type: ignore[arg-type]
        for _, right, off in wants
        if right != "STK"
    ]
    lq = await tree.chain.call(GetLegQuotes(symbol="AAPL", legs=tuple(keys)), timeout=10)
    assert isinstance(lq, LegQuotes) and not lq.missing, lq
    by_key = {(leg.key.strike, leg.key.right): leg for leg in lq.legs}
    legs: list[OrderLeg] = []
    for action, right, off in wants:
        if right == "STK":
            legs.append(
                OrderLeg(
                    con_id=lq.stock.con_id,
                    symbol="AAPL",
                    sec_type="STK",
                    action=action,
                    ratio=100,
                    multiplier=1.0,
                )
            )
            continue
        leg = by_key[(strikes[atm + off], right)]
        c = leg.contract
        legs.append(
            OrderLeg(
                con_id=c.con_id,
                symbol="AAPL",
                sec_type="OPT",
                action=action,
                ratio=1,
                multiplier=c.multiplier,
                expiry=c.expiry,
                strike=c.strike,
                right=c.right,
            )
        )
    quotes = (
        *tuple(leg.quote for leg in lq.legs if leg.quote is not None),
        Quote(
            con_id=lq.stock.con_id,
            bid=lq.underlying.bid,
            ask=lq.underlying.ask,
            last=lq.underlying.last,
        ),
    )
    draft = OrderSpec(order_ref="", account=ACCOUNT, symbol="AAPL", legs=tuple(legs), quantity=1)
    mid = structure_mid(draft, quotes)
    assert mid is not None
    single_option = len(legs) == 1 and legs[0].sec_type == "OPT"
    target = mid * limit_factor
    limit = round_to_tick(target, option_price_tick(target) if single_option else 0.01)
    order = OrderSpec(
        order_ref="",
        account=ACCOUNT,
        symbol="AAPL",
        legs=tuple(legs),
        quantity=quantity,
        limit_price=limit,
    )
    return order, quotes, limit


async def preview(
    tree: Tree,
    wants: list[LegWant],
    *,
    quantity: int = 1,
    strategy: str = "long_call",
    kind: str = "open",
    limit_factor: float = 1.0,
) -> PreviewCreated:
    order, quotes, limit = await build_order(tree, wants, quantity, limit_factor)
    multiplier = 100.0
    created = await tree.execution.call(
        CreatePreview(
            order=order,
            symbol="AAPL",
            kind=kind,  # type: ignore[arg-type]
            strategy=strategy,
            max_loss=round(abs(limit) * multiplier * quantity, 2),
            max_gain=None,
            net_debit=limit,
            quote_snapshot=quotes,
            epoch=await tree.epoch(),
            account_kind="LIVE",
        ),
        timeout=5,
    )
    assert isinstance(created, PreviewCreated), created
    return created


def approval(mode: str = "client", via: str = "tool", **kw: bool) -> ApprovalContext:
    return ApprovalContext(mode=mode, approved_via=via, **kw)  # type: ignore[arg-type]


async def execute(
    tree: Tree, created: PreviewCreated, text: str | None = None, **approval_kw: object
) -> Reply:
    return await tree.execution.call(
        ExecutePreview(
            preview_id=created.preview_id,
            confirm_text=created.confirm_text if text is None else text,
            approval=approval(**approval_kw),  # type: ignore[arg-type]
        ),
        timeout=20,
    )


async def wait_ready(tree: Tree, epoch: int | None = None, timeout: float = 10.0) -> None:
    """Until execution has reconciled the current connection epoch (or ``epoch``)."""
    with anyio.fail_after(timeout):
        while True:
            try:
                state = await tree.execution.call(GetBreaker(), timeout=2)
            except (ActorDown, CallTimeout):
                state = None
            if (
                isinstance(state, BreakerState)
                and state.ready
                and (epoch is None or (state.reconciled_epoch or 0) >= epoch)
            ):
                return
            await anyio.sleep(0.02)


async def wait_until(predicate: object, timeout: float = 8.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await anyio.sleep(0.02)
