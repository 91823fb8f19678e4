"""The rate limiter: one place that keeps every request within TWS's limits (DESIGN.md §3).

* **Messages**: at most ``message_rate`` (default 45, IB disconnects above 50) outgoing API
  messages in any one-second window. Callers reserve a send time and wait for it themselves, so
  the limiter never blocks its mailbox; reservations are first come, first served.
* **Market-data lines**: leases out of a budget (default 90 of IB's 100). A lease expires after
  its TTL so that a holder that crashed cannot leak lines for ever.
* **Historical pacing**: no identical request within 15 s, at most 5 per contract in any 2 s
  (IB's violation is "six or more"), at most 60 in any 10 minutes. A request is queued at the
  earliest time the rules allow when the caller can wait that long (``max_wait``); otherwise it is
  answered :class:`PacingDelayed` with the time after which it would pass.

The limiter is pure (no I/O) and keeps its state in memory; after a restart its books start
empty, which errs on the side of the next minute's traffic, not of safety: chain fetches hold
lines for seconds only.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

import anyio

from sumppump.actors.runtime import Actor
from sumppump.messages.base import Message, Reply
from sumppump.messages.common import Ping, Pong
from sumppump.messages.rate_limiter import (
    AcquireMessages,
    GetPacingStats,
    HistoricalPermit,
    LeaseLines,
    LinesLeased,
    LinesUnavailable,
    MessagesGranted,
    PacingDelayed,
    PacingLimit,
    PacingStats,
    PermitGranted,
    RateLimiterRequest,
    Released,
    ReleaseHolder,
    ReleaseLines,
)

__all__ = ["HISTORICAL_LIMITS", "HistoricalLimits", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class HistoricalLimits:
    identical_window: float = 15.0
    per_contract: int = 5
    per_contract_window: float = 2.0
    total: int = 60
    total_window: float = 600.0
    #: Added to every window: a request reaches TWS a little after its granted time (it still
    #: waits for a message grant), and the grants it follows may have left late.
    margin: float = 0.3


HISTORICAL_LIMITS = HistoricalLimits()


@dataclass(slots=True)
class _Lease:
    holder: str
    count: int
    expires_at: float


class RateLimiter(Actor):
    """See the module docstring. ``clock`` is injectable for tests."""

    def __init__(
        self,
        *,
        message_rate: float = 45.0,
        lines_budget: int = 90,
        historical: HistoricalLimits = HISTORICAL_LIMITS,
        clock: Callable[[], float] = anyio.current_time,
        window: float = 1.1,
    ) -> None:
        self._rate = int(message_rate)
        # Slightly longer than IB's one second: a message leaves a little after its granted
        # time, and a burst granted at the edge of a window must not meet the next burst.
        self._window = window
        self._lines_budget = lines_budget
        self._historical = historical
        self._clock = clock
        self._sends: deque[float] = deque()  # reserved send times, ascending
        self._messages_total = 0
        self._delayed_total = 0
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(1)
        self._history: deque[tuple[float, str, str]] = deque()

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, RateLimiterRequest):
            return self._dispatch(msg)
        if isinstance(msg, Ping):
            return Pong(actor="rate_limiter")
        return None

    def _dispatch(self, msg: RateLimiterRequest) -> Reply:
        match msg:
            case AcquireMessages():
                return self._acquire(msg)
            case LeaseLines():
                return self._lease(msg)
            case ReleaseLines(lease_id=lease_id):
                lease = self._leases.pop(lease_id, None)
                return Released(lines=lease.count if lease else 0)
            case ReleaseHolder(holder=holder):
                mine = [i for i, lease in self._leases.items() if lease.holder == holder]
                return Released(lines=sum(self._leases.pop(i).count for i in mine))
            case HistoricalPermit():
                return self._historical_permit(msg)
            case GetPacingStats():
                return self._stats()
            case _:
                assert_never(msg)

    # -------------------------------------------------------------- messages

    def _acquire(self, msg: AcquireMessages) -> Reply:
        now = self._clock()
        while self._sends and self._sends[0] <= now - self._window:
            self._sends.popleft()
        count = max(1, msg.count)
        if count > self._rate:
            return PacingDelayed(
                reason=f"{count} messages at once exceed the {self._rate}/s limit; split them",
                retry_after=0.0,
                limit="messages",
            )
        # The caller sends all `count` messages at the granted time. Grants are first come,
        # first served (never before the last one), and the window ending at the grant may
        # hold at most `rate - count` earlier messages.
        at = max(now, self._sends[-1]) if self._sends else now
        allowed_before = self._rate - count
        if len(self._sends) > allowed_before:
            at = max(at, self._sends[-(allowed_before + 1)] + self._window)
        wait = at - now
        if wait > msg.max_wait:
            self._delayed_total += 1
            return PacingDelayed(
                reason=f"{len(self._sends)} messages already reserved in the last second",
                retry_after=wait,
                limit="messages",
            )
        self._sends.extend([at] * count)
        self._messages_total += count
        return MessagesGranted(wait=wait)

    # -------------------------------------------------------------- lines

    def _expire_leases(self, now: float) -> None:
        for lease_id in [i for i, lease in self._leases.items() if lease.expires_at <= now]:
            del self._leases[lease_id]

    def _lines_in_use(self) -> int:
        return sum(lease.count for lease in self._leases.values())

    def _lease(self, msg: LeaseLines) -> Reply:
        now = self._clock()
        self._expire_leases(now)
        available = self._lines_budget - self._lines_in_use()
        count = min(msg.count, available) if msg.partial else msg.count
        if count <= 0 or count > available:
            self._delayed_total += 1
            return LinesUnavailable(
                requested=msg.count, available=max(0, available), budget=self._lines_budget
            )
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = _Lease(msg.holder, count, now + msg.ttl)
        return LinesLeased(lease_id=lease_id, count=count, expires_in=msg.ttl)

    # -------------------------------------------------------------- historical

    def _historical_permit(self, msg: HistoricalPermit) -> Reply:
        """Queue the request at the earliest time the three rules allow.

        Reservations for one contract are in time order (a later one never jumps an earlier
        one), so each rule needs only the reservations before the candidate time. The
        ten-minute window counts every reservation, future ones too, which errs on the safe side.
        """
        now = self._clock()
        limits = self._historical
        while self._history and self._history[0][0] <= now - limits.total_window:
            self._history.popleft()
        candidates: list[tuple[float, str, PacingLimit]] = [(now, "", "historical_window")]
        identical = [t for t, key, _ in self._history if key == msg.request_key]
        if identical:
            candidates.append(
                (
                    max(identical) + limits.identical_window + limits.margin,
                    "an identical request was sent less than 15 s ago",
                    "historical_identical",
                )
            )
        same_contract = sorted(t for t, _, c in self._history if c == msg.contract_key)
        if same_contract:
            candidates.append((same_contract[-1], "", "historical_contract"))
        if len(same_contract) >= limits.per_contract:
            candidates.append(
                (
                    same_contract[-limits.per_contract]
                    + limits.per_contract_window
                    + limits.margin,
                    f"{limits.per_contract} requests for this contract within 2 s",
                    "historical_contract",
                )
            )
        if len(self._history) >= limits.total:
            times = sorted(t for t, _, _ in self._history)
            candidates.append(
                (
                    times[-limits.total] + limits.total_window + limits.margin,
                    f"{len(self._history)} historical requests in the last 10 minutes",
                    "historical_window",
                )
            )
        at, reason, limit = max(candidates, key=lambda c: c[0])
        wait = at - now
        if wait > msg.max_wait:
            self._delayed_total += 1
            return PacingDelayed(
                reason=reason or "historical requests are queued", retry_after=wait, limit=limit
            )
        self._history.append((at, msg.request_key, msg.contract_key))
        return PermitGranted(wait=wait)

    # -------------------------------------------------------------- stats

    def _stats(self) -> PacingStats:
        now = self._clock()
        self._expire_leases(now)
        window = [t for t, _, _ in self._history if now - self._historical.total_window < t <= now]
        return PacingStats(
            message_rate_limit=float(self._rate),
            messages_last_second=sum(1 for t in self._sends if now - 1.0 < t <= now),
            messages_total=self._messages_total,
            lines_budget=self._lines_budget,
            lines_in_use=self._lines_in_use(),
            historical_last_10_min=len(window),
            historical_window_limit=self._historical.total,
            delayed_total=self._delayed_total,
        )
