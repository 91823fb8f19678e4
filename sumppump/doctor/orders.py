"""``sumppump doctor --orders``: what-if every order shape SumpPump sends, placing nothing.

Against the TWS it is pointed at (paper or live), through the connection actor's messages only
(like :mod:`sumppump.doctor`; ib_async is not imported here), it previews with ``whatIf`` (TWS's
"Preview", never transmitted) each shape on contracts near the money of a liquid symbol:

* single-option LMT, and its stop (STP on the option, IB's default trigger for US options);
* guaranteed two-leg debit spread (BAG LMT), straddle, buy-write (100 shares + 1 short call in
  one BAG), collar (long put + short call), and each one's stop as IB supports it: a BAG STP
  with an explicit ``triggerMethod`` (4 = bid/ask, set by the order desk), since IB simulates
  combo stops and defaults them to "Last" (notes/ib-behaviour.md §a);
* the old combo stop, BAG STP LMT, which IB's order-type tables do not list for BAG (387);
* an OCA pair (two orders of one new group name, ocaType 2).

Stops are previewed on the buying side (a buy stop above the market), so the preview tests the
order type on that contract without needing the position a real protective stop closes.

It also reports the market-data type the account gets for stocks and for options. Each shape is
``accepted``, ``refused`` (with IB's code and text) or ``could not check``. The report is kept per
account for the trading day in a small JSON file under the user data dir (platformdirs), so a
preview can say up front "IB refused this stop shape on your account: ..." (:func:`shape_refusal`,
pure). The entry point for the CLI is :func:`run_orders_check`; :func:`render_table` gives the
table as text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal

import anyio

from sumppump.actors.order_building import new_oca_group
from sumppump.actors.runtime import ActorDown, CallTimeout, Ref
from sumppump.messages.base import Reply
from sumppump.messages.common import OptionContract, Quote, StockContract
from sumppump.messages.connection import (
    ConnectionState,
    FetchOptionContracts,
    FetchOptionParams,
    FetchQuotes,
    GetConnectionState,
    OptionContracts,
    OptionParams,
    Quotes,
    QuoteTarget,
    ResolveStock,
    StockResolved,
)
from sumppump.messages.orders import (
    OrderLeg,
    OrderRejected,
    OrderSpec,
    OrderType,
    WhatIf,
    WhatIfResult,
)
from sumppump.trading.ib_shapes import (
    SHAPES,
    OrdersReport,
    ShapeResult,
    load_report,
    report_path,
    save_report,
    shape_of,
    shape_refusal,
)

__all__ = [
    "SHAPES",
    "OrdersReport",
    "ShapeResult",
    "check_order_shapes",
    "load_report",
    "render_table",
    "report_path",
    "run_orders_check",
    "save_report",
    "shape_of",
    "shape_refusal",
]

log = logging.getLogger(__name__)

#: A limit no one would fill at: the preview is never transmitted, but stays harmless anyway.
FAR_LIMIT: Final = 0.05
#: A buy stop far above any option price.
FAR_STOP: Final = 999.0
DEFAULT_SYMBOL: Final = "AAPL"
WHAT_IF_TIMEOUT: Final = 12.0


# ---------------------------------------------------------------------- the check


async def _call(ref: Ref, msg: Any, timeout: float) -> Reply | str:
    try:
        return await ref.call(msg, timeout=timeout)
    except CallTimeout:
        return f"no answer within {timeout:.0f}s"
    except ActorDown as exc:
        return f"the connection actor stopped ({exc.__cause__ or exc})"


def _describe(reply: Reply | str) -> str:
    if isinstance(reply, str):
        return reply
    detail = getattr(reply, "message", "") or getattr(reply, "reason", "")
    return f"{type(reply).__name__} {detail}".strip()


def _option_leg(c: OptionContract, action: Literal["BUY", "SELL"]) -> OrderLeg:
    return OrderLeg(
        con_id=c.con_id,
        symbol=c.symbol,
        sec_type="OPT",
        action=action,
        ratio=1,
        multiplier=c.multiplier,
        expiry=c.expiry,
        strike=c.strike,
        right=c.right,
        exchange=c.exchange,
    )


def _stock_leg(stock: StockContract, ratio: int) -> OrderLeg:
    return OrderLeg(
        con_id=stock.con_id,
        symbol=stock.symbol,
        sec_type="STK",
        action="BUY",
        ratio=ratio,
        multiplier=1.0,
    )


@dataclass(frozen=True, slots=True)
class _Contracts:
    stock: StockContract
    call: OptionContract
    call_above: OptionContract
    put: OptionContract
    put_below: OptionContract


def _shape_specs(
    account: str, c: _Contracts, new_group: Callable[[str], str]
) -> list[tuple[str, tuple[OrderSpec, ...]]]:
    """Each shape's what-if order(s)."""
    symbol = c.stock.symbol

    def spec(legs: tuple[OrderLeg, ...], order_type: OrderType = "LMT", **kw: Any) -> OrderSpec:
        prices: dict[str, Any] = {}
        if order_type in ("LMT", "STP LMT"):
            prices["limit_price"] = FAR_STOP + 1 if order_type == "STP LMT" else FAR_LIMIT
        if order_type in ("STP", "STP LMT"):
            prices["stop_price"] = FAR_STOP
        return OrderSpec(
            order_ref="",
            account=account,
            symbol=symbol,
            legs=legs,
            quantity=1,
            order_type=order_type,
            tif="GTC" if order_type != "LMT" else "DAY",
            **prices,
            **kw,
        )

    single = (_option_leg(c.call, "BUY"),)
    spread = (_option_leg(c.call, "BUY"), _option_leg(c.call_above, "SELL"))
    straddle = (_option_leg(c.call, "BUY"), _option_leg(c.put, "BUY"))
    buy_write = (_stock_leg(c.stock, 100), _option_leg(c.call_above, "SELL"))
    collar = (_option_leg(c.put_below, "BUY"), _option_leg(c.call_above, "SELL"))
    group = new_group(f"doctor-{symbol}")
    return [
        ("single option LMT", (spec(single),)),
        ("single option stop (STP)", (spec(single, "STP"),)),
        ("debit spread BAG LMT", (spec(spread),)),
        ("debit spread stop (BAG STP, trigger bid/ask)", (spec(spread, "STP"),)),
        ("old combo stop (BAG STP LMT)", (spec(spread, "STP LMT"),)),
        ("straddle BAG LMT", (spec(straddle),)),
        ("straddle stop (BAG STP, trigger bid/ask)", (spec(straddle, "STP"),)),
        ("buy-write BAG LMT (100 STK + 1 call)", (spec(buy_write),)),
        ("buy-write stop (BAG STP, trigger bid/ask)", (spec(buy_write, "STP"),)),
        ("collar BAG LMT", (spec(collar),)),
        ("collar stop (BAG STP, trigger bid/ask)", (spec(collar, "STP"),)),
        (
            "OCA pair (ocaType 2)",
            (
                spec(single, oca_group=group, oca_type=2),
                spec(spread, "STP", oca_group=group, oca_type=2),
            ),
        ),
    ]


def _describe_spec(spec: OrderSpec) -> str:
    legs = " / ".join(
        f"{leg.action} {leg.ratio} {leg.symbol}"
        + (f" {leg.expiry} {leg.strike:g}{leg.right}" if leg.sec_type == "OPT" else " STK")
        for leg in spec.legs
    )
    price = spec.stop_price if spec.order_type in ("STP", "STP LMT") else spec.limit_price
    kind = "BAG " if len(spec.legs) > 1 else ""
    return f"{kind}{spec.order_type} {price:g} [{legs}]" if price is not None else legs


async def _what_if_shape(
    connection: Ref, shape: str, specs: Sequence[OrderSpec], timeout: float
) -> ShapeResult:
    order = "; ".join(_describe_spec(s) for s in specs)
    for spec in specs:
        reply = await _call(connection, WhatIf(spec=spec), timeout)
        match reply:
            case WhatIfResult():
                continue
            case OrderRejected(code=code, message=message) if code:
                return ShapeResult(shape, "refused", code, message, order)
            case _:
                return ShapeResult(shape, "could not check", None, _describe(reply), order)
    return ShapeResult(shape, "accepted", None, "", order)


async def _contracts(connection: Ref, symbol: str) -> tuple[_Contracts | None, str, str, str]:
    """(contracts near the money, stock data type, option data type, why not)."""
    resolved = await _call(connection, ResolveStock(symbol=symbol), 10.0)
    if not isinstance(resolved, StockResolved):
        return None, "unknown", "unknown", f"resolving {symbol}: {_describe(resolved)}"
    stock = resolved.contract
    target = QuoteTarget(con_id=stock.con_id, symbol=stock.symbol, sec_type=stock.sec_type)
    quotes = await _call(connection, FetchQuotes(targets=(target,), settle=3.0), 10.0)
    stock_quote = quotes.quotes[0] if isinstance(quotes, Quotes) and quotes.quotes else None
    stock_data = stock_quote.data_type if stock_quote else f"none ({_describe(quotes)})"
    params = await _call(
        connection,
        FetchOptionParams(symbol=symbol, underlying_con_id=stock.con_id, sec_type="STK"),
        10.0,
    )
    if not isinstance(params, OptionParams) or not params.sets:
        return None, stock_data, "unknown", f"option parameters: {_describe(params)}"
    chosen = next((s for s in params.sets if s.exchange == "SMART"), params.sets[0])
    expiries = sorted(chosen.expirations)
    expiry = expiries[min(1, len(expiries) - 1)]
    listed = await _call(
        connection,
        FetchOptionContracts(symbol=symbol, expiry=expiry, trading_class=chosen.trading_class),
        15.0,
    )
    if not isinstance(listed, OptionContracts) or not listed.contracts:
        return None, stock_data, "unknown", f"the {expiry} options: {_describe(listed)}"
    price = _reference_price(stock_quote, listed.contracts)
    strikes = sorted({c.strike for c in listed.contracts})
    atm = min(strikes, key=lambda k: abs(k - price))
    above = next((k for k in strikes if k > atm), atm)
    below = next((k for k in reversed(strikes) if k < atm), atm)

    def pick(strike: float, right: str) -> OptionContract | None:
        return next((c for c in listed.contracts if c.strike == strike and c.right == right), None)

    found = (pick(atm, "C"), pick(above, "C"), pick(atm, "P"), pick(below, "P"))
    if any(c is None for c in found):
        return None, stock_data, "unknown", f"no call and put at {atm:g} and its neighbours"
    call, call_above, put, put_below = found
    assert call and call_above and put and put_below
    option_target = QuoteTarget(con_id=call.con_id, symbol=symbol, sec_type="OPT")
    option_quotes = await _call(connection, FetchQuotes(targets=(option_target,), settle=3.0), 10)
    option_data = (
        option_quotes.quotes[0].data_type
        if isinstance(option_quotes, Quotes) and option_quotes.quotes
        else f"none ({_describe(option_quotes)})"
    )
    return _Contracts(stock, call, call_above, put, put_below), stock_data, option_data, ""


def _reference_price(quote: Quote | None, contracts: Sequence[OptionContract]) -> float:
    if quote is not None:
        for value in (quote.mid, quote.last, quote.close):
            if value is not None and value > 0:
                return value
    strikes = sorted({c.strike for c in contracts})
    return strikes[len(strikes) // 2]


async def check_order_shapes(
    connection: Ref,
    *,
    account: str,
    today: date,
    symbol: str = DEFAULT_SYMBOL,
    what_if_timeout: float = WHAT_IF_TIMEOUT,
) -> OrdersReport:
    """What-if every shape of :data:`SHAPES` on ``symbol`` near the money for ``account``,
    through a connected connection actor. Places nothing (what-if only). Never raises for a
    TWS answer: a shape that could not be previewed is ``could not check`` with the reason.
    Cancellation propagates."""
    contracts, stock_data, option_data, why = await _contracts(connection, symbol)
    if contracts is None:
        results = tuple(ShapeResult(s, "could not check", None, why) for s in SHAPES)
    else:
        results = tuple(
            [
                await _what_if_shape(connection, shape, specs, what_if_timeout)
                for shape, specs in _shape_specs(account, contracts, new_oca_group)
            ]
        )
    return OrdersReport(account, today.isoformat(), symbol, stock_data, option_data, results)


async def run_orders_check(
    connection: Ref,
    *,
    today: date,
    symbol: str = DEFAULT_SYMBOL,
    connect_timeout: float = 20.0,
    directory: Path | None = None,
) -> OrdersReport | str:
    """Wait for the connection actor to be connected, check every shape for the first account
    TWS reports, and keep the report for the day. Returns the report, or why it could not run.
    """
    state: ConnectionState | None = None
    with anyio.move_on_after(connect_timeout):
        while state is None or state.state != "connected":
            reply = await _call(connection, GetConnectionState(), 2.0)
            state = reply if isinstance(reply, ConnectionState) else None
            if state is None or state.state != "connected":
                await anyio.sleep(0.05)
    if state is None or state.state != "connected" or not state.accounts:
        return f"TWS did not complete the API handshake within {connect_timeout:.0f}s"
    report = await check_order_shapes(
        connection, account=state.accounts[0], today=today, symbol=symbol
    )
    try:
        save_report(report, directory)
    except OSError as exc:
        log.warning("could not keep the doctor --orders report: %s", exc)
    return report


def render_table(report: OrdersReport) -> str:
    """The report as a plain-text table (one row per shape)."""
    rows = [("shape", "result", "IB's answer")]
    for r in report.results:
        answer = f"{r.code}: {r.text}" if r.code is not None else r.text
        rows.append((r.shape, r.outcome, answer))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [
        f"Order shapes previewed (what-if, nothing placed) on {report.account}, {report.day}, "
        f"{report.symbol}",
        f"Market data: stocks {report.stock_data}, options {report.option_data}",
    ]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
    return "\n".join(lines)
