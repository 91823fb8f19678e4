"""Fixtures for the simulated-TWS tests: asyncio only (ib_async needs it), a guard that fails a
test on any ib_async decode error (pitfall P1), a running simulator and a connected client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from ib_async import IB

from sumppump.tws_sim import SimTWS

# Wrapper log lines that mean the simulator sent something ib_async could not match or parse.
_WRAPPER_SYMPTOMS = (
    "Unknown reqId",
    "No order found",
    "unhandled value",
    "malformed value",
    "Error handling fields",
    "Error for ",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class DecodeErrorGuard(logging.Handler):
    """Collects ERROR records that show a decoding problem in ib_async."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name == "ib_async.Decoder" or any(s in message for s in _WRAPPER_SYMPTOMS):
            self.problems.append(f"{record.name}: {message}")


@pytest.fixture(autouse=True)
def decode_guard() -> Iterator[DecodeErrorGuard]:
    guard = DecodeErrorGuard()
    logger = logging.getLogger("ib_async")
    logger.addHandler(guard)
    try:
        yield guard
    finally:
        logger.removeHandler(guard)
    assert not guard.problems, f"ib_async decode errors: {guard.problems}"


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=0) as simulator:
        yield simulator


class Connector:
    """Connects real ib_async clients to a simulator and disconnects them at teardown."""

    def __init__(self, sim: SimTWS) -> None:
        self.sim = sim
        self.clients: list[IB] = []

    async def __call__(self, client_id: int = 17, timeout: float = 2.0) -> IB:
        client = IB()
        client.RaiseRequestErrors = True
        self.clients.append(client)
        await client.connectAsync(
            "127.0.0.1", self.sim.port, clientId=client_id, timeout=timeout, raiseSyncErrors=True
        )
        return client

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()


@pytest.fixture
async def connect_ib(sim: SimTWS) -> AsyncIterator[Connector]:
    connector = Connector(sim)
    try:
        yield connector
    finally:
        connector.close()


@pytest.fixture
async def ib(connect_ib: Connector) -> IB:
    return await connect_ib()
