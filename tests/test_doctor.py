"""``sumppump doctor`` against the simulated TWS, a closed port, and Claude Desktop configs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from ib_async import IB

from sumppump import claude_config, doctor
from sumppump.doctor import (
    CHECK_NAMES,
    FIX_OPTIONS_LEVEL,
    FIX_READ_ONLY,
    CheckResult,
    exit_code,
    run_checks,
)
from sumppump.settings import Settings
from sumppump.tws_sim import SimTWS
from sumppump.tws_sim.testing import strict_ib_async_decoding

READ_ONLY_TEXT = (
    "Error validating request.-'bN' : cause - The API interface is currently in Read-Only mode."
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the connection actor runs ib_async


@pytest.fixture(autouse=True)
def claude_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Claude Desktop config (in tmp_path) that runs this install; no SUMPPUMP_* leaks in."""
    for name in list(os.environ):
        if name.startswith("SUMPPUMP_"):
            monkeypatch.delenv(name)
    path = tmp_path / "Claude" / "claude_desktop_config.json"
    monkeypatch.setenv("SUMPPUMP_CLAUDE_CONFIG", str(path))
    claude_config.write_config(claude_config.plan_install(path, claude_config.server_entry()))
    return path


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=1) as sim:
        yield sim


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    assert [r.name for r in results] == list(CHECK_NAMES)
    return {r.name: r for r in results}


def install_claude_for(port: int) -> None:
    """Point the test's Claude Desktop config at this install and TWS ``port``."""
    path = claude_config.config_path()
    entry = {**claude_config.server_entry(), "env": {"SUMPPUMP_TWS_PORT": str(port)}}
    claude_config.write_config(claude_config.plan_install(path, entry))


async def check(
    sim: SimTWS, *, what_if_timeout: float = 8.0, **settings: object
) -> dict[str, CheckResult]:
    install_claude_for(sim.port)
    with strict_ib_async_decoding(), anyio.fail_after(20):
        results = await run_checks(
            Settings(tws_port=sim.port, **settings),  # type: ignore[arg-type]
            today=sim.clock.now().date(),
            what_if_timeout=what_if_timeout,
        )
    return by_name(results)


# ---------------------------------------------------------------------- against the simulator


@pytest.mark.anyio
async def test_healthy_paper_setup_passes_every_check() -> None:
    async with SimTWS(seed=1, paper=True) as sim:
        results = await check(sim)
        what_ifs = sim.orders_received
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(CHECK_NAMES, "PASS")
    assert "DU1234567" in results["Account"].detail
    assert "PAPER" in results["Account"].detail
    # The permission probe is one what-if; nothing that could trade was sent.
    assert len(what_ifs) == 1
    assert all(order.what_if for order in what_ifs)
    assert exit_code(list(results.values())) == 0


@pytest.mark.anyio
async def test_live_account_is_a_loud_warning_but_not_a_failure(sim: SimTWS) -> None:
    results = await check(sim)
    statuses = {name: r.status for name, r in results.items()}
    assert statuses == {**dict.fromkeys(CHECK_NAMES, "PASS"), "Account": "WARN"}
    assert "LIVE account U1234567" in results["Account"].detail
    assert "REAL MONEY" in results["Account"].detail
    assert "paper" in results["Account"].fix
    assert exit_code(list(results.values())) == 0


@pytest.mark.anyio
async def test_closed_port_fails_with_the_tws_fix_and_skips_what_needs_tws() -> None:
    port = closed_port()
    install_claude_for(port)
    # No fallback ports: a simulator someone runs on 7497 must not change this test.
    results = by_name(await run_checks(Settings(tws_port=port), fallback_ports=()))
    assert results["TWS port"].status == "FAIL"
    assert f"127.0.0.1:{port}" in results["TWS port"].detail
    assert "Enable ActiveX and Socket Clients" in results["TWS port"].fix
    assert "7497 (TWS paper) / 7496 (TWS live)" in results["TWS port"].fix
    for name in ("API handshake", "Account", "Market data", "Options permission"):
        assert results[name].status == "SKIP"
    assert results["Claude Desktop"].status == "PASS"
    assert exit_code(list(results.values())) == 1


@pytest.mark.anyio
async def test_delayed_only_market_data_is_a_warning_with_the_subscription_hint(
    sim: SimTWS,
) -> None:
    sim.entitlement(live=False, delayed=True)
    results = await check(sim)
    market = results["Market data"]
    assert market.status == "WARN"
    assert "DELAYED" in market.detail
    assert "Market Data Subscriptions" in market.fix
    assert results["Options permission"].status == "PASS"


@pytest.mark.anyio
async def test_no_market_data_at_all_fails_and_the_options_probe_still_runs(
    sim: SimTWS,
) -> None:
    sim.entitlement(live=False, delayed=False)
    results = await check(sim)
    assert results["Market data"].status == "FAIL"
    assert "10168" in results["Market data"].detail
    assert "Subscribe" in results["Market data"].fix
    # Without a price the probe takes a middle strike; the what-if needs no quote.
    assert results["Options permission"].status == "PASS"


@pytest.mark.anyio
async def test_client_id_in_use_fails_with_326_and_skips_the_rest(sim: SimTWS) -> None:
    squatter = IB()
    await squatter.connectAsync("127.0.0.1", sim.port, clientId=17, timeout=5)
    try:
        results = await check(sim)
    finally:
        squatter.disconnect()
    handshake = results["API handshake"]
    assert handshake.status == "FAIL"
    assert "client id 17" in handshake.detail and "326" in handshake.detail
    assert "SUMPPUMP_CLIENT_ID" in handshake.fix
    for name in ("Account", "Market data", "Options permission"):
        assert results[name].status == "SKIP"
    assert exit_code(list(results.values())) == 1


@pytest.mark.anyio
async def test_client_id_in_use_with_a_spare_id_connects_and_warns(sim: SimTWS) -> None:
    squatter = IB()
    await squatter.connectAsync("127.0.0.1", sim.port, clientId=17, timeout=5)
    try:
        results = await check(sim, spare_client_ids=(18,))
    finally:
        squatter.disconnect()
    handshake = results["API handshake"]
    assert handshake.status == "WARN"
    assert "client id 18" in handshake.detail and "17 already in use" in handshake.detail
    assert results["Options permission"].status == "PASS"


@pytest.mark.anyio
async def test_options_level_zero_fails_with_the_permission_fix(sim: SimTWS) -> None:
    sim.set_options_level("U1234567", 0)
    results = await check(sim)
    options = results["Options permission"]
    assert options.status == "FAIL"
    assert "201" in options.detail
    assert options.fix == FIX_OPTIONS_LEVEL
    assert "Level 2" in options.fix
    assert exit_code(list(results.values())) == 1


@pytest.mark.anyio
async def test_read_only_api_fails_with_the_untick_fix(sim: SimTWS) -> None:
    sim.reject_next_order(321, READ_ONLY_TEXT)
    results = await check(sim, what_if_timeout=1.0)
    options = results["Options permission"]
    # ib_async treats 321 as a warning and leaves the what-if unanswered; the doctor names the
    # likely cause either way (an order desk that reported the 321 would give the same fix).
    assert options.status == "FAIL"
    assert options.fix == FIX_READ_ONLY
    assert exit_code(list(results.values())) == 1


@pytest.mark.anyio
async def test_an_unrelated_rejection_is_a_warning_not_a_permission_failure(sim: SimTWS) -> None:
    sim.reject_next_order(201, "Order rejected - reason:The exchange is closed.")
    results = await check(sim)
    options = results["Options permission"]
    assert options.status == "WARN"
    assert "exchange is closed" in options.detail


@pytest.mark.anyio
async def test_a_port_that_never_completes_the_handshake_fails_in_time() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts, never answers: TWS waiting on its "accept connection?" prompt
        port = listener.getsockname()[1]
        with anyio.fail_after(10):
            results = by_name(
                await run_checks(
                    Settings(tws_port=port, connect_timeout_s=0.5), handshake_timeout=1.0
                )
            )
    assert results["TWS port"].status == "PASS"
    assert results["API handshake"].status == "FAIL"
    assert "Trusted IPs" in results["API handshake"].fix
    assert results["Options permission"].status == "SKIP"


@pytest.mark.anyio
async def test_closed_port_with_tws_on_a_standard_port_names_it_and_what_to_set() -> None:
    configured, other_closed = closed_port(), closed_port()
    async with SimTWS(seed=1, paper=True) as sim:
        install_claude_for(configured)
        with strict_ib_async_decoding(), anyio.fail_after(20):
            results = by_name(
                await run_checks(
                    Settings(tws_port=configured),
                    today=sim.clock.now().date(),
                    fallback_ports=(other_closed, sim.port),
                )
            )
    port = results["TWS port"]
    # Still a failure: the server would not connect until the setting changes.
    assert port.status == "FAIL"
    assert f"nothing accepts connections at 127.0.0.1:{configured}" in port.detail
    assert f"but 127.0.0.1:{sim.port} does" in port.detail
    assert f"SUMPPUMP_TWS_PORT={sim.port}" in port.fix
    # The TWS checks ran against the port that answered.
    assert results["API handshake"].status == "PASS"
    assert results["Account"].status == "PASS"
    assert results["Options permission"].status == "PASS"


@pytest.mark.anyio
async def test_standard_ports_are_labelled_and_every_answering_one_is_named() -> None:
    with socket.socket() as a, socket.socket() as b:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.listen()
        first, second = a.getsockname()[1], b.getsockname()[1]
        configured = closed_port()
        with anyio.fail_after(10):
            checked = await doctor.ports.check_port("127.0.0.1", configured, (first, second))
    assert checked.port == first
    assert f"also open: {second}" in checked.result.detail
    labels = doctor.STANDARD_PORTS
    assert list(labels) == [7497, 7496, 4002, 4001]
    assert labels[4002] == "IB Gateway paper"


@pytest.mark.anyio
async def test_no_port_answering_says_which_standard_ports_were_tried() -> None:
    configured, a, b = closed_port(), closed_port(), closed_port()
    with anyio.fail_after(10):
        checked = await doctor.ports.check_port("127.0.0.1", configured, (a, configured, b))
    assert checked.port is None
    assert checked.result.status == "FAIL"
    assert f"nor at the other standard ports ({a}, {b})" in checked.result.detail


# ---------------------------------------------------------------------- Claude Desktop


def test_claude_check_warns_when_there_is_no_config(claude_installed: Path) -> None:
    claude_installed.unlink()
    result = doctor.check_claude_desktop(Settings())
    assert result.status == "WARN"
    assert "install-claude" in result.fix


def test_claude_check_fails_on_a_config_claude_cannot_parse(claude_installed: Path) -> None:
    claude_installed.write_text('{"mcpServers": {', encoding="utf-8")
    result = doctor.check_claude_desktop(Settings())
    assert result.status == "FAIL"
    assert "not valid JSON" in result.detail


def test_claude_check_fails_when_the_entry_points_at_a_missing_executable(
    claude_installed: Path, tmp_path: Path
) -> None:
    config = json.loads(claude_installed.read_text())
    config["mcpServers"]["sumppump"]["command"] = str(tmp_path / "gone" / "bin" / "sumppump")
    claude_installed.write_text(json.dumps(config))
    result = doctor.check_claude_desktop(Settings())
    assert result.status == "FAIL"
    assert "gone" in result.detail


def test_claude_check_warns_when_the_entry_runs_another_install(
    claude_installed: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-venv" / "bin" / "sumppump"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    config = json.loads(claude_installed.read_text())
    config["mcpServers"]["sumppump"]["command"] = str(other)
    claude_installed.write_text(json.dumps(config))
    result = doctor.check_claude_desktop(Settings())
    assert result.status == "WARN"
    assert "another install" in result.detail


def test_claude_check_accepts_this_interpreter_with_dash_m(claude_installed: Path) -> None:
    config = json.loads(claude_installed.read_text())
    config["mcpServers"]["sumppump"] = {
        "command": sys.executable,
        "args": ["-m", "sumppump", "serve"],
    }
    claude_installed.write_text(json.dumps(config))
    assert doctor.check_claude_desktop(Settings()).status == "PASS"
    config["mcpServers"]["sumppump"]["args"] = ["-m", "sumppump", "demo"]
    claude_installed.write_text(json.dumps(config))
    assert doctor.check_claude_desktop(Settings()).status == "WARN"


def test_claude_check_warns_when_claude_uses_another_tws_port(claude_installed: Path) -> None:
    config = json.loads(claude_installed.read_text())
    config["mcpServers"]["sumppump"]["env"] = {"SUMPPUMP_TWS_PORT": "7496"}
    claude_installed.write_text(json.dumps(config))
    result = doctor.check_claude_desktop(Settings(tws_port=7497))
    assert result.status == "WARN"
    assert "tws port 7496 (doctor checked 7497)" in result.detail
    assert doctor.check_claude_desktop(Settings(tws_port=7496)).status == "PASS"


def test_claude_check_reads_the_store_builds_file_and_names_the_unread_one(
    tmp_path: Path,
) -> None:
    local = tmp_path / "Local"
    (local / "Packages" / "Claude_pzs8sxrjxfjjc").mkdir(parents=True)
    environ = {"LOCALAPPDATA": str(local), "APPDATA": str(tmp_path / "Roaming")}
    path = claude_config.config_path("win32", environ, tmp_path)
    classic = tmp_path / "Roaming" / "Claude" / "claude_desktop_config.json"
    classic.parent.mkdir(parents=True)
    classic.write_text(json.dumps({"mcpServers": {"sumppump": claude_config.server_entry()}}))
    unread = claude_config.unread_config_paths("win32", environ, tmp_path)
    result = doctor.check_claude_desktop(Settings(), path=path, unread=unread)
    assert result.status == "WARN"
    assert str(path) in result.detail
    assert f"{classic} has a 'sumppump' entry" in result.detail
    assert "Microsoft Store build" in result.detail
    claude_config.write_config(claude_config.plan_install(path, claude_config.server_entry()))
    assert doctor.check_claude_desktop(Settings(), path=path, unread=unread).status == "PASS"


# ---------------------------------------------------------------------- the command


def test_doctor_command_on_a_closed_port_exits_1_and_prints_the_fix(
    claude_installed: Path,
) -> None:
    port = closed_port()
    env = {**os.environ, "SUMPPUMP_CLAUDE_CONFIG": str(claude_installed)}
    completed = subprocess.run(
        [sys.executable, "-m", "sumppump", "doctor", "--port", str(port)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert f"FAIL TWS port: nothing accepts connections at 127.0.0.1:{port}" in completed.stdout
    assert "Enable ActiveX and Socket Clients" in completed.stdout
    assert "ib_async" in completed.stdout  # the versions in effect are reported
    assert "http_token" in completed.stdout
