"""Encoders checked by decoding with ib_async's own Decoder; parsers checked against what
ib_async's real Client writes. No sockets."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async import (
    ComboLeg,
    Contract,
    LimitOrder,
    MarketOrder,
    Option,
    Order,
    PriceCondition,
    Stock,
    StopLimitOrder,
    TagValue,
)
from ib_async.client import Client
from ib_async.decoder import Decoder
from ib_async.util import UNSET_DOUBLE

from sumppump.tws_sim import protocol as p


class SpyWrapper:
    """Records every wrapper callback the decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.defaultTimezone = dt.UTC
        self.ib = SimpleNamespace(TimezoneTWS=None)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))

    def only(self, name: str) -> tuple[Any, ...]:
        matching = [args for n, args in self.calls if n == name]
        assert len(matching) == 1, self.calls
        return matching[0]


def decode(fields: list[p.Field]) -> SpyWrapper:
    spy = SpyWrapper()
    Decoder(spy, 178).interpret(p.encode_fields(fields))  # type: ignore[arg-type]
    return spy


AAPL = p.WireContract(
    265598, "AAPL", "STK", "", 0.0, "", "", "SMART", "NASDAQ", "USD", "AAPL", "NMS"
)
CALL = p.WireContract(
    1096800032,
    "AAPL",
    "OPT",
    "20261218",
    225.0,
    "C",
    "100",
    "SMART",
    "",
    "USD",
    "AAPL  261218C00225000",
    "AAPL",
)


def test_field_encoding_rules() -> None:
    assert p.encode_fields([1, True, False, None, 2.5, UNSET_DOUBLE, "x"]) == [
        "1",
        "1",
        "0",
        "",
        "2.5",
        "1.7976931348623157E308",
        "x",
    ]


def test_frame_is_length_prefixed_and_nul_terminated() -> None:
    assert p.frame([9, 1, 42]) == b"\x00\x00\x00\x079\x001\x0042\x00"


def test_error_carries_advanced_reject_json() -> None:
    args = decode(p.error(7, 201, "Order rejected - reason:x", '{"a":1}')).only("error")
    assert args == (7, 201, "Order rejected - reason:x", '{"a":1}')


def test_managed_accounts_and_next_valid_id_and_current_time() -> None:
    assert decode(p.managed_accounts(["U1", "U2"])).only("managedAccounts") == ("U1,U2",)
    assert decode(p.next_valid_id(5)).only("nextValidId") == (5,)
    assert decode(p.current_time(1_795_000_000)).only("currentTime") == (1_795_000_000,)


def test_tick_messages_decode_to_their_wrapper_calls() -> None:
    assert decode(p.tick_price(3, 1, 5.1, 7.0)).only("priceSizeTick") == (3, 1, 5.1, 7.0)
    assert decode(p.tick_size(3, 8, 1200.0)).only("tickSize") == (3, 8, 1200.0)
    assert decode(p.tick_generic(3, 24, 0.25)).only("tickGeneric") == (3, 24, 0.25)
    assert decode(p.tick_string(3, 45, "1795000000")).only("tickString") == (3, 45, "1795000000")
    assert decode(p.tick_snapshot_end(3)).only("tickSnapshotEnd") == (3,)
    assert decode(p.market_data_type(3, 3)).only("marketDataType") == (3, 3)
    assert decode(p.tick_req_params(3, 0.01, "SMART", 3)).only("tickReqParams") == (
        3,
        0.01,
        "SMART",
        3,
    )


def test_tick_option_computation_has_twelve_fields_and_decodes() -> None:
    fields = p.tick_option_computation(
        4,
        13,
        implied_vol=0.25,
        delta=0.5,
        opt_price=6.3,
        pv_dividend=0.0,
        gamma=0.03,
        vega=0.22,
        theta=-0.12,
        und_price=221.5,
    )
    assert len(fields) == 12
    args = decode(fields).only("tickOptionComputation")
    assert args == (4, 13, 0, 0.25, 0.5, 6.3, 0.0, 0.03, 0.22, -0.12, 221.5)


def test_contract_details_decode_to_a_full_contract() -> None:
    view = p.ContractDetailsView(
        contract=CALL,
        market_name="AAPL",
        min_tick=0.01,
        order_types="LMT,MKT",
        valid_exchanges="SMART,CBOE",
        under_con_id=265598,
        long_name="APPLE INC",
        contract_month="202612",
        industry="Technology",
        category="Computers",
        subcategory="Computers",
        time_zone_id="US/Eastern",
        trading_hours="20261125:0930-20261125:1600",
        liquid_hours="20261125:0930-20261125:1600",
        agg_group=2,
        under_symbol="AAPL",
        under_sec_type="STK",
        market_rule_ids="32",
        real_expiration_date="20261218",
        stock_type="",
    )
    req_id, cd = decode(p.contract_details(9, view)).only("contractDetails")
    assert req_id == 9
    c = cd.contract
    assert (c.conId, c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.strike, c.right) == (
        1096800032,
        "AAPL",
        "OPT",
        "20261218",
        225.0,
        "C",
    )
    assert (c.multiplier, c.localSymbol, c.tradingClass) == ("100", "AAPL  261218C00225000", "AAPL")
    assert cd.underConId == 265598 and cd.minTick == 0.01 and cd.timeZoneId == "US/Eastern"
    assert cd.realExpirationDate == "20261218" and cd.minSize == 1.0
    assert decode(p.contract_details_end(9)).only("contractDetailsEnd") == (9,)


def test_sec_def_opt_params_decode() -> None:
    fields = p.security_definition_option_parameter(
        2, "SMART", 265598, "AAPL", "100", ["20261218", "20270115"], [220.0, 225.0, 230.0]
    )
    args = decode(fields).only("securityDefinitionOptionParameter")
    assert args == (
        2,
        "SMART",
        "265598",
        "AAPL",
        "100",
        ["20261218", "20270115"],
        [220.0, 225.0, 230.0],
    )
    assert decode(p.security_definition_option_parameter_end(2)).only(
        "securityDefinitionOptionParameterEnd"
    ) == (2,)


def test_historical_data_decodes_bars_and_end() -> None:
    bars = [p.Bar("20261124", 1.0, 2.0, 0.5, 1.5, 100.0, 1.2, 10)]
    spy = decode(p.historical_data(4, "20261024", "20261125 10:00:00", bars))
    req_id, bar = spy.only("historicalData")
    assert req_id == 4 and (bar.open, bar.high, bar.low, bar.close, bar.barCount) == (
        1.0,
        2.0,
        0.5,
        1.5,
        10,
    )
    assert spy.only("historicalDataEnd") == (4, "20261024", "20261125 10:00:00")


def test_news_messages_decode() -> None:
    (providers,) = decode(p.news_providers([("BRFG", "Briefing"), ("DJNL", "DJ")])).only(
        "newsProviders"
    )
    assert [(x.code, x.name) for x in providers] == [("BRFG", "Briefing"), ("DJNL", "DJ")]
    assert decode(p.historical_news(5, "2026-11-25 10:00:00.0", "BRFG", "BRFG$1", "h")).only(
        "historicalNews"
    ) == (5, "2026-11-25 10:00:00.0", "BRFG", "BRFG$1", "h")
    assert decode(p.historical_news_end(5, False)).only("historicalNewsEnd") == (5, False)
    assert decode(p.news_article(6, 0, "<p>x</p>")).only("newsArticle") == (6, 0, "<p>x</p>")


def test_account_messages_decode() -> None:
    assert decode(p.account_summary(3, "U1", "NetLiquidation", "1.00", "USD")).only(
        "accountSummary"
    ) == (3, "U1", "NetLiquidation", "1.00", "USD")
    assert decode(p.account_summary_end(3)).only("accountSummaryEnd") == (3,)
    assert decode(p.update_account_value("CashBalance", "5.00", "USD", "U1")).only(
        "updateAccountValue"
    ) == ("CashBalance", "5.00", "USD", "U1")
    assert decode(p.update_account_time("10:00")).only("updateAccountTime") == ("10:00",)
    assert decode(p.account_download_end("U1")).only("accountDownloadEnd") == ("U1",)
    assert decode(p.account_update_multi(4, "U1", "", "k", "v", "USD")).only(
        "accountUpdateMulti"
    ) == (4, "U1", "", "k", "v", "USD")
    assert decode(p.account_update_multi_end(4)).only("accountUpdateMultiEnd") == (4,)
    assert decode(p.position_end()).only("positionEnd") == ()
    assert decode(p.pnl(8, 1.0, 2.0, 3.0)).only("pnl") == (8, 1.0, 2.0, 3.0)


def test_position_and_portfolio_decode() -> None:
    account, contract, qty, avg = decode(p.position("U1", CALL, 2.0, 389.0)).only("position")
    assert (account, contract.conId, contract.right, qty, avg) == (
        "U1",
        1096800032,
        "C",
        2.0,
        389.0,
    )
    args = decode(p.update_portfolio(AAPL, 200.0, 221.5, 44300.0, 200.0, 4300.0, 0.0, "U1")).only(
        "updatePortfolio"
    )
    assert args[0].primaryExchange == "NASDAQ" and args[1:] == (
        200.0,
        221.5,
        44300.0,
        200.0,
        4300.0,
        0.0,
        "U1",
    )


def _order_view(**kw: Any) -> p.OpenOrderView:
    base: dict[str, Any] = {
        "order_id": 12,
        "client_id": 17,
        "perm_id": 1800000001,
        "action": "BUY",
        "total_quantity": 2.0,
        "order_type": "LMT",
        "lmt_price": 3.5,
        "aux_price": None,
        "tif": "DAY",
        "account": "U1",
        "order_ref": "ref-1",
    }
    base.update(kw)
    return p.OpenOrderView(**base)


def test_open_order_decodes_order_contract_and_state() -> None:
    spy = decode(p.open_order(CALL, _order_view(), p.OrderStateView("Submitted")))
    order_id, contract, order, state = spy.only("openOrder")
    assert order_id == 12 and contract.conId == 1096800032
    assert (order.clientId, order.permId, order.action, order.totalQuantity) == (
        17,
        1800000001,
        "BUY",
        2.0,
    )
    assert (order.lmtPrice, order.auxPrice, order.orderRef, order.whatIf) == (
        3.5,
        UNSET_DOUBLE,
        "ref-1",
        False,
    )
    assert state.status == "Submitted"


def test_what_if_open_order_has_float_parsable_margins() -> None:
    state = p.OrderStateView(
        "PreSubmitted",
        init_margin_before=100.0,
        init_margin_change=50.0,
        init_margin_after=150.0,
        maint_margin_change=25.0,
        commission=1.3,
        commission_currency="USD",
    )
    _id, _c, order, st = decode(p.open_order(CALL, _order_view(what_if=True), state)).only(
        "openOrder"
    )
    assert order.whatIf is True
    assert float(st.initMarginChange) == 50.0 and float(st.maintMarginChange) == 25.0
    assert st.commission == 1.3 and st.commissionCurrency == "USD"


def test_bag_open_order_and_completed_order_carry_legs() -> None:
    bag = p.WireContract(
        28812380,
        "AAPL",
        "BAG",
        exchange="SMART",
        currency="USD",
        combo_legs=(p.ComboLegSpec(1, 1, "BUY"), p.ComboLegSpec(2, 1, "SELL")),
    )
    _id, contract, order, _st = decode(
        p.open_order(
            bag, _order_view(order_combo_leg_prices=(None, None)), p.OrderStateView("Submitted")
        )
    ).only("openOrder")
    assert [(leg.conId, leg.action) for leg in contract.comboLegs] == [(1, "BUY"), (2, "SELL")]
    assert len(order.orderComboLegs) == 2
    contract, order, state = decode(
        p.completed_order(
            bag, _order_view(filled_quantity=2.0, completed_status="Filled"), "Filled"
        )
    ).only("completedOrder")
    assert [leg.conId for leg in contract.comboLegs] == [1, 2]
    assert (order.permId, order.filledQuantity, state.status, state.completedStatus) == (
        1800000001,
        2.0,
        "Filled",
        "Filled",
    )
    assert decode(p.completed_orders_end()).only("completedOrdersEnd") == ()
    assert decode(p.open_order_end()).only("openOrderEnd") == ()


def test_order_status_exec_details_and_commission_decode() -> None:
    args = decode(p.order_status(12, "Filled", 2.0, 0.0, 3.5, 1800000001, 0, 3.5, 17)).only(
        "orderStatus"
    )
    assert args == (12, "Filled", 2.0, 0.0, 3.5, 1800000001, 0, 3.5, 17, "", 0.0)
    view = p.ExecutionView(
        "0000e0d5.00000001.01.01",
        "20261125 15:00:00 UTC",
        "U1",
        "CBOE",
        "BOT",
        2.0,
        3.5,
        1800000001,
        17,
        12,
        2.0,
        3.5,
        "ref-1",
    )
    req_id, contract, execution = decode(p.exec_details(-1, CALL, view)).only("execDetails")
    assert req_id == -1 and contract.conId == 1096800032
    assert (execution.orderId, execution.permId, execution.clientId, execution.side) == (
        12,
        1800000001,
        17,
        "BOT",
    )
    assert execution.time == dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
    assert execution.orderRef == "ref-1"
    (report,) = decode(p.commission_report("x", 1.3, "USD", None)).only("commissionReport")
    assert (report.execId, report.commission, report.realizedPNL) == ("x", 1.3, UNSET_DOUBLE)
    assert decode(p.exec_details_end(3)).only("execDetailsEnd") == (3,)


# --- parsers against ib_async's real Client -------------------------------------------------------


def client_messages(call: Any) -> list[list[str]]:
    """Run ``call(client)`` on a real ib_async Client at server version 178; return its messages."""
    sent: list[str] = []
    client = Client(SpyWrapper())
    client.connState = Client.CONNECTED
    client._serverVersion = 178
    client.sendMsg = sent.append  # type: ignore[method-assign]
    call(client)
    return [msg.split("\0")[:-1] for msg in sent]


def test_place_order_parse_of_a_plain_limit_order() -> None:
    order = LimitOrder("BUY", 3, 2.45, orderRef="preview-abc", tif="DAY", account="U1234567")
    [fields] = client_messages(
        lambda c: c.placeOrder(41, Option("AAPL", "20261218", 225, "C", "SMART"), order)
    )
    req = p.parse_place_order(fields)
    assert (req.order_id, req.action, req.total_quantity, req.order_type) == (41, "BUY", 3.0, "LMT")
    assert (req.lmt_price, req.aux_price, req.tif, req.order_ref, req.account) == (
        2.45,
        None,
        "DAY",
        "preview-abc",
        "U1234567",
    )
    assert req.contract.strike == 225.0 and req.contract.right == "C"
    assert req.transmit is True and req.what_if is False
    assert req.unread_fields == 0


def test_place_order_parse_of_a_bag_with_leg_prices_and_smart_params() -> None:
    bag = Contract(
        symbol="AAPL",
        secType="BAG",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=11, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=12, ratio=2, action="SELL", exchange="SMART"),
        ],
    )
    order = LimitOrder("BUY", 1, 1.25, orderRef="r", transmit=False)
    order.orderComboLegs = []
    order.smartComboRoutingParams = [TagValue("NonGuaranteed", "0")]
    [fields] = client_messages(lambda c: c.placeOrder(42, bag, order))
    req = p.parse_place_order(fields)
    assert [(leg.con_id, leg.ratio, leg.action) for leg in req.contract.combo_legs] == [
        (11, 1, "BUY"),
        (12, 2, "SELL"),
    ]
    assert req.smart_combo_params == (("NonGuaranteed", "0"),)
    assert req.transmit is False and req.lmt_price == 1.25 and req.unread_fields == 0


def test_place_order_parse_walks_conditions_and_what_if() -> None:
    order = StopLimitOrder("SELL", 200, 190.0, 191.0, whatIf=True, outsideRth=True, tif="GTC")
    order.conditions = [PriceCondition(price=180.0, conId=265598, exch="SMART")]
    [fields] = client_messages(lambda c: c.placeOrder(43, Stock("AAPL", "SMART", "USD"), order))
    req = p.parse_place_order(fields)
    assert req.what_if is True and req.outside_rth is True and req.tif == "GTC"
    assert (req.order_type, req.lmt_price, req.aux_price) == ("STP LMT", 190.0, 191.0)
    assert req.n_conditions == 1 and req.unread_fields == 0


def test_place_order_parse_refuses_a_truncated_message() -> None:
    [fields] = client_messages(lambda c: c.placeOrder(44, Stock("AAPL"), MarketOrder("BUY", 1)))
    with pytest.raises(p.ProtocolError):
        p.parse_place_order(fields[:40])


def test_place_order_parse_of_a_default_order_at_every_field() -> None:
    [fields] = client_messages(
        lambda c: c.placeOrder(
            45, Stock("AAPL"), Order(orderType="MKT", action="SELL", totalQuantity=5)
        )
    )
    req = p.parse_place_order(fields)
    assert (req.order_type, req.action, req.total_quantity, req.unread_fields) == (
        "MKT",
        "SELL",
        5.0,
        0,
    )


def test_market_rule_and_symbol_samples_decode() -> None:
    rule_id, increments = decode(p.market_rule(32, [(0.0, 0.01), (3.0, 0.05)])).only("marketRule")
    assert rule_id == 32 and [(i.lowEdge, i.increment) for i in increments] == [
        (0.0, 0.01),
        (3.0, 0.05),
    ]
    sample = p.SymbolSample(265598, "AAPL", "STK", "NASDAQ", "USD", ("OPT", "WAR"), "APPLE INC")
    req_id, [description] = decode(p.symbol_samples(6, [sample])).only("symbolSamples")
    assert req_id == 6 and description.contract.conId == 265598
    assert description.derivativeSecTypes == ["OPT", "WAR"]
    assert description.contract.description == "APPLE INC"
