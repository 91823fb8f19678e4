"""Exact payoff of an option structure: expiry P&L, max loss/gain, breakevens, P&L surface.

At expiry every leg is piecewise linear in the underlying price ``S``: a call is ``max(S - K, 0)``,
a put ``max(K - S, 0)``, stock ``S``. The sum is piecewise linear with kinks at the strikes, so the
whole profile is known from its value at ``S = 0``, its values at the kinks and its slope beyond the
last kink. :func:`analyse_expiry` works on exactly those points, in rational arithmetic on the
decimal values of the inputs (``Fraction(str(x))``), so a debit of 2.10 is 21/10 and not the nearest
binary float: breakevens are exact roots of the linear pieces (never found by sampling), a structure
whose best case is exactly zero is reported as zero, and quantity scales results exactly.

Conventions (every function here):

* ``position`` is signed units (contracts for options, shares for stock): positive long, negative
  short; for an order it is ``quantity * leg ratio``.
* ``multiplier`` comes from the contract (100 for a standard US equity option, 1 for stock); it is
  never assumed.
* ``entry_price`` is per share: what was paid for a long, what was received for a short.
* Money results are dollars (account currency) for the whole structure.

For legs with different expiries the "expiry" profile treats every leg at its intrinsic value at the
same underlying price; that is exact only when the legs share one expiry. :func:`pnl_surface` prices
each leg at its own remaining time instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from sumppump.quant import bsm

__all__ = [
    "ExpiryProfile",
    "PayoffLeg",
    "analyse_expiry",
    "expiry_pnl",
    "pnl_surface",
]

Right = Literal["C", "P", "STK"]


class PayoffLeg(msgspec.Struct, frozen=True, kw_only=True):
    """One leg of a position as the payoff sees it.

    Raises ``ValueError`` on construction when the leg is inconsistent: an option without a positive
    strike, stock with a strike, a non-positive multiplier, a negative or non-finite price.
    """

    right: Right
    strike: float | None = None
    position: float
    multiplier: float
    entry_price: float
    expiry_years: float | None = None
    iv: float | None = None

    def __post_init__(self) -> None:
        if self.right == "STK":
            if self.strike is not None:
                raise ValueError("a stock leg has no strike")
        elif self.strike is None or not (math.isfinite(self.strike) and self.strike > 0):
            raise ValueError(f"an option leg needs a positive strike, got {self.strike!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier > 0):
            raise ValueError(f"multiplier must be positive, got {self.multiplier!r}")
        if not math.isfinite(self.position):
            raise ValueError(f"position must be finite, got {self.position!r}")
        if not (math.isfinite(self.entry_price) and self.entry_price >= 0):
            raise ValueError(f"entry_price must be a finite price >= 0, got {self.entry_price!r}")
        if self.expiry_years is not None and not math.isfinite(self.expiry_years):
            raise ValueError(f"expiry_years must be finite, got {self.expiry_years!r}")
        if self.iv is not None and not (math.isfinite(self.iv) and self.iv > 0):
            raise ValueError(f"iv must be positive, got {self.iv!r}")


class ExpiryProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The expiry P&L of a structure, summarised exactly.

    ``max_loss`` is positive dollars (``None``: unbounded); it is ``-min P&L`` and so can be zero or
    negative only for a structure that cannot lose. ``max_gain`` is ``max P&L`` (``None``:
    unbounded);
    it is zero or negative for a structure that cannot profit. ``breakevens`` are the finite prices
    where the P&L crosses zero (the edges of ``profit_intervals``, excluding ``S = 0``);
    ``profit_intervals`` are the sorted open intervals where the P&L is positive, ``hi`` may be
    ``inf``. ``kinks`` are the sorted distinct strikes, ``pnl_at_kinks`` the P&L there,
    ``pnl_at_zero`` the P&L at ``S = 0`` and ``slope_beyond`` the dollars gained per $1 of ``S``
    above the last kink.
    """

    max_loss: float | None
    max_gain: float | None
    breakevens: tuple[float, ...]
    profit_intervals: tuple[tuple[float, float], ...]
    kinks: tuple[float, ...]
    pnl_at_kinks: tuple[float, ...]
    pnl_at_zero: float
    slope_beyond: float


def _leg_arrays(
    legs: Sequence[PayoffLeg],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Strikes (0 for stock), dollar weights (position × multiplier), is-call and is-put masks."""
    strikes = np.array([leg.strike if leg.strike is not None else 0.0 for leg in legs], dtype=float)
    weights = np.array([leg.position * leg.multiplier for leg in legs], dtype=float)
    is_call = np.array([leg.right == "C" for leg in legs], dtype=bool)
    is_put = np.array([leg.right == "P" for leg in legs], dtype=bool)
    return strikes, weights, is_call, is_put


def expiry_pnl(legs: Sequence[PayoffLeg], prices: ArrayLike) -> NDArray[np.float64]:
    """P&L in dollars at expiry for each underlying price in ``prices`` (any shape).

    Returns an array of the shape of ``prices``. An empty ``legs`` gives zeros.
    """
    s = np.asarray(prices, dtype=float)
    if not legs:
        return np.zeros_like(s)
    strikes, weights, is_call, is_put = _leg_arrays(legs)
    entry = np.array([leg.entry_price for leg in legs], dtype=float)
    # legs along a new leading axis, prices broadcast behind it
    shape = (len(legs),) + (1,) * s.ndim
    k = strikes.reshape(shape)
    value = np.where(
        is_call.reshape(shape),
        np.maximum(s - k, 0.0),
        np.where(is_put.reshape(shape), np.maximum(k - s, 0.0), s),
    )
    return np.asarray(
        np.sum(weights.reshape(shape) * (value - entry.reshape(shape)), axis=0), dtype=float
    )


def _exact(x: float) -> Fraction:
    # the decimal a person typed (2.1), not the binary float nearest to it
    return Fraction(repr(float(x)))


def _exact_pnl(legs: Sequence[PayoffLeg], s: Fraction) -> Fraction:
    total = Fraction(0)
    for leg in legs:
        if leg.right == "STK":
            value = s
        else:
            k = _exact(leg.strike)  # type: ignore[arg-type]
            value = max(s - k, Fraction(0)) if leg.right == "C" else max(k - s, Fraction(0))
        total += _exact(leg.position) * _exact(leg.multiplier) * (value - _exact(leg.entry_price))
    return total


def analyse_expiry(legs: Sequence[PayoffLeg]) -> ExpiryProfile:
    """Max loss, max gain, breakevens and profit intervals of the expiry P&L, exactly.

    Works on ``S = 0``, the kinks and the slope beyond the last kink (module docstring). Raises
    ``ValueError`` when ``legs`` is empty.
    """
    if not legs:
        raise ValueError("analyse_expiry needs at least one leg")
    kinks = sorted({_exact(leg.strike) for leg in legs if leg.strike is not None})
    xs = [Fraction(0), *kinks]
    fs = [_exact_pnl(legs, x) for x in xs]
    # beyond every strike a call moves 1:1, a put is worthless, stock moves 1:1
    slope = sum(
        (_exact(leg.position) * _exact(leg.multiplier) for leg in legs if leg.right != "P"),
        Fraction(0),
    )

    lowest, highest = min(fs), max(fs)
    max_loss = None if slope < 0 else -lowest
    max_gain = None if slope > 0 else highest

    # positive part of each linear piece, then merged across touching ends
    pieces: list[tuple[Fraction, Fraction | None]] = []
    for (a, fa), (b, fb) in itertools.pairwise(zip(xs, fs, strict=True)):
        if fa > 0 and fb > 0:
            pieces.append((a, b))
        elif fa > 0:
            pieces.append((a, a + fa * (b - a) / (fa - fb)))
        elif fb > 0:
            pieces.append((a + fa * (b - a) / (fa - fb), b))
    last_x, last_f = xs[-1], fs[-1]
    if last_f > 0:
        pieces.append((last_x, None if slope >= 0 else last_x + last_f / -slope))
    elif slope > 0:
        pieces.append((last_x - last_f / slope, None))

    merged: list[tuple[Fraction, Fraction | None]] = []
    for lo, hi in pieces:
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    intervals = tuple((float(lo), math.inf if hi is None else float(hi)) for lo, hi in merged)
    breakevens_exact: list[Fraction] = []
    for lo, hi in merged:
        if lo != 0:
            breakevens_exact.append(lo)
        if hi is not None:
            breakevens_exact.append(hi)
    return ExpiryProfile(
        max_loss=None if max_loss is None else float(max_loss),
        max_gain=None if max_gain is None else float(max_gain),
        breakevens=tuple(float(b) for b in breakevens_exact),
        profit_intervals=intervals,
        kinks=tuple(float(k) for k in kinks),
        pnl_at_kinks=tuple(float(f) for f in fs[1:]),
        pnl_at_zero=float(fs[0]),
        slope_beyond=float(slope),
    )


def pnl_surface(
    legs: Sequence[PayoffLeg],
    prices: ArrayLike,
    horizons_years: ArrayLike,
    r: float,
    q: float = 0.0,
) -> NDArray[np.float64]:
    """P&L in dollars at each horizon (rows) and underlying price (columns).

    Each option leg is worth its Black–Scholes–Merton value (``sumppump.quant.bsm.price``) with its
    own ``iv`` and remaining time ``expiry_years - horizon``, or its intrinsic value once that is
    ``<= 0``. Stock legs are worth ``S``. Returns ``ndarray[len(horizons), len(prices)]``.

    Raises ``ValueError`` when a price is not positive or an option leg lacks ``expiry_years`` or
    ``iv``.
    """
    s = np.asarray(prices, dtype=float).reshape(-1)
    h = np.asarray(horizons_years, dtype=float).reshape(-1)
    if s.size and not np.all(s > 0):
        raise ValueError("pnl_surface needs positive underlying prices")
    surface = np.zeros((h.size, s.size), dtype=float)
    if not legs:
        return surface
    s_row = s[np.newaxis, np.newaxis, :]  # (1, 1, N)

    for right in ("C", "P"):
        group = [leg for leg in legs if leg.right == right]
        if not group:
            continue
        for leg in group:
            if leg.expiry_years is None or leg.iv is None:
                raise ValueError(f"option leg {leg.right} {leg.strike} needs expiry_years and iv")
        k = np.array([leg.strike for leg in group], dtype=float)[:, None, None]  # (L, 1, 1)
        sigma = np.array([leg.iv for leg in group], dtype=float)[:, None, None]
        expiry = np.array([leg.expiry_years for leg in group], dtype=float)[:, None, None]
        weight = np.array([leg.position * leg.multiplier for leg in group], dtype=float)
        entry = np.array([leg.entry_price for leg in group], dtype=float)
        remaining = expiry - h[np.newaxis, :, np.newaxis]  # (L, H, 1)
        alive = remaining > 0
        # expired cells are priced with a dummy time and then replaced by intrinsic value, so the
        # kernel never sees T <= 0 (0/0 in d1 would warn, and warnings are errors in the tests)
        t_safe = np.where(alive, remaining, 1.0)
        model = bsm.price(s_row, k, t_safe, r, sigma, q, is_call=(right == "C"))
        intrinsic = np.maximum(s_row - k, 0.0) if right == "C" else np.maximum(k - s_row, 0.0)
        value = np.where(alive, model, intrinsic)  # (L, H, N)
        surface += np.einsum("l,lhn->hn", weight, value - entry[:, None, None])

    for leg in legs:
        if leg.right == "STK":
            surface += leg.position * leg.multiplier * (s[np.newaxis, :] - leg.entry_price)
    return surface
