"""The options permission check: a what-if (never transmitted) of one near-the-money call at a
one-nickel limit. A permission rejection, or TWS's Read-Only API mode, is a FAIL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Final

from sumppump.actors.runtime import Ref
from sumppump.doctor.calls import NoReply, call_actor, could_not_run
from sumppump.doctor.results import (
    FIX_OPTIONS_LEVEL,
    FIX_READ_ONLY,
    OPTIONS,
    CheckResult,
)
from sumppump.messages.base import new_id
from sumppump.messages.common import (
    NotImplementedYet,
    OptionContract,
    StockContract,
    TwsError,
)
from sumppump.messages.connection import (
    FetchOptionContracts,
    FetchOptionParams,
    OptionContracts,
    OptionParams,
    OptionParamSet,
)
from sumppump.messages.orders import OrderLeg, OrderRejected, OrderSpec, WhatIf, WhatIfResult

__all__ = ["WHAT_IF_LIMIT", "WHAT_IF_TIMEOUT", "check_options"]

#: A one-nickel limit conforms to every US option tick size and is never marketable.
WHAT_IF_LIMIT: Final = 0.05
#: TWS answers a what-if in well under a second; silence means it will not answer.
WHAT_IF_TIMEOUT: Final = 8.0


def _choose_expiry(expirations: Sequence[str], today: date) -> str:
    """The first expiry at least a week away (less likely to stop trading during the check),
    else the last one listed."""
    horizon = (today + timedelta(days=7)).isoformat()
    for expiry in expirations:
        if expiry >= horizon:
            return expiry
    return expirations[-1]


def _choose_param_set(sets: Sequence[OptionParamSet], symbol: str) -> OptionParamSet | None:
    usable = [s for s in sets if s.expirations and s.strikes]
    for s in usable:
        if s.exchange == "SMART" and s.trading_class == symbol:
            return s
    for s in usable:
        if s.exchange == "SMART":
            return s
    return usable[0] if usable else None


async def check_options(
    connection: Ref,
    stock: StockContract,
    price: float | None,
    account: str,
    today: date,
    what_if_timeout: float,
) -> CheckResult:
    params = await call_actor(
        connection,
        FetchOptionParams(
            symbol=stock.symbol, underlying_con_id=stock.con_id, sec_type=stock.sec_type
        ),
        timeout=10.0,
    )
    if not isinstance(params, OptionParams):
        return could_not_run(f"option parameters of {stock.symbol}", params)
    chosen = _choose_param_set(params.sets, stock.symbol)
    if chosen is None:
        return CheckResult(
            OPTIONS, "WARN", f"could not run: TWS lists no options on {stock.symbol}"
        )
    expiry = _choose_expiry(chosen.expirations, today)
    listed = await call_actor(
        connection,
        FetchOptionContracts(
            symbol=stock.symbol, expiry=expiry, trading_class=chosen.trading_class
        ),
        timeout=15.0,
    )
    if not isinstance(listed, OptionContracts):
        return could_not_run(f"the {expiry} options of {stock.symbol}", listed)
    calls = [c for c in listed.contracts if c.right == "C"]
    if not calls:
        return CheckResult(OPTIONS, "WARN", f"could not run: no {expiry} calls on {stock.symbol}")
    call = _near_the_money(calls, price)
    spec = OrderSpec(
        order_ref=f"doctor-{new_id()[:12]}",
        account=account,
        symbol=stock.symbol,
        legs=(
            OrderLeg(
                con_id=call.con_id,
                symbol=call.symbol,
                sec_type="OPT",
                action="BUY",
                ratio=1,
                multiplier=call.multiplier,
                expiry=call.expiry,
                strike=call.strike,
                right="C",
                exchange=call.exchange,
            ),
        ),
        quantity=1,
        order_type="LMT",
        limit_price=WHAT_IF_LIMIT,
        tif="DAY",
    )
    what = f"what-if BUY 1 {stock.symbol} {call.expiry} {call.strike:g} C LMT {WHAT_IF_LIMIT}"
    reply = await call_actor(connection, WhatIf(spec=spec), timeout=what_if_timeout)
    match reply:
        case WhatIfResult():
            cost = f", commission {reply.commission:.2f}" if reply.commission is not None else ""
            warning = f"; TWS warns: {reply.warning}" if reply.warning else ""
            return CheckResult(
                OPTIONS, "PASS", f"{what} accepted (options orders allowed){cost}{warning}"
            )
        case TwsError(code=0) | NoReply(timed_out=True):
            return _unanswered(what, what_if_timeout)
        case OrderRejected() | TwsError():
            return _judge_rejection(what, reply.code, reply.message)
        case NotImplementedYet():
            return CheckResult(
                OPTIONS,
                "WARN",
                f"could not run: this version cannot send what-if orders yet ({reply.detail})",
            )
        case _:
            return could_not_run(what, reply)


def _near_the_money(calls: Sequence[OptionContract], price: float | None) -> OptionContract:
    if price is None:
        strikes = sorted({c.strike for c in calls})
        price = strikes[len(strikes) // 2]
    reference = price
    return min(calls, key=lambda c: (abs(c.strike - reference), c.strike))


def _unanswered(what: str, timeout: float) -> CheckResult:
    # ib_async treats error 321 (how TWS refuses orders in Read-Only API mode) as a warning and
    # never ends the what-if request, so read-only mode shows up as silence, not as a rejection.
    # SumpPump could not confirm a preview either, hence FAIL.
    return CheckResult(
        OPTIONS,
        "FAIL",
        f"{what}: TWS did not answer within {timeout:.0f}s (the usual cause is Read-Only API)",
        FIX_READ_ONLY,
    )


def _judge_rejection(what: str, code: int, message: str) -> CheckResult:
    text = message.lower()
    detail = f"{what} rejected (TWS error {code}: {message})"
    if "read-only" in text or "read only" in text or "readonly" in text:
        return CheckResult(OPTIONS, "FAIL", detail, FIX_READ_ONLY)
    if any(
        marker in text
        for marker in ("permission", "not approved", "not allowed to trade", "not permitted")
    ):
        return CheckResult(OPTIONS, "FAIL", detail, FIX_OPTIONS_LEVEL)
    return CheckResult(
        OPTIONS,
        "WARN",
        detail,
        "Read TWS's message; if it mentions permissions, ask IBKR for options Level 2",
    )
