"""TWS wire protocol at server version 178, as ib_async 2.1.0 writes and reads it.

Framing: after the ``API\\0`` greeting every message is a 4-byte big-endian length followed by
UTF-8 text; each field ends with ``\\0`` and field 0 is the message id.

Encoding rules for server -> client fields (ib_async's ``Decoder`` is strict, see
``notes/tws-wire-protocol.md`` §3 and pitfalls P1-P4):

* ints are written as integer strings, never ``"1.0"``;
* bools as ``"0"``/``"1"``;
* an unset double as ``"1.7976931348623157E308"`` (what real TWS sends);
* ``None`` as the empty string (the decoder then keeps its dataclass default).

This module has one encoder per server message (each returns the list of fields, message id first;
:func:`frame` turns it into bytes) and the parsers of the client requests the simulator answers,
including the full ``placeOrder`` walk with BAG legs. It knows nothing about the simulated broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_SERVER_VERSION",
    "MIN_CLIENT_VERSION",
    "UNSET_DOUBLE",
    "UNSET_DOUBLE_WIRE",
    "UNSET_INTEGER",
    "ComboLegSpec",
    "FieldReader",
    "OpenOrderView",
    "OrderStateView",
    "PlaceOrderRequest",
    "ProtocolError",
    "WireContract",
    "encode_field",
    "encode_fields",
    "frame",
    "parse_place_order",
    "read_frame",
    "read_handshake",
]

MAX_SERVER_VERSION = 178
"""The version ib_async 2.1.0 negotiates with current TWS (its ``MaxClientVersion``)."""
MIN_CLIENT_VERSION = 157
EXPECTED_CLIENT_RANGE = "v157..178"

UNSET_DOUBLE = sys.float_info.max
UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE_WIRE = "1.7976931348623157E308"

Field = str | int | float | bool | None

MAX_FRAME = 16 * 1024 * 1024


class ProtocolError(Exception):
    """A client sent bytes that do not follow the TWS protocol."""


# ---------------------------------------------------------------------------------------------
# field encoding and framing


def encode_field(value: Field) -> str:
    """One server -> client field as text, following the rules in the module docstring."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value >= UNSET_DOUBLE:
            return UNSET_DOUBLE_WIRE
        if math.isinf(value):
            return "Infinite"
        if math.isnan(value):
            return ""
        return repr(value)
    return value


def encode_fields(fields: Iterable[Field]) -> list[str]:
    """All fields of one message as text (what ib_async's decoder receives after splitting)."""
    return [encode_field(f) for f in fields]


def frame(fields: Iterable[Field]) -> bytes:
    """One length-prefixed message."""
    payload = "".join(encode_field(f) + "\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> list[str]:
    """Read one length-prefixed client message and split it into fields.

    Raises ``asyncio.IncompleteReadError`` at end of stream and :class:`ProtocolError` on an
    absurd length.
    """
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes")
    payload = await reader.readexactly(size)
    fields = payload.decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


async def read_handshake(reader: asyncio.StreamReader) -> tuple[int, int, str]:
    """Read ``API\\0`` and the ``v<min>..<max>[ options]`` range; return (min, max, options).

    Raises :class:`ProtocolError` if the greeting is not the TWS API's.
    """
    greeting = await reader.readexactly(4)
    if greeting != b"API\0":
        raise ProtocolError(f"bad greeting {greeting!r}")
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    if size > 1024:
        raise ProtocolError(f"version string of {size} bytes")
    text = (await reader.readexactly(size)).decode(errors="replace")
    match = re.match(r"v(\d+)\.\.(\d+)(?:\s+(.*))?$", text.strip("\0"))
    if not match:
        raise ProtocolError(f"bad version range {text!r}")
    return int(match.group(1)), int(match.group(2)), match.group(3) or ""


# ---------------------------------------------------------------------------------------------
# shared value types


@dataclass(frozen=True, slots=True)
class ComboLegSpec:
    """One leg of a BAG contract as it travels on the wire."""

    con_id: int
    ratio: int
    action: str
    exchange: str = "SMART"
    open_close: int = 0
    short_sale_slot: int = 0
    designated_location: str = ""
    exempt_code: int = -1


@dataclass(frozen=True, slots=True)
class WireContract:
    """A contract in the 12-field layout ib_async sends (C12), plus combo legs for BAG."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    combo_legs: tuple[ComboLegSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderStateView:
    """The OrderState part of openOrder; margins are text (ib_async keeps them as str)."""

    status: str
    init_margin_before: float = UNSET_DOUBLE
    maint_margin_before: float = UNSET_DOUBLE
    equity_with_loan_before: float = UNSET_DOUBLE
    init_margin_change: float = UNSET_DOUBLE
    maint_margin_change: float = UNSET_DOUBLE
    equity_with_loan_change: float = UNSET_DOUBLE
    init_margin_after: float = UNSET_DOUBLE
    maint_margin_after: float = UNSET_DOUBLE
    equity_with_loan_after: float = UNSET_DOUBLE
    commission: float = UNSET_DOUBLE
    min_commission: float = UNSET_DOUBLE
    max_commission: float = UNSET_DOUBLE
    commission_currency: str = ""
    warning_text: str = ""


@dataclass(frozen=True, slots=True)
class OpenOrderView:
    """Everything openOrder / completedOrder need to say about one order."""

    order_id: int
    client_id: int
    perm_id: int
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool = False
    oca_group: str = ""
    oca_type: int = 0
    open_close: str = ""
    origin: int = 0
    parent_id: int = 0
    good_after_time: str = ""
    good_till_date: str = ""
    what_if: bool = False
    transmit: bool = True
    trigger_method: int = 0
    order_combo_leg_prices: tuple[float | None, ...] = ()
    smart_combo_params: tuple[tuple[str, str], ...] = ()
    filled_quantity: float = 0.0
    completed_time: str = ""
    completed_status: str = ""


# ---------------------------------------------------------------------------------------------
# request parsing


class FieldReader:
    """Walks the fields of one client message; every accessor raises :class:`ProtocolError`
    when the message is shorter than the layout says."""

    __slots__ = ("fields", "pos")

    def __init__(self, fields: Sequence[str], start: int = 1) -> None:
        self.fields = fields
        self.pos = start

    def text(self) -> str:
        if self.pos >= len(self.fields):
            raise ProtocolError(f"message ended at field {self.pos}: {list(self.fields)[:8]}...")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def integer(self, default: int = 0) -> int:
        text = self.text()
        if text == "":
            return default
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError as exc:
                raise ProtocolError(f"field {self.pos - 1} not an int: {text!r}") from exc
            if as_float.is_integer():
                return int(as_float)
            raise ProtocolError(f"field {self.pos - 1} not an int: {text!r}") from None

    def double(self) -> float | None:
        """A double; empty (ib_async's encoding of UNSET) gives None."""
        text = self.text()
        if text == "":
            return None
        if text == "Infinite":
            return math.inf
        try:
            value = float(text)
        except ValueError as exc:
            raise ProtocolError(f"field {self.pos - 1} not a float: {text!r}") from exc
        return None if value >= UNSET_DOUBLE else value

    def flag(self) -> bool:
        text = self.text()
        return text not in ("", "0", "false", "False")

    def contract(self) -> WireContract:
        """The 12-field contract (conId as "0" and strike as "0.0" when unset)."""
        return WireContract(
            con_id=self.integer(),
            symbol=self.text(),
            sec_type=self.text(),
            last_trade_date=self.text(),
            strike=self.double() or 0.0,
            right=self.text(),
            multiplier=self.text(),
            exchange=self.text(),
            primary_exchange=self.text(),
            currency=self.text(),
            local_symbol=self.text(),
            trading_class=self.text(),
        )

    def skip(self, n: int) -> None:
        for _ in range(n):
            self.text()

    @property
    def remaining(self) -> int:
        return len(self.fields) - self.pos


@dataclass(slots=True)
class PlaceOrderRequest:
    """A decoded placeOrder (message 3) with the fields the simulator acts on."""

    order_id: int
    contract: WireContract
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    open_close: str
    origin: int
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    hidden: bool
    order_combo_leg_prices: tuple[float | None, ...] = ()
    smart_combo_params: tuple[tuple[str, str], ...] = ()
    good_after_time: str = ""
    good_till_date: str = ""
    what_if: bool = False
    algo_strategy: str = ""
    n_conditions: int = 0
    oca_type: int = 0
    """IB's ocaType: 1 cancel the rest of the group with block, 2 reduce the rest
    proportionately with block, 3 reduce without block; 0 (ib_async's default) is unset."""
    trigger_method: int = 0
    """IB's triggerMethod: 0 default, 1 double bid/ask, 2 last, 3 double last, 4 bid/ask,
    7 last or bid/ask, 8 mid-point (IB ``Order.triggerMethod``)."""
    e_trade_only: bool = False
    firm_quote_only: bool = False
    unread_fields: int = 0
    extra: dict[str, str] = field(default_factory=dict)


# Number of fields (after condType) of each order-condition type, from ib_async's dataclasses:
# Price(1): conjunction, isMore, price, conId, exch, triggerMethod; Time(3): conjunction, isMore,
# time; Margin(4): conjunction, isMore, percent; Execution(5): conjunction, secType, exch, symbol;
# Volume(6): conjunction, isMore, volume, conId, exch; PercentChange(7): conjunction, isMore,
# changePercent, conId, exch.
_CONDITION_FIELDS = {1: 6, 3: 3, 4: 3, 5: 4, 6: 5, 7: 5}


def parse_place_order(
    fields: Sequence[str], server_version: int = MAX_SERVER_VERSION
) -> PlaceOrderRequest:
    """Walk a placeOrder message in order (notes/tws-wire-protocol.md §4c).

    Raises :class:`ProtocolError` when the message is shorter than its layout. Fields left over at
    the end are counted in ``unread_fields`` (strict tests treat that as a failure).
    """
    r = FieldReader(fields)
    order_id = r.integer()
    contract = r.contract()
    r.text()  # secIdType
    r.text()  # secId
    action = r.text()
    total_quantity = r.double() or 0.0
    order_type = r.text()
    lmt_price = r.double()
    aux_price = r.double()
    tif = r.text()
    oca_group = r.text()
    account = r.text()
    open_close = r.text()
    origin = r.integer()
    order_ref = r.text()
    transmit = r.flag()
    parent_id = r.integer()
    r.skip(3)  # blockOrder, sweepToFill, displaySize
    trigger_method = r.integer()
    outside_rth = r.flag()
    hidden = r.flag()
    leg_prices: tuple[float | None, ...] = ()
    smart_params: tuple[tuple[str, str], ...] = ()
    if contract.sec_type == "BAG":
        legs = [
            ComboLegSpec(
                con_id=r.integer(),
                ratio=r.integer(),
                action=r.text(),
                exchange=r.text(),
                open_close=r.integer(),
                short_sale_slot=r.integer(),
                designated_location=r.text(),
                exempt_code=r.integer(-1),
            )
            for _ in range(r.integer())
        ]
        contract = dataclasses.replace(contract, combo_legs=tuple(legs))
        leg_prices = tuple(r.double() for _ in range(r.integer()))
        smart_params = tuple((r.text(), r.text()) for _ in range(r.integer()))
    r.text()  # deprecated sharesAllocation
    r.text()  # discretionaryAmt
    good_after_time = r.text()
    good_till_date = r.text()
    r.skip(3)  # faGroup, faMethod, faPercentage
    if server_version < 177:
        r.text()  # faProfile
    r.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    oca_type = r.integer()
    r.skip(5)  # rule80A, settlingFirm, allOrNone, minQty, percentOffset
    e_trade_only = r.flag()
    firm_quote_only = r.flag()
    # nbboPriceCap, auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower,
    # stockRangeUpper, overridePercentageConstraints, volatility, volatilityType
    r.skip(10)
    delta_neutral_order_type = r.text()
    r.text()  # deltaNeutralAuxPrice
    if delta_neutral_order_type:
        r.skip(8)
    r.skip(4)  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = r.double()
    if increment is not None and 0 < increment < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.text():  # hedgeType
        r.text()  # hedgeParam
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.flag():  # delta-neutral contract present
        r.skip(3)
    algo_strategy = r.text()
    if algo_strategy:
        r.skip(2 * r.integer())
    r.text()  # algoId
    what_if = r.flag()
    r.text()  # orderMiscOptions
    r.skip(3)  # solicited, randomizeSize, randomizePrice
    if order_type in {"PEG BENCH", "PEGBENCH"}:
        r.skip(5)
    n_conditions = r.integer()
    if n_conditions:
        for _ in range(n_conditions):
            cond_type = r.integer()
            if cond_type not in _CONDITION_FIELDS:
                raise ProtocolError(f"unknown order condition type {cond_type}")
            r.skip(_CONDITION_FIELDS[cond_type])
        r.skip(2)  # conditionsIgnoreRth, conditionsCancelOrder
    # adjustedOrderType, triggerPrice, lmtPriceOffset, adjustedStopPrice, adjustedStopLimitPrice,
    # adjustedTrailingAmount, adjustableTrailingUnit, extOperator, softDollarTier name and value,
    # cashQty, 4 x mifid2, dontUseAutoPriceForHedge, isOmsContainer,
    # discretionaryUpToLimitPrice, usePriceMgmtAlgo
    r.skip(19)
    if server_version >= 158:
        r.text()  # duration
    if server_version >= 160:
        r.text()  # postToAts
    if server_version >= 162:
        r.text()  # autoCancelParent
    if server_version >= 166:
        r.text()  # advancedErrorOverride
    if server_version >= 169:
        r.text()  # manualOrderTime
    if server_version >= 170:
        if contract.exchange == "IBKRATS":
            r.text()
        if order_type in {"PEG BEST", "PEGBEST"}:
            r.skip(2)
            if r.fields[r.pos - 1] == "Infinite":
                r.skip(2)
        elif order_type in {"PEG MID", "PEGMID"}:
            r.skip(2)
    return PlaceOrderRequest(
        order_id=order_id,
        contract=contract,
        action=action,
        total_quantity=total_quantity,
        order_type=order_type,
        lmt_price=lmt_price,
        aux_price=aux_price,
        tif=tif,
        oca_group=oca_group,
        account=account,
        open_close=open_close,
        origin=origin,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        hidden=hidden,
        order_combo_leg_prices=leg_prices,
        smart_combo_params=smart_params,
        good_after_time=good_after_time,
        good_till_date=good_till_date,
        what_if=what_if,
        algo_strategy=algo_strategy,
        n_conditions=n_conditions,
        oca_type=oca_type,
        trigger_method=trigger_method,
        e_trade_only=e_trade_only,
        firm_quote_only=firm_quote_only,
        unread_fields=r.remaining,
    )


# ---------------------------------------------------------------------------------------------
# encoders: server -> client. Each returns the message's fields, message id first.


def handshake_reply(version: int, connection_time: str) -> list[Field]:
    """Exactly two fields (pitfall P2): server version and connection time."""
    return [version, connection_time]


def managed_accounts(accounts: Sequence[str]) -> list[Field]:
    return [15, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> list[Field]:
    return [9, 1, order_id]


def error(req_id: int, code: int, text: str, advanced_order_reject_json: str = "") -> list[Field]:
    """Error or notice; the JSON field is mandatory at server version >= 166 (pitfall P1)."""
    return [4, 2, req_id, code, text, advanced_order_reject_json]


def current_time(epoch_seconds: int) -> list[Field]:
    return [49, 1, epoch_seconds]


def tick_price(
    req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0
) -> list[Field]:
    return [1, 6, req_id, tick_type, price, size, attr_mask]


def tick_size(req_id: int, tick_type: int, size: float) -> list[Field]:
    return [2, 6, req_id, tick_type, size]


def tick_generic(req_id: int, tick_type: int, value: float) -> list[Field]:
    return [45, 6, req_id, tick_type, value]


def tick_string(req_id: int, tick_type: int, value: str) -> list[Field]:
    return [46, 6, req_id, tick_type, value]


def tick_option_computation(
    req_id: int,
    tick_type: int,
    *,
    implied_vol: float,
    delta: float,
    opt_price: float,
    pv_dividend: float,
    gamma: float,
    vega: float,
    theta: float,
    und_price: float,
    tick_attrib: int = 0,
) -> list[Field]:
    """Exactly 12 fields, no version. "Not computed" is -1 (iv, prices) or -2 (greeks), never
    empty (pitfall P3)."""
    return [
        21,
        req_id,
        tick_type,
        tick_attrib,
        implied_vol,
        delta,
        opt_price,
        pv_dividend,
        gamma,
        vega,
        theta,
        und_price,
    ]


def tick_snapshot_end(req_id: int) -> list[Field]:
    return [57, 1, req_id]


def market_data_type(req_id: int, data_type: int) -> list[Field]:
    return [58, 1, req_id, data_type]


def tick_req_params(
    req_id: int, min_tick: float, bbo_exchange: str, snapshot_permissions: int
) -> list[Field]:
    return [81, req_id, min_tick, bbo_exchange, snapshot_permissions]


@dataclass(frozen=True, slots=True)
class ContractDetailsView:
    """The fields of contractDetails (message 10) the simulator fills."""

    contract: WireContract
    market_name: str
    min_tick: float
    order_types: str
    valid_exchanges: str
    under_con_id: int
    long_name: str
    contract_month: str
    industry: str
    category: str
    subcategory: str
    time_zone_id: str
    trading_hours: str
    liquid_hours: str
    agg_group: int
    under_symbol: str
    under_sec_type: str
    market_rule_ids: str
    real_expiration_date: str
    stock_type: str
    price_magnifier: int = 1
    min_size: float = 1.0
    size_increment: float = 1.0
    suggested_size_increment: float = 1.0


def contract_details(req_id: int, cd: ContractDetailsView) -> list[Field]:
    """contractDetails at >= 164: no version field and no mdSizeMultiplier."""
    c = cd.contract
    return [
        10,
        req_id,
        c.symbol,
        c.sec_type,
        c.last_trade_date,
        c.strike,
        c.right,
        c.exchange,
        c.currency,
        c.local_symbol,
        cd.market_name,
        c.trading_class,
        c.con_id,
        cd.min_tick,
        c.multiplier,
        cd.order_types,
        cd.valid_exchanges,
        cd.price_magnifier,
        cd.under_con_id,
        cd.long_name,
        c.primary_exchange,
        cd.contract_month,
        cd.industry,
        cd.category,
        cd.subcategory,
        cd.time_zone_id,
        cd.trading_hours,
        cd.liquid_hours,
        "",  # evRule
        None,  # evMultiplier (int; empty keeps the default)
        0,  # number of secIds
        cd.agg_group,
        cd.under_symbol,
        cd.under_sec_type,
        cd.market_rule_ids,
        cd.real_expiration_date,
        cd.stock_type,
        cd.min_size,
        cd.size_increment,
        cd.suggested_size_increment,
    ]


def contract_details_end(req_id: int) -> list[Field]:
    return [52, 1, req_id]


def security_definition_option_parameter(
    req_id: int,
    exchange: str,
    underlying_con_id: int,
    trading_class: str,
    multiplier: str,
    expirations: Sequence[str],
    strikes: Sequence[float],
) -> list[Field]:
    return [
        75,
        req_id,
        exchange,
        underlying_con_id,
        trading_class,
        multiplier,
        len(expirations),
        *expirations,
        len(strikes),
        *strikes,
    ]


def security_definition_option_parameter_end(req_id: int) -> list[Field]:
    return [76, req_id]


@dataclass(frozen=True, slots=True)
class Bar:
    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    bar_count: int


def historical_data(req_id: int, start: str, end: str, bars: Sequence[Bar]) -> list[Field]:
    """Bars and the end of the request in one message (historicalDataEnd exists only >= 196)."""
    fields: list[Field] = [17, req_id, start, end, len(bars)]
    for b in bars:
        fields += [b.date, b.open, b.high, b.low, b.close, b.volume, b.wap, b.bar_count]
    return fields


def news_providers(providers: Sequence[tuple[str, str]]) -> list[Field]:
    fields: list[Field] = [85, len(providers)]
    for code, name in providers:
        fields += [code, name]
    return fields


def historical_news(
    req_id: int, time: str, provider_code: str, article_id: str, headline: str
) -> list[Field]:
    """``time`` as ``"yyyy-MM-dd HH:mm:ss.0"``."""
    return [86, req_id, time, provider_code, article_id, headline]


def historical_news_end(req_id: int, has_more: bool) -> list[Field]:
    return [87, req_id, has_more]


def news_article(req_id: int, article_type: int, text: str) -> list[Field]:
    return [83, req_id, article_type, text]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[Field]:
    return [63, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[Field]:
    return [64, 1, req_id]


def update_account_value(key: str, value: str, currency: str, account: str) -> list[Field]:
    return [6, 2, key, value, currency, account]


def update_account_time(hh_mm: str) -> list[Field]:
    return [8, 1, hh_mm]


def account_download_end(account: str) -> list[Field]:
    return [54, 1, account]


def account_update_multi(
    req_id: int, account: str, model_code: str, key: str, value: str, currency: str
) -> list[Field]:
    return [73, 1, req_id, account, model_code, key, value, currency]


def account_update_multi_end(req_id: int) -> list[Field]:
    return [74, 1, req_id]


def update_portfolio(
    c: WireContract,
    position: float,
    market_price: float,
    market_value: float,
    average_cost: float,
    unrealized_pnl: float,
    realized_pnl: float,
    account: str,
) -> list[Field]:
    """Exactly 20 fields; the contract carries primaryExchange, not exchange."""
    return [
        7,
        8,
        c.con_id,
        c.symbol,
        c.sec_type,
        c.last_trade_date,
        c.strike,
        c.right,
        c.multiplier,
        c.primary_exchange,
        c.currency,
        c.local_symbol,
        c.trading_class,
        position,
        market_price,
        market_value,
        average_cost,
        unrealized_pnl,
        realized_pnl,
        account,
    ]


def position(account: str, c: WireContract, quantity: float, avg_cost: float) -> list[Field]:
    """Exactly 16 fields."""
    return [
        61,
        3,
        account,
        c.con_id,
        c.symbol,
        c.sec_type,
        c.last_trade_date,
        c.strike,
        c.right,
        c.multiplier,
        c.exchange,
        c.currency,
        c.local_symbol,
        c.trading_class,
        quantity,
        avg_cost,
    ]


def position_end() -> list[Field]:
    return [62, 1]


def _price_or_unset(value: float | None) -> float:
    return UNSET_DOUBLE if value is None else value


def _contract11(c: WireContract) -> list[Field]:
    return [
        c.con_id,
        c.symbol,
        c.sec_type,
        c.last_trade_date,
        c.strike,
        c.right,
        c.multiplier,
        c.exchange,
        c.currency,
        c.local_symbol,
        c.trading_class,
    ]


def _combo_fields(c: WireContract, o: OpenOrderView) -> list[Field]:
    fields: list[Field] = ["", len(c.combo_legs)]  # comboLegsDescrip, nLegs
    for leg in c.combo_legs:
        fields += [
            leg.con_id,
            leg.ratio,
            leg.action,
            leg.exchange,
            leg.open_close,
            leg.short_sale_slot,
            leg.designated_location,
            leg.exempt_code,
        ]
    fields.append(len(o.order_combo_leg_prices))
    fields += [_price_or_unset(p) for p in o.order_combo_leg_prices]
    fields.append(len(o.smart_combo_params))
    for tag, value in o.smart_combo_params:
        fields += [tag, value]
    return fields


def open_order(c: WireContract, o: OpenOrderView, st: OrderStateView) -> list[Field]:
    """openOrder (message 5) at server version >= 177 (no faProfile), per ib_async's decoder.

    For a what-if reply the margin fields must be float-parsable numbers (pitfall P4); otherwise
    they are sent unset like real TWS does.
    """
    fields: list[Field] = [5, o.order_id, *_contract11(c)]
    fields += [
        o.action,
        o.total_quantity,
        o.order_type,
        _price_or_unset(o.lmt_price),
        _price_or_unset(o.aux_price),
        o.tif,
        o.oca_group,
        o.account,
        o.open_close,
        o.origin,
        o.order_ref,
        o.client_id,
        o.perm_id,
        o.outside_rth,
        False,  # hidden
        0.0,  # discretionaryAmt
        o.good_after_time,
        "",  # deprecated sharesAllocation
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
        "",  # modelCode
        o.good_till_date,
        "",  # rule80A
        UNSET_DOUBLE,  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        0,  # auctionStrategy
        UNSET_DOUBLE,  # startingPrice
        UNSET_DOUBLE,  # stockRefPrice
        UNSET_DOUBLE,  # delta
        UNSET_DOUBLE,  # stockRangeLower
        UNSET_DOUBLE,  # stockRangeUpper
        0,  # displaySize
        False,  # blockOrder
        False,  # sweepToFill
        False,  # allOrNone
        None,  # minQty (unset int)
        o.oca_type,
        False,  # eTradeOnly
        False,  # firmQuoteOnly
        UNSET_DOUBLE,  # nbboPriceCap
        o.parent_id,
        o.trigger_method,
        UNSET_DOUBLE,  # volatility
        None,  # volatilityType
        "",  # deltaNeutralOrderType (empty: no 8 DN fields follow)
        UNSET_DOUBLE,  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        None,  # referencePriceType
        UNSET_DOUBLE,  # trailStopPrice
        UNSET_DOUBLE,  # trailingPercent
        UNSET_DOUBLE,  # basisPoints
        None,  # basisPointsType
    ]
    fields += _combo_fields(c, o)
    fields += [
        None,  # scaleInitLevelSize
        None,  # scaleSubsLevelSize
        UNSET_DOUBLE,  # scalePriceIncrement (unset: no 7 scale fields follow)
        "",  # hedgeType (empty: no hedgeParam)
        False,  # optOutSmartRouting
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        False,  # delta-neutral contract present
        "",  # algoStrategy
        False,  # solicited
        o.what_if,
        st.status,
        st.init_margin_before,
        st.maint_margin_before,
        st.equity_with_loan_before,
        st.init_margin_change,
        st.maint_margin_change,
        st.equity_with_loan_change,
        st.init_margin_after,
        st.maint_margin_after,
        st.equity_with_loan_after,
        st.commission,
        st.min_commission,
        st.max_commission,
        st.commission_currency,
        st.warning_text,
        False,  # randomizeSize
        False,  # randomizePrice
        0,  # number of conditions
        "",  # adjustedOrderType
        UNSET_DOUBLE,  # triggerPrice
        UNSET_DOUBLE,  # trailStopPrice
        UNSET_DOUBLE,  # lmtPriceOffset
        UNSET_DOUBLE,  # adjustedStopPrice
        UNSET_DOUBLE,  # adjustedStopLimitPrice
        UNSET_DOUBLE,  # adjustedTrailingAmount
        0,  # adjustableTrailingUnit
        "",  # softDollarTier name
        "",  # softDollarTier value
        "",  # softDollarTier displayName
        UNSET_DOUBLE,  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        False,  # discretionaryUpToLimitPrice
        False,  # usePriceMgmtAlgo
        None,  # duration (>= 159)
        None,  # postToAts (>= 160)
        False,  # autoCancelParent (>= 162)
        None,  # minTradeQty (>= 170)
        None,  # minCompeteSize
        UNSET_DOUBLE,  # competeAgainstBestOffset
        UNSET_DOUBLE,  # midOffsetAtWhole
        UNSET_DOUBLE,  # midOffsetAtHalf
    ]
    return fields


def open_order_end() -> list[Field]:
    return [53, 1]


def order_status(
    order_id: int,
    status: str,
    filled: float,
    remaining: float,
    avg_fill_price: float,
    perm_id: int,
    parent_id: int,
    last_fill_price: float,
    client_id: int,
    why_held: str = "",
    mkt_cap_price: float = 0.0,
) -> list[Field]:
    """No version field; ``client_id`` must be the order's client (pitfall P7)."""
    return [
        3,
        order_id,
        status,
        filled,
        remaining,
        avg_fill_price,
        perm_id,
        parent_id,
        last_fill_price,
        client_id,
        why_held,
        mkt_cap_price,
    ]


def completed_order(c: WireContract, o: OpenOrderView, status: str) -> list[Field]:
    """completedOrder (message 101): openOrder without orderId, clientId, whatIf, margins."""
    fields: list[Field] = [101, *_contract11(c)]
    fields += [
        o.action,
        o.total_quantity,
        o.order_type,
        _price_or_unset(o.lmt_price),
        _price_or_unset(o.aux_price),
        o.tif,
        o.oca_group,
        o.account,
        o.open_close,
        o.origin,
        o.order_ref,
        o.perm_id,
        o.outside_rth,
        False,  # hidden
        0.0,  # discretionaryAmt
        o.good_after_time,
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
        "",  # modelCode
        o.good_till_date,
        "",  # rule80A
        UNSET_DOUBLE,  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        UNSET_DOUBLE,  # startingPrice
        UNSET_DOUBLE,  # stockRefPrice
        UNSET_DOUBLE,  # delta
        UNSET_DOUBLE,  # stockRangeLower
        UNSET_DOUBLE,  # stockRangeUpper
        0,  # displaySize
        False,  # sweepToFill
        False,  # allOrNone
        None,  # minQty
        o.oca_type,
        0,  # triggerMethod
        UNSET_DOUBLE,  # volatility
        None,  # volatilityType
        "",  # deltaNeutralOrderType
        UNSET_DOUBLE,  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        None,  # referencePriceType
        UNSET_DOUBLE,  # trailStopPrice
        UNSET_DOUBLE,  # trailingPercent
    ]
    fields += _combo_fields(c, o)
    fields += [
        None,  # scaleInitLevelSize
        None,  # scaleSubsLevelSize
        UNSET_DOUBLE,  # scalePriceIncrement
        "",  # hedgeType
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        False,  # delta-neutral contract present
        "",  # algoStrategy
        False,  # solicited
        status,
        False,  # randomizeSize
        False,  # randomizePrice
        0,  # number of conditions
        UNSET_DOUBLE,  # trailStopPrice
        UNSET_DOUBLE,  # lmtPriceOffset
        UNSET_DOUBLE,  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        "",  # autoCancelDate
        o.filled_quantity,
        0,  # refFuturesConId
        False,  # autoCancelParent
        "",  # shareholder
        False,  # imbalanceOnly
        False,  # routeMarketableToBbo
        0,  # parentPermId
        o.completed_time,
        o.completed_status,
        None,  # minTradeQty (>= 170)
        None,  # minCompeteSize
        UNSET_DOUBLE,  # competeAgainstBestOffset
        UNSET_DOUBLE,  # midOffsetAtWhole
        UNSET_DOUBLE,  # midOffsetAtHalf
    ]
    return fields


def completed_orders_end() -> list[Field]:
    return [102]


@dataclass(frozen=True, slots=True)
class ExecutionView:
    exec_id: str
    time: str
    account: str
    exchange: str
    side: str
    shares: float
    price: float
    perm_id: int
    client_id: int
    order_id: int
    cum_qty: float
    avg_price: float
    order_ref: str


def exec_details(req_id: int, c: WireContract, e: ExecutionView) -> list[Field]:
    """execDetails (message 11) at >= 178 (ends with pendingPriceRevision); ``req_id`` -1 = live."""
    return [
        11,
        req_id,
        e.order_id,
        *_contract11(c),
        e.exec_id,
        e.time,
        e.account,
        e.exchange,
        e.side,
        e.shares,
        e.price,
        e.perm_id,
        e.client_id,
        0,  # liquidation
        e.cum_qty,
        e.avg_price,
        e.order_ref,
        "",  # evRule
        None,  # evMultiplier
        "",  # modelCode
        1 if e.side == "BOT" else 2,  # lastLiquidity: 1 added, 2 removed
        False,  # pendingPriceRevision
    ]


def exec_details_end(req_id: int) -> list[Field]:
    return [55, 1, req_id]


def commission_report(
    exec_id: str, commission: float, currency: str, realized_pnl: float | None
) -> list[Field]:
    """Exactly 8 fields; realized P&L and yield unset when not applicable, like real TWS."""
    return [
        59,
        1,
        exec_id,
        commission,
        currency,
        UNSET_DOUBLE if realized_pnl is None else realized_pnl,
        UNSET_DOUBLE,  # yield
        None,  # yieldRedemptionDate
    ]


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> list[Field]:
    fields: list[Field] = [93, rule_id, len(increments)]
    for low_edge, increment in increments:
        fields += [low_edge, increment]
    return fields


@dataclass(frozen=True, slots=True)
class SymbolSample:
    con_id: int
    symbol: str
    sec_type: str
    primary_exchange: str
    currency: str
    derivative_sec_types: tuple[str, ...]
    description: str


def symbol_samples(req_id: int, samples: Sequence[SymbolSample]) -> list[Field]:
    """symbolSamples (message 79); description and issuerId exist at >= 176."""
    fields: list[Field] = [79, req_id, len(samples)]
    for s in samples:
        fields += [s.con_id, s.symbol, s.sec_type, s.primary_exchange, s.currency]
        fields += [len(s.derivative_sec_types), *s.derivative_sec_types, s.description, ""]
    return fields


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> list[Field]:
    return [94, req_id, daily, unrealized, realized]


def pnl_single(
    req_id: int, pos: float, daily: float, unrealized: float, realized: float, value: float
) -> list[Field]:
    return [95, req_id, pos, daily, unrealized, realized, value]
