"""IB's error texts and the market-data entitlement switch used by the fault hooks.

The hooks themselves are methods of :class:`~sumppump.tws_sim.server.SimTWS`
(``drop_connections``, ``stall``/``resume``, ``refuse_connections``/``accept_connections``,
``connectivity_lost``/``restored``, ``reject_next_order``, ``partial_fill_next_order``,
``delay_next_fill``, ``entitlement``, ``inject_error``); a second connection with a client id in
use gets 326 and is closed automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ERROR_TEXTS", "Entitlement"]

ERROR_TEXTS: dict[int, str] = {
    100: "Max rate of messages per second has been exceeded.",
    101: "Max number of tickers has been reached.",
    103: "Duplicate order id",
    162: "Historical Market Data Service error message:Historical data request pacing violation",
    200: "No security definition has been found for the request",
    201: "Order rejected - reason:",
    202: "Order Canceled - reason:",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    354: "Requested market data is not subscribed.Delayed market data is available.",
    # IB message codes (https://interactivebrokers.github.io/tws-api/message_codes.html) and
    # real strings quoted in notes/ib-behaviour.md §g.
    387: "Unsupported order type for this exchange and security type.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10089: "Requested market data requires additional subscription for API. See link in "
    "'Market Data Connections' dialog for more details.",
    10090: "Part of requested market data is not subscribed. Subscription-independent ticks are "
    "still active.Delayed market data is not available.",
    10091: "Part of requested market data requires additional subscription for API. See link in "
    "'Market Data Connections' dialog for more details.",
    10197: "No market data during competing live session",
    10224: "One-cancels-all group of orders should contain orders with exactly the same account.",
    10268: "The 'EtradeOnly' order attribute is not supported.",
    10269: "The 'firmQuoteOnly' order attribute is not supported.",
    10167: "Requested market data is not subscribed. Displaying delayed market data.",
    10168: "Requested market data is not subscribed. Delayed market data is not enabled.",
}


@dataclass(frozen=True, slots=True)
class Entitlement:
    """Which market data the simulated user may see (IB's codes: notes/ib-behaviour.md §g).

    * ``live`` off: a live request (type 1/2) gets 354, nothing arrives;
    * ``delayed`` off too: a delayed request (type 3/4) gets 10168 (10167 + delayed ticks when
      on);
    * ``api_subscription`` off: the live subscription exists in TWS but not for the API: 10089;
    * ``competing_session``: another live login holds the data session: 10197, nothing arrives;
    * ``advisory`` 10090 / 10091: part of the data is not subscribed; IB sends the notice and
      the data keeps coming (IB message codes).
    """

    live: bool = True
    delayed: bool = True
    api_subscription: bool = True
    competing_session: bool = False
    advisory: int | None = None
