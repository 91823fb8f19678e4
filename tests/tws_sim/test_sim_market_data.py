"""Contract details, option chains and market data through the real ib_async client."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math

import pytest
from ib_async import IB, Contract, Option, Stock
from ib_async.wrapper import RequestError
from vollib.black_scholes.greeks.analytical import delta as vl_delta
from vollib.black_scholes.greeks.analytical import theta as vl_theta
from vollib.black_scholes.greeks.analytical import vega as vl_vega

from sumppump.tws_sim import SimTWS

pytestmark = pytest.mark.anyio


async def _first_expiry_at_least(ib: IB, symbol: str, days: int) -> tuple[Contract, str]:
    [stock] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
    [chain] = [
        c
        for c in await ib.reqSecDefOptParamsAsync(symbol, "", "STK", stock.conId)
        if c.exchange == "SMART"
    ]
    today = dt.date(2026, 11, 25)
    expiry = next(
        e
        for e in chain.expirations
        if (dt.datetime.strptime(e, "%Y%m%d").date() - today).days >= days
    )
    return stock, expiry


async def test_qualify_stock_and_etf(ib: IB) -> None:
    aapl, spy = await ib.qualifyContractsAsync(
        Stock("AAPL", "SMART", "USD"), Stock("SPY", "SMART", "USD")
    )
    assert (aapl.conId, aapl.primaryExchange) == (265598, "NASDAQ")
    assert (spy.conId, spy.primaryExchange) == (756733, "ARCA")
    [details] = await ib.reqContractDetailsAsync(Stock("SPY", "SMART", "USD"))
    assert details.stockType == "ETF"
    assert details.tradingHours.startswith("20261125:0400-20261125:2000")
    assert details.liquidHours.startswith("20261125:0930-20261125:1600")


async def test_unknown_symbol_is_error_200(ib: IB) -> None:
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: errors.append(code)
    with pytest.raises(RequestError) as caught:
        await ib.reqContractDetailsAsync(Stock("ZZZZ", "SMART", "USD"))
    assert caught.value.code == 200 and errors == [200]


async def test_sec_def_lists_weeklies_monthlies_and_spaced_strikes(ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    chains = await ib.reqSecDefOptParamsAsync("AAPL", "", "STK", stock.conId)
    smart = next(c for c in chains if c.exchange == "SMART")
    dates = [dt.datetime.strptime(e, "%Y%m%d").date() for e in smart.expirations]
    assert all(d.weekday() == 4 for d in dates)
    assert len([d for d in dates if (d - dt.date(2026, 11, 25)).days <= 42]) == 6  # weeklies
    assert len([d for d in dates if 15 <= d.day <= 21]) >= 6  # monthlies (third Fridays)
    strikes = sorted(smart.strikes)
    steps = {round(b - a, 2) for a, b in itertools.pairwise(strikes)}
    assert steps == {5.0, 10.0} and smart.multiplier == "100"


async def test_monthly_only_underlying_has_no_weeklies(ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("JPM", "SMART", "USD"))
    [smart] = [
        c
        for c in await ib.reqSecDefOptParamsAsync("JPM", "", "STK", stock.conId)
        if c.exchange == "SMART"
    ]
    assert all(15 <= int(e[6:]) <= 21 for e in smart.expirations)


async def test_whole_expiry_from_one_contract_details_request(sim: SimTWS, ib: IB) -> None:
    _stock, expiry = await _first_expiry_at_least(ib, "AAPL", 7)
    details = await ib.reqContractDetailsAsync(Option("AAPL", expiry, exchange="SMART"))
    contracts = [d.contract for d in details]
    strikes = sorted({c.strike for c in contracts})
    assert len(contracts) == 2 * len(strikes) > 40
    assert {c.right for c in contracts} == {"C", "P"}
    assert len({c.conId for c in contracts}) == len(contracts)
    assert all(c.localSymbol.startswith("AAPL  ") and c.multiplier == "100" for c in contracts)
    assert sim.stats.requests_by_type["reqContractDetails"] == 2  # qualify + the whole expiry


async def test_option_conids_are_stable_across_simulators(ib: IB) -> None:
    _stock, expiry = await _first_expiry_at_least(ib, "MSFT", 7)
    [first] = await ib.qualifyContractsAsync(Option("MSFT", expiry, 420, "C", "SMART"))
    async with SimTWS(seed=0) as other:
        client = IB()
        try:
            await client.connectAsync("127.0.0.1", other.port, clientId=5, timeout=2)
            [again] = await client.qualifyContractsAsync(Option("MSFT", expiry, 420, "C", "SMART"))
        finally:
            client.disconnect()
    assert first.conId == again.conId


async def test_stock_snapshot_has_a_consistent_quote(ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    [ticker] = await ib.reqTickersAsync(stock)
    assert 0 < ticker.bid < ticker.ask and ticker.ask - ticker.bid < 0.1
    assert ticker.bid <= ticker.last <= ticker.ask
    assert ticker.low <= ticker.last <= ticker.high and ticker.close > 0
    assert ticker.marketDataType == 1 and ticker.volume > 0


async def test_option_snapshot_greeks_are_in_ib_units(ib: IB) -> None:
    stock, expiry = await _first_expiry_at_least(ib, "AAPL", 14)
    [st] = await ib.reqTickersAsync(stock)
    strike = min(
        (await ib.reqSecDefOptParamsAsync("AAPL", "", "STK", stock.conId))[0].strikes,
        key=lambda k: abs(k - st.last),
    )
    [call] = await ib.qualifyContractsAsync(Option("AAPL", expiry, strike, "C", "SMART"))
    [t] = await ib.reqTickersAsync(call)
    g = t.modelGreeks
    assert g is not None and t.bidGreeks is not None and t.askGreeks is not None
    assert 0 < t.bid < g.optPrice < t.ask
    assert 0.3 < g.delta < 0.7 and 0.05 < g.impliedVol < 1.0
    # Independent oracle: vollib gives vega per vol point and theta per calendar day, like IB.
    years = (
        dt.datetime(int(expiry[:4]), int(expiry[4:6]), int(expiry[6:]), 21, 0, tzinfo=dt.UTC)
        - dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
    ).total_seconds() / (365 * 86400)
    args = ("c", g.undPrice, strike, years, 0.04, g.impliedVol)
    assert g.delta == pytest.approx(vl_delta(*args), abs=1e-3)
    assert g.vega == pytest.approx(vl_vega(*args), rel=1e-3)
    assert g.theta == pytest.approx(vl_theta(*args), rel=1e-3)


async def test_smile_and_spread_widen_away_from_the_money(ib: IB) -> None:
    stock, expiry = await _first_expiry_at_least(ib, "AAPL", 14)
    details = await ib.reqContractDetailsAsync(Option("AAPL", expiry, right="P", exchange="SMART"))
    [st] = await ib.reqTickersAsync(stock)
    puts = sorted((d.contract for d in details), key=lambda c: c.strike)
    atm = min(puts, key=lambda c: abs(c.strike - st.last))
    otm = puts[0]
    t_atm, t_otm = await ib.reqTickersAsync(atm, otm)
    assert t_otm.modelGreeks.impliedVol > t_atm.modelGreeks.impliedVol  # put skew
    rel_spread = lambda t: (t.ask - t.bid) / max(t.ask, 0.01)  # noqa: E731
    assert rel_spread(t_otm) > rel_spread(t_atm)


async def test_generic_ticks_volume_oi_hist_and_implied_vol(ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("NVDA", "SMART", "USD"))
    ticker = ib.reqMktData(stock, "100,101,104,106")
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not math.isnan(ticker.impliedVolatility):
            break
    assert ticker.callVolume > 0 and ticker.putVolume > 0
    assert ticker.callOpenInterest > 0 and ticker.putOpenInterest > 0
    assert 0.1 < ticker.histVolatility < 1.5 and 0.1 < ticker.impliedVolatility < 1.5
    ib.cancelMktData(stock)


async def test_streaming_quotes_move_with_the_simulated_clock(sim: SimTWS, ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("TSLA", "SMART", "USD"))
    ticker = ib.reqMktData(stock)
    await asyncio.sleep(0.05)
    first = ticker.last
    assert sim.stats.open_lines == 1
    await sim.advance(1800)
    await asyncio.sleep(0.05)
    assert ticker.last != first
    ib.cancelMktData(stock)
    await asyncio.sleep(0.05)
    assert sim.stats.open_lines == 0


async def test_delayed_only_entitlement(sim: SimTWS, ib: IB) -> None:
    sim.entitlement(live=False, delayed=True)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    [stock] = await ib.qualifyContractsAsync(Stock("AMZN", "SMART", "USD"))
    live = ib.reqMktData(stock)
    await asyncio.sleep(0.05)
    assert codes == [354] and math.isnan(live.bid)
    ib.cancelMktData(stock)
    ib.reqMarketDataType(3)
    [ticker] = await ib.reqTickersAsync(stock)
    assert 10167 in codes
    assert ticker.marketDataType == 3 and ticker.bid > 0 and ticker.ask > ticker.bid


async def test_delayed_option_greeks_arrive_on_delayed_tick_types(sim: SimTWS, ib: IB) -> None:
    sim.entitlement(live=False, delayed=True)
    ib.reqMarketDataType(3)
    _stock, expiry = await _first_expiry_at_least(ib, "SPY", 7)
    [opt] = await ib.qualifyContractsAsync(Option("SPY", expiry, 590, "P", "SMART"))
    [t] = await ib.reqTickersAsync(opt)
    assert t.marketDataType == 3 and t.modelGreeks is not None and t.bid > 0


async def test_no_entitlement_at_all_is_10168(sim: SimTWS, ib: IB) -> None:
    sim.entitlement(live=False, delayed=False)
    ib.reqMarketDataType(3)
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    [stock] = await ib.qualifyContractsAsync(Stock("F", "SMART", "USD"))
    with pytest.raises(RequestError):
        await ib.reqTickersAsync(stock)
    assert codes == [10168]


async def test_combo_quote_is_the_net_of_its_legs(ib: IB) -> None:
    _stock, expiry = await _first_expiry_at_least(ib, "AAPL", 14)
    long_leg, short_leg = await ib.qualifyContractsAsync(
        Option("AAPL", expiry, 220, "C", "SMART"), Option("AAPL", expiry, 230, "C", "SMART")
    )
    t_long, t_short = await ib.reqTickersAsync(long_leg, short_leg)
    from ib_async import ComboLeg

    bag = Contract(
        symbol="AAPL",
        secType="BAG",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=long_leg.conId, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=short_leg.conId, ratio=1, action="SELL", exchange="SMART"),
        ],
    )
    [t] = await ib.reqTickersAsync(bag)
    assert t.ask == pytest.approx(t_long.ask - t_short.bid, abs=0.011)
    assert t.bid == pytest.approx(t_long.bid - t_short.ask, abs=0.011)


async def test_option_calculators(ib: IB) -> None:
    _stock, expiry = await _first_expiry_at_least(ib, "AAPL", 30)
    [opt] = await ib.qualifyContractsAsync(Option("AAPL", expiry, 230, "C", "SMART"))
    priced = await ib.calculateOptionPriceAsync(opt, 0.3, 225.0)
    assert priced is not None and priced.optPrice > 0
    implied = await ib.calculateImpliedVolatilityAsync(opt, priced.optPrice, 225.0)
    assert implied is not None and implied.impliedVol == pytest.approx(0.3, abs=1e-4)


async def test_market_rules_give_the_option_price_increments(ib: IB) -> None:
    [details] = await ib.reqContractDetailsAsync(Option("AAPL", "20261218", 225, "C", "SMART"))
    rule_id = int(details.marketRuleIds.split(",")[0])
    increments = await ib.reqMarketRuleAsync(rule_id)
    assert [(i.lowEdge, i.increment) for i in increments] == [(0.0, 0.01), (3.0, 0.05)]
    [t] = await ib.reqTickersAsync(details.contract)
    for price in (t.bid, t.ask):
        tick = 0.05 if price >= 3 else 0.01
        assert abs(round(price / tick) * tick - price) < 1e-9


async def test_matching_symbols(ib: IB) -> None:
    found = await ib.reqMatchingSymbolsAsync("AA")
    assert found is not None
    assert [(d.contract.symbol, d.derivativeSecTypes) for d in found] == [("AAPL", ["OPT"])]
    assert found[0].contract.description == "APPLE INC"


async def test_delayed_data_is_the_market_fifteen_minutes_earlier(sim: SimTWS, ib: IB) -> None:
    from sumppump.tws_sim import DEFAULT_START, SimClock

    [stock] = await ib.qualifyContractsAsync(Stock("NVDA", "SMART", "USD"))
    [live] = await ib.reqTickersAsync(stock)
    later = SimClock(DEFAULT_START + dt.timedelta(minutes=15))
    async with SimTWS(seed=0, clock=later) as delayed_sim:
        delayed_sim.entitlement(live=False, delayed=True)
        client = IB()
        try:
            await client.connectAsync("127.0.0.1", delayed_sim.port, clientId=9, timeout=2)
            client.reqMarketDataType(3)
            [delayed] = await client.reqTickersAsync(stock)
            # The market has moved in those 15 minutes, so the comparison below means something.
            assert delayed_sim.market.stock_quote("NVDA").last != live.last
        finally:
            client.disconnect()
    assert delayed.marketDataType == 3
    assert (delayed.bid, delayed.ask, delayed.last) == (live.bid, live.ask, live.last)
