"""Settings from the environment (names are fixed: users' Claude Desktop configs hold them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ApprovalMode", "Settings"]

ApprovalMode = Literal["client", "elicit", "tws", "app"]
APPROVAL_MODES: tuple[str, ...] = ("client", "elicit", "tws", "app")


def _default_audit_path() -> Path:
    return Path(platformdirs.user_data_dir("sumppump", appauthor=False)) / "audit.jsonl"


class Settings(BaseSettings):
    """Every knob, read from ``SUMPPUMP_*`` environment variables.

    ``approval`` is kept as the raw string: an unrecognised value must not stop the server from
    starting (the person could not even ask what is wrong), it must refuse every order instead.
    """

    # An empty variable counts as unset: an MCP Bundle's optional field left blank arrives as "".
    model_config = SettingsConfigDict(
        env_prefix="SUMPPUMP_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    tws_host: str = "127.0.0.1"
    tws_port: int = Field(default=7497, ge=1, le=65535)
    client_id: int = Field(default=17, ge=1, description="never 0: 0 is TWS's master client id")
    spare_client_ids: tuple[int, ...] = ()
    max_risk_pct: float = Field(default=5.0, gt=0, le=100)
    max_loss: float | None = Field(default=None, gt=0)
    max_contracts: int = Field(default=10, ge=1)
    max_slippage: float = Field(default=0.10, ge=0, description="share of the debit")
    preview_ttl_s: float = Field(default=120.0, gt=0, le=3600)
    approval: str = "client"
    audit_path: Path = Field(default_factory=_default_audit_path)
    message_rate: float = Field(default=45.0, gt=0, le=50)
    market_data_lines: int = Field(default=90, ge=1, le=100)
    connect_timeout_s: float = Field(default=4.0, gt=0)
    http_token: str | None = None

    @field_validator("client_id")
    @classmethod
    def _client_id_not_master(cls, value: int) -> int:
        if value == 0:
            raise ValueError("client id 0 is TWS's master client; choose another (default 17)")
        return value

    @property
    def approval_mode(self) -> ApprovalMode | None:
        """The approval mode, or ``None`` when the setting is not recognised (refuse orders)."""
        value = self.approval.strip().lower()
        for mode in APPROVAL_MODES:
            if value == mode:
                return mode  # type: ignore[return-value]
        return None
