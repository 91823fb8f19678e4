"""``make bundle``: build ``dist/sumppump-<version>.mcpb``, the MCP Bundle Claude Desktop installs.

The bundle is of server type ``uv`` (MCPB manifest 0.4): it carries the project's source and
``pyproject.toml``, not its dependencies; the host installs those into a virtual environment of
its own (numpy and pydantic are compiled, so bundling them would tie a bundle to one platform)
and runs ``server/main.py`` there. Spec: github.com/modelcontextprotocol/mcpb, MANIFEST.md.

The manifest's tool list is generated from the server itself (the tools the model sees; the
order ticket's app-only buttons are left out), so it cannot drift from what ``tools/list``
answers. The manifest is validated and the bundle packed by the official ``mcpb`` CLI, pinned in
``bundle/package.json`` / ``package-lock.json`` and installed there with ``npm ci`` when missing.

Usage: ``python bundle/build.py [--dist DIR]`` (prints the bundle's path on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
BUNDLE_DIR: Final = ROOT / "bundle"
MCPB_CLI: Final = BUNDLE_DIR / "node_modules" / ".bin" / "mcpb"
ENTRY_POINT: Final = "server/main.py"
#: A deadline for each external command (npm ci, mcpb validate / pack).
COMMAND_TIMEOUT: Final = 300.0

#: The form Claude Desktop shows when the bundle is installed. Keys are ``Settings`` fields;
#: the value reaches the server as ``SUMPPUMP_<KEY>`` (see :func:`manifest`).
USER_CONFIG: Final[dict[str, dict[str, Any]]] = {
    "tws_host": {
        "type": "string",
        "title": "TWS host",
        "description": "Where TWS or IB Gateway runs; 127.0.0.1 unless it is on another machine.",
        "default": "127.0.0.1",
        "required": True,
    },
    "tws_port": {
        "type": "number",
        "title": "TWS API port",
        "description": "7497 TWS paper, 7496 TWS live, 4002 IB Gateway paper, 4001 IB Gateway "
        "live (TWS: API → Settings → Socket port).",
        "default": 7497,
        "min": 1,
        "max": 65535,
        "required": True,
    },
    "client_id": {
        "type": "number",
        "title": "API client id",
        "description": "Any number other than 0 (TWS's master client) that no other API "
        "program uses.",
        "default": 17,
        "min": 1,
        "max": 2147483647,
        "required": True,
    },
    "approval": {
        "type": "string",
        "title": "Approval mode",
        "description": "How an order is confirmed: client (the order ticket's Confirm or "
        "Claude's tool prompt), app (only the ticket's Confirm), tws (you press Transmit in "
        "TWS). Anything else refuses every order.",
        "default": "client",
        "required": True,
    },
    "max_risk_pct": {
        "type": "number",
        "title": "Max risk per order (% of net liquidation)",
        "description": "An order whose maximum loss exceeds this share of the account is refused.",
        "default": 5,
        "min": 0.1,
        "max": 100,
        "required": True,
    },
    "audit_path": {
        "type": "string",
        "title": "Audit log file (optional)",
        "description": "Append-only JSONL record of every preview and order. Leave blank for "
        "the default in your user data folder.",
        "required": False,
    },
}


def environment() -> dict[str, str]:
    """``mcp_config.env``: each ``user_config`` answer as its ``SUMPPUMP_*`` variable."""
    return {f"SUMPPUMP_{key.upper()}": f"${{user_config.{key}}}" for key in USER_CONFIG}


async def server_capabilities() -> tuple[list[dict[str, str]], list[str]]:
    """(tools the model sees as ``{name, description}``, prompt names) from the server built
    the way ``sumppump serve`` builds it, without starting it (no TWS needed)."""
    from sumppump.mcp_server import create_app
    from sumppump.settings import Settings

    app = create_app(Settings())
    tools = [
        {"name": tool.name, "description": first_sentence(tool.description or "")}
        for tool in await app.list_tools()
        if "visibility" not in ((tool.meta or {}).get("ui") or {})
    ]
    prompts = [prompt.name for prompt in await app.list_prompts()]
    return tools, prompts


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of a tool description, on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    end = flat.find(". ")
    sentence = flat if end < 0 else flat[: end + 1]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def manifest(version: str, tools: list[dict[str, str]], prompts: list[str]) -> dict[str, Any]:
    """The bundle's ``manifest.json`` (MCPB 0.4, server type ``uv``)."""
    document: dict[str, Any] = {
        "manifest_version": "0.4",
        "name": "sumppump",
        "display_name": "SumpPump",
        "version": version,
        "description": "Trade Level-2 options in your own Interactive Brokers account by "
        "talking to Claude (TWS or IB Gateway on this computer).",
        "long_description": (
            "SumpPump connects Claude to TWS or IB Gateway on this computer. It reads quotes, "
            "option chains with greeks, market statistics and news; analyses the strategies an "
            "IBKR Level 2 account may hold with exact max loss, max gain and breakevens; and "
            "places an order only after you confirmed that exact order. Every answer says "
            "whether the account is LIVE or PAPER. Before installing, enable the API in TWS "
            "(API → Settings → Enable ActiveX and Socket Clients) and note its port."
        ),
        "author": {"name": "SumpPump contributors"},
        "icon": "icon.png",
        "server": {
            "type": "uv",
            "entry_point": ENTRY_POINT,
            "mcp_config": {
                "command": "uv",
                "args": ["run", "--directory", "${__dirname}", ENTRY_POINT],
                "env": environment(),
            },
        },
        "tools": tools,
        "keywords": ["interactive brokers", "tws", "options", "trading", "finance"],
        "license": "MIT",
        "compatibility": {
            "platforms": ["darwin", "win32", "linux"],
            "runtimes": {"python": ">=3.11"},
        },
        "user_config": USER_CONFIG,
    }
    if prompts:
        # MCPB's own prompt entries are fixed texts; ours are rendered by the server.
        document["prompts_generated"] = True
    return document


def stage(dest: Path, document: dict[str, Any]) -> None:
    """Lay the bundle's files out in ``dest`` (emptied first)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "server").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "sumppump",
        dest / "sumppump",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    shutil.copy2(BUNDLE_DIR / ENTRY_POINT, dest / ENTRY_POINT)
    shutil.copy2(BUNDLE_DIR / "icon.png", dest / "icon.png")  # 256×256: a bull call spread
    (dest / "manifest.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def mcpb_cli() -> Path:
    """The pinned ``mcpb`` CLI, installed with ``npm ci`` from the lock file when missing.

    :raises RuntimeError: npm is not installed, or ``npm ci`` failed.
    """
    if not MCPB_CLI.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install the mcpb CLI (bundle/package.json)")
        run([npm, "ci", "--no-audit", "--no-fund"], cwd=BUNDLE_DIR)
    return MCPB_CLI


def run(command: list[str], cwd: Path | None = None) -> str:
    """Run ``command`` within :data:`COMMAND_TIMEOUT`; its stdout.

    :raises RuntimeError: it failed (its output is in the message).
    """
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build(dist: Path, staging: Path = ROOT / "build" / "mcpb") -> Path:
    """Build, validate and pack the bundle; returns ``dist/sumppump-<version>.mcpb``.
    ``staging`` is the folder the bundle is laid out in first (emptied).

    :raises RuntimeError: the CLI could not be installed, or rejected the manifest.
    """
    from sumppump import __version__

    tools, prompts = asyncio.run(server_capabilities())
    stage(staging, manifest(__version__, tools, prompts))
    cli = str(mcpb_cli())
    run([cli, "validate", str(staging / "manifest.json")])
    dist.mkdir(parents=True, exist_ok=True)
    output = dist / f"sumppump-{__version__}.mcpb"
    output.unlink(missing_ok=True)
    run([cli, "pack", str(staging), str(output)])
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the SumpPump MCP Bundle (.mcpb).")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    args = parser.parse_args(argv)
    try:
        output = build(args.dist)
    except RuntimeError as exc:
        sys.stderr.write(f"make bundle: {exc}\n")
        return 1
    sys.stdout.write(f"{output} ({output.stat().st_size / 1024:.0f} KiB)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
