"""sumppump.rendering.portfolio: the text content carries every figure of the structured
content (Claude Desktop reads only the text), and the structured content has no msgspec tags."""

from __future__ import annotations

import datetime as dt
import json

from sumppump.messages.common import Greeks, Quote
from sumppump.messages.connection import AccountSnapshot, PositionInfo
from sumppump.rendering.portfolio import (
    expiry_status_line,
    portfolio_result,
    portfolio_structured,
    portfolio_text,
)
from sumppump.trading.expiry_watch import watch_expiries
from sumppump.trading.portfolio import WorkingOrder, value_portfolio

TODAY = dt.date(2026, 12, 16)
ACCOUNT = AccountSnapshot(
    account_id="U7",
    currency="USD",
    net_liquidation=120_000.0,
    available_funds=15_000.0,
    buying_power=60_000.0,
    excess_liquidity=40_000.0,
)


def opt(con_id: int, qty: float, strike: float, entry: float) -> PositionInfo:
    return PositionInfo(
        account="U7",
        con_id=con_id,
        symbol="AAPL",
        sec_type="OPT",
        quantity=qty,
        avg_cost=entry * 100,
        expiry="2026-12-18",
        strike=strike,
        right="C",
        multiplier=100.0,
    )


def q(con_id: int, mid: float, close: float, delta: float) -> Quote:
    g = Greeks(delta=delta, gamma=0.03, theta=-0.11, vega=0.07, iv=0.3, source="ib_model")
    return Quote(con_id=con_id, bid=mid - 0.05, ask=mid + 0.05, close=close, greeks=g)


def rendered() -> tuple[str, dict[str, object]]:
    positions = [opt(1, 2, 190, 9.0), opt(2, -2, 200, 3.5), opt(3, 1, 215, 2.0)]
    quotes = {1: q(1, 11.2, 10.8, 0.9), 2: q(2, 3.6, 3.1, 0.55), 3: q(3, 0.4, 0.6, 0.12)}
    stop = WorkingOrder(
        order_ref="stop-1",
        order_type="STP",
        action="SELL",
        quantity=1,
        status="PreSubmitted",
        con_ids=(3,),
        stop_price=0.25,
    )
    book = value_portfolio(
        positions,
        quotes=quotes,
        spots={"AAPL": 201.3},
        orders=(stop,),
        account=ACCOUNT,
        today=TODAY,
    )
    watch = watch_expiries(
        positions, quotes=quotes, spots={"AAPL": 201.3}, available_funds=15_000.0, today=TODAY
    )
    result = portfolio_result(book, watch, ("1 quote did not arrive in time",))
    return portfolio_text(result), portfolio_structured(result)


def test_every_structure_figure_is_in_the_text() -> None:
    text, data = rendered()
    structures = data["structures"]
    assert isinstance(structures, (list, tuple)) and len(structures) == 2
    for s in structures:
        g = s["greeks"]
        for figure in (
            f"{s['entry']:.2f}",
            f"{s['mark']:.2f}",
            f"{s['cost']:,.2f}",
            f"{s['value']:,.2f}",
            f"{s['unrealised_pnl']:+,.2f}",
            f"{s['unrealised_pct']:+.1f}%",
            f"{s['today_pnl']:+,.2f}",
            f"{s['max_loss_at_risk']:,.2f}",
            f"{g['delta_shares']:+,.1f} sh",
            f"{g['delta_dollars']:+,.2f}",
            f"{g['gamma_dollars_1pct']:+,.2f}/1%",
            f"{g['theta_day']:+,.2f}/day",
            f"{g['vega_point']:+,.2f}/pt",
            f"{s['days_to_expiry']} d to {s['expiry']}",
            *(f"{b['price']:g} ({b['distance']:+.2f}" for b in s["breakevens"]),
        ):
            assert figure in text, (figure, s["name"])
    call = next(s for s in structures if s["name"] == "long call")
    assert f"stop: STP at 0.25 working, {call['stop']['distance']:+.2f}" in text
    assert "stop: none (unprotected)" in text  # the spread has none


def test_totals_warnings_and_notes_are_in_the_text() -> None:
    text, data = rendered()
    totals = data["totals"]
    assert isinstance(totals, dict)
    for figure in (
        "net liquidation 120,000.00",
        "available funds 15,000.00",
        "buying power 60,000.00",
        f"unrealised {totals['unrealised_pnl']:+,.2f}",
        f"today {totals['today_pnl']:+,.2f}",
        f"max loss at risk {totals['max_loss_at_risk']:,.2f}",
        f"{totals['at_risk_pct_of_net_liq']:.1f}% of net liq",
        f"Δ$ {totals['greeks']['delta_dollars']:+,.2f}",
        "1 without a working stop",
        "1 quote did not arrive in time",
    ):
        assert figure in text, figure
    watch = data["watch"]
    assert isinstance(watch, dict) and watch["warnings"]
    for w in watch["warnings"]:
        assert w["message"] in text
        for action in w["actions"]:
            assert f"[{action['tool']}]" in text


def test_structured_content_is_plain_json_without_tags() -> None:
    _, data = rendered()
    assert '"type"' not in json.dumps(data)


def test_the_status_line_points_to_get_portfolio_only_when_there_is_something() -> None:
    positions = [opt(1, 1, 190, 9.0)]
    near = watch_expiries(
        positions, quotes={}, spots={"AAPL": 201.3}, available_funds=1.0, today=TODAY
    )
    assert "get_portfolio" in expiry_status_line(near)
    far = watch_expiries(
        positions, quotes={}, spots={"AAPL": 201.3}, available_funds=1.0, today=dt.date(2026, 11, 2)
    )
    assert expiry_status_line(far).startswith("Expiry watch: nothing")
