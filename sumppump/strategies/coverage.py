"""The Level-2 rule, applied to every structure (named or ``custom``), unit by unit.

The rule (DESIGN §4):

* no short stock;
* every short call contract is covered by ``multiplier`` shares (held and not already covering
  another short call, or bought in the same order), or by a long call of the same expiry with a
  lower (or equal) strike;
* every short put contract is covered by a long put of the same expiry with a higher (or equal)
  strike;
* a structure that relies on no shares (options only) must be opened for a net debit.

Coverage is counted per contract: a 1×2 ratio spread has one short call covered and one not, and is
refused. Long options cover greedily in strike order (shorts from the nearest-the-money outward),
which finds the largest possible matching; shares cover what the options cannot, shares bought in
the order before shares held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import msgspec

from sumppump.strategies.catalog import LEVEL_3, LEVEL_4, NO_LEVEL_SHORT_STOCK
from sumppump.strategies.model import StrategyLeg, StrategyRefused

__all__ = ["CoverageVerdict", "check_coverage", "require_covered"]


class CoverageVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of the Level-2 rule for one order.

    ``allowed`` with ``reason`` in words; when refused, ``level_needed`` names the IB permission the
    structure would need. ``held_shares_used`` is how many held shares this order's short calls rely
    on (the caller must treat them as committed while the calls are open); ``bought_shares_used``
    how many of the shares bought in the order do. ``covers`` says, per short leg, what covers it.
    ``debit_rule`` is ``"met"`` (options only, net debit), ``"not_applicable"`` (the structure uses
    shares) or ``"not_checked"`` (options only but no net price was given).
    """

    allowed: bool
    reason: str
    level_needed: str | None = None
    held_shares_used: int = 0
    bought_shares_used: int = 0
    covers: tuple[str, ...] = ()
    debit_rule: Literal["met", "not_applicable", "not_checked"] = "not_checked"


def _refuse(reason: str, level: str, covers: list[str]) -> CoverageVerdict:
    return CoverageVerdict(allowed=False, reason=reason, level_needed=level, covers=tuple(covers))


def check_coverage(
    legs: Sequence[StrategyLeg],
    quantity: int,
    *,
    multiplier: int,
    free_shares: int = 0,
    net_price: float | None = None,
) -> CoverageVerdict:
    """Apply the Level-2 rule to ``legs`` traded ``quantity`` times.

    ``multiplier`` is the options' contract multiplier (shares per contract); ``free_shares`` the
    shares held that do not already cover an open short call; ``net_price`` the net per unit,
    positive for a debit (``None``: the debit rule is skipped, ``debit_rule="not_checked"``).
    Pure; never raises for a disallowed structure (it returns ``allowed=False``). Raises
    ``ValueError`` for a non-positive ``quantity``/``multiplier`` or negative ``free_shares``.
    """
    if quantity <= 0 or multiplier <= 0 or free_shares < 0:
        raise ValueError("quantity and multiplier must be positive, free_shares >= 0")
    covers: list[str] = []

    if any(leg.right == "STK" and leg.action == "SELL" for leg in legs):
        return _refuse("the order sells stock short", NO_LEVEL_SHORT_STOCK, covers)
    bought_shares = sum(leg.ratio * quantity for leg in legs if leg.right == "STK")

    # (expiry, right) -> strike -> signed contracts
    books: dict[tuple[str | None, str], dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for leg in legs:
        if leg.right != "STK":
            books[(leg.expiry, leg.right)][leg.strike] += leg.sign * leg.ratio * quantity  # type: ignore[index]

    bought_left, held_left = bought_shares, free_shares
    uncovered_calls: list[tuple[str | None, float, int]] = []
    for (expiry, right), book in sorted(books.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        longs = {k: n for k, n in book.items() if n > 0}
        shorts = {k: -n for k, n in book.items() if n < 0}
        if not shorts:
            continue
        # Calls: a long covers every short at its strike or above, so walk shorts upward and let
        # each take any long at or below it. Puts mirror that downward.
        ascending = right == "C"
        long_strikes = sorted(longs, reverse=not ascending)
        available, next_long = 0, 0
        for k_short in sorted(shorts, reverse=not ascending):
            while next_long < len(long_strikes) and (
                long_strikes[next_long] <= k_short
                if ascending
                else long_strikes[next_long] >= k_short
            ):
                available += longs[long_strikes[next_long]]
                next_long += 1
            need = shorts[k_short]
            by_options = min(need, available)
            available -= by_options
            need -= by_options
            label = f"SELL {shorts[k_short]} {right} {k_short:g} {expiry}"
            parts = [f"{by_options} by long {right} of the same expiry"] if by_options else []
            if need and right == "C":
                from_bought = min(need, bought_left // multiplier)
                bought_left -= from_bought * multiplier
                need -= from_bought
                from_held = min(need, held_left // multiplier)
                held_left -= from_held * multiplier
                need -= from_held
                if from_bought:
                    parts.append(f"{from_bought} by {from_bought * multiplier} shares bought")
                if from_held:
                    parts.append(f"{from_held} by {from_held * multiplier} shares held")
            if need:
                parts.append(f"{need} UNCOVERED")
                if right == "P":
                    covers.append(f"{label}: " + ", ".join(parts))
                    return _refuse(
                        f"{need} short put contract(s) at {k_short:g} ({expiry}) have no long put "
                        "of the same expiry at an equal or higher strike",
                        LEVEL_3,
                        covers,
                    )
                uncovered_calls.append((expiry, k_short, need))
            covers.append(f"{label}: " + ", ".join(parts))

    if uncovered_calls:
        expiry, strike, need = uncovered_calls[0]
        # a short call whose loss is capped by some long call expiring no earlier (a call credit
        # spread, a diagonal) is IB Level 3; one with nothing behind it is naked, Level 4
        capped = any(
            leg.right == "C" and leg.action == "BUY" and (leg.expiry or "") >= (expiry or "")
            for leg in legs
        )
        shares_note = (
            f"; {multiplier} shares per contract would cover it, and {free_shares} free shares are"
            " held"
        )
        return _refuse(
            f"{need} short call contract(s) at {strike:g} ({expiry}) are not covered by shares or "
            f"by a long call of the same expiry at an equal or lower strike{shares_note}",
            LEVEL_3 if capped else LEVEL_4,
            covers,
        )

    held_used = free_shares - held_left
    bought_used = bought_shares - bought_left
    uses_shares = bought_shares > 0 or held_used > 0
    debit_rule: Literal["met", "not_applicable", "not_checked"] = "not_checked"
    if uses_shares:
        debit_rule = "not_applicable"
    elif net_price is not None:
        debit_rule = "met"
        if not net_price > 0:
            return _refuse(
                f"an options-only structure must be opened for a net debit; this one is a net "
                f"{'credit' if net_price < 0 else 'zero'} of {abs(net_price):.2f} per unit",
                LEVEL_3,
                covers,
            )
    reason = "every short leg is covered" if covers else "no short legs"
    if debit_rule == "met":
        reason += "; opened for a net debit"
    return CoverageVerdict(
        allowed=True,
        reason=reason,
        held_shares_used=held_used,
        bought_shares_used=bought_used,
        covers=tuple(covers),
        debit_rule=debit_rule,
    )


def require_covered(
    legs: Sequence[StrategyLeg],
    quantity: int,
    *,
    multiplier: int,
    free_shares: int = 0,
    net_price: float | None = None,
) -> CoverageVerdict:
    """:func:`check_coverage`; raises :class:`StrategyRefused` (``NOT_PERMITTED_LEVEL2``) if
    refused."""
    verdict = check_coverage(
        legs, quantity, multiplier=multiplier, free_shares=free_shares, net_price=net_price
    )
    if not verdict.allowed:
        raise StrategyRefused(
            "NOT_PERMITTED_LEVEL2",
            f"Not allowed at Level 2: {verdict.reason}.",
            "Level 2 allows long calls/puts, debit spreads, covered calls, protective puts, "
            "collars and long straddles/strangles; every short must be covered.",
            level_needed=verdict.level_needed,
        )
    return verdict
