"""The chain cache against the simulated TWS: chains, legs, stats, the session and its cache."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import anyio
import pytest

from sumppump.actors.chain_math import (
    choose_trading_class,
    historical_vol,
    iv_rank_percentile,
    nearest_expiry,
    nearest_listed,
    strike_window,
)
from sumppump.actors.runtime import ActorDown
from sumppump.messages.chain_cache import (
    Chain,
    ExpiryNotListed,
    GetChain,
    GetHistory,
    GetLegQuotes,
    GetMarketStats,
    GetNews,
    GetQuote,
    GetSession,
    History,
    LegKey,
    LegQuotes,
    MarketStats,
    News,
    QuoteReply,
    SessionInfo,
)
from sumppump.messages.common import NoSuchContract, OptionContract
from sumppump.messages.connection import OptionParamSet
from sumppump.tws_sim import SimTWS
from tests.support.ib_harness import no_decoder_errors, tree_with_sim

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=11) as sim:
        yield sim


def sim_today(sim: SimTWS) -> date:
    return sim.clock.now().date()


async def test_default_chain_is_the_nearest_expiry_a_week_out_with_labelled_rows(
    sim: SimTWS, tmp_path: Path
) -> None:
    with no_decoder_errors(), anyio.fail_after(30):
        async with tree_with_sim(sim, tmp_path) as tree:
            chain = await tree.refs.chain_cache.call(GetChain(symbol="aapl"), timeout=25)
    assert isinstance(chain, Chain)
    assert chain.symbol == "AAPL"
    floor = (sim_today(sim) + timedelta(days=7)).isoformat()
    assert chain.expiry == min(e for e in chain.expiries if e >= floor)
    assert len(chain.rows) == 32 and not chain.partial
    strikes = sorted({r.strike for r in chain.rows})
    assert len(strikes) == 16
    spot = chain.underlying.mid
    assert spot is not None
    assert sum(1 for s in strikes if s < spot) == 8
    near = strikes[6:10]
    for row in chain.rows:
        assert row.ask is not None
        if row.strike in near:  # near the money there is always a two-sided market
            assert row.bid is not None and row.bid <= row.ask
            assert row.mid == pytest.approx((row.bid + row.ask) / 2)
        assert row.greeks_source == "ib_model"
        assert row.open_interest is not None and row.volume is not None
        assert row.iv is not None and 0 < row.iv < 3
        assert row.data_type in ("live", "delayed")
        assert row.ts > 0
        assert row.multiplier == 100
    calls = [r for r in chain.rows if r.right == "C"]
    assert all(a.delta >= b.delta for a, b in itertools.pairwise(calls))  # type: ignore[operator]
    assert sim.stats.total_violations == 0
    assert sim.stats.open_lines == 0


async def test_an_unlisted_expiry_is_refused_with_the_nearest_listed_ones(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        first = await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        assert isinstance(first, Chain)
        wanted = (date.fromisoformat(first.expiry) + timedelta(days=1)).isoformat()
        reply = await tree.refs.chain_cache.call(GetChain(symbol="AAPL", expiry=wanted))
    assert isinstance(reply, ExpiryNotListed)
    assert reply.requested == wanted
    assert first.expiry in reply.nearest
    assert len(reply.nearest) == 3


async def test_repeat_call_within_the_quote_ttl_sends_nothing_to_tws(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        await anyio.sleep(1.0)  # the streams' cancels leave after the reply
        before = len(sim.requests)
        again = await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        after = len(sim.requests)
    assert isinstance(again, Chain)
    assert len(again.rows) == 32
    assert after == before


async def test_contract_definitions_are_reused_from_disk_by_a_fresh_session(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        chain = await tree.refs.chain_cache.call(GetChain(symbol="MSFT"), timeout=25)
        assert isinstance(chain, Chain)
    assert [p async for p in anyio.Path(tmp_path).glob("contracts-*.json")]
    details_before = len(sim.requests_named("reqContractDetails"))
    async with tree_with_sim(sim, tmp_path) as tree:
        again = await tree.refs.chain_cache.call(GetChain(symbol="MSFT"), timeout=25)
    details_after = len(sim.requests_named("reqContractDetails"))
    assert isinstance(again, Chain)
    assert {r.con_id for r in again.rows} == {r.con_id for r in chain.rows}
    assert details_after - details_before == 1  # the stock only; the expiry came from disk


async def test_reading_another_symbol_keeps_both_and_leaves_no_line_open(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        chain = await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        other = await tree.refs.chain_cache.call(GetQuote(symbol="MSFT"), timeout=10)
        session = await tree.refs.chain_cache.call(GetSession(), timeout=5)
        details_before = len(sim.requests_named("reqContractDetails"))
        again = await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        details_after = len(sim.requests_named("reqContractDetails"))
        await anyio.sleep(0.5)  # the deferred cancels leave after the reply
    assert isinstance(chain, Chain) and isinstance(again, Chain)
    assert isinstance(other, QuoteReply) and other.switched_from is None
    assert again.switched_from is None
    assert isinstance(session, SessionInfo)
    assert session.symbol == "MSFT" and session.symbols == ("AAPL", "MSFT")
    assert details_after == details_before  # AAPL's stock and contracts were still held
    assert sim.stats.open_lines == 0


async def test_the_widest_window_stays_inside_every_limit(sim: SimTWS, tmp_path: Path) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        chain = await tree.refs.chain_cache.call(
            GetChain(symbol="SPY", strikes_each_side=30), timeout=28
        )
    assert isinstance(chain, Chain)
    # 60 strikes × 2 rights were asked for; far from the money some have no market at all and
    # are listed as skipped rather than shown with invented prices.
    strikes = {r.strike for r in chain.rows} | set(chain.skipped)
    assert len(strikes) == 60
    assert len(chain.rows) >= 90
    assert all(r.bid is not None or r.ask is not None for r in chain.rows)
    assert sim.stats.total_violations == 0
    assert sim.stats.max_open_lines <= 90
    assert sim.stats.open_lines == 0


async def test_unknown_symbol_is_no_such_contract(sim: SimTWS, tmp_path: Path) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        reply = await tree.refs.chain_cache.call(GetChain(symbol="ZZZZ"), timeout=10)
    assert isinstance(reply, NoSuchContract)


async def test_leg_quotes_find_each_leg_and_list_unlisted_strikes(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        chain = await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        assert isinstance(chain, Chain)
        low, high = chain.rows[10].strike, chain.rows[20].strike
        legs = (
            LegKey(expiry=chain.expiry, strike=low, right="C"),
            LegKey(expiry=chain.expiry, strike=high, right="C"),
            LegKey(expiry=chain.expiry, strike=low + 0.01, right="C"),
        )
        reply = await tree.refs.chain_cache.call(GetLegQuotes(symbol="AAPL", legs=legs))
    assert isinstance(reply, LegQuotes)
    assert [leg.key for leg in reply.legs] == list(legs[:2])
    assert reply.missing == (legs[2],)
    assert all(leg.quote is not None and leg.quote.mid is not None for leg in reply.legs)
    assert reply.underlying.mid is not None


async def test_market_stats_history_and_news(sim: SimTWS, tmp_path: Path) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        stats = await tree.refs.chain_cache.call(GetMarketStats(symbol="AAPL"), timeout=20)
        again = await tree.refs.chain_cache.call(GetMarketStats(symbol="AAPL"), timeout=20)
        history = await tree.refs.chain_cache.call(GetHistory(symbol="AAPL"), timeout=10)
        news = await tree.refs.chain_cache.call(GetNews(symbol="AAPL", limit=3), timeout=10)
    assert isinstance(stats, MarketStats)
    assert isinstance(again, MarketStats)  # served from the bar cache, not refused by pacing
    assert stats.week52_low is not None and stats.week52_high is not None
    assert stats.week52_low <= (stats.last or 0) <= stats.week52_high
    assert stats.hist_vol_20d is not None and 0.01 < stats.hist_vol_20d < 3
    assert stats.hist_vol_30d is not None
    assert isinstance(history, History) and len(history.bars) >= 15
    assert isinstance(news, News) and 1 <= len(news.headlines) <= 3
    assert sim.stats.pacing_violations == 0


async def test_killing_the_chain_cache_mid_fetch_fails_the_call_and_the_next_one_works(
    sim: SimTWS, tmp_path: Path
) -> None:
    async with tree_with_sim(sim, tmp_path) as tree:
        outcome: list[str] = []

        async def fetch() -> None:
            try:
                await tree.refs.chain_cache.call(GetChain(symbol="NVDA"), timeout=25)
                outcome.append("reply")
            except ActorDown:
                outcome.append("down")

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            await anyio.sleep(0.05)
            tree.root.kill("broker/chain_cache")
        while not tree.refs.chain_cache.alive:
            await anyio.sleep(0.01)
        chain = await tree.refs.chain_cache.call(GetChain(symbol="NVDA"), timeout=25)
    assert outcome == ["down"]
    assert isinstance(chain, Chain)


# ---------------------------------------------------------------------- pure helpers


def test_nearest_expiry_is_the_first_at_least_min_days_out() -> None:
    expirations = ["2026-11-27", "2026-12-04", "2026-12-11", "2026-12-18"]
    assert nearest_expiry(expirations, date(2026, 11, 25), min_days=7) == "2026-12-04"
    assert nearest_expiry(expirations, date(2026, 11, 27), min_days=7) == "2026-12-04"
    assert nearest_expiry(expirations, date(2026, 11, 28), min_days=7) == "2026-12-11"
    assert nearest_expiry(expirations, date(2026, 12, 20), min_days=7) is None


def test_nearest_listed_ranks_by_distance_in_days() -> None:
    expirations = ["2026-11-27", "2026-12-04", "2026-12-11", "2026-12-18", "2027-01-15"]
    assert nearest_listed(expirations, "2026-12-05") == ("2026-11-27", "2026-12-04", "2026-12-11")


def test_trading_class_named_like_the_symbol_wins() -> None:
    def params(tc: str, n: int, exchange: str = "SMART") -> OptionParamSet:
        return OptionParamSet(
            exchange=exchange,
            trading_class=tc,
            multiplier=100,
            expirations=tuple(f"2027-01-{d:02d}" for d in range(1, n + 1)),
            strikes=(100.0,),
        )

    sets = [params("SPXW", 30), params("SPX", 5), params("SPX", 9, "CBOE")]
    chosen = choose_trading_class("SPX", sets)
    assert chosen is not None and chosen.trading_class == "SPX" and chosen.exchange == "SMART"
    assert (
        choose_trading_class("ABC", [params("ABC1", 3), params("ABC2", 8)]).trading_class == "ABC2"
    )  # type: ignore[union-attr]


def test_strike_window_takes_each_side_of_the_spot() -> None:
    contracts = [
        OptionContract(
            con_id=i * 2 + j,
            symbol="X",
            expiry="2026-12-18",
            strike=float(k),
            right="CP"[j],
            multiplier=100,
            trading_class="X",
        )  # type: ignore[arg-type]
        for i, k in enumerate(range(90, 111))
        for j in (0, 1)
    ]
    window = strike_window(contracts, 100.5, 3, "C")
    assert [c.strike for c in window] == [98, 99, 100, 101, 102, 103]
    assert {c.right for c in window} == {"C"}
    assert len(strike_window(contracts, 100.5, 3, "both")) == 12


def test_historical_vol_of_a_known_series() -> None:
    closes = [100 * (1.01 if i % 2 else 0.99) ** (i % 2) for i in range(40)]
    vol = historical_vol(closes, 20)
    assert vol is not None and vol > 0
    assert historical_vol(closes[:10], 20) is None
    assert historical_vol([100.0] * 31, 30) == 0.0


def test_iv_rank_and_percentile() -> None:
    history = [0.2 + 0.01 * i for i in range(21)]  # 0.20 … 0.40
    rank, percentile = iv_rank_percentile(history, 0.30)
    assert rank == pytest.approx(50.0)
    assert percentile == pytest.approx(100 * 10 / 21)
    assert iv_rank_percentile(history[:5], 0.3) == (None, None)


async def test_leg_quotes_after_a_price_move_are_fresh_not_the_last_subscriptions_values(
    sim: SimTWS, tmp_path: Path
) -> None:
    """ib_async reuses one Ticker per contract; a second request must not answer with the
    first one's prices (found by the execution work: PRICE_MOVED compared stale quotes)."""
    async with tree_with_sim(sim, tmp_path) as tree:
        chain = await tree.refs.chain_cache.call(GetChain(symbol="AAPL"), timeout=25)
        assert isinstance(chain, Chain)
        row = next(
            r for r in chain.rows if r.right == "C" and r.strike > (chain.underlying.mid or 0)
        )
        key = LegKey(expiry=chain.expiry, strike=row.strike, right="C")
        before = await tree.refs.chain_cache.call(GetLegQuotes(symbol="AAPL", legs=(key,)))
        sim.set_price("AAPL", (chain.underlying.mid or 0) * 1.08)
        after = await tree.refs.chain_cache.call(GetLegQuotes(symbol="AAPL", legs=(key,)))
    assert isinstance(before, LegQuotes) and isinstance(after, LegQuotes)
    old, new = before.legs[0].quote, after.legs[0].quote
    assert old is not None and new is not None and old.ask is not None and new.ask is not None
    assert new.ask > old.ask + 1.0  # an 8 % rally moves an out-of-the-money call's price
    assert new.greeks is not None and new.greeks.underlying_price is not None
    assert new.greeks.underlying_price > (chain.underlying.mid or 0) * 1.05
