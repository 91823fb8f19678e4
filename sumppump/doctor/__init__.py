"""``sumppump doctor``: check the TWS and Claude Desktop set-up, one line of fix per problem.

Checks, in order (each PASS, WARN, FAIL or SKIP; :func:`run_checks`):

1. **TWS port**: a plain TCP connect to the configured host and port; when it is closed, the
   standard ports 7497, 7496, 4002 and 4001 are tried, and the check (still a FAIL) names the
   one that answered and the setting to change (:mod:`~sumppump.doctor.ports`).
2. **API handshake**: the real connection path — the project's rate limiter and connection actor —
   until TWS reports the accounts; error 326 (client id in use) is a FAIL.
3. **Account**: the account ids; LIVE (anything but ``DU…``/``DF…``) is a loud WARN.
4. **Market data**: a quote for a test stock (AAPL): live PASS, delayed WARN, none FAIL.
5. **Options permission**: a what-if (never transmitted) of one near-the-money call at a
   one-nickel limit; a permission rejection or TWS's Read-Only API mode is a FAIL
   (:mod:`~sumppump.doctor.options`).
6. **Claude Desktop**: its config exists and its ``sumppump`` entry starts this install
   (:mod:`~sumppump.doctor.claude`).
7. **Order ticket**: whether the configured client is known to render MCP Apps (Claude Desktop
   does), so the order ticket shows, and whether the approval mode works with that client
   (``app`` needs the ticket; ``elicit`` is refused by Claude Desktop, which cannot elicit).

When no port answers or the handshake fails, the checks that need TWS are SKIP; when only a
standard port other than the configured one answers, they run against it. The exit code of
:func:`main` is 1 when any check FAILs, 0 otherwise. Only the connection actor talks to TWS
(ib_async is not imported here; :mod:`~sumppump.doctor.tws`).

``sumppump doctor --orders`` (:mod:`~sumppump.doctor.orders_command`) is a separate check: it
previews with what-if every order shape SumpPump sends and prints IB's answer to each
(:mod:`~sumppump.doctor.orders`); the answers are kept for the trading day
(:mod:`sumppump.trading.ib_shapes`) so previews can warn up front.

One concept per module: :mod:`~sumppump.doctor.results` (what a check produces),
:mod:`~sumppump.doctor.checks` (the order), one module per group of checks, and
:mod:`~sumppump.doctor.command` (the printed report). A new check is a module plus one call in
:func:`run_checks`.
"""

from __future__ import annotations

from sumppump.doctor.checks import run_checks
from sumppump.doctor.claude import CLIENTS_RENDERING_APPS, check_claude_desktop, check_order_ticket
from sumppump.doctor.command import environment_report, main
from sumppump.doctor.options import WHAT_IF_LIMIT, WHAT_IF_TIMEOUT
from sumppump.doctor.ports import STANDARD_PORTS
from sumppump.doctor.results import (
    CHECK_NAMES,
    FIX_HANDSHAKE,
    FIX_INSTALL_CLAUDE,
    FIX_OPTIONS_LEVEL,
    FIX_READ_ONLY,
    FIX_START_TWS,
    CheckResult,
    Status,
    exit_code,
)
from sumppump.doctor.tws import DOCTOR_RECONNECT

__all__ = [
    "CHECK_NAMES",
    "CLIENTS_RENDERING_APPS",
    "DOCTOR_RECONNECT",
    "FIX_HANDSHAKE",
    "FIX_INSTALL_CLAUDE",
    "FIX_OPTIONS_LEVEL",
    "FIX_READ_ONLY",
    "FIX_START_TWS",
    "STANDARD_PORTS",
    "WHAT_IF_LIMIT",
    "WHAT_IF_TIMEOUT",
    "CheckResult",
    "Status",
    "check_claude_desktop",
    "check_order_ticket",
    "environment_report",
    "exit_code",
    "main",
    "run_checks",
]
