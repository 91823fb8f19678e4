"""Pure numerical cores (numpy only; no actors, no TWS).

* :mod:`sumppump.quant.bsm` -- Black–Scholes–Merton price and Greeks in IB's units.
* :mod:`sumppump.quant.iv` -- vectorised implied volatility with an explicit status per element.
* :mod:`sumppump.quant.probability` -- lognormal probabilities (above a level, probability of
  profit over the profit intervals of an expiry payoff).
* :mod:`sumppump.quant.payoff` -- exact expiry payoff, breakevens and P&L surfaces.

Submodules are imported on demand so that importing one does not pay for the others.
"""

from __future__ import annotations
