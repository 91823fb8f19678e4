"""The MCP Bundle (``make bundle``) and the end-user install (``pip install .``, no dev extras).

One test builds the bundle with the pinned ``mcpb`` CLI (which validates the manifest), unpacks
it with the same CLI, installs the unpacked server into a fresh virtual environment the way a
``uv``-type bundle's host does (the project from the bundle's ``pyproject.toml``, no extras),
then, in that environment: ``sumppump --version``, no development package present, the
bundle's entry point lists its tools over stdio with the manifest's environment (the form's
defaults substituted), and the plain ``sumppump serve --sim`` lists the same tools. Building
once serves both checks because the bundle's ``pyproject.toml`` and package are the project's.
It is the slow one (a fresh install); the others check the manifest against the settings and
the server without installing anything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from sumppump import __version__
from sumppump.mcp_server import create_app
from sumppump.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "mypy", "ruff", "playwright", "hypothesis", "trio")


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sumppump_bundle_build", ROOT / "bundle/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def model_tool_names(tools: list[Any]) -> list[str]:
    return [t.name for t in tools if "visibility" not in ((t.meta or {}).get("ui") or {})]


async def list_tools(command: str, args: list[str], env: dict[str, str]) -> list[str]:
    transport = StdioTransport(command=command, args=args, env=env, keep_alive=False)
    with anyio.fail_after(90):
        async with Client(transport) as client:
            return model_tool_names(await client.list_tools())


def substituted(value: str, answers: dict[str, str], dirname: Path) -> str:
    """``value`` with ``${__dirname}`` and answered ``${user_config.KEY}`` replaced, as the host
    does; an unanswered key's placeholder is left as it is (the entry point drops it)."""
    value = value.replace("${__dirname}", str(dirname))
    for key, answer in answers.items():
        value = value.replace(f"${{user_config.{key}}}", answer)
    return value


# ---------------------------------------------------------------------- without installing


def test_the_form_sets_real_settings_with_their_defaults() -> None:
    env = build.environment()
    assert set(build.USER_CONFIG) == {
        "tws_host",
        "tws_port",
        "client_id",
        "approval",
        "max_risk_pct",
        "audit_path",
    }
    for key, field in build.USER_CONFIG.items():
        assert key in Settings.model_fields, key
        assert env[f"SUMPPUMP_{key.upper()}"] == f"${{user_config.{key}}}"
        if "default" in field:
            assert field["default"] == Settings.model_fields[key].default, key
    # The form's defaults, as text (how the environment delivers them), make valid settings.
    answers = {k: str(f["default"]) for k, f in build.USER_CONFIG.items() if "default" in f}
    settings = Settings.model_validate(answers)
    assert (settings.tws_port, settings.client_id, settings.approval_mode) == (7497, 17, "client")


def test_a_field_left_blank_keeps_the_settings_default(monkeypatch: pytest.MonkeyPatch) -> None:
    default = Settings().audit_path
    monkeypatch.setenv("SUMPPUMP_AUDIT_PATH", "")
    monkeypatch.setenv("SUMPPUMP_TWS_PORT", "")
    settings = Settings()
    assert settings.audit_path == default
    assert settings.tws_port == 7497


@pytest.mark.anyio
async def test_manifest_lists_exactly_the_tools_the_model_sees() -> None:
    tools, prompts = await build.server_capabilities()
    document = build.manifest(__version__, tools, prompts)
    async with Client(create_app(Settings())) as client:
        served = model_tool_names(await client.list_tools())
        served_prompts = [p.name for p in await client.list_prompts()]
    assert [t["name"] for t in document["tools"]] == served
    assert all(0 < len(t["description"]) <= 200 for t in document["tools"])
    assert document.get("prompts_generated", False) == bool(served_prompts)
    assert document["version"] == __version__
    assert document["server"]["type"] == "uv"


# ---------------------------------------------------------------------- the bundle, installed


@pytest.mark.timeout(900)
def test_bundle_builds_validates_installs_fresh_and_lists_its_tools(tmp_path: Path) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the mcpb CLI that packs bundles needs them")
    bundle = build.build(tmp_path / "dist", staging=tmp_path / "staging")
    assert bundle.name == f"sumppump-{__version__}.mcpb"
    unpacked = tmp_path / "unpacked"
    build.run([str(build.mcpb_cli()), "unpack", str(bundle), str(unpacked)])
    document = json.loads((unpacked / "manifest.json").read_text())
    server = document["server"]
    assert server["type"] == "uv"
    assert (unpacked / "pyproject.toml").is_file()
    assert (unpacked / server["entry_point"]).is_file()
    assert (unpacked / document["icon"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (unpacked / "sumppump" / "ticket" / "static" / "ticket.html").is_file()
    assert not list(unpacked.rglob("__pycache__")) and not (unpacked / "tests").exists()

    # The host's part for a uv bundle: a fresh environment with the project, no extras.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-compile", str(unpacked)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    version = subprocess.run(
        [str(venv / "bin" / "sumppump"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert version.stdout.strip() == f"sumppump {__version__}"
    present = subprocess.run(
        [
            python,
            "-c",
            f"import importlib.util as u; print([m for m in {DEV_ONLY!r} if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert present.stdout.strip() == "[]"

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SUMPPUMP_")}
    base_env |= {
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    # The form as a person leaves it, except a TWS port nothing listens on; audit_path unanswered.
    answers = {k: str(f["default"]) for k, f in document["user_config"].items() if "default" in f}
    answers["tws_port"] = str(closed_port())
    env = base_env | {
        name: substituted(value, answers, unpacked)
        for name, value in server["mcp_config"]["env"].items()
    }
    bundle_tools = anyio.run(list_tools, python, [str(unpacked / server["entry_point"])], env)
    assert bundle_tools == [t["name"] for t in document["tools"]]

    plain_tools = anyio.run(
        list_tools, str(venv / "bin" / "sumppump"), ["serve", "--sim"], base_env
    )
    assert plain_tools == bundle_tools
