"""A wire-level simulated TWS that the real, unmodified ib_async 2.1.0 ``IB`` client accepts.

It speaks TWS's text protocol at server version 178 on a real 127.0.0.1 socket, over a
deterministic world built from a seed: seven optionable stocks and an ETF with listed weekly and
monthly expiries, Black-Scholes quotes with a smile and model greeks in IB's units, a seeded random
walk driven by a settable clock, accounts with cash and positions, an order state machine (LMT, MKT,
STP, STP LMT, DAY/GTC, BAG combos, partial fills, rejections, cancel, what-if), IB's limits
(50 msg/s, 100 lines, historical pacing) counted in ``sim.stats``, and scriptable faults.
Everything it answers is SIMULATED; the default account id only looks live.

Construction (all keyword arguments optional)::

    SimTWS(host="127.0.0.1", port=0, *, seed=0, clock=None, accounts=None, paper=False,
           scenario=None, server_version=178, max_lines=100, max_msg_rate=50,
           disconnect_on_rate_violation=True, fill_policy="mid", tick_interval=0.25)

* ``clock``: a :class:`SimClock`; default frozen at :data:`DEFAULT_START` (Wed 2026-11-25
  10:00 New York, market open). Pacing windows, market hours, expiries and the walk follow it.
* ``accounts``: :class:`AccountSpec` list; default one ``U1234567`` (``DU1234567`` with
  ``paper=True``) with $100,000 and 200 AAPL, options level 2.
* ``fill_policy``: ``"mid"`` (limits at or better than the mid fill at the limit) or ``"touch"``.
* ``scenario``: a name from :data:`SCENARIOS` (``scenario_names()``).

Use::

    async with SimTWS(seed=0) as sim:           # listens at once; sim.port is the bound port
        ib = IB()
        await ib.connectAsync("127.0.0.1", sim.port, clientId=17, raiseSyncErrors=True)
        await sim.advance(60)                   # move the clock; working orders fill, ticks flow
        await sim.step()                        # the same without moving the clock
        sim.orders_received                     # decoded placeOrders (.order_ref, .what_if)
        sim.requests_named("reqMktData")        # RecordedRequest: time, client, msg id, raw fields
        sim.stats.assert_clean()                # no limit violated, nothing misunderstood

Hooks: ``drop_connections()``, ``stall()`` / ``resume()``, ``await refuse_connections()`` /
``await accept_connections()``, ``await stop()`` / ``await start()`` (same port, state kept),
``connectivity_lost()`` (1100), ``restored(data_lost=True)`` (1101, lines dropped) or ``False``
(1102), ``reject_next_order(code=201, text=None, advanced_json="")``,
``partial_fill_next_order([1, 2])``, ``delay_next_fill(seconds)`` (simulated seconds),
``delay_responses("reqHistoricalData", 2.0)`` (wall seconds), ``entitlement(live=, delayed=,
api_subscription=, competing_session=, advisory=)`` (354 / 10167 + delayed ticks / 10168 / 10089
/ 10197 / advisory 10090 or 10091 with data), ``what_if_unanswered(n)`` (warning-only previews
ib_async never completes), ``resend_after_refused_modification`` (attribute),
``inject_error(code, req_id=-1, text=None,
client_id=None)``, ``set_price(symbol, price | None)``, ``set_options_level(account, level)``.
A second connection with a client id in use gets 326 and is closed. A client whose version range
excludes 178 is refused at the handshake (``handshake_refusals`` says why): every encoder writes
v178 layouts. ``exerciseOptions`` is served (``exercise_requests``), dividends come on generic tick
456, and options settle at expiry (auto-exercise >= $0.01 in the money, else lapse); see
:mod:`.expiry` and the ``expiry_day`` scenario.

``sim.stats`` (:class:`SimStats`): ``messages_rate_violations``, ``lines_violations``,
``pacing_violations``, ``violations`` (dict), ``total_violations``, ``open_lines``,
``max_open_lines``, ``connections_accepted``, ``connections_rejected``, ``forced_disconnects``,
``unknown_messages``, ``protocol_errors``, ``internal_errors``, ``requests_by_type`` (Counter by
request name), ``errors_sent`` (Counter by error code), ``violation_log``, ``assert_clean()``.

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
