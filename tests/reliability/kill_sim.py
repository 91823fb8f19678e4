"""The simulated TWS for the kill tests, in its own process: ``python kill_sim.py [sim args]``.

``sumppump serve`` (without ``--sim``) judges market hours by the real clock, while the
simulator's world runs on its own (a trading day in November 2026). So that an order can be
placed whatever the hour the test runs, the stock's trading and liquid hours this simulator
reports are one session spanning the real days around now; the simulator's own clock, and so
its matching, stay those of its open market.
"""

from __future__ import annotations

import datetime as dt
import sys

from sumppump.tws_sim import catalog
from sumppump.tws_sim.__main__ import main


def _around_now(*_args: object, **_kw: object) -> str:
    today = dt.datetime.now(dt.UTC).date()
    days = [today + dt.timedelta(days=n) for n in (-1, 0, 1)]
    return ";".join(f"{d:%Y%m%d}:0000-{d:%Y%m%d}:2359" for d in days)


catalog.liquid_hours = _around_now  # type: ignore[assignment]
catalog.trading_hours = _around_now  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
