"""What every doctor check produces: a :class:`CheckResult` with a status and one line of fix,
the check names in report order, and the fixes that several checks share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ACCOUNT",
    "CHECK_NAMES",
    "CLAUDE",
    "FIX_HANDSHAKE",
    "FIX_INSTALL_CLAUDE",
    "FIX_OPTIONS_LEVEL",
    "FIX_READ_ONLY",
    "FIX_START_TWS",
    "HANDSHAKE",
    "MARKET_DATA",
    "OPTIONS",
    "PORT",
    "TICKET",
    "CheckResult",
    "Report",
    "Status",
    "exit_code",
]

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]

PORT, HANDSHAKE, ACCOUNT, MARKET_DATA, OPTIONS, CLAUDE, TICKET = (
    "TWS port",
    "API handshake",
    "Account",
    "Market data",
    "Options permission",
    "Claude Desktop",
    "Order ticket",
)
CHECK_NAMES: Final = (PORT, HANDSHAKE, ACCOUNT, MARKET_DATA, OPTIONS, CLAUDE, TICKET)

FIX_START_TWS: Final = (
    "Start TWS or IB Gateway; API → Settings → Enable ActiveX and Socket Clients; port 7497 "
    "(TWS paper) / 7496 (TWS live) / 4002 (Gateway paper) / 4001 (Gateway live)"
)
FIX_HANDSHAKE: Final = (
    "Log TWS in; accept its 'incoming API connection' prompt or add 127.0.0.1 to API → Settings "
    "→ Trusted IPs; check that this port belongs to TWS or IB Gateway"
)
FIX_READ_ONLY: Final = "Untick Read-Only API in TWS: API → Settings → Read-Only API"
FIX_OPTIONS_LEVEL: Final = (
    "Ask IBKR for options trading permission (Level 2): Client Portal → Settings → "
    "Trading Permissions → Options"
)
FIX_INSTALL_CLAUDE: Final = "Run: sumppump install-claude (then restart Claude Desktop)"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome; ``fix`` is one line telling the person what to do (empty on PASS)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


Report = Callable[[CheckResult], None]


def exit_code(results: Sequence[CheckResult]) -> int:
    """1 if any check failed, else 0."""
    return 1 if any(r.status == "FAIL" for r in results) else 0
