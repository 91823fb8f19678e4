"""``sumppump install-claude``: add this install to Claude Desktop's ``claude_desktop_config.json``.

The file lives at the platform's place (:func:`config_path`; on Windows the Microsoft Store
build's package folder when that build is installed); ``SUMPPUMP_CLAUDE_CONFIG`` overrides
it. The merge (:func:`merged_config`) sets ``mcpServers.sumppump`` to this install's command and
keeps everything else in the file: every other server, every other top-level key, and any extra
key or environment variable the person added to the ``sumppump`` entry themselves. The
environment variables written are the ``SUMPPUMP_*`` ones set now, never a secret
(:data:`SECRET_VARIABLES`, or any name that contains TOKEN, SECRET, PASSWORD or KEY).

Writing is careful: a file that is not valid JSON is refused (exit 2) rather than overwritten; an
existing file is first copied to a timestamped backup next to it; the new text goes to a
temporary file in the same directory that then replaces the original (atomic on every platform
Python supports); nothing changes when the entry is already up to date. ``--dry-run`` prints the
diff and writes nothing.

:mod:`sumppump.doctor` reuses :func:`config_path`, :func:`read_config`, :func:`server_entry` and
:func:`resolve_command` to check what Claude Desktop will start.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.text import Text

__all__ = [
    "CONFIG_OVERRIDE_VARIABLE",
    "SECRET_VARIABLES",
    "SERVER_NAME",
    "ConfigUnreadable",
    "InstallPlan",
    "classic_windows_dir",
    "config_path",
    "main",
    "merged_config",
    "plan_install",
    "read_config",
    "render",
    "resolve_command",
    "server_entry",
    "unread_config_paths",
    "windows_store_dir",
    "write_config",
]

SERVER_NAME: Final = "sumppump"
CONFIG_FILE_NAME: Final = "claude_desktop_config.json"
#: Where tests (and unusual set-ups) point us at another config file.
CONFIG_OVERRIDE_VARIABLE: Final = "SUMPPUMP_CLAUDE_CONFIG"
#: Never copied into Claude Desktop's config, which is a plain-text file other apps can read.
SECRET_VARIABLES: Final = frozenset({"SUMPPUMP_HTTP_TOKEN"})
_SECRET_MARKERS: Final = ("TOKEN", "SECRET", "PASSWORD", "KEY")
#: Variables about the installation itself, not settings of the server.
_NOT_FOR_SERVER: Final = frozenset({CONFIG_OVERRIDE_VARIABLE})


class ConfigUnreadable(Exception):
    """The config file exists but is not a JSON object we can merge into (nothing was written).

    ``str(exc)`` says what is wrong and where, in words a person can act on.
    """


# ---------------------------------------------------------------------- where and what


#: The Microsoft Store / MSIX build of Claude Desktop (every Windows build since February 2026)
#: keeps its roaming data inside its package folder, and reads the config only there
#: (anthropics/claude-code#29100, #38830; shared/notes/clients-and-ecosystem.md §3).
WINDOWS_STORE_PACKAGE: Final = "Claude_pzs8sxrjxfjjc"


def windows_store_dir(environ: Mapping[str, str], home: Path) -> Path | None:
    """The Store build's ``…\\LocalCache\\Roaming\\Claude`` folder when that build is
    installed (its package folder exists under ``%LOCALAPPDATA%\\Packages``), else None.

    The known package name is tried first, then any ``Claude_*`` package (a publisher-id change
    would rename it).
    """
    local = environ.get("LOCALAPPDATA", "").strip()
    packages = (Path(local) if local else home / "AppData" / "Local") / "Packages"
    candidates = [packages / WINDOWS_STORE_PACKAGE]
    try:
        if packages.is_dir():
            candidates += sorted(p for p in packages.glob("Claude_*") if p not in candidates)
        found = next((package for package in candidates if package.is_dir()), None)
    except OSError:  # an unreadable Packages folder: as if the build were not installed
        return None
    return None if found is None else found / "LocalCache" / "Roaming" / "Claude"


def classic_windows_dir(environ: Mapping[str, str], home: Path) -> Path:
    """``%APPDATA%\\Claude`` (``~\\AppData\\Roaming\\Claude`` without APPDATA): the pre-MSIX
    installer's folder."""
    appdata = environ.get("APPDATA", "").strip()
    return (Path(appdata) if appdata else home / "AppData" / "Roaming") / "Claude"


def config_path(
    system: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """Claude Desktop's config file for ``system`` (a ``sys.platform`` value; default this one).

    ``SUMPPUMP_CLAUDE_CONFIG`` in ``environ`` wins. macOS: ``~/Library/Application
    Support/Claude``; Windows: the Store build's folder when it is installed
    (:func:`windows_store_dir`), else ``%APPDATA%\\Claude`` (:func:`classic_windows_dir`);
    anything else: ``$XDG_CONFIG_HOME/Claude``, ``~/.config/Claude`` when XDG_CONFIG_HOME is
    unset or empty (XDG says to ignore a relative one too). Never raises.
    """
    system = sys.platform if system is None else system
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    override = environ.get(CONFIG_OVERRIDE_VARIABLE, "").strip()
    if override:
        return Path(override).expanduser()
    if system == "darwin":
        folder = home / "Library" / "Application Support" / "Claude"
    elif system in ("win32", "cygwin"):
        folder = windows_store_dir(environ, home) or classic_windows_dir(environ, home)
    else:
        xdg = environ.get("XDG_CONFIG_HOME", "").strip()
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
        folder = base / "Claude"
    return folder / CONFIG_FILE_NAME


def unread_config_paths(
    system: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> list[Path]:
    """Config files that exist but that Claude Desktop does not read: on Windows with the Store
    build installed, ``%APPDATA%\\Claude``'s (an older SumpPump, or FastMCP's installer, wrote
    there). Empty elsewhere, and when ``SUMPPUMP_CLAUDE_CONFIG`` is set."""
    system = sys.platform if system is None else system
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    if system not in ("win32", "cygwin") or environ.get(CONFIG_OVERRIDE_VARIABLE, "").strip():
        return []
    if windows_store_dir(environ, home) is None:
        return []
    classic = classic_windows_dir(environ, home) / CONFIG_FILE_NAME
    return [classic] if classic.is_file() else []


def _is_secret(name: str) -> bool:
    upper = name.upper()
    return name in SECRET_VARIABLES or any(marker in upper for marker in _SECRET_MARKERS)


def server_entry(
    environ: Mapping[str, str] | None = None,
    executable: str | None = None,
    system: str | None = None,
) -> dict[str, Any]:
    """The ``mcpServers.sumppump`` entry that starts this install.

    The command is the ``sumppump`` script next to this interpreter (the venv's) with
    ``["serve"]``, or the interpreter itself with ``["-m", "sumppump", "serve"]`` when there is no
    script. The interpreter path is made absolute but not resolved: resolving a venv's python
    symlink would leave the venv. ``env`` holds the ``SUMPPUMP_*`` variables set in ``environ``
    (sorted, secrets left out) and is omitted when there are none.
    """
    environ = os.environ if environ is None else environ
    system = sys.platform if system is None else system
    python = os.path.abspath(executable if executable is not None else sys.executable)
    script_name = "sumppump.exe" if system in ("win32", "cygwin") else "sumppump"
    script = Path(python).parent / script_name
    entry: dict[str, Any]
    if script.is_file():
        entry = {"command": str(script), "args": ["serve"]}
    else:
        entry = {"command": python, "args": ["-m", "sumppump", "serve"]}
    env = {
        name: environ[name]
        for name in sorted(environ)
        if name.startswith("SUMPPUMP_") and name not in _NOT_FOR_SERVER and not _is_secret(name)
    }
    if env:
        entry["env"] = env
    return entry


def resolve_command(command: object) -> Path | None:
    """The executable file ``command`` (an entry's ``command``) names, or None if there is none:
    absolute paths are checked as they are, bare names are looked up on PATH."""
    if not isinstance(command, str) or not command.strip():
        return None
    candidate = Path(command).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None
    found = shutil.which(command)
    return Path(found) if found else None


# ---------------------------------------------------------------------- reading and merging


def read_config(path: Path) -> dict[str, Any] | None:
    """The parsed config, or None when the file does not exist.

    An empty (or whitespace-only) file counts as ``{}``. A UTF-8 byte-order mark is accepted
    (Notepad writes one).

    :raises ConfigUnreadable: not valid JSON, not a JSON object, ``mcpServers`` not an object,
        or the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigUnreadable(f"cannot read {path}: {exc}") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigUnreadable(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigUnreadable(f"{path} holds a JSON {type(data).__name__}, not an object")
    servers = data.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise ConfigUnreadable(f'"mcpServers" in {path} is not a JSON object')
    return data


def merged_config(current: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``mcpServers.sumppump`` set from ``entry``; ``current`` is not modified.

    Key order is kept. In an existing ``sumppump`` entry, ``command`` and ``args`` are replaced,
    other keys stay, and ``env`` is the old one updated with ``entry``'s (a variable the person
    set only in the config survives a reinstall).
    """
    result: dict[str, Any] = json.loads(json.dumps(dict(current or {})))  # a deep copy
    servers = result.setdefault("mcpServers", {})
    old = servers.get(SERVER_NAME)
    new: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    new["command"] = entry["command"]
    new["args"] = list(entry["args"])
    old_env = new.get("env")
    env = {**(old_env if isinstance(old_env, dict) else {}), **dict(entry.get("env", {}))}
    if env:
        new["env"] = env
    else:
        new.pop("env", None)
    servers[SERVER_NAME] = new
    return result


def render(config: Mapping[str, Any]) -> str:
    """The file's text: two-space indented JSON with a final newline (what Claude writes)."""
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


class InstallPlan:
    """What ``install-claude`` would do: the file, its text before and after, and the diff."""

    def __init__(self, path: Path, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        self.path = path
        self.exists = before is not None
        self.before_text = render(before) if before is not None else ""
        self.after_text = render(after)
        self.after = after

    @property
    def changed(self) -> bool:
        return self.before_text != self.after_text

    @property
    def diff(self) -> list[str]:
        return list(
            difflib.unified_diff(
                self.before_text.splitlines(keepends=True),
                self.after_text.splitlines(keepends=True),
                fromfile=f"{self.path} (before)" if self.exists else "/dev/null",
                tofile=f"{self.path} (after)",
            )
        )


def plan_install(path: Path, entry: Mapping[str, Any]) -> InstallPlan:
    """Read ``path`` and compute the merge; writes nothing.

    :raises ConfigUnreadable: see :func:`read_config`.
    """
    before = read_config(path)
    return InstallPlan(path, before, merged_config(before, entry))


def _backup_path(path: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    return candidate


def write_config(plan: InstallPlan, now: datetime | None = None) -> Path | None:
    """Carry out ``plan``: back the existing file up, then replace it atomically.

    Returns the backup's path (None when there was no file to back up). Creates the directory
    if Claude Desktop has not yet. The new file keeps the old one's permission bits. A symlinked
    config (dotfiles) is written through: the file it points at is replaced, the link stays.

    :raises OSError: the backup or the write failed; the original file is then unchanged (the
        temporary file is removed).
    """
    path = plan.path
    path.parent.mkdir(parents=True, exist_ok=True)
    backup: Path | None = None
    if path.exists():
        backup = _backup_path(path, now or datetime.now())
        shutil.copy2(path, backup)
    target = path.resolve() if path.is_symlink() else path
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(plan.after_text)
            handle.flush()
            os.fsync(handle.fileno())
        if backup is not None:
            shutil.copymode(backup, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return backup


# ---------------------------------------------------------------------- command


def _print_diff(console: Console, lines: list[str]) -> None:
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in lines:
        text = line.rstrip("\n")
        style = "bold" if text.startswith(("+++", "---")) else styles.get(text[:1], "")
        console.print(Text(text, style=style), soft_wrap=True)


def main(dry_run: bool, *, path: Path | None = None, unread: Sequence[Path] | None = None) -> int:
    """Run ``sumppump install-claude``; returns the exit code.

    ``path`` is the config to merge into (default :func:`config_path`); ``unread`` the files
    Claude Desktop does not read (default :func:`unread_config_paths`), each named in a note
    when it exists. 0: written, already up to date, or dry run; 1: the write failed (the
    original is intact); 2: the existing file is not valid JSON (or not an object), nothing
    written.
    """
    console = Console(highlight=False)
    path = config_path() if path is None else path
    for stale in unread_config_paths() if unread is None else unread:
        console.print(
            f"[yellow]Note:[/] {escape(str(stale))} is not read by the Microsoft Store build of "
            "Claude Desktop installed here; SumpPump goes into the file it reads:",
            soft_wrap=True,
        )
        console.print(f"  {escape(str(path))}", soft_wrap=True)
    try:
        plan = plan_install(path, server_entry())
    except ConfigUnreadable as exc:
        console.print(
            f"[bold red]Refusing to change Claude Desktop's config:[/] {escape(str(exc))}"
        )
        console.print(
            "Nothing was written. Fix the file (or move it away) and run "
            "[bold]sumppump install-claude[/] again."
        )
        return 2
    if not plan.changed:
        console.print(f"[green]Already up to date:[/] {escape(str(path))} runs this install.")
        return 0
    _print_diff(console, plan.diff)
    if dry_run:
        console.print(f"[yellow]Dry run:[/] nothing written to {escape(str(path))}.")
        return 0
    try:
        backup = write_config(plan)
    except OSError as exc:
        console.print(f"[bold red]Could not write {escape(str(path))}:[/] {escape(str(exc))}")
        return 1
    if backup is not None:
        console.print(f"Backup of the previous file: {escape(str(backup))}")
    console.print(f"[green]Wrote[/] {escape(str(path))}.")
    console.print(
        "Quit Claude Desktop completely (not just its window) and start it again to load SumpPump."
    )
    return 0
