"""IB's market-data errors through the connection actor, driven by the simulator's scenarios
(notes/ib-behaviour.md §g): no subscription (354 / 10089 / 10168) is NoMarketData naming the
subscription to add; a competing live session (10197) is its own reply; the advisories 10090 /
10091 / 10167 never fail a fetch; delayed data is labelled on every quote."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from sumppump.actors.market_data import subscription_hint
from sumppump.messages.common import NoMarketData
from sumppump.messages.connection import (
    ConnectionUp,
    FetchQuotes,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.errors import ErrorCode
from sumppump.tools.common import Failure, raise_for_outcome
from sumppump.tws_sim import SimTWS
from sumppump.tws_sim.scenarios import apply_scenario
from tests.support.ib_harness import connection_harness, no_decoder_errors

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async needs asyncio


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=7) as sim:
        yield sim


async def fetch_aapl(sim: SimTWS, *, snapshot: bool = False) -> Quotes | NoMarketData:
    with no_decoder_errors(), anyio.fail_after(20):
        async with connection_harness(sim.port) as h:
            await h.wait_for(lambda e: isinstance(e, ConnectionUp))
            stock = await h.connection.call(ResolveStock(symbol="AAPL"), timeout=5)
            assert isinstance(stock, StockResolved)
            target = QuoteTarget(con_id=stock.contract.con_id, symbol="AAPL", sec_type="STK")
            reply = await h.connection.call(
                FetchQuotes(targets=(target,), settle=1.0, snapshot=snapshot), timeout=8
            )
    assert isinstance(reply, Quotes | NoMarketData), reply
    return reply


async def test_no_data_at_all_is_no_market_data_naming_the_subscription(sim: SimTWS) -> None:
    apply_scenario(sim, "no_market_data")  # 354 for live, 10168 for delayed
    reply = await fetch_aapl(sim)
    assert isinstance(reply, NoMarketData) and reply.code in (354, 10168), reply
    assert "US Securities Snapshot and Futures Value Bundle" in reply.subscribe_hint
    assert "Market Data Subscriptions" in reply.subscribe_hint


async def test_a_missing_api_subscription_falls_back_to_delayed_data_labelled_so(
    sim: SimTWS,
) -> None:
    # With reqMarketDataType(3) TWS sends delayed data where live is not available to the API
    # (IB's delayed_data.html; the simulator's 10089 scenario answers type 3 with 10167).
    apply_scenario(sim, "api_subscription_missing")
    reply = await fetch_aapl(sim)
    assert isinstance(reply, Quotes) and reply.quotes, reply
    assert reply.data_type == "delayed" and all(q.data_type == "delayed" for q in reply.quotes)
    assert any(n.startswith("10167:") for n in reply.notices)


async def test_a_competing_live_session_is_its_own_reply(sim: SimTWS) -> None:
    apply_scenario(sim, "competing_session")
    reply = await fetch_aapl(sim)
    assert isinstance(reply, NoMarketData), reply
    assert reply.code == 10197 and "competing live session" in reply.message
    assert "Log out there" in reply.subscribe_hint and "Subscribe" not in reply.subscribe_hint


@pytest.mark.parametrize("snapshot", [False, True], ids=["stream", "snapshot"])
@pytest.mark.parametrize(
    ("scenario", "code"), [("partial_subscription", 10090), ("partial_api_subscription", 10091)]
)
async def test_advisories_never_fail_a_fetch(
    sim: SimTWS, scenario: str, code: int, snapshot: bool
) -> None:
    # ib_async ends a reqTickersAsync snapshot on any non-warning code, 10090/10091 included
    # (notes/ib-behaviour.md §g); our snapshots must keep the data that follows.
    apply_scenario(sim, scenario)
    reply = await fetch_aapl(sim, snapshot=snapshot)
    assert isinstance(reply, Quotes) and reply.quotes and not reply.missing, reply
    assert reply.quotes[0].bid is not None and reply.data_type == "live"
    assert any(n.startswith(f"{code}:") for n in reply.notices), reply.notices


def test_the_subscription_hint_names_opra_for_options_and_the_api_for_10089() -> None:
    assert "OPRA" in subscription_hint(354, "OPT")
    assert "API subscription" in subscription_hint(10089, "STK")
    assert "delayed data is not enabled" in subscription_hint(10168, "STK")
    assert "not enabled" not in subscription_hint(354, "STK")


async def test_tools_answer_no_market_data_with_the_hint_and_the_competing_session_in_words(
    sim: SimTWS,
) -> None:
    apply_scenario(sim, "competing_session")
    competing = await fetch_aapl(sim)
    missing = NoMarketData(
        code=354,
        message="Requested market data is not subscribed.",
        subscribe_hint=subscription_hint(354, "OPT"),
    )
    errors = []
    for reply in (competing, missing):
        with pytest.raises(Failure) as caught:
            raise_for_outcome(reply)
        errors.append(caught.value.error)
    assert all(e.code == ErrorCode.NO_MARKET_DATA for e in errors)
    assert errors[0].message.startswith("no market data: another live session of your IB user")
    assert "Log out there" in errors[0].hint
    assert errors[1].message == "no market data (354): Requested market data is not subscribed."
    assert "OPRA" in errors[1].hint
