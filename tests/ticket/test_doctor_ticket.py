"""``sumppump doctor`` says whether the configured client shows the order ticket, and whether
the approval mode can place orders there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sumppump import claude_config
from sumppump.doctor import CHECK_NAMES, check_order_ticket
from sumppump.settings import Settings


@pytest.fixture(autouse=True)
def claude_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("SUMPPUMP_"):
            monkeypatch.delenv(name)
    path = tmp_path / "Claude" / "claude_desktop_config.json"
    monkeypatch.setenv("SUMPPUMP_CLAUDE_CONFIG", str(path))
    return path


def install(path: Path, **env: str) -> None:
    entry = {**claude_config.server_entry(), **({"env": env} if env else {})}
    claude_config.write_config(claude_config.plan_install(path, entry))


def test_the_ticket_check_is_part_of_the_doctor() -> None:
    assert CHECK_NAMES[-1] == "Order ticket"


def test_claude_desktop_renders_the_ticket(claude_config_path: Path) -> None:
    install(claude_config_path)
    result = check_order_ticket(Settings())
    assert result.status == "PASS"
    assert "Claude Desktop renders MCP Apps" in result.detail
    assert "approval mode client" in result.detail


def test_app_mode_from_claudes_entry_is_reported(claude_config_path: Path) -> None:
    install(claude_config_path, SUMPPUMP_APPROVAL="app")
    result = check_order_ticket(Settings())
    assert result.status == "PASS"
    assert "only by the ticket's Confirm" in result.detail


def test_elicit_mode_with_claude_desktop_warns_that_every_order_is_refused(
    claude_config_path: Path,
) -> None:
    install(claude_config_path, SUMPPUMP_APPROVAL="elicit")
    result = check_order_ticket(Settings())
    assert result.status == "WARN"
    assert "cannot elicit" in result.detail
    assert '"app"' in result.fix


def test_app_mode_without_a_configured_client_warns() -> None:
    result = check_order_ticket(Settings(approval="app"))
    assert result.status == "WARN"
    assert "install-claude" in result.fix
    assert check_order_ticket(Settings()).status == "SKIP"


def test_an_unknown_approval_mode_fails(claude_config_path: Path) -> None:
    install(claude_config_path, SUMPPUMP_APPROVAL="yolo")
    result = check_order_ticket(Settings())
    assert result.status == "FAIL"
    assert "every order is refused" in result.detail
