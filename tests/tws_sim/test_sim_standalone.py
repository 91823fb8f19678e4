"""``sumppump sim`` runs standalone; a plain synchronous ib_async script gets a quote from it."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from sumppump.tws_sim import SimTWS
from sumppump.tws_sim.__main__ import main

pytestmark = pytest.mark.anyio

PLAIN_SCRIPT = """
import sys
from ib_async import IB, Stock
ib = IB()
ib.connect("127.0.0.1", int(sys.argv[1]), clientId=5, timeout=5)
[stock] = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
[ticker] = ib.reqTickers(stock)
print("QUOTE", ticker.bid, ticker.ask, ib.managedAccounts()[0])
ib.disconnect()
"""


async def test_standalone_simulator_serves_a_plain_ib_async_script() -> None:
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sumppump.tws_sim",
        "--port",
        "0",
        "--seed",
        "3",
        "--paper",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert sim.stdout is not None
        banner = (await asyncio.wait_for(sim.stdout.readline(), 10)).decode()
        assert banner.startswith("SIMULATED TWS listening on 127.0.0.1:")
        port = banner.split()[4].rsplit(":", 1)[1]
        script = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PLAIN_SCRIPT,
            port,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(script.communicate(), 20)
        assert script.returncode == 0, err.decode()
        _tag, bid, ask, account = out.decode().split()
        assert 0 < float(bid) < float(ask) and account == "DU1234567"
    finally:
        sim.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(sim.communicate(), 10)
    assert sim.returncode == 0
    assert b"SIMULATED TWS stopped" in rest[0]


def test_list_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-scenarios"]) == 0
    out = capsys.readouterr().out
    assert "after_hours" in out and "delayed_only" in out


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--scenario", "nope"])
    assert caught.value.code == 2


def test_non_loopback_host_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimTWS("0.0.0.0")
