"""Progress of long reads, from the actor doing the work to the MCP call waiting for it.

Messages cross task boundaries, so a callback cannot ride on them; a request carries a
``progress`` number instead, which the MCP layer registered here with a callback (it forwards to
``ctx.report_progress``). ``0`` means nobody listens. Reports are fire-and-forget and never
block the sender: a slow or gone listener loses reports, never the request.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

import anyio

__all__ = ["ProgressCallback", "forwarded", "listening", "report"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]

_listeners: dict[int, ProgressCallback] = {}
_ids = itertools.count(1)


@contextmanager
def listening(callback: ProgressCallback) -> Iterator[int]:
    """Register ``callback(done, total, message)`` for the duration; yields the number to put
    in the request's ``progress`` field."""
    progress_id = next(_ids)
    _listeners[progress_id] = callback
    try:
        yield progress_id
    finally:
        _listeners.pop(progress_id, None)


def report(progress_id: int, done: int, total: int, message: str) -> None:
    """Tell the listener of ``progress_id``, if any. Never raises."""
    callback = _listeners.get(progress_id)
    if callback is None:
        return
    try:
        callback(done, total, message)
    except Exception:  # a listener's fault must not fail the read
        log.debug("progress listener %d failed", progress_id, exc_info=True)


@asynccontextmanager
async def forwarded(
    send: Callable[[float, float, str], Awaitable[None]], *, start: float = 0.0, end: float = 100.0
) -> AsyncIterator[int]:
    """Forward reports to an async ``send(progress, total, message)`` (an MCP tool's
    ``ctx.report_progress``) as a percentage between ``start`` and ``end``, so that the values
    only increase (the MCP rule); yields the request's ``progress`` number. Reports beyond a
    small backlog are dropped, never waited for; a failing ``send`` stops the forwarding only.
    """
    sender, receiver = anyio.create_memory_object_stream[tuple[float, str]](16)
    last = start

    def told(done: int, total: int, message: str) -> None:
        nonlocal last
        value = start + (end - start) * min(1.0, done / total) if total > 0 else start
        if value > last:
            last = value
            with suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                sender.send_nowait((value, message))

    async def forward() -> None:
        async with receiver:
            try:
                async for value, message in receiver:
                    await send(round(value, 1), 100.0, message)
            except Exception:  # the client went away: the read goes on without progress
                log.debug("progress forwarding stopped", exc_info=True)

    # The body's own exception is re-raised as itself after the group, not inside it: a task
    # group would wrap it in an ExceptionGroup that the caller's handlers do not expect.
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(forward)
        try:
            with listening(told) as progress_id:
                yield progress_id
        except Exception as exc:
            error = exc
        finally:
            sender.close()
    if error is not None:
        raise error
