"""From intent (a strategy name, an expiry, strikes, a quantity) to the legs of one order.

Every structure, named or ``custom``, is checked by the Level-2 rule
(:func:`sumppump.strategies.coverage.check_coverage`) before it is returned; the net-debit part of
the rule needs a price and is applied again by the caller once the limit price is known.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from sumppump.strategies.catalog import LEVEL2, lookup
from sumppump.strategies.coverage import CoverageVerdict, check_coverage, require_covered
from sumppump.strategies.model import StrategyLeg, StrategyRefused, is_count, is_text

__all__ = [
    "MAX_LEGS",
    "BuiltStrategy",
    "build_strategy",
    "normalise_expiry",
    "require_level2",
    "validate_legs",
]

MAX_LEGS = 6
"""Most legs accepted in one order (IB combos take more; Level-2 structures never need more)."""


class BuiltStrategy(msgspec.Struct, frozen=True, kw_only=True):
    """The legs of one order, per unit of ``quantity``, and how its shorts are covered.

    ``shares_bought`` is the number of shares the order buys in total (0 unless it is a
    buy-write or buys shares to protect); ``held_shares_included`` the shares already held that the
    structure is built on (covered call, protective put or collar on held shares): pass it to
    :func:`sumppump.strategies.analysis.analyse_order` so the risk covers the whole position.
    ``free_shares`` the held shares that were free to cover calls. ``coverage`` is the Level-2
    verdict without the debit rule (``coverage.held_shares_used`` shares held become committed to
    its short calls); :func:`require_level2` applies the whole rule once the price is known.
    """

    symbol: str
    strategy: str
    legs: tuple[StrategyLeg, ...]
    quantity: int
    multiplier: int
    shares_bought: int
    held_shares_included: int
    free_shares: int
    coverage: CoverageVerdict
    notes: tuple[str, ...] = ()


def _invalid(message: str, hint: str) -> StrategyRefused:
    return StrategyRefused("INVALID_ARGUMENT", message, hint)


def normalise_expiry(expiry: object) -> str:
    """``YYYY-MM-DD`` (``YYYYMMDD`` is accepted too) as ``YYYY-MM-DD``; refuses anything else."""
    if isinstance(expiry, str):
        text = expiry.strip()
        for fmt in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return dt.datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
    raise _invalid(f"expiry {expiry!r} is not a date", "give the expiry as YYYY-MM-DD")


def _strike(value: object, what: str) -> float:
    try:
        strike = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        strike = math.nan
    if isinstance(value, bool) or not (math.isfinite(strike) and strike > 0):
        raise _invalid(f"{what} {value!r} is not a positive price", "strikes are prices per share")
    return strike


def _quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise _invalid(
            f"quantity must be a whole number of contracts > 0, got {quantity!r}",
            "quantity counts contracts (or spreads) to open",
        )
    return quantity


def validate_legs(
    legs: Sequence[StrategyLeg | Mapping[str, Any]], expiry: str | None
) -> tuple[StrategyLeg, ...]:
    """Validate ``custom`` legs (``{action, right, strike, expiry, ratio}`` dicts or legs).

    Option legs without an expiry take ``expiry``. Actions and rights are case-insensitive
    (``CALL``/``PUT``/``STOCK`` accepted). Raises :class:`StrategyRefused` (``INVALID_ARGUMENT``)
    for
    a missing or malformed field, more than :data:`MAX_LEGS` legs, a stock leg with a strike, or the
    same contract twice.
    """
    if not legs:
        raise _invalid("custom needs legs", "pass legs [{action, right, strike, expiry, ratio}]")
    if len(legs) > MAX_LEGS:
        raise _invalid(f"{len(legs)} legs; at most {MAX_LEGS}", "split the order")
    out: list[StrategyLeg] = []
    for n, raw in enumerate(legs, start=1):
        item: Mapping[str, Any] = (
            msgspec.structs.asdict(raw) if isinstance(raw, StrategyLeg) else raw
        )
        if not isinstance(item, Mapping):
            raise _invalid(f"leg {n} is not an object", "legs are {action, right, strike, ...}")
        action = str(item.get("action", "")).strip().upper()
        if action not in ("BUY", "SELL"):
            raise _invalid(f"leg {n}: action {item.get('action')!r}", "action is BUY or SELL")
        right = str(item.get("right", "")).strip().upper()
        right = {"CALL": "C", "PUT": "P", "STOCK": "STK"}.get(right, right)
        if right not in ("C", "P", "STK"):
            raise _invalid(f"leg {n}: right {item.get('right')!r}", "right is C, P or STK")
        ratio = item.get("ratio", 1)
        if isinstance(ratio, str) and ratio.strip().isdigit():
            ratio = int(ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio <= 0:
            raise _invalid(f"leg {n}: ratio {ratio!r}", "ratio is a whole number > 0")
        if right == "STK":
            if item.get("strike") is not None:
                raise _invalid(f"leg {n}: a stock leg has no strike", "leave strike empty")
            out.append(StrategyLeg(action=action, right="STK", ratio=ratio))  # type: ignore[arg-type]
            continue
        strike = _strike(item.get("strike"), f"leg {n}: strike")
        leg_expiry = item.get("expiry") or expiry
        if leg_expiry is None:
            raise _invalid(f"leg {n}: no expiry", "give each option leg an expiry YYYY-MM-DD")
        out.append(
            StrategyLeg(
                action=action,  # type: ignore[arg-type]
                right=right,  # type: ignore[arg-type]
                strike=strike,
                expiry=normalise_expiry(leg_expiry),
                ratio=ratio,
            )
        )
    seen: set[tuple[str, float | None, str | None]] = set()
    for leg in out:
        key = (leg.right, leg.strike, leg.expiry)
        if key in seen:
            raise _invalid(
                f"the same contract appears twice ({leg.describe()})",
                "give each contract once, with its ratio",
            )
        seen.add(key)
    return tuple(out)


def _sorted_strikes(name: str, strikes: Sequence[object] | None, count: int) -> list[float]:
    given = list(strikes or [])
    hint = LEVEL2[name].strikes_hint
    if len(given) != count:
        raise _invalid(f"{name} needs {count} strike(s), got {len(given)}", f"give {hint}")
    values = sorted(_strike(s, "strike") for s in given)
    if len(set(values)) != len(values):
        raise _invalid(f"{name} needs {count} different strikes, got {values}", f"give {hint}")
    return values


def build_strategy(
    *,
    symbol: str,
    strategy: str,
    expiry: str | None,
    strikes: Sequence[object] | None,
    quantity: int = 1,
    multiplier: int,
    shares_held: int = 0,
    shares_committed: int = 0,
    legs: Sequence[StrategyLeg | Mapping[str, Any]] | None = None,
) -> BuiltStrategy:
    """Build and check the legs of ``strategy`` (a catalogue name) for ``quantity`` units.

    ``strikes`` may come in any order (they are sorted; each strategy assigns them by role).
    ``multiplier`` is the option contract's multiplier (shares per contract). ``shares_held`` is the
    number of shares held; ``shares_committed`` how many of them already cover open short calls.
    A covered call or collar sells calls against the free shares if there are enough for every
    contract, otherwise it buys ``quantity × multiplier`` shares in the same order (buy-write); a
    protective put or collar buys shares when fewer than that are held. ``legs`` is for ``custom``.

    Raises :class:`StrategyRefused`: ``INVALID_ARGUMENT`` for a wrong strike count, equal strikes
    where distinct ones are needed, a bad expiry, quantity ≤ 0 or malformed legs;
    ``NOT_PERMITTED_LEVEL2`` for a Level-3+ name or a structure that breaks the coverage rule.
    """
    spec = lookup(strategy)
    name = spec.name
    qty = _quantity(quantity)
    if not is_text(symbol):
        raise _invalid("symbol is empty", "give the underlying's ticker, e.g. AAPL")
    if not is_count(multiplier) or multiplier <= 0:
        raise _invalid(f"multiplier {multiplier!r}", "the contract multiplier, e.g. 100")
    if shares_held < 0 or shares_committed < 0:
        raise _invalid("share counts cannot be negative", "short stock is never used as cover")
    free_shares = max(0, shares_held - shares_committed)
    needed_shares = qty * multiplier
    notes: list[str] = []
    held_included = 0

    if name == "custom":
        built = validate_legs(legs or [], normalise_expiry(expiry) if expiry else None)
        # the tool contract always has a strikes list; for custom it may only repeat the legs'
        given = {_strike(s, "strike") for s in strikes or []}
        if given and given != {leg.strike for leg in built if leg.strike is not None}:
            raise _invalid(
                "custom takes its strikes from the legs; the strikes given differ",
                "leave strikes empty for custom, or list exactly the legs' strikes",
            )
    else:
        if legs:
            raise _invalid(f"{name} takes strikes, not legs", "legs are only for custom")
        exp = normalise_expiry(expiry)
        ks = _sorted_strikes(name, strikes, spec.strike_count or 0)

        def opt(action: str, right: str, strike: float) -> StrategyLeg:
            return StrategyLeg(action=action, right=right, strike=strike, expiry=exp, ratio=1)  # type: ignore[arg-type]

        def shares_unless(held: int, why: str) -> list[StrategyLeg]:
            nonlocal held_included
            if held >= needed_shares:
                notes.append(f"uses {needed_shares} of the {shares_held} shares held")
                held_included = needed_shares
                return []
            if held > 0:
                notes.append(
                    f"{held} shares available, fewer than the {needed_shares} needed {why}; "
                    f"the order buys {needed_shares} shares"
                )
            else:
                notes.append(f"no shares available {why}; the order buys {needed_shares} shares")
            return [StrategyLeg(action="BUY", right="STK", ratio=multiplier)]

        match name:
            case "long_call":
                built_list = [opt("BUY", "C", ks[0])]
            case "long_put":
                built_list = [opt("BUY", "P", ks[0])]
            case "bull_call_spread":
                built_list = [opt("BUY", "C", ks[0]), opt("SELL", "C", ks[1])]
            case "bear_put_spread":
                built_list = [opt("BUY", "P", ks[1]), opt("SELL", "P", ks[0])]
            case "covered_call":
                built_list = [
                    *shares_unless(free_shares, "to cover the calls"),
                    opt("SELL", "C", ks[0]),
                ]
            case "protective_put":
                built_list = [
                    *shares_unless(shares_held, "to protect"),
                    opt("BUY", "P", ks[0]),
                ]
            case "collar":
                built_list = [
                    *shares_unless(free_shares, "to cover the calls"),
                    opt("BUY", "P", ks[0]),
                    opt("SELL", "C", ks[1]),
                ]
            case "long_straddle":
                built_list = [opt("BUY", "C", ks[0]), opt("BUY", "P", ks[0])]
            case "long_strangle":
                built_list = [opt("BUY", "P", ks[0]), opt("BUY", "C", ks[1])]
            case _:  # pragma: no cover - the catalogue and this match are kept in step
                raise AssertionError(f"no builder for {name}")
        built = tuple(built_list)

    verdict = check_coverage(built, qty, multiplier=multiplier, free_shares=free_shares)
    if name == "custom":
        held_included = verdict.held_shares_used
    if not verdict.allowed:
        raise StrategyRefused(
            "NOT_PERMITTED_LEVEL2",
            f"Not allowed at Level 2: {verdict.reason}.",
            "every short call needs shares or a lower-strike long call of the same expiry; every "
            "short put a higher-strike long put of the same expiry",
            level_needed=verdict.level_needed,
        )
    return BuiltStrategy(
        symbol=symbol.strip().upper(),
        strategy=name,
        legs=built,
        quantity=qty,
        multiplier=multiplier,
        shares_bought=sum(leg.ratio for leg in built if leg.right == "STK") * qty,
        held_shares_included=held_included,
        free_shares=free_shares,
        coverage=verdict,
        notes=tuple(notes),
    )


def require_level2(built: BuiltStrategy, net_price: float) -> CoverageVerdict:
    """The whole Level-2 rule for ``built`` at ``net_price`` (signed net per unit, positive debit),
    e.g. ``StrategyAnalysis.limit_price``: coverage as built plus the net-debit requirement.

    Raises :class:`StrategyRefused` (``NOT_PERMITTED_LEVEL2``) when refused.
    """
    return require_covered(
        built.legs,
        built.quantity,
        multiplier=built.multiplier,
        free_shares=built.free_shares,
        net_price=net_price,
    )
