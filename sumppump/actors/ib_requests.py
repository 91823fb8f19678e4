"""Serialising ib_async's fixed-key requests.

ib_async keys a few requests by a fixed name instead of a request id ("openOrders",
"completedOrders", "positions", "currentTime", "newsProviders", "accountValues"): a second such
request while the first is pending replaces the first's future, which then never completes and
its caller waits out its whole deadline. The connection actor handles requests concurrently, so
every use of these goes through one lock per key.
"""

from __future__ import annotations

from collections import defaultdict

import anyio

__all__ = ["FixedKeyRequests"]


class FixedKeyRequests:
    """One lock per ib_async fixed request key, for one ``IB`` instance."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, anyio.Lock] = defaultdict(anyio.Lock)

    def __call__(self, key: str) -> anyio.Lock:
        """The lock to hold while a ``key`` request is pending: ``async with serial(key):``."""
        return self._locks[key]
