"""Shared types of the strategy layer: an order leg and a typed refusal."""

from __future__ import annotations

import math
from typing import Literal

import msgspec

__all__ = [
    "Action",
    "LegRight",
    "Refusal",
    "RefusalCode",
    "StrategyLeg",
    "StrategyRefused",
    "is_count",
    "is_text",
]

Action = Literal["BUY", "SELL"]
LegRight = Literal["C", "P", "STK"]
RefusalCode = Literal["INVALID_ARGUMENT", "NOT_PERMITTED_LEVEL2", "NO_MARKET_DATA"]


class StrategyLeg(msgspec.Struct, frozen=True, kw_only=True):
    """One leg of an order per unit of the order's quantity.

    ``ratio`` is contracts per unit for an option and shares per unit for stock (IB's combo-leg
    ratio): a buy-write of 1 contract with multiplier 100 has a stock leg of ratio 100. ``strike``
    and ``expiry`` (``YYYY-MM-DD``) are ``None`` for stock. Construction performs no validation;
    :func:`sumppump.strategies.builders.validate_legs` does, with typed refusals.
    """

    action: Action
    right: LegRight
    strike: float | None = None
    expiry: str | None = None
    ratio: int = 1

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.action == "BUY" else -1

    @property
    def is_option(self) -> bool:
        return self.right != "STK"

    def describe(self) -> str:
        """``BUY 1 C 105 2026-01-16`` / ``BUY 100 STK``."""
        if self.right == "STK":
            return f"{self.action} {self.ratio} STK"
        strike = _fmt_strike(self.strike)
        return f"{self.action} {self.ratio} {self.right} {strike} {self.expiry}"


def _fmt_strike(strike: float | None) -> str:
    if strike is None or not math.isfinite(strike):
        return str(strike)
    return f"{strike:g}" if strike == round(strike, 4) else repr(strike)


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why a structure is refused, in the shape of a tool error (``code``, ``message``, ``hint``).

    ``level_needed`` names the IB options permission level the structure would need, when the
    refusal is about permissions (e.g. ``"IB options Level 3 (spreads with limited risk)"``).
    """

    code: RefusalCode
    message: str
    hint: str
    level_needed: str | None = None


class StrategyRefused(Exception):
    """Raised by the pure builders and checks; carries a :class:`Refusal` in ``.refusal``."""

    def __init__(
        self,
        code: RefusalCode,
        message: str,
        hint: str,
        level_needed: str | None = None,
    ) -> None:
        super().__init__(message)
        self.refusal = Refusal(code=code, message=message, hint=hint, level_needed=level_needed)

    @property
    def code(self) -> RefusalCode:
        return self.refusal.code

    @property
    def message(self) -> str:
        return self.refusal.message

    @property
    def hint(self) -> str:
        return self.refusal.hint

    @property
    def level_needed(self) -> str | None:
        return self.refusal.level_needed


def is_count(value: object) -> bool:
    """``value`` is a whole number (an ``int`` that is not a ``bool``). The pure cores check
    their arguments at run time too: callers outside the type checker (tests, tools parsing
    model input) may pass anything."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: object) -> bool:
    """``value`` is a string with something other than white space in it."""
    return isinstance(value, str) and bool(value.strip())
