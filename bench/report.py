"""Write BENCHMARKS.md from every ``bench/results/*.json``.

``render(results)`` turns ``{name: parsed JSON}`` (``name`` is the file's stem: ``actors``,
``pricing``, ``strategies``, ``chain``, ``load``, ``tools``, ``serve``, ``reliability``) into the
Markdown text; a missing result becomes a line saying which script to run, and a result of an
unexpected shape a line saying it could not be read — ``render`` never raises for either. Every
section names the machine its figures were measured on (the ``host`` block each script records;
older results without one say so). The first table lists every target, the figure measured
against it and whether it was met.

Run: ``.venv/bin/python bench/report.py [--results DIR] [--output FILE]`` (``make bench`` runs
it after the benchmarks). Defaults: ``bench/results`` and ``BENCHMARKS.md`` at the repo root.
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
OUTPUT = REPO / "BENCHMARKS.md"

SCRIPTS = {
    "actors": "bench/actors.py",
    "pricing": "bench/pricing.py",
    "strategies": "bench/strategies.py",
    "chain": "bench/chain.py",
    "load": "bench/load.py",
    "tools": "bench/tools.py",
    "serve": "bench/serve.py",
    "reliability": "bench/reliability.py",
    "ticket": "bench/ticket.py",
    "context": "bench/context.py",
}

Results = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """One target: what, the limit in words, the figure measured, met or not, where from."""

    what: str
    limit: str
    measured: str
    met: bool | None  # None: not measured
    source: str
    context: str = ""  # the same-run reference or what else to read the figure with


# ------------------------------------------------------------------------ formatting helpers


def num(value: Any, digits: int = 1) -> str:
    """A number with thousands separators and ``digits`` decimals; ``—`` for None."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def sci(value: Any) -> str:
    return "—" if value is None else f"{value:.1e}"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def host_line(result: dict[str, Any]) -> str:
    """The one-line machine description of a result."""
    host = result.get("host")
    if not isinstance(host, dict):
        return "_Measured on: not recorded (result written before machine records existed)._"
    commit = host.get("git_commit") or "unknown commit"
    if host.get("sumppump_dirty"):
        commit += " + uncommitted changes in sumppump/"
    ram = f"{num(host.get('ram_gib'))} GiB RAM" if host.get("ram_gib") else "RAM unknown"
    return (
        f"_Measured on: {host.get('cpu_model') or 'unknown CPU'}, {host.get('cores')} cores, "
        f"{ram}, Python {host.get('python')}, {host.get('os')}, {host.get('date_utc')}, "
        f"commit {commit}._"
    )


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...`` or None where a key is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# ------------------------------------------------------------------------ targets


def targets(results: Results) -> list[Target]:
    """Every target with its measured figure (None-safe: unmeasured targets say so)."""
    out: list[Target] = []

    def add(
        what: str,
        limit: str,
        value: Any,
        ok: Callable[[Any], bool],
        unit: str,
        src: str,
        context: str = "",
    ) -> None:
        measured = "—" if value is None else f"{num(value, 2 if abs(value) < 100 else 1)}{unit}"
        met = None if value is None else ok(value)
        out.append(Target(what, limit, measured, met, src, context if value is not None else ""))

    asyncio = dig(results.get("actors"), "backends", "asyncio")
    add(
        "Actor call round trip p50 (asyncio)",
        "≤ 50 µs",
        dig(asyncio, "actor_call", "p50_us"),
        lambda v: v <= 50,
        " µs",
        "actors",
        f"bare streams {num(dig(asyncio, 'reference_bare_streams', 'p50_us'))} µs; actor ÷ bare "
        f"{num(dig(asyncio, 'actor_vs_bare_p50_ratio'), 2)}×",
    )
    add(
        "Actor calls per second (asyncio, one caller)",
        "≥ 20,000",
        dig(asyncio, "actor_call", "calls_per_s"),
        lambda v: v >= 20_000,
        "/s",
        "actors",
        f"bare streams {num(dig(asyncio, 'reference_bare_streams', 'calls_per_s'), 0)}/s in the "
        "same run",
    )
    add(
        "Actor restart p50 (asyncio)",
        "≤ 5 ms",
        dig(asyncio, "restart", "p50_ms"),
        lambda v: v <= 5,
        " ms",
        "actors",
    )
    pricing = results.get("pricing") or {}
    labels = {
        "price_5greeks_10k_ms<=2": ("Price + 5 Greeks, 10,000 options", "≤ 2 ms"),
        "price_5greeks_speedup>=50": ("… speed-up over py_vollib", "≥ 50×"),
        "iv_10k_ms<=20": ("Implied vol, 10,000 options", "≤ 20 ms"),
        "iv_speedup>=20": ("… speed-up over py_vollib", "≥ 20×"),
        "single_greeks_us<=20": ("Single option, Greeks", "≤ 20 µs"),
        "single_iv_us<=50": ("Single option, IV", "≤ 50 µs"),
        "grid_ms<=20": ("P&L grid 4 legs × 1001 × 31", "≤ 20 ms"),
        "iv_vs_vollib<=1e-8": ("IV agreement with py_vollib", "≤ 1e-8"),
        "round_trip<=1e-9*S": ("IV → price round trip", "≤ 1e-9 × spot"),
    }
    measured_pricing = {
        "price_5greeks_10k_ms<=2": (dig(pricing, "chain_10k", "price_5greeks", "ours_ms"), " ms"),
        "price_5greeks_speedup>=50": (dig(pricing, "chain_10k", "price_5greeks", "speedup"), "×"),
        "iv_10k_ms<=20": (dig(pricing, "chain_10k", "iv", "ours_ms"), " ms"),
        "iv_speedup>=20": (dig(pricing, "chain_10k", "iv", "speedup"), "×"),
        "single_greeks_us<=20": (dig(pricing, "single_option_us", "ours_greeks"), " µs"),
        "single_iv_us<=50": (dig(pricing, "single_option_us", "ours_iv"), " µs"),
        "grid_ms<=20": (dig(pricing, "pnl_grid_4legs_1001x31", "ms"), " ms"),
    }
    for key, (what, limit) in labels.items():
        met = dig(pricing, "targets_met", key)
        value, unit = measured_pricing.get(key, (None, ""))
        if key == "iv_vs_vollib<=1e-8":
            shown = sci(dig(pricing, "accuracy_grid", "max_abs_diff_vs_vollib"))
        elif key == "round_trip<=1e-9*S":
            shown = sci(dig(pricing, "accuracy_grid", "round_trip_max_abs_over_spot")) + " × spot"
        else:
            shown = "—" if value is None else f"{num(value, 2)}{unit}"
        context = ""
        if key == "price_5greeks_10k_ms<=2":
            vollib = dig(pricing, "chain_10k", "price_5greeks", "vollib_loop_ms")
            context = f"py_vollib loop {num(vollib)} ms"
        elif key == "iv_10k_ms<=20":
            context = f"py_vollib loop {num(dig(pricing, 'chain_10k', 'iv', 'vollib_loop_ms'))} ms"
        out.append(Target(what, limit, shown, met, "pricing", context))
    strategies = dig(results.get("strategies"), "results")
    add(
        "suggest_strikes core, all 3 outlooks (median)",
        "≤ 50 ms",
        dig(strategies, "suggest_all_outlooks", "median_ms"),
        lambda v: v <= 50,
        " ms",
        "strategies",
        f"best {num(dig(strategies, 'suggest_all_outlooks', 'best_ms'), 2)} ms",
    )
    add(
        "P&L surface 4 legs × 1001 × 31 (median)",
        "≤ 20 ms",
        dig(strategies, "pnl_surface_4_legs_1001x31", "median_ms"),
        lambda v: v <= 20,
        " ms",
        "strategies",
        f"best {num(dig(strategies, 'pnl_surface_4_legs_1001x31', 'best_ms'), 2)} ms",
    )
    windows = dig(results.get("chain"), "windows")
    big = dig(windows, "200", "cold")
    big_options = dig(big, "options")
    add(
        f"Chain fetch, big window ({num(big_options)} options), cold, vs the 50 msg/s floor",
        "≤ 1.2 × floor",
        dig(big, "ratio_to_floor"),
        lambda v: v <= 1.2,
        "×",
        "chain",
        f"{num(dig(big, 'seconds'), 2)} s for {num(dig(big, 'messages_sent'))} messages; floor "
        f"{num(dig(big, 'floor_seconds_at_50_per_s'), 2)} s",
    )
    add(
        "Chain fetch, 32 options, warm",
        "≤ 1.5 s",
        dig(windows, "32", "warm", "seconds"),
        lambda v: v <= 1.5,
        " s",
        "chain",
    )
    add(
        "Chain fetch repeated within the quote lifetime (32 options)",
        "≤ 50 ms",
        None if dig(windows, "32", "repeat", "seconds") is None else
        dig(windows, "32", "repeat", "seconds") * 1e3,
        lambda v: v <= 50,
        " ms",
        "chain",
    )  # fmt: skip
    serve = results.get("serve") or {}
    add(
        "Start-up: spawn → tools/list answered (p50)",
        "≤ 2 s",
        dig(serve, "startup", "tools_list_s", "p50"),
        lambda v: v <= 2,
        " s",
        "serve",
        f"{num(dig(serve, 'startup', 'runs'))} launches; first launch (empty caches) "
        f"{num(dig(serve, 'startup', 'first_launch', 'tools_list_s'), 2)} s",
    )
    add(
        "Start-up: spawn → tools/list answered (max)",
        "≤ 2 s",
        dig(serve, "startup", "tools_list_s", "max"),
        lambda v: v <= 2,
        " s",
        "serve",
    )
    peaks = [
        dig(serve, "memory", key, "peak_rss_mb")
        for key in ("after_startup", "after_chain", "after_second_chain")
    ]
    known = [p for p in peaks if p is not None]
    options = dig(serve, "memory", "after_second_chain", "options_in_session")
    add(
        f"Resident memory, peak, after {num(options)} options (simulator in-process)",
        "≤ 250 MB",
        max(known) if known else None,
        lambda v: v <= 250,
        " MB",
        "serve",
        f"after start-up {num(dig(serve, 'memory', 'after_startup', 'rss_mb'))} MB",
    )
    add(
        "Tool listing the model sees (tools/list JSON)",
        "≤ 25,000 chars",
        dig(serve, "tool_listing", "chars"),
        lambda v: v <= 25_000,
        " chars",
        "serve",
        f"{num(dig(serve, 'tool_listing', 'tools'))} tools; + "
        f"{num(dig(serve, 'tool_listing', 'instructions_chars'))} chars of instructions",
    )
    model_reads = results.get("context")
    for profile, label in (
        ("claude_desktop", "Claude Desktop (text)"),
        ("structured", "Claude Code (JSON)"),
    ):
        add(
            f"Demo conversation as the model reads it, {label}",
            "≤ 3,000 tokens",
            dig(model_reads, "conversation", "tokens", profile),
            lambda v: v <= 3000,
            " tokens",
            "context",
            f"{num(dig(model_reads, 'conversation', 'calls'))} calls; chars / 4",
        )
    for key, figure, most, chars in (
        ("chain_text_chars_per_row", "Chain text per option row", 140, " chars"),
        ("chain_structured_chars_per_row", "Chain structured per option row", 260, " chars"),
        ("calculate_strategy_structured_chars", "calculate_strategy structured", 4000, " chars"),
        ("tool_listing_chars", "Tool listing: name, description, input schema", 10_000, " chars"),
    ):
        add(
            figure,
            f"≤ {most:,}{chars}",
            dig(model_reads, "measured", key),
            functools.partial(operator.ge, most),
            chars,
            "context",
        )
    load = dig(results.get("load"), "runs") or []
    if load:
        total = sum(run.get("total_violations", 0) for run in load)
        out.append(
            Target(
                "IB limit violations under load (all modes)", "0", num(total), total == 0, "load"
            )
        )
    totals = dig(results.get("reliability"), "totals")
    if isinstance(totals, dict):
        for key, what in (
            ("total_violations", "IB limit violations in the reliability scenarios"),
            ("duplicate_orders", "Orders placed twice for one preview"),
            ("unconfirmed_orders", "Orders placed without a confirmed preview"),
            ("failures", "Failed reliability invariants"),
        ):
            value = totals.get(key)
            met = None if value is None else value == 0
            out.append(Target(what, "0", num(value), met, "reliability"))
    return out


# ------------------------------------------------------------------------ sections


def section_targets(results: Results) -> str:
    rows = [
        (t.what, t.limit, t.measured, verdict(t.met), t.context or "—", t.source)
        for t in targets(results)
    ]
    missed = sum(1 for t in targets(results) if t.met is False)
    met = sum(1 for t in targets(results) if t.met is True)
    summary = f"{met} targets met, {missed} missed."
    header = ("Target", "Limit", "Measured", "", "Same-run reference / context", "Section")
    return summary + "\n\n" + table(header, rows)


def section_machines(results: Results) -> str:
    rows = []
    for name in SCRIPTS:
        result = results.get(name)
        if result is None:
            continue
        host = result.get("host") if isinstance(result.get("host"), dict) else {}
        commit = host.get("git_commit") or "—"
        if host.get("sumppump_dirty"):
            commit += " (+ uncommitted sumppump/)"
        load = host.get("load_average_at_start")
        rows.append(
            (
                f"`{name}.json`",
                host.get("cpu_model") or "not recorded",
                num(host.get("cores")),
                num(host.get("ram_gib")),
                host.get("python") or dig(result, "machine", "python") or "—",
                host.get("os") or "—",
                host.get("date_utc") or result.get("when") or "—",
                commit,
                "—" if not load else f"{load[0]:.2f}",
            )
        )
    return table(
        ("Result", "CPU", "Cores", "RAM GiB", "Python", "OS", "Date (UTC)", "Commit", "Load 1 min"),
        rows,
    )


def section_actors(result: dict[str, Any]) -> str:
    rows = []
    for backend, r in result["backends"].items():
        bare, actor, restart = r["reference_bare_streams"], r["actor_call"], r["restart"]
        rows.append(
            (
                backend,
                num(bare["p50_us"]),
                num(actor["p50_us"]),
                num(actor["p99_us"]),
                f"{r['actor_vs_bare_p50_ratio']:.2f}×",
                num(round(actor["calls_per_s"])),
                num(round(r["actor_concurrent_calls_per_s_8_callers"])),
                num(restart["p50_ms"], 3),
                num(restart["p99_ms"], 3),
            )
        )
    intro = (
        f"{num(result.get('calls'))} sequential calls per backend; {num(result.get('restarts'))} "
        "crash → restart cycles. Reference: a bare request/reply over two anyio memory streams "
        "in the same process (the floor any anyio actor runtime pays)"
        + (
            f", alternating with the actor calls in {result['interleaved_blocks']} blocks so that "
            "other load weighs on both alike."
            if result.get("interleaved_blocks")
            else ", timed before the actor calls (not interleaved)."
        )
    )
    return (
        intro
        + "\n\n"
        + table(
            (
                "Backend",
                "Bare streams p50 µs",
                "Actor p50 µs",
                "Actor p99 µs",
                "Actor ÷ bare",
                "Calls/s",
                "Calls/s, 8 callers",
                "Restart p50 ms",
                "Restart p99 ms",
            ),
            rows,
        )
    )


def section_pricing(result: dict[str, Any]) -> str:
    chain = result["chain_10k"]
    single = result["single_option_us"]
    grid = result["pnl_grid_4legs_1001x31"]
    rows = [
        (
            "Price + 5 Greeks, 10,000 options",
            f"{num(chain['price_5greeks']['ours_ms'], 2)} ms",
            f"{num(chain['price_5greeks']['vollib_loop_ms'])} ms",
            f"{num(chain['price_5greeks']['speedup'])}×",
        ),
        (
            "Implied vol, 10,000 options",
            f"{num(chain['iv']['ours_ms'], 2)} ms",
            f"{num(chain['iv']['vollib_loop_ms'])} ms",
            f"{num(chain['iv']['speedup'])}×",
        ),
        (
            "Single option, price + 5 Greeks",
            f"{num(single['ours_greeks'], 2)} µs",
            f"{num(single['vollib_price_plus_5_greeks'], 2)} µs",
            f"{single['vollib_price_plus_5_greeks'] / single['ours_greeks']:.1f}×",
        ),
        (
            "Single option, IV",
            f"{num(single['ours_iv'], 2)} µs",
            f"{num(single['vollib_iv'], 2)} µs",
            f"{single['vollib_iv'] / single['ours_iv']:.1f}×",
        ),
        ("P&L grid, 4 legs × 1001 prices × 31 dates", f"{num(grid['ms'], 2)} ms", "—", "—"),
    ]
    accuracy = result.get("accuracy_grid", {})
    parts = [
        "Best of N wall-clock runs, our numpy kernels against the py_vollib (vollib) per-option "
        "loop on the same inputs in the same process; the ratio is the figure that travels.",
        table(("Case", "SumpPump", "py_vollib", "Ratio"), rows),
    ]
    if accuracy:
        parts.append(
            f"Accuracy on {num(accuracy.get('n'))} options ({accuracy.get('grid', '')}): "
            f"max |IV − py_vollib IV| {sci(accuracy.get('max_abs_diff_vs_vollib'))}, "
            f"max IV → price round trip {sci(accuracy.get('round_trip_max_abs_over_spot'))} × spot."
        )
    cold = result.get("allocator_cold")
    if isinstance(cold, dict):
        parts.append(
            "Fresh-process allocator state (glibc thresholds pinned at 128 KiB): "
            f"price + 5 Greeks {num(cold.get('price_5greeks_ms'), 2)} ms, IV "
            f"{num(cold.get('iv_ms'), 2)} ms, P&L grid {num(cold.get('pnl_grid_ms'), 2)} ms."
        )
    return "\n\n".join(parts)


def section_strategies(result: dict[str, Any]) -> str:
    rows = [
        (name, num(r["best_ms"], 3), num(r["median_ms"], 3), num(r.get("repeats")))
        for name, r in result["results"].items()
        if isinstance(r, dict) and "best_ms" in r
    ]
    return "Pure strategy core (no actors, no I/O).\n\n" + table(
        ("Case", "Best ms", "Median ms", "Repeats"), rows
    )


def section_chain(result: dict[str, Any]) -> str:
    windows = result["windows"]
    rows = []
    for label, window in windows.items():
        if label == "simulator":
            continue
        for phase in ("cold", "warm", "repeat"):
            r = window[phase]
            ratio = r.get("ratio_to_floor")
            rows.append(
                (
                    f"{window.get('symbol', '')} {label}",
                    phase,
                    num(r["options"]),
                    num(r["seconds"], 3),
                    num(r["messages_sent"]),
                    num(r.get("messages_after_reply")),
                    num(r["floor_seconds_at_50_per_s"], 2),
                    "—" if ratio is None else f"{ratio:.2f}×",
                    num(r.get("partial")),
                )
            )
    sim = windows.get("simulator", {})
    violations = sim.get("violations", {})
    text = (
        "Chain fetch through the actors (no MCP) against the simulated TWS with IB's limits on. "
        "The reference is the one-message-per-option floor TWS's 50 messages/s sets: (options "
        "+ contract-detail requests) ÷ 50, counted in the same run; messages are counted until "
        "the link is quiet again (“after the reply”: cancels sent after the reply). cold = "
        "empty contract cache, warm = conIds from the on-disk cache with fresh actors, repeat = "
        "the same call within the quote lifetime. The window labelled 200 asks for 50 strikes "
        "each side of SPY; the simulator lists 83 SPY strikes, so it holds the options shown."
    )
    return (
        text
        + "\n\n"
        + table(
            (
                "Window",
                "Phase",
                "Options",
                "Seconds",
                "Messages",
                "… after the reply",
                "Floor s",
                "÷ floor",
                "Partial",
            ),
            rows,
        )
        + f"\n\nSimulator: violations {violations or '—'}, most market-data lines open at once "
        f"{num(sim.get('max_open_lines'))}."
    )


def section_tools(result: dict[str, Any]) -> str:
    transports = result["transports"]
    names: list[str] = []
    for figures in transports.values():
        names.extend(name for name in figures["tools"] if name not in names)
    header = ["Call"]
    for label in transports:
        header.extend((f"{label} p50 ms", f"{label} p95 ms", "n", "÷ ref"))
    rows = []
    ref_row = ["reference: no-op tool (FastMCP)"]
    for figures in transports.values():
        ref = figures["reference_noop"]
        ref_row.extend((num(ref["p50_ms"], 2), num(ref["p95_ms"], 2), num(ref["n"]), "1.0"))
    rows.append(ref_row)
    for name in names:
        row = [name.replace("get_options_chain_", "get_options_chain ")]
        for figures in transports.values():
            f = figures["tools"].get(name)
            if f is None:
                row.extend(("—", "—", "—", "—"))
            else:
                row.extend(
                    (
                        num(f["p50_ms"], 2),
                        num(f["p95_ms"], 2),
                        num(f["n"]),
                        num(f.get("ratio_to_reference"), 1),
                    )
                )
        rows.append(row)
    window = result.get("chain_window", {})
    text = (
        f"One caller at a time, symbol {result.get('symbol')}, chain window "
        f"{window.get('strikes_each_side')} strikes each side, both rights. in_process = "
        "fastmcp in-memory client against `create_app(simulated=True)`; stdio = "
        "`python -m sumppump serve --sim` spawned and driven over stdio. The reference is a "
        "FastMCP server with one tool returning a constant, timed in the same process over the "
        "same transport (FastMCP 4.2.3 answers the protocol's `ping` with “Method not "
        "found”); ÷ ref is the tool's p50 over it. With `--sim` the simulated TWS runs inside "
        "the served process, so its work is in every figure. get_options_chain cold = first "
        "fetch of the symbol in the session (the call before switched to another symbol; "
        "conIds from the disk cache), warm = repeat within the 5 s quote lifetime."
    )
    if result.get("quick"):
        text += " **Quick run: few samples per tool.**"
    return text + "\n\n" + table(header, rows)


def section_serve(result: dict[str, Any]) -> str:
    start = result["startup"]
    first = start.get("first_launch", {})
    rows = [
        (
            "spawn → initialize answered",
            num(start["initialize_s"]["p50"], 3),
            num(start["initialize_s"]["max"], 3),
            num(first.get("initialize_s"), 3),
        ),
        (
            "spawn → tools/list answered",
            num(start["tools_list_s"]["p50"], 3),
            num(start["tools_list_s"]["max"], 3),
            num(first.get("tools_list_s"), 3),
        ),
        (
            "spawn → TWS (simulator) connected",
            num(start["tws_connected_s"]["p50"], 3),
            num(start["tws_connected_s"]["max"], 3),
            num(first.get("tws_connected_s"), 3),
        ),
    ]
    memory = result["memory"]
    mem_rows = []
    for key, label in (
        ("after_startup", "after start-up and connect"),
        ("after_chain", "after the first chain"),
        ("after_second_chain", "after a second expiry's chain"),
    ):
        m = memory[key]
        options = m.get("options_in_session", m.get("options", 0))
        partial = " (partial)" if m.get("partial") else ""
        mem_rows.append(
            (label, f"{num(options)}{partial}", num(m["rss_mb"]), num(m["peak_rss_mb"]))
        )
    listing = result["tool_listing"]
    largest = ", ".join(f"{k} {num(v)}" for k, v in listing.get("largest_tools_chars", {}).items())
    simulator = (
        "the simulated TWS runs in the same process (`--sim`), so these figures include it"
        if memory.get("simulator_in_same_process")
        else "the simulator ran in another process"
    )
    return "\n\n".join(
        (
            f"`{result.get('command', 'sumppump serve --sim')}` spawned and driven over stdio "
            f"by fastmcp's client. Start-up: {start['runs']} launches sharing one cache "
            "directory (p50, max) after one first launch with empty caches (matplotlib builds "
            "its font cache), shown apart.",
            table(("Start-up", "p50 s", "max s", "first launch s"), rows),
            imports_line(start.get("imports")),
            f"Resident memory of the server process (VmRSS, VmHWM = peak, from /proc; MB = "
            f"10⁶ bytes); {simulator}. Chains: SPY, "
            f"{dig(memory, 'chain_args', 'strikes_each_side')} strikes each side, both rights, "
            "two expiries (the tool caps strikes_each_side at 30, so one chain cannot hold 200).",
            table(("Point", "Options fetched", "RSS MB", "Peak MB"), mem_rows),
            f"Tool listing: {num(listing['tools'])} tools, {num(listing['chars'])} characters of "
            f"`tools/list` JSON (plus {num(listing.get('instructions_chars'))} characters of "
            f"server instructions). Largest: {largest}.",
        )
    )


def imports_line(imports: Any) -> str:
    """The share of start-up spent importing modules, when it was measured."""
    if not isinstance(imports, dict):
        return "_Import times not measured._"
    cumulative = imports.get("cumulative_import_s", {})
    parts = ", ".join(f"{name} {num(value, 2)} s" for name, value in cumulative.items())
    return (
        f'Python imports alone: `python -c "import sumppump.mcp_server"` takes '
        f"{num(imports.get('python_import_mcp_server_s'), 2)} s (median). Cumulative import "
        f"times from `-X importtime` (nested, so they overlap): {parts or '—'}."
    )


def section_load(result: dict[str, Any]) -> str:
    parts = [
        "Concurrent read callers through the in-memory MCP client against the simulated TWS "
        "with IB's limits on. one = every call about AAPL; mixed = symbols rotate over four, "
        "so calls keep switching the session's one symbol (each switch clears the chain cache "
        "and voids previews) — its latencies are queueing behind those switches, by design."
    ]
    for run in result["runs"]:
        rows = [
            (
                tool,
                num(f["calls"]),
                num(f["p50_ms"]),
                num(f["p95_ms"]),
                num(f["max_ms"]),
                ", ".join(f"{k} {v}" for k, v in f["outcomes"].items()),
            )
            for tool, f in run["tools"].items()
        ]
        parts.append(
            f"**{run['mode']}** ({', '.join(run['symbols'])}): {run['clients']} callers, "
            f"{num(run['duration_s'])} s, {num(run['calls'])} calls ({num(run['calls_per_s'])}/s), "
            f"{num(run.get('requests_to_tws'))} requests to TWS, violations "
            f"{run.get('violations')}, internal errors {num(run.get('internal_errors'))}."
        )
        parts.append(table(("Tool", "Calls", "p50 ms", "p95 ms", "max ms", "Outcomes"), rows))
    return "\n\n".join(parts)


def section_reliability(result: dict[str, Any]) -> str:
    matrix, fuzz, tokens = result["fault_matrix"], result["fuzz"], result["tokens"]
    cell_rows = [
        (
            name,
            num(stats.get("rounds")),
            num(stats.get("faults_injected")),
            num(stats.get("completed", 0)),
            num(stats.get("apps")),
        )
        for name, stats in matrix["cells"].items()
    ]
    summary_rows = []
    for label, part, work in (
        (
            "Fault matrix",
            matrix,
            f"{num(matrix['rounds'])} rounds, {num(matrix['faults_injected'])} faults injected, "
            f"{num(matrix['completed_sessions'])} sessions completed",
        ),
        (
            "Bad-input fuzz",
            fuzz,
            f"{num(fuzz['bad_inputs'])} hostile calls "
            f"({', '.join(f'{k} {v}' for k, v in fuzz['outcomes'].items())})",
        ),
        (
            "Preview-token attacks",
            tokens,
            f"{tokens['passed']}/{len(tokens['scenarios'])} scenarios passed",
        ),
    ):
        summary_rows.append(
            (
                label,
                work,
                num(part["tool_calls"]),
                num(part["orders_received"]),
                num(part["total_violations"]),
                num(part["duplicate_orders"]),
                num(part["unconfirmed_orders"]),
                num(len(part["failures"])),
                num(part.get("seconds")),
            )
        )
    parts = [
        "The scenarios of `tests/reliability` (fault matrix, fuzz, token attacks) run by "
        "`bench/reliability.py` with counters: each app's simulated TWS is read when it closes. "
        "Violations = IB message-rate, market-data-line and historical-pacing violations the "
        "simulator counted; duplicates = orders whose orderRef (the preview id) repeats; "
        "unconfirmed = orders whose preview was never passed to execute_trade."
        + (" **Quick run: reduced sizes.**" if result.get("quick") else ""),
        table(
            (
                "Scenario",
                "Work",
                "Tool calls",
                "Orders",
                "Violations",
                "Duplicates",
                "Unconfirmed",
                "Failures",
                "Seconds",
            ),
            summary_rows,
        ),
        table(("Fault cell", "Rounds", "Faults injected", "Sessions completed", "Apps"), cell_rows),
    ]
    failures = matrix["failures"] + fuzz["failures"] + tokens["failures"]
    if failures:
        parts.append("Failures:\n\n" + "\n".join(f"- `{f[:300]}`" for f in failures))
    return "\n\n".join(parts)


def section_ticket(result: dict[str, Any]) -> str:
    return (
        "The order ticket's HTML resource (self-contained, no network) and the time from the "
        "tool result reaching the view to the ticket drawn, in the browser's clock.\n\n"
        + table(
            ("Ticket HTML bytes", "Chain HTML bytes", "Renders", "Median ms", "Max ms"),
            [
                (
                    num(result["ticket_html_bytes"], 0),
                    num(result["chain_html_bytes"], 0),
                    num(result["renders"], 0),
                    num(result["render_ms_median"]),
                    num(result["render_ms_max"]),
                )
            ],
        )
    )


def section_context(result: dict[str, Any]) -> str:
    calls = result["calls"]
    conv = result["conversation"]
    listing = result["tool_listing"]
    rows = [
        (
            c["tool"],
            num(c["claude_desktop_chars"], 0),
            num(round(c["claude_desktop_chars"] / 4), 0),
            num(c["structured_chars"], 0),
            num(round(c["structured_chars"] / 4), 0),
        )
        for c in calls
    ]
    rows.append(
        (
            f"**demo conversation ({conv['calls']} calls)**",
            num(conv["chars"]["claude_desktop"], 0),
            num(conv["tokens"]["claude_desktop"], 0),
            num(conv["chars"]["structured"], 0),
            num(conv["tokens"]["structured"], 0),
        )
    )
    return (
        "What the model reads of each result of `sumppump demo`'s conversation: in Claude "
        "Desktop only the text content, in Claude Code / VS Code only the JSON of "
        "structuredContent. Tokens are estimated as characters / 4; the payoff chart "
        f"({conv['images']} image) is shown to the model by Claude Desktop and not counted.\n\n"
        + table(
            ("Call", "Desktop chars", "Desktop tokens", "Structured chars", "Structured tokens"),
            rows,
        )
        + f"\n\nTool listing as the model gets it: {num(listing['tools'])} tools, "
        f"{num(listing['chars'])} characters, {num(listing['parameters'])} parameters, "
        f"{len(listing['parameters_without_description'])} without a description."
    )


SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("actors", "Actor runtime: call round trip vs bare streams", section_actors),
    ("pricing", "Pricing kernels vs py_vollib", section_pricing),
    ("strategies", "Strategy core", section_strategies),
    ("chain", "Chain fetch vs the pacing floor", section_chain),
    ("tools", "Tool latency, in-process and over stdio", section_tools),
    ("serve", "Start-up, memory and tool listing of the served process", section_serve),
    ("load", "Load: 50 concurrent readers", section_load),
    ("reliability", "Reliability counts", section_reliability),
    ("ticket", "Order ticket (MCP App) in headless Chromium", section_ticket),
    ("context", "What the model reads, per client profile", section_context),
)


def render(results: Results) -> str:
    """BENCHMARKS.md for ``results`` (see the module docstring)."""
    out = [
        "# SumpPump benchmarks",
        "",
        "_Generated by `make bench` (`bench/report.py`) from `bench/results/*.json`; do not "
        "edit by hand._",
        "",
        "Every figure below was measured on the machine named in its section. The reference "
        "machine is small (2 cores) and was shared with concurrently running test suites, so "
        "absolute times are noisy; the ratios against a reference measured in the same process "
        "and the same run (bare streams for actors, py_vollib for pricing, the 50 msg/s floor "
        "for chains, a no-op MCP tool for tool latency) are the figures that carry over to "
        "other machines. Nothing here is asserted by the test suite: speed is measured, never "
        "tested.",
        "",
        "## Targets",
        "",
        section_targets(results),
        "",
        "## Machines",
        "",
        section_machines(results),
    ]
    for name, title, render_section in SECTIONS:
        out.extend(("", f"## {title}", ""))
        result = results.get(name)
        if result is None:
            out.append(f"_Not measured: no `bench/results/{name}.json` (run `{SCRIPTS[name]}`)._")
            continue
        out.extend((host_line(result), ""))
        try:
            out.append(render_section(result))
        except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError) as exc:
            out.append(
                f"_Could not read `bench/results/{name}.json` ({type(exc).__name__}: {exc}); "
                f"rerun `{SCRIPTS[name]}`._"
            )
    return "\n".join(out) + "\n"


def load_results(directory: Path) -> Results:
    """Every ``*.json`` in ``directory`` by file stem; a file that is not a JSON object is
    skipped with a note on stderr."""
    results: Results = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        if isinstance(data, dict):
            results[path.stem] = data
        else:
            print(f"skipping {path}: not a JSON object", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(load_results(args.results))
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
