"""The ``sumppump`` command line: --version, plain help, serve's TWS and HTTP options apart (the
old --host/--port still work, with a note), one default simulator seed."""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from sumppump import __version__, cli
from sumppump.mcp_server import create_app
from sumppump.tws_sim import SimTWS


def parse(*argv: str) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = cli._build_parser()
    return parser, parser.parse_args(list(argv))


def serve_addresses(*argv: str) -> tuple[str | None, int | None, int]:
    parser, args = parse("serve", *argv)
    return cli._resolve_serve_addresses(parser, args)


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"sumppump {__version__}"
    assert importlib.metadata.version("sumppump") == __version__


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out
    for command in ("serve", "demo", "sim", "doctor", "install-claude", "--version"):
        assert command in out


def test_serve_help_lists_tws_and_http_options_apart(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    for option in ("--tws-host", "--tws-port", "--http-host", "--http-port", "--transport"):
        assert option in out
    assert "--port" not in out.replace("--tws-port", "").replace("--http-port", "")


def test_tws_and_http_addresses_are_separate_options() -> None:
    assert serve_addresses() == (None, None, cli.DEFAULT_HTTP_PORT)
    assert serve_addresses("--tws-host", "10.0.0.5", "--tws-port", "4002") == (
        "10.0.0.5",
        4002,
        8765,
    )
    assert serve_addresses("--transport", "http", "--tws-port", "4001", "--http-port", "9000") == (
        None,
        4001,
        9000,
    )


def test_old_port_keeps_its_meaning_with_a_deprecation_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert serve_addresses("--port", "4002") == (None, 4002, 8765)
    assert "--port is deprecated; use --tws-port" in capsys.readouterr().err
    assert serve_addresses("--transport", "http", "--port", "9001") == (None, None, 9001)
    assert "use --http-port" in capsys.readouterr().err
    assert serve_addresses("--host", "127.0.0.2") == ("127.0.0.2", None, 8765)
    assert "--host is deprecated; use --tws-host" in capsys.readouterr().err
    # With --sim the old --port was silently ignored; now it says so.
    assert serve_addresses("--sim", "--port", "4002", "--host", "h") == (None, None, 8765)
    err = capsys.readouterr().err
    assert "--port is ignored with --sim" in err and "--host is ignored with --sim" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--sim", "--tws-port", "4002"), "do not apply with --sim"),
        (("--http-port", "9000"), "need --transport http"),
        (("--transport", "http", "--http-host", "0.0.0.0"), "loopback address only"),
        (("--transport", "http", "--http-host", "192.168.1.4"), "loopback address only"),
    ],
    ids=["tws-with-sim", "http-port-without-http", "any-address", "lan-address"],
)
def test_contradictory_or_unsafe_serve_options_are_refused(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        serve_addresses(*argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_loopback_http_hosts_are_accepted() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert serve_addresses("--transport", "http", "--http-host", host)[2] == 8765


def test_doctor_takes_the_tws_address_under_both_names() -> None:
    for argv in (("--tws-host", "h", "--tws-port", "4002"), ("--host", "h", "--port", "4002")):
        _, args = parse("doctor", *argv)
        assert (args.host, args.port) == ("h", 4002)


def test_one_default_seed_for_sim_serve_sim_and_demo() -> None:
    assert cli._with_default_seed([]) == ["--seed", str(cli.DEFAULT_SIM_SEED)]
    assert cli._with_default_seed(["--port", "0"])[:2] == ["--seed", "7"]
    assert cli._with_default_seed(["--seed", "3"]) == ["--seed", "3"]
    assert cli._with_default_seed(["--seed=3"]) == ["--seed=3"]
    # `demo` builds its app with create_app's default seed.
    assert inspect.signature(create_app).parameters["sim_seed"].default == cli.DEFAULT_SIM_SEED


def test_sim_command_runs_the_default_seeds_world() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "sumppump", "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert "SIMULATED TWS listening" in banner
    assert f"seed={cli.DEFAULT_SIM_SEED} " in banner


@pytest.mark.anyio
async def test_serve_connects_to_the_tws_port_given_by_tws_port(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SUMPPUMP_TWS_PORT": "1",  # wrong on purpose: --tws-port must win
        "SUMPPUMP_AUDIT_PATH": str(tmp_path / "audit.jsonl"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    async with SimTWS(seed=1, paper=True) as sim:
        transport = StdioTransport(
            command=sys.executable,
            args=["-m", "sumppump", "serve", "--tws-port", str(sim.port)],
            env=env,
            keep_alive=False,
        )
        with anyio.fail_after(60):
            async with Client(transport) as client:
                connection: dict[str, object] = {}
                status: dict[str, object] = {}
                for _ in range(100):  # the connection actor connects in the background
                    result = await client.call_tool("get_status", {})
                    status = result.structured_content or {}
                    connection = status.get("connection") or {}  # type: ignore[assignment]
                    if connection.get("state") == "connected":
                        break
                    await anyio.sleep(0.1)
    assert connection.get("state") == "connected", connection
    assert connection.get("port") == sim.port
    assert status.get("accounts") == ["DU1234567"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the server's connection actor runs ib_async
