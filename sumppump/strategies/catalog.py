"""The Level-2 catalogue: what may be built by name, and the names that are recognised and refused.

The names only route intent to a builder. What decides whether a structure may be opened is the
coverage rule in :mod:`sumppump.strategies.coverage`, applied to every structure (``custom``
included), so a name on this list can never smuggle in an uncovered short.

Permission levels quoted are Interactive Brokers' US options levels (IBKR knowledge base article
4860, "Options Levels 1-4"): Level 1 covered calls; Level 2 covered positions as defined by FINRA
Rule 2360 (long options, debit spreads, protective puts, collars, long straddles/strangles);
Level 3 strategies with limited maximum loss (short puts, credit spreads, butterflies, debit
calendars, diagonals whose short leg expires first); Level 4 everything (naked calls, short
straddles/strangles, credit calendars). SumpPump allows the Level-2 subset in :data:`LEVEL2`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sumppump.strategies.model import StrategyRefused

__all__ = [
    "LEVEL2",
    "LEVEL3_PLUS",
    "RefusedStrategy",
    "StrategySpec",
    "lookup",
]

LEVEL_3 = "IB options Level 3 (strategies with limited maximum loss: spreads, short puts)"
LEVEL_4 = "IB options Level 4 (uncovered / all strategies)"
NO_LEVEL_SHORT_STOCK = "a margin account that may sell short (not an options permission level)"


class StrategySpec(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy that may be built by name.

    ``strike_count`` is how many strikes ``calculate_strategy`` needs (``None`` for ``custom``:
    the legs carry them); ``rights`` lists the option rights the legs use; ``uses_shares`` says the
    structure involves the underlying (held, or bought in the same order).
    """

    name: str
    strike_count: int | None
    rights: tuple[Literal["C", "P"], ...]
    uses_shares: bool
    description: str
    strikes_hint: str


class RefusedStrategy(msgspec.Struct, frozen=True, kw_only=True):
    """A recognised name that SumpPump refuses, with why and what permission it would need."""

    name: str
    reason: str
    level_needed: str


LEVEL2: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec(
            name="long_call",
            strike_count=1,
            rights=("C",),
            uses_shares=False,
            description="Buy a call: bullish, risk limited to the premium paid.",
            strikes_hint="one strike: the call's",
        ),
        StrategySpec(
            name="long_put",
            strike_count=1,
            rights=("P",),
            uses_shares=False,
            description="Buy a put: bearish, risk limited to the premium paid.",
            strikes_hint="one strike: the put's",
        ),
        StrategySpec(
            name="bull_call_spread",
            strike_count=2,
            rights=("C",),
            uses_shares=False,
            description="Buy a call, sell a higher-strike call (same expiry) for a net debit.",
            strikes_hint="two strikes: the bought (lower) and the sold (higher) call",
        ),
        StrategySpec(
            name="bear_put_spread",
            strike_count=2,
            rights=("P",),
            uses_shares=False,
            description="Buy a put, sell a lower-strike put (same expiry) for a net debit.",
            strikes_hint="two strikes: the sold (lower) and the bought (higher) put",
        ),
        StrategySpec(
            name="covered_call",
            strike_count=1,
            rights=("C",),
            uses_shares=True,
            description="Sell a call against shares held, or bought in the same order (buy-write).",
            strikes_hint="one strike: the sold call's",
        ),
        StrategySpec(
            name="protective_put",
            strike_count=1,
            rights=("P",),
            uses_shares=True,
            description="Buy a put to insure shares held, or bought in the same order.",
            strikes_hint="one strike: the put's",
        ),
        StrategySpec(
            name="collar",
            strike_count=2,
            rights=("P", "C"),
            uses_shares=True,
            description="On shares held or bought: buy a put, sell a higher-strike call.",
            strikes_hint="two strikes: the bought put (lower) and the sold call (higher)",
        ),
        StrategySpec(
            name="long_straddle",
            strike_count=1,
            rights=("C", "P"),
            uses_shares=False,
            description="Buy a call and a put at the same strike: profits from a large move.",
            strikes_hint="one strike, shared by the call and the put",
        ),
        StrategySpec(
            name="long_strangle",
            strike_count=2,
            rights=("P", "C"),
            uses_shares=False,
            description="Buy a put and a higher-strike call: a cheaper bet on a large move.",
            strikes_hint="two strikes: the put's (lower) and the call's (higher)",
        ),
        StrategySpec(
            name="custom",
            strike_count=None,
            rights=("C", "P"),
            uses_shares=False,
            description="Any legs you give, allowed only if every short is covered (Level-2 rule).",
            strikes_hint="no strikes: pass legs [{action, right, strike, expiry, ratio}]",
        ),
    )
}

_CREDIT = "it is opened for a net credit and its short leg is covered only by a cheaper long"

LEVEL3_PLUS: dict[str, RefusedStrategy] = {
    r.name: r
    for r in (
        RefusedStrategy(
            name="bull_put_spread",
            reason=f"a put credit spread: {_CREDIT} put at a lower strike",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="bear_call_spread",
            reason=f"a call credit spread: {_CREDIT} call at a higher strike",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="credit_spread",
            reason="credit spreads sell the more expensive option; the short leg is not covered",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="put_credit_spread",
            reason=f"a put credit spread: {_CREDIT} put at a lower strike",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="call_credit_spread",
            reason=f"a call credit spread: {_CREDIT} call at a higher strike",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="naked_call",
            reason="an uncovered short call has unlimited risk",
            level_needed=LEVEL_4,
        ),
        RefusedStrategy(
            name="short_call",
            reason="a short call without shares or a lower-strike long call is uncovered "
            "(to sell a call against shares use covered_call)",
            level_needed=LEVEL_4,
        ),
        RefusedStrategy(
            name="naked_put",
            reason="an uncovered short put can lose the strike times the multiplier",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="short_put",
            reason="a short put without a higher-strike long put is uncovered",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="cash_secured_put",
            reason="IB counts a cash-secured put as a short put",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="short_straddle",
            reason="sells a call and a put uncovered: unlimited risk",
            level_needed=LEVEL_4,
        ),
        RefusedStrategy(
            name="short_strangle",
            reason="sells a call and a put uncovered: unlimited risk",
            level_needed=LEVEL_4,
        ),
        RefusedStrategy(
            name="iron_condor",
            reason="a short iron condor is two credit spreads",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="iron_butterfly",
            reason="a short iron butterfly is two credit spreads",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="butterfly",
            reason="a butterfly sells two options against one cover each side (ratio of shorts)",
            level_needed=LEVEL_3,
        ),
        RefusedStrategy(
            name="ratio_spread",
            reason="a ratio spread sells more options than it buys: the extra shorts are uncovered",
            level_needed=f"{LEVEL_4} for call ratios; {LEVEL_3} for put ratios",
        ),
        RefusedStrategy(
            name="calendar",
            reason="the short and long legs expire on different dates; coverage needs one expiry",
            level_needed=f"{LEVEL_3} for a debit calendar; {LEVEL_4} for a credit calendar",
        ),
        RefusedStrategy(
            name="calendar_spread",
            reason="the short and long legs expire on different dates; coverage needs one expiry",
            level_needed=f"{LEVEL_3} for a debit calendar; {LEVEL_4} for a credit calendar",
        ),
        RefusedStrategy(
            name="diagonal",
            reason="the short and long legs expire on different dates; coverage needs one expiry",
            level_needed=f"{LEVEL_3} when the short leg expires first; {LEVEL_4} otherwise",
        ),
        RefusedStrategy(
            name="diagonal_spread",
            reason="the short and long legs expire on different dates; coverage needs one expiry",
            level_needed=f"{LEVEL_3} when the short leg expires first; {LEVEL_4} otherwise",
        ),
        RefusedStrategy(
            name="short_stock",
            reason="SumpPump never sells stock short",
            level_needed=NO_LEVEL_SHORT_STOCK,
        ),
    )
}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def lookup(name: str) -> StrategySpec:
    """The Level-2 spec for ``name`` (case, spaces and dashes are forgiven).

    Raises :class:`StrategyRefused`: ``NOT_PERMITTED_LEVEL2`` with the reason and the level needed
    for a recognised Level-3+ name, ``INVALID_ARGUMENT`` listing the allowed names otherwise.
    """
    key = _normalise(name)
    if key in LEVEL2:
        return LEVEL2[key]
    allowed = ", ".join(LEVEL2)
    if key in LEVEL3_PLUS:
        refused = LEVEL3_PLUS[key]
        raise StrategyRefused(
            "NOT_PERMITTED_LEVEL2",
            f"{refused.name} is not allowed: {refused.reason}. It needs {refused.level_needed}.",
            f"SumpPump trades Level-2 structures only: {allowed}.",
            level_needed=refused.level_needed,
        )
    raise StrategyRefused(
        "INVALID_ARGUMENT",
        f"unknown strategy {name!r}",
        f"use one of: {allowed}",
    )
