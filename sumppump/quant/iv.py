"""Vectorised Black–Scholes–Merton implied volatility with an explicit outcome per element.

Method (facts from notes/pricing.md §4c and §6; Jäckel, "Let's be rational", 2015):

1. Undiscount and forward: ``F = S·e^{(r−q)T}``, ``p = price·e^{rT}``. The no-arbitrage bounds are
   ``max(±(F − K), 0) <= p < F`` (call) or ``< K`` (put); vollib uses the same bounds.
2. Out-of-the-money-ise: the time value ``p − intrinsic`` is the price of the OTM option of the
   same strike (put–call parity), so every element becomes a normalised OTM call
   ``b(x, s) = β`` with ``x = −|ln(F/K)| <= 0``, ``s = σ√T`` and ``β = time value / √(FK)``.
3. Solve in ``s`` by Halley's method, safeguarded by a bracket (Newton, then bisection when a
   step leaves it), on one of two objectives: ``ln b(x, s) = ln β`` (lower branch) or, for
   prices above both the inflection value ``b(x, √(2|x|))`` and half the upper bound,
   ``ln(b_max − b) = ln(b_max − β)`` (upper branch; the target comes straight from the price's
   distance to its bound, so prices a hair below the bound still solve). Both are computed
   through erfcx without cancellation or underflow (deep-OTM prices down to 1e-308 keep full
   relative accuracy), both are concave in ``s`` (log-concavity of Gaussian integrals), and their
   first two derivatives cost no extra exp. The start is a rigorous lower bound of the root
   (``√(2π)·β``, ``|x|/√(−2 ln 2β)``) or the inflection point ``√(2|x|)``. On the 10,000-option
   SPY-like chain of bench/pricing.py every element is done within 6 sweeps (most in 4–5); the
   solver works on a shrinking active set.

Outcomes (:class:`IVStatus`, one per element; ``sigma`` is NaN unless SOLVED):

* ``BELOW_INTRINSIC``: price below the discounted intrinsic value by more than rounding
  (includes negative prices); vollib raises ``BelowIntrinsicException`` for the same quotes.
* ``ABOVE_UPPER_BOUND``: price at or above ``S·e^{−qT}`` (call) / ``K·e^{−rT}`` (put), or any time
  value at all on an expired option (``T == 0``).
* ``NO_TIME_VALUE``: price equal to intrinsic within rounding (time value within ±4 ulp of the
  price) or a subnormal time value: it carries no information about σ, any small σ reprices it.
* ``NOT_CONVERGED``: the iteration limit was reached (not observed on any test grid; callers may
  fall back to another solver for these elements).
* ``INVALID_INPUT``: NaN/inf, ``S <= 0``, ``K <= 0`` or ``T < 0``.

Never raises for numeric input and never emits numpy warnings. A price strictly inside the bounds
with representable time value is always SOLVED: there is no silent NaN.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

from sumppump.quant.bsm import _erfcx_scalar, erfcx

__all__ = ["IVResult", "IVStatus", "implied_vol"]

ArrayLike = Any

_SQRT2PI = math.sqrt(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_EPS = float(np.finfo(float).eps)
_TINY = float(np.finfo(float).tiny)  # smallest normal double
_LN2 = math.log(2.0)
_NO_TIME_VALUE_ULPS = 4.0
_STEP_RTOL = 1e-12
_MAX_ITERATIONS = 40
# Below this many elements a per-element pure-math loop beats the array machinery.
_SCALAR_LOOP_MAX = 8


class IVStatus(IntEnum):
    """Outcome of solving one element; values are stable (they travel in int8 arrays)."""

    SOLVED = 0
    BELOW_INTRINSIC = 1
    ABOVE_UPPER_BOUND = 2
    NO_TIME_VALUE = 3
    NOT_CONVERGED = 4
    INVALID_INPUT = 5


class IVResult(NamedTuple):
    """``sigma``: implied vols (NaN where not solved); ``status``: int8 array of IVStatus values.

    Compare with ``result.status == IVStatus.SOLVED``; ``IVStatus(int(s))`` names one element.
    """

    sigma: np.ndarray
    status: np.ndarray


# ---------------------------------------------------------------------------------------------
# normalised Black on the OTM side: x <= 0, s > 0
# ---------------------------------------------------------------------------------------------


def _objective(
    x: np.ndarray, s: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For x <= 0, s > 0: (f, d, c) with f = ln b(x, s) on the lower branch and ln(b_max − b) on
    the upper branch, d = |f'| and c = b''/b' (derivatives in s).

    With h = x/s, t = s/2 and k = e^{−(h²+t²)/2}: b = k·(erfcx(−(h+t)/√2) − erfcx((t−h)/√2))/2
    and b_max − b = k·(erfcx((h+t)/√2) + erfcx((t−h)/√2))/2, both free of cancellation and of
    underflow; since b' = k/√(2π), |f'| = 1/(√(2π)·E) with E the bracketed half-sum.
    """
    h = x / s
    t = 0.5 * s
    n = x.size
    sign = np.where(upper, 1.0, -1.0)
    both = erfcx(np.concatenate((sign * (h + t), t - h)) * _INV_SQRT2)
    e = 0.5 * (both[:n] + sign * both[n:])
    f = np.log(e) - 0.5 * (h * h + t * t)
    d = 1.0 / (_SQRT2PI * e)
    curv = x * x / (s * s * s) - 0.25 * s
    return f, d, curv


def _objective_scalar(x: float, s: float, upper: bool) -> tuple[float, float, float]:
    h = x / s
    t = 0.5 * s
    sign = 1.0 if upper else -1.0
    e = 0.5 * (
        _erfcx_scalar(sign * (h + t) * _INV_SQRT2) + sign * _erfcx_scalar((t - h) * _INV_SQRT2)
    )
    if not 0.0 < e < math.inf:  # only for absurd s; the bracket logic copes with ±inf
        return (math.inf if e == math.inf else -math.inf), math.nan, math.nan
    f = math.log(e) - 0.5 * (h * h + t * t)
    return f, 1.0 / (_SQRT2PI * e), x * x / (s * s * s) - 0.25 * s


def _start(x: np.ndarray, lnbeta: np.ndarray) -> tuple[np.ndarray, ...]:
    """Branch (True = upper), initial point and bracket [lo, hi] for the root in s."""
    lo1 = _SQRT2PI * np.exp(lnbeta)  # b(x, s) <= b(0, s) <= s/√(2π)
    ln2beta = _LN2 + lnbeta
    with np.errstate(divide="ignore", invalid="ignore"):
        lo2 = np.where(ln2beta < 0.0, -x / np.sqrt(-2.0 * ln2beta), 0.0)  # b <= e^{−h²/2}/2
    s_c = np.sqrt(-2.0 * x)  # inflection point of b(s)
    lnb_c = np.full_like(x, -np.inf)
    pos = s_c > 0.0
    if pos.any():
        lnb_c[pos] = _objective(x[pos], s_c[pos], np.zeros(int(pos.sum()), dtype=bool))[0]
    upper = lnbeta > np.maximum(lnb_c, 0.5 * x - _LN2)  # above b_c and above b_max / 2
    below_c = lnbeta < lnb_c
    lo = np.where(below_c, np.maximum(lo1, lo2), np.maximum(s_c, lo1))
    hi = np.where(below_c, s_c, np.inf)
    return upper, lo.copy(), lo, hi


def _solve(
    x: np.ndarray, lnbeta: np.ndarray, lngap: np.ndarray, max_iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised root in s of b(x, s) = β; returns (s, converged).

    ``lngap`` is ln(b_max − β), computed by the caller from the price's distance to its upper
    bound (no cancellation); it is the target on the upper branch.
    """
    upper, s, lo, hi = _start(x, lnbeta)
    target = np.where(upper, lngap, lnbeta)
    sign = np.where(upper, -1.0, 1.0)  # f increases in s on the lower branch, decreases above
    out = np.full_like(s, np.nan)
    converged = np.zeros(s.shape, dtype=bool)
    act = np.arange(s.size)
    for _ in range(max_iterations):
        if act.size == 0:
            break
        xs, ss, sg = x[act], s[act], sign[act]
        f, d, curv = _objective(xs, ss, upper[act])
        g = f - target[act]
        left = sg * g  # < 0: the root is to the right of ss
        lo_a = np.where(left < 0.0, ss, lo[act])
        hi_a = np.where(left > 0.0, ss, hi[act])
        newton = sg * g / d  # g / g'
        # Halley: s − (g/g')/(1 − ½(g/g')(g''/g')), with g''/g' = b''/b' − sign·|f'|
        denom = 1.0 - 0.5 * newton * (curv - sg * d)
        step = np.where((denom > 0.5) & (denom < 2.0), newton / denom, newton)
        s_new = ss - step
        # A converged step may round onto the bracket end it started from: accept it as is.
        small = np.abs(step) <= _STEP_RTOL * ss
        outside = ~((s_new > lo_a) & (s_new < hi_a)) & ~small
        if outside.any():
            s_new = np.where(outside, ss - newton, s_new)
            outside = ~((s_new > lo_a) & (s_new < hi_a))
            fallback = np.where(np.isfinite(hi_a), 0.5 * (lo_a + hi_a), 2.0 * ss)
            s_new = np.where(outside, fallback, s_new)
        exact = g == 0.0
        s_new = np.where(exact, ss, s_new)
        done = exact | small | (np.abs(s_new - ss) <= _STEP_RTOL * s_new)
        done |= (hi_a - lo_a) <= 4.0 * _EPS * lo_a
        s[act] = s_new
        lo[act] = lo_a
        hi[act] = hi_a
        finished = act[done]
        out[finished] = s_new[done]
        converged[finished] = True
        act = act[~done]
    return out, converged


def _solve_scalar(x: float, lnbeta: float, lngap: float, max_iterations: int) -> float:
    """Pure-math twin of :func:`_solve` for one element; NaN if not converged."""
    lo1 = _SQRT2PI * math.exp(lnbeta)
    lo2 = -x / math.sqrt(-2.0 * (_LN2 + lnbeta)) if _LN2 + lnbeta < 0.0 else 0.0
    s_c = math.sqrt(-2.0 * x)
    lnb_c = _objective_scalar(x, s_c, False)[0] if s_c > 0.0 else -math.inf
    upper = lnbeta > max(lnb_c, 0.5 * x - _LN2)
    target, sign = (lngap, -1.0) if upper else (lnbeta, 1.0)
    if lnbeta < lnb_c:
        s = lo = max(lo1, lo2)
        hi = s_c
    else:
        s = lo = max(s_c, lo1)
        hi = math.inf
    for _ in range(max_iterations):
        f, d, curv = _objective_scalar(x, s, upper)
        g = f - target
        if g == 0.0:
            return s
        if sign * g < 0.0:
            lo = s
        else:
            hi = s
        newton = sign * g / d
        denom = 1.0 - 0.5 * newton * (curv - sign * d)
        step = newton / denom if 0.5 < denom < 2.0 else newton
        if abs(step) <= _STEP_RTOL * s:  # converged (may round onto a bracket end)
            return s - step
        s_new = s - step
        if not lo < s_new < hi:
            s_new = s - newton
        if not lo < s_new < hi:  # also catches NaN
            s_new = 0.5 * (lo + hi) if hi < math.inf else 2.0 * s
        if abs(s_new - s) <= _STEP_RTOL * s_new or hi - lo <= 4.0 * _EPS * lo:
            return s_new
        s = s_new
    return math.nan


def _classify_scalar(
    price: float, S: float, K: float, T: float, r: float, q: float, is_call: bool
) -> tuple[IVStatus, float, float, float]:
    """Status of one element and, when it is to be solved, its (x, ln β, ln(b_max − β))."""
    if not (
        math.isfinite(price)
        and math.isfinite(r)
        and math.isfinite(q)
        and math.isfinite(T)
        and 0.0 < S < math.inf
        and 0.0 < K < math.inf
        and T >= 0.0
    ):
        return IVStatus.INVALID_INPUT, 0.0, 0.0, 0.0
    F = S * math.exp((r - q) * T)
    p = price / math.exp(-r * T)
    intrinsic = max(F - K, 0.0) if is_call else max(K - F, 0.0)
    tv = p - intrinsic
    rounding = _NO_TIME_VALUE_ULPS * _EPS * max(p, intrinsic)
    if p < 0.0 or tv < -rounding:
        return IVStatus.BELOW_INTRINSIC, 0.0, 0.0, 0.0
    bound = F if is_call else K
    if p >= bound or (T == 0.0 and tv > rounding):
        return IVStatus.ABOVE_UPPER_BOUND, 0.0, 0.0, 0.0
    if tv <= rounding or tv < _TINY:
        return IVStatus.NO_TIME_VALUE, 0.0, 0.0, 0.0
    x = -abs(math.log(F / K))
    half_ln_fk = 0.5 * (math.log(F) + math.log(K))
    lnbeta = math.log(tv) - half_ln_fk
    return IVStatus.SOLVED, x, lnbeta, math.log(bound - p) - half_ln_fk


def _implied_vol_scalar(
    price: float,
    S: float,
    K: float,
    T: float,
    r: float,
    q: float,
    is_call: bool,
    max_iterations: int,
) -> tuple[float, IVStatus]:
    status, x, lnbeta, lngap = _classify_scalar(price, S, K, T, r, q, is_call)
    if status is not IVStatus.SOLVED:
        return math.nan, status
    s = _solve_scalar(x, lnbeta, lngap, max_iterations)
    if math.isnan(s):
        return math.nan, IVStatus.NOT_CONVERGED
    return s / math.sqrt(T), IVStatus.SOLVED


_SCALAR_TYPES = (float, int, np.floating, np.integer, np.bool_)


def implied_vol(
    price: ArrayLike,
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike = 0.0,
    *,
    is_call: ArrayLike,
    max_iterations: int = _MAX_ITERATIONS,
) -> IVResult:
    """BSM implied volatility of European option prices, broadcast over all arguments.

    ``price`` is the option price (discounted, per share); ``T`` in years; ``r``, ``q``
    continuous. Returns an :class:`IVResult` of arrays with the broadcast shape (0-d for scalar
    input). Never raises for numeric input; see the module docstring for the statuses.
    """
    args = (price, S, K, T, r, q, is_call)
    if all(isinstance(a, _SCALAR_TYPES) for a in args):
        sig, st = _implied_vol_scalar(
            float(price),
            float(S),
            float(K),
            float(T),
            float(r),
            float(q),
            bool(is_call),
            max_iterations,
        )
        return IVResult(np.array(sig), np.array(int(st), dtype=np.int8))
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args[:6]),
                                 np.asarray(is_call, dtype=bool))  # fmt: skip
    shape = arrays[0].shape
    p_, S_, K_, T_, r_, q_ = (np.ravel(a) for a in arrays[:6])
    call = np.ravel(arrays[6])
    n = p_.size
    if n <= _SCALAR_LOOP_MAX:
        sig_list = np.empty(n)
        st_list = np.empty(n, dtype=np.int8)
        for i in range(n):
            sig_list[i], st_list[i] = _implied_vol_scalar(
                float(p_[i]),
                float(S_[i]),
                float(K_[i]),
                float(T_[i]),
                float(r_[i]),
                float(q_[i]),
                bool(call[i]),
                max_iterations,
            )
        return IVResult(sig_list.reshape(shape), st_list.reshape(shape))

    sigma = np.full(n, np.nan)
    status = np.full(n, IVStatus.INVALID_INPUT, dtype=np.int8)
    with np.errstate(all="ignore"):
        valid = (
            np.isfinite(p_)
            & np.isfinite(r_)
            & np.isfinite(q_)
            & np.isfinite(T_)
            & (S_ > 0.0)
            & (np.inf > S_)
            & (K_ > 0.0)
            & (np.inf > K_)
            & (T_ >= 0.0)
        )
        F = S_ * np.exp((r_ - q_) * T_)
        p = p_ / np.exp(-r_ * T_)
        intrinsic = np.maximum(np.where(call, F - K_, K_ - F), 0.0)
        tv = p - intrinsic
        # a time value within a few ulps of the price is rounding, not information about σ
        rounding = _NO_TIME_VALUE_ULPS * _EPS * np.maximum(p, intrinsic)
        bound = np.where(call, F, K_)
        half_ln_fk = 0.5 * (np.log(F) + np.log(K_))
        # ln β = ln(time value / √(FK)) in logs, so prices down to 1e-308 keep full precision
        lnbeta = np.log(tv) - half_ln_fk
        x = -np.abs(np.log(F / K_))
        below = valid & ((p < 0.0) | (tv < -rounding))
        above = valid & ~below
        above &= (p >= bound) | ((T_ == 0.0) & (tv > rounding))
        no_tv = valid & ~below & ~above & ((tv <= rounding) | (tv < _TINY))
        todo = valid & ~below & ~above & ~no_tv
        status[below] = IVStatus.BELOW_INTRINSIC
        status[above] = IVStatus.ABOVE_UPPER_BOUND
        status[no_tv] = IVStatus.NO_TIME_VALUE
        (idx,) = np.nonzero(todo)
        if idx.size:
            lngap = np.log(bound[idx] - p[idx]) - half_ln_fk[idx]  # ln(b_max − β)
            s, ok = _solve(x[idx], lnbeta[idx], lngap, max_iterations)
            sigma[idx] = np.where(ok, s / np.sqrt(T_[idx]), np.nan)
            status[idx] = np.where(ok, IVStatus.SOLVED, IVStatus.NOT_CONVERGED)
    return IVResult(sigma.reshape(shape), status.reshape(shape))
