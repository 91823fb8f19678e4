"""Smoke run of ``bench/load.py``: concurrent read calls through MCP with IB's limits on, one
symbol and mixed symbols (10 s in all in CI; ``SUMPPUMP_SOAK=1`` → 60 s per mode, behind
``slow``), and the model-like rounds of nine parallel mixed-symbol reads. Asserted: the
simulator saw zero rate, line or pacing violations, every answer was structured, and in the
one-symbol and rounds runs every call answered successfully (no PACING)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bench.load import run_load
from tests.reliability.support import ERROR_CODES, size

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def check_run(run: dict[str, Any]) -> None:
    assert run["total_violations"] == 0, run["violations"]
    assert run["internal_errors"] == 0
    assert run["calls"] > 0
    for tool, figures in run["tools"].items():
        outcomes = figures["outcomes"]
        assert "unstructured" not in outcomes, (tool, outcomes)
        assert set(outcomes) - {"ok"} <= ERROR_CODES, (tool, outcomes)


@pytest.mark.timeout(120)
async def test_concurrent_readers_on_one_and_on_mixed_symbols_stay_within_ib_limits(
    tmp_path: Path,
) -> None:
    """Two apps at once, 5 s each (10 s of load): 50 callers on one symbol, and 10 callers
    whose calls rotate over four symbols (bench/load.py runs 50 for 60 s)."""
    runs: dict[str, dict[str, Any]] = {}

    async def one(mode: str, clients: int) -> None:
        workdir = tmp_path / mode
        workdir.mkdir()
        runs[mode] = await run_load(5.0, clients=clients, mode=mode, workdir=workdir)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "one", 50)
        tg.start_soon(one, "mixed", 10)
    for run in runs.values():
        check_run(run)
    single = runs["one"]
    assert set(single["tools"]) == {
        "get_quote",
        "get_options_chain",
        "get_market_stats",
        "get_account",
    }
    for tool, figures in single["tools"].items():
        assert figures["outcomes"] == {"ok": figures["calls"]}, (tool, figures)


@pytest.mark.timeout(120)
async def test_rounds_of_nine_parallel_mixed_symbol_reads_get_answers(tmp_path: Path) -> None:
    """Issue 21: chain, quote and stats for three symbols at once, a cold round then warm ones;
    nothing is refused for pacing (bench/load.py measures the latencies)."""
    run = await run_load(6.0, mode="rounds", workdir=tmp_path)
    check_run(run)
    assert run["pacing_answers"] == 0
    assert run["calls"] >= 18  # the cold round and at least one warm one
    for label, figures in run["tools"].items():
        assert figures["outcomes"] == {"ok": figures["calls"]}, (label, figures)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["one", "mixed"])
async def test_soak_load(tmp_path: Path, mode: str) -> None:
    run = await run_load(float(size(10, 60, env="SUMPPUMP_LOAD_S")), clients=50, mode=mode)
    check_run(run)
