"""Helpers for tests that drive ib_async against the simulator (no pytest dependency).

``ib_async`` swallows decoder exceptions and only logs them (pitfall P1), so a malformed message
shows up as a request that hangs until its timeout. :func:`strict_ib_async_decoding` turns any such
log record into a test failure::

    with strict_ib_async_decoding():
        ...  # drive IB against SimTWS
    # AssertionError here if ib_async could not decode or match something the simulator sent
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DecodeErrorGuard", "strict_ib_async_decoding"]

# Wrapper log lines that mean the simulator sent something ib_async could not match or parse.
WRAPPER_SYMPTOMS = (
    "Unknown reqId",
    "No order found",
    "unhandled value",
    "malformed value",
    "Error handling fields",
    "Error for ",
)


class DecodeErrorGuard(logging.Handler):
    """Collects ERROR records on the ``ib_async`` loggers that show a decoding problem."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name == "ib_async.Decoder" or any(s in message for s in WRAPPER_SYMPTOMS):
            self.problems.append(f"{record.name}: {message}")


@contextmanager
def strict_ib_async_decoding() -> Iterator[DecodeErrorGuard]:
    """Raise AssertionError on exit if ib_async logged a decode or matching error inside."""
    guard = DecodeErrorGuard()
    logger = logging.getLogger("ib_async")
    logger.addHandler(guard)
    try:
        yield guard
    finally:
        logger.removeHandler(guard)
    if guard.problems:
        raise AssertionError(f"ib_async decode errors: {guard.problems}")
