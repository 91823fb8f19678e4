"""The connection's side of the rate-limiter protocol (DESIGN.md §3): message grants, market-data
line leases and historical-data permits, each waited for within the caller's deadline.

One throttle only: a message leaves when the limiter's grant says so, chunk by chunk, and
ib_async's own throttle is set loose enough (:data:`IB_SAFETY_NET`) that it never queues what the
limiter paced. When the limiter is down (restarting), a local pace of :data:`FALLBACK_RATE`
messages per second stands in for it.

Every wait that would pass the caller's deadline ends at once in :class:`Paced`, which carries the
:class:`PacingDelayed` reply (with ``retry_after``) the connection answers instead of sending.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Final

import anyio

from sumppump.actors.runtime import ActorDown, CallTimeout, Ref, remaining_budget
from sumppump.messages.base import Reply
from sumppump.messages.rate_limiter import (
    AcquireMessages,
    HistoricalPermit,
    LeaseLines,
    LinesLeased,
    MessagesGranted,
    PacingDelayed,
    PacingLimit,
    PermitGranted,
    ReleaseLines,
)

__all__ = ["FALLBACK_RATE", "IB_SAFETY_NET", "MessageBudget", "Paced"]

log = logging.getLogger(__name__)

#: ib_async's own throttle, per rolling second. The limiter grants at most 45 messages in any
#: 1.1 s, so this never queues a paced message; it only catches one that escaped the limiter,
#: and stays under TWS's 50 (notes/tws-wire-protocol.md §3, "Client-side throttle").
IB_SAFETY_NET: Final = 48
#: Messages per second while the limiter is unavailable.
FALLBACK_RATE: Final = 40.0
#: Messages asked of the limiter per grant: small chunks leave smoothly as they are granted.
CHUNK: Final = 5
#: How often a caller waiting for market-data lines asks again.
LINES_POLL: Final = 0.05


class Paced(Exception):
    """The limiter refused or the wait would pass the deadline; nothing was sent."""

    def __init__(self, reply: PacingDelayed) -> None:
        super().__init__(reply.reason)
        self.reply = reply


class MessageBudget:
    """Reserve messages, lines and historical permits for one connection actor.

    ``rate_limiter`` None (tests of the state machine) means no pacing at all.
    """

    def __init__(self, rate_limiter: Ref | None) -> None:
        self._rate_limiter = rate_limiter
        self._fallback_next = 0.0

    async def __call__(self, count: int, *, max_wait: float | None = None) -> None:
        """Wait until ``count`` messages may be sent (all at the end of the wait).

        :raises Paced: the wait would outlast ``max_wait`` (default: the caller's deadline).
        Cancellation leaves the reservation counted, which errs on the safe side.
        """
        async for _ in self.chunks(count, max_wait=max_wait):
            pass

    async def chunks(self, count: int, *, max_wait: float | None = None) -> AsyncIterator[int]:
        """Yield chunk sizes summing to ``count``, each when it may be sent: the caller sends
        that many messages at once, then asks for the next chunk.

        :raises Paced: a grant would come after ``max_wait`` (default: the caller's deadline);
            the chunks already yielded were sent.
        """
        remaining = count
        while remaining > 0:
            chunk = min(remaining, CHUNK)
            budget = remaining_budget(30.0) if max_wait is None else max_wait
            await self._acquire(chunk, budget)
            yield chunk
            remaining -= chunk

    async def _acquire(self, count: int, budget: float) -> None:
        if self._rate_limiter is None:
            return
        try:
            reply = await self._rate_limiter.call(
                AcquireMessages(count=count, max_wait=max(0.0, budget)),
                timeout=max(0.1, min(2.0, budget + 0.1)),
            )
        except (ActorDown, CallTimeout):
            await self._fallback(count, budget)
            return
        await _wait_for_grant(reply, "messages")

    async def _fallback(self, count: int, budget: float) -> None:
        """A local pace while the limiter restarts, shared by every request of this actor."""
        now = anyio.current_time()
        at = max(now, self._fallback_next)
        if at - now > budget:
            raise Paced(
                PacingDelayed(
                    reason="the rate limiter is restarting", retry_after=at - now, limit="messages"
                )
            )
        self._fallback_next = at + count / FALLBACK_RATE
        log.warning("rate limiter unavailable; pacing locally at %.0f/s", FALLBACK_RATE)
        await anyio.sleep(at - now)

    # ------------------------------------------------------------------ market-data lines

    async def lease_lines(self, wanted: int, *, cap: int, budget: float) -> tuple[int | None, int]:
        """Lease up to ``min(wanted, cap)`` lines, waiting for a free one within ``budget``.

        :returns: the lease id (None without a limiter) and the number of lines leased.
        :raises Paced: no line came free within ``budget``.
        """
        wanted = max(1, min(wanted, cap))
        if self._rate_limiter is None:
            return None, wanted
        deadline = anyio.current_time() + budget
        while True:
            try:
                reply = await self._rate_limiter.call(
                    LeaseLines(holder="connection", count=wanted, partial=True, ttl=60.0),
                    timeout=2.0,
                )
            except (ActorDown, CallTimeout):
                return None, min(wanted, 20)  # a small batch while the limiter restarts
            if isinstance(reply, LinesLeased):
                return reply.lease_id, reply.count
            if anyio.current_time() + LINES_POLL > deadline:
                raise Paced(
                    PacingDelayed(
                        reason="every market-data line of the budget is in use",
                        retry_after=2.0,
                        limit="lines",
                    )
                )
            await anyio.sleep(LINES_POLL)

    async def release_lines(self, lease_id: int | None) -> None:
        """Return a lease; shielded, so a cancelled request still gives its lines back."""
        if lease_id is None or self._rate_limiter is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self._rate_limiter.call(ReleaseLines(lease_id=lease_id), timeout=1.0)
            except (ActorDown, CallTimeout):
                log.debug("could not release lease %d; it expires by itself", lease_id)

    # ------------------------------------------------------------------ historical pacing

    async def historical_permit(self, request_key: str, contract_key: str, budget: float) -> None:
        """Wait for IB's historical pacing to allow one request (queued by the limiter, which
        keeps the three rules of DESIGN.md §3).

        :raises Paced: the queue's wait would pass ``budget``; ``retry_after`` says when.
        """
        if self._rate_limiter is None:
            return
        try:
            reply = await self._rate_limiter.call(
                HistoricalPermit(
                    request_key=request_key, contract_key=contract_key, max_wait=max(0.0, budget)
                ),
                timeout=2.0,
            )
        except (ActorDown, CallTimeout) as exc:
            raise Paced(
                PacingDelayed(
                    reason="the rate limiter is restarting",
                    retry_after=1.0,
                    limit="historical_window",
                )
            ) from exc
        await _wait_for_grant(reply, "historical_window")


async def _wait_for_grant(reply: Reply, limit: PacingLimit) -> None:
    """Sleep until a grant's time; a refusal (or anything unexpected) raises :class:`Paced`."""
    match reply:
        case MessagesGranted(wait=wait) | PermitGranted(wait=wait):
            if wait > 0:
                await anyio.sleep(wait)
        case PacingDelayed():
            raise Paced(reply)
        case _:
            raise Paced(PacingDelayed(reason=f"unexpected {reply!r}", retry_after=1.0, limit=limit))
