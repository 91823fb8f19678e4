"""The circuit breaker (pure): consecutive IB rejections open it; only a person closes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["BREAKER_THRESHOLD", "CircuitBreaker"]

BREAKER_THRESHOLD: Final = 3


@dataclass(slots=True)
class CircuitBreaker:
    """Counts consecutive IB rejections. Create one per process and hand it to every
    incarnation's factory, so an actor restart does not close it."""

    threshold: int = BREAKER_THRESHOLD
    consecutive: int = 0
    open: bool = False
    last_rejection: str = ""

    def rejected(self, reason: str) -> None:
        self.consecutive += 1
        self.last_rejection = reason
        if self.consecutive >= self.threshold:
            self.open = True

    def accepted(self) -> None:
        self.consecutive = 0

    def reset(self) -> None:
        self.consecutive = 0
        self.open = False
        self.last_rejection = ""
