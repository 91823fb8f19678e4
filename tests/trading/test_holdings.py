"""sumppump.trading.holdings: what is held as structures a person can name, close or roll;
the Level-2 rule on what a close or roll leaves; the natural price and realised P&L of a close.

Pure and fast: positions are built by hand (IB's conventions: an option's ``avg_cost`` is per
contract, multiplier included; a stock's per share), and every expected figure is worked out in
the test from those inputs, not copied from the implementation."""

from __future__ import annotations

from collections import Counter
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.messages.common import Quote
from sumppump.messages.connection import PositionInfo
from sumppump.messages.orders import OrderLeg
from sumppump.strategies.catalog import LEVEL_3, LEVEL_4
from sumppump.trading.holdings import (
    Choice,
    OpenedCombo,
    Structure,
    choose_structure,
    closing_legs,
    group_structures,
    level2_after,
    natural_price,
    realised_pnl,
)

DEC = "2026-12-18"
JAN = "2027-01-15"
STOCK_ID = 265598


def opt(
    con_id: int,
    quantity: float,
    strike: float,
    right: Literal["C", "P"] = "C",
    expiry: str = DEC,
    avg_cost: float = 100.0,
) -> PositionInfo:
    return PositionInfo(
        account="U1",
        con_id=con_id,
        symbol="AAPL",
        sec_type="OPT",
        quantity=quantity,
        avg_cost=avg_cost,
        expiry=expiry,
        strike=strike,
        right=right,
        multiplier=100.0,
    )


def shares(quantity: float, avg_cost: float = 180.0) -> PositionInfo:
    return PositionInfo(
        account="U1",
        con_id=STOCK_ID,
        symbol="AAPL",
        sec_type="STK",
        quantity=quantity,
        avg_cost=avg_cost,
    )


def leg_of(p: PositionInfo, action: Literal["BUY", "SELL"], ratio: int = 1) -> OrderLeg:
    is_option = p.sec_type == "OPT"
    return OrderLeg(
        con_id=p.con_id,
        symbol=p.symbol,
        sec_type="OPT" if is_option else "STK",
        action=action,
        ratio=ratio,
        multiplier=100.0 if is_option else 1.0,
        expiry=p.expiry,
        strike=p.strike,
        right=p.right if is_option else None,  # type: ignore[arg-type]
    )


def combo(ref: str, filled: int, *legs: OrderLeg, strategy: str = "") -> OpenedCombo:
    return OpenedCombo(order_ref=ref, legs=legs, filled_units=filled, strategy=strategy)


def signed_contracts(structures: tuple[Structure, ...]) -> Counter[int]:
    """Per conId, the signed quantity the structures account for."""
    total: Counter[int] = Counter()
    for s in structures:
        for leg in s.legs:
            total[leg.position.con_id] += (1 if leg.long else -1) * leg.ratio * s.units
    return total


def by_key(structures: tuple[Structure, ...]) -> dict[str, Structure]:
    keyed = {s.key: s for s in structures}
    assert len(keyed) == len(structures), "two structures share a key"
    return keyed


LONG_200 = opt(1, 2, 200.0, avg_cost=500.0)
SHORT_210 = opt(2, -2, 210.0, avg_cost=200.0)
SPREAD = combo(
    "sp-spread", 2, leg_of(LONG_200, "BUY"), leg_of(SHORT_210, "SELL"), strategy="bull call spread"
)


# ---------------------------------------------------------------------- grouping


def test_a_spread_opened_here_is_one_structure_beside_the_shares() -> None:
    found = by_key(group_structures([LONG_200, SHORT_210, shares(200)], [SPREAD]))
    assert set(found) == {"sp-spread", "STK"}
    spread = found["sp-spread"]
    assert (spread.name, spread.units, spread.opened_by) == ("bull call spread", 2, "sp-spread")
    assert [(leg.position.con_id, leg.long, leg.ratio) for leg in spread.legs] == [
        (1, True, 1),
        (2, False, 1),
    ]
    assert (found["STK"].name, found["STK"].units) == ("shares", 200)


def test_a_combo_counts_only_the_units_still_held_on_every_leg() -> None:
    # three spreads filled; one long call was sold on its own since
    long_two = opt(1, 2, 200.0)
    short_three = opt(2, -3, 210.0)
    spread = combo("sp-x", 3, leg_of(long_two, "BUY"), leg_of(short_three, "SELL"))
    found = by_key(group_structures([long_two, short_three], [spread]))
    assert found["sp-x"].units == 2
    assert found["sp-x"].name == "combo"  # no strategy recorded: never guessed
    leftover = found["2"]
    assert (leftover.name, leftover.units, leftover.legs[0].long) == ("short call", 1, False)


def test_contracts_beyond_the_combo_become_single_positions() -> None:
    long_three = opt(1, 3, 200.0)
    found = by_key(group_structures([long_three, SHORT_210], [SPREAD]))
    assert found["sp-spread"].units == 2
    assert (found["1"].name, found["1"].units, found["1"].is_single) == ("long call", 1, True)


def test_a_combo_whose_leg_is_now_held_the_other_way_is_not_a_structure() -> None:
    flipped = opt(1, -2, 200.0)
    found = by_key(group_structures([flipped, SHORT_210], [SPREAD]))
    assert "sp-spread" not in found
    assert {found["1"].name, found["2"].name} == {"short call"}


def test_a_short_call_with_shares_becomes_a_covered_call_and_spare_shares_stay_shares() -> None:
    call = opt(7, -1, 230.0, avg_cost=300.0)
    found = by_key(group_structures([shares(250), call]))
    covered = found["7+STK"]
    assert (covered.name, covered.units) == ("covered call", 1)
    assert [(leg.position.sec_type, leg.long, leg.ratio) for leg in covered.legs] == [
        ("STK", True, 100),
        ("OPT", False, 1),
    ]
    assert found["STK"].units == 150


def test_short_calls_beyond_the_shares_stay_uncovered_singles() -> None:
    call = opt(7, -2, 230.0)
    found = by_key(group_structures([shares(150), call]))
    assert found["7+STK"].units == 1
    assert (found["7"].name, found["7"].units) == ("short call", 1)
    assert found["STK"].units == 50


def test_a_buy_write_opened_here_keeps_its_hundred_shares_and_the_rest_stay_shares() -> None:
    stock, call = shares(300), opt(7, -2, 230.0)
    buy_write = combo(
        "sp-bw", 2, leg_of(stock, "BUY", 100), leg_of(call, "SELL"), strategy="covered call"
    )
    found = by_key(group_structures([stock, call], [buy_write]))
    assert set(found) == {"sp-bw", "STK"}
    assert (found["sp-bw"].units, found["STK"].units) == (2, 100)
    closing = closing_legs(found["sp-bw"])
    assert [(leg.action, leg.ratio) for leg in closing] == [("SELL", 100), ("BUY", 1)]


def test_a_short_put_is_never_paired_with_shares() -> None:
    put = opt(8, -1, 200.0, right="P")
    found = by_key(group_structures([shares(200), put]))
    assert found["8"].name == "short put"
    assert found["STK"].units == 200


option_ids = st.integers(1, 6)


@st.composite
def holdings(draw: st.DrawFn) -> tuple[list[PositionInfo], list[OpenedCombo]]:
    """Integer positions in up to six options (calls and puts, two expiries) and maybe
    shares, and combos over them with random sides, ratios and filled units."""
    positions = []
    for con_id in draw(st.sets(option_ids, max_size=6)):
        qty = draw(st.integers(-5, 5).filter(bool))
        right: Literal["C", "P"] = "C" if con_id % 2 else "P"
        expiry = DEC if con_id <= 3 else JAN
        positions.append(opt(con_id, qty, 190.0 + 10 * con_id, right, expiry))
    if draw(st.booleans()):
        positions.append(shares(draw(st.integers(-300, 450).filter(bool))))
    ids = [p.con_id for p in positions] + [98, 99]  # combo legs no longer held at all
    by_id = {p.con_id: p for p in positions} | {98: opt(98, 1, 390.0), 99: opt(99, 1, 400.0)}
    combos = []
    for n in range(draw(st.integers(0, 3))):
        chosen = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=3, unique=True))
        legs = []
        for cid in chosen:
            # mostly the side held (the combo still stands), sometimes the other
            held_side = "BUY" if by_id[cid].quantity > 0 else "SELL"
            other = "SELL" if held_side == "BUY" else "BUY"
            action = draw(st.sampled_from([held_side, held_side, other]))
            ratio = 100 if cid == STOCK_ID else draw(st.integers(1, 2))
            legs.append(leg_of(by_id[cid], action, ratio))
        combos.append(combo(f"sp-{n}", draw(st.integers(0, 4)), *legs))
    return positions, combos


@settings(max_examples=300, deadline=None)
@given(holdings())
def test_structures_account_for_exactly_what_is_held(
    held: tuple[list[PositionInfo], list[OpenedCombo]],
) -> None:
    positions, combos = held
    structures = group_structures(positions, combos)
    assert signed_contracts(structures) == Counter({p.con_id: int(p.quantity) for p in positions})
    assert all(s.units > 0 for s in structures)
    keyed = by_key(structures)
    for c in combos:
        if c.order_ref in keyed:
            grouped = keyed[c.order_ref]
            assert grouped.units <= c.filled_units
            assert [(leg.position.con_id, leg.long) for leg in grouped.legs] == [
                (leg.con_id, leg.action == "BUY") for leg in c.legs
            ]


@settings(max_examples=200, deadline=None)
@given(holdings())
def test_every_structure_is_chosen_by_its_key_and_none_is_guessed(
    held: tuple[list[PositionInfo], list[OpenedCombo]],
) -> None:
    positions, combos = held
    structures = group_structures(positions, combos)
    for s in structures:
        assert choose_structure(s.key, structures) == s
        assert choose_structure(f"  {s.key.lower()} ", structures) == s
    unnamed = choose_structure(None, structures)
    if len(structures) == 1:
        assert unnamed == structures[0]
    else:
        assert isinstance(unnamed, Choice)
        assert len(unnamed.options) == len(structures)


# ---------------------------------------------------------------------- choosing


def test_without_a_name_several_structures_are_listed_never_guessed() -> None:
    structures = group_structures([LONG_200, SHORT_210, shares(200)], [SPREAD])
    answer = choose_structure(None, structures)
    assert isinstance(answer, Choice)
    assert any(option.startswith("sp-spread: ") for option in answer.options)
    assert any(option.startswith("STK: ") for option in answer.options)
    assert "2 positions" in answer.message
    assert isinstance(choose_structure("  ", structures), Choice)


def test_nothing_held_is_a_choice_with_no_options() -> None:
    answer = choose_structure("STK", ())
    assert isinstance(answer, Choice) and answer.options == ()


def test_the_only_structure_needs_no_name() -> None:
    (only,) = group_structures([opt(5, 1, 220.0)])
    assert choose_structure(None, (only,)) == only


@pytest.mark.parametrize(
    "name", ["STK", "stk", "shares", "Stock", "AAPL", "aapl shares", str(STOCK_ID)]
)
def test_the_shares_are_named_by_stk_shares_or_the_symbol(name: str) -> None:
    structures = group_structures([LONG_200, SHORT_210, shares(200)], [SPREAD])
    chosen = choose_structure(name, structures)
    assert isinstance(chosen, Structure) and chosen.key == "STK"


@pytest.mark.parametrize(
    "name", ["5", "AAPL 2026-12-18 220 C", "2026-12-18 220 c", "aapl 2026-12-18 220 C"]
)
def test_a_single_option_is_named_by_con_id_or_description(name: str) -> None:
    single = opt(5, 1, 220.0)
    structures = group_structures([single, opt(6, 1, 230.0, right="P")])
    chosen = choose_structure(name, structures)
    assert isinstance(chosen, Structure) and chosen.key == "5"


def test_a_combo_is_named_by_its_order_ref_or_its_unique_strategy_name() -> None:
    structures = group_structures([LONG_200, SHORT_210, shares(200)], [SPREAD])
    for name in ("sp-spread", "SP-SPREAD", "bull call spread", "bull_call_spread"):
        chosen = choose_structure(name, structures)
        assert isinstance(chosen, Structure) and chosen.key == "sp-spread", name


def test_a_strategy_name_two_structures_share_is_a_choice() -> None:
    other_long = opt(3, 1, 205.0)
    other_short = opt(4, -1, 215.0)
    second = combo(
        "sp-second",
        1,
        leg_of(other_long, "BUY"),
        leg_of(other_short, "SELL"),
        strategy="bull call spread",
    )
    structures = group_structures([LONG_200, SHORT_210, other_long, other_short], [SPREAD, second])
    answer = choose_structure("bull call spread", structures)
    assert isinstance(answer, Choice) and "2 positions" in answer.message
    two_long_calls = group_structures([opt(5, 1, 220.0), opt(6, 1, 230.0)])
    assert isinstance(choose_structure("long call", two_long_calls), Choice)


def test_one_leg_of_a_combo_named_alone_is_that_leg_for_all_the_combo_holds() -> None:
    structures = group_structures([LONG_200, SHORT_210], [SPREAD])
    chosen = choose_structure("AAPL 2026-12-18 210 C", structures)
    assert isinstance(chosen, Structure)
    assert chosen.is_single and chosen.key == "2" and chosen.units == 2
    assert (chosen.name, chosen.legs[0].long) == ("short call", False)
    # and its legs close just that contract
    assert closing_legs(chosen) == (leg_of(SHORT_210, "BUY"),)


def test_a_name_that_matches_nothing_is_a_choice_listing_what_is_held() -> None:
    structures = group_structures([LONG_200, SHORT_210], [SPREAD])
    answer = choose_structure("AAPL 2026-12-18 999 C", structures)
    assert isinstance(answer, Choice)
    assert "999" in answer.message and len(answer.options) == 1


# ---------------------------------------------------------------------- orders


def test_closing_legs_reverse_every_leg_with_its_ratio() -> None:
    call = opt(7, -1, 230.0)
    (covered,) = [s for s in group_structures([shares(100), call]) if s.key == "7+STK"]
    closing = closing_legs(covered)
    assert [(leg.con_id, leg.sec_type, leg.action, leg.ratio) for leg in closing] == [
        (STOCK_ID, "STK", "SELL", 100),
        (7, "OPT", "BUY", 1),
    ]
    assert closing[0].multiplier == 1.0 and closing[0].expiry is None
    assert (closing[1].multiplier, closing[1].strike, closing[1].right) == (100.0, 230.0, "C")
    spread = next(s for s in group_structures([LONG_200, SHORT_210], [SPREAD]))
    assert [(leg.action, leg.con_id) for leg in closing_legs(spread)] == [
        ("SELL", 1),
        ("BUY", 2),
    ]


# ---------------------------------------------------------------------- Level 2 after


def test_selling_the_long_call_under_a_short_call_leaves_it_naked_and_is_refused() -> None:
    verdict = level2_after([LONG_200, SHORT_210], [leg_of(LONG_200, "SELL")], 2)
    assert not verdict.allowed
    assert verdict.level_needed == LEVEL_4
    assert "210" in verdict.reason


def test_selling_one_of_two_long_calls_under_two_short_calls_is_refused() -> None:
    verdict = level2_after([LONG_200, SHORT_210], [leg_of(LONG_200, "SELL")], 1)
    assert not verdict.allowed and "1 short call" in verdict.reason


def test_a_short_call_left_with_only_a_later_long_call_needs_level_3() -> None:
    later = opt(3, 2, 200.0, expiry=JAN)
    verdict = level2_after([LONG_200, SHORT_210, later], [leg_of(LONG_200, "SELL")], 2)
    assert not verdict.allowed and verdict.level_needed == LEVEL_3


def test_buying_back_a_short_is_always_allowed() -> None:
    naked_put = opt(4, -3, 190.0, right="P")
    for positions in ([LONG_200, SHORT_210], [SHORT_210], [naked_put, SHORT_210]):
        for short in [p for p in positions if p.quantity < 0]:
            others_short = [p for p in positions if p.quantity < 0 and p is not short]
            if others_short:
                continue  # another uncovered short would still be there
            verdict = level2_after(positions, [leg_of(short, "BUY")], int(-short.quantity))
            assert verdict.allowed, (positions, verdict.reason)


def test_shares_covering_a_short_call_cannot_be_sold_but_spare_ones_can() -> None:
    call = opt(7, -1, 230.0)
    stock = shares(150)
    assert level2_after([stock, call], [leg_of(stock, "SELL")], 50).allowed
    refused = level2_after([stock, call], [leg_of(stock, "SELL")], 51)
    assert not refused.allowed and refused.level_needed == LEVEL_4


def test_selling_more_shares_than_held_is_short_stock_and_refused() -> None:
    stock = shares(100)
    assert not level2_after([stock], [leg_of(stock, "SELL")], 101).allowed
    assert level2_after([stock], [leg_of(stock, "SELL")], 100).allowed


def test_closing_the_whole_spread_is_allowed() -> None:
    spread = next(iter(group_structures([LONG_200, SHORT_210], [SPREAD])))
    assert level2_after([LONG_200, SHORT_210], closing_legs(spread), 2).allowed


def test_a_roll_of_the_long_leg_alone_leaves_the_short_uncovered_and_is_refused() -> None:
    later_200 = opt(30, 0, 200.0, expiry=JAN)
    roll = [leg_of(LONG_200, "SELL"), leg_of(later_200, "BUY")]
    verdict = level2_after([LONG_200, SHORT_210], roll, 2)
    # the January call caps the loss (Level 3) but does not cover a December short call
    assert not verdict.allowed and verdict.level_needed == LEVEL_3


def test_a_roll_of_the_whole_spread_to_a_later_expiry_is_allowed() -> None:
    later_long, later_short = opt(30, 0, 200.0, expiry=JAN), opt(31, 0, 210.0, expiry=JAN)
    roll = [
        leg_of(LONG_200, "SELL"),
        leg_of(SHORT_210, "BUY"),
        leg_of(later_long, "BUY"),
        leg_of(later_short, "SELL"),
    ]
    assert level2_after([LONG_200, SHORT_210], roll, 2).allowed


# ---------------------------------------------------------------------- prices and P&L


def test_natural_price_buys_at_the_ask_and_sells_at_the_bid() -> None:
    quotes = [Quote(con_id=1, bid=5.0, ask=5.2), Quote(con_id=2, bid=1.9, ask=2.1)]
    assert natural_price([leg_of(LONG_200, "BUY")], quotes) == 5.2
    assert natural_price([leg_of(LONG_200, "SELL")], quotes) == 5.0
    # closing the spread: sell the 200 at its bid, buy the 210 back at its ask
    closing = [leg_of(LONG_200, "SELL"), leg_of(SHORT_210, "BUY")]
    assert natural_price(closing, quotes) == pytest.approx(-5.0 + 2.1)
    ratioed = [leg_of(LONG_200, "BUY", 1), leg_of(SHORT_210, "SELL", 2)]
    assert natural_price(ratioed, quotes) == pytest.approx(5.2 - 2 * 1.9)


def test_natural_price_is_none_when_a_side_it_needs_is_missing() -> None:
    one_sided = [Quote(con_id=1, bid=None, ask=5.2), Quote(con_id=2, bid=1.9, ask=None)]
    assert natural_price([leg_of(LONG_200, "SELL")], one_sided) is None
    assert natural_price([leg_of(LONG_200, "BUY")], one_sided) == 5.2
    closing = [leg_of(LONG_200, "SELL"), leg_of(SHORT_210, "BUY")]
    assert natural_price(closing, one_sided) is None
    assert natural_price([leg_of(LONG_200, "SELL")], []) is None
    assert natural_price(closing, [Quote(con_id=1, bid=5.0, ask=5.2)]) is None


def test_a_long_call_bought_at_2_and_sold_at_3_realises_100() -> None:
    (call,) = group_structures([opt(5, 1, 220.0, avg_cost=200.0)])
    assert realised_pnl(call, 1, {5: 3.00}) == pytest.approx(100.0)
    assert realised_pnl(call, 1, {5: 1.25}) == pytest.approx(-75.0)


def test_a_short_call_bought_back_cheaper_realises_the_difference() -> None:
    (short,) = group_structures([opt(5, -2, 220.0, avg_cost=150.0)])
    assert realised_pnl(short, 2, {5: 0.50}) == pytest.approx(2 * 100.0)  # (1.50 - 0.50) × 100
    assert realised_pnl(short, 1, {5: 2.50}) == pytest.approx(-100.0)


def test_closing_a_spread_realises_both_legs_and_the_concession() -> None:
    spread = next(iter(group_structures([LONG_200, SHORT_210], [SPREAD])))
    # entered long at 5.00 and short at 2.00 (a 3.00 debit); leaves at 7.00 and 3.50
    exits = {1: 7.00, 2: 3.50}
    expected = 2 * 100 * ((7.00 - 5.00) - (3.50 - 2.00))
    assert realised_pnl(spread, 2, exits) == pytest.approx(expected)
    assert realised_pnl(spread, 2, exits, concession=-10.0) == pytest.approx(expected - 10.0)
    assert realised_pnl(spread, 2, {1: 7.00}) is None


def test_closing_a_covered_call_counts_shares_per_share_and_the_call_per_contract() -> None:
    structures = by_key(
        group_structures([shares(100, avg_cost=180.0), opt(7, -1, 230.0, avg_cost=300.0)])
    )
    covered = structures["7+STK"]
    # shares 180 → 190 on 100, call sold at 3.00 bought back at 5.00
    assert realised_pnl(covered, 1, {STOCK_ID: 190.0, 7: 5.00}) == pytest.approx(1000.0 - 200.0)
