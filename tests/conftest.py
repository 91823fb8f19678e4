"""Test-wide fixtures: every async test runs on asyncio and on trio unless it says otherwise."""

from __future__ import annotations

import pytest


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True, scope="session")
def _private_user_data_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep what SumpPump stores per user (the doctor's order-shape report, read by every
    preview) out of the real user data dir: a report kept by `sumppump doctor --orders` on this
    machine must not change what the tests see. Subprocesses inherit the variable."""
    import os

    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
