"""The execute gate without an actor: one case per line of the refusal table in
messages/execution.py (code, reason, and what becomes of the preview), in the table's order."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest

from sumppump.messages.common import NotConnected
from sumppump.messages.connection import ConnectionState
from sumppump.messages.errors import ErrorCode
from sumppump.messages.execution import ApprovalContext, ExecutionRefused
from sumppump.trading import gate
from sumppump.trading.breaker import CircuitBreaker
from sumppump.trading.ledger import OrderLedger
from sumppump.trading.outcome import outcome_words
from sumppump.trading.previews import Preview, PreviewStore
from tests.trading.factory import (
    SPREAD_QUOTES,
    STOCK_ID,
    connected,
    leg_quotes,
    long_call,
    option_leg,
    placed,
    quote,
    stored,
)

CLIENT = ApprovalContext(mode="client")


def admit(
    previews: PreviewStore,
    pid: str,
    confirm: str,
    *,
    mode: str | None = "client",
    approval: ApprovalContext = CLIENT,
    breaker: CircuitBreaker | None = None,
    ready: bool = True,
    used: str = "",
) -> Preview | ExecutionRefused:
    return gate.admit(
        pid,
        confirm,
        approval,
        mode=mode,
        setting=mode or "yolo",
        store=previews,
        breaker=breaker or CircuitBreaker(),
        ready=ready,
        used_outcome=used,
    )


def refusal(found: object) -> tuple[ErrorCode, str]:
    assert isinstance(found, ExecutionRefused), found
    return found.code, found.reason


def test_every_rung_passes_for_a_good_preview() -> None:
    previews, _, preview = stored()
    assert admit(previews, preview.preview_id, preview.confirm_text) is preview
    assert gate.check_connection(preview, connected(), reconciled_epoch=1, store=previews) is None
    hours = gate.check_market(preview, leg_quotes(SPREAD_QUOTES), max_slippage=0.1, store=previews)
    assert hours == ("L", "T", "")
    assert gate.risk_refusal(preview, gate.RiskVerdict(ok=True), previews) is None


def test_an_unrecognised_approval_setting_refuses_first_and_keeps_the_preview() -> None:
    previews, _, preview = stored()
    found = admit(previews, "not even an id", "", mode=None)
    assert refusal(found) == (ErrorCode.APPROVAL_REQUIRED, "unknown_approval_mode")
    assert previews.lookup(preview.preview_id) is preview


def test_an_id_never_issued_is_unknown() -> None:
    previews, _, _ = stored()
    assert refusal(admit(previews, "sp-" + "x" * 24, "")) == (
        ErrorCode.PREVIEW_UNKNOWN,
        "unknown",
    )


def test_a_used_preview_says_what_became_of_its_order() -> None:
    previews, _, preview = stored()
    ledger = OrderLedger()
    assert previews.claim(preview.preview_id) is preview
    placed(ledger, preview, status="Filled", filled=1, avg=3.2)
    words = outcome_words(ledger.get(preview.preview_id))
    found = admit(previews, preview.preview_id, preview.confirm_text, used=words)
    assert refusal(found) == (ErrorCode.PREVIEW_USED, "used")
    assert isinstance(found, ExecutionRefused)
    assert "filled 1 at 3.2" in found.message
    assert "an order was sent" not in found.message
    assert "get_order_status" in found.hint


def test_a_used_preview_whose_order_never_reached_tws_says_so() -> None:
    previews, _, preview = stored()
    ledger = OrderLedger()
    previews.claim(preview.preview_id)
    record = ledger.submit(preview.terms, follow_ups=(), at=0.0)
    ledger.update(replace(record.tracked, state="not_received"))
    found = admit(
        previews, preview.preview_id, "", used=outcome_words(ledger.get(preview.preview_id))
    )
    assert isinstance(found, ExecutionRefused)
    assert "never reached TWS" in found.message


@pytest.mark.parametrize("reason", ["expired", "voided", "superseded"])
def test_expired_voided_or_superseded_previews_are_expired(reason: str) -> None:
    previews, clocks, preview = stored()
    if reason == "expired":
        clocks.wall += 121
    else:
        previews.retire(preview.preview_id, reason)  # type: ignore[arg-type]
    found = admit(previews, preview.preview_id, preview.confirm_text)
    assert refusal(found) == (ErrorCode.PREVIEW_EXPIRED, reason)


def test_a_tampered_preview_fails_its_integrity_check_and_is_discarded() -> None:
    previews, _, preview = stored()
    tampered = msgspec.structs.replace(
        preview.terms, order=msgspec.structs.replace(preview.order, quantity=9)
    )
    object.__setattr__(preview, "terms", tampered)
    found = admit(previews, preview.preview_id, preview.confirm_text)
    assert refusal(found) == (ErrorCode.PREVIEW_UNKNOWN, "integrity")
    assert not isinstance(previews.lookup(preview.preview_id), Preview)


def test_a_different_confirm_text_refuses_and_keeps_the_preview() -> None:
    previews, _, preview = stored()
    found = admit(previews, preview.preview_id, preview.confirm_text + " please")
    assert refusal(found) == (ErrorCode.CONFIRM_MISMATCH, "mismatch")
    assert isinstance(found, ExecutionRefused) and preview.confirm_text in found.hint
    assert admit(previews, preview.preview_id, "  " + preview.confirm_text) is preview


@pytest.mark.parametrize(
    ("mode", "approval", "reason"),
    [
        ("client", ApprovalContext(mode="tws"), "mode_mismatch"),
        ("elicit", ApprovalContext(mode="elicit"), "elicitation_required"),
        ("app", ApprovalContext(mode="app", client_has_ui=True), "ticket_required"),
        ("app", ApprovalContext(mode="app"), "ticket_required"),
    ],
)
def test_the_approval_gate(mode: str, approval: ApprovalContext, reason: str) -> None:
    previews, _, preview = stored()
    found = admit(previews, preview.preview_id, preview.confirm_text, mode=mode, approval=approval)
    assert refusal(found) == (ErrorCode.APPROVAL_REQUIRED, reason)
    assert previews.lookup(preview.preview_id) is preview
    ok = ApprovalContext(mode=mode, approved_via="elicitation" if mode == "elicit" else "ticket")
    assert admit(previews, preview.preview_id, preview.confirm_text, mode=mode, approval=ok) is (
        preview
    )


def test_an_open_breaker_refuses_and_keeps_the_preview() -> None:
    previews, _, preview = stored()
    breaker = CircuitBreaker()
    for n in range(3):
        breaker.rejected(f"201: no {n}")
    found = admit(previews, preview.preview_id, preview.confirm_text, breaker=breaker)
    assert refusal(found) == (ErrorCode.ORDER_REJECTED, "breaker_open")
    assert isinstance(found, ExecutionRefused) and "201: no 2" in found.message


def test_while_reconciling_nothing_is_queued_and_a_retry_is_suggested() -> None:
    previews, _, preview = stored()
    found = admit(previews, preview.preview_id, preview.confirm_text, ready=False)
    assert refusal(found) == (ErrorCode.NOT_CONNECTED, "reconciling")
    assert isinstance(found, ExecutionRefused) and found.retry_after == 1.0
    not_yet = gate.check_connection(preview, connected(2), reconciled_epoch=1, store=previews)
    assert refusal(not_yet) == (ErrorCode.NOT_CONNECTED, "reconciling")


@pytest.mark.parametrize(
    "state",
    [
        "the connection actor is not available (ActorDown)",
        ConnectionState(
            state="reconnecting", epoch=1, host="h", port=1, client_id=1, last_error="1100"
        ),
    ],
)
def test_not_connected_keeps_the_preview(state: ConnectionState | str) -> None:
    previews, _, preview = stored()
    found = gate.check_connection(preview, state, reconciled_epoch=1, store=previews)
    assert refusal(found) == (ErrorCode.NOT_CONNECTED, "not_connected")
    assert previews.lookup(preview.preview_id) is preview


def test_a_new_connection_epoch_voids_the_preview() -> None:
    previews, _, preview = stored()
    found = gate.check_connection(preview, connected(2), reconciled_epoch=2, store=previews)
    # The table lists NOT_CONNECTED; the answer has always been the tombstone's (EXPIRED).
    assert refusal(found) == (ErrorCode.PREVIEW_EXPIRED, "epoch_changed")
    assert not isinstance(previews.lookup(preview.preview_id), Preview)


def test_quotes_unavailable_closed_market_and_no_mid_keep_the_preview() -> None:
    previews, _, preview = stored()
    for reply, expected in [
        ("CallTimeout", (ErrorCode.NO_MARKET_DATA, "quotes_unavailable")),
        (NotConnected(reason="down"), (ErrorCode.NOT_CONNECTED, "quotes_unavailable")),
        (leg_quotes(SPREAD_QUOTES, market_open=False), (ErrorCode.MARKET_CLOSED, "market_closed")),
        (
            leg_quotes((quote(11, 5.0, 5.2), quote(STOCK_ID, 1, 2))),
            (ErrorCode.NO_MARKET_DATA, "no_mid"),
        ),
    ]:
        found = gate.check_market(preview, reply, max_slippage=0.1, store=previews)
        assert refusal(found) == expected
    assert previews.lookup(preview.preview_id) is preview


def test_a_mid_beyond_the_slippage_allowance_asks_for_a_fresh_preview() -> None:
    previews, _, preview = stored()
    moved = (quote(11, 5.6, 5.8), quote(12, 1.9, 2.1), quote(STOCK_ID, 229.9, 230.1))
    found = gate.check_market(preview, leg_quotes(moved), max_slippage=0.1, store=previews)
    assert isinstance(found, gate.PriceMoved)
    assert found.now_mid == pytest.approx(3.7)
    answer = gate.price_moved(preview, found, None)
    assert refusal(answer) == (ErrorCode.PRICE_MOVED, "superseded")
    within = (quote(11, 5.2, 5.4), quote(12, 1.9, 2.1), quote(STOCK_ID, 229.9, 230.1))
    assert isinstance(
        gate.check_market(preview, leg_quotes(within), max_slippage=0.1, store=previews), tuple
    )


def test_a_stop_the_market_already_crossed_is_superseded() -> None:
    stop = msgspec.structs.replace(
        long_call(),
        legs=(option_leg(11, 230.0, "SELL"),),
        order_type="STP",
        stop_price=5.0,
        limit_price=None,
        tif="GTC",
    )
    previews, _, preview = stored(stop, kind="stop", strategy="", net_debit=0.0, max_loss=10.0)
    found = gate.check_market(
        preview, leg_quotes((quote(11, 4.8, 4.9),)), max_slippage=0.1, store=previews
    )
    assert refusal(found) == (ErrorCode.PRICE_MOVED, "stop_crossed")
    assert not isinstance(previews.lookup(preview.preview_id), Preview)


def test_a_failed_risk_recheck_uses_the_preview_up() -> None:
    previews, _, preview = stored()
    verdict = gate.RiskVerdict(
        ok=False, code=ErrorCode.INSUFFICIENT_FUNDS, message="funds", checks=("funds: failed",)
    )
    found = gate.risk_refusal(preview, verdict, previews)
    assert refusal(found) == (ErrorCode.INSUFFICIENT_FUNDS, "risk_refused")
    assert isinstance(found, ExecutionRefused) and found.checks == ("funds: failed",)
    again = admit(previews, preview.preview_id, preview.confirm_text)
    assert refusal(again) == (ErrorCode.PREVIEW_USED, "risk_refused")
