"""The confirm text of a preview (pure): one line stating the order and its max loss in words,
and the whitespace-tolerant, constant-time comparison ``execute_trade`` makes against it."""

from __future__ import annotations

import hmac
from typing import Final

from sumppump.messages.orders import OrderLeg, OrderSpec

__all__ = ["confirm_matches", "confirm_text_for", "money"]


def money(value: float) -> str:
    """``$1,234.50`` (negative as ``-$12.00``)."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.4g}"


def _leg_words(leg: OrderLeg) -> str:
    if leg.sec_type == "STK":
        return f"{leg.symbol} shares"
    right = {"C": "call", "P": "put"}.get(leg.right or "", "?")
    return f"{leg.symbol} {leg.expiry} {_num(leg.strike or 0.0)} {right}"


def _order_words(order: OrderSpec) -> str:
    if len(order.legs) == 1:
        leg = order.legs[0]
        qty = order.quantity * leg.ratio
        unit = "contract" if leg.sec_type == "OPT" else "share"
        plural = "" if qty == 1 else "s"
        return f"{leg.action} {qty} {unit}{plural} of {_leg_words(leg)}"
    parts = [
        f"{'+' if leg.action == 'BUY' else '-'}{leg.ratio} {_leg_words(leg)}" for leg in order.legs
    ]
    plural = "" if order.quantity == 1 else "s"
    return f"{order.quantity} guaranteed combo{plural} ({'; '.join(parts)})"


def _price_words(order: OrderSpec) -> str:
    tif = order.tif
    match order.order_type:
        case "LMT":
            assert order.limit_price is not None
            if len(order.legs) > 1:
                side = "debit" if order.limit_price >= 0 else "credit"
                return f"limit {_num(abs(order.limit_price))} net {side} per unit, {tif}"
            return f"limit {_num(order.limit_price)}, {tif}"
        case "STP":
            return f"stop {_num(order.stop_price or 0.0)} (market when triggered), {tif}"
        case "STP LMT":
            return (
                f"stop {_num(order.stop_price or 0.0)} then limit "
                f"{_num(order.limit_price or 0.0)}, {tif}"
            )
        case _:
            return f"{order.order_type}, {tif}"


_KIND_WORDS: Final = {
    "open": "Open",
    "stop": "Protective stop",
    "close": "Close",
    "modify": "Change",
    "roll": "Roll",
}


def confirm_text_for(
    order: OrderSpec,
    *,
    kind: str,
    account_kind: str,
    max_loss: float | None,
    strategy: str = "",
    replaces_order_ref: str = "",
) -> str:
    """One line stating the order and its max loss in words, e.g.
    ``Open bull call spread on LIVE account U1234567: 1 guaranteed combo (+1 AAPL 2026-12-18 230
    call; -1 AAPL 2026-12-18 240 call), limit 3.25 net debit per unit, DAY. You can lose at
    most $325.00.``

    Built only from the stored order and analysis, so the words are what would be sent.
    """
    head = _KIND_WORDS.get(kind, kind.capitalize())
    what = f" {strategy.replace('_', ' ')}" if strategy else ""
    target = f" order {replaces_order_ref}" if replaces_order_ref else ""
    if max_loss is None:
        loss = "Your possible loss is not limited."
    elif max_loss <= 0:
        loss = "This order adds no loss beyond what you hold."
    else:
        loss = f"You can lose at most {money(max_loss)}."
    text = (
        f"{head}{what}{target} on {account_kind} account {order.account}: "
        f"{_order_words(order)}, {_price_words(order)}. {loss}"
    )
    if not order.transmit:
        text += " It waits for Transmit in TWS."
    return " ".join(text.split())


def _normalise(text: str) -> str:
    return " ".join(text.split())


def confirm_matches(expected: str, given: str) -> bool:
    """Exact match up to whitespace runs (clients reflow long lines); constant-time compare."""
    return hmac.compare_digest(_normalise(expected).encode(), _normalise(given).encode())
