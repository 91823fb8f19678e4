"""Account results: balances, positions, open orders, the outcome of one order."""

from __future__ import annotations

from typing import Any

import msgspec

from sumppump.messages.connection import AccountSnapshot, OpenOrderInfo, PositionInfo
from sumppump.messages.execution import OrderOutcome
from sumppump.rendering import Rendered, drop_none, plural
from sumppump.rendering.numbers import fcents, fsigned, rcents, rnum
from sumppump.rendering.trading import order_terms
from sumppump.trading.report import outcome_summary

__all__ = ["account", "open_orders", "order_outcome", "positions"]


def account(a: AccountSnapshot, *, kind: str) -> Rendered:
    """get_account: every balance IB sent, to the cent."""
    data = drop_none(
        {
            "account_id": a.account_id,
            "account_kind": kind,
            "currency": a.currency,
            "net_liquidation": rcents(a.net_liquidation),
            "available_funds": rcents(a.available_funds),
            "buying_power": rcents(a.buying_power),
            "excess_liquidity": rcents(a.excess_liquidity),
            "init_margin": rcents(a.init_margin),
            "maint_margin": rcents(a.maint_margin),
            "cash": rcents(a.cash),
        }
    )
    names = {
        "net_liquidation": "net liquidation",
        "available_funds": "available funds",
        "buying_power": "buying power",
        "excess_liquidity": "excess liquidity",
        "init_margin": "initial margin",
        "maint_margin": "maintenance margin",
        "cash": "cash",
    }
    figures = ", ".join(f"{label} {fcents(data[k])}" for k, label in names.items() if k in data)
    text = f"Account {a.account_id} [{kind}], {a.currency}: {figures or 'no balances yet'}."
    return Rendered(text, data)


def describe_position(p: dict[str, Any]) -> str:
    """``AAPL`` for shares, ``AAPL 2026-12-18 225 C`` for an option (a position row)."""
    if p["sec_type"] == "OPT" and p.get("strike") is not None:
        return f"{p['symbol']} {p['expiry']} {p['strike']:g} {p['right']}"
    return str(p["symbol"]) if p["sec_type"] == "STK" else f"{p['symbol']} {p['sec_type']}"


def positions(held: tuple[PositionInfo, ...]) -> Rendered:
    """get_positions: quantity, IB's average cost (options: per contract, multiplier
    included), market price and value, unrealised P&L. Every row keeps its contract fields
    (``expiry``/``strike``/``right`` are null for shares)."""
    rows: list[dict[str, Any]] = [
        {
            "account": p.account,
            "con_id": p.con_id,
            "symbol": p.symbol,
            "sec_type": p.sec_type,
            "expiry": p.expiry,
            "strike": p.strike,
            "right": p.right,
            "quantity": rnum(p.quantity, 4),
            "multiplier": rnum(p.multiplier),
            "avg_cost": rcents(p.avg_cost),
            "market_price": rcents(p.market_price),
            "market_value": rcents(p.market_value),
            "unrealized_pnl": rcents(p.unrealized_pnl),
        }
        for p in held
    ]
    data: dict[str, Any] = {"positions": rows}
    lines = [f"{plural(len(rows), 'position')}" + (":" if rows else ".")]
    lines.extend(
        f"- {r['quantity']:g} {describe_position(r)}: avg cost {fcents(r['avg_cost'])}"
        + (" per contract" if r["sec_type"] == "OPT" else "")
        + f", price {fcents(r['market_price'])}, value {fcents(r['market_value'])}"
        + f", unrealised P&L {fsigned(r['unrealized_pnl'])} (account {r['account']}, con_id "
        f"{r['con_id']})"
        for r in rows
    )
    return Rendered("\n".join(lines), data)


def _order_row(o: OpenOrderInfo) -> dict[str, Any]:
    # order_ref stays even when empty (an order placed outside SumpPump has none), and the
    # prices even when null (a STP has no limit, a LMT no aux price): callers read them
    prices = {"limit_price": rcents(o.limit_price), "aux_price": rcents(o.aux_price)}
    return (
        {"order_ref": o.order_ref}
        | prices
        | drop_none(
            {
                "order_id": o.order_id,
                "symbol": o.symbol,
                "description": o.description,
                "action": o.action,
                "quantity": rnum(o.quantity, 4),
                "order_type": o.order_type,
                "tif": o.tif,
                "status": o.status,
                "filled": rnum(o.filled, 4),
                "remaining": rnum(o.remaining, 4),
            }
        )
    )


def open_orders(orders: tuple[OpenOrderInfo, ...]) -> Rendered:
    """get_open_orders: each order's terms and state (aux_price is the stop price of STP
    orders)."""
    rows = [_order_row(o) for o in orders]
    data: dict[str, Any] = {"orders": rows}
    lines = [f"{plural(len(rows), 'open order')}" + (":" if rows else ".")]
    for r in rows:
        prices = []
        if r["limit_price"] is not None:
            prices.append(f"limit {fcents(r['limit_price'])}")
        if r["aux_price"] is not None:
            prices.append(
                f"{'stop' if 'STP' in r['order_type'] else 'aux'} {fcents(r['aux_price'])}"
            )
        lines.append(
            f"- {r['action']} {r['quantity']:g} {r['description']} {r['order_type']} "
            + (" ".join(prices) + " " if prices else "")
            + f"{r['tif']}: {r['status']}, filled {r.get('filled', 0):g}, remaining "
            f"{r.get('remaining', 0):g} (ref {r['order_ref'] or 'n/a'}, id {r['order_id']})"
        )
    return Rendered("\n".join(lines), data)


def order_outcome(outcome: OrderOutcome) -> Rendered:
    """get_order_status: the true outcome of one order. The text is the trading core's
    :func:`~sumppump.trading.report.outcome_summary`; the structured content holds the same
    fields (untagged, the order's terms as get_open_orders gives them, no empty fields)."""
    data = drop_none(
        {
            key: value
            for key, value in msgspec.to_builtins(outcome).items()
            if key not in ("type", "id", "ts_init", "order") and value not in ("", (), [])
        }
    )
    if outcome.order is not None:
        data["order"] = order_terms(outcome.order)
    return Rendered(outcome_summary(outcome), data)
