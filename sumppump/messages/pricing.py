"""Protocol of the pricing actor (:mod:`sumppump.actors.pricing`): pure numerics, no TWS.

Requests carry plain floats in columns (one tuple per field, one element per option), which
msgspec encodes and decodes fast and the actor turns into numpy arrays in one step. Replies carry
plain tuples too (numpy is converted at the edge), with the source or status of every element.
A request the actor cannot price (mismatched lengths, non-finite or out-of-range inputs, oversized
grids) is answered with :class:`PricingRejected`, never with an exception.

Units: prices per share; ``years`` to expiry (calendar, ACT/365); ``rate`` and
``dividend_yield`` continuous and annual (0.045 = 4.5 %); ``sigma`` annual (0.2 = 20 %); theta per
calendar day, vega per vol point, rho per 1 % of rate.
"""

from __future__ import annotations

from typing import Literal

from sumppump.messages.base import Command, Reply
from sumppump.messages.common import GreeksSource
from sumppump.quant.payoff import PayoffLeg

__all__ = [
    "ChainGreeks",
    "ChainGreeksResult",
    "IVOutcome",
    "IVSource",
    "ImpliedVols",
    "ImpliedVolsResult",
    "OptionRight",
    "PnlGrid",
    "PnlGridResult",
    "PricingRejected",
    "PricingReply",
    "PricingRequest",
    "ProbabilityOfProfit",
    "ProbabilityOfProfitResult",
]

OptionRight = Literal["C", "P"]
#: Outcome of one implied-vol element (the names of :class:`sumppump.quant.iv.IVStatus`).
IVOutcome = Literal[
    "solved",
    "below_intrinsic",
    "above_upper_bound",
    "no_time_value",
    "not_converged",
    "invalid_input",
]
#: Who produced an implied vol: our vectorised solver, vollib's LetsBeRational (fallback for the
#: elements the solver leaves unsolved), or nobody (``sigma`` is None).
IVSource = Literal["solver", "vollib", "none"]


class ChainGreeks(Command, frozen=True, kw_only=True):
    """Price and Greeks (BSM) for a slice of a chain on one underlying.

    ``strikes``, ``years``, ``rights`` and ``sigmas`` have one element per option.
    """

    spot: float
    rate: float
    dividend_yield: float = 0.0
    strikes: tuple[float, ...]
    years: tuple[float, ...]
    rights: tuple[OptionRight, ...]
    sigmas: tuple[float, ...]


class ChainGreeksResult(Reply, frozen=True, kw_only=True):
    """One element per requested option, in request order."""

    price: tuple[float, ...]
    delta: tuple[float, ...]
    gamma: tuple[float, ...]
    theta: tuple[float, ...]
    vega: tuple[float, ...]
    rho: tuple[float, ...]
    source: tuple[GreeksSource, ...]


class ImpliedVols(Command, frozen=True, kw_only=True):
    """Implied volatilities from option prices (e.g. mids) on one underlying."""

    spot: float
    rate: float
    dividend_yield: float = 0.0
    strikes: tuple[float, ...]
    years: tuple[float, ...]
    rights: tuple[OptionRight, ...]
    prices: tuple[float, ...]


class ImpliedVolsResult(Reply, frozen=True, kw_only=True):
    """``sigma`` is None wherever ``status`` is not ``solved``."""

    sigma: tuple[float | None, ...]
    status: tuple[IVOutcome, ...]
    source: tuple[IVSource, ...]


class PnlGrid(Command, frozen=True, kw_only=True):
    """P&L surface of a structure: dollars at each horizon (rows) and underlying price (columns).

    Option legs need ``expiry_years`` and ``iv``; horizons are years from now (0 = today).
    """

    legs: tuple[PayoffLeg, ...]
    prices: tuple[float, ...]
    horizons_years: tuple[float, ...]
    rate: float
    dividend_yield: float = 0.0


class PnlGridResult(Reply, frozen=True, kw_only=True):
    prices: tuple[float, ...]
    horizons_years: tuple[float, ...]
    pnl: tuple[tuple[float, ...], ...]  # pnl[i][j]: horizon i, price j


class ProbabilityOfProfit(Command, frozen=True, kw_only=True):
    """Probability that the underlying ends (at ``years``) inside one of the profit intervals.

    ``profit_intervals`` are sorted, disjoint ``(lo, hi)`` pairs from the expiry payoff; ``hi``
    None means unbounded above (JSON has no infinity). The answer is always given risk-neutral
    (drift ``rate − dividend_yield``) and, when ``drift`` is set, also under that annual drift.
    """

    spot: float
    years: float
    sigma: float
    rate: float
    dividend_yield: float = 0.0
    profit_intervals: tuple[tuple[float, float | None], ...]
    drift: float | None = None


class ProbabilityOfProfitResult(Reply, frozen=True, kw_only=True):
    risk_neutral: float
    with_drift: float | None = None
    drift: float | None = None
    model: Literal["lognormal"] = "lognormal"


class PricingRejected(Reply, frozen=True, kw_only=True):
    """The request was not priced; ``reason`` says which input was wrong and why."""

    request: str
    reason: str


PricingRequest = ChainGreeks | ImpliedVols | PnlGrid | ProbabilityOfProfit
PricingReply = (
    ChainGreeksResult
    | ImpliedVolsResult
    | PnlGridResult
    | ProbabilityOfProfitResult
    | PricingRejected
)
