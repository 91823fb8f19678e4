"""Fixtures for the simulated-TWS tests: asyncio only (ib_async needs it), a guard that fails a
test on any ib_async decode error (pitfall P1), a running simulator and a connected client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from ib_async import IB

from sumppump.tws_sim import SimTWS
from sumppump.tws_sim.testing import DecodeErrorGuard, strict_ib_async_decoding


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def decode_guard() -> Iterator[DecodeErrorGuard]:
    """Every test fails if ib_async could not decode something the simulator sent (P1)."""
    with strict_ib_async_decoding() as guard:
        yield guard


@pytest.fixture
async def sim() -> AsyncIterator[SimTWS]:
    async with SimTWS(seed=0) as simulator:
        yield simulator
    # Strict mode: every client message was understood and fully walked.
    assert simulator.stats.unknown_messages == 0, simulator.stats.requests_by_type
    assert simulator.stats.protocol_errors == 0
    assert simulator.stats.internal_errors == 0


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
