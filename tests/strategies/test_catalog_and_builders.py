"""The Level-2 catalogue and the builders from intent to legs."""

from __future__ import annotations

import pytest

from sumppump.strategies.builders import build_strategy, normalise_expiry, require_level2
from sumppump.strategies.catalog import LEVEL2, LEVEL3_PLUS, lookup
from sumppump.strategies.model import StrategyLeg, StrategyRefused

EXPIRY = "2026-12-18"
TOOL_CONTRACT_NAMES = {
    "long_call",
    "long_put",
    "bull_call_spread",
    "bear_put_spread",
    "covered_call",
    "protective_put",
    "collar",
    "long_straddle",
    "long_strangle",
    "custom",
}


def build(strategy: str, strikes: list[object] | None, **kw: object) -> list[StrategyLeg]:
    args: dict[str, object] = {
        "symbol": "xyz",
        "strategy": strategy,
        "expiry": EXPIRY,
        "strikes": strikes,
        "multiplier": 100,
    }
    args.update(kw)
    return list(build_strategy(**args).legs)  # type: ignore[arg-type]


def test_catalogue_names_are_exactly_the_tool_contract() -> None:
    assert set(LEVEL2) == TOOL_CONTRACT_NAMES
    for spec in LEVEL2.values():
        assert spec.description and spec.strikes_hint


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("bull_put_spread", "Level 3"),
        ("bear_call_spread", "Level 3"),
        ("naked_put", "Level 3"),
        ("short_put", "Level 3"),
        ("naked_call", "Level 4"),
        ("short_call", "Level 4"),
        ("short_straddle", "Level 4"),
        ("short_strangle", "Level 4"),
        ("iron_condor", "Level 3"),
        ("iron_butterfly", "Level 3"),
        ("butterfly", "Level 3"),
        ("ratio_spread", "Level 4"),
        ("calendar", "Level 3"),
        ("diagonal", "Level 3"),
        ("short_stock", "margin account"),
    ],
)
def test_level3_names_are_refused_with_the_level_they_need(name: str, level: str) -> None:
    with pytest.raises(StrategyRefused) as err:
        lookup(name)
    assert err.value.code == "NOT_PERMITTED_LEVEL2"
    assert err.value.level_needed is not None and level in err.value.level_needed
    assert level in err.value.message
    with pytest.raises(StrategyRefused):  # the builder refuses the same way
        build(name, [100.0, 105.0])


def test_every_refused_name_carries_reason_and_level() -> None:
    for refused in LEVEL3_PLUS.values():
        assert refused.reason and refused.level_needed
        assert refused.name not in LEVEL2


def test_unknown_name_is_an_invalid_argument_listing_the_allowed_ones() -> None:
    with pytest.raises(StrategyRefused) as err:
        lookup("moon_shot")
    assert err.value.code == "INVALID_ARGUMENT"
    assert "bull_call_spread" in err.value.hint


def test_names_are_forgiving_about_case_and_separators() -> None:
    assert lookup(" Bull-Call Spread ").name == "bull_call_spread"


def test_vertical_spreads_take_strikes_in_any_order() -> None:
    legs = build("bull_call_spread", ["105", 100])
    assert [(x.action, x.right, x.strike) for x in legs] == [
        ("BUY", "C", 100.0),
        ("SELL", "C", 105.0),
    ]
    legs = build("bear_put_spread", [100, 95])
    assert [(x.action, x.right, x.strike) for x in legs] == [
        ("BUY", "P", 100.0),
        ("SELL", "P", 95.0),
    ]
    assert all(x.expiry == EXPIRY and x.ratio == 1 for x in legs)


def test_straddle_shares_one_strike_and_strangle_puts_the_put_below() -> None:
    straddle = build("long_straddle", [100])
    assert {(x.right, x.strike) for x in straddle} == {("C", 100.0), ("P", 100.0)}
    strangle = build("long_strangle", [110, 90])
    assert {(x.right, x.strike) for x in strangle} == {("P", 90.0), ("C", 110.0)}


def test_covered_call_uses_free_shares_and_otherwise_buys_them() -> None:
    held = build_strategy(
        symbol="XYZ",
        strategy="covered_call",
        expiry=EXPIRY,
        strikes=[105],
        quantity=2,
        multiplier=100,
        shares_held=250,
    )
    assert [x.right for x in held.legs] == ["C"]
    assert held.held_shares_included == 200
    assert held.coverage.held_shares_used == 200
    assert held.shares_bought == 0

    # 250 held but 100 already cover an open call: 150 free < 200 needed → buy-write
    write = build_strategy(
        symbol="XYZ",
        strategy="covered_call",
        expiry=EXPIRY,
        strikes=[105],
        quantity=2,
        multiplier=100,
        shares_held=250,
        shares_committed=100,
    )
    stock = [x for x in write.legs if x.right == "STK"]
    assert stock == [StrategyLeg(action="BUY", right="STK", ratio=100)]
    assert write.shares_bought == 200
    assert write.coverage.bought_shares_used == 200 and write.coverage.held_shares_used == 0
    assert any("buys 200 shares" in note for note in write.notes)


def test_buy_write_share_count_follows_the_multiplier() -> None:
    mini = build_strategy(
        symbol="XYZ",
        strategy="covered_call",
        expiry=EXPIRY,
        strikes=[105],
        quantity=3,
        multiplier=10,
    )
    assert mini.shares_bought == 30


def test_collar_and_protective_put_buy_shares_only_when_not_held() -> None:
    collar = build("collar", [105, 95], shares_held=100)
    assert [(x.action, x.right, x.strike) for x in collar] == [
        ("BUY", "P", 95.0),
        ("SELL", "C", 105.0),
    ]
    assert build("collar", [95, 105])[0].right == "STK"
    assert [x.right for x in build("protective_put", [95])] == ["STK", "P"]
    # a put may protect shares that already sit under a call
    protected = build("protective_put", [95], shares_held=100, shares_committed=100)
    assert [x.right for x in protected] == ["P"]


@pytest.mark.parametrize(
    ("strategy", "strikes"),
    [
        ("long_call", []),
        ("long_call", [100, 105]),
        ("bull_call_spread", [100]),
        ("bull_call_spread", [100, 100]),
        ("long_strangle", [100, 100]),
        ("collar", [95, 95]),
        ("long_put", [-5]),
        ("long_put", ["abc"]),
        ("long_put", [float("nan")]),
        ("long_put", [True]),
    ],
)
def test_wrong_strikes_are_invalid_arguments(strategy: str, strikes: list[object]) -> None:
    with pytest.raises(StrategyRefused) as err:
        build(strategy, strikes)
    assert err.value.code == "INVALID_ARGUMENT"
    assert err.value.hint


@pytest.mark.parametrize("quantity", [0, -1, 1.5, True, "2"])
def test_quantity_must_be_a_positive_whole_number(quantity: object) -> None:
    with pytest.raises(StrategyRefused) as err:
        build("long_call", [100], quantity=quantity)
    assert err.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize("expiry", [None, "18/12/2026", "2026-02-30", 20261218])
def test_expiry_must_be_a_date(expiry: object) -> None:
    with pytest.raises(StrategyRefused) as err:
        build("long_call", [100], expiry=expiry)
    assert err.value.code == "INVALID_ARGUMENT"


def test_ib_style_expiry_is_normalised() -> None:
    assert normalise_expiry("20261218") == "2026-12-18"
    assert build("long_call", [100], expiry="20261218")[0].expiry == "2026-12-18"


def test_custom_legs_are_validated_and_checked_by_the_rule() -> None:
    legs = build(
        "custom",
        None,
        legs=[
            {"action": "buy", "right": "put", "strike": "100", "ratio": 1},
            {"action": "SELL", "right": "P", "strike": 95, "expiry": "20261218"},
        ],
    )
    assert legs == [
        StrategyLeg(action="BUY", right="P", strike=100.0, expiry=EXPIRY, ratio=1),
        StrategyLeg(action="SELL", right="P", strike=95.0, expiry=EXPIRY, ratio=1),
    ]


@pytest.mark.parametrize(
    "legs",
    [
        [],
        [{"action": "HOLD", "right": "C", "strike": 100}],
        [{"action": "BUY", "right": "X", "strike": 100}],
        [{"action": "BUY", "right": "C", "strike": 100, "ratio": 0}],
        [{"action": "BUY", "right": "STK", "strike": 100}],
        [{"action": "BUY", "right": "C"}],
        [
            {"action": "BUY", "right": "C", "strike": 100},
            {"action": "SELL", "right": "C", "strike": 100},
        ],
        [{"action": "BUY", "right": "C", "strike": 100 + i} for i in range(7)],
    ],
)
def test_malformed_custom_legs_are_invalid_arguments(legs: list[dict[str, object]]) -> None:
    with pytest.raises(StrategyRefused) as err:
        build("custom", None, legs=legs)
    assert err.value.code == "INVALID_ARGUMENT"


def test_custom_with_uncovered_short_is_not_permitted() -> None:
    with pytest.raises(StrategyRefused) as err:
        build(
            "custom",
            None,
            legs=[
                {"action": "SELL", "right": "C", "strike": 100},
                {"action": "BUY", "right": "C", "strike": 105},
            ],
        )
    assert err.value.code == "NOT_PERMITTED_LEVEL2"
    assert err.value.level_needed is not None and "Level 3" in err.value.level_needed


def test_refusal_struct_matches_the_tool_error_shape() -> None:
    with pytest.raises(StrategyRefused) as err:
        lookup("naked_call")
    refusal = err.value.refusal
    assert (refusal.code, refusal.message, refusal.hint) == (
        err.value.code,
        err.value.message,
        err.value.hint,
    )


def test_custom_accepts_strikes_that_repeat_its_legs_and_refuses_others() -> None:
    legs = [
        {"action": "BUY", "right": "C", "strike": 100},
        {"action": "SELL", "right": "C", "strike": 105},
    ]
    assert len(build("custom", [105, 100], legs=legs)) == 2
    with pytest.raises(StrategyRefused) as err:
        build("custom", [100, 110], legs=legs)
    assert err.value.code == "INVALID_ARGUMENT"


def test_require_level2_adds_the_net_debit_rule_to_the_built_coverage() -> None:
    spread = build_strategy(
        symbol="XYZ",
        strategy="bull_call_spread",
        expiry=EXPIRY,
        strikes=[100, 105],
        quantity=2,
        multiplier=100,
    )
    assert require_level2(spread, 1.25).debit_rule == "met"
    with pytest.raises(StrategyRefused) as err:
        require_level2(spread, -0.05)
    assert err.value.code == "NOT_PERMITTED_LEVEL2"
    covered = build_strategy(
        symbol="XYZ",
        strategy="covered_call",
        expiry=EXPIRY,
        strikes=[105],
        multiplier=100,
        shares_held=100,
    )
    verdict = require_level2(covered, -0.85)  # a covered call is opened for a credit
    assert verdict.allowed and verdict.held_shares_used == 100
