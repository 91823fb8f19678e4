"""Every doctor check in report order (:func:`run_checks`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sumppump.doctor.claude import check_claude_desktop, check_order_ticket
from sumppump.doctor.options import WHAT_IF_TIMEOUT
from sumppump.doctor.ports import STANDARD_PORTS, check_port
from sumppump.doctor.results import (
    ACCOUNT,
    HANDSHAKE,
    MARKET_DATA,
    OPTIONS,
    CheckResult,
    Report,
)
from sumppump.doctor.tws import tws_checks
from sumppump.settings import Settings

__all__ = ["run_checks"]


async def run_checks(
    settings: Settings,
    *,
    test_symbol: str = "AAPL",
    today: date | None = None,
    handshake_timeout: float | None = None,
    what_if_timeout: float = WHAT_IF_TIMEOUT,
    report: Report | None = None,
    fallback_ports: tuple[int, ...] = tuple(STANDARD_PORTS),
    claude_path: Path | None = None,
) -> list[CheckResult]:
    """Run every check against ``settings`` (host, port, client id) and return the results in
    :data:`CHECK_NAMES` order; ``report`` is called with each result as soon as it is known.

    ``today`` picks the option expiry of the what-if (default: the local date);
    ``handshake_timeout`` defaults to ``settings.connect_timeout_s + 2`` seconds; a what-if
    unanswered within ``what_if_timeout`` seconds is a FAIL. When the configured port is closed,
    ``fallback_ports`` are tried (:func:`~sumppump.doctor.ports.check_port`) and the TWS checks
    run against the first that answered. ``claude_path`` is the Claude Desktop config to check
    (default: the platform's). Needs the asyncio backend (the connection actor runs ib_async).
    Never raises for anything TWS does; cancellation stops the actors it started and propagates.
    """
    results: list[CheckResult] = []

    def add(result: CheckResult) -> None:
        results.append(result)
        if report is not None:
            report(result)

    port_check = await check_port(settings.tws_host, settings.tws_port, fallback_ports)
    add(port_check.result)
    if port_check.port is None:
        for name in (HANDSHAKE, ACCOUNT, MARKET_DATA, OPTIONS):
            add(CheckResult(name, "SKIP", "needs the TWS port"))
    else:
        timeout = (
            settings.connect_timeout_s + 2.0 if handshake_timeout is None else handshake_timeout
        )
        tws_settings = settings
        if port_check.port != settings.tws_port:
            tws_settings = settings.model_copy(update={"tws_port": port_check.port})
        await tws_checks(
            tws_settings, test_symbol, today or date.today(), timeout, what_if_timeout, add
        )
    add(check_claude_desktop(settings, path=claude_path))
    add(check_order_ticket(settings, path=claude_path))
    return results
