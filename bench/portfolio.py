"""The book's pure pipeline: structures → valuation → expiry watch → text and structured content.

A book of 5 symbols, each with 100 shares, a covered call, a bull call spread, a bear put
spread, a long call and a long straddle (45 positions, 30 structures), quotes with greeks and
previous closes, and one stop per symbol. Cases:

* ``reference_group_structures``: :func:`sumppump.trading.holdings.group_structures` per symbol (the
  grouping ``close_position`` already pays), run in the same process;
* ``structures_of``: the grouping with the inferred pairing;
* ``value_portfolio``: grouping and valuation (payoff analysis twice per structure);
* ``get_portfolio_pure``: valuation, expiry watch and rendering, all ``get_portfolio`` does
  after TWS answered.

Ratios are against the reference. Timings are best-of-N wall clock with the median alongside.
Run: ``.venv/bin/python bench/portfolio.py``. Writes ``bench/results/portfolio.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import host_info
from sumppump.messages.common import Greeks, Quote
from sumppump.messages.connection import AccountSnapshot, PositionInfo
from sumppump.rendering.portfolio import portfolio_result, portfolio_structured, portfolio_text
from sumppump.trading.expiry_watch import watch_expiries
from sumppump.trading.holdings import group_structures
from sumppump.trading.portfolio import WorkingOrder, structures_of, value_portfolio

RESULTS = Path(__file__).resolve().parent / "results" / "portfolio.json"
TODAY = dt.date(2026, 12, 16)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "JPM")
ACCOUNT = AccountSnapshot(
    account_id="U1",
    currency="USD",
    net_liquidation=500_000.0,
    available_funds=200_000.0,
    buying_power=400_000.0,
)


def book() -> tuple[list[PositionInfo], dict[int, Quote], dict[str, float | None], list[Any]]:
    positions: list[PositionInfo] = []
    quotes: dict[int, Quote] = {}
    orders: list[WorkingOrder] = []
    con_id = 1000
    for n, symbol in enumerate(SYMBOLS):
        spot = 100.0 + 50 * n
        stock_id = 10 + n
        positions.append(
            PositionInfo(account="U1", con_id=stock_id, symbol=symbol, sec_type="STK",
                         quantity=100, avg_cost=spot * 0.9)
        )  # fmt: skip
        quotes[stock_id] = Quote(con_id=stock_id, bid=spot - 0.01, ask=spot + 0.01, close=spot)
        legs = [  # (quantity, strike offset, right, expiry)
            (-1, 10, "C", "2026-12-18"),  # covered call
            (1, -5, "C", "2027-01-15"), (-1, 5, "C", "2027-01-15"),  # bull call spread
            (1, 5, "P", "2027-01-15"), (-1, -5, "P", "2027-01-15"),  # bear put spread
            (2, 20, "C", "2026-12-18"),  # long call
            (1, 0, "C", "2027-02-19"), (1, 0, "P", "2027-02-19"),  # long straddle
        ]  # fmt: skip
        for qty, offset, right, expiry in legs:
            con_id += 1
            strike = spot + offset
            positions.append(
                PositionInfo(account="U1", con_id=con_id, symbol=symbol, sec_type="OPT",
                             quantity=qty, avg_cost=300.0, expiry=expiry, strike=strike,
                             right=right, multiplier=100.0)
            )  # fmt: skip
            greeks = Greeks(delta=0.5 if right == "C" else -0.5, gamma=0.02, theta=-0.05,
                            vega=0.1, iv=0.3, source="ib_model")  # fmt: skip
            quotes[con_id] = Quote(con_id=con_id, bid=2.9, ask=3.1, close=3.0, greeks=greeks)
        orders.append(
            WorkingOrder(order_ref=f"stop-{symbol}", order_type="STP", action="SELL",
                         quantity=2, status="PreSubmitted", con_ids=(con_id - 2,), stop_price=1.5)
        )  # fmt: skip
    spots: dict[str, float | None] = {s: 100.0 + 50 * n for n, s in enumerate(SYMBOLS)}
    return positions, quotes, spots, orders


def timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {"best_ms": min(samples), "median_ms": statistics.median(samples), "runs": repeat}


def main() -> None:
    positions, quotes, spots, orders = book()
    by_symbol = {s: [p for p in positions if p.symbol == s] for s in SYMBOLS}

    def reference() -> None:
        for held in by_symbol.values():
            group_structures(held)

    def valued() -> Any:
        return value_portfolio(
            positions, quotes=quotes, spots=spots, orders=orders, account=ACCOUNT, today=TODAY
        )

    def whole() -> None:
        watch = watch_expiries(
            positions, quotes=quotes, spots=spots, available_funds=200_000.0, today=TODAY
        )
        result = portfolio_result(valued(), watch)
        portfolio_text(result)
        portfolio_structured(result)

    results: dict[str, Any] = {
        "reference_group_structures": timed(reference, 300),
        "structures_of": timed(lambda: structures_of(positions), 300),
        "value_portfolio": timed(valued, 100),
        "get_portfolio_pure": timed(whole, 100),
    }
    ref = results["reference_group_structures"]["median_ms"]
    for row in results.values():
        row["ratio_to_reference"] = row["median_ms"] / ref
    payload = {
        "benchmark": "portfolio",
        "host": host_info(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "positions": len(positions),
        "structures": len(valued().structures),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{'case':<30} {'best ms':>9} {'median ms':>10} {'× ref':>7}")
    for name, row in results.items():
        print(
            f"{name:<30} {row['best_ms']:>9.3f} {row['median_ms']:>10.3f} "
            f"{row['ratio_to_reference']:>7.1f}"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
