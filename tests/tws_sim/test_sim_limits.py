"""IB's limits are enforced like TWS does and counted in ``sim.stats``."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB, Stock
from ib_async.wrapper import RequestError

from sumppump.tws_sim import SimTWS

pytestmark = pytest.mark.anyio


async def _connected(sim: SimTWS, client_id: int = 1) -> IB:
    client = IB()
    client.RaiseRequestErrors = True
    await client.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=2)
    return client


async def test_ordinary_session_has_zero_violations(sim: SimTWS, ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    await ib.reqTickersAsync(stock)
    await ib.reqHistoricalDataAsync(stock, "", "1 M", "1 day", "TRADES", True)
    assert sim.stats.total_violations == 0
    sim.stats.assert_clean()


async def test_more_than_50_messages_a_second_is_error_100_and_a_disconnect() -> None:
    async with SimTWS() as sim:
        client = await _connected(sim)
        try:
            codes: list[int] = []
            client.errorEvent += lambda req_id, code, text, contract: codes.append(code)
            client.client.MaxRequests = 0  # switch off ib_async's own 45/s throttle
            for _ in range(60):
                client.client.reqCurrentTime()
            for _ in range(100):
                if not client.isConnected():
                    break
                await asyncio.sleep(0.01)
            assert codes == [100]
            assert not client.isConnected()
            assert sim.stats.messages_rate_violations == 1
            assert sim.stats.forced_disconnects == 1
            with pytest.raises(AssertionError, match="messages_rate"):
                sim.stats.assert_clean()
        finally:
            client.disconnect()


async def test_ib_async_throttle_keeps_a_burst_under_the_limit(sim: SimTWS, ib: IB) -> None:
    for _ in range(60):
        ib.client.reqCurrentTime()  # queued by ib_async beyond 45 per second
    for _ in range(200):
        if sim.stats.requests_by_type["reqCurrentTime"] == 60:
            break
        await asyncio.sleep(0.01)
    assert sim.stats.requests_by_type["reqCurrentTime"] == 60
    assert sim.stats.messages_rate_violations == 0 and ib.isConnected()


async def test_more_than_the_line_limit_is_error_101() -> None:
    async with SimTWS(max_lines=3) as sim:
        client = await _connected(sim)
        try:
            codes: list[tuple[int, int]] = []
            client.errorEvent += lambda req_id, code, text, contract: codes.append((req_id, code))
            stocks = await client.qualifyContractsAsync(
                *(Stock(s, "SMART", "USD") for s in ("AAPL", "MSFT", "NVDA", "AMZN"))
            )
            tickers = [client.reqMktData(s) for s in stocks]
            await asyncio.sleep(0.05)
            assert [c for _r, c in codes] == [101]
            assert sim.stats.lines_violations == 1 and sim.stats.open_lines == 3
            client.cancelMktData(stocks[0])
            await asyncio.sleep(0.05)
            assert sim.stats.open_lines == 2
            client.reqMktData(stocks[0])
            await asyncio.sleep(0.05)
            assert sim.stats.open_lines == 3 and sim.stats.max_open_lines == 3
            assert tickers[1].bid > 0
        finally:
            client.disconnect()


async def test_snapshots_do_not_hold_lines() -> None:
    async with SimTWS(max_lines=1) as sim:
        client = await _connected(sim)
        try:
            stocks = await client.qualifyContractsAsync(
                *(Stock(s, "SMART", "USD") for s in ("AAPL", "MSFT", "NVDA"))
            )
            tickers = await client.reqTickersAsync(*stocks)
            assert all(t.bid > 0 for t in tickers)
            assert sim.stats.lines_violations == 0 and sim.stats.open_lines == 0
        finally:
            client.disconnect()


async def test_identical_historical_request_within_15_seconds_is_error_162(
    sim: SimTWS, ib: IB
) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    await ib.reqHistoricalDataAsync(stock, "", "1 M", "1 day", "TRADES", True)
    with pytest.raises(RequestError) as caught:
        await ib.reqHistoricalDataAsync(stock, "", "1 M", "1 day", "TRADES", True)
    assert caught.value.code == 162 and "pacing violation" in caught.value.message
    assert sim.stats.pacing_violations == 1
    await sim.advance(15)
    bars = await ib.reqHistoricalDataAsync(stock, "", "1 M", "1 day", "TRADES", True)
    assert bars and sim.stats.pacing_violations == 1


async def test_seventh_request_for_one_contract_within_two_seconds_is_162(
    sim: SimTWS, ib: IB
) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
    for days in range(1, 7):
        await ib.reqHistoricalDataAsync(stock, "", f"{days} D", "1 day", "TRADES", True)
    with pytest.raises(RequestError):
        await ib.reqHistoricalDataAsync(stock, "", "7 D", "1 day", "TRADES", True)
    await sim.advance(2)
    await ib.reqHistoricalDataAsync(stock, "", "7 D", "1 day", "TRADES", True)
    assert sim.stats.pacing_violations == 1


async def test_more_than_sixty_requests_in_ten_minutes_is_162(sim: SimTWS, ib: IB) -> None:
    symbols = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "JPM", "F", "SPY")
    stocks = await ib.qualifyContractsAsync(*(Stock(s, "SMART", "USD") for s in symbols))
    sent = 0
    while sent < 60:
        for stock in stocks[: min(6, 60 - sent)]:
            await ib.reqHistoricalDataAsync(stock, "", f"{sent + 1} D", "1 day", "TRADES", True)
            sent += 1
        await sim.advance(2)
    assert sim.stats.pacing_violations == 0
    with pytest.raises(RequestError):
        await ib.reqHistoricalDataAsync(stocks[7], "", "2 W", "1 day", "TRADES", True)
    assert sim.stats.pacing_violations == 1
    await sim.advance(600)
    await ib.reqHistoricalDataAsync(stocks[7], "", "2 W", "1 day", "TRADES", True)


def test_rate_limiter_tolerates_arrival_skew_but_not_a_sustained_excess() -> None:
    from sumppump.tws_sim.limits import MessageRateLimiter

    skewed = MessageRateLimiter(50)
    # 45 sent at t=0 but read late (t=0.15), then 45 more sent and read at t=1.0.
    assert not any(skewed.record(0.15) for _ in range(45))
    assert not any(skewed.record(1.0) for _ in range(45))
    sustained = MessageRateLimiter(50)
    verdicts = [sustained.record(i / 100) for i in range(150)]  # 100 per second
    assert not any(verdicts[:90]) and sum(verdicts[100:]) >= 20
