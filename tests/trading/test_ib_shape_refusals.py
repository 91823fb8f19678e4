"""A preview says up front when ``sumppump doctor --orders`` found IB refusing its shape on the
account today: the refusal is the first warning, read from the kept report (directory injected),
and nothing is said for another day, another account's report, or an accepted shape."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec

from sumppump.messages.execution import CreatePreview, PrepareStopLoss
from sumppump.messages.orders import OrderSpec
from sumppump.trading import stops
from sumppump.trading.ib_shapes import (
    SHAPES,
    OrdersReport,
    ShapeResult,
    refusal_for_order,
    save_report,
    shape_of,
)
from sumppump.trading.ledger import OrderLedger
from tests.trading.factory import long_call, placed, position, quote, spread, stored

TODAY = dt.date(2026, 11, 25)
SPREAD_STOP = "debit spread stop (BAG STP, trigger bid/ask)"


def report(
    account: str = "U1234567", day: dt.date = TODAY, refused: str = SPREAD_STOP
) -> OrdersReport:
    results = tuple(
        ShapeResult(
            s, "refused", 387, "Unsupported order type for this exchange and security type."
        )
        if s == refused
        else ShapeResult(s, "accepted")
        for s in SHAPES
    )
    return OrdersReport(account, day.isoformat(), "AAPL", "live", "live", results)


def combo_stop_terms() -> CreatePreview:
    _, _, preview = stored()
    ledger = OrderLedger()
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    held = [position(11, 1, 500.0, strike=230.0), position(12, -1, -200.0, strike=240.0)]
    chosen = stops.choose_position(PrepareStopLoss(symbol="AAPL"), held, ledger, "AAPL")
    assert isinstance(chosen, tuple)
    target = stops.stop_target(PrepareStopLoss(symbol="AAPL"), chosen, ledger)
    terms = stops.plan_stop(
        target,  # type: ignore[arg-type]
        (quote(11, 5.0, 5.2), quote(12, 1.9, 2.1)),
        ledger,
        epoch=1,
        account_kind="LIVE",
    )
    assert isinstance(terms, CreatePreview)
    return terms


def on_account(order: OrderSpec, account: str = "U1234567") -> OrderSpec:
    return msgspec.structs.replace(order, account=account)


def test_orders_map_to_the_shapes_the_doctor_checks() -> None:
    assert shape_of(long_call()) == "single option LMT"
    assert shape_of(spread()) == "debit spread BAG LMT"
    stop = combo_stop_terms().order
    assert shape_of(stop) == SPREAD_STOP
    old = msgspec.structs.replace(stop, order_type="STP LMT", limit_price=-1.5)
    assert shape_of(old) == "old combo stop (BAG STP LMT)"
    assert shape_of(msgspec.structs.replace(long_call(), order_type="MKT")) is None


def test_a_refused_shape_is_the_previews_first_warning(tmp_path: Path) -> None:
    save_report(report(), tmp_path)
    terms = combo_stop_terms()
    terms = msgspec.structs.replace(terms, order=on_account(terms.order))
    stored_terms = stops.stored_terms(
        terms,
        OrderLedger(),
        "client",
        ib_refusal=lambda order: refusal_for_order(order, TODAY, tmp_path),
    )
    assert isinstance(stored_terms, CreatePreview)
    assert stored_terms.warnings[0] == (
        f"IB refused this {SPREAD_STOP} on your account today: 387 Unsupported order type for "
        "this exchange and security type. (sumppump doctor --orders)"
    )
    assert stored_terms.warnings[1:] == terms.warnings


def test_nothing_is_said_for_another_day_account_or_an_accepted_shape(tmp_path: Path) -> None:
    save_report(report(), tmp_path)
    stop = on_account(combo_stop_terms().order)
    assert refusal_for_order(stop, TODAY + dt.timedelta(days=1), tmp_path) is None
    assert refusal_for_order(on_account(stop, "U7654321"), TODAY, tmp_path) is None
    assert refusal_for_order(on_account(spread()), TODAY, tmp_path) is None
    assert refusal_for_order(stop, TODAY, tmp_path / "nothing-kept") is None
    terms = stops.stored_terms(
        combo_stop_terms(), OrderLedger(), "client", ib_refusal=lambda order: None
    )
    assert isinstance(terms, CreatePreview) and not terms.warnings[0].startswith("IB refused")


def test_an_order_without_an_account_uses_the_one_report_kept_today(tmp_path: Path) -> None:
    stop = on_account(combo_stop_terms().order, "")
    save_report(report(), tmp_path)
    assert (refusal_for_order(stop, TODAY, tmp_path) or "").startswith("IB refused this debit")
    save_report(report(account="U7654321"), tmp_path)  # two accounts: which one is unknown
    assert refusal_for_order(stop, TODAY, tmp_path) is None


def test_an_order_in_an_oca_group_hears_of_a_refused_oca_pair(tmp_path: Path) -> None:
    save_report(report(refused="OCA pair (ocaType 2)"), tmp_path)
    grouped = on_account(msgspec.structs.replace(long_call(), oca_group="g-1", oca_type=2))
    said = refusal_for_order(grouped, TODAY, tmp_path)
    assert said is not None and said.startswith("IB refused this OCA pair (ocaType 2)")
    assert refusal_for_order(on_account(long_call()), TODAY, tmp_path) is None
