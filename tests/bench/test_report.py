"""bench/report.py: BENCHMARKS.md from small synthetic result files.

The synthetic figures are chosen on both sides of each target, so the verdicts in the targets
table come from the report's comparison, not from anything the inputs state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import SCRIPTS, main, render

HOST = {
    "cpu_model": "Test CPU 9000",
    "cores": 3,
    "ram_gib": 7.5,
    "python": "3.11.99",
    "os": "Linux-test",
    "date_utc": "2030-01-02T03:04:05+00:00",
    "git_commit": "abcdef123456",
    "sumppump_dirty": True,
    "load_average_at_start": [1.5, 1.0, 0.5],
}


def actors(p50_us: float, calls_per_s: float, restart_ms: float) -> dict[str, Any]:
    backend = {
        "reference_bare_streams": {"p50_us": 20.0, "p99_us": 30.0, "calls_per_s": 40_000.0},
        "actor_call": {"p50_us": p50_us, "p99_us": p50_us * 2, "calls_per_s": calls_per_s},
        "actor_vs_bare_p50_ratio": p50_us / 20.0,
        "actor_concurrent_calls_per_s_8_callers": calls_per_s,
        "restart": {"p50_ms": restart_ms, "p99_ms": restart_ms * 2},
    }
    return {"host": HOST, "calls": 10, "restarts": 2, "backends": {"asyncio": backend}}


def chain(cold_ratio: float) -> dict[str, Any]:
    def phase(seconds: float, options: int, ratio: float | None) -> dict[str, Any]:
        return {
            "seconds": seconds,
            "options": options,
            "partial": False,
            "messages_sent": 10,
            "floor_seconds_at_50_per_s": 0.2,
            "ratio_to_floor": ratio,
        }

    window = {"cold": phase(1.0, 166, cold_ratio), "warm": phase(1.0, 166, 1.0)}
    window["repeat"] = phase(0.001, 166, None)
    small = {"cold": phase(1.0, 32, 0.8), "warm": phase(2.0, 32, 0.8)}
    small["repeat"] = phase(0.2, 32, None)
    return {
        "host": HOST,
        "windows": {
            "32": {"symbol": "AAPL", **small},
            "200": {"symbol": "SPY", **window},
            "simulator": {"violations": {"lines": 0}, "max_open_lines": 90},
        },
    }


def serve(tools_list_p50: float, peak_mb: float, listing_chars: int) -> dict[str, Any]:
    spread = {"p50": tools_list_p50, "max": tools_list_p50 + 0.1, "min": tools_list_p50}
    memory_point = {"rss_mb": peak_mb - 1, "peak_rss_mb": peak_mb, "options": 100}
    return {
        "host": HOST,
        "startup": {
            "runs": 5,
            "first_launch": {"initialize_s": 1, "tools_list_s": 1.1, "tws_connected_s": 1.2},
            "initialize_s": spread,
            "tools_list_s": spread,
            "tws_connected_s": spread,
            "imports": {
                "python_import_mcp_server_s": 0.9,
                "cumulative_import_s": {"sumppump.charts": 0.44},
            },
        },
        "memory": {
            "simulator_in_same_process": True,
            "after_startup": {"rss_mb": 100.0, "peak_rss_mb": 100.0},
            "after_chain": {**memory_point, "partial": False},
            "after_second_chain": {**memory_point, "options_in_session": 200, "partial": True},
            "chain_args": {"strikes_each_side": 25},
        },
        "tool_listing": {
            "tools": 17,
            "chars": listing_chars,
            "instructions_chars": 5,
            "largest_tools_chars": {"calculate_strategy": 3_000},
        },
    }


def tools() -> dict[str, Any]:
    def figures(p50: float) -> dict[str, Any]:
        return {"n": 7, "p50_ms": p50, "p95_ms": p50 * 3, "max_ms": p50 * 4}

    transport = {
        "reference_noop": figures(2.0),
        "tools": {
            "get_status": {**figures(3.0), "ratio_to_reference": 1.5},
            "get_options_chain_cold": {**figures(900.0), "ratio_to_reference": 450.0},
        },
    }
    return {
        "host": HOST,
        "symbol": "AAPL",
        "chain_window": {"strikes_each_side": 8},
        "transports": {"in_process": transport, "stdio": transport},
    }


def reliability(duplicates: int) -> dict[str, Any]:
    counts = {
        "tool_calls": 10,
        "orders_received": 3,
        "total_violations": 0,
        "duplicate_orders": 0,
        "unconfirmed_orders": 0,
        "failures": [],
        "seconds": 1.0,
    }
    return {
        "host": HOST,
        "fault_matrix": {
            **counts,
            "duplicate_orders": duplicates,
            "rounds": 4,
            "faults_injected": 3,
            "completed_sessions": 2,
            "cells": {"drop": {"rounds": 4, "faults_injected": 3, "completed": 2, "apps": 1}},
        },
        "fuzz": {**counts, "bad_inputs": 11, "outcomes": {"INVALID_ARGUMENT": 11}},
        "tokens": {**counts, "scenarios": {"test_x": "passed"}, "passed": 1},
        "totals": {
            "total_violations": 0,
            "duplicate_orders": duplicates,
            "unconfirmed_orders": 0,
            "failures": 0,
        },
    }


def target_row(text: str, target: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {target}")]
    assert len(rows) == 1, (target, rows)
    return rows[0]


def test_each_target_is_judged_against_its_limit_on_both_sides() -> None:
    text = render(
        {
            "actors": actors(p50_us=60.0, calls_per_s=25_000.0, restart_ms=1.0),
            "chain": chain(cold_ratio=1.62),
            "serve": serve(tools_list_p50=1.5, peak_mb=300.0, listing_chars=26_428),
            "reliability": reliability(duplicates=1),
        }
    )
    assert "**missed**" in target_row(text, "Actor call round trip p50")
    assert "60.00 µs" in target_row(text, "Actor call round trip p50")
    assert "bare streams 20.0 µs; actor ÷ bare 3.00×" in target_row(text, "Actor call round trip")
    assert "| met |" in target_row(text, "Actor calls per second")
    assert "bare streams 40,000/s" in target_row(text, "Actor calls per second")
    assert "| met |" in target_row(text, "Actor restart p50")
    assert "1.62×" in target_row(text, "Chain fetch, big window (166 options)")
    assert "**missed**" in target_row(text, "Chain fetch, big window")
    assert "**missed**" in target_row(text, "Chain fetch, 32 options, warm")  # 2.0 s > 1.5 s
    assert "**missed**" in target_row(text, "Chain fetch repeated")  # 200 ms > 50 ms
    assert "| met |" in target_row(text, "Start-up: spawn → tools/list answered (p50)")
    assert "**missed**" in target_row(text, "Resident memory, peak, after 200 options")
    assert "300.0 MB" in target_row(text, "Resident memory")
    assert "26,428 chars" in target_row(text, "Tool listing the model sees")
    assert "**missed**" in target_row(text, "Tool listing the model sees")
    assert "**missed**" in target_row(text, "Orders placed twice for one preview")


def test_the_same_targets_are_met_when_the_figures_are_within_their_limits() -> None:
    text = render(
        {
            "actors": actors(p50_us=40.0, calls_per_s=25_000.0, restart_ms=1.0),
            "chain": chain(cold_ratio=1.2),
            "serve": serve(tools_list_p50=1.5, peak_mb=200.0, listing_chars=24_000),
            "reliability": reliability(duplicates=0),
        }
    )
    for target in (
        "Actor call round trip p50",
        "Chain fetch, big window",
        "Resident memory",
        "Tool listing the model sees",
        "Orders placed twice for one preview",
    ):
        assert "| met |" in target_row(text, target), target


def test_every_section_names_the_machine_its_figures_come_from() -> None:
    text = render({"tools": tools(), "serve": serve(1.0, 100.0, 1_000)})
    line = (
        "_Measured on: Test CPU 9000, 3 cores, 7.5 GiB RAM, Python 3.11.99, Linux-test, "
        "2030-01-02T03:04:05+00:00, commit abcdef123456 + uncommitted changes in sumppump/._"
    )
    assert text.count(line) == 2
    machines = text[text.index("## Machines") :].split("\n\n")[1]
    assert "| `tools.json` | Test CPU 9000 | 3 | 7.5 | 3.11.99 | Linux-test |" in machines


def test_tool_latency_rows_show_both_transports_and_the_reference() -> None:
    text = render({"tools": tools()})
    assert "| reference: no-op tool (FastMCP) | 2.00 | 6.00 | 7 | 1.0 | 2.00 |" in text
    assert "| get_options_chain cold | 900.00 | 2,700.00 | 7 | 450.0 | 900.00 |" in text


def test_missing_results_are_named_with_the_script_to_run_and_targets_unmeasured() -> None:
    text = render({})
    for name, script in SCRIPTS.items():
        assert f"_Not measured: no `bench/results/{name}.json` (run `{script}`)._" in text
    assert "| not measured |" in target_row(text, "Actor call round trip p50")
    assert "0 targets met, 0 missed." in text


def test_a_result_of_an_unexpected_shape_is_reported_instead_of_crashing() -> None:
    text = render({"tools": {"host": HOST, "transports": {"stdio": {"tools": {}}}}})
    assert "_Could not read `bench/results/tools.json` (KeyError" in text
    assert "rerun `bench/tools.py`" in text


def test_a_result_without_a_machine_record_says_so() -> None:
    old = actors(40.0, 25_000.0, 1.0)
    del old["host"]
    text = render({"actors": old})
    assert "_Measured on: not recorded" in text


def test_main_reads_every_result_file_and_skips_what_is_not_an_object(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "serve.json").write_text(json.dumps(serve(1.0, 100.0, 1_000)))
    (results / "broken.json").write_text("[1, 2")
    (results / "list.json").write_text("[1, 2]")
    output = tmp_path / "BENCHMARKS.md"
    assert main(["--results", str(results), "--output", str(output)]) == 0
    text = output.read_text()
    assert "1,000 characters of `tools/list` JSON" in text
    assert 'import sumppump.mcp_server"` takes 0.90 s' in text
    assert "sumppump.charts 0.44 s" in text
    assert "_Not measured: no `bench/results/actors.json`" in text
