"""Historical bars and news through the real ib_async client."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import pytest
from ib_async import IB, Option, Stock
from ib_async.wrapper import RequestError

from sumppump.tws_sim import SimTWS

pytestmark = pytest.mark.anyio


async def aapl(ib: IB) -> Stock:
    [stock] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    return stock


async def test_daily_bars_for_a_month_end_today_and_skip_weekends(ib: IB) -> None:
    bars = await ib.reqHistoricalDataAsync(await aapl(ib), "", "1 M", "1 day", "TRADES", True)
    dates = [b.date for b in bars]
    assert dates[-1] == dt.date(2026, 11, 25)
    assert all(d.weekday() < 5 for d in dates) and 20 <= len(dates) <= 23
    assert dates == sorted(dates)
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert all(b.volume > 0 for b in bars)


async def test_the_last_daily_close_is_the_current_price(ib: IB) -> None:
    stock = await aapl(ib)
    bars = await ib.reqHistoricalDataAsync(stock, "", "1 W", "1 day", "TRADES", True)
    [ticker] = await ib.reqTickersAsync(stock)
    assert bars[-1].close == pytest.approx(ticker.last, abs=0.011)
    assert bars[-2].close == pytest.approx(ticker.close, abs=0.011)


async def test_a_year_of_daily_bars_moves_like_the_stock(ib: IB) -> None:
    bars = await ib.reqHistoricalDataAsync(await aapl(ib), "", "1 Y", "1 day", "TRADES", True)
    assert 250 <= len(bars) <= 262
    rets = [math.log(b.close / a.close) for a, b in itertools.pairwise(bars)]
    vol = math.sqrt(sum(r * r for r in rets) / len(rets) * 252)
    assert 0.1 < vol < 0.5  # AAPL-like, not flat and not wild


async def test_hourly_and_five_minute_bars_inside_the_session(ib: IB) -> None:
    stock = await aapl(ib)
    hourly = await ib.reqHistoricalDataAsync(stock, "", "2 D", "1 hour", "TRADES", True)
    first_day = [b for b in hourly if b.date.date() == dt.date(2026, 11, 24)]
    assert [b.date.strftime("%H:%M") for b in first_day] == [
        "09:30",
        "10:00",
        "11:00",
        "12:00",
        "13:00",
        "14:00",
        "15:00",
    ]
    five = await ib.reqHistoricalDataAsync(stock, "", "1 D", "5 mins", "TRADES", True)
    assert len(five) == 6  # 09:30 to 10:00 on the simulated morning


async def test_implied_and_historical_volatility_bars(ib: IB) -> None:
    stock = await aapl(ib)
    iv = await ib.reqHistoricalDataAsync(
        stock, "", "3 M", "1 day", "OPTION_IMPLIED_VOLATILITY", True
    )
    hv = await ib.reqHistoricalDataAsync(stock, "", "3 M", "1 day", "HISTORICAL_VOLATILITY", True)
    assert len(iv) == len(hv) > 55
    assert all(0.05 < b.close < 1.0 for b in iv + hv)
    assert len({round(b.close, 4) for b in iv}) > 10  # it varies, so IV rank means something


async def test_option_bars(ib: IB) -> None:
    [opt] = await ib.qualifyContractsAsync(Option("AAPL", "20261218", 225, "C", "SMART"))
    bars = await ib.reqHistoricalDataAsync(opt, "", "5 D", "1 day", "TRADES", True)
    assert len(bars) == 5 and all(b.close > 0 for b in bars)


async def test_explicit_end_date(ib: IB) -> None:
    end = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.UTC)
    bars = await ib.reqHistoricalDataAsync(await aapl(ib), end, "1 W", "1 day", "TRADES", True)
    assert bars[-1].date == dt.date(2026, 11, 20)


async def test_invalid_bar_size_is_refused(ib: IB) -> None:
    with pytest.raises(RequestError) as caught:
        await ib.reqHistoricalDataAsync(await aapl(ib), "", "1 D", "3 secs", "TRADES", True)
    assert caught.value.code == 162 and "bar size" in caught.value.message


async def test_news_providers_headlines_and_articles(sim: SimTWS, ib: IB) -> None:
    providers = await ib.reqNewsProvidersAsync()
    assert {p.code for p in providers} >= {"BRFG", "DJNL", "BRFUPDN"}
    stock = await aapl(ib)
    headlines = await ib.reqHistoricalNewsAsync(stock.conId, "BRFG+DJNL+BRFUPDN", "", "", 10)
    assert len(headlines) >= 5
    assert all(h.time < dt.datetime(2026, 11, 25, 15, 0) for h in headlines)
    assert any("ignore previous instructions" in h.headline for h in headlines)
    only_brfg = await ib.reqHistoricalNewsAsync(stock.conId, "BRFG", "", "", 10)
    assert {h.providerCode for h in only_brfg} == {"BRFG"}
    injected = next(h for h in headlines if "ignore previous" in h.headline)
    article = await ib.reqNewsArticleAsync(injected.providerCode, injected.articleId)
    assert "ignore previous instructions" in article.articleText
    limited = await ib.reqHistoricalNewsAsync(stock.conId, "BRFG+DJNL+BRFUPDN", "", "", 2)
    assert len(limited) == 2


async def test_unknown_article_is_an_error(ib: IB) -> None:
    with pytest.raises(RequestError):
        await ib.reqNewsArticleAsync("BRFG", "BRFG$nothing")
