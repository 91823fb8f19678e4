"""Each fault and scenario, seen through the real ib_async client."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB, Stock
from ib_async.wrapper import RequestError

from sumppump.tws_sim import SCENARIOS, SimTWS, scenario_names

pytestmark = pytest.mark.anyio


def record_errors(client: IB) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    client.errorEvent += lambda req_id, code, text, contract: seen.append((req_id, code))
    return seen


async def until(predicate, limit: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_drop_connections_disconnects_and_a_reconnect_works(sim: SimTWS, connect_ib) -> None:
    client = await connect_ib()
    dropped: list[bool] = []
    client.disconnectedEvent += lambda: dropped.append(True)
    assert sim.drop_connections() == 1
    await until(lambda: bool(dropped))
    assert not client.isConnected()
    again = await connect_ib()
    assert again.isConnected() and sim.connections() == [17]


async def test_stall_keeps_the_socket_but_stops_answering(sim: SimTWS, ib: IB) -> None:
    sim.stall()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.2)
    assert ib.isConnected()
    sim.resume()
    now = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 1.0)
    assert int(now.timestamp()) == int(sim.clock.timestamp())


async def test_a_new_connection_during_a_stall_times_out(sim: SimTWS) -> None:
    sim.stall()
    client = IB()
    try:
        with pytest.raises(TimeoutError):
            await client.connectAsync("127.0.0.1", sim.port, clientId=2, timeout=0.3)
    finally:
        client.disconnect()
        sim.resume()


async def test_refused_connections_then_accepted_again(sim: SimTWS, connect_ib) -> None:
    await sim.refuse_connections()
    client = IB()
    try:
        with pytest.raises(ConnectionRefusedError):
            await client.connectAsync("127.0.0.1", sim.port, clientId=2, timeout=1)
    finally:
        client.disconnect()
    await sim.accept_connections()
    assert (await connect_ib(client_id=2)).isConnected()


async def test_duplicate_client_id_gets_326_and_is_closed(sim: SimTWS, connect_ib) -> None:
    await connect_ib(client_id=17)
    second = IB()
    seen = record_errors(second)
    try:
        with pytest.raises(TimeoutError):  # ib_async does not fail fast on 326 (pitfall P6)
            await second.connectAsync("127.0.0.1", sim.port, clientId=17, timeout=0.3)
    finally:
        second.disconnect()
    assert (-1, 326) in seen
    assert sim.stats.connections_rejected == 1 and sim.connections() == [17]


async def test_connectivity_lost_then_restored_with_data_lost(sim: SimTWS, ib: IB) -> None:
    seen = record_errors(ib)
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ib.reqMktData(stock)
    await until(lambda: sim.stats.open_lines == 1)
    sim.connectivity_lost()
    await until(lambda: (-1, 1100) in seen)
    assert ib.isConnected()
    sim.restored(data_lost=True)
    await until(lambda: (-1, 1101) in seen)
    assert sim.stats.open_lines == 0  # the client must resubscribe


async def test_connectivity_restored_with_data_maintained_keeps_lines(sim: SimTWS, ib: IB) -> None:
    seen = record_errors(ib)
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(stock)
    await until(lambda: ticker.last > 0)
    sim.connectivity_lost()
    sim.restored(data_lost=False)
    await until(lambda: (-1, 1102) in seen)
    assert sim.stats.open_lines == 1
    before = ticker.last
    await sim.advance(600)
    await until(lambda: ticker.last != before)


async def test_injected_error_reaches_the_pending_request(sim: SimTWS, ib: IB) -> None:
    seen = record_errors(ib)
    sim.inject_error(2103, text="Market data farm connection is broken:usfarm")
    await until(lambda: (-1, 2103) in seen)


async def test_every_scenario_starts_and_accepts_a_client() -> None:
    assert set(scenario_names()) == set(SCENARIOS) and "after_hours" in SCENARIOS
    for name in scenario_names():
        async with SimTWS(scenario=name) as sim:
            client = IB()
            try:
                await client.connectAsync(
                    "127.0.0.1", sim.port, clientId=1, timeout=2, raiseSyncErrors=True
                )
                assert client.managedAccounts(), name
            finally:
                client.disconnect()


async def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown scenario"):
        SimTWS(scenario="nope")


async def test_reject_orders_scenario_still_answers_what_if() -> None:
    from ib_async import LimitOrder

    async with SimTWS(scenario="reject_orders") as sim:
        client = IB()
        client.RaiseRequestErrors = True
        try:
            await client.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=2)
            [stock] = await client.qualifyContractsAsync(Stock("F", "SMART", "USD"))
            state = await client.whatIfOrderAsync(stock, LimitOrder("BUY", 10, 11.0))
            assert state.commission == pytest.approx(1.0)
            trade = client.placeOrder(stock, LimitOrder("BUY", 10, 11.0))
            await until(lambda: trade.orderStatus.status == "Cancelled")
        finally:
            client.disconnect()


async def test_not_entitled_history_still_works_but_unknown_contract_is_200(ib: IB) -> None:
    with pytest.raises(RequestError) as caught:
        await ib.reqHistoricalDataAsync(
            Stock("ZZZZ", "SMART", "USD"), "", "1 M", "1 day", "TRADES", True
        )
    assert caught.value.code == 200


async def test_delayed_responses_of_one_request_kind(sim: SimTWS, ib: IB) -> None:
    sim.delay_responses("reqContractDetails", 0.3)
    pending = asyncio.ensure_future(ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))
    now = await ib.reqCurrentTimeAsync()  # other requests are not held up
    assert now is not None and not pending.done()
    [stock] = await asyncio.wait_for(pending, 2.0)
    assert stock.conId == 265598
    sim.delay_responses("reqContractDetails", None)
    await asyncio.wait_for(ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD")), 0.2)
