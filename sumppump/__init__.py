"""SumpPump: trade Level-2 options in your own IBKR account by talking to Claude."""

from __future__ import annotations

__version__ = "0.1.0"
