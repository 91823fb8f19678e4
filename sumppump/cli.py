"""The ``sumppump`` command: serve, demo, sim, run, doctor, install-claude.

Logs go to stderr; stdout belongs to the MCP stdio channel when serving.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Sequence
from typing import Final

from sumppump import __version__

__all__ = ["DEFAULT_HTTP_PORT", "DEFAULT_SIM_SEED", "main"]

#: ``sumppump sim``, ``serve --sim`` and ``demo`` show the same simulated world by default.
DEFAULT_SIM_SEED: Final = 7
DEFAULT_HTTP_PORT: Final = 8765

_DESCRIPTION: Final = (
    "SumpPump: trade Level-2 options in your own Interactive Brokers account by talking to "
    "Claude. A local MCP server between Claude Desktop and TWS / IB Gateway. Logs go to stderr."
)
_EPILOG: Final = (
    "First run: 'sumppump doctor' checks TWS and Claude Desktop; 'sumppump install-claude' "
    "adds SumpPump to Claude Desktop; 'sumppump serve --sim' tries it without a broker."
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sumppump", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"sumppump {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Run the MCP server. TWS address options and HTTP options are separate; "
        "HTTP binds a loopback address only.",
    )
    serve.add_argument("--sim", action="store_true", help="embed the simulated TWS")
    serve.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (what Claude Desktop runs; default) or http (streamable HTTP on loopback, "
        "needs SUMPPUMP_HTTP_TOKEN)",
    )
    serve.add_argument("--tws-host", default=None, help="TWS host (default SUMPPUMP_TWS_HOST)")
    serve.add_argument(
        "--tws-port", type=int, default=None, help="TWS port (default SUMPPUMP_TWS_PORT)"
    )
    serve.add_argument(
        "--http-host",
        default="127.0.0.1",
        help="HTTP bind address, loopback only (default 127.0.0.1)",
    )
    serve.add_argument(
        "--http-port",
        type=int,
        default=None,
        help=f"HTTP port (default {DEFAULT_HTTP_PORT})",
    )
    serve.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--host", default=None, help=argparse.SUPPRESS)

    sub.add_parser("demo", help="a scripted conversation against the simulator")
    sub.add_parser("sim", help="run the simulated TWS alone", add_help=False)
    sub.add_parser("run", help="run the supervision tree in the foreground")
    doctor = sub.add_parser("doctor", help="check the TWS and Claude Desktop set-up")
    doctor.add_argument("--tws-host", "--host", dest="host", default=None, help="TWS host")
    doctor.add_argument("--tws-port", "--port", dest="port", type=int, default=None)
    doctor.add_argument(
        "--orders",
        action="store_true",
        help="preview (what-if, nothing placed) every order shape SumpPump sends and print "
        "which IB accepts on this account; run once before the first trade",
    )
    doctor.add_argument(
        "--symbol", default=None, help="with --orders: the underlying to check (default AAPL)"
    )
    install = sub.add_parser("install-claude", help="add SumpPump to Claude Desktop's config")
    install.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sim"]:
        # The simulator owns its own argument parser (`sumppump sim --help`).
        from sumppump.tws_sim.__main__ import main as sim_main

        return sim_main(_with_default_seed(args_list[1:]))
    parser = _build_parser()
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # ib_async logs every order and tick update at INFO; keep its warnings and errors.
        logging.getLogger("ib_async").setLevel(logging.WARNING)
    match args.command:
        case "run":
            from sumppump.supervisor import main as run_main

            return run_main([])
        case "demo":
            from sumppump.demo import main as demo_main

            return demo_main()
        case "serve":
            return _serve(parser, args)
        case "doctor" if args.orders:
            from sumppump.doctor.orders_command import main_orders

            return main_orders(args.host, args.port, args.symbol)
        case "doctor":
            if args.symbol is not None:
                parser.error("--symbol needs --orders")
            from sumppump.doctor import main as doctor_main

            return doctor_main(args.host, args.port)
        case "install-claude":
            from sumppump.claude_config import main as install_main

            return install_main(args.dry_run)
        case _:
            print(f"sumppump {args.command}: not implemented yet", file=sys.stderr)
            return 2


def _with_default_seed(sim_args: list[str]) -> list[str]:
    """``sim_args`` with ``--seed DEFAULT_SIM_SEED`` in front unless a seed is given."""
    if any(arg == "--seed" or arg.startswith("--seed=") for arg in sim_args):
        return sim_args
    return ["--seed", str(DEFAULT_SIM_SEED), *sim_args]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve_serve_addresses(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[str | None, int | None, int]:
    """(TWS host, TWS port, HTTP port) from the new options and the deprecated ``--host`` /
    ``--port``, which keep their old meaning and print a note on stderr (deprecated, or ignored
    with ``--sim``). Bad combinations end the program through ``parser.error`` (exit 2)."""
    tws_host: str | None = args.tws_host
    tws_port: int | None = args.tws_port
    http_port: int | None = args.http_port
    ignored_with_sim = "is ignored with --sim (it embeds its own TWS)"
    if args.host is not None:
        if args.sim:
            print(f"sumppump serve: --host {ignored_with_sim}.", file=sys.stderr)
        else:
            print("sumppump serve: --host is deprecated; use --tws-host.", file=sys.stderr)
            tws_host = tws_host or args.host
    if args.port is not None:
        if args.transport == "http":
            print(
                "sumppump serve: --port is deprecated; with --transport http it is the HTTP "
                "port: use --http-port (and --tws-port for TWS).",
                file=sys.stderr,
            )
            http_port = args.port if http_port is None else http_port
        elif args.sim:
            print(f"sumppump serve: --port {ignored_with_sim}.", file=sys.stderr)
        else:
            print("sumppump serve: --port is deprecated; use --tws-port.", file=sys.stderr)
            tws_port = args.port if tws_port is None else tws_port
    if args.sim and (args.tws_host is not None or args.tws_port is not None):
        parser.error("--tws-host/--tws-port do not apply with --sim (it embeds its own TWS)")
    if args.transport != "http" and (args.http_port is not None or args.http_host != "127.0.0.1"):
        parser.error("--http-host/--http-port need --transport http")
    if not _is_loopback(args.http_host):
        parser.error(
            f"--http-host {args.http_host}: SumpPump can place orders, so HTTP binds a loopback "
            "address only (127.0.0.1, ::1, localhost)"
        )
    return tws_host, tws_port, DEFAULT_HTTP_PORT if http_port is None else http_port


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    tws_host, tws_port, http_port = _resolve_serve_addresses(parser, args)
    from sumppump.mcp_server import LocalBearerToken, create_app
    from sumppump.settings import Settings

    overrides: dict[str, object] = {}
    if tws_host:
        overrides["tws_host"] = tws_host
    if tws_port is not None:
        overrides["tws_port"] = tws_port
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if args.transport == "http":
        if not settings.http_token:
            print(
                "sumppump serve --transport http needs SUMPPUMP_HTTP_TOKEN (a long random "
                "secret the client sends as a bearer token).",
                file=sys.stderr,
            )
            return 2
        app = create_app(
            settings,
            simulated=args.sim,
            sim_seed=DEFAULT_SIM_SEED,
            auth=LocalBearerToken(settings.http_token),
        )
        app.run(transport="http", host=args.http_host, port=http_port, show_banner=False)
        return 0
    app = create_app(settings, simulated=args.sim, sim_seed=DEFAULT_SIM_SEED)
    app.run(transport="stdio", show_banner=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
