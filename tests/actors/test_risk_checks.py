"""The pure account checks (sumppump.risk_checks) on plain data: each check passing, failing and
not running; the fail-closed verdict for live accounts; IB's hours strings; shares committed to
short calls; the combo price of a structure with stock."""

from __future__ import annotations

import datetime as dt

import pytest

from sumppump.messages.connection import PositionInfo
from sumppump.messages.risk import CheckResult
from sumppump.risk_checks import (
    CONTRACTS,
    FUNDS,
    MARKET,
    MAX_LOSS,
    QUOTES,
    RISK_SHARE,
    SHARES,
    WHAT_IF,
    WhatIfAccepted,
    WhatIfRejected,
    WhatIfUnavailable,
    check_contracts,
    check_funds,
    check_market_open,
    check_max_loss,
    check_quotes,
    check_risk_share,
    check_shares,
    check_what_if,
    contracts_in,
    decide,
    market_state,
    parse_sessions,
    shares_committed,
    wire_limit_price,
)
from sumppump.strategies.model import StrategyLeg

UTC = dt.UTC
NY_HOURS = "20261125:0930-20261125:1600;20261126:CLOSED;20261127:0930-20261127:1300"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------------- individual checks


def test_funds_pass_when_debit_and_commission_fit_and_fail_by_a_cent() -> None:
    assert check_funds(1000.0, 998.70, 1.30).status == "passed"
    failed = check_funds(999.99, 998.70, 1.30)
    assert failed.status == "failed" and failed.name == FUNDS
    assert "$1,000.00" in failed.detail and "$999.99" in failed.detail


def test_funds_for_a_credit_need_only_the_commission() -> None:
    assert check_funds(2.0, -150.0, 1.30).status == "passed"
    assert check_funds(1.0, -150.0, 1.30).status == "failed"


def test_funds_not_run_without_account_values() -> None:
    assert check_funds(None, 100.0, 1.0).status == "not_run"
    assert check_funds(float("nan"), 100.0, 1.0).status == "not_run"


def test_risk_share_is_a_percentage_of_net_liquidation() -> None:
    assert check_risk_share(5000.0, 100_000.0, 5.0).status == "passed"
    assert check_risk_share(5000.01, 100_000.0, 5.0).status == "failed"
    assert check_risk_share(500.0, 100_000.0, 0.4).status == "failed"


def test_risk_share_fails_for_unbounded_loss_and_does_not_run_without_net_liq() -> None:
    assert check_risk_share(None, 100_000.0, 5.0).status == "failed"
    assert check_risk_share(100.0, None, 5.0).status == "not_run"
    assert check_risk_share(100.0, 0.0, 5.0).status == "not_run"


def test_max_loss_limit_only_when_configured() -> None:
    assert check_max_loss(10_000.0, None).status == "passed"
    assert check_max_loss(250.0, 250.0).status == "passed"
    assert check_max_loss(250.01, 250.0).status == "failed"
    assert check_max_loss(None, 250.0).status == "failed"
    assert check_max_loss(None, None).name == MAX_LOSS


def test_contracts_limit_counts_the_largest_leg() -> None:
    spread = [
        StrategyLeg(action="BUY", right="C", strike=100, expiry="2026-12-18"),
        StrategyLeg(action="SELL", right="C", strike=110, expiry="2026-12-18"),
    ]
    buy_write = [StrategyLeg(action="BUY", right="STK", ratio=100), spread[1]]
    assert contracts_in(spread, 10) == 10
    assert contracts_in(buy_write, 3) == 3
    assert check_contracts(10, 10).status == "passed"
    assert check_contracts(11, 10).status == "failed" and check_contracts(11, 10).name == CONTRACTS


def test_shares_for_short_calls() -> None:
    assert check_shares("AAPL", 0, None, 0).status == "passed"  # no held shares relied on
    assert check_shares("AAPL", 100, 200, 100).status == "passed"
    failed = check_shares("AAPL", 200, 200, 100)
    assert failed.status == "failed" and failed.name == SHARES and "100 free" in failed.detail
    assert check_shares("AAPL", 100, None, 0).status == "not_run"


def test_what_if_outcomes() -> None:
    accepted = check_what_if(WhatIfAccepted(init_margin_change=500.0, commission=1.3), 1000.0)
    assert accepted.status == "passed" and "$1.30" in accepted.detail
    too_much = check_what_if(WhatIfAccepted(init_margin_change=5000.0, commission=1.3), 1000.0)
    assert too_much.status == "failed"
    rejected = check_what_if(WhatIfRejected(201, "NOT APPROVED FOR THIS OPTION STRATEGY"))
    assert rejected.status == "failed" and "201" in rejected.detail
    timed_out = check_what_if(WhatIfUnavailable("no answer within 5 s"))
    assert timed_out.status == "not_run" and timed_out.name == WHAT_IF


def test_quotes_live_passes_delayed_and_missing_do_not_run() -> None:
    assert check_quotes("live", []).status == "passed"
    assert check_quotes("simulated", []).status == "passed"
    delayed = check_quotes("delayed", [])
    assert delayed.status == "not_run" and "delayed" in delayed.detail
    assert check_quotes("live", ["BUY 1 C 225 2026-12-18"]).status == "not_run"
    assert check_quotes(None, []).name == QUOTES


# ---------------------------------------------------------------------- hours


def test_parse_sessions_current_format_in_new_york_time() -> None:
    sessions = parse_sessions(NY_HOURS, "US/Eastern")
    assert [(s.start, s.end) for s in sessions] == [
        (at("2026-11-25T14:30"), at("2026-11-25T21:00")),
        (at("2026-11-27T14:30"), at("2026-11-27T18:00")),
    ]


def test_parse_sessions_old_format_several_ranges_a_day_and_overnight() -> None:
    old = parse_sessions("20260701:0930-1200,1300-1600;20260702:CLOSED", "America/New_York")
    assert [(s.start.hour, s.end.hour) for s in old] == [(13, 16), (17, 20)]  # EDT = UTC-4
    overnight = parse_sessions("20261124:1700-20261125:1600", "America/Chicago")
    assert overnight[0].end - overnight[0].start == dt.timedelta(hours=23)


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "20261125:0930", "20261125:0930-0900", "2026112:CLOSED", "20261125:9x30-1600"],
)
def test_parse_sessions_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_sessions(text, "US/Eastern")


def test_parse_sessions_refuses_unknown_zone() -> None:
    with pytest.raises(ValueError):
        parse_sessions(NY_HOURS, "Mars/Olympus")


def test_market_state_open_closed_and_next_open() -> None:
    during = market_state(NY_HOURS, "US/Eastern", at("2026-11-25T15:00"))
    assert during.open and during.closes_at == at("2026-11-25T21:00")
    at_close = market_state(NY_HOURS, "US/Eastern", at("2026-11-25T21:00"))
    assert not at_close.open and at_close.next_open == at("2026-11-27T14:30")
    holiday = market_state(NY_HOURS, "US/Eastern", at("2026-11-26T15:00"))
    assert not holiday.open and holiday.next_open == at("2026-11-27T14:30")
    after_all = market_state(NY_HOURS, "US/Eastern", at("2026-11-28T15:00"))
    assert not after_all.open and after_all.next_open is None


def test_market_open_check_prefers_liquid_hours() -> None:
    extended = "20261125:0400-20261125:2000"
    evening = at("2026-11-25T23:00")  # 18:00 New York: extended session only
    assert check_market_open(NY_HOURS, extended, "US/Eastern", evening).status == "failed"
    assert check_market_open("", extended, "US/Eastern", evening).status == "passed"
    closed = check_market_open(NY_HOURS, "", "US/Eastern", evening)
    assert closed.name == MARKET and "2026-11-27 14:30" in closed.detail
    assert check_market_open("", "", "US/Eastern", evening).status == "not_run"
    assert check_market_open("nonsense", "", "US/Eastern", evening).status == "not_run"


# ---------------------------------------------------------------------- verdict


def passed(name: str) -> CheckResult:
    return CheckResult(name=name, status="passed", detail="ok")


def test_all_passed_is_ok_for_every_kind() -> None:
    checks = [passed(n) for n in (FUNDS, RISK_SHARE, MARKET)]
    for kind in ("LIVE", "PAPER", "SIMULATED"):
        verdict = decide(checks, kind)  # type: ignore[arg-type]
        assert verdict.ok and verdict.code is None and verdict.warnings == ()


def test_a_check_that_did_not_run_refuses_live_but_warns_paper() -> None:
    checks = [passed(FUNDS), CheckResult(name=WHAT_IF, status="not_run", detail="timeout")]
    live = decide(checks, "LIVE")
    assert not live.ok and WHAT_IF in live.message and "LIVE" in live.message
    paper = decide(checks, "PAPER")
    assert paper.ok and paper.warnings == ("check ib_what_if did not run: timeout",)
    assert decide(checks, "SIMULATED").ok


def test_a_check_that_is_not_required_does_not_refuse_live() -> None:
    optional = CheckResult(name="extra", status="not_run", detail="n/a", required=False)
    verdict = decide([passed(FUNDS), optional], "LIVE")
    assert verdict.ok and len(verdict.warnings) == 1


def test_failures_refuse_every_kind_with_the_most_fundamental_code() -> None:
    checks = [
        CheckResult(name=MARKET, status="failed", detail="closed"),
        CheckResult(name=RISK_SHARE, status="failed", detail="too big"),
        CheckResult(name=FUNDS, status="failed", detail="short"),
    ]
    for kind in ("LIVE", "PAPER", "SIMULATED"):
        verdict = decide(checks, kind)  # type: ignore[arg-type]
        assert not verdict.ok and verdict.code == "INSUFFICIENT_FUNDS"
        assert "max_risk_share" in verdict.message and "market_open" in verdict.message
    assert decide(checks[:2], "PAPER").code == "RISK_LIMIT"
    assert decide(checks[:1], "PAPER").code == "MARKET_CLOSED"


def test_what_if_rejection_codes_follow_ibs_reason() -> None:
    permission = check_what_if(
        WhatIfRejected(201, "YOUR ACCOUNT IS NOT APPROVED FOR THIS OPTION STRATEGY")
    )
    assert decide([permission], "PAPER").code == "NOT_PERMITTED_LEVEL2"
    margin = check_what_if(WhatIfRejected(201, "EQUITY WITH LOAN VALUE MUST EXCEED MARGIN"))
    assert decide([margin], "PAPER").code == "INSUFFICIENT_FUNDS"
    other = check_what_if(WhatIfRejected(200, "No security definition"))
    assert decide([other], "PAPER").code == "ORDER_REJECTED"


def test_live_not_run_quotes_refuse_with_no_market_data() -> None:
    verdict = decide([check_quotes("delayed", [])], "LIVE")
    assert not verdict.ok and verdict.code == "NO_MARKET_DATA"


# ---------------------------------------------------------------------- account facts


def option(
    symbol: str, right: str, strike: float, qty: float, expiry: str = "2026-12-18"
) -> PositionInfo:
    return PositionInfo(
        account="U1",
        con_id=hash((symbol, right, strike, expiry)) & 0xFFFFFF,
        symbol=symbol,
        sec_type="OPT",
        quantity=qty,
        avg_cost=100.0,
        expiry=expiry,
        strike=strike,
        right=right,
        multiplier=100.0,
    )


def test_shares_committed_counts_short_calls_not_covered_by_long_calls() -> None:
    stock = PositionInfo(
        account="U1", con_id=1, symbol="AAPL", sec_type="STK", quantity=300, avg_cost=200
    )
    positions = [
        stock,
        option("AAPL", "C", 250, -2),  # covered by shares
        option("AAPL", "C", 260, -1),  # covered by the long 240 call (same expiry, lower strike)
        option("AAPL", "C", 240, 1),
        option("AAPL", "C", 230, 1, expiry="2027-01-15"),  # other expiry: covers nothing
        option("AAPL", "P", 200, -1),  # puts never commit shares
        option("MSFT", "C", 500, -1),
    ]
    assert shares_committed(positions) == {"AAPL": 200, "MSFT": 100}


def test_shares_committed_long_call_above_the_short_strike_does_not_cover() -> None:
    assert shares_committed([option("AAPL", "C", 250, -1), option("AAPL", "C", 260, 1)]) == {
        "AAPL": 100
    }
    assert shares_committed([]) == {}


# ---------------------------------------------------------------------- combo price


def test_wire_limit_equals_the_analysis_limit_for_options_only() -> None:
    legs = [StrategyLeg(action="BUY", right="C", strike=100, expiry="2026-12-18")]
    assert wire_limit_price(2.35, legs, 100, None) == 2.35


def test_wire_limit_of_a_buy_write_is_the_ratio_weighted_sum() -> None:
    legs = [
        StrategyLeg(action="BUY", right="STK", ratio=100),
        StrategyLeg(action="SELL", right="C", strike=55, expiry="2026-12-18"),
    ]
    # 100 shares at 50.00 and a call sold at 1.20: the analysis nets 48.80 per option share,
    # IB's combo price is 100 × 50.00 − 1.20.
    assert wire_limit_price(48.80, legs, 100, 50.0) == pytest.approx(4998.80)
    with pytest.raises(ValueError):
        wire_limit_price(48.80, legs, 100, None)
