"""The pricing actor: pure numerics behind a mailbox (no TWS, no state worth losing).

It answers :data:`~sumppump.messages.pricing.PricingRequest` messages with typed replies:

* :class:`ChainGreeks` -> BSM price and Greeks per option (``sumppump.quant.bsm``);
* :class:`ImpliedVols` -> implied vols with a status and source per element
  (``sumppump.quant.iv``; elements the fast solver reports NOT_CONVERGED are retried with vollib's
  LetsBeRational, imported lazily on first use so server start-up does not pay for it);
* :class:`PnlGrid` -> P&L surface (``sumppump.quant.payoff.pnl_surface``);
* :class:`ProbabilityOfProfit` -> lognormal probability, risk-neutral and with a user drift
  (``sumppump.quant.probability``);
* ``Ping`` -> ``Pong``.

Invalid input is answered with :class:`PricingRejected` (reason names the first bad element);
the actor never crashes on user data. Numpy arrays are converted to tuples of floats here, at
the edge. It is a ``permanent`` child of the root supervisor; a restart loses nothing.

Large requests (more than :data:`THREAD_THRESHOLD` evaluations) run in a worker thread with
``anyio.to_thread.run_sync`` so the event loop keeps serving other actors; numpy releases the GIL
in its loops. Cancelling the caller does not stop a computation already in a thread (it finishes
in the background and its result is dropped); it is bounded by the size limits below.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar, assert_never

import anyio
import numpy as np

from sumppump.actors.runtime import Actor
from sumppump.messages.base import Message, Reply
from sumppump.messages.common import GreeksSource, Ping, Pong
from sumppump.messages.pricing import (
    ChainGreeks,
    ChainGreeksResult,
    ImpliedVols,
    ImpliedVolsResult,
    IVOutcome,
    IVSource,
    PnlGrid,
    PnlGridResult,
    PricingRejected,
    PricingReply,
    PricingRequest,
    ProbabilityOfProfit,
    ProbabilityOfProfitResult,
)
from sumppump.quant import bsm, iv, payoff, probability

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "MAX_GRID_CELLS",
    "MAX_OPTIONS",
    "THREAD_THRESHOLD",
    "PricingActor",
    "prime_allocator",
]

log = logging.getLogger(__name__)

#: Requests above this many option evaluations are computed in a worker thread.
THREAD_THRESHOLD: Final = 20_000
#: Largest chain slice one request may carry (a full SPY chain is ~12,000 contracts).
MAX_OPTIONS: Final = 200_000
#: Largest P&L grid (horizons × prices × legs).
MAX_GRID_CELLS: Final = 2_000_000

_T = TypeVar("_T")

_OUTCOME: Final[dict[int, IVOutcome]] = {
    iv.IVStatus.SOLVED: "solved",
    iv.IVStatus.BELOW_INTRINSIC: "below_intrinsic",
    iv.IVStatus.ABOVE_UPPER_BOUND: "above_upper_bound",
    iv.IVStatus.NO_TIME_VALUE: "no_time_value",
    iv.IVStatus.NOT_CONVERGED: "not_converged",
    iv.IVStatus.INVALID_INPUT: "invalid_input",
}


def prime_allocator() -> None:
    """Make glibc keep freed heap memory instead of returning it after every large temporary.

    glibc trims the heap top whenever more than 128 KiB is free there, until the first free of an
    mmap'd block raises its (dynamic) thresholds. Until then every numpy temporary above ~64 KiB
    page-faults anew, which slows 10,000-option kernels 1.5–2x (bench/pricing.py measures both
    states). Allocating and freeing one untouched 16 MiB array raises the thresholds for the
    process (to 16 MiB mmap / 32 MiB trim); it costs microseconds and no resident memory. Any
    long-running process gets there by itself sooner or later; this makes it happen at start.
    """
    block = np.empty(2 * 1024 * 1024)  # 16 MiB, never touched
    del block


class _Rejected(Exception):
    """Internal: input validation failed; becomes a :class:`PricingRejected` reply."""


class PricingActor(Actor):
    """Stateless pricing service; see the module docstring for the protocol.

    ``iv_max_iterations`` bounds the fast IV solver (tests lower it to exercise the vollib
    fallback); ``thread_threshold`` is the size above which work leaves the event loop.
    """

    def __init__(
        self,
        *,
        name: str = "pricing",
        iv_max_iterations: int = 40,
        thread_threshold: int = THREAD_THRESHOLD,
    ) -> None:
        self.name = name
        self.iv_max_iterations = iv_max_iterations
        self.thread_threshold = thread_threshold

    async def on_start(self) -> None:
        prime_allocator()

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, Ping):
            return Pong(actor=self.name)
        if isinstance(msg, PricingRequest):
            try:
                return await self._dispatch(msg)
            except _Rejected as rejected:
                return PricingRejected(request=type(msg).__name__, reason=str(rejected))
        if isinstance(msg, Reply):
            return None
        return PricingRejected(
            request=type(msg).__name__, reason="the pricing actor does not handle this message"
        )

    async def _dispatch(self, msg: PricingRequest) -> PricingReply:
        match msg:
            case ChainGreeks():
                return await self._run(len(msg.strikes), _chain_greeks, msg)
            case ImpliedVols():
                reply, unsolved = await self._run(
                    len(msg.strikes), _implied_vols, msg, self.iv_max_iterations
                )
                if unsolved.size:
                    # Rare (never seen on the test grids): pure-Python vollib, off the loop.
                    reply = await anyio.to_thread.run_sync(_vollib_fallback, msg, reply, unsolved)
                return reply
            case PnlGrid():
                cells = len(msg.legs) * len(msg.prices) * len(msg.horizons_years)
                return await self._run(cells, _pnl_grid, msg)
            case ProbabilityOfProfit():
                return _probability_of_profit(msg)
            case _:
                assert_never(msg)

    async def _run(self, size: int, fn: Callable[..., _T], *args: Any) -> _T:
        if size > self.thread_threshold:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)


# ---------------------------------------------------------------------------------------------
# validation helpers (raise _Rejected with a reason a person can act on)
# ---------------------------------------------------------------------------------------------


def _finite(name: str, value: float, *, positive: bool = False, non_negative: bool = False) -> None:
    if not math.isfinite(value):
        raise _Rejected(f"{name} must be a finite number, got {value!r}")
    if positive and not value > 0.0:
        raise _Rejected(f"{name} must be > 0, got {value!r}")
    if non_negative and not value >= 0.0:
        raise _Rejected(f"{name} must be >= 0, got {value!r}")


def _column(
    name: str,
    values: tuple[float, ...],
    n: int,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> NDArray[np.float64]:
    if len(values) != n:
        raise _Rejected(f"{name} has {len(values)} elements, expected {n}")
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr)
    if positive:
        bad |= ~(arr > 0.0)
    elif non_negative:
        bad |= ~(arr >= 0.0)
    if bad.any():
        i = int(np.argmax(bad))
        need = "> 0" if positive else ">= 0" if non_negative else "finite"
        raise _Rejected(f"{name}[{i}] = {values[i]!r} is not a valid value (must be {need})")
    return arr


def _option_columns(
    msg: ChainGreeks | ImpliedVols,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    n = len(msg.strikes)
    if n == 0:
        raise _Rejected("no options in the request")
    if n > MAX_OPTIONS:
        raise _Rejected(f"{n} options in one request; the limit is {MAX_OPTIONS}")
    _finite("spot", msg.spot, positive=True)
    _finite("rate", msg.rate)
    _finite("dividend_yield", msg.dividend_yield)
    strikes = _column("strikes", msg.strikes, n, positive=True)
    years = _column("years", msg.years, n, non_negative=True)
    if len(msg.rights) != n:
        raise _Rejected(f"rights has {len(msg.rights)} elements, expected {n}")
    is_call = np.fromiter((right == "C" for right in msg.rights), dtype=bool, count=n)
    return strikes, years, is_call


def _bsm_sources(n: int) -> tuple[GreeksSource, ...]:
    source: GreeksSource = "bsm"
    return (source,) * n


def _floats(a: NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(a.tolist())


# ---------------------------------------------------------------------------------------------
# request handlers (synchronous: may run in a worker thread)
# ---------------------------------------------------------------------------------------------


def _chain_greeks(msg: ChainGreeks) -> ChainGreeksResult:
    strikes, years, is_call = _option_columns(msg)
    sigmas = _column("sigmas", msg.sigmas, len(msg.strikes), non_negative=True)
    g = bsm.greeks(msg.spot, strikes, years, msg.rate, sigmas, msg.dividend_yield, is_call=is_call)
    return ChainGreeksResult(
        price=_floats(g.price),
        delta=_floats(g.delta),
        gamma=_floats(g.gamma),
        theta=_floats(g.theta),
        vega=_floats(g.vega),
        rho=_floats(g.rho),
        source=_bsm_sources(len(strikes)),
    )


def _implied_vols(
    msg: ImpliedVols, max_iterations: int
) -> tuple[ImpliedVolsResult, NDArray[np.intp]]:
    """The reply from the fast solver, and the indices it left NOT_CONVERGED."""
    strikes, years, is_call = _option_columns(msg)
    prices = _column("prices", msg.prices, len(msg.strikes))
    res = iv.implied_vol(
        prices,
        msg.spot,
        strikes,
        years,
        msg.rate,
        msg.dividend_yield,
        is_call=is_call,
        max_iterations=max_iterations,
    )
    solved = res.status == iv.IVStatus.SOLVED
    sigma: tuple[float | None, ...] = tuple(
        s if ok else None for s, ok in zip(res.sigma.tolist(), solved.tolist(), strict=True)
    )
    status = tuple(_OUTCOME[s] for s in res.status.tolist())
    source: tuple[IVSource, ...] = tuple("solver" if ok else "none" for ok in solved.tolist())
    unsolved = np.flatnonzero(res.status == iv.IVStatus.NOT_CONVERGED)
    return ImpliedVolsResult(sigma=sigma, status=status, source=source), unsolved


def _vollib_fallback(
    msg: ImpliedVols, reply: ImpliedVolsResult, unsolved: NDArray[np.intp]
) -> ImpliedVolsResult:
    """Retry the unsolved elements one by one with vollib (imported here, on first use).

    An element vollib solves becomes ``solved`` / ``vollib``; one it rejects stays
    ``not_converged`` / ``none``.
    """
    # vollib, not py_vollib: the latter is a deprecation shim that imports all of vollib.
    from vollib.black_scholes_merton.implied_volatility import (  # type: ignore[import-untyped]
        implied_volatility,
    )

    sigma = list(reply.sigma)
    status = list(reply.status)
    source = list(reply.source)
    for i in unsolved.tolist():
        try:
            value = float(
                implied_volatility(
                    msg.prices[i],
                    msg.spot,
                    msg.strikes[i],
                    msg.years[i],
                    msg.rate,
                    msg.dividend_yield,
                    "c" if msg.rights[i] == "C" else "p",
                )
            )
        except Exception as exc:  # vollib raises its own exception types per element
            log.info("vollib fallback rejected element %d: %r", i, exc)
            continue
        if math.isfinite(value) and value > 0.0:
            sigma[i], status[i], source[i] = value, "solved", "vollib"
    log.info("IV fallback: %d unsolved elements retried with vollib", unsolved.size)
    return ImpliedVolsResult(sigma=tuple(sigma), status=tuple(status), source=tuple(source))


def _pnl_grid(msg: PnlGrid) -> PnlGridResult:
    if not msg.legs:
        raise _Rejected("no legs in the request")
    if not msg.prices or not msg.horizons_years:
        raise _Rejected("prices and horizons_years must not be empty")
    cells = len(msg.legs) * len(msg.prices) * len(msg.horizons_years)
    if cells > MAX_GRID_CELLS:
        raise _Rejected(f"grid of {cells} leg-cells; the limit is {MAX_GRID_CELLS}")
    _finite("rate", msg.rate)
    _finite("dividend_yield", msg.dividend_yield)
    prices = _column("prices", msg.prices, len(msg.prices), positive=True)
    horizons = _column(
        "horizons_years", msg.horizons_years, len(msg.horizons_years), non_negative=True
    )
    for i, leg in enumerate(msg.legs):
        if leg.right != "STK" and (leg.expiry_years is None or leg.iv is None):
            raise _Rejected(f"legs[{i}] ({leg.right} {leg.strike}) needs expiry_years and iv")
    try:
        surface = payoff.pnl_surface(list(msg.legs), prices, horizons, msg.rate, msg.dividend_yield)
    except ValueError as exc:
        raise _Rejected(str(exc)) from None
    return PnlGridResult(
        prices=_floats(prices),
        horizons_years=_floats(horizons),
        pnl=tuple(tuple(row) for row in surface.tolist()),
    )


def _probability_of_profit(msg: ProbabilityOfProfit) -> ProbabilityOfProfitResult:
    _finite("spot", msg.spot, positive=True)
    _finite("years", msg.years, non_negative=True)
    _finite("sigma", msg.sigma, non_negative=True)
    _finite("rate", msg.rate)
    _finite("dividend_yield", msg.dividend_yield)
    if msg.drift is not None:
        _finite("drift", msg.drift)
    intervals = tuple((lo, math.inf if hi is None else hi) for lo, hi in msg.profit_intervals)
    try:
        intervals = probability.validate_intervals(intervals)
    except ValueError as exc:
        raise _Rejected(str(exc)) from None

    def pop(drift: float | None) -> float:
        return float(
            probability.probability_of_profit(
                msg.spot, intervals, msg.years, msg.sigma, msg.rate, msg.dividend_yield, drift
            )
        )

    return ProbabilityOfProfitResult(
        risk_neutral=pop(None),
        with_drift=None if msg.drift is None else pop(msg.drift),
        drift=msg.drift,
    )
