"""``sumppump sim``: run the simulated TWS standalone until Ctrl-C.

    sumppump sim [--host 127.0.0.1] [--port 7497] [--seed N] [--scenario NAME] [--paper]
                 [--frozen] [--list-scenarios]

The clock follows the wall clock from the scenario's start instant unless ``--frozen``. Prints
one line ``SIMULATED TWS listening on HOST:PORT ...`` to stdout when ready (``--port 0`` picks a
free port, which the line reports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys

from .clock import DEFAULT_START, SimClock
from .scenarios import SCENARIOS, scenario_names
from .server import SimTWS

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "sumppump sim") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the simulated TWS (wire protocol 178) on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7497, help="port (0 = any free; default 7497)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument(
        "--scenario", default="default", choices=scenario_names(), help="named scenario"
    )
    parser.add_argument("--paper", action="store_true", help="paper account DU1234567")
    parser.add_argument(
        "--start",
        default=DEFAULT_START.isoformat(),
        help="simulated start instant, ISO 8601 with offset (default %(default)s)",
    )
    parser.add_argument("--frozen", action="store_true", help="do not let the clock run")
    parser.add_argument("--list-scenarios", action="store_true", help="list scenarios and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging to stderr")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    start = dt.datetime.fromisoformat(args.start)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    clock = SimClock(start, running=not args.frozen)
    sim = SimTWS(
        args.host, args.port, seed=args.seed, clock=clock, paper=args.paper, scenario=args.scenario
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        accounts = ",".join(sim.broker.accounts)
        print(
            f"SIMULATED TWS listening on {sim.host}:{sim.port} seed={args.seed} "
            f"scenario={args.scenario} accounts={accounts} clock={sim.clock.now().isoformat()}",
            flush=True,
        )
        await stop.wait()
    print("SIMULATED TWS stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sumppump sim`` (the CLI delegates here). Returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.list_scenarios:
        for name in scenario_names():
            print(f"{name:16} {SCENARIOS[name][0]}")
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
