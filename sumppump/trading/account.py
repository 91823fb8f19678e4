"""Which kind of account an id names (pure): the ONE rule, used by risk, execution, the MCP
layer and ``doctor``.

IB gives paper-trading accounts ids that begin with ``D`` (``DU…`` for an individual paper
account, ``DF…`` for an advisor's paper master); live ids begin otherwise (``U…``, ``F…``,
``I…``). An id we cannot place is answered LIVE: a live label on a paper account costs a
second look, the opposite mistake could cost money. (notes/competitors.md §2: the ib-gateway
MCP tells paper from live by the ``D`` prefix, never by the port.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sumppump.messages.execution import AccountKind

__all__ = ["PAPER_PREFIX", "account_kind", "accounts_kind", "is_paper"]

#: Every IB paper account id starts with this letter.
PAPER_PREFIX: Final = "D"


def is_paper(account_id: str) -> bool:
    """Whether ``account_id`` is one of IB's paper-trading accounts (``DU…``, ``DF…``)."""
    return account_id.strip().upper().startswith(PAPER_PREFIX)


def account_kind(account_id: str, *, simulated: bool = False) -> AccountKind:
    """SIMULATED when told so; PAPER for a paper id; LIVE otherwise (an unknown id too)."""
    if simulated:
        return "SIMULATED"
    return "PAPER" if is_paper(account_id) else "LIVE"


def accounts_kind(account_ids: Iterable[str], *, simulated: bool = False) -> AccountKind | None:
    """The kind of a login's accounts together: SIMULATED when told so, PAPER when every id is
    paper, LIVE when any is live, ``None`` when there are none."""
    ids = list(account_ids)
    if simulated:
        return "SIMULATED"
    if not ids:
        return None
    return "PAPER" if all(is_paper(a) for a in ids) else "LIVE"
