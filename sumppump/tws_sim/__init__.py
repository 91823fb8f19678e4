"""A wire-level simulated TWS that the real, unmodified ib_async 2.1.0 ``IB`` client accepts.

It speaks TWS's text protocol at server version 178 on a real 127.0.0.1 socket, over a
deterministic world built from a seed: optionable stocks and an ETF with listed weekly and monthly
expiries, Black-Scholes quotes with a smile and model greeks in IB's units, a seeded random walk
driven by a settable clock, accounts with cash and positions, an order state machine (LMT, MKT,
STP, STP LMT, DAY/GTC, BAG combos, partial fills, rejections, cancel, what-if), IB's limits
(50 msg/s, 100 lines, historical pacing) counted in ``sim.stats``, and scriptable faults.

Public API::

    async with SimTWS(seed=0, paper=False, scenario=None) as sim:   # 127.0.0.1, ephemeral port
        sim.port                       # where to connect
        sim.clock                      # SimClock: frozen by default; await sim.advance(s)
        await sim.step()               # let working orders fill / push quote changes now
        sim.requests, sim.orders_received, sim.requests_named("placeOrder")
        sim.stats                      # SimStats: violations, open_lines, requests_by_type ...
        # faults and scripting
        sim.drop_connections(); sim.stall(); sim.resume()
        await sim.refuse_connections(); await sim.accept_connections()
        sim.connectivity_lost(); sim.restored(data_lost=True)
        sim.reject_next_order(201, "Order rejected - reason:...")
        sim.partial_fill_next_order([1, 1])
        sim.delay_next_fill(30); sim.entitlement(live=False, delayed=True)
        sim.inject_error(200, req_id=5); sim.set_price("AAPL", 231.0)
        sim.set_options_level("U1234567", 1)

Run standalone with ``sumppump sim`` or ``python -m sumppump.tws_sim``.
"""

from __future__ import annotations

from .broker import AccountSpec, Broker, Execution, OrderRejected, SimOrder
from .catalog import Catalog, OptionContract, Underlying
from .clock import DEFAULT_START, SimClock
from .faults import ERROR_TEXTS, Entitlement
from .limits import SimStats
from .market import MarketModel
from .scenarios import SCENARIOS, scenario_names
from .server import ReceivedOrder, RecordedRequest, SimTWS

__all__ = [
    "DEFAULT_START",
    "ERROR_TEXTS",
    "SCENARIOS",
    "AccountSpec",
    "Broker",
    "Catalog",
    "Entitlement",
    "Execution",
    "MarketModel",
    "OptionContract",
    "OrderRejected",
    "ReceivedOrder",
    "RecordedRequest",
    "SimClock",
    "SimOrder",
    "SimStats",
    "SimTWS",
    "Underlying",
    "scenario_names",
]
