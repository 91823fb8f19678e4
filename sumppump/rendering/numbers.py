"""Numbers as a trader reads them, the same in text and in structured content.

Money and option prices to the cent, implied volatility in percent with one decimal, greeks to
two or three places. The ``r*`` functions round a value for structured content; the ``f*``
functions format the rounded value for text, so both show the same figure.
"""

from __future__ import annotations

__all__ = [
    "fcents",
    "fgreek",
    "fiv",
    "fnum",
    "fpct",
    "fprice",
    "fsigned",
    "rcents",
    "rgreek",
    "riv",
    "rnum",
    "rpct",
    "strikes_text",
    "whole",
]

NA = "n/a"


def rcents(value: float | None) -> float | None:
    """Money or a price, to the cent."""
    return None if value is None else round(value, 2)


def riv(value: float | None) -> float | None:
    """Implied (or historical) volatility as a fraction → percent with one decimal."""
    return None if value is None else round(value * 100, 1)


def rpct(value: float | None) -> float | None:
    """A probability or share as a fraction → percent with one decimal."""
    return None if value is None else round(value * 100, 1)


def rgreek(value: float | None, places: int = 3) -> float | None:
    """A greek to ``places`` decimals (delta and gamma 3, theta and vega 2 or 3)."""
    return None if value is None else round(value, places)


def rnum(value: float | None, places: int = 0) -> float | int | None:
    """A count or ratio; whole numbers become ints."""
    if value is None:
        return None
    if places == 0:
        return round(value)
    return round(value, places)


def whole(value: float) -> float | int:
    """A strike as written: ``225`` for 225.0, ``227.5`` kept."""
    return int(value) if value == int(value) else value


def fcents(value: float | None) -> str:
    """``1,234.56``; ``n/a`` for none."""
    return NA if value is None else f"{value:,.2f}"


def fprice(value: float | None) -> str:
    """A price without thousands separators for short table cells: ``12.3`` → ``12.30``."""
    return "-" if value is None else f"{value:.2f}"


def fsigned(value: float | None) -> str:
    """Signed money: ``+1,234.56`` / ``-12.00``."""
    return NA if value is None else f"{value:+,.2f}"


def fiv(value_pct: float | None) -> str:
    """An already rounded percent (:func:`riv`/:func:`rpct`): ``23.4%``."""
    return "-" if value_pct is None else f"{value_pct:.1f}%"


fpct = fiv


def fgreek(value: float | None) -> str:
    """An already rounded greek, shortest form: ``0.512``, ``-0.04``."""
    return "-" if value is None else f"{value:g}"


def fnum(value: float | int | None) -> str:
    """A count with thousands separators: ``12,345``."""
    return "-" if value is None else f"{value:,.0f}"


def strikes_text(strikes: tuple[float, ...] | list[float]) -> str:
    """``225/230``."""
    return "/".join(f"{k:g}" for k in strikes)
