"""sumppump.trading.portfolio: the book as structures, valued.

Positions are built by hand in IB's conventions (an option's ``avg_cost`` per contract,
multiplier included; a stock's per share); every expected figure is worked out here from
those inputs."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.messages.common import Greeks, Quote
from sumppump.messages.connection import AccountSnapshot, PositionInfo
from sumppump.messages.orders import OrderLeg
from sumppump.trading.holdings import OpenedCombo
from sumppump.trading.portfolio import (
    StructureValue,
    WorkingOrder,
    structures_of,
    value_portfolio,
)
from tests.trading.support import DEC, STOCK, shares
from tests.trading.support import option as opt

JAN = "2027-01-15"
TODAY = dt.date(2026, 12, 3)
ACCOUNT = AccountSnapshot(
    account_id="U1",
    currency="USD",
    net_liquidation=100_000.0,
    available_funds=50_000.0,
    buying_power=100_000.0,
)


def quote(
    con_id: int,
    bid: float,
    ask: float,
    *,
    close: float | None = None,
    delta: float | None = None,
    gamma: float = 0.0,
    theta: float = 0.0,
    vega: float = 0.0,
) -> Quote:
    greeks = None
    if delta is not None:
        greeks = Greeks(delta=delta, gamma=gamma, theta=theta, vega=vega, iv=0.3, source="ib_model")
    return Quote(con_id=con_id, bid=bid, ask=ask, close=close, greeks=greeks)


def book(
    positions: list[PositionInfo],
    quotes: list[Quote],
    spot: float | None = 200.0,
    orders: tuple[WorkingOrder, ...] = (),
) -> dict[str, StructureValue]:
    portfolio = value_portfolio(
        positions,
        quotes={q.con_id: q for q in quotes},
        spots={"AAPL": spot},
        orders=orders,
        account=ACCOUNT,
        today=TODAY,
    )
    return {v.name: v for v in portfolio.structures}


def test_a_bull_call_spread_is_valued_from_its_legs() -> None:
    # +1 190 C bought at 12.00, -1 200 C sold at 5.00: net debit 7.00 → 700 dollars
    positions = [opt(10, 1, 190, entry=12.0), opt(11, -1, 200, entry=5.0)]
    quotes = [
        quote(10, 14.9, 15.1, close=13.0, delta=0.8, gamma=0.01, theta=-0.05, vega=0.10),
        quote(11, 6.9, 7.1, close=6.0, delta=0.5, gamma=0.02, theta=-0.08, vega=0.20),
    ]
    spread = book(positions, quotes)["bull call spread"]
    assert spread.inferred and spread.units == 1
    assert spread.entry == pytest.approx(7.0)
    assert spread.mark == pytest.approx(15.0 - 7.0)
    assert spread.cost == pytest.approx(700.0)
    assert spread.unrealised_pnl == pytest.approx(800.0 - 700.0)
    assert spread.unrealised_pct == pytest.approx(100 / 700 * 100, abs=0.01)
    # today: (15 - 13) * 100 - (7 - 6) * 100
    assert spread.today_pnl == pytest.approx(200.0 - 100.0)
    # worst case at expiry from the mark: both worthless → lose the 8.00 it is worth now
    assert spread.max_loss_at_risk == pytest.approx(800.0)
    assert [b.price for b in spread.breakevens] == [pytest.approx(197.0)]
    assert spread.breakevens[0].distance == pytest.approx(-3.0)
    g = spread.greeks
    assert g is not None
    assert g.delta_shares == pytest.approx((0.8 - 0.5) * 100)
    assert g.delta_dollars == pytest.approx(30 * 200.0)
    assert g.theta_day == pytest.approx((-0.05 + 0.08) * 100)
    assert g.vega_point == pytest.approx((0.10 - 0.20) * 100)
    assert g.gamma_dollars_1pct == pytest.approx((0.01 - 0.02) * 100 * 200 * 200 / 100)
    assert spread.days_to_expiry == 15


def test_a_covered_call_counts_shares_per_share_and_the_call_per_contract() -> None:
    positions = [shares(100, entry=180.0), opt(20, -1, 210, entry=3.0)]
    quotes = [
        quote(STOCK, 199.9, 200.1, close=198.0),
        quote(20, 1.9, 2.1, close=2.5, delta=0.3),
    ]
    cc = book(positions, quotes)["covered call"]
    assert not cc.inferred
    # per unit: 100 × 180 / 100 − 3 = 177
    assert cc.entry == pytest.approx(177.0)
    assert cc.cost == pytest.approx(18_000 - 300)
    assert cc.value == pytest.approx(20_000 - 200)
    assert cc.unrealised_pnl == pytest.approx(19_800 - 17_700)
    assert cc.today_pnl == pytest.approx(200.0 + 50.0)
    # worst case: the stock goes to 0, the call expires worthless: lose 200 × 100 − 2 × 100
    assert cc.max_loss_at_risk == pytest.approx(19_800.0)
    assert cc.greeks is not None
    assert cc.greeks.delta_shares == pytest.approx(100 - 30)


def test_missing_data_is_said_not_invented() -> None:
    positions = [opt(30, 2, 200, entry=4.0)]
    no_close = book(positions, [quote(30, 4.9, 5.1)])["long call"]
    assert no_close.today_pnl is None
    assert no_close.greeks is None
    assert any("previous close" in n for n in no_close.notes)
    no_price = book(positions, [])["long call"]
    assert no_price.mark is None and no_price.unrealised_pnl is None
    assert no_price.max_loss_at_risk is None
    assert any("no price" in n for n in no_price.notes)


def test_a_short_option_alone_has_unbounded_risk() -> None:
    naked = book([opt(40, -1, 220, entry=2.0)], [quote(40, 0.9, 1.1)])["short call"]
    assert naked.max_loss_at_risk is None and not naked.max_loss_bounded


def test_the_working_stop_is_found_with_its_distance() -> None:
    positions = [opt(30, 1, 200, entry=4.0)]
    stop = WorkingOrder(
        order_ref="s1",
        order_type="STP",
        action="SELL",
        quantity=1,
        status="PreSubmitted",
        con_ids=(30,),
        stop_price=3.0,
    )
    call = book(positions, [quote(30, 4.9, 5.1)], orders=(stop,))["long call"]
    assert call.stop is not None and call.stop.working
    assert call.stop.distance == pytest.approx(2.0)
    assert call.stop.distance_pct == pytest.approx(40.0)
    unprotected = book(positions, [quote(30, 4.9, 5.1)])["long call"]
    assert unprotected.stop is None


def test_a_combo_stop_triggers_at_minus_its_price_in_the_structure_value() -> None:
    # SumpPump's combo stop: BUY the reversed legs at -stop (execution._combo_stop)
    positions = [opt(10, 1, 190, entry=12.0), opt(11, -1, 200, entry=5.0)]
    quotes = [quote(10, 14.9, 15.1), quote(11, 6.9, 7.1)]
    stop = WorkingOrder(
        order_ref="s2",
        order_type="STP LMT",
        action="BUY",
        quantity=1,
        status="Inactive",
        con_ids=(11, 10),
        stop_price=-5.0,
    )
    spread = book(positions, quotes, orders=(stop,))["bull call spread"]
    assert spread.stop is not None and not spread.stop.working
    assert spread.stop.trigger == pytest.approx(5.0)
    assert spread.stop.distance == pytest.approx(8.0 - 5.0)


def test_singles_pair_into_the_level2_shapes() -> None:
    positions = [
        opt(1, 1, 190),
        opt(2, -1, 200),  # bull call spread with 1
        opt(3, 1, 180, "P"),
        opt(4, 1, 180, "C", expiry=JAN),
        opt(5, 1, 170, "P", expiry=JAN),  # strangle with 4
    ]
    names = sorted(s.name for s, _ in structures_of(positions))
    assert names == ["bull call spread", "long put", "long strangle"]


def test_a_spread_beside_shares_stays_a_spread_and_the_other_short_call_is_covered() -> None:
    # holdings alone would cover the 200 C with the shares first (lowest strike)
    positions = [shares(100), opt(11, 1, 190), opt(12, -1, 200), opt(13, -1, 210), opt(14, 1, 230)]
    found = {s.name: s for s, _ in structures_of(positions)}
    assert set(found) == {"bull call spread", "covered call", "long call"}
    assert found["bull call spread"].con_ids == {11, 12}
    assert found["covered call"].con_ids == {STOCK, 13}


def test_shares_with_a_put_and_a_call_make_a_collar_and_combos_keep_their_name() -> None:
    positions = [shares(100), opt(6, 1, 170, "P"), opt(7, -1, 210, "C")]
    assert [s.name for s, _ in structures_of(positions)] == ["collar"]
    spread = [opt(1, 2, 190), opt(2, -2, 200)]
    combo = OpenedCombo(
        order_ref="ref1",
        legs=(
            OrderLeg(
                con_id=1,
                symbol="AAPL",
                sec_type="OPT",
                action="BUY",
                ratio=1,
                multiplier=100,
                expiry=DEC,
                strike=190,
                right="C",
            ),
            OrderLeg(
                con_id=2,
                symbol="AAPL",
                sec_type="OPT",
                action="SELL",
                ratio=1,
                multiplier=100,
                expiry=DEC,
                strike=200,
                right="C",
            ),
        ),
        filled_units=2,
        strategy="bull call spread",
    )
    [(found, inferred)] = structures_of(spread, [combo])
    assert found.key == "ref1" and found.units == 2 and not inferred


# ---------------------------------------------------------------------- properties

options = st.builds(
    lambda cid, qty, strike, right, entry, mark: (
        opt(cid, qty, strike, right, entry=entry),
        quote(cid, mark, mark, close=mark),
    ),
    st.integers(10, 10_000),
    st.integers(-5, 5).filter(bool),
    st.sampled_from([180.0, 190.0, 200.0, 210.0]),
    st.sampled_from(["C", "P"]),
    st.floats(0.05, 30).map(lambda x: round(x, 2)),
    st.floats(0.05, 30).map(lambda x: round(x, 2)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(options, min_size=1, max_size=6, unique_by=lambda pq: pq[0].con_id))
def test_structure_pnl_sums_to_the_positions_pnl(held: list[tuple[PositionInfo, Quote]]) -> None:
    positions = [p for p, _ in held]
    quotes = {q.con_id: q for _, q in held}
    portfolio = value_portfolio(
        positions, quotes=quotes, spots={"AAPL": 200.0}, orders=(), account=ACCOUNT, today=TODAY
    )
    expected = sum(
        (quotes[p.con_id].mid or 0) * p.quantity * 100 - p.avg_cost * p.quantity for p in positions
    )
    assert portfolio.totals.unrealised_pnl == pytest.approx(expected, abs=0.01 * len(held))
    assert portfolio.totals.unrealised_complete
    # every contract is in exactly one structure, with its whole quantity
    size: dict[int, float] = {}
    for v in portfolio.structures:
        for leg in v.legs:
            size[leg.con_id] = size.get(leg.con_id, 0.0) + leg.size
    assert size == {p.con_id: p.quantity for p in positions}
    for v in portfolio.structures:
        assert v.max_loss_at_risk is None or v.max_loss_at_risk >= 0
