"""Harness for tests that drive the real ib_async client against the simulated TWS."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import anyio

from sumppump.actors.connection import ConnectionActor, ReconnectPolicy
from sumppump.actors.rate_limiter import RateLimiter
from sumppump.actors.runtime import Actor, Ref
from sumppump.messages.base import Message, Reply
from sumppump.messages.common import Ping, Pong
from sumppump.settings import Settings
from sumppump.supervisor import ChildSpec, Supervisor, Tree

FAST_RECONNECT = ReconnectPolicy(first=0.05, cap=0.2, jitter=0.0, client_id_clash_wait=0.3)


class DecoderErrors(logging.Handler):
    """Collects ERROR records of ib_async's Decoder: it swallows decode errors (pitfall P1)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@contextmanager
def no_decoder_errors() -> Iterator[DecoderErrors]:
    handler = DecoderErrors()
    logger = logging.getLogger("ib_async.Decoder")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    assert handler.records == [], f"ib_async could not decode: {handler.records}"


class EventRecorder(Actor):
    """Records every message told to it; answers Ping with the count."""

    def __init__(self, sink: list[Message]) -> None:
        self.sink = sink

    async def handle(self, msg: Message) -> Reply | None:
        if isinstance(msg, Ping):
            return Pong(actor="recorder", generation=len(self.sink))
        self.sink.append(msg)
        return None


@dataclass
class BrokerHarness:
    settings: Settings
    connection: Ref
    rate_limiter: Ref
    events: list[Message] = field(default_factory=list)
    supervisor: Supervisor | None = None

    async def wait_for(self, predicate: object, timeout: float = 5.0) -> Message:
        with anyio.fail_after(timeout):
            while True:
                for event in self.events:
                    if predicate(event):  # type: ignore[operator]
                        return event
                await anyio.sleep(0.01)


@asynccontextmanager
async def connection_harness(
    port: int,
    *,
    policy: ReconnectPolicy = FAST_RECONNECT,
    probe_interval: float = 10.0,
    probe_timeout: float = 2.0,
    **settings_overrides: object,
) -> AsyncIterator[BrokerHarness]:
    settings = Settings(tws_port=port, connect_timeout_s=2.0, **settings_overrides)  # type: ignore[arg-type]
    refs = {name: Ref(name) for name in ("rate_limiter", "recorder", "connection")}
    harness = BrokerHarness(settings, refs["connection"], refs["rate_limiter"])
    specs = [
        ChildSpec(
            "rate_limiter",
            lambda: RateLimiter(
                message_rate=settings.message_rate, lines_budget=settings.market_data_lines
            ),
            refs["rate_limiter"],
        ),
        ChildSpec(
            "recorder", lambda: EventRecorder(harness.events), refs["recorder"], mailbox_size=1024
        ),
        ChildSpec(
            "connection",
            lambda: ConnectionActor(
                settings,
                rate_limiter=refs["rate_limiter"],
                subscribers=[refs["recorder"]],
                policy=policy,
                probe_interval=probe_interval,
                probe_timeout=probe_timeout,
            ),
            refs["connection"],
            shutdown=2.0,
        ),
    ]
    harness.supervisor = Supervisor("test-broker", specs, intensity=3, period=60)
    async with anyio.create_task_group() as tg:
        await tg.start(harness.supervisor.run)
        yield harness
        tg.cancel_scope.cancel()


@asynccontextmanager
async def tree_with_sim(
    sim: object, cache_dir: object, **settings_overrides: object
) -> AsyncIterator[Tree]:
    """The production supervision tree connected to ``sim`` (a SimTWS)."""
    from pathlib import Path

    from sumppump.messages.connection import ConnectionState, GetConnectionState
    from sumppump.supervisor import build_tree

    settings = Settings(
        tws_port=sim.port,
        connect_timeout_s=2.0,  # type: ignore[attr-defined]
        **settings_overrides,
    )  # type: ignore[arg-type]
    tree = build_tree(
        settings,
        now=sim.clock.now,  # type: ignore[attr-defined]
        simulated=True,
        cache_dir=Path(str(cache_dir)),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(tree.root.run)
        with anyio.fail_after(10):
            while True:
                state = await tree.refs.connection.call(GetConnectionState(), timeout=2)
                if isinstance(state, ConnectionState) and state.state == "connected":
                    break
                await anyio.sleep(0.01)
        yield tree
        tg.cancel_scope.cancel()
