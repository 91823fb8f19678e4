"""The doctor's Claude Desktop checks: its config starts this install with the settings the
doctor checked, and the approval mode works with a client that renders the order ticket.

The config file is :func:`sumppump.claude_config.config_path`'s unless a ``path`` is given (on
Windows, the Microsoft Store build's when that build is installed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sumppump import claude_config
from sumppump.doctor.results import CLAUDE, FIX_INSTALL_CLAUDE, TICKET, CheckResult
from sumppump.settings import Settings

__all__ = ["CLIENTS_RENDERING_APPS", "check_claude_desktop", "check_order_ticket"]


def _setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


def check_claude_desktop(
    settings: Settings, *, path: Path | None = None, unread: Sequence[Path] | None = None
) -> CheckResult:
    """Claude Desktop's config (``path``, default the platform's) exists, is valid, and its
    ``sumppump`` entry starts this install with the TWS host/port/client id the doctor checked.

    When there is no entry, a ``sumppump`` entry in one of the files Claude Desktop does not read
    (``unread``, default :func:`~sumppump.claude_config.unread_config_paths`: ``%APPDATA%\\Claude``
    beside the Microsoft Store build) is named in the WARN. Never raises."""
    path = claude_config.config_path() if path is None else path
    try:
        config = claude_config.read_config(path)
    except claude_config.ConfigUnreadable as exc:
        return CheckResult(
            CLAUDE,
            "FAIL",
            f"Claude Desktop cannot load its config: {exc}",
            "Fix the JSON (or restore a .bak- copy next to it), then run: sumppump install-claude",
        )
    entry = ((config or {}).get("mcpServers") or {}).get(claude_config.SERVER_NAME)
    if entry is None:
        missing = (
            f"no config at {path}"
            if config is None
            else (f"{path} has no '{claude_config.SERVER_NAME}' server")
        )
        stale = _entries_in(claude_config.unread_config_paths() if unread is None else unread)
        return CheckResult(CLAUDE, "WARN", missing + stale, FIX_INSTALL_CLAUDE)
    if not isinstance(entry, dict):
        return CheckResult(
            CLAUDE,
            "FAIL",
            f"the '{claude_config.SERVER_NAME}' entry in {path} is not an object",
            FIX_INSTALL_CLAUDE,
        )
    command = entry.get("command")
    resolved = claude_config.resolve_command(command)
    if resolved is None:
        return CheckResult(
            CLAUDE,
            "FAIL",
            f"Claude Desktop would run {command!r}, which is not an executable file",
            FIX_INSTALL_CLAUDE + " from this install",
        )
    expected = claude_config.server_entry()
    # This install runs as its script or as ``python -m sumppump``; either is fine.
    ours = (expected["command"], os.path.abspath(sys.executable))
    if not any(_same_file(str(resolved), candidate) for candidate in ours):
        return CheckResult(
            CLAUDE,
            "WARN",
            f"Claude Desktop runs another install: {command} (this one is {expected['command']})",
            FIX_INSTALL_CLAUDE + " from the install you want Claude to use",
        )
    args = entry.get("args") or []
    if not isinstance(args, list) or "serve" not in args:
        return CheckResult(
            CLAUDE, "WARN", f"the entry's args {args!r} do not run 'serve'", FIX_INSTALL_CLAUDE
        )
    env = entry.get("env")
    mismatch = _tws_mismatch(settings, env if isinstance(env, dict) else {})
    if mismatch:
        return CheckResult(
            CLAUDE,
            "WARN",
            f"Claude Desktop's SumpPump uses {mismatch}",
            'Run doctor with the same settings, or change "env" in ' + str(path),
        )
    return CheckResult(CLAUDE, "PASS", f"{path} starts {command} {' '.join(map(str, args))}")


#: MCP clients known to render MCP Apps (the ``io.modelcontextprotocol/ui`` extension).
CLIENTS_RENDERING_APPS: Final = {"Claude Desktop": True}


def check_order_ticket(settings: Settings, *, path: Path | None = None) -> CheckResult:
    """Whether the configured client renders the order ticket (an MCP App), and whether the
    approval mode it runs SumpPump with can place orders there. Never raises.

    The mode is the Claude entry's ``SUMPPUMP_APPROVAL`` when it sets one, else ``settings``'.
    ``path`` is Claude Desktop's config (default: the platform's).
    """
    path = claude_config.config_path() if path is None else path
    try:
        config = claude_config.read_config(path)
    except claude_config.ConfigUnreadable:
        config = None
    entry = ((config or {}).get("mcpServers") or {}).get(claude_config.SERVER_NAME)
    env = entry.get("env") if isinstance(entry, dict) else None
    mode = str((env or {}).get("SUMPPUMP_APPROVAL", settings.approval)).strip().lower()
    if mode not in ("client", "elicit", "tws", "app"):
        return CheckResult(
            TICKET,
            "FAIL",
            f"SUMPPUMP_APPROVAL={mode!r} is not an approval mode: every order is refused",
            "Set SUMPPUMP_APPROVAL to client, app, tws or elicit",
        )
    if not isinstance(entry, dict):
        if mode == "app":
            return CheckResult(
                TICKET,
                "WARN",
                "approval mode app needs a client that renders MCP Apps; none is configured",
                FIX_INSTALL_CLAUDE,
            )
        return CheckResult(
            TICKET, "SKIP", "no MCP client configured (Claude Desktop renders the ticket)"
        )
    client = "Claude Desktop"
    if mode == "elicit":
        return CheckResult(
            TICKET,
            "WARN",
            f"{client} renders MCP Apps (the ticket shows) but cannot elicit: approval mode "
            "elicit refuses every order there",
            'Set "SUMPPUMP_APPROVAL": "app" (Confirm in the ticket) or "client" in ' + str(path),
        )
    renders = CLIENTS_RENDERING_APPS.get(client, False)
    how = {
        "client": "orders by the ticket's Confirm or Claude's tool prompt",
        "app": "orders only by the ticket's Confirm",
        "tws": "orders wait for Transmit in TWS",
    }[mode]
    return CheckResult(
        TICKET,
        "PASS" if renders else "WARN",
        f"{client} renders MCP Apps: the order ticket shows with every preview "
        f"(approval mode {mode}: {how})",
    )


def _entries_in(unread_paths: Sequence[Path]) -> str:
    """ "; …" naming which of ``unread_paths`` (files Claude Desktop never reads) have a
    ``sumppump`` entry; empty when none has."""
    stale = []
    for unread in unread_paths:
        try:
            config = claude_config.read_config(unread)
        except claude_config.ConfigUnreadable:
            continue
        if claude_config.SERVER_NAME in ((config or {}).get("mcpServers") or {}):
            stale.append(str(unread))
    if not stale:
        return ""
    return (
        f"; {', '.join(stale)} has a '{claude_config.SERVER_NAME}' entry, but the Microsoft "
        "Store build of Claude Desktop does not read that file"
    )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _tws_mismatch(settings: Settings, env: dict[str, Any]) -> str:
    """Which of host, port and client id the Claude entry sets differently from ``settings``."""
    differences = []
    for field, variable in (
        ("tws_host", "SUMPPUMP_TWS_HOST"),
        ("tws_port", "SUMPPUMP_TWS_PORT"),
        ("client_id", "SUMPPUMP_CLIENT_ID"),
    ):
        configured = str(env.get(variable, _setting_default(field))).strip()
        checked = str(getattr(settings, field))
        if configured != checked:
            differences.append(f"{field.replace('_', ' ')} {configured} (doctor checked {checked})")
    return "; ".join(differences)
