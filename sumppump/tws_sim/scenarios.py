"""Named scenarios: ready-made worlds selectable with ``SimTWS(scenario=...)`` or
``sumppump sim --scenario NAME``. Each applies settings and fault switches to a fresh simulator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import NEW_YORK

if TYPE_CHECKING:
    from .server import SimTWS

__all__ = ["SCENARIOS", "apply_scenario", "scenario_names"]


def _paper(sim: SimTWS) -> None:
    broker = sim.broker
    renamed = {}
    for account_id, acct in broker.accounts.items():
        new_id = account_id if account_id.startswith("D") else "D" + account_id
        acct.account_id = new_id
        renamed[new_id] = acct
    broker.accounts = renamed


def _after_hours(sim: SimTWS) -> None:
    local = sim.clock.now().astimezone(NEW_YORK)
    evening = dt.datetime.combine(local.date(), dt.time(18, 0), NEW_YORK)
    sim.clock.set(evening)


def _level(level: int) -> Callable[[SimTWS], None]:
    def apply(sim: SimTWS) -> None:
        for acct in sim.broker.accounts.values():
            acct.options_level = level

    return apply


def _reject_orders(sim: SimTWS) -> None:
    sim.broker.persistent_rejection = (
        201,
        "Order rejected - reason:Simulated rejection (scenario reject_orders)",
    )


EXPIRY_DAY = dt.date(2026, 12, 18)
"""The December 2026 monthly expiry (third Friday), the day of the ``expiry_day`` scenario."""


def _expiry_day(sim: SimTWS) -> None:
    """14:00 New York on an expiry day; the account holds, besides its 200 AAPL: 2 long calls
    about $10 in the money (exercised at settlement unless told to lapse: $100 x strike each),
    1 short call about $20 in the money (assigned: 100 shares delivered) and 1 long put about
    $20 out of the money (lapses). Settlement runs once the clock passes 17:30 New York."""
    from .broker import Position

    sim.clock.set(dt.datetime.combine(EXPIRY_DAY, dt.time(14, 0), NEW_YORK))
    und = sim.catalog.underlying("AAPL")
    assert und is not None
    spot = sim.market.spot("AAPL")
    expiry = EXPIRY_DAY.strftime("%Y%m%d")

    def strike_near(target: float) -> float:
        return min(und.strikes, key=lambda k: abs(k - target))

    holdings = (
        (strike_near(spot - 10), "C", 2.0),
        (strike_near(spot - 20), "C", -1.0),
        (strike_near(spot - 20), "P", 1.0),
    )
    for acct in sim.broker.accounts.values():
        for strike, right, quantity in holdings:
            option = sim.catalog.option("AAPL", expiry, strike, right)
            assert option is not None
            cost = round(sim.market.mark(option) * option.multiplier, 4)
            acct.positions[option.con_id] = Position(option, quantity, cost)


def _partial_fills(sim: SimTWS) -> None:
    sim.broker.split_fills = 2


def _slow_fills(sim: SimTWS) -> None:
    sim.broker.default_fill_delay = 30.0


SCENARIOS: dict[str, tuple[str, Callable[[SimTWS], None]]] = {
    "default": ("live-looking account U1234567, 200 AAPL, market open", lambda sim: None),
    "paper": ("the same world with a paper account (DU...)", _paper),
    "delayed_only": (
        "no live market-data subscription: 354 for live, 10167 + delayed ticks for type 3",
        lambda sim: sim.entitlement(live=False, delayed=True),
    ),
    "no_market_data": (
        "neither live nor delayed data: 354 for live, 10168 for delayed",
        lambda sim: sim.entitlement(live=False, delayed=False),
    ),
    "api_subscription_missing": (
        "a live subscription TWS shows but not for the API: 10089",
        lambda sim: sim.entitlement(api_subscription=False),
    ),
    "competing_session": (
        "another live login holds the market data: 10197, nothing arrives",
        lambda sim: sim.entitlement(competing_session=True),
    ),
    "partial_subscription": (
        "part of the data not subscribed: advisory 10090, the rest keeps streaming",
        lambda sim: sim.entitlement(advisory=10090),
    ),
    "partial_api_subscription": (
        "part of the data needs an API subscription: advisory 10091, the rest keeps streaming",
        lambda sim: sim.entitlement(advisory=10091),
    ),
    "expiry_day": (
        "14:00 New York on the 2026-12-18 expiry: long ITM calls, a short ITM call and an OTM "
        "put on AAPL; they settle (exercise, assignment, lapse) after 17:30",
        _expiry_day,
    ),
    "after_hours": ("clock at 18:00 New York: orders rest until the next open", _after_hours),
    "level1": ("options permission level 1 (covered calls only)", _level(1)),
    "no_options": ("no options permission", _level(0)),
    "reject_orders": ("every order is rejected with 201", _reject_orders),
    "partial_fills": ("every order fills in two slices", _partial_fills),
    "slow_fills": ("every order waits 30 simulated seconds before it can fill", _slow_fills),
}


def scenario_names() -> list[str]:
    return sorted(SCENARIOS)


def apply_scenario(sim: SimTWS, name: str) -> None:
    """Apply scenario ``name``; raises KeyError for an unknown name."""
    try:
        _description, apply = SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(scenario_names())}") from None
    apply(sim)
