"""SIGKILL of a real ``sumppump serve`` process in the middle of ``execute_trade``, the simulated
TWS running on in its own process so its book survives (``kill_sim.py``: ``sumppump sim`` with
the stock's hours spanning the real day, since the server judges hours by the real clock).

Each round previews an order, sends ``execute_trade`` and kills the server at a chosen moment:
before the request, at a random delay after it, or the instant the ``submit`` line is on disk
(the write-ahead record exists, the order may or may not have been sent). A fresh server then
reconciles, and the checks are those of issue 18:

* no duplicate: no order ref carried by two IB orders, and no order sent twice;
* no lost or torn audit line: every line is whole JSON, every line written before a kill is
  still there;
* no line that only repeats an order's state (a restart writes nothing for unchanged orders);
* every order SumpPump tried has a known outcome from ``get_order_status``.

The CI-sized variant runs three rounds, one per kind of kill point; ``slow`` runs many random
ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OUTCOMES = {"working", "filled", "cancelled", "rejected", "never_reached_tws"}


class Sim:
    """The simulated TWS in its own process."""

    def __init__(self, tmp: Path) -> None:
        self._log = (tmp / "sim.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("kill_sim.py")), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, line
        self.port = int(line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck simulator
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._log.close()


class Server:
    """``sumppump serve`` over stdio, spoken to in raw JSON-RPC (so it can be SIGKILLed)."""

    def __init__(self, tmp: Path, port: int, n: int) -> None:
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "SUMPPUMP_AUDIT_PATH": str(tmp / "audit.jsonl"),
            "SUMPPUMP_APPROVAL": "client",
            "SUMPPUMP_CLIENT_ID": str(20 + n),
        }
        self._log = (tmp / f"serve-{n}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sumppump", "serve", "--port", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )
        self._answers: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._next = 1
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.request("initialize", {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "kill-test", "version": "0"},
        })  # fmt: skip
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "id" in message:
                with self._arrived:
                    self._answers[message["id"]] = message
                    self._arrived.notify_all()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def start(self, method: str, params: dict[str, Any]) -> int:
        rid, self._next = self._next, self._next + 1
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    def wait(self, rid: int, timeout: float = 30.0) -> dict[str, Any]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: rid in self._answers, timeout), "no answer"
            return self._answers.pop(rid)

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.wait(self.start(method, params))

    def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        answer = self.request("tools/call", {"name": name, "arguments": arguments})
        result: dict[str, Any] = answer["result"]
        return result.get("structuredContent") or {}

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the client goes away: the server exits by itself
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait()
        else:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self._reader.join(5)
        self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    running = Sim(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _preview(server: Server, strike_offset: int) -> dict[str, Any]:
    chain = server.tool("get_options_chain", symbol="AAPL", strikes_each_side=4)
    rows = chain["rows"]
    strikes = sorted({row["strike"] for row in rows})
    strike = strikes[min(len(strikes) - 1, 2 + strike_offset % 4)]
    analysed = server.tool(
        "calculate_strategy",
        symbol="AAPL",
        strategy="long_call",
        expiry=chain["expiry"],
        strikes=[strike],
    )
    assert analysed.get("preview_id"), analysed
    return {"preview_id": analysed["preview_id"], "confirm_text": analysed["confirm_text"]}


def _wait_for_submit(audit: Path, ref: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if audit.exists() and f'"event":"submit","order_ref":"{ref}"' in audit.read_text():
            return True
        time.sleep(0.0005)
    return False


def _round(tmp: Path, sim: Sim, n: int, kill_at: str, rng: random.Random) -> str:
    """One preview → execute → SIGKILL; returns the preview id."""
    audit = tmp / "audit.jsonl"
    server = Server(tmp, sim.port, n)
    try:
        preview = _preview(server, n)
        ref = preview["preview_id"]
        if kill_at == "before":
            server.kill()
            return ref
        server.start(
            "tools/call",
            {
                "name": "execute_trade",
                "arguments": {"preview_id": ref, "confirm_text": preview["confirm_text"]},
            },
        )
        if kill_at == "submit_on_disk":
            assert _wait_for_submit(audit, ref, time.monotonic() + 15)
        else:
            time.sleep(rng.uniform(0.0, 0.4))
        server.kill()
        return ref
    finally:
        server.close()


def _lines(audit: Path) -> list[dict[str, Any]]:
    text = audit.read_text()
    assert text.endswith("\n"), "a torn last line"
    return [json.loads(line) for line in text.splitlines()]  # every line whole JSON


def _state_repeats(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status/reconcile lines that only repeat the previous state line of the same order."""
    last: dict[str, tuple[Any, ...]] = {}
    repeats = []
    for line in lines:
        if line["event"] not in ("status", "reconcile", "fill", "submit"):
            continue
        key = (line.get("state"), line.get("status"), line.get("filled"), line.get("exec_id"))
        extra = {k for k in line if k not in ("ts", "event", "order_ref", "symbol")} - {
            "state", "status", "filled", "order_id", "perm_id", "remaining", "avg_fill_price"
        }  # fmt: skip
        ref = line["order_ref"]
        if line["event"] in ("status", "reconcile") and not extra and last.get(ref) == key:
            repeats.append(line)
        last[ref] = key
    return repeats


def _check(tmp: Path, sim: Sim, refs: list[str], kills: int) -> None:
    audit = tmp / "audit.jsonl"
    before = _lines(audit)
    server = Server(tmp, sim.port, kills + 1)
    try:
        submitted = [r["order_ref"] for r in before if r["event"] == "submit"]
        assert len(submitted) == len(set(submitted)), "an order was submitted twice"
        outcomes: dict[str, str] = {}
        deadline = time.monotonic() + 40  # past the 20 s acknowledgement window
        for ref in submitted:
            while True:
                outcome = server.tool("get_order_status", order_ref=ref)
                if outcome["outcome"] in OUTCOMES or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            outcomes[ref] = outcome["outcome"]
            assert outcome["outcome"] in OUTCOMES, outcome
            assert outcome["order_ref"] == ref and outcome["message"], outcome
        for ref in set(refs) - set(submitted):
            assert server.tool("get_order_status", order_ref=ref)["outcome"] in (
                "not_sent",
                "unknown",
            )
        orders = server.tool("get_open_orders")["orders"]
        ours = [o["order_ref"] for o in orders if o.get("order_ref")]
        assert len(ours) == len(set(ours)), "two working IB orders carry one ref"
    finally:
        server.close()
    after = _lines(audit)
    assert after[: len(before)] == before, "a line written before a kill was lost"
    assert not [r for r in after if r.get("duplicate")], "reconciliation found a duplicate"
    assert _state_repeats(after) == []


KILL_POINTS = ("before", "random", "submit_on_disk")


@pytest.mark.timeout(150)
def test_sigkill_during_execute_trade_loses_duplicates_and_repeats_nothing(
    tmp_path: Path, sim: Sim
) -> None:
    rng = random.Random(18)
    refs = [_round(tmp_path, sim, n, kill_at, rng) for n, kill_at in enumerate(KILL_POINTS)]
    _check(tmp_path, sim, refs, len(KILL_POINTS))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_at_many_random_points(tmp_path: Path, sim: Sim) -> None:
    rng = random.Random(int(os.environ.get("SUMPPUMP_KILL_SEED", "1818")))
    rounds = int(os.environ.get("SUMPPUMP_KILL_ROUNDS", "20"))
    refs = [_round(tmp_path, sim, n, rng.choice(KILL_POINTS), rng) for n in range(rounds)]
    _check(tmp_path, sim, refs, rounds)
