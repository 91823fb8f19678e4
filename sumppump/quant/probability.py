"""Lognormal probabilities of where the underlying ends: above a level, inside profit intervals.

Model: ``S_T = S · exp((μ − σ²/2)·T + σ·√T·Z)``, Z standard normal. ``μ`` is the drift:
``drift=None`` means risk-neutral, ``μ = r − q``; a number is a user-set real-world drift
(annual, continuous). So ``P(S_T > L) = Φ(d)``, ``d = (ln(S/L) + (μ − σ²/2)T) / (σ√T)``.

Degenerate inputs are answered, not refused: a level ``<= 0`` is always exceeded, ``+inf`` never;
with ``σ√T == 0`` the terminal price is the deterministic forward ``S·e^{μT}`` (an interval counts
if the forward lies strictly inside it). Invalid elements (``S <= 0``, ``T < 0``, ``sigma < 0``,
NaN) give NaN. No numpy warnings are emitted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sumppump.quant.bsm import norm_cdf

__all__ = ["probability_above", "probability_of_profit", "validate_intervals"]

ArrayLike = Any


def _prob_above(
    S: np.ndarray, level: np.ndarray, T: np.ndarray, sigma: np.ndarray, mu: np.ndarray
) -> np.ndarray:
    with np.errstate(all="ignore"):
        vol = sigma * np.sqrt(T)
        d = (np.log(S / level) + (mu - 0.5 * sigma * sigma) * T) / vol
        p = norm_cdf(d)
        deterministic = vol == 0.0
        if deterministic.any():
            forward = S * np.exp(mu * T)
            p = np.where(deterministic, (forward > level).astype(float), p)
        p = np.where(level <= 0.0, 1.0, p)
        p = np.where(level == np.inf, 0.0, p)
        invalid = ~((S > 0.0) & (T >= 0.0) & (sigma >= 0.0)) | np.isnan(level) | np.isnan(mu)
        result: np.ndarray = np.where(invalid, np.nan, p)
    return result


def _drift(r: ArrayLike, q: ArrayLike, drift: ArrayLike | None) -> np.ndarray:
    if drift is None:
        mu: np.ndarray = np.asarray(r, dtype=float) - np.asarray(q, dtype=float)
        return mu
    return np.asarray(drift, dtype=float)


def probability_above(
    S: ArrayLike,
    level: ArrayLike,
    T: ArrayLike,
    sigma: ArrayLike,
    r: ArrayLike = 0.0,
    q: ArrayLike = 0.0,
    drift: ArrayLike | None = None,
) -> np.ndarray:
    """P(S_T > level) under the lognormal model, broadcast over all arguments.

    ``drift=None`` is risk-neutral (``r − q``); otherwise ``drift`` is the annual real-world drift
    and ``r``, ``q`` are ignored. Returns probabilities in [0, 1] (NaN for invalid elements).
    """
    S, level, T, sigma = (np.asarray(a, dtype=float) for a in (S, level, T, sigma))
    return _prob_above(S, level, T, sigma, _drift(r, q, drift))


def validate_intervals(intervals: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Check profit intervals: each ``0 <= lo < hi`` (``hi`` may be ``inf``), sorted, disjoint.

    Touching intervals (``hi == next lo``) are allowed. Returns them as a tuple of float pairs.

    :raises ValueError: with the first offending interval.
    """
    out: list[tuple[float, float]] = []
    previous_hi = 0.0
    for i, pair in enumerate(intervals):
        lo, hi = float(pair[0]), float(pair[1])
        if math.isnan(lo) or math.isnan(hi) or not (0.0 <= lo < hi) or lo == math.inf:
            raise ValueError(f"interval {i} ({lo}, {hi}) must satisfy 0 <= lo < hi")
        if lo < previous_hi:
            raise ValueError(f"interval {i} ({lo}, {hi}) overlaps or precedes the one before it")
        out.append((lo, hi))
        previous_hi = hi
    return tuple(out)


def probability_of_profit(
    S: ArrayLike,
    profit_intervals: Sequence[tuple[float, float]],
    T: ArrayLike,
    sigma: ArrayLike,
    r: ArrayLike = 0.0,
    q: ArrayLike = 0.0,
    drift: ArrayLike | None = None,
) -> np.ndarray:
    """Probability that ``S_T`` lands in one of ``profit_intervals`` (open intervals ``(lo, hi)``).

    ``profit_intervals`` is what the expiry payoff of a piecewise-linear structure gives (e.g.
    ``payoff.analyse_expiry(legs).profit_intervals``): sorted, disjoint, ``hi`` may be ``inf``.
    ``S``, ``T``, ``sigma``, ``r``, ``q`` and ``drift`` broadcast (scenarios); the result has their
    broadcast shape, clipped to [0, 1]. An empty tuple gives 0.

    :raises ValueError: when the intervals are not sorted, disjoint and ``0 <= lo < hi``.
    """
    intervals = validate_intervals(profit_intervals)
    S, T, sigma = (np.asarray(a, dtype=float) for a in (S, T, sigma))
    mu = _drift(r, q, drift)
    shape = np.broadcast_shapes(S.shape, T.shape, sigma.shape, mu.shape)
    if not intervals:
        invalid = ~((S > 0.0) & (T >= 0.0) & (sigma >= 0.0)) | np.isnan(mu)
        return np.where(np.broadcast_to(invalid, shape), np.nan, 0.0)
    S, T, sigma, mu = (np.broadcast_to(a, shape)[None, ...] for a in (S, T, sigma, mu))
    # the interval edges lo0, hi0, lo1, hi1, ... along a new leading axis
    edges = np.array(intervals, dtype=float).reshape((-1,) + (1,) * len(shape))
    above = _prob_above(S, edges, T, sigma, mu)
    above = above.reshape((-1, 2, *above.shape[1:]))
    with np.errstate(invalid="ignore"):
        total = np.sum(above[:, 0] - above[:, 1], axis=0)
        result: np.ndarray = np.clip(np.broadcast_to(total, shape), 0.0, 1.0)
    return result
