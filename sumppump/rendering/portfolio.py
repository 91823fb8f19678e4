"""``get_portfolio``'s result: one value (:class:`PortfolioResult`) rendered as the text
content (a compact table per structure, the totals, the expiry watch) and the structured
content (the same facts, no msgspec tags). Claude Desktop reads only the text, Claude Code
only the structured content, so every figure is in both (DESIGN.md §6)."""

from __future__ import annotations

from typing import Any

import msgspec

from sumppump.rendering import Rendered
from sumppump.trading.expiry_watch import ExpiryWatch, summary_line
from sumppump.trading.portfolio import (
    AccountTotals,
    DollarGreeks,
    Portfolio,
    StopInfo,
    StructureValue,
)

__all__ = [
    "PortfolioResult",
    "expiry_status_line",
    "portfolio",
    "portfolio_result",
    "portfolio_structured",
    "portfolio_text",
]


class PortfolioResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``get_portfolio`` answers (see :mod:`sumppump.trading.portfolio` for units)."""

    as_of: str
    structures: tuple[StructureValue, ...]
    totals: AccountTotals
    watch: ExpiryWatch
    data_notes: tuple[str, ...] = ()


def portfolio_result(
    portfolio: Portfolio, watch: ExpiryWatch, data_notes: tuple[str, ...] = ()
) -> PortfolioResult:
    return PortfolioResult(
        as_of=portfolio.as_of,
        structures=portfolio.structures,
        totals=portfolio.totals,
        watch=watch,
        data_notes=data_notes,
    )


def portfolio_structured(result: PortfolioResult) -> dict[str, Any]:
    """The structured content: the value as plain data."""
    data = msgspec.to_builtins(result)
    assert isinstance(data, dict)
    return data


def _money(x: float | None, *, sign: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+,.2f}" if sign else f"{x:,.2f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def _greeks(g: DollarGreeks | None) -> str:
    if g is None:
        return "greeks n/a"
    return (
        f"Δ {g.delta_shares:+,.1f} sh (Δ$ {_money(g.delta_dollars, sign=True)}) "
        f"Γ {g.gamma_shares:+.3f} sh/$ (Γ$ {_money(g.gamma_dollars_1pct, sign=True)}/1%) "
        f"Θ {_money(g.theta_day, sign=True)}/day vega {_money(g.vega_point, sign=True)}/pt"
    )


def _stop(stop: StopInfo | None) -> str:
    if stop is None:
        return "stop: none (unprotected)"
    state = "working" if stop.working else f"NOT working ({stop.status})"
    where = "n/a" if stop.trigger is None else f"{stop.trigger:g}"
    distance = (
        ""
        if stop.distance is None
        else f", {stop.distance:+.2f} ({_pct(stop.distance_pct)}) from trigger"
    )
    return f"stop: {stop.order_type} at {where} {state}{distance} (ref {stop.order_ref})"


def _structure(i: int, v: StructureValue) -> str:
    inferred = " [grouped from held legs]" if v.inferred else ""
    risk = (
        _money(v.max_loss_at_risk)
        if v.max_loss_at_risk is not None
        else ("unbounded" if not v.max_loss_bounded else "n/a")
    )
    expiry = f"{v.days_to_expiry} d to {v.expiry}" if v.expiry is not None else "no expiry (shares)"
    bes = ", ".join(
        f"{b.price:g} ({'n/a' if b.distance is None else f'{b.distance:+.2f}'}, "
        f"{_pct(b.distance_pct)})"
        for b in v.breakevens
    )
    lines = [
        f"{i}. {v.symbol} {v.description}{inferred} key {v.key}",
        f"   entry {v.entry:.2f} mark {'n/a' if v.mark is None else f'{v.mark:.2f}'} "
        f"(cost {_money(v.cost)}, value {_money(v.value)}) | P&L "
        f"{_money(v.unrealised_pnl, sign=True)} ({_pct(v.unrealised_pct)}) | today "
        f"{_money(v.today_pnl, sign=True)} | max loss at risk {risk}",
        f"   {_greeks(v.greeks)} | {expiry} | spot "
        f"{'n/a' if v.spot is None else f'{v.spot:g}'} | breakeven {bes or 'none'}",
        f"   {_stop(v.stop)}",
    ]
    legs = "; ".join(
        f"{leg.size:+g} {leg.description} entry {leg.entry:g} mark "
        f"{'n/a' if leg.mark is None else f'{leg.mark:g}'} ({leg.mark_source})"
        for leg in v.legs
    )
    lines.append(f"   legs: {legs}")
    if v.notes:
        lines.append(f"   notes: {'; '.join(v.notes)}")
    return "\n".join(lines)


def _partial(complete: bool) -> str:
    return "" if complete else " (partial: some figures n/a)"


def _totals(t: AccountTotals, count: int) -> str:
    risk = (
        "n/a (a structure's risk is unbounded or unknown)"
        if t.max_loss_at_risk is None
        else f"{_money(t.max_loss_at_risk)} ({_share(t.at_risk_pct_of_net_liq)} of net liq)"
    )
    return (
        f"Account {t.account_id} ({t.currency}): net liquidation {_money(t.net_liquidation)}, "
        f"available funds {_money(t.available_funds)}, buying power {_money(t.buying_power)}, "
        f"excess liquidity {_money(t.excess_liquidity)}.\n"
        f"Totals over {count} structures: value {_money(t.market_value)}, unrealised "
        f"{_money(t.unrealised_pnl, sign=True)}{_partial(t.unrealised_complete)}, today "
        f"{_money(t.today_pnl, sign=True)}{_partial(t.today_complete)}, max loss at risk "
        f"{risk}; {_greeks(t.greeks)}{_partial(t.greeks_complete)}; "
        f"{t.unprotected} without a working stop."
    )


def _watch(w: ExpiryWatch) -> str:
    lines = [summary_line(w)]
    for warning in w.warnings:
        todo = "; ".join(f"{a.what} [{a.tool}]" for a in warning.actions)
        lines.append(f"- {warning.message}. Can do: {todo}")
    lines.extend(f"- not checked: {n}" for n in w.not_run)
    return "\n".join(lines)


def portfolio_text(result: PortfolioResult) -> str:
    """The text content: every figure of the result."""
    if not result.structures:
        head = f"Portfolio {result.as_of}: nothing held."
    else:
        head = f"Portfolio {result.as_of}: {len(result.structures)} structures."
    parts = [head, _totals(result.totals, len(result.structures))]
    parts.extend(_structure(i, v) for i, v in enumerate(result.structures, 1))
    parts.append(_watch(result.watch))
    if result.data_notes:
        parts.append("Data: " + "; ".join(result.data_notes))
    return "\n".join(parts)


def expiry_status_line(watch: ExpiryWatch) -> str:
    """The one line ``get_status`` shows for the expiry watch."""
    line = summary_line(watch)
    return line if not watch.warnings else line.rstrip(".") + " (details: get_portfolio)."


def portfolio(result: PortfolioResult) -> Rendered:
    """get_portfolio: one value, rendered as the text and the structured content."""
    return Rendered(portfolio_text(result), portfolio_structured(result))
