"""What IB answered to each order shape on an account today (pure, plus one small file per
account): the model ``sumppump doctor --orders`` keeps (:mod:`sumppump.doctor.orders` runs the
check) and the lookup a preview uses to say up front that IB refused its shape.

Kept here, outside the ``doctor`` package, so the order desk's pure modules can read it without
importing the doctor's checks. The reports live under the user data dir (platformdirs, so
``XDG_DATA_HOME`` moves them on Linux); every function takes ``directory`` to inject another.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import platformdirs

from sumppump.messages.orders import OrderSpec

__all__ = [
    "SHAPES",
    "OrdersReport",
    "ShapeResult",
    "doctor_refusal",
    "load_report",
    "refusal_for_order",
    "report_path",
    "save_report",
    "shape_of",
    "shape_refusal",
]

_NEW_YORK: Final = ZoneInfo("America/New_York")

Outcome = Literal["accepted", "refused", "could not check"]

#: The shapes, in the order they are checked and printed.
SHAPES: Final = (
    "single option LMT",
    "single option stop (STP)",
    "debit spread BAG LMT",
    "debit spread stop (BAG STP, trigger bid/ask)",
    "old combo stop (BAG STP LMT)",
    "straddle BAG LMT",
    "straddle stop (BAG STP, trigger bid/ask)",
    "buy-write BAG LMT (100 STK + 1 call)",
    "buy-write stop (BAG STP, trigger bid/ask)",
    "collar BAG LMT",
    "collar stop (BAG STP, trigger bid/ask)",
    "OCA pair (ocaType 2)",
)


@dataclass(frozen=True, slots=True)
class ShapeResult:
    shape: str
    outcome: Outcome
    code: int | None = None
    text: str = ""
    order: str = ""


@dataclass(frozen=True, slots=True)
class OrdersReport:
    """One run of the check: account, trading day (ISO), symbol, market-data types, shapes."""

    account: str
    day: str
    symbol: str
    stock_data: str
    option_data: str
    results: tuple[ShapeResult, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrdersReport:
        return cls(
            account=str(data["account"]),
            day=str(data["day"]),
            symbol=str(data["symbol"]),
            stock_data=str(data["stock_data"]),
            option_data=str(data["option_data"]),
            results=tuple(ShapeResult(**r) for r in data["results"]),
        )


# ---------------------------------------------------------------------- storage and lookup


def report_path(account: str, directory: Path | None = None) -> Path:
    """Where the report of ``account`` is kept (one file per account, today's run)."""
    base = directory or Path(platformdirs.user_data_dir("sumppump")) / "doctor-orders"
    safe = "".join(ch for ch in account if ch.isalnum()) or "unknown"
    return base / f"{safe}.json"


def save_report(report: OrdersReport, directory: Path | None = None) -> Path:
    """Write ``report`` (replacing the account's previous one); returns the path.

    :raises OSError: the file cannot be written."""
    path = report_path(report.account, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=1))
    tmp.replace(path)
    return path


def load_report(account: str, today: date, directory: Path | None = None) -> OrdersReport | None:
    """The account's report if it was made on ``today`` (IB's answers hold for the trading day);
    None when there is none, it is older, or it cannot be read."""
    path = report_path(account, directory)
    try:
        report = OrdersReport.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if report.day == today.isoformat() else None


def shape_refusal(report: OrdersReport | None, shape: str, today: date) -> str | None:
    """Pure: what a preview should say up front when IB refused ``shape`` on this account
    today, e.g. "IB refused this old combo stop (BAG STP LMT) on your account today: 387 ..."
    (run with `sumppump doctor --orders`); None when it was accepted, not checked or the
    report is not today's."""
    if report is None or report.day != today.isoformat():
        return None
    for result in report.results:
        if result.shape == shape and result.outcome == "refused":
            code = f"{result.code} " if result.code is not None else ""
            return (
                f"IB refused this {shape} on your account today: {code}{result.text} "
                "(sumppump doctor --orders)"
            )
    return None


def shape_of(order: OrderSpec) -> str | None:
    """Pure: which of :data:`SHAPES` ``order`` is (its order type on its legs), or None when the
    doctor does not check that shape. Verticals of either sign are the spread shape, strangles
    the straddle shape, two options of opposite rights and actions the collar shape."""
    legs = order.legs
    stop = order.order_type in ("STP", "STP LMT")
    if order.order_type not in ("LMT", "STP", "STP LMT"):
        return None
    if len(legs) == 1:
        if legs[0].sec_type != "OPT" or order.order_type == "STP LMT":
            return None
        return "single option stop (STP)" if stop else "single option LMT"
    if len(legs) != 2:
        return None
    if order.order_type == "STP LMT":
        return "old combo stop (BAG STP LMT)"
    kinds = sorted(leg.sec_type for leg in legs)
    if kinds == ["OPT", "STK"]:
        name = "buy-write"
    elif kinds != ["OPT", "OPT"]:
        return None
    elif legs[0].right == legs[1].right:
        name = "debit spread"
    elif legs[0].action == legs[1].action:
        name = "straddle"
    else:
        name = "collar"
    if stop:
        return f"{name} stop (BAG STP, trigger bid/ask)"
    return "buy-write BAG LMT (100 STK + 1 call)" if name == "buy-write" else f"{name} BAG LMT"


def refusal_for_order(order: OrderSpec, today: date, directory: Path | None = None) -> str | None:
    """What a preview of ``order`` should say first when IB refused its shape (or, for an order
    in an OCA group, the OCA pair) on the order's account today; None otherwise. With no account
    on the order, the one report kept today is used when there is exactly one. Reads at most a
    few small files; never raises for a missing or unreadable report."""
    report = _todays_report(order.account, today, directory)
    if report is None:
        return None
    shapes = [shape_of(order)]
    if order.oca_group:
        shapes.append("OCA pair (ocaType 2)")
    for shape in shapes:
        said = shape_refusal(report, shape, today) if shape else None
        if said:
            return said
    return None


def doctor_refusal(order: OrderSpec) -> str | None:
    """:func:`refusal_for_order` for this (New York) trading day, from the kept reports."""
    return refusal_for_order(order, datetime.now(_NEW_YORK).date())


def _todays_report(account: str, today: date, directory: Path | None) -> OrdersReport | None:
    if account:
        return load_report(account, today, directory)
    base = report_path("x", directory).parent
    try:
        names = [n for n in os.listdir(base) if n.endswith(".json")]
    except OSError:
        return None
    reports = [load_report(n.removesuffix(".json"), today, directory) for n in names]
    todays = [r for r in reports if r is not None]
    return todays[0] if len(todays) == 1 else None
