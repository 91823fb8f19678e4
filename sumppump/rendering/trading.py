"""Trading results: strike suggestions, the analysis behind calculate_strategy, the previews
of stops, closes, changes and rolls, submitted orders and cancels.

:class:`AnalysisResult` and :class:`PreviewResult` are the *full* values (the order ticket
fetches them whole, payoff profile included); the renderers here turn them into what the model
reads: every figure of the order, none of the arrays.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from sumppump.messages.execution import (
    CancelResult,
    ChangeDetails,
    ExercisePreviewCreated,
    ExerciseSubmitted,
    OrderSubmitted,
    OrderTerms,
)
from sumppump.messages.orders import OrderLeg, OrderSpec
from sumppump.messages.risk import CheckResult, StrikeSuggestions
from sumppump.rendering import Rendered, drop_none, plural
from sumppump.rendering.numbers import (
    fcents,
    fiv,
    fsigned,
    rcents,
    rgreek,
    riv,
    rnum,
    rpct,
    strikes_text,
    whole,
)
from sumppump.strategies.analysis import StrategyAnalysis

__all__ = [
    "AnalysisResult",
    "PreviewResult",
    "analysis",
    "cancelled",
    "exercise_preview",
    "exercised",
    "order_terms",
    "preview",
    "submitted",
    "suggestions",
]


class AnalysisResult(msgspec.Struct, kw_only=True):
    """calculate_strategy's answer: the analysis of the exact order and its preview."""

    symbol: str
    strategy: str
    account_id: str
    account_kind: str
    analysis: StrategyAnalysis
    checks: tuple[CheckResult, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    what_if_init_margin_change: float | None
    what_if_commission: float | None
    data_type: str
    preview_id: str | None
    confirm_text: str | None
    expires_at: str | None
    underlying_price: float | None = None


class PreviewResult(msgspec.Struct, kw_only=True):
    """A stored, single-use preview (stop loss, close, modify, roll)."""

    preview_id: str
    confirm_text: str
    expires_at: str
    kind: str
    symbol: str
    max_loss: float | None
    max_gain: float | None
    net_debit: float
    account_kind: str
    notes: tuple[str, ...]
    breakevens: tuple[float, ...] = ()
    order: OrderSpec | None = None  # exactly what would be sent (legs, type, prices, TIF)
    replaces_order_ref: str = ""
    details: ChangeDetails | None = None


def _money_or_unbounded(value: float | None) -> str:
    return "unbounded" if value is None else fcents(value)


def _breakevens(values: list[float] | tuple[float, ...]) -> str:
    return ", ".join(fcents(b) for b in values) or "none"


# ---------------------------------------------------------------------- suggestions


def suggestions(found: StrikeSuggestions) -> Rendered:
    """suggest_strikes: every candidate, per unit (one contract or one spread)."""
    rows = [
        drop_none(
            {
                "strategy": c.strategy,
                "strikes": [whole(k) for k in c.strikes],
                "debit": rcents(c.debit),
                "natural_debit": rcents(c.natural_debit),
                "max_loss": rcents(c.max_loss),
                "max_gain": rcents(c.max_gain),
                "breakevens": [rcents(b) for b in c.breakevens],
                "reward_risk": rnum(c.reward_risk, 2),
                "pop_pct": rpct(c.probability_of_profit),
                "pnl_at_target": rcents(c.pnl_at_target),
                "expected_pnl": rcents(c.expected_pnl),
            }
        )
        for c in found.candidates
    ]
    data = drop_none(
        {
            "symbol": found.symbol,
            "expiry": found.expiry,
            "outlook": found.outlook,
            "spot": rcents(found.spot),
            "data_type": found.data_type,
            "candidates": rows,
            "partial": found.partial or None,
            "notes": list(found.notes),
        }
    )
    lines = [
        f"{plural(len(rows), f'{found.outlook} idea')} on {found.symbol} expiring "
        f"{found.expiry} (spot {fcents(found.spot)}, {found.data_type} data), per unit:"
    ]
    for i, c in enumerate(rows, 1):
        line = (
            f"{i}. {c['strategy']} {strikes_text(c['strikes'])}: debit {fcents(c['debit'])}"
            f" (natural {fcents(c.get('natural_debit'))}), max loss {fcents(c['max_loss'])}, "
            f"max gain {_money_or_unbounded(c.get('max_gain'))}, breakeven "
            f"{_breakevens(c.get('breakevens', []))}, PoP {fiv(c.get('pop_pct'))}"
        )
        if "reward_risk" in c:
            line += f", reward/risk {c['reward_risk']:g}"
        if "pnl_at_target" in c:
            line += f", P&L at target {fsigned(c['pnl_at_target'])}"
        if "expected_pnl" in c:
            line += f", expected P&L {fsigned(c['expected_pnl'])}"
        lines.append(line)
    if data.get("partial"):
        lines.append("PARTIAL: some quotes were missing.")
    lines.extend(data.get("notes", []))
    lines.append("These are ideas, not orders: calculate_strategy previews one.")
    return Rendered("\n".join(lines), data)


# ---------------------------------------------------------------------- orders


def _leg_words(leg: OrderLeg) -> str:
    if leg.sec_type == "STK":
        return f"{leg.action} {leg.ratio} {leg.symbol} shares"
    strike = f"{leg.strike:g}" if leg.strike is not None else "?"
    return f"{leg.action} {leg.ratio} {leg.symbol} {leg.expiry} {strike} {leg.right}"


def order_terms(order: OrderSpec) -> dict[str, Any]:
    """Exactly what would be sent, compactly: legs as words, type, prices, TIF, OCA."""
    return drop_none(
        {
            "order_ref": order.order_ref,
            "legs": [_leg_words(leg) for leg in order.legs],
            "quantity": order.quantity,
            "order_type": order.order_type,
            "limit_price": order.limit_price,
            "stop_price": order.stop_price,
            "tif": order.tif,
            "oca_group": order.oca_group,
            "outside_rth": order.outside_rth or None,
            "transmit": None if order.transmit else False,
        }
    )


def _order_text(o: dict[str, Any]) -> str:
    words = [f"{o['quantity']} x [{'; '.join(o['legs'])}] {o['order_type']}"]
    if "stop_price" in o:
        words.append(f"stop {o['stop_price']:g}")
    if "limit_price" in o:
        words.append(f"limit {o['limit_price']:g}")
    words.append(o["tif"])
    if "oca_group" in o:
        words.append(f"OCA {o['oca_group']}")
    if o.get("outside_rth"):
        words.append("outside regular hours")
    if o.get("transmit") is False:
        words.append("(not transmitted: press Transmit in TWS)")
    return " ".join(words)


def _checks(checks: tuple[CheckResult, ...]) -> dict[str, Any]:
    # Passed checks by name (their figures are the result's own: funds, what-if, limits);
    # failed and not-run checks with what they found or why they could not run.
    out: dict[str, list[str]] = {"passed": [], "failed": [], "not_run": []}
    for c in checks:
        optional = "" if c.required else " (optional)"
        detail = f": {c.detail}" if c.detail and c.status != "passed" else ""
        out[c.status].append(c.name + optional + detail)
    return {k: v for k, v in out.items() if v}


def _checks_text(checks: dict[str, list[str]]) -> list[str]:
    titles = {"passed": "Checks passed", "failed": "Checks FAILED", "not_run": "Could not run"}
    return [f"{titles[k]}: " + "; ".join(v) + "." for k, v in checks.items()]


# ---------------------------------------------------------------------- calculate_strategy


def analysis(result: AnalysisResult) -> Rendered:
    """calculate_strategy: legs, limit with mid and natural, max loss, max gain, breakevens,
    probability of profit, net greeks, commission, IB what-if margin, checks, preview."""
    a = result.analysis
    greeks = a.greeks
    legs = [
        drop_none(
            {
                "leg": drop_none(
                    {
                        "action": p.leg.action,
                        "ratio": p.leg.ratio if p.leg.ratio != 1 else None,
                        "right": p.leg.right,
                        "strike": None
                        if p.leg.strike is None
                        else (
                            int(p.leg.strike) if p.leg.strike == int(p.leg.strike) else p.leg.strike
                        ),
                        "expiry": p.leg.expiry,
                    }
                ),
                "bid": rcents(p.bid),
                "ask": rcents(p.ask),
                "mid": rcents(p.mid),
                "natural": rcents(p.natural),
            }
        )
        for p in a.legs
    ]
    data = drop_none(
        {
            "symbol": result.symbol,
            "strategy": result.strategy,
            "quantity": a.quantity,
            "multiplier": a.multiplier,
            "expiries": list(a.expiries),
            "days_to_expiry": a.days_to_expiry,
            "underlying_price": rcents(result.underlying_price),
            "data_type": result.data_type,
            "account_id": result.account_id,
            "account_kind": result.account_kind,
            "legs": legs,
            "limit_price": rcents(a.limit_price),
            "limit_source": a.limit_source,
            "net_mid": rcents(a.net_mid),
            "net_natural": rcents(a.net_natural),
            "tick": a.tick,
            "net_debit_total": rcents(a.net_debit_total),
            "max_loss": rcents(a.max_loss),
            "max_loss_with_commission": rcents(a.max_loss_with_commission),
            "max_gain": rcents(a.max_gain),
            "unbounded": [
                k for k, v in (("max_loss", a.max_loss), ("max_gain", a.max_gain)) if v is None
            ],
            "breakevens": [rcents(b) for b in a.breakevens],
            "profit_ranges": [[rcents(lo), rcents(hi)] for lo, hi in a.profit_intervals],
            "reward_risk": rnum(a.reward_risk, 2),
            "pop_pct": rpct(a.probability_of_profit),
            "pop_iv_pct": riv(a.pop_sigma),
            "greeks": None
            if greeks is None
            else {
                "delta": rgreek(greeks.delta),
                "gamma": rgreek(greeks.gamma),
                "theta": rgreek(greeks.theta, 2),
                "vega": rgreek(greeks.vega, 2),
            },
            "commission": rcents(a.commission.total),
            "what_if_commission": rcents(result.what_if_commission),
            "what_if_init_margin_change": rcents(result.what_if_init_margin_change),
            "held_shares_included": a.held_shares_included or None,
            "checks": _checks(result.checks),
            "warnings": list(dict.fromkeys((*a.warnings, *result.warnings))),
            "notes": list(result.notes),
            "preview_id": result.preview_id,
            "expires_at": result.expires_at,
            "confirm_text": result.confirm_text,
        }
    )
    return Rendered(_analysis_text(data), data)


def _leg_text(leg: dict[str, Any]) -> str:
    """``BUY 1 C 225 2026-12-18`` / ``BUY 100 shares``."""
    right = "shares" if leg["right"] == "STK" else leg["right"]
    parts = [leg["action"], leg.get("ratio", 1), right, leg.get("strike"), leg.get("expiry")]
    return " ".join(str(p) for p in parts if p is not None)


def _analysis_text(d: dict[str, Any]) -> str:
    strategy = str(d["strategy"]).replace("_", " ")
    dte = f" ({d['days_to_expiry']} days)" if "days_to_expiry" in d else ""
    lines = [
        f"{d['symbol']} {strategy} x{d['quantity']}, expiry {', '.join(d.get('expiries', []))}"
        f"{dte}; underlying {fcents(d.get('underlying_price'))}, {d['data_type']} data; account "
        f"{d['account_id']} ({d['account_kind']}).",
        "Legs per unit: "
        + "; ".join(
            f"{_leg_text(leg['leg'])} bid {fcents(leg.get('bid'))} ask "
            f"{fcents(leg.get('ask'))} mid {fcents(leg.get('mid'))} natural "
            f"{fcents(leg.get('natural'))}"
            for leg in d["legs"]
        )
        + ".",
        f"Limit {fcents(d['limit_price'])} per unit (from {d['limit_source']}; net mid "
        f"{fcents(d.get('net_mid'))}, natural {fcents(d.get('net_natural'))}, tick "
        f"{d['tick']:g}); total {'debit' if d['net_debit_total'] >= 0 else 'credit'} "
        f"{fcents(abs(d['net_debit_total']))}.",
        f"Max loss {_money_or_unbounded(d.get('max_loss_with_commission'))} with commission "
        f"({_money_or_unbounded(d.get('max_loss'))} before), max gain "
        f"{_money_or_unbounded(d.get('max_gain'))}, "
        f"breakeven {_breakevens(d.get('breakevens', []))}"
        + (f", reward/risk {d['reward_risk']:g}" if "reward_risk" in d else "")
        + f"; probability of profit {fiv(d.get('pop_pct'))}"
        + (f" (at IV {fiv(d['pop_iv_pct'])})" if "pop_iv_pct" in d else "")
        + ".",
    ]
    if "greeks" in d:
        g = d["greeks"]
        lines.append(
            f"Net greeks: delta {g['delta']:g}, gamma {g['gamma']:g}, theta {g['theta']:g}/day, "
            f"vega {g['vega']:g}."
        )
    lines.append(
        f"Commission about {fcents(d['commission'])}"
        + (f" (IB what-if {fcents(d['what_if_commission'])})" if "what_if_commission" in d else "")
        + "; IB what-if initial margin change "
        + (fcents(d["what_if_init_margin_change"]) if "what_if_init_margin_change" in d else "n/a")
        + "."
    )
    if "held_shares_included" in d:
        lines.append(f"Uses {d['held_shares_included']} shares already held.")
    lines.extend(_checks_text(d.get("checks", {})))
    lines.extend(f"Warning: {w}" for w in d.get("warnings", []))
    lines.extend(f"Note: {n}" for n in d.get("notes", []))
    if "preview_id" in d:
        lines.append(
            f"Preview {d['preview_id']} expires {d.get('expires_at')}. Confirm text: "
            f"{d.get('confirm_text')}"
        )
        lines.append("Ask the person to confirm this exact order before calling execute_trade.")
    return "\n".join(lines)


# ---------------------------------------------------------------------- previews

Verb = Literal["stop", "close", "change", "roll", "order"]


def _terms(t: OrderTerms) -> dict[str, Any]:
    return drop_none(
        {
            "order_type": t.order_type,
            "quantity": t.quantity,
            "limit_price": t.limit_price,
            "stop_price": t.stop_price,
            "max_loss": rcents(t.max_loss),
            "max_gain": rcents(t.max_gain),
        }
    )


def _terms_text(t: dict[str, Any]) -> str:
    words = [f"{t['quantity']} {t['order_type']}"]
    if "stop_price" in t:
        words.append(f"stop {t['stop_price']:g}")
    if "limit_price" in t:
        words.append(f"limit {t['limit_price']:g}")
    if "max_loss" in t:
        words.append(f"max loss {fcents(t['max_loss'])}")
    return " ".join(words)


def _details(d: ChangeDetails) -> dict[str, Any]:
    return drop_none(
        {
            "action": d.action,
            "position": d.position,
            "quantity": d.quantity,
            "held": d.held or None,
            "closes_order_ref": d.closes_order_ref,
            "limit_price": d.limit_price,
            "mid": rcents(d.mid),
            "natural": rcents(d.natural),
            "position_value": rcents(d.position_value),
            "cash": rcents(d.cash),
            "realised_pnl": rcents(d.realised_pnl),
            "commission": rcents(d.commission),
            "holds_after": list(d.holds_after),
            "stops": [
                {
                    "order_ref": s.order_ref,
                    "description": s.description,
                    "how": s.how,
                    "quantity_before": s.quantity_before,
                    "quantity_after": s.quantity_after,
                }
                for s in d.stops
            ],
            "before": None if d.before is None else _terms(d.before),
            "after": None if d.after is None else _terms(d.after),
        }
    )


def _details_text(d: dict[str, Any]) -> str:
    parts = [f"{d['action'].capitalize()}: {d['position']} (quantity {d['quantity']}"]
    parts[-1] += f" of {d['held']} held)." if "held" in d else ")."
    prices = [f"limit {d['limit_price']:g}"] if "limit_price" in d else []
    prices += [f"{k} {fcents(d[k])}" for k in ("mid", "natural") if k in d]
    if prices:
        parts.append(", ".join(prices) + ".")
    if "position_value" in d:
        parts.append(f"Position value {fcents(d['position_value'])}.")
    if "cash" in d:
        parts.append(f"{'Proceeds' if d['cash'] >= 0 else 'Cost'} {fcents(abs(d['cash']))}.")
    if "realised_pnl" in d:
        parts.append(f"Realised P&L about {fsigned(d['realised_pnl'])}.")
    parts.append(f"Commission about {fcents(d.get('commission', 0.0))}.")
    if "before" in d and "after" in d:
        parts.append(f"Was {_terms_text(d['before'])}; becomes {_terms_text(d['after'])}.")
    if d.get("holds_after"):
        parts.append("Holds afterwards: " + "; ".join(d["holds_after"]) + ".")
    parts.extend(
        f"Stop {s['order_ref']} ({s['description']}): {s['how'].replace('_', ' ')}, quantity "
        f"{s['quantity_before']:g} -> {s['quantity_after']:g}."
        for s in d.get("stops", [])
    )
    return " ".join(parts)


def preview(p: PreviewResult, verb: Verb = "order") -> Rendered:
    """A stop, close, change or roll preview: the order exactly, its money, what happens to
    stops, the preview id, expiry and confirm text."""
    data = drop_none(
        {
            "kind": p.kind,
            "symbol": p.symbol,
            "order": None
            if p.order is None
            else {k: v for k, v in order_terms(p.order).items() if v != p.preview_id},
            "replaces_order_ref": p.replaces_order_ref,
            "net_debit": rcents(p.net_debit),
            "max_loss": rcents(p.max_loss),
            "max_gain": rcents(p.max_gain),
            "breakevens": [rcents(b) for b in p.breakevens],
            "details": None if p.details is None else _details(p.details),
            "notes": list(p.notes),
            "preview_id": p.preview_id,
            "expires_at": p.expires_at,
            "confirm_text": p.confirm_text,
        }
    )
    return Rendered(_preview_text(data, verb), data)


def _preview_text(d: dict[str, Any], verb: Verb) -> str:
    lines = [f"{d['kind'].replace('_', ' ').capitalize()} preview for {d['symbol']}."]
    if "order" in d:
        lines.append("Order: " + _order_text(d["order"]) + ".")
    if "replaces_order_ref" in d:
        lines.append(f"Modifies working order {d['replaces_order_ref']} (same IB order).")
    if "details" in d:
        lines.append(_details_text(d["details"]))
    money = f"Net {'debit' if d['net_debit'] >= 0 else 'credit'} {fcents(abs(d['net_debit']))}"
    if d["kind"] in ("open", "roll"):
        money += f"; max loss {_money_or_unbounded(d.get('max_loss'))}"
        money += f", max gain {_money_or_unbounded(d.get('max_gain'))}"
    else:  # a stop, close or change: the loss it can add to what is held
        money += f"; loss it can add at most {fcents(d.get('max_loss', 0.0))}"
        if "max_gain" in d:
            money += f", max gain {fcents(d['max_gain'])}"
    if d.get("breakevens"):
        money += f", breakeven {_breakevens(d['breakevens'])}"
    lines.append(money + ".")
    lines.extend(f"Note: {n}" for n in d.get("notes", []))
    lines.append(
        f"Preview {d['preview_id']} expires {d['expires_at']}. Confirm text: {d['confirm_text']}"
    )
    lines.append(
        f"Show this to the person; only their explicit yes to this exact {verb} leads to "
        "execute_trade."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------- after execute


def submitted(s: OrderSubmitted) -> Rendered:
    """execute_trade and the ticket's Confirm: the order's state, fills, and the stop-loss
    prompt with the call that would set it. The order's terms are the preview's the person
    confirmed (named by ``order_ref``, which is that preview's id)."""
    prompt = s.stop_loss_prompt
    data = drop_none(
        {
            "order_ref": s.order_ref,
            "order_id": s.order_id,
            "symbol": s.symbol,
            "status": s.status,
            "filled": rnum(s.filled, 4),
            "remaining": rnum(s.remaining, 4),
            "avg_fill_price": rcents(s.avg_fill_price),
            "fills": [f"{f.side} {f.shares:g} @ {f.price:g} {f.time}" for f in s.fills],
            "waiting_for_tws_transmit": s.waiting_for_tws_transmit or None,
            "message": None if s.message == f"Order {s.order_ref} is {s.status}." else s.message,
            "stop_loss_prompt": None
            if prompt is None
            else {
                "suggested_stop": rcents(prompt.suggested_stop),
                "rationale": prompt.rationale,
                "call": {
                    "tool": prompt.call.tool,
                    "arguments": {k: v for k, v in prompt.call.arguments.items() if v is not None},
                },
            },
        }
    )
    lines = [
        f"Order {data['order_ref']} (IB id {data['order_id']}): {data['status']}, filled "
        f"{data['filled']:g}, remaining {data['remaining']:g}"
        + (f", average fill {fcents(data['avg_fill_price'])}" if "avg_fill_price" in data else "")
        + "."
    ]
    if "message" in data:
        lines.append(data["message"])
    if data.get("fills"):
        lines.append("Fills: " + "; ".join(data["fills"]) + ".")
    if data.get("waiting_for_tws_transmit"):
        lines.append("Waiting for Transmit in TWS.")
    if "stop_loss_prompt" in data:
        sp = data["stop_loss_prompt"]
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in sp["call"]["arguments"].items())
        lines.append(
            f"Set a stop loss? Suggested stop {sp['suggested_stop']:g} ({sp['rationale']}): "
            f"{sp['call']['tool']}({args})"
        )
    return Rendered("\n".join(lines), data)


def cancelled(c: CancelResult) -> Rendered:
    """cancel_order's answer."""
    data = drop_none(
        {"order_ref": c.order_ref, "order_id": c.order_id, "status": c.status, "message": c.message}
    )
    text = f"Cancel of {c.order_ref} (IB id {c.order_id}): {c.status}."
    if c.message:
        text += f" {c.message}"
    return Rendered(text, data)


# ---------------------------------------------------------------------- exercise and lapse


def exercise_preview(p: ExercisePreviewCreated) -> Rendered:
    """exercise_option's preview: the instruction, shares, cash, the position afterwards, IB's
    cut-off (and where it is stated), warnings, the preview id and confirm text."""
    data = drop_none(
        {
            "kind": p.action,
            "symbol": p.symbol,
            "account": p.account,
            "contract": p.contract,
            "contracts": p.contracts,
            "shares": rnum(p.shares, 4),
            "cash": rcents(p.cash),
            "shares_after": rnum(p.shares_after, 4),
            "contracts_after": rnum(p.contracts_after, 4),
            "spot": rcents(p.spot),
            "intrinsic": rcents(p.intrinsic),
            "cutoff": p.cutoff,
            "cutoff_source": p.cutoff_source,
            "warnings": list(p.warnings),
            "preview_id": p.preview_id,
            "expires_at": p.expires_at,
            "confirm_text": p.confirm_text,
        }
    )
    if p.action == "exercise":
        verb = "buys" if p.shares >= 0 else "delivers"
        money = "paid" if p.cash <= 0 else "received"
        what = (
            f"{verb} {abs(p.shares):g} {p.symbol} shares, {fcents(abs(p.cash))} {money}"
            f"{' (needs cash or margin)' if p.cash < 0 else ''}"
        )
    else:
        what = "no shares and no cash: the contracts expire worthless (no auto-exercise)"
    lines = [
        f"{p.action.capitalize()} preview for {p.symbol} ({p.account}): {p.contracts} "
        f"{p.contract}: {what}.",
        f"Afterwards: {p.shares_after:g} shares, {p.contracts_after:g} contracts"
        + (
            f"; spot {p.spot:g}, intrinsic {p.intrinsic:g}/share"
            if p.spot and p.intrinsic is not None
            else ""
        )
        + ".",
        f"IB's cut-off: {p.cutoff} ({p.cutoff_source}).",
    ]
    lines.extend(f"Warning: {w}" for w in p.warnings)
    lines.append(f"Preview {p.preview_id} expires {p.expires_at}. Confirm text: {p.confirm_text}")
    lines.append(
        f"Show this to the person; only their explicit yes to this exact {p.action} "
        "instruction leads to execute_trade. It is irrevocable at IB."
    )
    return Rendered("\n".join(lines), data)


def exercised(s: ExerciseSubmitted) -> Rendered:
    """execute_trade of an exercise preview: what TWS showed afterwards."""
    data = drop_none(
        {
            "order_ref": s.order_ref,
            "symbol": s.symbol,
            "status": s.state,
            "action": s.action,
            "contract": s.contract,
            "quantity": s.quantity,
            "confirmed": s.confirmed,
            "contracts_before": rnum(s.option_position_before, 4),
            "contracts_after": rnum(s.option_position_after, 4),
            "shares_before": rnum(s.shares_before, 4),
            "shares_after": rnum(s.shares_after, 4),
            "cash": rcents(s.cash),
            "message": s.message,
        }
    )
    shares = (
        f"; shares {s.shares_before:g} -> {s.shares_after:g}"
        if s.shares_before is not None and s.shares_after is not None
        else ""
    )
    text = (
        f"{s.action.capitalize()} {s.order_ref}: {s.state} ({s.quantity} {s.contract}); "
        f"contracts {s.option_position_before:g} -> {s.option_position_after:g}{shares}"
        + (f"; cash {fsigned(s.cash)}" if s.action == "exercise" else "")
        + f". {s.message}"
    )
    return Rendered(text, data)
