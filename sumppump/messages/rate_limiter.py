"""Protocol of the rate limiter: IB's message rate, market-data lines and historical pacing."""

from __future__ import annotations

from typing import Literal

from sumppump.messages.base import Command, Reply

__all__ = [
    "AcquireMessages",
    "GetPacingStats",
    "HistoricalPermit",
    "LeaseLines",
    "LinesLeased",
    "LinesUnavailable",
    "MessagesGranted",
    "PacingDelayed",
    "PacingLimit",
    "PacingStats",
    "PermitGranted",
    "RateLimiterReply",
    "RateLimiterRequest",
    "ReleaseHolder",
    "ReleaseLines",
    "Released",
]


class AcquireMessages(Command, frozen=True, kw_only=True):
    """Reserve ``count`` outgoing API messages. The reply says how long to wait before sending,
    so the limiter never blocks its own mailbox; reservations are served first come, first
    served. A reservation that could not be honoured before ``max_wait`` is refused."""

    count: int = 1
    max_wait: float = 10.0


class MessagesGranted(Reply, frozen=True, kw_only=True):
    wait: float  # seconds to wait before sending (0 = now)


PacingLimit = Literal[
    "messages", "historical_identical", "historical_contract", "historical_window", "lines"
]


class PacingDelayed(Reply, frozen=True, kw_only=True):
    """Not now: IB would refuse or disconnect. Try again in ``retry_after`` seconds."""

    reason: str
    retry_after: float
    limit: PacingLimit


class LeaseLines(Command, frozen=True, kw_only=True):
    """Lease ``count`` market-data lines for ``holder`` (released by :class:`ReleaseLines`, by
    :class:`ReleaseHolder`, or after ``ttl`` seconds so that a crashed holder cannot leak
    them). ``partial`` accepts fewer lines than asked for when that is all there is."""

    holder: str
    count: int
    ttl: float = 60.0
    partial: bool = False


class LinesLeased(Reply, frozen=True, kw_only=True):
    lease_id: int
    count: int
    expires_in: float


class LinesUnavailable(Reply, frozen=True, kw_only=True):
    requested: int
    available: int
    budget: int


class ReleaseLines(Command, frozen=True, kw_only=True):
    lease_id: int


class ReleaseHolder(Command, frozen=True, kw_only=True):
    """Release every lease of ``holder`` (a restarted actor does this first)."""

    holder: str


class Released(Reply, frozen=True, kw_only=True):
    lines: int


class HistoricalPermit(Command, frozen=True, kw_only=True):
    """Ask to send one historical-data request. ``request_key`` identifies identical requests
    (contract, bar size, duration, what to show, end); ``contract_key`` the contract.

    The limiter queues the request at the earliest time IB's pacing allows, when that is within
    ``max_wait`` seconds (:class:`PermitGranted` says how long to wait); otherwise it answers
    :class:`PacingDelayed` with the time after which it would pass. ``max_wait`` 0: now or not.
    """

    request_key: str
    contract_key: str
    max_wait: float = 0.0


class PermitGranted(Reply, frozen=True, kw_only=True):
    """The historical request may be sent after ``wait`` seconds; it has been counted at that
    time."""

    wait: float = 0.0


class GetPacingStats(Command, frozen=True, kw_only=True):
    pass


class PacingStats(Reply, frozen=True, kw_only=True):
    message_rate_limit: float
    messages_last_second: int
    messages_total: int
    lines_budget: int
    lines_in_use: int
    historical_last_10_min: int
    historical_window_limit: int
    delayed_total: int


RateLimiterRequest = (
    AcquireMessages | LeaseLines | ReleaseLines | ReleaseHolder | HistoricalPermit | GetPacingStats
)
RateLimiterReply = (
    MessagesGranted
    | PacingDelayed
    | LinesLeased
    | LinesUnavailable
    | Released
    | PermitGranted
    | PacingStats
)
