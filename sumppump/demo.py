"""``sumppump demo``: a scripted session against the simulated TWS, printed as a transcript.

Until the MCP tools land, the demo starts the supervision tree and shows what each actor
answers; actors that are not built yet say so (``NotImplementedYet``) rather than invent data.
"""

from __future__ import annotations

import anyio
from rich.console import Console
from rich.table import Table

from sumppump.messages.common import NotImplementedYet, Ping, Pong
from sumppump.settings import Settings
from sumppump.supervisor import build_tree

__all__ = ["main"]


async def _tour(console: Console) -> None:
    tree = build_tree(Settings())
    async with anyio.create_task_group() as tg:
        await tg.start(tree.root.run)
        table = Table(title="SumpPump supervision tree")
        table.add_column("actor")
        table.add_column("generation", justify="right")
        table.add_column("answers")
        for name in ("rate_limiter", "pricing", "connection", "chain_cache", "risk", "execution"):
            ref = getattr(tree.refs, name)
            reply = await ref.call(Ping(), timeout=2)
            match reply:
                case Pong():
                    answer = "ping → pong"
                case NotImplementedYet(detail=detail):
                    answer = f"not implemented yet {detail}".strip()
                case _:
                    answer = type(reply).__name__
            table.add_row(name, str(ref.generation), answer)
        console.print(table)
        tg.cancel_scope.cancel()


def main() -> int:
    console = Console()
    console.print(
        "[bold]SumpPump demo[/bold] — the conversational flow (chain → strategy → "
        "confirm → fill → stop loss) arrives with the MCP tools; for now, the tree:"
    )
    anyio.run(_tour, console)
    return 0
