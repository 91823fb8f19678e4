"""Positions built by hand in IB's conventions, for the pure tests of the book: an option's
``avg_cost`` is per contract (multiplier included), a stock's per share."""

from __future__ import annotations

from typing import Literal

from sumppump.messages.connection import PositionInfo

DEC = "2026-12-18"
STOCK = 1


def option(
    con_id: int,
    quantity: float,
    strike: float,
    right: Literal["C", "P"] = "C",
    expiry: str = DEC,
    entry: float = 1.0,
    symbol: str = "AAPL",
) -> PositionInfo:
    """``quantity`` contracts (negative: short) bought or sold at ``entry`` per share."""
    return PositionInfo(
        account="U1",
        con_id=con_id,
        symbol=symbol,
        sec_type="OPT",
        quantity=quantity,
        avg_cost=entry * 100,
        expiry=expiry,
        strike=strike,
        right=right,
        multiplier=100.0,
    )


def shares(quantity: float, entry: float = 180.0, symbol: str = "AAPL") -> PositionInfo:
    return PositionInfo(
        account="U1",
        con_id=STOCK,
        symbol=symbol,
        sec_type="STK",
        quantity=quantity,
        avg_cost=entry,
    )
