"""The risk actor against the simulated TWS (real ib_async, the real connection and chain cache):
analyses that pass, refusals for funds, risk share, permissions, market hours and stale data,
covered calls on held, committed and missing shares, strike suggestions, the re-check at execute
time and the account state it keeps."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
import pytest

from sumppump.actors.chain_cache import ChainCacheActor
from sumppump.actors.connection import ConnectionActor
from sumppump.actors.rate_limiter import RateLimiter
from sumppump.actors.risk import RiskActor
from sumppump.actors.runtime import Ref
from sumppump.messages.base import Message
from sumppump.messages.chain_cache import ExpiryNotListed
from sumppump.messages.common import NoSuchContract
from sumppump.messages.connection import ConnectionUp
from sumppump.messages.orders import FillReported, OrderPlaced, PlaceOrder
from sumppump.messages.risk import (
    AccountState,
    AnalyseStrategy,
    GetAccountState,
    RecheckOrder,
    RecheckResult,
    RiskRejected,
    StrategyAnalysed,
    StrikeSuggestions,
    SuggestStrikes,
)
from sumppump.risk_checks import FUNDS, MARKET, QUOTES, RISK_SHARE, SHARES, WHAT_IF
from sumppump.settings import Settings
from sumppump.supervisor import ChildSpec, Supervisor
from sumppump.tws_sim import AccountSpec, SimTWS
from tests.support.ib_harness import FAST_RECONNECT, EventRecorder, no_decoder_errors

pytestmark = pytest.mark.anyio

EXPIRY = "2026-12-18"
ACCOUNT = "U1234567"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async needs asyncio


@dataclass
class RiskHarness:
    sim: SimTWS
    connection: Ref
    risk: Ref
    events: list[Message] = field(default_factory=list)

    async def wait_for(self, predicate: object, timeout: float = 5.0) -> Message:
        with anyio.fail_after(timeout):
            while True:
                for event in self.events:
                    if predicate(event):  # type: ignore[operator]
                        return event
                await anyio.sleep(0.01)

    async def analyse(self, strategy: str, strikes: tuple[float, ...], **kw: object) -> object:
        msg = AnalyseStrategy(
            symbol=kw.pop("symbol", "AAPL"),  # type: ignore[arg-type]
            strategy=strategy,
            expiry=kw.pop("expiry", EXPIRY),  # type: ignore[arg-type]
            strikes=strikes,
            **kw,  # type: ignore[arg-type]
        )
        return await self.risk.call(msg, timeout=20)


@asynccontextmanager
async def risk_harness(
    tmp_path: Path,
    *,
    accounts: list[AccountSpec] | None = None,
    scenario: str | None = None,
    simulated: bool = False,
    **settings_overrides: object,
) -> AsyncIterator[RiskHarness]:
    """rate limiter, recorder, connection → chain cache → risk, against a fresh simulator; the
    connection publishes to the recorder and to risk (as the production tree does)."""
    async with SimTWS(seed=7, accounts=accounts, scenario=scenario) as sim:
        settings = Settings(tws_port=sim.port, connect_timeout_s=2.0, **settings_overrides)  # type: ignore[arg-type]
        refs = {
            n: Ref(n) for n in ("rate_limiter", "recorder", "connection", "chain_cache", "risk")
        }
        h = RiskHarness(sim, refs["connection"], refs["risk"])
        today = lambda: sim.clock.now().date()  # noqa: E731
        specs = [
            ChildSpec(
                "rate_limiter",
                lambda: RateLimiter(message_rate=45, lines_budget=90),
                refs["rate_limiter"],
            ),
            ChildSpec(
                "recorder", lambda: EventRecorder(h.events), refs["recorder"], mailbox_size=1024
            ),
            ChildSpec(
                "connection",
                lambda: ConnectionActor(
                    settings,
                    rate_limiter=refs["rate_limiter"],
                    subscribers=[refs["recorder"], refs["risk"]],
                    policy=FAST_RECONNECT,
                ),
                refs["connection"],
                shutdown=2.0,
            ),
            ChildSpec(
                "chain_cache",
                lambda: ChainCacheActor(
                    connection=refs["connection"], cache_dir=tmp_path, today=today
                ),
                refs["chain_cache"],
            ),
            ChildSpec(
                "risk",
                lambda: RiskActor(
                    settings,
                    connection=refs["connection"],
                    chain_cache=refs["chain_cache"],
                    simulated=simulated,
                    now=sim.clock.now,
                    today=today,
                ),
                refs["risk"],
            ),
        ]
        supervisor = Supervisor("test-risk", specs, intensity=3, period=60)
        with no_decoder_errors():
            async with anyio.create_task_group() as tg:
                await tg.start(supervisor.run)
                await h.wait_for(lambda e: isinstance(e, ConnectionUp))
                with anyio.fail_after(5):  # risk has loaded the account
                    while True:
                        state = await h.risk.call(GetAccountState(), timeout=5)
                        if isinstance(state, AccountState) and not state.stale:
                            break
                        await anyio.sleep(0.02)
                yield h
                tg.cancel_scope.cancel()


def check(reply: StrategyAnalysed | RiskRejected | RecheckResult, name: str) -> str:
    [found] = [c for c in reply.checks if c.name == name]
    return found.status


# ---------------------------------------------------------------------- analyses that pass


async def test_debit_spread_is_analysed_with_the_exact_order_and_every_check_passed(
    tmp_path: Path,
) -> None:
    async with risk_harness(tmp_path) as h:
        reply = await h.analyse("bull_call_spread", (230.0, 220.0), quantity=2)

    assert isinstance(reply, StrategyAnalysed), reply
    assert reply.account_id == ACCOUNT and reply.account_kind == "LIVE" and reply.epoch == 1
    assert {c.status for c in reply.checks} == {"passed"}
    assert {c.name for c in reply.checks} >= {FUNDS, RISK_SHARE, WHAT_IF, MARKET, QUOTES}
    order = reply.order
    assert order.order_ref == "" and order.account == ACCOUNT and order.quantity == 2
    assert [(leg.action, leg.strike, leg.right, leg.sec_type) for leg in order.legs] == [
        ("BUY", 220.0, "C", "OPT"),
        ("SELL", 230.0, "C", "OPT"),
    ]
    catalog = h.sim.catalog
    for leg in order.legs:
        inst = catalog.by_con_id(leg.con_id, h.sim.clock.now().date())
        assert inst is not None and inst.strike == leg.strike and inst.right == leg.right
    assert order.limit_price == reply.analysis.limit_price > 0
    assert order.order_type == "LMT" and order.tif == "DAY"
    assert reply.what_if_commission == pytest.approx(2 * 2 * 0.65)  # the sim's IBKR Pro rate
    snap = reply.quote_snapshot
    assert [leg.con_id for leg in snap.legs] == [leg.con_id for leg in order.legs]
    assert all(leg.bid is not None and leg.ask is not None for leg in snap.legs)
    assert snap.ts > 0 and reply.data_type == "live"


async def test_covered_call_on_the_held_shares_sells_only_the_calls(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:  # the default account holds 200 AAPL
        reply = await h.analyse("covered_call", (240.0,), quantity=2)

    assert isinstance(reply, StrategyAnalysed), reply
    [leg] = reply.order.legs
    assert (leg.action, leg.right, leg.ratio, reply.order.quantity) == ("SELL", "C", 1, 2)
    assert reply.order.limit_price is not None and reply.order.limit_price > 0
    assert check(reply, SHARES) == "passed" and "uses 200 shares" in next(
        c.detail for c in reply.checks if c.name == SHARES
    )
    assert check(reply, RISK_SHARE) == "passed"  # selling calls on held shares adds no risk
    assert reply.analysis.held_shares_included == 200
    assert reply.shares_held_used == 200 and reply.order_max_loss == 0.0
    assert reply.stock is not None and reply.stock.liquid_hours


async def test_covered_call_without_shares_becomes_a_buy_write_the_simulator_fills(
    tmp_path: Path,
) -> None:
    no_shares = [AccountSpec(ACCOUNT, cash=100_000.0, stocks={})]
    async with risk_harness(tmp_path, accounts=no_shares, max_risk_pct=50.0) as h:
        reply = await h.analyse("covered_call", (240.0,), quantity=1)
        assert isinstance(reply, StrategyAnalysed), reply
        stock, call = reply.order.legs
        assert (stock.sec_type, stock.action, stock.ratio) == ("STK", "BUY", 100)
        assert (call.sec_type, call.action, call.ratio) == ("OPT", "SELL", 1)
        assert any("buys 100 shares" in note for note in reply.notes)
        spot = reply.quote_snapshot.underlying_mid
        assert spot is not None and reply.order.limit_price is not None
        assert 99 * spot < reply.order.limit_price < 100 * spot  # IB's combo terms
        # The combo price is what TWS expects: at the mid it fills, and 100 shares are bought.
        placed = await h.connection.call(
            PlaceOrder(spec=msgspec.structs.replace(reply.order, order_ref="bw")),
            timeout=5,
        )
        assert isinstance(placed, OrderPlaced)
        await h.wait_for(lambda e: isinstance(e, FillReported) and e.con_id == stock.con_id)
        position = h.sim.broker.accounts[ACCOUNT].positions[stock.con_id]
        assert position.quantity == 100


async def test_shares_already_covering_a_short_call_are_not_used_again(tmp_path: Path) -> None:
    async with risk_harness(tmp_path, max_risk_pct=50.0) as h:
        first = await h.analyse("covered_call", (240.0,), quantity=2)
        assert isinstance(first, StrategyAnalysed)
        assert len(first.order.legs) == 1  # on the 200 shares held
        placed = await h.connection.call(
            PlaceOrder(spec=msgspec.structs.replace(first.order, order_ref="cc1")), timeout=5
        )
        assert isinstance(placed, OrderPlaced)
        with anyio.fail_after(5):  # the fill refreshes risk's positions
            while True:
                state = await h.risk.call(GetAccountState(), timeout=5)
                assert isinstance(state, AccountState)
                if state.shares_committed_by_open_short_calls.get("AAPL") == 200:
                    break
                await anyio.sleep(0.02)
        second = await h.analyse("covered_call", (245.0,), quantity=1)

    assert isinstance(second, StrategyAnalysed), second
    assert second.analysis.held_shares_included == 0 and second.shares_held_used == 0
    stock, call = second.order.legs  # the 200 shares are taken: a buy-write
    assert (stock.sec_type, stock.action, stock.ratio) == ("STK", "BUY", 100)
    assert (call.action, call.strike) == ("SELL", 245.0)


# ---------------------------------------------------------------------- refusals


async def test_insufficient_funds_is_refused_with_the_funds_check_failed(tmp_path: Path) -> None:
    small = [AccountSpec(ACCOUNT, cash=2_000.0, stocks={})]
    async with risk_harness(tmp_path, accounts=small, max_risk_pct=100.0) as h:
        reply = await h.analyse("long_call", (225.0,), quantity=5)

    assert isinstance(reply, RiskRejected), reply
    assert reply.code == "INSUFFICIENT_FUNDS" and check(reply, FUNDS) == "failed"
    assert reply.analysis is not None and reply.analysis.net_debit_total > 2_000
    assert reply.account_kind == "LIVE"


async def test_a_loss_over_the_risk_share_is_refused(tmp_path: Path) -> None:
    async with risk_harness(tmp_path, max_risk_pct=1.0) as h:
        reply = await h.analyse("long_call", (225.0,), quantity=3)

    assert isinstance(reply, RiskRejected), reply
    assert reply.code == "RISK_LIMIT" and check(reply, RISK_SHARE) == "failed"
    assert check(reply, FUNDS) == "passed"
    assert "1%" in reply.message


async def test_no_options_permission_is_reported_from_ibs_what_if(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        h.sim.set_options_level(ACCOUNT, 0)
        reply = await h.analyse("long_call", (225.0,))

    assert isinstance(reply, RiskRejected), reply
    assert reply.code == "NOT_PERMITTED_LEVEL2" and check(reply, WHAT_IF) == "failed"
    detail = next(c.detail for c in reply.checks if c.name == WHAT_IF)
    assert "201" in detail and "PERMISSION" in detail


async def test_market_closed_is_refused_with_the_next_open(tmp_path: Path) -> None:
    async with risk_harness(tmp_path, scenario="after_hours") as h:  # 18:00 New York
        reply = await h.analyse("long_call", (225.0,))

    assert isinstance(reply, RiskRejected), reply
    assert reply.code == "MARKET_CLOSED" and check(reply, MARKET) == "failed"
    assert "next open 2026-11-26 14:30 UTC" in reply.message


async def test_level3_structure_is_refused_before_anything_is_priced(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        reply = await h.analyse("bull_put_spread", (210.0, 220.0))
        whatifs = [o for o in h.sim.orders_received if o.what_if]

    assert isinstance(reply, RiskRejected)
    assert reply.code == "NOT_PERMITTED_LEVEL2" and reply.level_needed
    assert whatifs == []


async def test_unlisted_expiry_and_unknown_symbol_are_passed_through(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        unlisted = await h.analyse("long_call", (225.0,), expiry="2026-12-17")
        unknown = await h.analyse("long_call", (225.0,), symbol="ZZZZ")
        strike = await h.analyse("long_call", (225.5,))
    assert isinstance(unlisted, ExpiryNotListed) and unlisted.requested == "2026-12-17"
    assert isinstance(unknown, NoSuchContract) and unknown.symbol == "ZZZZ"
    assert isinstance(strike, RiskRejected) and strike.code == "INVALID_ARGUMENT"
    assert "225.5" in strike.message


async def test_delayed_data_fails_closed_on_live_but_only_warns_on_paper(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        h.sim.entitlement(live=False, delayed=True)
        live = await h.analyse("long_call", (225.0,))
    paper_account = [AccountSpec("DU1234567")]
    async with risk_harness(tmp_path, accounts=paper_account) as h:
        h.sim.entitlement(live=False, delayed=True)
        paper = await h.analyse("long_call", (225.0,))

    assert isinstance(live, RiskRejected), live
    assert live.code == "NO_MARKET_DATA" and check(live, QUOTES) == "not_run"
    assert "LIVE" in live.message
    assert isinstance(paper, StrategyAnalysed), paper
    assert paper.account_kind == "PAPER" and check(paper, QUOTES) == "not_run"
    assert any("live_quotes did not run" in w for w in paper.warnings)


async def test_simulated_flag_labels_the_account(tmp_path: Path) -> None:
    async with risk_harness(tmp_path, simulated=True) as h:
        reply = await h.analyse("long_put", (225.0,))
        state = await h.risk.call(GetAccountState(), timeout=5)
    assert isinstance(reply, StrategyAnalysed) and reply.account_kind == "SIMULATED"
    assert isinstance(state, AccountState) and state.kind == "SIMULATED"


# ---------------------------------------------------------------------- suggest, recheck, account


async def test_suggests_bullish_level2_candidates_from_the_chain(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        reply = await h.risk.call(
            SuggestStrikes(symbol="AAPL", outlook="bullish", expiry=EXPIRY, max_debit=800.0),
            timeout=25,
        )

    assert isinstance(reply, StrikeSuggestions), reply
    assert reply.expiry == EXPIRY and reply.spot > 0 and reply.candidates
    assert {c.strategy for c in reply.candidates} <= {"long_call", "bull_call_spread"}
    assert all(c.max_loss <= 800.0 + 1e-6 for c in reply.candidates)


async def test_recheck_passes_then_fails_when_the_limits_tighten(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        analysed = await h.analyse("bull_call_spread", (220.0, 230.0), quantity=2)
        assert isinstance(analysed, StrategyAnalysed)
        a = analysed.analysis
        assert analysed.order_max_loss == a.max_loss_with_commission  # no held shares
        recheck = RecheckOrder(
            order=analysed.order,
            max_loss=analysed.order_max_loss,
            debit=a.net_debit_total,
            commission=a.commission.total,
        )
        ok = await h.risk.call(recheck, timeout=10)
        h.sim.set_options_level(ACCOUNT, 0)
        refused = await h.risk.call(recheck, timeout=10)

    assert isinstance(ok, RecheckResult) and ok.ok and ok.code is None
    assert {c.status for c in ok.checks} == {"passed"}
    assert isinstance(refused, RecheckResult) and not refused.ok
    assert refused.code == "NOT_PERMITTED_LEVEL2"


async def test_account_state_matches_the_brokers_books(tmp_path: Path) -> None:
    async with risk_harness(tmp_path) as h:
        state = await h.risk.call(GetAccountState(refresh=True), timeout=5)
        values = h.sim.broker.account_values(h.sim.broker.accounts[ACCOUNT])

    assert isinstance(state, AccountState)
    assert state.account_id == ACCOUNT and state.kind == "LIVE" and not state.stale
    assert state.net_liquidation == pytest.approx(values["NetLiquidation"], abs=0.01)
    assert state.available_funds == pytest.approx(values["AvailableFunds"], abs=0.01)
    [aapl] = [p for p in state.positions if p.symbol == "AAPL"]
    assert aapl.quantity == 200 and state.shares_committed_by_open_short_calls == {}
    assert state.refreshed_at > dt.datetime(2026, 1, 1).timestamp() * 1e9


async def test_account_goes_stale_when_tws_drops_and_reloads_on_reconnect(
    tmp_path: Path,
) -> None:
    async with risk_harness(tmp_path) as h:
        await h.sim.refuse_connections()
        h.sim.drop_connections()
        await h.wait_for(lambda e: type(e).__name__ == "ConnectionDown")
        with anyio.fail_after(5):
            while True:
                down = await h.risk.call(GetAccountState(), timeout=5)
                assert isinstance(down, AccountState)
                if down.stale:
                    break
                await anyio.sleep(0.02)
        refused = await h.analyse("long_call", (225.0,))
        assert type(refused).__name__ == "NotConnected"
        await h.sim.accept_connections()
        await h.wait_for(lambda e: isinstance(e, ConnectionUp) and e.epoch == 2)
        with anyio.fail_after(5):
            while True:
                up = await h.risk.call(GetAccountState(), timeout=5)
                assert isinstance(up, AccountState)
                if not up.stale and up.refreshed_at > down.refreshed_at:
                    break
                await anyio.sleep(0.02)
        again = await h.analyse("long_call", (225.0,))
    assert isinstance(again, StrategyAnalysed) and again.epoch == 2


async def test_a_close_over_the_contract_limit_passes_but_an_opening_order_does_not(
    tmp_path: Path,
) -> None:
    async with risk_harness(tmp_path, max_contracts=1) as h:
        analysed = await h.analyse("bull_call_spread", (220.0, 230.0), quantity=1)
        assert isinstance(analysed, StrategyAnalysed)
        two = msgspec.structs.replace(analysed.order, quantity=2)
        opening = RecheckOrder(order=two, max_loss=100.0, debit=100.0)
        closing = msgspec.structs.replace(opening, max_loss=0.0, reduces_exposure=True)
        refused = await h.risk.call(opening, timeout=10)
        allowed = await h.risk.call(closing, timeout=10)

    assert isinstance(refused, RecheckResult) and not refused.ok
    assert refused.code == "RISK_LIMIT"
    assert isinstance(allowed, RecheckResult)
    [contracts] = [c for c in allowed.checks if c.name == "max_contracts"]
    assert contracts.status == "passed" and "only closes" in contracts.detail
