"""TWS's API limits, enforced like IB does and counted in :class:`SimStats`.

* Message rate: more than ``max_rate`` (50) client messages per second on a connection (token
  bucket, see :class:`MessageRateLimiter`) -> error 100 and the socket is closed. Measured on the
  wall clock (ib_async throttles on it).
* Market-data lines: more than ``max_lines`` (100) concurrent streaming subscriptions -> error 101.
* Historical pacing, on the simulated clock: an identical request within 15 s; more than
  ``per_contract`` (6) requests for the same contract, exchange and whatToShow within 2 s; more than
  ``per_window`` (60) requests in any 10 minutes (BID_ASK counts twice) -> error 162. Requests that
  violate are refused and not counted in the windows.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["HistoricalPacer", "LineLimiter", "MessageRateLimiter", "SimStats"]


@dataclass(slots=True)
class SimStats:
    """Counters a test can assert on, e.g. ``assert sim.stats.total_violations == 0``."""

    messages_rate_violations: int = 0
    lines_violations: int = 0
    pacing_violations: int = 0
    open_lines: int = 0
    max_open_lines: int = 0
    connections_accepted: int = 0
    connections_rejected: int = 0  # 326 duplicate client id
    forced_disconnects: int = 0
    unknown_messages: int = 0
    protocol_errors: int = 0
    internal_errors: int = 0  # exceptions inside the simulator while answering a request
    requests_by_type: Counter[str] = field(default_factory=Counter)
    errors_sent: Counter[int] = field(default_factory=Counter)
    violation_log: list[str] = field(default_factory=list)

    @property
    def violations(self) -> dict[str, int]:
        return {
            "messages_rate": self.messages_rate_violations,
            "lines": self.lines_violations,
            "pacing": self.pacing_violations,
        }

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    def assert_clean(self) -> None:
        """Raise AssertionError if any limit was violated or a message was not understood."""
        problems = dict(self.violations)
        problems["unknown_messages"] = self.unknown_messages
        problems["protocol_errors"] = self.protocol_errors
        problems["internal_errors"] = self.internal_errors
        bad = {k: v for k, v in problems.items() if v}
        if bad:
            raise AssertionError(f"simulated TWS saw {bad}: {self.violation_log[-5:]}")


class MessageRateLimiter:
    """Client messages per second on one connection, as a token bucket of ``max_rate`` tokens
    refilled at ``max_rate`` per second.

    A bucket rather than a strict sliding window because the simulator sees receive times, not the
    client's send times: ib_async's own throttle (45 per rolling second by send time) can look like
    a burst of more than 50 within one second on arrival when the event loop delayed reading the
    earlier messages; the bucket tolerates that skew (up to ~0.2 s) but not a sustained excess.
    """

    def __init__(self, max_rate: int = 50) -> None:
        self.max_rate = max_rate
        self._tokens = float(max_rate)
        self._last: float | None = None

    def record(self, now: float) -> bool:
        """Count one message at ``now``; True if it exceeds the allowed rate."""
        if self._last is not None:
            self._tokens = min(self.max_rate, self._tokens + (now - self._last) * self.max_rate)
        self._last = now
        if self._tokens < 1.0:
            return True
        self._tokens -= 1.0
        return False


class LineLimiter:
    """Concurrent streaming market-data subscriptions, across all connections."""

    def __init__(self, stats: SimStats, max_lines: int = 100) -> None:
        self.max_lines = max_lines
        self.stats = stats
        self._held: set[tuple[int, int]] = set()

    def acquire(self, key: tuple[int, int]) -> bool:
        """Take a line for (connection id, reqId); False (and counted) when none is free."""
        if key in self._held:
            return True
        if len(self._held) >= self.max_lines:
            self.stats.lines_violations += 1
            self.stats.violation_log.append(f"lines: {key} beyond {self.max_lines}")
            return False
        self._held.add(key)
        self._update()
        return True

    def release(self, key: tuple[int, int]) -> None:
        self._held.discard(key)
        self._update()

    def release_connection(self, conn_id: int) -> None:
        self._held = {k for k in self._held if k[0] != conn_id}
        self._update()

    def _update(self) -> None:
        self.stats.open_lines = len(self._held)
        self.stats.max_open_lines = max(self.stats.max_open_lines, len(self._held))


class HistoricalPacer:
    """IB's three historical-data pacing rules, on timestamps from the simulated clock."""

    def __init__(
        self,
        stats: SimStats,
        *,
        identical_window: float = 15.0,
        per_contract: int = 6,
        per_contract_window: float = 2.0,
        per_window: int = 60,
        window: float = 600.0,
    ) -> None:
        self.stats = stats
        self.identical_window = identical_window
        self.per_contract = per_contract
        self.per_contract_window = per_contract_window
        self.per_window = per_window
        self.window = window
        self._log: deque[tuple[float, Hashable, Hashable, int]] = deque()

    def check(
        self, now: float, identical_key: Hashable, contract_key: Hashable, weight: int = 1
    ) -> str | None:
        """Admit a request (and record it) or return why it violates pacing (and count that)."""
        log = self._log
        while log and now - log[0][0] >= self.window:
            log.popleft()
        reason = None
        if any(k == identical_key and now - t < self.identical_window for t, k, _c, _w in log):
            reason = "identical request within 15 s"
        elif (
            sum(
                w for t, _k, c, w in log if c == contract_key and now - t < self.per_contract_window
            )
            + weight
            > self.per_contract
        ):
            reason = f"more than {self.per_contract} requests for one contract within 2 s"
        elif sum(w for *_rest, w in log) + weight > self.per_window:
            reason = f"more than {self.per_window} requests within 10 minutes"
        if reason:
            self.stats.pacing_violations += 1
            self.stats.violation_log.append(f"pacing: {reason}: {identical_key}")
            return reason
        log.append((now, identical_key, contract_key, weight))
        return None
