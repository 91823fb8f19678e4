"""Foreground mode: `python -m sumppump.supervisor` runs until a signal, exits 0; 1 on give-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import anyio
import pytest

from sumppump.actors.runtime import Ref
from sumppump.supervisor import ChildSpec, Supervisor, _serve_until_signal
from tests.support.toy_actors import Boom, ToyActor


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_foreground_tree_runs_until_a_signal_and_exits_zero(signum: signal.Signals) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sumppump.supervisor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        for line in proc.stderr:
            if "supervision tree running" in line:
                break
            assert time.monotonic() < deadline, "the tree did not start"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert out == ""  # stdout is the MCP channel: nothing is ever printed there


@pytest.mark.anyio
async def test_root_giving_up_makes_the_foreground_exit_non_zero() -> None:
    ref = Ref("a")
    root = Supervisor("root", [ChildSpec("a", ToyActor, ref)], intensity=0)

    async def crash_it() -> None:
        while not ref.alive:
            await anyio.sleep(0.001)
        ref.tell(Boom())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(crash_it)
            code = await _serve_until_signal(root)
    assert code == 1
