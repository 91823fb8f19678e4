"""Strategy layer benchmark: strike search over a 40-strike chain, analysis, payoff surface.

* ``suggest`` for each outlook over a 40-strike chain: every single leg and every strike pair
  (780 pairs) of the outlook's rights: call spreads (bullish), put spreads (bearish), straddles
  and strangles (volatile); plus all three outlooks back to back (both rights, all pairs).
* ``analyse_order`` of a bull call spread and of a buy-write (exact expiry analysis, commission,
  PoP and a 121-point profile with today's curve).
* ``analyse_expiry`` alone on a 4-leg structure, and ``pnl_surface`` of 4 legs on a
  1001 prices × 31 dates grid.

Timings are best-of-N wall clock (``time.perf_counter``), with the median alongside.
Run: ``.venv/bin/python bench/strategies.py``. Writes ``bench/results/strategies.json``.
Targets (issue 7): suggest over all pairs of a 40-strike chain, both rights, <= 50 ms;
4-leg surface 1001 × 31 well under 20 ms.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import host_info
from sumppump.quant import bsm
from sumppump.quant.payoff import PayoffLeg, analyse_expiry, pnl_surface
from sumppump.strategies.analysis import LegQuote, QuotedLeg, analyse_order
from sumppump.strategies.builders import build_strategy
from sumppump.strategies.search import ChainSlice, suggest

RESULTS = Path(__file__).resolve().parent / "results" / "strategies.json"
SPOT, T, R = 100.0, 30 / 365, 0.04


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return {
        "best_ms": min(samples) * 1e3,
        "median_ms": statistics.median(samples) * 1e3,
        "repeats": repeats,
    }


def chain(n: int = 40) -> ChainSlice:
    strikes = np.linspace(80.0, 119.0, n)
    iv = 0.25 + 0.1 * (strikes / SPOT - 1) ** 2
    c = bsm.price(SPOT, strikes, T, R, iv, 0.0, is_call=True)
    p = bsm.price(SPOT, strikes, T, R, iv, 0.0, is_call=False)
    hc, hp = np.maximum(0.01, 0.015 * c), np.maximum(0.01, 0.015 * p)
    return ChainSlice(
        expiry="2026-12-18",
        strikes=strikes,
        call_bid=np.round(c - hc, 2),
        call_ask=np.round(c + hc, 2),
        put_bid=np.round(p - hp, 2),
        put_ask=np.round(p + hp, 2),
        call_iv=iv,
        put_iv=iv,
        spot=SPOT,
        years=T,
        multiplier=100,
        r=R,
    )


def quoted(legs: Any, quotes: dict[tuple[str, float | None], tuple[float, float]]) -> list[Any]:
    return [
        QuotedLeg(
            leg=leg,
            quote=LegQuote(
                bid=quotes[(leg.right, leg.strike)][0],
                ask=quotes[(leg.right, leg.strike)][1],
                multiplier=1 if leg.right == "STK" else 100,
                iv=0.25,
                expiry_years=T,
            ),
        )
        for leg in legs
    ]


def main() -> None:
    host = host_info()
    ch = chain()
    results: dict[str, Any] = {}
    for outlook in ("bullish", "bearish", "volatile"):
        results[f"suggest_{outlook}"] = timed(
            lambda o=outlook: suggest(ch, o, limit=10),  # type: ignore[misc]
            200,
        )
    results["suggest_all_outlooks"] = timed(
        lambda: [suggest(ch, o, limit=10) for o in ("bullish", "bearish", "volatile")],  # type: ignore[arg-type]
        100,
    )
    n = len(np.asarray(ch.strikes))
    results["chain"] = {
        "strikes": n,
        "pairs_per_right": n * (n - 1) // 2,
        "candidates_enumerated": {
            "bullish": n + n * (n - 1) // 2,
            "bearish": n + n * (n - 1) // 2,
            "volatile": n + n * (n - 1) // 2,
        },
    }

    quotes = {
        ("C", 100.0): (2.05, 2.15),
        ("C", 105.0): (0.80, 0.90),
        ("P", 95.0): (1.40, 1.50),
        ("STK", None): (99.98, 100.02),
    }
    today = dt.date(2026, 11, 18)
    spread = build_strategy(
        symbol="XYZ",
        strategy="bull_call_spread",
        expiry="2026-12-18",
        strikes=[100, 105],
        quantity=3,
        multiplier=100,
    )
    write = build_strategy(
        symbol="XYZ",
        strategy="collar",
        expiry="2026-12-18",
        strikes=[95, 105],
        quantity=3,
        multiplier=100,
    )
    results["build_and_analyse_bull_call_spread"] = timed(
        lambda: analyse_order(quoted(spread.legs, quotes), 3, underlying_price=SPOT, today=today),
        300,
    )
    results["build_and_analyse_collar_buy_write"] = timed(
        lambda: analyse_order(quoted(write.legs, quotes), 3, underlying_price=SPOT, today=today),
        300,
    )

    condor = [
        PayoffLeg(right="P", strike=85, position=1, multiplier=100, entry_price=0.4,
                  expiry_years=T, iv=0.28),
        PayoffLeg(right="P", strike=92, position=-1, multiplier=100, entry_price=1.1,
                  expiry_years=T, iv=0.26),
        PayoffLeg(right="C", strike=108, position=-1, multiplier=100, entry_price=0.9,
                  expiry_years=T, iv=0.24),
        PayoffLeg(right="C", strike=115, position=1, multiplier=100, entry_price=0.3,
                  expiry_years=T, iv=0.25),
    ]  # fmt: skip
    results["analyse_expiry_4_legs"] = timed(lambda: analyse_expiry(condor), 2000)
    prices = np.linspace(70.0, 130.0, 1001)
    horizons = np.linspace(0.0, T, 31)
    results["pnl_surface_4_legs_1001x31"] = timed(
        lambda: pnl_surface(condor, prices, horizons, R), 50
    )

    payload = {
        "benchmark": "strategies",
        "host": host,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "targets_ms": {"suggest_all_outlooks": 50.0, "pnl_surface_4_legs_1001x31": 20.0},
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")

    print(f"{'case':<40} {'best ms':>9} {'median ms':>10}")
    for name, row in results.items():
        if "best_ms" in row:
            print(f"{name:<40} {row['best_ms']:>9.3f} {row['median_ms']:>10.3f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
