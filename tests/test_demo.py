"""`sumppump demo` runs the scripted conversation against the simulator and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sumppump.ticket.host import find_chromium


def test_demo_runs_the_conversation_and_exits_zero(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "sumppump", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "SIMULATED" in done.stdout
    for step in (
        "get_options_chain",
        "suggest_strikes",
        "calculate_strategy",
        "execute_trade",
        "set_stop_loss",
        "get_positions",
        "close_position",
    ):
        assert step in done.stdout
    assert "Filled" in done.stdout and "Set a stop loss?" in done.stdout
    assert "payoff chart (an image the model sees)" in done.stdout
    assert "Close bull call spread" in done.stdout
    # the close filled, at mid or after its limit was moved with modify_order
    assert "Filled" in done.stdout.split("I'd like out of the spread now.")[1]
    assert "Traceback" not in done.stdout + done.stderr
    if find_chromium() is not None:
        saved = re.search(r"order ticket screenshot saved to (\S+\.png)", done.stdout)
        assert saved, done.stdout[-2000:]
        assert Path(saved.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
