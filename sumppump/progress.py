"""Progress of long reads, from the actor doing the work to the MCP call waiting for it.

Messages cross task boundaries, so a callback cannot ride on them; a request carries a
``progress`` number instead, which the MCP layer registered here with a callback (it forwards to
``ctx.report_progress``). ``0`` means nobody listens. Reports are fire-and-forget and never
block the sender: a slow or gone listener loses reports, never the request.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ProgressCallback", "listening", "report"]

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
