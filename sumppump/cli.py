"""The ``sumppump`` command: serve, demo, sim, run, doctor, install-claude.

Logs go to stderr; stdout belongs to the MCP stdio channel when serving.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sumppump", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--sim", action="store_true", help="embed the simulated TWS")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--port", type=int, default=None, help="TWS port, or HTTP port with http")
    serve.add_argument("--host", default=None, help="TWS host (default from settings)")

    sub.add_parser("demo", help="a scripted conversation against the simulator")
    sim = sub.add_parser("sim", help="run the simulated TWS alone", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sub.add_parser("run", help="run the supervision tree in the foreground")
    doctor = sub.add_parser("doctor", help="check the TWS and Claude Desktop set-up")
    doctor.add_argument("--host", default=None)
    doctor.add_argument("--port", type=int, default=None)
    install = sub.add_parser("install-claude", help="add SumpPump to Claude Desktop's config")
    install.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sim"]:
        # The simulator owns its own argument parser (`sumppump sim --help`).
        from sumppump.tws_sim.__main__ import main as sim_main

        return sim_main(args_list[1:])
    args = _build_parser().parse_args(args_list)
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
            return _serve(args)
        case "doctor":
            from sumppump.doctor import main as doctor_main

            return doctor_main(args.host, args.port)
        case "install-claude":
            from sumppump.claude_config import main as install_main

            return install_main(args.dry_run)
        case _:
            print(f"sumppump {args.command}: not implemented yet", file=sys.stderr)
            return 2


def _serve(args: argparse.Namespace) -> int:
    from sumppump.mcp_server import LocalBearerToken, create_app
    from sumppump.settings import Settings

    overrides: dict[str, object] = {}
    if args.host:
        overrides["tws_host"] = args.host
    if args.port and args.transport == "stdio":
        overrides["tws_port"] = args.port
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if args.transport == "http":
        if not settings.http_token:
            print(
                "sumppump serve --transport http needs SUMPPUMP_HTTP_TOKEN (a long random "
                "secret the client sends as a bearer token).",
                file=sys.stderr,
            )
            return 2
        app = create_app(settings, simulated=args.sim, auth=LocalBearerToken(settings.http_token))
        # Loopback only, whatever else is configured: this server can place orders.
        app.run(transport="http", host="127.0.0.1", port=args.port or 8765, show_banner=False)
        return 0
    app = create_app(settings, simulated=args.sim)
    app.run(transport="stdio", show_banner=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
