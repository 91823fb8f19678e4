"""The connection actor against the simulated TWS, driven by the real ib_async client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from ib_async import IB

from sumppump.messages.common import NoSuchContract, NotConnected, OptionContract
from sumppump.messages.connection import (
    AccountSnapshot,
    Bars,
    ConnectionDown,
    ConnectionState,
    ConnectionUp,
    FetchAccount,
    FetchHeadlines,
    FetchHistory,
    FetchOptionContracts,
    FetchOptionParams,
    FetchPositions,
    FetchQuotes,
    GetConnectionState,
    Headlines,
    OptionContracts,
    OptionParams,
    Positions,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.rate_limiter import PacingDelayed
from sumppump.tws_sim import SimTWS
from tests.support.ib_harness import BrokerHarness, connection_harness, no_decoder_errors

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async needs asyncio


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=7) as sim:
        yield sim


async def connected(h: BrokerHarness, epoch: int = 1) -> ConnectionState:
    await h.wait_for(lambda e: isinstance(e, ConnectionUp) and e.epoch == epoch)
    state = await h.connection.call(GetConnectionState(), timeout=2)
    assert isinstance(state, ConnectionState)
    return state


async def test_connects_publishes_connection_up_and_reports_its_state(sim: SimTWS) -> None:
    with no_decoder_errors(), anyio.fail_after(10):
        async with connection_harness(sim.port) as h:
            state = await connected(h)
    assert state.state == "connected"
    assert state.epoch == 1
    assert state.accounts == ("U1234567",)
    assert state.server_version == 178
    assert state.client_id == 17
    assert sim.stats.total_violations == 0


async def test_resolves_a_stock_and_refuses_an_unknown_symbol(sim: SimTWS) -> None:
    with no_decoder_errors(), anyio.fail_after(10):
        async with connection_harness(sim.port) as h:
            await connected(h)
            known = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=5)
            unknown = await h.connection.call(ResolveStock(symbol="ZZZZ"), timeout=5)
    assert isinstance(known, StockResolved)
    assert known.contract.symbol == "AAPL"
    assert known.contract.con_id > 0
    assert known.contract.trading_hours
    assert isinstance(unknown, NoSuchContract)


async def test_a_whole_expiry_comes_from_one_contract_details_request(sim: SimTWS) -> None:
    with no_decoder_errors(), anyio.fail_after(10):
        async with connection_harness(sim.port) as h:
            await connected(h)
            stock = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=5)
            assert isinstance(stock, StockResolved)
            params = await h.connection.call(
                FetchOptionParams(symbol="AAPL", underlying_con_id=stock.contract.con_id)
            )
            assert isinstance(params, OptionParams)
            smart = next(s for s in params.sets if s.exchange == "SMART")
            expiry = smart.expirations[2]
            before = len(sim.requests_named("reqContractDetails"))
            contracts = await h.connection.call(
                FetchOptionContracts(
                    symbol="AAPL", expiry=expiry, trading_class=smart.trading_class
                ),
                timeout=5,
            )
            after = len(sim.requests_named("reqContractDetails"))
    assert isinstance(contracts, OptionContracts)
    assert after - before == 1
    assert len(contracts.contracts) >= 20
    assert {c.expiry for c in contracts.contracts} == {expiry}
    assert {c.right for c in contracts.contracts} == {"C", "P"}
    assert all(c.multiplier == 100 for c in contracts.contracts)
    assert list(smart.expirations) == sorted(smart.expirations)


async def option_targets(h: BrokerHarness, count: int) -> list[OptionContract]:
    stock = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=5)
    assert isinstance(stock, StockResolved)
    params = await h.connection.call(
        FetchOptionParams(symbol="AAPL", underlying_con_id=stock.contract.con_id), timeout=5
    )
    assert isinstance(params, OptionParams)
    smart = next(s for s in params.sets if s.exchange == "SMART")
    contracts = await h.connection.call(
        FetchOptionContracts(
            symbol="AAPL", expiry=smart.expirations[1], trading_class=smart.trading_class
        ),
        timeout=5,
    )
    assert isinstance(contracts, OptionContracts)
    middle = len(contracts.contracts) // 2
    return list(contracts.contracts[middle - count // 2 : middle + count - count // 2])


async def test_quotes_carry_model_greeks_and_every_line_is_released(sim: SimTWS) -> None:
    with no_decoder_errors(), anyio.fail_after(20):
        async with connection_harness(sim.port) as h:
            await connected(h)
            options = await option_targets(h, 12)
            targets = tuple(
                QuoteTarget(con_id=c.con_id, symbol=c.symbol, sec_type="OPT") for c in options
            )
            reply = await h.connection.call(
                FetchQuotes(targets=targets, generic_ticks="100,101,106"), timeout=10
            )
    assert isinstance(reply, Quotes)
    assert reply.missing == ()
    assert len(reply.quotes) == 12
    for quote in reply.quotes:
        assert quote.bid is not None and quote.ask is not None and quote.bid <= quote.ask
        assert quote.greeks is not None and quote.greeks.source == "ib_model"
        assert quote.greeks.delta is not None and -1 <= quote.greeks.delta <= 1
    assert sim.stats.open_lines == 0
    assert sim.stats.total_violations == 0


async def test_more_quotes_than_lines_are_fetched_in_batches_within_the_budget(
    sim: SimTWS,
) -> None:
    with no_decoder_errors(), anyio.fail_after(30):
        async with connection_harness(sim.port, market_data_lines=10) as h:
            await connected(h)
            options = await option_targets(h, 24)
            targets = tuple(
                QuoteTarget(con_id=c.con_id, symbol=c.symbol, sec_type="OPT") for c in options
            )
            reply = await h.connection.call(FetchQuotes(targets=targets), timeout=20)
    assert isinstance(reply, Quotes)
    assert len(reply.quotes) == 24
    assert sim.stats.max_open_lines <= 10
    assert sim.stats.open_lines == 0


async def test_history_news_account_and_positions(sim: SimTWS) -> None:
    with no_decoder_errors(), anyio.fail_after(15):
        async with connection_harness(sim.port) as h:
            await connected(h)
            stock = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=5)
            assert isinstance(stock, StockResolved)
            con_id = stock.contract.con_id
            bars = await h.connection.call(FetchHistory(con_id=con_id, symbol="AAPL"), timeout=5)
            again = await h.connection.call(FetchHistory(con_id=con_id, symbol="AAPL"), timeout=5)
            news = await h.connection.call(FetchHeadlines(con_id=con_id, limit=3), timeout=5)
            account = await h.connection.call(FetchAccount(), timeout=5)
            positions = await h.connection.call(FetchPositions(), timeout=5)
    assert isinstance(bars, Bars)
    assert 15 <= len(bars.bars) <= 23
    assert all(b.low <= b.close <= b.high for b in bars.bars)
    assert isinstance(again, PacingDelayed)  # identical request within 15 s: never sent
    assert again.limit == "historical_identical"
    assert isinstance(news, Headlines)
    assert news.providers and 1 <= len(news.headlines) <= 3
    assert isinstance(account, AccountSnapshot)
    assert account.account_id == "U1234567"
    assert account.net_liquidation and account.net_liquidation > 0
    assert isinstance(positions, Positions)
    assert any(p.symbol and p.quantity > 0 for p in positions.positions)
    assert sim.stats.pacing_violations == 0


async def test_socket_drop_reconnects_with_a_new_epoch_without_restarting_the_actor(
    sim: SimTWS,
) -> None:
    with no_decoder_errors(), anyio.fail_after(15):
        async with connection_harness(sim.port) as h:
            await connected(h)
            sim.drop_connections()
            await h.wait_for(lambda e: isinstance(e, ConnectionDown) and e.epoch == 1)
            state = await connected(h, epoch=2)
            stock = await h.connection.call(ResolveStock(symbol="MSFT"), timeout=5)
    assert state.state == "connected"
    assert h.connection.generation == 1
    assert isinstance(stock, StockResolved)


async def test_1100_degrades_1102_resumes_and_1101_asks_to_resubscribe(sim: SimTWS) -> None:
    with no_decoder_errors(), anyio.fail_after(15):
        async with connection_harness(sim.port) as h:
            await connected(h)
            sim.connectivity_lost()
            with anyio.fail_after(2):
                while True:
                    state = await h.connection.call(GetConnectionState(), timeout=2)
                    assert isinstance(state, ConnectionState)
                    if state.state == "degraded":
                        break
                    await anyio.sleep(0.01)
            refused = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=2)
            assert isinstance(refused, NotConnected)
            assert "1100" in refused.reason
            sim.restored(data_lost=False)
            await anyio.sleep(0.2)
            state = await h.connection.call(GetConnectionState(), timeout=2)
            assert isinstance(state, ConnectionState)
            assert (state.state, state.epoch) == ("connected", 1)
            assert not any(isinstance(e, ConnectionUp) and e.resubscribe for e in h.events)
            sim.connectivity_lost()
            sim.restored(data_lost=True)
            up = await h.wait_for(lambda e: isinstance(e, ConnectionUp) and e.resubscribe)
    assert isinstance(up, ConnectionUp)
    assert up.epoch == 2


async def test_client_id_clash_is_reported_within_one_second(sim: SimTWS) -> None:
    squatter = IB()
    await squatter.connectAsync("127.0.0.1", sim.port, clientId=17, timeout=5)
    try:
        with anyio.fail_after(10):
            async with connection_harness(sim.port) as h:
                started = anyio.current_time()
                while True:
                    state = await h.connection.call(GetConnectionState(), timeout=2)
                    assert isinstance(state, ConnectionState)
                    if "326" in state.last_error:
                        break
                    await anyio.sleep(0.01)
                assert anyio.current_time() - started < 1.0
                squatter.disconnect()
                state = await connected(h)
    finally:
        squatter.disconnect()
    assert state.client_id == 17


async def test_client_id_clash_rotates_to_a_spare_id(sim: SimTWS) -> None:
    squatter = IB()
    await squatter.connectAsync("127.0.0.1", sim.port, clientId=17, timeout=5)
    try:
        with anyio.fail_after(10):
            async with connection_harness(sim.port, spare_client_ids=(18,)) as h:
                state = await connected(h)
    finally:
        squatter.disconnect()
    assert state.client_id == 18


async def test_tws_down_at_boot_then_up_connects_and_requests_said_not_connected(
    sim: SimTWS,
) -> None:
    await sim.refuse_connections()
    with no_decoder_errors(), anyio.fail_after(15):
        async with connection_harness(sim.port) as h:
            await anyio.sleep(0.3)
            refused = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=2)
            state = await h.connection.call(GetConnectionState(), timeout=2)
            await sim.accept_connections()
            await connected(h)
    assert isinstance(refused, NotConnected)
    assert isinstance(state, ConnectionState)
    assert state.state in ("backoff", "connecting")
    assert state.attempt >= 1


async def test_a_stalled_socket_is_detected_by_the_probe_and_reconnected(sim: SimTWS) -> None:
    with anyio.fail_after(15):
        async with connection_harness(sim.port, probe_interval=0.2, probe_timeout=0.3) as h:
            await connected(h)
            sim.stall()
            down = await h.wait_for(lambda e: isinstance(e, ConnectionDown))
            sim.resume()
            await connected(h, epoch=2)
    assert isinstance(down, ConnectionDown)
    assert "probe" in down.reason


async def test_delayed_only_data_is_labelled_delayed_in_quotes_and_in_the_state(
    sim: SimTWS,
) -> None:
    sim.entitlement(live=False, delayed=True)
    with no_decoder_errors(), anyio.fail_after(15):
        async with connection_harness(sim.port) as h:
            await connected(h)
            stock = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=5)
            assert isinstance(stock, StockResolved)
            target = QuoteTarget(con_id=stock.contract.con_id, symbol="AAPL", sec_type="STK")
            reply = await h.connection.call(FetchQuotes(targets=(target,)), timeout=5)
            state = await h.connection.call(GetConnectionState(), timeout=2)
    assert isinstance(reply, Quotes)
    assert reply.data_type == "delayed"
    assert all(q.data_type == "delayed" for q in reply.quotes)
    assert isinstance(state, ConnectionState)
    assert state.data_type == "delayed"
