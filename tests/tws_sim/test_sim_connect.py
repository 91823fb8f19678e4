"""The real ib_async client connects, syncs and reads accounts and positions."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB

from sumppump.tws_sim import AccountSpec, SimTWS

pytestmark = pytest.mark.anyio


async def test_connect_completes_the_startup_sync_at_server_version_178(
    sim: SimTWS, ib: IB
) -> None:
    assert ib.isConnected()
    assert ib.client.serverVersion() == 178
    assert ib.managedAccounts() == ["U1234567"]
    names = [r.name for r in sim.requests]
    # ib_async's startup sync, as observed on the wire against real TWS.
    assert names[:7] == [
        "startApi",
        "reqPositions",
        "reqOpenOrders",
        "reqCompletedOrders",
        "reqAccountUpdates",
        "reqAccountUpdatesMulti",
        "reqExecutions",
    ]
    assert sim.connections() == [17]
    # Pitfall P11: any other range means ib_async is not 2.1.0 and may speak protobuf.
    assert sim.handshakes == ["v157..178"]
    sim.stats.assert_clean()


async def test_connection_notices_are_farm_ok_messages(sim: SimTWS, connect_ib) -> None:
    seen: list[int] = []
    client = IB()
    client.errorEvent += lambda req_id, code, text, contract: seen.append(code)
    connect_ib.clients.append(client)
    await client.connectAsync("127.0.0.1", sim.port, clientId=3, timeout=2, raiseSyncErrors=True)
    await asyncio.sleep(0.05)
    assert seen == [2104, 2106, 2158]


async def test_live_looking_account_holds_cash_and_shares_for_covered_calls(ib: IB) -> None:
    positions = ib.positions()
    assert [(p.contract.symbol, p.position) for p in positions] == [("AAPL", 200.0)]
    values = {
        v.tag: float(v.value)
        for v in ib.accountValues()
        if v.currency == "USD" and v.tag in ("NetLiquidation", "TotalCashValue", "StockMarketValue")
    }
    assert values["TotalCashValue"] == 100_000.0
    assert values["NetLiquidation"] == pytest.approx(
        values["TotalCashValue"] + values["StockMarketValue"], abs=0.01
    )
    portfolio = ib.portfolio()
    assert portfolio[0].contract.primaryExchange == "NASDAQ"
    assert portfolio[0].marketValue == pytest.approx(200 * portfolio[0].marketPrice, abs=0.01)


async def test_paper_option_gives_a_du_account() -> None:
    async with SimTWS(paper=True) as sim:
        client = IB()
        try:
            await client.connectAsync(
                "127.0.0.1", sim.port, clientId=1, timeout=2, raiseSyncErrors=True
            )
            assert client.managedAccounts() == ["DU1234567"]
        finally:
            client.disconnect()


async def test_two_accounts_are_both_reported_and_summarised() -> None:
    accounts = [
        AccountSpec("U1111111", cash=50_000.0, stocks={}),
        AccountSpec("U2222222", cash=20_000.0, stocks={"SPY": 10}),
    ]
    async with SimTWS(accounts=accounts) as sim:
        client = IB()
        try:
            await client.connectAsync(
                "127.0.0.1", sim.port, clientId=1, timeout=2, raiseSyncErrors=True
            )
            assert client.managedAccounts() == ["U1111111", "U2222222"]
            summary = await client.accountSummaryAsync()
            cash = {v.account: float(v.value) for v in summary if v.tag == "TotalCashValue"}
            assert cash == {"U1111111": 50_000.0, "U2222222": 20_000.0}
        finally:
            client.disconnect()


async def test_account_summary_answers_the_requested_tags(ib: IB) -> None:
    summary = await ib.accountSummaryAsync()
    tags = {v.tag for v in summary}
    assert {
        "NetLiquidation",
        "AvailableFunds",
        "BuyingPower",
        "TotalCashValue",
        "InitMarginReq",
        "MaintMarginReq",
        "ExcessLiquidity",
    } <= tags
    by_tag = {v.tag: float(v.value) for v in summary if v.currency == "USD"}
    assert by_tag["AvailableFunds"] == pytest.approx(
        by_tag["NetLiquidation"] - by_tag["InitMarginReq"], abs=0.02
    )


async def test_current_time_is_the_simulated_clock(sim: SimTWS, ib: IB) -> None:
    now = await ib.reqCurrentTimeAsync()
    assert int(now.timestamp()) == int(sim.clock.timestamp())
    await sim.advance(3600)
    later = await ib.reqCurrentTimeAsync()
    assert (later - now).total_seconds() == pytest.approx(3600, abs=1)


async def test_pnl_subscriptions_answer(ib: IB) -> None:
    pnl = ib.reqPnL("U1234567")
    await asyncio.sleep(0.05)
    assert pnl.unrealizedPnL == pytest.approx(sum(p.unrealizedPNL for p in ib.portfolio()), abs=1.0)
    ib.cancelPnL("U1234567")


async def test_the_decode_guard_catches_a_malformed_message(
    sim: SimTWS, ib: IB, decode_guard
) -> None:
    sim._broadcast([4, 2, -1, 2104, "error without its advancedOrderRejectJson field"])
    await ib.reqCurrentTimeAsync()  # the malformed frame was processed before this answer
    assert any("Error handling fields" in problem for problem in decode_guard.problems)
    decode_guard.problems.clear()
