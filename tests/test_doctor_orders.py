"""``doctor --orders`` against the simulator: every shape previewed with what-if, nothing placed,
IB's refusal of the old combo stop shape (387) reported and kept for the day."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
from pathlib import Path

import anyio
import pytest

from sumppump import cli
from sumppump.doctor.orders import (
    SHAPES,
    OrdersReport,
    load_report,
    render_table,
    run_orders_check,
    shape_refusal,
)
from sumppump.doctor.tws import doctor_connection
from sumppump.settings import Settings
from sumppump.tws_sim import SimTWS
from tests.support.ib_harness import no_decoder_errors

pytestmark = pytest.mark.anyio

TODAY = dt.date(2026, 11, 25)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run(sim: SimTWS, directory: Path) -> OrdersReport | str:
    settings = Settings(tws_port=sim.port, connect_timeout_s=2.0)
    with no_decoder_errors():
        async with doctor_connection(settings) as connection:
            return await run_orders_check(connection, today=TODAY, directory=directory)


async def test_every_shape_is_previewed_and_nothing_is_placed(tmp_path: Path) -> None:
    async with SimTWS(seed=3) as sim:
        report = await run(sim, tmp_path)
        assert isinstance(report, OrdersReport), report
        assert not sim.broker.orders and not sim.broker.executions
        assert sim.orders_received and all(o.what_if for o in sim.orders_received)
    outcomes = {r.shape: r for r in report.results}
    assert tuple(outcomes) == SHAPES
    old = outcomes["old combo stop (BAG STP LMT)"]
    assert (old.outcome, old.code) == ("refused", 387)
    assert "Unsupported order type" in old.text
    assert all(r.outcome == "accepted" for s, r in outcomes.items() if s != old.shape), outcomes
    assert report.account == "U1234567" and report.stock_data == "live"
    assert report.option_data == "live"
    table = render_table(report)
    assert "387: Unsupported order type" in table and "nothing placed" in table
    # Combo stops went out as STP with the bid/ask trigger; the OCA pair shares one new group.
    bag_stops = [
        o.request
        for o in sim.orders_received
        if o.request.contract.sec_type == "BAG" and o.request.order_type == "STP"
    ]
    assert bag_stops and all(r.trigger_method == 4 for r in bag_stops)
    groups = {o.request.oca_group for o in sim.orders_received if o.request.oca_group}
    assert len(groups) == 1 and groups.pop().startswith("doctor-AAPL-")


async def test_the_report_is_kept_for_the_day_and_previews_can_quote_it(tmp_path: Path) -> None:
    async with SimTWS(seed=3) as sim:
        report = await run(sim, tmp_path)
    assert isinstance(report, OrdersReport)
    kept = load_report("U1234567", TODAY, tmp_path)
    assert kept == report
    assert load_report("U1234567", TODAY + dt.timedelta(days=1), tmp_path) is None
    said = shape_refusal(kept, "old combo stop (BAG STP LMT)", TODAY)
    assert said == (
        "IB refused this old combo stop (BAG STP LMT) on your account today: 387 "
        "Unsupported order type for this exchange and security type. (sumppump doctor --orders)"
    )
    assert shape_refusal(kept, "debit spread stop (BAG STP, trigger bid/ask)", TODAY) is None
    assert shape_refusal(kept, "old combo stop (BAG STP LMT)", TODAY + dt.timedelta(1)) is None
    assert shape_refusal(None, "old combo stop (BAG STP LMT)", TODAY) is None


# ---------------------------------------------------------------------- the command


async def doctor_orders(*args: str, data_home: Path) -> tuple[int, str]:
    """``python -m sumppump doctor --orders *args`` in a subprocess; (exit code, stdout+stderr)."""
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    with anyio.fail_after(90):
        completed = await anyio.run_process(
            [sys.executable, "-m", "sumppump", "doctor", "--orders", *args],
            env=env,
            check=False,
        )
    return completed.returncode, completed.stdout.decode() + completed.stderr.decode()


async def test_doctor_orders_command_prints_every_shape_places_nothing_and_exits_0(
    tmp_path: Path,
) -> None:
    async with SimTWS(seed=7) as sim:
        code, out = await doctor_orders("--tws-port", str(sim.port), data_home=tmp_path)
        assert not sim.broker.orders and not sim.broker.executions
        assert sim.orders_received and all(o.what_if for o in sim.orders_received)
    assert code == 0, out
    for shape in SHAPES:
        assert shape in out, shape
    assert "387: Unsupported order type" in out
    assert "finding, not a failure" in out
    kept = list((tmp_path / "sumppump" / "doctor-orders").glob("*.json"))
    assert [p.name for p in kept] == ["U1234567.json"], out


async def test_doctor_orders_command_exits_1_when_tws_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        code, out = await doctor_orders("--tws-port", str(port), data_home=tmp_path)
    assert code == 1, out
    assert f"TWS is unreachable at 127.0.0.1:{port}" in out
    assert "387" not in out and not (tmp_path / "sumppump").exists()


def test_symbol_without_orders_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor", "--symbol", "SPY"])
    assert exited.value.code == 2
    assert "--symbol needs --orders" in capsys.readouterr().err
