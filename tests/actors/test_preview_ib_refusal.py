"""Through the execution actor: when ``sumppump doctor --orders`` kept a report today saying IB
refused a shape on the account, a preview of that shape says so first (the report is read from
the user data dir, here XDG_DATA_HOME in a temporary directory)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sumppump.messages.execution import PreviewCreated
from sumppump.trading.ib_shapes import SHAPES, OrdersReport, ShapeResult, save_report
from sumppump.tws_sim import SimTWS
from tests.actors.test_execution_support import execution_tree, preview, wait_ready
from tests.support.ib_harness import no_decoder_errors

pytestmark = pytest.mark.anyio

REFUSAL = "Unsupported order type for this exchange and security type."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_async needs asyncio


def kept_report(account: str, refused: str) -> OrdersReport:
    today = dt.datetime.now(ZoneInfo("America/New_York")).date()
    results = tuple(
        ShapeResult(s, "refused", 387, REFUSAL) if s == refused else ShapeResult(s, "accepted")
        for s in SHAPES
    )
    return OrdersReport(account, today.isoformat(), "AAPL", "live", "live", results)


async def test_a_preview_of_a_refused_shape_says_so_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    save_report(kept_report("U1234567", "debit spread BAG LMT"))
    async with SimTWS(seed=7) as sim:
        with no_decoder_errors():
            async with execution_tree(sim, tmp_path) as tree:
                await wait_ready(tree)
                spread = await preview(
                    tree, [("BUY", "C", 0), ("SELL", "C", 2)], strategy="bull_call_spread"
                )
                single = await preview(tree, [("BUY", "C", 0)])
    assert isinstance(spread, PreviewCreated) and isinstance(single, PreviewCreated)
    assert spread.notes[0] == (
        f"IB refused this debit spread BAG LMT on your account today: 387 {REFUSAL} "
        "(sumppump doctor --orders)"
    )
    assert not any(note.startswith("IB refused") for note in single.notes)
