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
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10089: "Requested market data requires additional subscription for API. See link in "
    "'Market Data Connections' dialog for more details.",
    10167: "Requested market data is not subscribed. Displaying delayed market data.",
    10168: "Requested market data is not subscribed. Delayed market data is not enabled.",
}


@dataclass(frozen=True, slots=True)
class Entitlement:
    """Which market data the simulated user may see."""

    live: bool = True
    delayed: bool = True
