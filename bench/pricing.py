"""Pricing layer benchmark: our numpy kernels against the py_vollib (vollib) per-option loop.

One process, one synthetic SPY-like chain of 10,000 options (notes/pricing.md §3: S = 600,
r = 4.5 %, q = 1.3 %, 30 expiries from 4 hours to 910 days, smile 9.8 %–53.9 %, calls and puts,
random subsample of 12,230 contracts), the same inputs for both engines:

* price + 5 Greeks for the 10,000 options: ``bsm.greeks`` vs vollib price + analytical
  delta/gamma/theta/vega/rho per option;
* IV of the 10,000 (vollib) prices: ``iv.implied_vol`` vs vollib ``implied_volatility`` per option;
* single-option call overhead (scalar path) for Greeks and IV, and vollib's for comparison;
* a 4-leg iron condor P&L grid of 1001 prices × 31 dates through ``payoff.pnl_surface``;
* accuracy: Greeks vs vollib on the chain; IV vs vollib on the chain and on a 12,000-option grid
  (moneyness 0.5–2, T 1 day–2 y, σ 5 %–300 %, r 0–8 %, q 0–5 %) where vollib solves.

Timings are best-of-N wall clock (``time.perf_counter``) with the median alongside.

Allocator note: glibc returns freed heap memory above 128 KiB to the OS until the first free of a
large mmap'd block raises that threshold (its dynamic mmap threshold); until then every temporary
array page-faults anew. The pricing actor raises it at start (``prime_allocator``), and so does
this benchmark before the main timings; the ``allocator_cold`` block re-measures with glibc's
thresholds pinned to their defaults (``mallopt``), the worst case of a fresh process.

Run: ``.venv/bin/python bench/pricing.py``. Writes ``bench/results/pricing.json``.
Targets (issue 6): price + 5 Greeks, 10,000 options <= 2 ms and >= 50x vollib; IV <= 20 ms and
>= 20x vollib; single option <= 20 µs (Greeks) and <= 50 µs (IV); grid <= 20 ms.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
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
from sumppump.actors.pricing import prime_allocator
from sumppump.quant import bsm, iv, payoff

RESULTS = Path(__file__).resolve().parent / "results" / "pricing.json"
S, R, Q = 600.0, 0.045, 0.013


def best_of(fn: Callable[[], Any], repeat: int, number: int = 1) -> tuple[float, float, Any]:
    """(best, median) seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            out = fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times), statistics.median(times), out


def make_chain(n_target: int, seed: int = 7) -> dict[str, np.ndarray]:
    """notes/pricing.md §3, verbatim in effect."""
    rng = np.random.default_rng(seed)
    days = [
        4 / 24,
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        10,
        11,
        14,
        21,
        28,
        35,
        42,
        49,
        56,
        63,
        77,
        91,
        119,
        147,
        182,
        210,
        273,
        364,
        455,
        546,
        728,
        910,
    ]
    rows = []
    for d in days:
        t = d / 365.0
        atm = 0.12 + 0.06 * math.exp(-t / 0.08)
        fwd = S * math.exp((R - Q) * t)
        width = max(0.04, 4.5 * atm * math.sqrt(t))
        kmin, kmax = max(0.3 * S, fwd * math.exp(-width * 1.3)), min(2.0 * S, fwd * math.exp(width))
        step = 1.0 if d <= 91 else (2.5 if d <= 364 else 5.0)
        for k in np.arange(math.ceil(kmin / step) * step, kmax, step):
            z = math.log(k / fwd) / (atm * math.sqrt(t))
            sig = min(max(atm * (1.0 - 0.12 * z + 0.02 * z * z), 0.5 * atm), 3.0 * atm)
            rows.extend([(1.0, k, t, sig), (-1.0, k, t, sig)])
    table = np.array(rows)
    generated = len(table)
    table = table[np.sort(rng.choice(generated, n_target, replace=False))]
    flag, strike, years, sigma = table.T
    return {
        "is_call": flag > 0,
        "K": strike,
        "T": years,
        "sigma": sigma,
        "generated": np.array(generated),
    }


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "vollib": _version("vollib"),
        "py_vollib": _version("py_vollib"),
    }


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pin_glibc_malloc_thresholds() -> bool:
    """Pin glibc's trim and mmap thresholds to their 128 KiB defaults (the fresh-process state)."""
    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.malloc_trim(0)
    return bool(
        libc.mallopt(m_trim_threshold, 128 * 1024) and libc.mallopt(m_mmap_threshold, 128 * 1024)
    )


def condor_legs() -> list[payoff.PayoffLeg]:
    t = 30 / 365
    spec = [
        ("P", 540.0, 1, 0.21),
        ("P", 570.0, -1, 0.18),
        ("C", 630.0, -1, 0.14),
        ("C", 660.0, 1, 0.13),
    ]
    legs = []
    for right, strike, position, vol in spec:
        entry = float(bsm.price(S, strike, t, R, vol, Q, is_call=right == "C"))
        leg = payoff.PayoffLeg(
            right=right,  # type: ignore[arg-type]
            strike=strike,
            position=position,
            multiplier=100,
            entry_price=entry,
            expiry_years=t,
            iv=vol,
        )
        legs.append(leg)
    return legs


def main() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vollib.black_scholes_merton import black_scholes_merton as v_price
        from vollib.black_scholes_merton.greeks import analytical as v_an
        from vollib.black_scholes_merton.implied_volatility import implied_volatility as v_iv

    out: dict[str, Any] = {"host": host_info(), "machine": machine()}
    prime_allocator()  # what the pricing actor does in on_start
    c = make_chain(10_000)
    is_call, K, T, sigma = c["is_call"], c["K"], c["T"], c["sigma"]
    n = K.size
    out["chain"] = {
        "n": n,
        "generated": int(c["generated"]),
        "S": S,
        "r": R,
        "q": Q,
        "expiries": int(np.unique(T).size),
        "t_min_days": float(T.min() * 365),
        "t_max_days": float(T.max() * 365),
        "K_min": float(K.min()),
        "K_max": float(K.max()),
        "sigma_min": float(sigma.min()),
        "sigma_max": float(sigma.max()),
    }
    flags = ["c" if x else "p" for x in is_call.tolist()]
    rows = list(zip(flags, K.tolist(), T.tolist(), sigma.tolist(), strict=True))

    # ---- vollib per-option loops (the reference) --------------------------------------------
    def vollib_greeks() -> list[tuple[float, ...]]:
        return [
            (
                v_price(f, S, k, t, R, s, Q),
                v_an.delta(f, S, k, t, R, s, Q),
                v_an.gamma(f, S, k, t, R, s, Q),
                v_an.theta(f, S, k, t, R, s, Q),
                v_an.vega(f, S, k, t, R, s, Q),
                v_an.rho(f, S, k, t, R, s, Q),
            )
            for f, k, t, s in rows
        ]

    vg_best, vg_med, ref = best_of(vollib_greeks, 3)
    ref_g = np.array(ref).T
    prices = ref_g[0]
    price_list = prices.tolist()

    def vollib_ivs() -> list[float]:
        res = []
        for p, (f, k, t, _) in zip(price_list, rows, strict=True):
            try:
                res.append(v_iv(p, S, k, t, R, Q, f))
            except Exception:
                res.append(math.nan)
        return res

    vi_best, vi_med, ref_iv = best_of(vollib_ivs, 3)
    ref_iv = np.array(ref_iv)

    # ---- ours ---------------------------------------------------------------------------------
    og_best, og_med, g = best_of(lambda: bsm.greeks(S, K, T, R, sigma, Q, is_call=is_call), 50)
    op_best, op_med, _ = best_of(lambda: bsm.price(S, K, T, R, sigma, Q, is_call=is_call), 50)
    oi_best, oi_med, res = best_of(
        lambda: iv.implied_vol(prices, S, K, T, R, Q, is_call=is_call), 30
    )

    out["chain_10k"] = {
        "price_5greeks": {
            "ours_ms": og_best * 1e3,
            "ours_median_ms": og_med * 1e3,
            "vollib_loop_ms": vg_best * 1e3,
            "vollib_median_ms": vg_med * 1e3,
            "speedup": vg_best / og_best,
        },
        "price_only": {"ours_ms": op_best * 1e3, "ours_median_ms": op_med * 1e3},
        "iv": {
            "ours_ms": oi_best * 1e3,
            "ours_median_ms": oi_med * 1e3,
            "vollib_loop_ms": vi_best * 1e3,
            "vollib_median_ms": vi_med * 1e3,
            "speedup": vi_best / oi_best,
        },
    }

    # accuracy on the chain
    fields = ("price", "delta", "gamma", "theta", "vega", "rho")
    solved = res.status == iv.IVStatus.SOLVED
    vollib_ok = np.isfinite(ref_iv) & (ref_iv > 0)
    vega_pt = g.vega * 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        well_posed = (np.finfo(float).eps * prices / vega_pt < 1e-9) & (prices >= 1e-300)
    both = solved & vollib_ok & well_posed
    repriced = bsm.price(S, K, T, R, res.sigma, Q, is_call=is_call)
    out["accuracy_chain"] = {
        **{
            f"{f}_max_abs_diff_vs_vollib": float(np.max(np.abs(getattr(g, f) - ref_g[i])))
            for i, f in enumerate(fields)
        },
        "iv_statuses": {
            iv.IVStatus(s).name: int((res.status == s).sum()) for s in np.unique(res.status)
        },
        "iv_vollib_solves": int(vollib_ok.sum()),
        "iv_well_posed_and_both_solve": int(both.sum()),
        "iv_max_abs_diff_vs_vollib_well_posed": float(np.max(np.abs(res.sigma - ref_iv)[both])),
        "iv_max_abs_err_vs_true_sigma_well_posed": float(np.max(np.abs(res.sigma - sigma)[both])),
        "iv_round_trip_max_abs_over_spot": float(np.max(np.abs(repriced - prices)[solved]) / S),
    }

    # iterations: how many elements are done after k Halley sweeps (k = max_iterations)
    done_after = {}
    for k in range(1, 13):
        st = iv.implied_vol(prices, S, K, T, R, Q, is_call=is_call, max_iterations=k).status
        done_after[k] = int((st == iv.IVStatus.SOLVED).sum())
        if done_after[k] == int(solved.sum()):
            break
    out["accuracy_chain"]["iv_solved_within_k_sweeps"] = done_after

    # ---- the accuracy grid (12,000 options) ------------------------------------------
    out["accuracy_grid"] = accuracy_grid(v_price, v_iv)

    # ---- single option ------------------------------------------------------------------------
    one = ("c", 600.0, 610.0, 30 / 365, R, 0.18, Q)
    p_one = float(v_price(*one))
    per = 20_000

    def us(fn: Callable[[], Any], number: int = per) -> float:
        return best_of(fn, 5, number)[0] * 1e6

    def vollib_one_greeks() -> tuple[float, ...]:
        return (
            v_price(*one),
            v_an.delta(*one),
            v_an.gamma(*one),
            v_an.theta(*one),
            v_an.vega(*one),
            v_an.rho(*one),
        )

    arr1 = [np.array([v]) for v in (600.0, 610.0, 30 / 365, R, 0.18, Q)]
    out["single_option_us"] = {
        "ours_greeks": us(lambda: bsm.greeks(600.0, 610.0, 30 / 365, R, 0.18, Q, is_call=True)),
        "ours_price": us(lambda: bsm.price(600.0, 610.0, 30 / 365, R, 0.18, Q, is_call=True)),
        "ours_iv": us(
            lambda: iv.implied_vol(p_one, 600.0, 610.0, 30 / 365, R, Q, is_call=True), 5000
        ),
        "ours_greeks_len1_array": us(lambda: bsm.greeks(*arr1, is_call=np.array([True])), 2000),
        "ours_iv_len1_array": us(
            lambda: iv.implied_vol(np.array([p_one]), *arr1[:4], arr1[5], is_call=True), 2000
        ),
        "vollib_price_plus_5_greeks": us(vollib_one_greeks, 5000),
        "vollib_iv": us(lambda: v_iv(p_one, 600.0, 610.0, 30 / 365, R, Q, "c"), 5000),
    }

    # ---- P&L grid -----------------------------------------------------------------------------
    legs = condor_legs()
    grid_prices = np.linspace(0.8 * S, 1.2 * S, 1001)
    horizons = np.linspace(0.0, 30 / 365, 31)
    gb, gm, surface = best_of(lambda: payoff.pnl_surface(legs, grid_prices, horizons, R, Q), 20)
    out["pnl_grid_4legs_1001x31"] = {
        "engine": "sumppump.quant.payoff.pnl_surface",
        "ms": gb * 1e3,
        "median_ms": gm * 1e3,
        "shape": list(surface.shape),
        "ns_per_leg_cell": gb / (4 * 1001 * 31) * 1e9,
    }

    # ---- worst-case allocator state -----------------------------------------------------------
    if pin_glibc_malloc_thresholds():
        cold = {
            "price_5greeks_ms": best_of(
                lambda: bsm.greeks(S, K, T, R, sigma, Q, is_call=is_call), 50
            )[0]
            * 1e3,
            "iv_ms": best_of(lambda: iv.implied_vol(prices, S, K, T, R, Q, is_call=is_call), 30)[0]
            * 1e3,
            "pnl_grid_ms": best_of(
                lambda: payoff.pnl_surface(legs, grid_prices, horizons, R, Q), 20
            )[0]
            * 1e3,
        }
        out["allocator_cold"] = {
            "note": "glibc mallopt trim/mmap thresholds pinned at 128 KiB",
            **cold,
        }

    targets = {
        "price_5greeks_10k_ms<=2": out["chain_10k"]["price_5greeks"]["ours_ms"] <= 2.0,
        "price_5greeks_speedup>=50": out["chain_10k"]["price_5greeks"]["speedup"] >= 50,
        "iv_10k_ms<=20": out["chain_10k"]["iv"]["ours_ms"] <= 20.0,
        "iv_speedup>=20": out["chain_10k"]["iv"]["speedup"] >= 20,
        "single_greeks_us<=20": out["single_option_us"]["ours_greeks"] <= 20,
        "single_iv_us<=50": out["single_option_us"]["ours_iv"] <= 50,
        "grid_ms<=20": out["pnl_grid_4legs_1001x31"]["ms"] <= 20,
        "iv_vs_vollib<=1e-8": out["accuracy_grid"]["max_abs_diff_vs_vollib"] <= 1e-8,
        "round_trip<=1e-9*S": out["accuracy_grid"]["round_trip_max_abs_over_spot"] <= 1e-9,
    }
    out["targets_met"] = targets
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    report(out)


def accuracy_grid(v_price: Callable[..., float], v_iv: Callable[..., float]) -> dict[str, Any]:
    rng = np.random.default_rng(2026)
    n = 12_000
    K = 100.0 * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    T = np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    is_call = rng.random(n) < 0.5
    r = rng.uniform(0.0, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    rows = list(
        zip(
            is_call.tolist(),
            K.tolist(),
            T.tolist(),
            sigma.tolist(),
            r.tolist(),
            q.tolist(),
            strict=True,
        )
    )
    prices = np.array(
        [v_price("c" if c else "p", 100.0, k, t, rr, s, qq) for c, k, t, s, rr, qq in rows]
    )
    theirs = []
    for p, (c, k, t, _, rr, qq) in zip(prices.tolist(), rows, strict=True):
        try:
            theirs.append(v_iv(p, 100.0, k, t, rr, qq, "c" if c else "p"))
        except Exception:
            theirs.append(math.nan)
    ref = np.array(theirs)
    res = iv.implied_vol(prices, 100.0, K, T, r, q, is_call=is_call)
    vega_pt = bsm.greeks(100.0, K, T, r, sigma, q, is_call=is_call).vega * 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        well_posed = (np.finfo(float).eps * prices / vega_pt < 1e-9) & (
            prices >= np.finfo(float).tiny
        )
    vollib_solves = np.isfinite(ref) & (ref > 0)
    compare = vollib_solves & well_posed
    solved = res.status == iv.IVStatus.SOLVED
    repriced = bsm.price(100.0, K, T, r, res.sigma, q, is_call=is_call)
    return {
        "n": n,
        "grid": "moneyness 0.5-2 (log-uniform), T 1 d-2 y, sigma 5 %-300 %, r 0-8 %, q 0-5 %",
        "vollib_solves": int(vollib_solves.sum()),
        "vollib_solves_and_well_posed": int(compare.sum()),
        "ours_solved_where_compared": int((solved & compare).sum()),
        "max_abs_diff_vs_vollib": float(np.max(np.abs(res.sigma - ref)[compare])),
        "max_abs_err_vs_true_sigma": float(np.max(np.abs(res.sigma - sigma)[compare])),
        "vollib_solves_ill_posed_ours_status": {
            iv.IVStatus(s).name: int(((res.status == s) & vollib_solves & ~well_posed).sum())
            for s in np.unique(res.status[vollib_solves & ~well_posed])
        },
        "statuses": {
            iv.IVStatus(s).name: int((res.status == s).sum()) for s in np.unique(res.status)
        },
        "round_trip_max_abs_over_spot": float(np.max(np.abs(repriced - prices)[solved]) / 100.0),
    }


def report(out: dict[str, Any]) -> None:
    c = out["chain_10k"]
    s = out["single_option_us"]
    gr = out["pnl_grid_4legs_1001x31"]
    acc = out["accuracy_grid"]
    lines = [
        f"machine: {out['machine']['cpu_count']} cpu, {out['machine']['platform']}, "
        f"python {out['machine']['python']}, numpy {out['machine']['numpy']}",
        f"{'what':44} {'ours':>10} {'vollib':>11} {'ratio':>8}",
        f"{'price + 5 greeks, 10,000 options':44} {c['price_5greeks']['ours_ms']:8.3f}ms "
        f"{c['price_5greeks']['vollib_loop_ms']:9.1f}ms {c['price_5greeks']['speedup']:7.0f}x",
        f"{'implied vol, 10,000 options':44} {c['iv']['ours_ms']:8.3f}ms "
        f"{c['iv']['vollib_loop_ms']:9.1f}ms {c['iv']['speedup']:7.0f}x",
        f"{'price only, 10,000 options':44} {c['price_only']['ours_ms']:8.3f}ms",
        f"{'single option price + 5 greeks':44} {s['ours_greeks']:8.2f}us "
        f"{s['vollib_price_plus_5_greeks']:9.2f}us "
        f"{s['vollib_price_plus_5_greeks'] / s['ours_greeks']:7.1f}x",
        f"{'single option IV':44} {s['ours_iv']:8.2f}us {s['vollib_iv']:9.2f}us "
        f"{s['vollib_iv'] / s['ours_iv']:7.1f}x",
        f"{'4-leg P&L grid 1001 x 31 (payoff.pnl_surface)':44} {gr['ms']:8.3f}ms",
        f"IV vs vollib on {acc['n']} grid options ({acc['vollib_solves_and_well_posed']} compared):"
        f" max |diff| {acc['max_abs_diff_vs_vollib']:.1e}, round trip "
        f"{acc['round_trip_max_abs_over_spot']:.1e} x spot",
    ]
    if "allocator_cold" in out:
        a = out["allocator_cold"]
        lines.append(
            f"cold allocator (glibc defaults pinned): greeks {a['price_5greeks_ms']:.3f} ms, "
            f"IV {a['iv_ms']:.3f} ms, grid {a['pnl_grid_ms']:.3f} ms"
        )
    lines.append(
        "targets: "
        + ", ".join(f"{k}={'ok' if v else 'MISSED'}" for k, v in out["targets_met"].items())
    )
    lines.append(f"wrote {RESULTS}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
