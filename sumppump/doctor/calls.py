"""Calls from the doctor to the connection actor: a reply or why there is none, and how to word
an unexpected reply as a check result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sumppump.actors.runtime import ActorDown, CallTimeout, Ref
from sumppump.doctor.results import OPTIONS, CheckResult
from sumppump.messages.base import Reply
from sumppump.messages.common import NoMarketData, NoSuchContract, NotConnected, TwsError
from sumppump.messages.rate_limiter import PacingDelayed

__all__ = ["NoReply", "call_actor", "could_not_run", "describe", "unexpected"]


@dataclass(frozen=True, slots=True)
class NoReply:
    """Why a call got no reply: the deadline passed (``timed_out``) or the actor stopped."""

    reason: str
    timed_out: bool = False


async def call_actor(ref: Ref, msg: Any, *, timeout: float) -> Reply | NoReply:
    """The reply, or why there is none (deadline passed, actor down)."""
    try:
        return await ref.call(msg, timeout=timeout)
    except CallTimeout:
        return NoReply(f"no answer within {timeout:.0f}s", timed_out=True)
    except ActorDown as exc:
        return NoReply(f"the connection actor stopped ({exc.__cause__ or exc})")


def describe(reply: Reply | NoReply) -> str:
    match reply:
        case NoReply():
            return reply.reason
        case NotConnected():
            return f"not connected ({reply.reason})"
        case NoSuchContract():
            return f"TWS knows no {reply.symbol} {reply.detail}".rstrip()
        case TwsError():
            return f"TWS error {reply.code}: {reply.message}"
        case NoMarketData():
            return f"no market data (TWS error {reply.code}: {reply.message})"
        case PacingDelayed():
            return f"paced ({reply.reason}); retry in {reply.retry_after:.0f}s"
        case _:
            return f"unexpected reply {type(reply).__name__}"


def unexpected(name: str, doing: str, reply: Reply | NoReply) -> CheckResult:
    if isinstance(reply, NotConnected):
        fix = "Check that TWS is logged in and connected to IBKR (its status bar), then retry"
    elif isinstance(reply, NoSuchContract):
        fix = "Check TWS's data farm connections (status bar); the test symbol should exist"
    else:
        fix = "Retry; if it persists, run `sumppump -v doctor` and read TWS's API log"
    return CheckResult(name, "FAIL", f"{doing}: {describe(reply)}", fix)


def could_not_run(doing: str, reply: Reply | NoReply) -> CheckResult:
    return CheckResult(OPTIONS, "WARN", f"could not run ({doing}: {describe(reply)})")
