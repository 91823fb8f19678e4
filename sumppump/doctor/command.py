"""``sumppump doctor``: the report printed to stdout (versions, settings in effect, then each
check as soon as it is known) and the exit code."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
import sys
from collections.abc import Iterator
from typing import Any, Final

import anyio
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sumppump import __version__, claude_config
from sumppump.doctor.checks import run_checks
from sumppump.doctor.results import CheckResult, Status, exit_code
from sumppump.settings import Settings

__all__ = ["environment_report", "main", "quiet_logs", "tws_overrides"]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report(settings: Settings) -> list[tuple[str, str]]:
    """Versions and the settings in effect, as (name, value) rows. Secrets are shown only as
    "set" / "not set"."""
    rows = [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("sumppump", __version__),
        ("ib_async", _version("ib_async")),
        ("platform", f"{platform.system()} {platform.release()}"),
        ("claude config", str(claude_config.config_path())),
    ]
    for name, value in settings.model_dump().items():
        if name == "http_token":
            rows.append((name, "set" if value else "not set"))
        else:
            rows.append((name, str(value)))
    return rows


_STYLES: Final[dict[Status, str]] = {
    "PASS": "bold green",
    "WARN": "bold yellow",
    "FAIL": "bold red",
    "SKIP": "dim",
}


def _print_result(console: Console, result: CheckResult) -> None:
    style = _STYLES[result.status]
    console.print(
        f"[{style}]{result.status}[/] {escape(result.name)}: {escape(result.detail)}",
        soft_wrap=True,
    )
    if result.fix:
        console.print(f"     fix: {escape(result.fix)}", soft_wrap=True)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The doctor reports what the actors and ib_async would log; keep stderr quiet unless
    debug logging was asked for."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("ib_async", "sumppump")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def tws_overrides(host: str | None, port: int | None) -> dict[str, Any]:
    """The settings the command line's ``--tws-host`` / ``--tws-port`` override."""
    overrides: dict[str, Any] = {}
    if host:
        overrides["tws_host"] = host
    if port is not None:
        overrides["tws_port"] = port
    return overrides


def main(host: str | None, port: int | None) -> int:
    """Run ``sumppump doctor``; print the report to stdout; 0 if nothing FAILed, else 1.

    ``host``/``port`` override the settings' TWS address.
    """
    console = Console(highlight=False)
    try:
        settings = Settings(**tws_overrides(host, port))
    except ValidationError as exc:
        console.print("[bold red]FAIL[/] Settings: the SUMPPUMP_* settings are invalid")
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            console.print(f"     {escape(where)}: {escape(error['msg'])}", soft_wrap=True)
        return 1
    table = Table(title="SumpPump doctor", show_header=False, title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in environment_report(settings):
        table.add_row(escape(name), escape(value))
    console.print(table)
    console.print(
        f"Checking TWS at {settings.tws_host}:{settings.tws_port} with client id "
        f"{settings.client_id}…"
    )
    with quiet_logs():
        results = anyio.run(
            lambda: run_checks(settings, report=lambda r: _print_result(console, r)),
            backend="asyncio",
        )
    counts = {status: sum(r.status == status for r in results) for status in _STYLES}
    code = exit_code(results)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(
        f"[{'bold red' if code else 'bold green'}]"
        f"{'Problems found' if code else 'No failures'}[/]: {summary}"
    )
    return code
