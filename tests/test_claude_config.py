"""`sumppump install-claude`: where Claude Desktop's config lives; how it is merged and written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from sumppump import claude_config
from sumppump.claude_config import (
    ConfigUnreadable,
    config_path,
    merged_config,
    read_config,
    server_entry,
)

OTHER_SERVERS = {
    "filesystem": {
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
    },
    "weather": {"command": "/opt/weather/bin/weather-mcp", "env": {"API_KEY": "abc"}},
}


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Claude's config path redirected into tmp_path; no SUMPPUMP_* variable leaks in."""
    for name in list(os.environ):
        if name.startswith("SUMPPUMP_"):
            monkeypatch.delenv(name)
    path = tmp_path / "Claude" / "claude_desktop_config.json"
    monkeypatch.setenv("SUMPPUMP_CLAUDE_CONFIG", str(path))
    return path


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bak-*"))


def leftovers(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------- where the file is


@pytest.mark.parametrize(
    ("system", "environ", "expected"),
    [
        ("darwin", {}, "home/Library/Application Support/Claude/claude_desktop_config.json"),
        ("win32", {"APPDATA": "{tmp}/Roaming"}, "Roaming/Claude/claude_desktop_config.json"),
        ("win32", {}, "home/AppData/Roaming/Claude/claude_desktop_config.json"),
        ("linux", {}, "home/.config/Claude/claude_desktop_config.json"),
        ("linux", {"XDG_CONFIG_HOME": "{tmp}/xdg"}, "xdg/Claude/claude_desktop_config.json"),
        (
            "linux",
            {"XDG_CONFIG_HOME": "relative/xdg"},
            "home/.config/Claude/claude_desktop_config.json",
        ),
        ("darwin", {"SUMPPUMP_CLAUDE_CONFIG": "{tmp}/elsewhere.json"}, "elsewhere.json"),
        ("linux", {"SUMPPUMP_CLAUDE_CONFIG": "{tmp}/elsewhere.json"}, "elsewhere.json"),
    ],
    ids=[
        "macos",
        "windows-appdata",
        "windows-no-appdata",
        "linux",
        "linux-xdg",
        "linux-relative-xdg-ignored",
        "override-on-macos",
        "override-on-linux",
    ],
)
def test_config_path_follows_each_platforms_convention(
    tmp_path: Path, system: str, environ: dict[str, str], expected: str
) -> None:
    environ = {k: v.replace("{tmp}", str(tmp_path)) for k, v in environ.items()}
    path = config_path(system=system, environ=environ, home=tmp_path / "home")
    assert path == tmp_path / expected


STORE = "Packages/Claude_pzs8sxrjxfjjc/LocalCache/Roaming/Claude/claude_desktop_config.json"


def store_layout(tmp_path: Path, package: str = "Claude_pzs8sxrjxfjjc") -> dict[str, str]:
    """A fake Windows profile in tmp_path with the Microsoft Store build's package folder."""
    (tmp_path / "Local" / "Packages" / package).mkdir(parents=True)
    return {"LOCALAPPDATA": str(tmp_path / "Local"), "APPDATA": str(tmp_path / "Roaming")}


def test_windows_store_build_is_found_under_localappdata_packages(tmp_path: Path) -> None:
    environ = store_layout(tmp_path)
    path = config_path(system="win32", environ=environ, home=tmp_path / "home")
    assert path == tmp_path / "Local" / STORE


def test_windows_store_build_without_localappdata_is_under_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "AppData" / "Local" / "Packages" / "Claude_pzs8sxrjxfjjc").mkdir(parents=True)
    path = config_path(system="win32", environ={}, home=home)
    assert path == home / "AppData" / "Local" / STORE


def test_windows_store_package_with_another_publisher_id_is_found_too(tmp_path: Path) -> None:
    environ = store_layout(tmp_path, package="Claude_0123456789abc")
    path = config_path(system="win32", environ=environ, home=tmp_path / "home")
    assert path.parent == tmp_path / "Local/Packages/Claude_0123456789abc/LocalCache/Roaming/Claude"


def test_windows_without_the_store_package_uses_appdata_and_names_nothing_unread(
    tmp_path: Path,
) -> None:
    environ = {"LOCALAPPDATA": str(tmp_path / "Local"), "APPDATA": str(tmp_path / "Roaming")}
    (tmp_path / "Local" / "Packages" / "SomeOtherApp_123").mkdir(parents=True)
    (tmp_path / "Roaming" / "Claude").mkdir(parents=True)
    (tmp_path / "Roaming" / "Claude" / "claude_desktop_config.json").write_text("{}")
    path = config_path(system="win32", environ=environ, home=tmp_path / "home")
    assert path == tmp_path / "Roaming" / "Claude" / "claude_desktop_config.json"
    assert claude_config.unread_config_paths("win32", environ, tmp_path / "home") == []


def test_beside_the_store_build_the_classic_file_is_named_unread(tmp_path: Path) -> None:
    environ = store_layout(tmp_path)
    classic = tmp_path / "Roaming" / "Claude" / "claude_desktop_config.json"
    assert claude_config.unread_config_paths("win32", environ, tmp_path) == []
    classic.parent.mkdir(parents=True)
    classic.write_text("{}")
    assert claude_config.unread_config_paths("win32", environ, tmp_path) == [classic]
    # Elsewhere, or with an explicit override, nothing is "unread".
    assert claude_config.unread_config_paths("linux", environ, tmp_path) == []
    override = {**environ, "SUMPPUMP_CLAUDE_CONFIG": str(tmp_path / "x.json")}
    assert claude_config.unread_config_paths("win32", override, tmp_path) == []


def test_install_into_the_store_layout_writes_the_file_that_build_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("SUMPPUMP_"):
            monkeypatch.delenv(name)
    environ = store_layout(tmp_path)
    classic = tmp_path / "Roaming" / "Claude" / "claude_desktop_config.json"
    classic.parent.mkdir(parents=True)
    classic.write_text(json.dumps({"mcpServers": {"sumppump": {"command": "old"}}}))
    path = config_path("win32", environ, tmp_path)
    unread = claude_config.unread_config_paths("win32", environ, tmp_path)
    assert claude_config.main(dry_run=False, path=path, unread=unread) == 0
    assert path == tmp_path / "Local" / STORE
    assert read_config(path) == {"mcpServers": {"sumppump": server_entry()}}
    out = " ".join(capsys.readouterr().out.split())
    assert "is not read by the Microsoft Store build" in out
    assert json.loads(classic.read_text()) == {"mcpServers": {"sumppump": {"command": "old"}}}


# ---------------------------------------------------------------------- what the entry says


def test_entry_runs_the_script_next_to_the_interpreter_when_there_is_one(tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text("")
    (bin_dir / "sumppump").write_text("#!/bin/sh\n")
    entry = server_entry(environ={}, executable=str(python), system="linux")
    assert entry == {"command": str(bin_dir / "sumppump"), "args": ["serve"]}

    (bin_dir / "sumppump").unlink()
    entry = server_entry(environ={}, executable=str(python), system="linux")
    assert entry == {"command": str(python), "args": ["-m", "sumppump", "serve"]}


def test_windows_entry_looks_for_the_exe_script(tmp_path: Path) -> None:
    scripts = tmp_path / "Scripts"
    scripts.mkdir()
    (scripts / "sumppump.exe").write_text("")
    entry = server_entry(environ={}, executable=str(scripts / "python.exe"), system="win32")
    assert entry["command"] == str(scripts / "sumppump.exe")


def test_entry_carries_sumppump_settings_but_never_secrets() -> None:
    environ = {
        "SUMPPUMP_TWS_PORT": "7496",
        "SUMPPUMP_MAX_LOSS": "500",
        "SUMPPUMP_HTTP_TOKEN": "s3cret",
        "SUMPPUMP_SOME_API_KEY": "k",
        "SUMPPUMP_CLAUDE_CONFIG": "/tmp/x.json",
        "HOME": "/home/me",
        "PATH": "/usr/bin",
    }
    entry = server_entry(environ=environ, executable=sys.executable)
    assert entry["env"] == {"SUMPPUMP_MAX_LOSS": "500", "SUMPPUMP_TWS_PORT": "7496"}
    assert "s3cret" not in json.dumps(entry)


def test_merge_replaces_command_keeps_extra_keys_and_updates_env() -> None:
    current = {
        "globalShortcut": "Ctrl+Space",
        "mcpServers": {
            **OTHER_SERVERS,
            "sumppump": {
                "command": "/old/venv/bin/sumppump",
                "args": ["serve", "--sim"],
                "disabled": False,
                "env": {"SUMPPUMP_TWS_PORT": "7496", "SUMPPUMP_APPROVAL": "tws"},
            },
        },
    }
    snapshot = json.loads(json.dumps(current))
    entry = {
        "command": "/new/bin/sumppump",
        "args": ["serve"],
        "env": {"SUMPPUMP_TWS_PORT": "4002"},
    }
    merged = merged_config(current, entry)
    assert current == snapshot  # the input is not modified
    assert merged["globalShortcut"] == "Ctrl+Space"
    assert {k: v for k, v in merged["mcpServers"].items() if k != "sumppump"} == OTHER_SERVERS
    assert merged["mcpServers"]["sumppump"] == {
        "command": "/new/bin/sumppump",
        "args": ["serve"],
        "disabled": False,
        "env": {"SUMPPUMP_TWS_PORT": "4002", "SUMPPUMP_APPROVAL": "tws"},
    }


# ---------------------------------------------------------------------- the command


def test_fresh_install_creates_the_file_and_directory(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert claude_config.main(dry_run=False) == 0
    written = json.loads(config_file.read_text(encoding="utf-8"))
    assert written == {"mcpServers": {"sumppump": server_entry()}}
    assert backups(config_file) == []
    assert leftovers(config_file) == []
    out = capsys.readouterr().out
    assert '+      "command"' in out
    assert "restart" in out.lower() or "start it again" in out


def test_install_keeps_other_servers_and_keys_and_backs_the_old_file_up(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.parent.mkdir(parents=True)
    # Claude's own formatting differs from ours: the backup must be the exact old bytes.
    original = json.dumps({"theme": "dark", "mcpServers": OTHER_SERVERS}, indent=4).encode()
    config_file.write_bytes(original)
    monkeypatch.setenv("SUMPPUMP_TWS_PORT", "4002")

    assert claude_config.main(dry_run=False) == 0

    written = json.loads(config_file.read_text(encoding="utf-8"))
    assert written["theme"] == "dark"
    assert {k: v for k, v in written["mcpServers"].items() if k != "sumppump"} == OTHER_SERVERS
    assert written["mcpServers"]["sumppump"]["env"] == {"SUMPPUMP_TWS_PORT": "4002"}
    [backup] = backups(config_file)
    assert backup.read_bytes() == original
    assert leftovers(config_file) == []


def test_dry_run_prints_the_diff_and_writes_nothing(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file.parent.mkdir(parents=True)
    original = json.dumps({"mcpServers": OTHER_SERVERS}).encode()
    config_file.write_bytes(original)

    assert claude_config.main(dry_run=True) == 0

    assert config_file.read_bytes() == original
    assert backups(config_file) == []
    out = capsys.readouterr().out
    assert '+    "sumppump": {' in out
    assert "Dry run" in out


def test_dry_run_without_a_file_creates_nothing(config_file: Path) -> None:
    assert claude_config.main(dry_run=True) == 0
    assert not config_file.parent.exists()


@pytest.mark.parametrize(
    "text",
    ['{"mcpServers": {"filesystem": {"command": "npx",}}}', "[1, 2]", '{"mcpServers": []}'],
    ids=["trailing-comma", "array", "servers-not-object"],
)
def test_a_config_that_is_not_a_json_object_is_refused_untouched(
    config_file: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text(text, encoding="utf-8")

    assert claude_config.main(dry_run=False) == 2

    assert config_file.read_text(encoding="utf-8") == text
    assert backups(config_file) == []
    assert "Nothing was written" in capsys.readouterr().out


def test_invalid_json_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "mcpServers": {\n    "a": 1,\n  }\n}\n')
    with pytest.raises(ConfigUnreadable, match=r"not valid JSON \(line 4"):
        read_config(path)


def test_second_install_reports_no_change_and_writes_nothing(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert claude_config.main(dry_run=False) == 0
    first = config_file.read_bytes()
    stamp = config_file.stat().st_mtime_ns
    capsys.readouterr()

    assert claude_config.main(dry_run=False) == 0

    assert "Already up to date" in capsys.readouterr().out
    assert config_file.read_bytes() == first
    assert config_file.stat().st_mtime_ns == stamp
    assert backups(config_file) == []


def test_backups_of_two_installs_in_the_same_second_do_not_collide(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text("{}", encoding="utf-8")
    plan = claude_config.plan_install(config_file, server_entry())
    from datetime import datetime

    now = datetime(2026, 11, 24, 22, 0, 0)
    first = claude_config.write_config(plan, now=now)
    monkeypatch.setenv("SUMPPUMP_TWS_PORT", "4001")
    second = claude_config.write_config(
        claude_config.plan_install(config_file, server_entry()), now=now
    )
    assert first is not None and second is not None and first != second
    assert first.read_text() == "{}"
    assert json.loads(second.read_text()) == plan.after


def test_a_symlinked_config_is_written_through_and_stays_a_link(
    config_file: Path, tmp_path: Path
) -> None:
    dotfiles = tmp_path / "dotfiles" / "claude.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text(json.dumps({"mcpServers": OTHER_SERVERS}), encoding="utf-8")
    config_file.parent.mkdir(parents=True)
    config_file.symlink_to(dotfiles)

    assert claude_config.main(dry_run=False) == 0

    assert config_file.is_symlink()
    written = json.loads(dotfiles.read_text(encoding="utf-8"))
    assert set(written["mcpServers"]) == {*OTHER_SERVERS, "sumppump"}
    [backup] = backups(config_file)
    assert json.loads(backup.read_text()) == {"mcpServers": OTHER_SERVERS}


def test_byte_order_mark_and_empty_files_are_accepted(tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"mcpServers": OTHER_SERVERS}).encode())
    assert read_config(bom) == {"mcpServers": OTHER_SERVERS}
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    assert read_config(empty) == {}
    assert read_config(tmp_path / "missing.json") is None
