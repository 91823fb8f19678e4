"""A tool result as each kind of client hands it to the model (notes/clients-and-ecosystem.md
§1), for tests and ``bench/context.py``.

- :func:`claude_desktop`: only the text content (``structuredContent`` is ignored; images are
  shown to the model as images, counted apart).
- :func:`structured_only`: Claude Code, VS Code, Codex: when ``structuredContent`` is present
  the model gets only its JSON and the text is dropped; otherwise the text.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["claude_desktop", "images", "structured_only"]


def _blocks(result: Any) -> list[Any]:
    content = getattr(result, "content", None)
    if content is None and isinstance(result, dict):
        content = result.get("content", [])
    return list(content or [])


def _field(block: Any, name: str) -> Any:
    return block.get(name) if isinstance(block, dict) else getattr(block, name, None)


def claude_desktop(result: Any) -> str:
    """What the model reads in Claude Desktop: the text blocks, joined by newlines."""
    return "\n".join(
        str(_field(block, "text")) for block in _blocks(result) if _field(block, "type") == "text"
    )


def images(result: Any) -> int:
    """How many image blocks the result carries (Claude Desktop shows them to the model)."""
    return sum(1 for block in _blocks(result) if _field(block, "type") == "image")


def structured_only(result: Any) -> str:
    """What the model reads in Claude Code / VS Code: the compact JSON of the structured
    content when there is one, else the text."""
    data = getattr(result, "structured_content", None)
    if data is None and isinstance(result, dict):
        data = result.get("structuredContent")
    if data is None:
        return claude_desktop(result)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
