"""Identical requests in flight share one: the first caller does the work, the others wait for
its outcome (notes/architecture.md: concurrent actors keep state between awaits only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

__all__ = ["InFlight"]

V = TypeVar("V")


@dataclass(slots=True)
class _Pending(Generic[V]):
    done: anyio.Event = field(default_factory=anyio.Event)
    value: V | None = None
    ok: bool = False
    error: Exception | None = None


class InFlight(Generic[V]):
    """Share the work of identical requests (same ``key``) while one is in flight.

    The outcome is shared: a value, or the exception the work raised. When the caller doing the
    work is cancelled (its deadline), a waiting caller does the work itself, under its own
    deadline; nothing is cached once the work ended.
    """

    def __init__(self) -> None:
        self._pending: dict[Hashable, _Pending[V]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, key: Hashable, work: Callable[[], Awaitable[V]]) -> V:
        """The outcome of ``work()``, or of the identical work already in flight.

        :raises Exception: whatever ``work`` raised, in every caller that shared it.
        """
        while True:
            pending = self._pending.get(key)
            if pending is None:
                return await self._lead(key, work)
            await pending.done.wait()
            if pending.ok:
                return pending.value  # type: ignore[return-value]
            if pending.error is not None:
                raise pending.error
            # The leader was cancelled: go round, and lead if nobody else has.

    async def _lead(self, key: Hashable, work: Callable[[], Awaitable[V]]) -> V:
        pending: _Pending[V] = _Pending()
        self._pending[key] = pending
        try:
            value = await work()
        except Exception as exc:
            pending.error = exc
            raise
        else:
            pending.value, pending.ok = value, True
            return value
        finally:
            del self._pending[key]
            pending.done.set()
