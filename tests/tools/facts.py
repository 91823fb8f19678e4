"""Facts a conversation needs, checked in what each client hands the model.

``check(result, facts)``: every fact (a number or a string) appears in the Claude Desktop
profile (text only) and in the Claude Code/VS Code profile (JSON of structuredContent only).
Numbers match in any form a reader would write them: ``5.1``, ``5.10``, ``1,234.5``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sumppump.rendering.profiles import claude_desktop, structured_only

Fact = str | float | int | tuple[float, int]


def number_forms(value: float, places: int = 2) -> set[str]:
    rounded = round(value, places)
    forms = {f"{rounded:.{places}f}", f"{rounded:,.{places}f}", f"{rounded:g}", json.dumps(rounded)}
    if rounded == int(rounded):
        forms |= {str(int(rounded)), f"{int(rounded):,}"}
    return forms


def contains(profile: str, fact: Fact) -> bool:
    if isinstance(fact, str):
        return fact in profile or json.dumps(fact)[1:-1] in profile
    value, places = fact if isinstance(fact, tuple) else (float(fact), 2)
    return any(
        re.search(r"(?<![\d.])" + re.escape(form) + r"(?![\d])", profile)
        for form in number_forms(value, places)
    )


def check(result: Any, facts: list[Fact]) -> dict[str, str]:
    """Assert every fact is in both profiles; return the profiles for further checks."""
    profiles = {"claude_desktop": claude_desktop(result), "structured": structured_only(result)}
    for name, text in profiles.items():
        missing = [fact for fact in facts if not contains(text, fact)]
        assert not missing, f"{name} lacks {missing}:\n{text}"
    return profiles
