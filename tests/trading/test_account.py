"""One account-kind rule for every layer: an id tells paper from live, and DF… is paper."""

from __future__ import annotations

from sumppump.mcp_server import Service
from sumppump.settings import Settings
from sumppump.trading.account import account_kind, accounts_kind, is_paper


def test_account_kind_from_the_id() -> None:
    assert account_kind("U1234567") == "LIVE"
    assert account_kind("DU1234567") == "PAPER"
    assert account_kind("DF7654321") == "PAPER"
    assert account_kind(" du1234567 ") == "PAPER"
    assert account_kind("F1234567") == "LIVE"
    assert account_kind("") == "LIVE"  # unknown: the safe side
    assert account_kind("DU1234567", simulated=True) == "SIMULATED"


def test_a_login_is_paper_only_when_every_account_is() -> None:
    assert accounts_kind(["DU1", "DF2"]) == "PAPER"
    assert accounts_kind(["DU1", "U2"]) == "LIVE"
    assert accounts_kind([]) is None
    assert accounts_kind(["U2"], simulated=True) == "SIMULATED"


def test_the_mcp_layer_labels_a_df_account_as_risk_and_execution_do() -> None:
    service = Service(settings=Settings(), accounts=("DF1234567",))
    assert service.kind == account_kind("DF1234567") == "PAPER"
    assert is_paper("DF1234567")
    assert Service(settings=Settings(), accounts=()).kind == "UNKNOWN"
