"""Dividends (generic tick 456), exerciseOptions and expiry-day settlement in the simulator,
through the real ib_async 2.1.0 client (strict decoding; notes/ib-behaviour.md §f)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from ib_async import IB, Contract, Option, Stock

from sumppump.tws_sim import SimTWS
from sumppump.tws_sim.clock import NEW_YORK
from sumppump.tws_sim.expiry import dividend_tick
from sumppump.tws_sim.scenarios import EXPIRY_DAY
from tests.tws_sim.test_sim_oca import error_codes, positions, wait_until

pytestmark = pytest.mark.anyio

EXPIRY = EXPIRY_DAY.strftime("%Y%m%d")


@pytest.fixture
async def expiry_sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=0, scenario="expiry_day") as simulator:
        yield simulator
    assert simulator.stats.protocol_errors == 0 and simulator.stats.internal_errors == 0


@pytest.fixture
async def eib(expiry_sim: SimTWS, connect_ib) -> IB:  # type: ignore[no-untyped-def]
    client = IB()
    client.RaiseRequestErrors = True
    connect_ib.clients.append(client)
    await client.connectAsync("127.0.0.1", expiry_sim.port, clientId=21, timeout=2)
    return client


def held(sim: SimTWS) -> dict[tuple[str, float], float]:
    """(right, strike) -> contracts of the scenario's AAPL options in the simulator's book."""
    acct = sim.broker.accounts["U1234567"]
    return {
        (p.instrument.right, p.instrument.strike): p.quantity  # type: ignore[union-attr]
        for p in acct.positions.values()
        if p.instrument.sec_type == "OPT" and p.quantity
    }


def cash(sim: SimTWS) -> float:
    return sim.broker.accounts["U1234567"].cash


def shares(sim: SimTWS) -> float:
    acct = sim.broker.accounts["U1234567"]
    und = sim.catalog.underlying("AAPL")
    assert und is not None
    return acct.positions[und.con_id].quantity


def strikes(sim: SimTWS) -> tuple[float, float, float]:
    """(long call strike, short call strike, long put strike) of the scenario."""
    book = held(sim)
    long_call = next(k for (r, k), q in book.items() if r == "C" and q > 0)
    short_call = next(k for (r, k), q in book.items() if r == "C" and q < 0)
    put = next(k for (r, k), q in book.items() if r == "P")
    return long_call, short_call, put


async def exercisable_call(ib: IB, strike: float) -> Contract:
    """The scenario's AAPL call at ``strike`` on a listing exchange (IB refuses SMART)."""
    [call] = await ib.qualifyContractsAsync(Option("AAPL", EXPIRY, strike, "C", "SMART"))
    call.exchange = "CBOE"
    return call


# --- dividends -----------------------------------------------------------------------------------


def test_dividend_tick_follows_ibs_format() -> None:
    # "past12,next12,nextDate,nextAmount", e.g. "0.83,0.92,20130219,0.23" (IB tick types).
    assert dividend_tick("AAPL", dt.date(2026, 11, 25)) == "1.04,1.04,20261207,0.26"
    assert dividend_tick("SPY", dt.date(2026, 11, 25)).endswith(",20261218,1.85")
    assert dividend_tick("NVDA", dt.date(2026, 11, 25)) == "0,0,,"


async def test_generic_tick_456_gives_ib_dividends(ib: IB) -> None:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(stock, "456")
    await wait_until(lambda: ticker.dividends is not None)
    div = ticker.dividends
    assert div is not None
    assert div.nextAmount == 0.26 and div.nextDate == dt.date(2026, 12, 7)
    assert div.past12Months == pytest.approx(1.04) and div.next12Months == pytest.approx(1.04)


# --- exerciseOptions ---------------------------------------------------------------------------


async def test_exercising_a_long_call_delivers_shares_and_debits_cash(
    expiry_sim: SimTWS, eib: IB
) -> None:
    sim = expiry_sim
    long_k, _short_k, _put_k = strikes(sim)
    call = await exercisable_call(eib, long_k)
    cash_before, shares_before = cash(sim), shares(sim)
    eib.exerciseOptions(call, 1, 1, "U1234567", 0)
    await wait_until(lambda: positions(eib).get(call.conId, (0.0, 0.0))[0] == 1.0)
    assert held(sim)[("C", long_k)] == 1.0
    assert shares(sim) == shares_before + 100
    assert cash(sim) == pytest.approx(cash_before - 100 * long_k)
    assert sim.exercise_requests == [("U1234567", call.conId, 1, 1)]


async def test_exercise_through_smart_or_beyond_the_position_is_refused(
    expiry_sim: SimTWS, eib: IB
) -> None:
    sim = expiry_sim
    long_k, _short_k, _put_k = strikes(sim)
    [call] = await eib.qualifyContractsAsync(Option("AAPL", EXPIRY, long_k, "C", "SMART"))
    codes = error_codes(eib)
    eib.exerciseOptions(call, 1, 1, "U1234567", 0)  # exchange SMART
    call.exchange = "CBOE"
    eib.exerciseOptions(call, 1, 5, "U1234567", 0)  # holds 2
    await wait_until(lambda: len(codes) == 2)
    assert [code for _req, code in codes] == [321, 321]
    assert held(sim)[("C", long_k)] == 2.0 and not sim.exercise_requests


async def test_exercise_after_the_cut_off_is_refused(expiry_sim: SimTWS, eib: IB) -> None:
    sim = expiry_sim
    long_k, _short_k, _put_k = strikes(sim)
    call = await exercisable_call(eib, long_k)
    sim.clock.set(dt.datetime.combine(EXPIRY_DAY, dt.time(17, 26), NEW_YORK))
    texts: list[str] = []
    eib.errorEvent += lambda req_id, code, text, contract: texts.append(text)
    eib.exerciseOptions(call, 1, 1, "U1234567", 0)
    await wait_until(lambda: bool(texts))
    assert "17:25" in texts[0]


# --- expiry settlement -------------------------------------------------------------------------


async def test_expiry_settles_itm_by_exercise_and_assignment_and_lets_otm_lapse(
    expiry_sim: SimTWS, eib: IB
) -> None:
    sim = expiry_sim
    long_k, short_k, put_k = strikes(sim)
    cash_before, shares_before = cash(sim), shares(sim)
    spot_close = sim.market.spot("AAPL", dt.datetime.combine(EXPIRY_DAY, dt.time(16), NEW_YORK))
    assert spot_close - long_k >= 0.01 and spot_close - short_k >= 0.01 and put_k < spot_close
    await sim.advance(4 * 3600)  # 18:00 New York: after the 17:30 settlement
    await wait_until(lambda: not [p for p in eib.positions() if p.contract.secType == "OPT"])
    assert held(sim) == {}
    # +2 calls exercised (buy 200 at long_k), -1 call assigned (sell 100 at short_k).
    assert shares(sim) == shares_before + 200 - 100
    assert cash(sim) == pytest.approx(cash_before - 200 * long_k + 100 * short_k)
    assert [p.position for p in eib.positions() if p.contract.symbol == "AAPL"] == [300.0]


async def test_a_lapse_instruction_keeps_an_itm_call_from_being_exercised(
    expiry_sim: SimTWS, eib: IB
) -> None:
    sim = expiry_sim
    long_k, short_k, _put_k = strikes(sim)
    call = await exercisable_call(eib, long_k)
    eib.exerciseOptions(call, 2, 2, "U1234567", 0)  # do not exercise either contract
    await wait_until(lambda: bool(sim.exercise_requests))
    assert held(sim)[("C", long_k)] == 2.0  # nothing moves before expiry
    shares_before, cash_before = shares(sim), cash(sim)
    await sim.advance(4 * 3600)
    await asyncio.sleep(0.05)
    assert held(sim) == {}
    assert shares(sim) == shares_before - 100  # only the assignment
    assert cash(sim) == pytest.approx(cash_before + 100 * short_k)
