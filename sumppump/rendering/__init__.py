"""What the model reads of a tool result, in every client.

Claude Desktop hands the model only a result's *text content*; Claude Code, VS Code and Codex
hand it only the JSON of its *structured content* (notes/clients-and-ecosystem.md §1). Each
must therefore carry every figure a conversation needs, compactly. A renderer turns one domain
value into a :class:`Rendered`: first the compact, rounded ``data`` (the structured content),
then the text made *from that data*, so the two cannot disagree.

Modules: :mod:`.numbers` (rounding and formatting shared by all), :mod:`.market`,
:mod:`.account`, :mod:`.trading` (suggestions, analysis, previews, orders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Rendered", "drop_none", "plural"]


@dataclass(frozen=True)
class Rendered:
    """A result as the model reads it: ``text`` (Claude Desktop) and ``data`` (structured
    content, Claude Code/VS Code). ``text`` is derived from ``data``."""

    text: str
    data: dict[str, Any]


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """The dict without ``None`` values and empty tuples, lists and strings: an absent key
    means "none"."""
    return {k: v for k, v in data.items() if v is not None and v != () and v != [] and v != ""}


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 position``, ``2 positions``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
