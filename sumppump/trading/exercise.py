"""The plan for exercising a long option, or instructing IB not to exercise it (lapse).

Pure: :func:`plan_exercise` checks the request and states exactly what would happen, for a
preview the person confirms before anything is sent (``exerciseOptions`` is irrevocable).

Facts (sources in /work/shared/notes/ib-behaviour.md §f):

* IB must receive an exercise or lapse instruction for US options by **17:25 New York time**
  on expiry day (IB's exercise page, https://interactivebrokers.com/en/index.php?f=63269; an
  older version said 16:30). Both are irrevocable. An American option may be exercised on any
  trading day up to that cut-off.
* The OCC auto-exercises an option expiring ≥ $0.01 in the money (ibkr.info/article/1767), so
  "lapse" is the instruction that stops that; "exercise" matters for an option that is not
  (or not yet) in the money, or before expiry.
* API: ``exerciseOptions(contract, 1 = exercise / 2 = lapse, quantity, account, override)``.

Only long options can be exercised or lapsed; a short option is assigned, never exercised.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from sumppump.messages.connection import PositionInfo

__all__ = [
    "CUTOFF_SOURCE",
    "CUTOFF_TIME",
    "ExerciseAction",
    "ExercisePlan",
    "ExerciseRefused",
    "exercise_cutoff",
    "plan_exercise",
]

NEW_YORK = ZoneInfo("America/New_York")
#: IB's deadline for exercise and lapse instructions on US options, New York time.
CUTOFF_TIME = dt.time(17, 25)
CUTOFF_SOURCE = (
    "IB's exercise page (https://interactivebrokers.com/en/index.php?f=63269): exercise "
    "requests for US options by 17:25 ET on expiry day; exercises and lapses are irrevocable"
)

ExerciseAction = Literal["exercise", "lapse"]


class ExerciseRefused(msgspec.Struct, frozen=True, kw_only=True):
    """The request cannot be planned: ``code`` is a tool error code."""

    code: Literal["INVALID_ARGUMENT", "MARKET_CLOSED", "NOT_PERMITTED_LEVEL2"]
    message: str
    hint: str


class ExercisePlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the instruction does. ``shares``: + bought (call exercised), − delivered (put
    exercised); ``cash``: money moved by it (− paid); ``shares_after``: the underlying held
    afterwards; ``contracts_after``: the option contracts left. ``intrinsic`` per share at
    ``spot`` (None without a spot)."""

    action: ExerciseAction
    contract: str
    con_id: int
    contracts: int
    shares: float
    cash: float
    shares_after: float
    contracts_after: float
    intrinsic: float | None
    cutoff: str  # ISO time with the New York offset
    cutoff_source: str
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """One sentence, for a confirm text."""
        if self.action == "lapse":
            return (
                f"Do not exercise {self.contracts} {self.contract}: they expire worthless "
                f"(no shares, no cash); {self.contracts_after:g} contracts stay held until expiry."
            )
        verb = "buys" if self.shares > 0 else "delivers"
        return (
            f"Exercise {self.contracts} {self.contract}: {verb} {abs(self.shares):g} shares for "
            f"{abs(self.cash):,.2f} ({'paid' if self.cash < 0 else 'received'}); "
            f"afterwards {self.shares_after:g} shares and {self.contracts_after:g} contracts."
        )


def exercise_cutoff(expiry: dt.date) -> dt.datetime:
    """IB's cut-off for instructions on an option expiring ``expiry`` (17:25 New York)."""
    return dt.datetime.combine(expiry, CUTOFF_TIME, tzinfo=NEW_YORK)


def _refused(
    code: Literal["INVALID_ARGUMENT", "MARKET_CLOSED", "NOT_PERMITTED_LEVEL2"],
    message: str,
    hint: str,
) -> ExerciseRefused:
    return ExerciseRefused(code=code, message=message, hint=hint)


def plan_exercise(
    position: PositionInfo,
    *,
    action: ExerciseAction,
    quantity: int | None,
    now: dt.datetime,
    spot: float | None,
    shares_held: float,
    available_funds: float | None,
) -> ExercisePlan | ExerciseRefused:
    """Plan ``action`` on ``quantity`` contracts (None: all held) of ``position``.

    Refused: not an option, a short option, a quantity ≤ 0 or over what is held, ``now``
    (timezone-aware) at or after IB's cut-off on expiry day (so an expired option too), and
    a put exercised without the shares to deliver (short stock: ``NOT_PERMITTED_LEVEL2``).
    Warnings (not refusals): exercising an out-of-the-money option, lapsing one in the money,
    exercising before expiry (its time value is given up), cash beyond available funds."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    contract = f"{position.symbol} {position.expiry} {(position.strike or 0.0):g} {position.right}"
    if position.sec_type != "OPT" or not position.expiry or position.right not in ("C", "P"):
        return _refused(
            "INVALID_ARGUMENT",
            f"{position.symbol} shares are not an option",
            "name a long option position",
        )
    if position.quantity < 0:
        return _refused(
            "INVALID_ARGUMENT",
            f"{contract} is a short option: it can be assigned, not exercised",
            "close it with close_position or roll it with roll_position",
        )
    held = round(position.quantity)
    wanted = held if quantity is None else quantity
    if wanted <= 0:
        return _refused(
            "INVALID_ARGUMENT",
            f"quantity {wanted} must be positive",
            f"a whole number of contracts, at most {held}",
        )
    if wanted > held:
        return _refused(
            "INVALID_ARGUMENT",
            f"{wanted} contracts asked, {held} held of {contract}",
            f"give quantity ≤ {held}",
        )
    expiry = dt.date.fromisoformat(position.expiry)
    cutoff = exercise_cutoff(expiry)
    if now >= cutoff:
        return _refused(
            "MARKET_CLOSED",
            f"IB's cut-off for {contract} was {cutoff:%Y-%m-%d %H:%M} New York time",
            "exercise and lapse instructions are no longer accepted; the OCC settles it "
            "(auto-exercise at ≥ $0.01 in the money)",
        )
    multiplier = position.multiplier
    sign = 1 if position.right == "C" else -1
    strike = position.strike or 0.0
    intrinsic = None
    if spot is not None:
        intrinsic = max(sign * (spot - strike), 0.0)
    warnings: list[str] = []
    if action == "lapse":
        shares, cash = 0.0, 0.0
        if intrinsic is not None and intrinsic >= 0.01:
            warnings.append(
                f"it is {intrinsic:.2f} in the money: lapsing forfeits "
                f"{intrinsic * wanted * multiplier:,.2f}; selling it (close_position) keeps that"
            )
    else:
        shares = sign * wanted * multiplier
        cash = -shares * strike
        if intrinsic is not None and intrinsic < 0.01:
            warnings.append(
                f"it is out of the money at {spot:g}: exercising costs more than buying or "
                "selling the shares in the market"
            )
        if now.astimezone(NEW_YORK).date() < expiry:
            warnings.append(
                "exercising before expiry gives up the option's remaining time value; selling "
                "the option (close_position) usually realises more"
            )
        if cash < 0 and available_funds is not None and -cash > available_funds:
            warnings.append(
                f"it needs {-cash:,.2f} and available funds are {available_funds:,.2f}: IB may "
                "refuse the exercise or liquidate (ibkr.info/article/1767)"
            )
        if shares < 0 and shares_held + shares < 0:
            return _refused(
                "NOT_PERMITTED_LEVEL2",
                f"only {shares_held:g} shares are held: exercising delivers {-shares:g} and "
                "leaves the account short stock",
                "buy the shares first, or sell the put with close_position",
            )
    return ExercisePlan(
        action=action,
        contract=contract,
        con_id=position.con_id,
        contracts=wanted,
        shares=shares,
        cash=round(cash, 2),
        shares_after=shares_held + shares,
        contracts_after=held - wanted if action == "exercise" else held,
        intrinsic=None if intrinsic is None else round(intrinsic, 4),
        cutoff=cutoff.isoformat(),
        cutoff_source=CUTOFF_SOURCE,
        warnings=tuple(warnings),
    )


def choose_option(
    held: list[PositionInfo], symbol: str, position: str | None
) -> PositionInfo | ExerciseRefused:
    """The option position of ``symbol`` named by ``position`` (a con_id, or words of its
    ``expiry strike right`` such as ``2026-12-18 230 C``); None: the only option held.
    Short options are candidates too, so :func:`plan_exercise` can say why it refuses one."""
    options = [p for p in held if p.sec_type == "OPT"]
    if position is not None and position.strip():
        wanted = position.replace(",", " ").upper().split()
        options = [p for p in options if _names(p, wanted)]
    if len(options) == 1:
        return options[0]
    listed = "; ".join(_label(p) for p in options) or "none"
    if not options:
        return _refused(
            "INVALID_ARGUMENT",
            f"no option position in {symbol} matches {position or 'any'}",
            "get_positions lists what is held",
        )
    return _refused(
        "INVALID_ARGUMENT",
        f"{len(options)} option positions in {symbol} match: {listed}",
        "name one with position='<expiry> <strike> <C|P>' or its con_id",
    )


def _label(p: PositionInfo) -> str:
    return f"{p.quantity:+g} {p.expiry} {(p.strike or 0.0):g} {p.right} (con_id {p.con_id})"


def _names(p: PositionInfo, words: list[str]) -> bool:
    if words == [str(p.con_id)]:
        return True
    own = {str(p.expiry), f"{p.strike or 0.0:g}", str(p.right), "CALL" if p.right == "C" else "PUT"}
    return all(w in own for w in words)


def exercise_confirm_text(plan: ExercisePlan, *, account: str, account_kind: str) -> str:
    """The one line the person confirms: the instruction, the shares, the cash, the position
    afterwards and IB's cut-off."""
    cutoff = dt.datetime.fromisoformat(plan.cutoff)
    return (
        f"{plan.action.capitalize()} on {account_kind} account {account}: {plan.describe()} "
        f"Irrevocable; IB's cut-off is {cutoff:%Y-%m-%d %H:%M} New York time."
    )
