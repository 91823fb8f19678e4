"""The MCP tools, one module per family; each exposes ``register(app, service) -> None``.

- :mod:`.common`: argument types, annotations, the error plumbing shared by every tool
  (``{code, message, hint}``, never a traceback) and the result builders.
- :mod:`.market`: status, quote, chain, market stats, price history, news.
- :mod:`.account`: account, positions, open orders, the outcome of one order.
- :mod:`.portfolio`: the book as structures with P&L, greeks, stops and the expiry watch.
- :mod:`.trading`: suggest_strikes, calculate_strategy, execute_trade, set_stop_loss,
  cancel_order.
- :mod:`.changes`: close_position, modify_order, roll_position.
- :mod:`.ticket`: the order ticket's app-only tools (hidden from the model).

Adding a tool family: write a module with ``register(app, service)`` and list it in
:data:`FAMILIES`. What the model reads of a result is built in :mod:`sumppump.rendering`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sumppump.tools import account, changes, market, portfolio, ticket, trading

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from sumppump.mcp_server import Service

__all__ = ["FAMILIES", "register_all"]

#: Registered in this order (the order of the tool listing).
FAMILIES: tuple[Callable[[FastMCP[Any], Service], None], ...] = (
    market.register,
    account.register,
    portfolio.register,
    trading.register,
    changes.register,
    ticket.register,
)


def register_all(app: FastMCP[Any], service: Service) -> None:
    """Register every tool family on ``app``."""
    for register in FAMILIES:
        register(app, service)
