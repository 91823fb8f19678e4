"""Issue 21 against the simulated TWS: parallel mixed-symbol reads, shared in-flight requests,
queued historical pacing, chains at the message floor (never partial), per-batch progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from sumppump import progress
from sumppump.actors.chain_cache import STREAM_WINDOW_MAX
from sumppump.messages.base import Reply
from sumppump.messages.chain_cache import (
    Chain,
    GetChain,
    GetHistory,
    GetLegQuotes,
    GetMarketStats,
    GetQuote,
    GetSession,
    History,
    LegQuotes,
    MarketStats,
    QuoteReply,
    SessionInfo,
)
from sumppump.messages.connection import Bars, FetchHistory, ResolveStock, StockResolved
from sumppump.messages.rate_limiter import PacingDelayed
from sumppump.tws_sim import SimTWS
from sumppump.tws_sim.clock import SimClock
from tests.support.ib_harness import no_decoder_errors, tree_with_sim

pytestmark = pytest.mark.anyio

SYMBOLS = ("AAPL", "MSFT", "NVDA")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    # IB's pacing windows are in real time: the simulator's clock runs with the wall clock.
    async with SimTWS(seed=21, clock=SimClock(running=True)) as sim:
        yield sim


async def test_nine_parallel_mixed_symbol_reads_are_all_answered(
    sim: SimTWS, tmp_path: Path
) -> None:
    """A chain, a quote and market stats for each of three symbols, all at once: what a model
    does with parallel tool calls. None is refused for pacing; TWS sees no limit broken."""
    replies: dict[tuple[str, str], Reply] = {}
    with no_decoder_errors(), anyio.fail_after(40):
        async with tree_with_sim(sim, tmp_path) as tree:
            ref = tree.refs.chain_cache

            async def read(kind: str, symbol: str) -> None:
                match kind:
                    case "chain":
                        replies[kind, symbol] = await ref.call(GetChain(symbol=symbol), timeout=28)
                    case "quote":
                        replies[kind, symbol] = await ref.call(GetQuote(symbol=symbol), timeout=28)
                    case _:
                        msg = GetMarketStats(symbol=symbol)
                        replies[kind, symbol] = await ref.call(msg, timeout=28)

            async with anyio.create_task_group() as tg:
                for symbol in SYMBOLS:
                    for kind in ("chain", "quote", "stats"):
                        tg.start_soon(read, kind, symbol)
    assert len(replies) == 9
    assert not [r for r in replies.values() if isinstance(r, PacingDelayed)]
    for symbol in SYMBOLS:
        chain = replies["chain", symbol]
        assert isinstance(chain, Chain) and chain.symbol == symbol and not chain.partial
        assert isinstance(replies["quote", symbol], QuoteReply)
        assert isinstance(replies["stats", symbol], MarketStats)
    sim.stats.assert_clean()


async def test_identical_requests_in_flight_reach_tws_once(sim: SimTWS, tmp_path: Path) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        before = len(sim.requests)
        chains: list[Reply] = []

        async def chain() -> None:
            chains.append(await tree.refs.chain_cache.call(GetChain(symbol="MSFT"), timeout=25))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(chain)
        seen = sim.requests[before:]
    assert len(chains) == 3 and all(isinstance(c, Chain) for c in chains)
    first = chains[0]
    assert isinstance(first, Chain)
    assert all(isinstance(c, Chain) and c.rows == first.rows for c in chains)
    names = [r.name for r in seen]
    assert names.count("reqSecDefOptParams") == 1
    assert names.count("reqContractDetails") == 2  # the stock, and the expiry's options
    assert names.count("reqMktData") == 1 + len(first.rows)  # the underlying and each option


async def test_parallel_history_requests_are_queued_within_ibs_pacing(
    sim: SimTWS, tmp_path: Path
) -> None:
    """Seven different history requests for one contract at once: IB allows five in two
    seconds, so two wait their turn instead of being refused."""
    durations = ("1 M", "2 M", "3 M", "4 M", "5 M", "6 M", "1 Y")
    replies: list[Reply] = []
    async with tree_with_sim(sim, tmp_path) as tree:

        async def history(duration: str) -> None:
            msg = GetHistory(symbol="AAPL", duration=duration)
            replies.append(await tree.refs.chain_cache.call(msg, timeout=20))

        async with anyio.create_task_group() as tg:
            for duration in durations:
                tg.start_soon(history, duration)
    assert len(replies) == 7
    assert all(isinstance(r, History) and r.bars for r in replies), replies
    assert sim.stats.pacing_violations == 0, sim.stats.violation_log
    assert len(sim.requests_named("reqHistoricalData")) == 7


async def test_a_history_wait_beyond_the_deadline_is_pacing_with_retry_after(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        ref = tree.refs.connection
        stock = await ref.call(ResolveStock(symbol="AAPL"), timeout=5)
        assert isinstance(stock, StockResolved)
        fetch = FetchHistory(con_id=stock.contract.con_id, symbol="AAPL", duration="2 M")
        assert isinstance(await ref.call(fetch, timeout=10), Bars)
        again = await ref.call(fetch, timeout=5)  # identical within 15 s; 5 s is too short
    assert isinstance(again, PacingDelayed)
    assert again.limit == "historical_identical"
    assert 9.0 < again.retry_after <= 15.3  # 15 s and the limiter's margin
    assert sim.stats.pacing_violations == 0


@pytest.mark.parametrize("each_side", [25, 30])
async def test_wide_chains_are_never_partial_and_send_one_message_per_option(
    sim: SimTWS, tmp_path: Path, each_side: int
) -> None:
    """The double throttle (issue 21) left the second batch requested and cancelled at once:
    partial chains about half the time. Now every option is asked for once, by snapshot, and
    nothing is cancelled."""
    with no_decoder_errors():
        async with tree_with_sim(sim, tmp_path) as tree:
            for _ in range(2):
                await anyio.sleep(1.2)  # an empty rate window, as a person's next question
                before = len(sim.requests)
                msg = GetChain(symbol="SPY", strikes_each_side=each_side)
                chain = await tree.refs.chain_cache.call(msg, timeout=28)
                seen = [r.name for r in sim.requests[before:]]
                assert isinstance(chain, Chain)
                assert 2 * each_side * 2 > STREAM_WINDOW_MAX  # the snapshot path
                if chain.partial:  # only options with no market at all may be missing
                    assert chain.partial_reason == "no quote arrived for some strikes"
                wanted = len(chain.rows) + 2 * len(chain.skipped)
                assert seen.count("reqMktData") <= 1 + wanted
                assert seen.count("cancelMktData") <= 1  # the underlying's stream only
                assert len(chain.rows) >= 90
    sim.stats.assert_clean()
    assert sim.stats.open_lines == 0


async def test_chain_progress_is_reported_per_batch(sim: SimTWS, tmp_path: Path) -> None:
    reports: list[tuple[int, int]] = []
    async with tree_with_sim(sim, tmp_path) as tree:
        with progress.listening(lambda done, total, _: reports.append((done, total))) as pid:
            msg = GetChain(symbol="SPY", strikes_each_side=25, progress=pid)
            chain = await tree.refs.chain_cache.call(msg, timeout=28)
    assert isinstance(chain, Chain)
    assert len(reports) >= 5  # a report per chunk of requests granted
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert reports[-1] == (100, 100)


async def test_leg_quotes_for_execution_and_risk_never_move_the_current_symbol(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        ref = tree.refs.chain_cache
        assert isinstance(await ref.call(GetQuote(symbol="AAPL"), timeout=10), QuoteReply)
        legs = await ref.call(GetLegQuotes(symbol="MSFT", legs=()), timeout=10)
        session = await ref.call(GetSession(), timeout=5)
    assert isinstance(legs, LegQuotes) and legs.symbol == "MSFT" and legs.switched_from is None
    assert isinstance(session, SessionInfo)
    assert session.symbol == "AAPL"
    assert set(session.symbols) == {"AAPL", "MSFT"}
