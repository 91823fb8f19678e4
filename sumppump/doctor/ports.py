"""The first doctor check: does anything accept connections at the configured TWS address?

When nothing does, the four standard ports (:data:`STANDARD_PORTS`) are tried on the same host,
because a TWS or IB Gateway on another of them is the most common newcomer mismatch; the check
then names the one that answered and the setting that points SumpPump at it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

import anyio

from sumppump.doctor.results import FIX_START_TWS, PORT, CheckResult

__all__ = ["PORT_TIMEOUT", "STANDARD_PORTS", "PortCheck", "check_port", "probe"]

#: IB's defaults, in the order the doctor suggests them (paper before live).
STANDARD_PORTS: Final[dict[int, str]] = {
    7497: "TWS paper",
    7496: "TWS live",
    4002: "IB Gateway paper",
    4001: "IB Gateway live",
}
#: A local port answers or refuses at once; a firewall that drops packets would not.
PORT_TIMEOUT: Final = 3.0


@dataclass(frozen=True, slots=True)
class PortCheck:
    """The port check's result and the port the TWS checks should use (None: no port answered).

    ``port`` differs from the configured one when only a fallback port answered."""

    result: CheckResult
    port: int | None


async def probe(host: str, port: int, timeout: float = PORT_TIMEOUT) -> str | None:
    """None when ``host:port`` accepts a TCP connection within ``timeout`` seconds, else why not
    ("timed out", "Connection refused", …). Never raises OSError; cancellation propagates."""
    try:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(host, port)
        await stream.aclose()
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return _os_reason(exc)
    return None


def _os_reason(exc: OSError) -> str:
    # anyio reports "All connection attempts failed" and chains the socket's own error.
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    return os.strerror(cause.errno) if cause.errno else str(cause)


def _label(port: int) -> str:
    name = STANDARD_PORTS.get(port)
    return f"{port} ({name})" if name else str(port)


async def check_port(
    host: str, port: int, fallback_ports: tuple[int, ...] = tuple(STANDARD_PORTS)
) -> PortCheck:
    """Connect to ``host:port``; when that fails, try ``fallback_ports`` (all at once, each with
    :data:`PORT_TIMEOUT`) and pick the first in their order that answered.

    A closed configured port is a FAIL even when a fallback answered: the server would not
    connect until the setting changes. Never raises for network errors.
    """
    reason = await probe(host, port)
    if reason is None:
        return PortCheck(CheckResult(PORT, "PASS", f"{host}:{port} accepts connections"), port)
    others = [p for p in dict.fromkeys(fallback_ports) if p != port]
    answered: dict[int, bool] = {}

    async def try_port(candidate: int) -> None:
        answered[candidate] = await probe(host, candidate) is None

    async with anyio.create_task_group() as tg:
        for candidate in others:
            tg.start_soon(try_port, candidate)
    open_ports = [p for p in others if answered.get(p)]
    detail = f"nothing accepts connections at {host}:{port} ({reason})"
    if not open_ports:
        tried = ", ".join(str(p) for p in others)
        also = f"; nor at the other standard ports ({tried})" if others else ""
        return PortCheck(CheckResult(PORT, "FAIL", detail + also, FIX_START_TWS), None)
    found = open_ports[0]
    more = ""
    if len(open_ports) > 1:
        more = f" (also open: {', '.join(_label(p) for p in open_ports[1:])})"
    return PortCheck(
        CheckResult(
            PORT,
            "FAIL",
            f"{detail}, but {host}:{_label(found)} does{more}; the checks below use {found}",
            f"Set SUMPPUMP_TWS_PORT={found} (the bundle's \"TWS API port\" in Claude Desktop's "
            f'extension settings, or "env": {{"SUMPPUMP_TWS_PORT": "{found}"}} in its config), '
            f"or change TWS's socket port to {port} in API → Settings",
        ),
        found,
    )
