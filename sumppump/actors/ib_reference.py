"""TWS's reference data, account and orders list as msgspec structs: the request conversions
the connection hands its ``IB`` to (contracts, option parameters, history, news, account,
positions, open orders). Each request reserves its messages first (:class:`MessageBudget`) and
raises what ib_async raises (``RequestError``, ``TimeoutError``, ``ConnectionError``), which
the connection turns into replies; :class:`Paced` means nothing was sent.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Final

from ib_async import IB, HistoricalNews, Option, Stock
from ib_async.wrapper import RequestError

from sumppump.actors.ib_requests import FixedKeyRequests
from sumppump.actors.ib_values import ib_number
from sumppump.actors.market_data import ib_contract
from sumppump.actors.runtime import remaining_budget
from sumppump.actors.send_budget import MessageBudget
from sumppump.messages.base import Reply
from sumppump.messages.common import NoSuchContract, OptionContract, StockContract
from sumppump.messages.connection import (
    AccountSnapshot,
    Article,
    Bar,
    Bars,
    FetchArticle,
    FetchHeadlines,
    FetchHistory,
    FetchOptionContracts,
    FetchOptionParams,
    Headline,
    Headlines,
    OpenOrderInfo,
    OpenOrders,
    OptionContracts,
    OptionParams,
    OptionParamSet,
    PositionInfo,
    Positions,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)

__all__ = ["ReferenceData"]

#: Kept from the deadline for the historical request itself once its pacing turn comes.
HISTORY_ANSWER_TIME: Final = 3.0


class ReferenceData:
    """The request conversions, for whichever ``IB`` the connection holds."""

    def __init__(self, budget: MessageBudget, serial: FixedKeyRequests) -> None:
        self._budget = budget
        self._serial = serial

    # ------------------------------------------------------------------ contracts

    async def resolve_stock(self, ib: IB, msg: ResolveStock) -> Reply:
        await self._budget(1)
        try:
            details = await ib.reqContractDetailsAsync(Stock(msg.symbol, "SMART", "USD"))
        except RequestError as exc:
            if exc.code == 200:
                return NoSuchContract(symbol=msg.symbol, detail="no US stock or ETF by that name")
            raise
        stocks = [d for d in details if d.contract and d.contract.secType == "STK"]
        if not stocks:
            return NoSuchContract(symbol=msg.symbol, detail="no US stock or ETF by that name")
        d = stocks[0]
        c = d.contract
        assert c is not None
        return StockResolved(
            contract=StockContract(
                con_id=c.conId,
                symbol=c.symbol,
                exchange=c.exchange or "SMART",
                primary_exchange=c.primaryExchange,
                currency=c.currency,
                long_name=d.longName,
                min_tick=d.minTick or 0.01,
                time_zone=d.timeZoneId,
                trading_hours=d.tradingHours,
                liquid_hours=d.liquidHours,
            )
        )

    async def option_params(self, ib: IB, msg: FetchOptionParams) -> Reply:
        await self._budget(1)
        chains = await ib.reqSecDefOptParamsAsync(
            msg.symbol, "", msg.sec_type, msg.underlying_con_id
        )
        sets = tuple(
            OptionParamSet(
                exchange=chain.exchange,
                trading_class=chain.tradingClass,
                multiplier=float(chain.multiplier or 100),
                expirations=tuple(sorted(_iso(e) for e in chain.expirations)),
                strikes=tuple(sorted(float(s) for s in chain.strikes)),
            )
            for chain in chains
        )
        return OptionParams(sets=sets)

    async def option_contracts(self, ib: IB, msg: FetchOptionContracts) -> Reply:
        await self._budget(1)
        query = Option(
            msg.symbol,
            msg.expiry.replace("-", ""),
            0.0,
            "",
            msg.exchange,
            tradingClass=msg.trading_class,
            currency="USD",
        )
        details = await ib.reqContractDetailsAsync(query)
        contracts = []
        for d in details:
            c = d.contract
            if c is None or c.secType != "OPT" or c.right not in ("C", "P"):
                continue
            contracts.append(
                OptionContract(
                    con_id=c.conId,
                    symbol=c.symbol,
                    expiry=_iso(c.lastTradeDateOrContractMonth),
                    strike=float(c.strike),
                    right="C" if c.right == "C" else "P",
                    multiplier=float(c.multiplier or 100),
                    trading_class=c.tradingClass,
                    exchange=msg.exchange,
                    currency=c.currency,
                    local_symbol=c.localSymbol,
                )
            )
        contracts.sort(key=lambda c: (c.strike, c.right))
        return OptionContracts(contracts=tuple(contracts))

    # ------------------------------------------------------------------ history and news

    async def history(self, ib: IB, msg: FetchHistory) -> Reply:
        request_key = "|".join(
            (str(msg.con_id), msg.duration, msg.bar_size, msg.what_to_show, str(msg.use_rth))
        )
        # Queued within IB's pacing; PacingDelayed only when the wait would pass the deadline.
        await self._budget.historical_permit(
            request_key, str(msg.con_id), budget=remaining_budget(30.0) - HISTORY_ANSWER_TIME
        )
        await self._budget(1)
        bars = await ib.reqHistoricalDataAsync(
            ib_contract(QuoteTarget(con_id=msg.con_id, symbol=msg.symbol, sec_type=msg.sec_type)),
            endDateTime="",
            durationStr=msg.duration,
            barSizeSetting=msg.bar_size,
            whatToShow=msg.what_to_show,
            useRTH=msg.use_rth,
            formatDate=2,
            # 0 = no timeout of ib_async's own: on its timeout it returns [] — no data would
            # look like zero bars. The request's deadline (fail_after in _dispatch) ends it
            # instead, and the caller is told TWS did not answer.
            timeout=0,
        )
        return Bars(
            bars=tuple(
                Bar(
                    date=_bar_date(b.date),
                    open=b.open,
                    high=b.high,
                    low=b.low,
                    close=b.close,
                    volume=float(b.volume),
                )
                for b in bars
            ),
            what_to_show=msg.what_to_show,
        )

    async def headlines(self, ib: IB, msg: FetchHeadlines) -> Reply:
        await self._budget(1)
        async with self._serial("newsProviders"):
            providers = await ib.reqNewsProvidersAsync()
        codes = tuple(p.code for p in providers)
        if not codes:
            return Headlines(providers=(), headlines=())
        await self._budget(1)
        result: object = await ib.reqHistoricalNewsAsync(
            msg.con_id, "+".join(codes), "", "", max(1, min(msg.limit, 50))
        )
        # reqHistoricalNewsAsync returns a list despite its annotation (pitfall P10).
        items: list[HistoricalNews] = result if isinstance(result, list) else []
        headlines = tuple(
            Headline(
                time=_timestamp(n.time),
                provider=n.providerCode,
                article_id=n.articleId,
                headline=n.headline,
            )
            for n in items
        )
        return Headlines(providers=codes, headlines=headlines[: msg.limit])

    async def article(self, ib: IB, msg: FetchArticle) -> Reply:
        await self._budget(1)
        article = await ib.reqNewsArticleAsync(msg.provider, msg.article_id)
        return Article(
            provider=msg.provider,
            article_id=msg.article_id,
            text=getattr(article, "articleText", "") or "",
        )

    # ------------------------------------------------------------------ account

    def account_id(self, ib: IB) -> str:
        accounts = ib.client.getAccounts()
        return accounts[0] if accounts else ""

    def account(self, ib: IB) -> Reply:
        account = self.account_id(ib)
        values: dict[str, tuple[float, str]] = {}
        for v in ib.accountValues(account):
            if v.currency in ("", "BASE"):
                continue
            with contextlib.suppress(ValueError):
                values.setdefault(v.tag, (float(v.value), v.currency))

        def get(tag: str) -> float | None:
            return values[tag][0] if tag in values else None

        currency = values.get("NetLiquidation", (0.0, "USD"))[1]
        return AccountSnapshot(
            account_id=account,
            currency=currency,
            net_liquidation=get("NetLiquidation"),
            available_funds=get("AvailableFunds"),
            buying_power=get("BuyingPower"),
            excess_liquidity=get("ExcessLiquidity"),
            init_margin=get("InitMarginReq"),
            maint_margin=get("MaintMarginReq"),
            cash=get("TotalCashValue"),
        )

    def positions(self, ib: IB) -> Reply:
        prices = {item.contract.conId: item for item in ib.portfolio()}
        rows = []
        for p in ib.positions():
            c = p.contract
            item = prices.get(c.conId)
            rows.append(
                PositionInfo(
                    account=p.account,
                    con_id=c.conId,
                    symbol=c.symbol,
                    sec_type=c.secType,
                    quantity=float(p.position),
                    avg_cost=float(p.avgCost),
                    expiry=_iso(c.lastTradeDateOrContractMonth) if c.secType == "OPT" else None,
                    strike=float(c.strike) if c.secType == "OPT" else None,
                    right=c.right or None,
                    multiplier=float(c.multiplier or 1),
                    market_price=ib_number(item.marketPrice) if item else None,
                    market_value=ib_number(item.marketValue) if item else None,
                    unrealized_pnl=ib_number(item.unrealizedPNL) if item else None,
                )
            )
        rows.sort(key=lambda r: (r.symbol, r.sec_type, r.expiry or "", r.strike or 0.0))
        return Positions(positions=tuple(rows))

    async def open_orders(self, ib: IB) -> Reply:
        await self._budget(1)
        async with self._serial("openOrders"):
            trades = await ib.reqAllOpenOrdersAsync()
        orders = []
        for trade in trades:
            o, c, s = trade.order, trade.contract, trade.orderStatus
            orders.append(
                OpenOrderInfo(
                    order_id=o.orderId,
                    perm_id=o.permId,
                    order_ref=o.orderRef or "",
                    symbol=c.symbol,
                    description=c.localSymbol or c.symbol,
                    action=o.action,
                    quantity=float(o.totalQuantity),
                    order_type=o.orderType,
                    limit_price=ib_number(o.lmtPrice),
                    aux_price=ib_number(o.auxPrice),
                    tif=o.tif,
                    status=s.status,
                    filled=float(s.filled),
                    remaining=float(s.remaining),
                )
            )
        return OpenOrders(orders=tuple(orders))


def _iso(ib_date: str) -> str:
    """IB's ``YYYYMMDD`` (optionally with a time) as ``YYYY-MM-DD``."""
    digits = ib_date.strip()[:8]
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"


def _bar_date(value: date | datetime | str) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
