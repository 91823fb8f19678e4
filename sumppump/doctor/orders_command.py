"""``sumppump doctor --orders``: print the order-shape table and choose the exit code.

The check itself is :mod:`sumppump.doctor.orders` (what-if only, nothing placed). Exit codes:
0 when the check could run against TWS — a shape IB refused is a finding for the person, not a
failure of the command; 1 when TWS is unreachable or never completes the handshake; 2 when the
settings are invalid.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo

import anyio
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from sumppump.doctor.command import quiet_logs, tws_overrides
from sumppump.doctor.orders import DEFAULT_SYMBOL, OrdersReport, render_table, run_orders_check
from sumppump.doctor.ports import probe
from sumppump.doctor.tws import doctor_connection
from sumppump.settings import Settings

__all__ = ["REFUSALS_ARE_FINDINGS", "main_orders", "trading_day"]

NEW_YORK: Final = ZoneInfo("America/New_York")
#: Printed under the table when IB refused a shape, so the exit code 0 is not misread.
REFUSALS_ARE_FINDINGS: Final = (
    "A refused shape is a finding, not a failure: SumpPump's previews of that shape will say "
    "so up front today. Exit code 0 means the check ran."
)


def trading_day(now: dt.datetime | None = None) -> dt.date:
    """The US trading day the report belongs to (New York's calendar date)."""
    return (now or dt.datetime.now(NEW_YORK)).astimezone(NEW_YORK).date()


async def _check(settings: Settings, symbol: str) -> OrdersReport | str:
    unreachable = await probe(settings.tws_host, settings.tws_port)
    if unreachable is not None:
        return (
            f"TWS is unreachable at {settings.tws_host}:{settings.tws_port} ({unreachable}); "
            "start TWS or IB Gateway with the API enabled, or run 'sumppump doctor' for details"
        )
    async with doctor_connection(settings) as connection:
        return await run_orders_check(
            connection,
            today=trading_day(),
            symbol=symbol,
            connect_timeout=max(5.0, settings.connect_timeout_s * 2),
        )


def main_orders(host: str | None, port: int | None, symbol: str | None) -> int:
    """Run ``sumppump doctor --orders``; print the table (stdout); 0 when the check ran, 1 when
    TWS is unreachable, 2 on invalid settings. Never places an order."""
    console = Console(highlight=False, soft_wrap=True)
    try:
        settings = Settings(**tws_overrides(host, port))
    except ValidationError as exc:
        console.print(f"The SUMPPUMP_* settings are invalid: {escape(str(exc))}")
        return 2
    chosen = (symbol or DEFAULT_SYMBOL).upper()
    console.print(
        f"Previewing SumpPump's order shapes on {escape(chosen)} with TWS at "
        f"{settings.tws_host}:{settings.tws_port} (what-if only: nothing is placed)…"
    )
    with quiet_logs():
        outcome = anyio.run(_check, settings, chosen, backend="asyncio")
    if isinstance(outcome, str):
        console.print(f"[bold red]Could not check[/]: {escape(outcome)}")
        return 1
    console.print(escape(render_table(outcome)))
    refused = [r.shape for r in outcome.results if r.outcome == "refused"]
    if refused:
        console.print(REFUSALS_ARE_FINDINGS)
    console.print("Kept for today's previews (per account, per trading day).")
    return 0
