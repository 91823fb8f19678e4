"""Numbers as ib_async hands them over, converted at the edge.

IB marks "no value" in several ways: NaN (ib_async's default for a tick not received), its UNSET
double (``sys.float_info.max``, sent as ``1.7976931348623157E308``), an empty string (what-if
margin fields) or ``None``. Replies carry ``None`` for all of them, never a made-up number.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["ib_number", "ib_positive"]

#: Anything this large is IB's UNSET double, not a value.
UNSET_LIMIT: Final = 1.7e308


def ib_number(value: object) -> float | None:
    """IB's numbers (floats or numeric strings) as floats; unset, empty, NaN and inf as None."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number) or abs(number) >= UNSET_LIMIT:
        return None
    return number


def ib_positive(value: object) -> float | None:
    """A price: :func:`ib_number`, and ``None`` unless above zero (IB sends -1 or 0 for none)."""
    number = ib_number(value)
    return number if number is not None and number > 0 else None
