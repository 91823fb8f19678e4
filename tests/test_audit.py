"""The audit log: JSONL, mode 0600, fsync per line, no secrets, off the event loop."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import pytest

from sumppump.audit import AuditLog, read_audit_tail, scrub
from sumppump.messages.orders import OrderLeg, OrderSpec


def order() -> OrderSpec:
    leg = OrderLeg(
        con_id=11,
        symbol="AAPL",
        sec_type="OPT",
        action="BUY",
        ratio=1,
        multiplier=100.0,
        expiry="2026-12-18",
        strike=230.0,
        right="C",
    )
    return OrderSpec(
        order_ref="sp-x", account="U1", symbol="AAPL", legs=(leg,), quantity=1, limit_price=5.1
    )


@pytest.mark.anyio
async def test_lines_are_json_with_event_order_ref_symbol_and_order_fields(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    await log.write("preview", order_ref="sp-x", symbol="AAPL", order=order(), max_loss=510.0)
    await log.write("refusal", order_ref="sp-x", symbol="AAPL", code="CONFIRM_MISMATCH")
    await log.close()
    lines = (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert (
        first["event"] == "preview" and first["order_ref"] == "sp-x" and first["symbol"] == "AAPL"
    )
    assert first["order"]["legs"][0]["con_id"] == 11 and first["order"]["limit_price"] == 5.1
    assert first["max_loss"] == 510.0 and first["ts"].endswith("+00:00")
    assert second["code"] == "CONFIRM_MISMATCH"


@pytest.mark.anyio
async def test_file_is_private_even_when_it_existed_with_looser_permissions(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "audit.jsonl"
    log = AuditLog(fresh)
    await log.write("cancel", order_ref="sp-x")
    await log.close()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    loose = tmp_path / "loose.jsonl"
    loose.write_text("")
    os.chmod(loose, 0o644)
    log = AuditLog(loose)
    await log.write("cancel", order_ref="sp-x")
    await log.close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


@pytest.mark.anyio
async def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, redact=["s3cr3t-bearer-value"])
    await log.write(
        "refusal",
        order_ref="sp-x",
        http_token="s3cr3t-bearer-value",
        headers={"Authorization": "Bearer abc.def", "X-Api-Key": "k"},
        message="client sent Bearer xyz and s3cr3t-bearer-value",
        nested=[{"password": "p"}],
    )
    await log.close()
    text = path.read_text()
    for secret in (
        "s3cr3t-bearer-value",
        "abc.def",
        "xyz",
        '"k"',
        '"p"',
        "http_token",
        "Authorization",
    ):
        assert secret not in text
    record = json.loads(text)
    assert record["order_ref"] == "sp-x" and record["nested"] == [{}]
    assert "[redacted]" in record["message"]


def test_scrub_keeps_order_refs_and_plain_values() -> None:
    assert scrub({"order_ref": "sp-1", "preview_id": "sp-1", "qty": 2}) == {
        "order_ref": "sp-1",
        "preview_id": "sp-1",
        "qty": 2,
    }


@pytest.mark.anyio
async def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)

    async def writer(n: int) -> None:
        for i in range(10):
            await log.write("status", order_ref=f"sp-{n}", seq=i, pad="x" * 500)

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(writer, n)
    await log.close()
    records = await read_audit_tail(path)
    assert len(records) == 50
    for n in range(5):
        assert [r["seq"] for r in records if r["order_ref"] == f"sp-{n}"] == list(range(10))


@pytest.mark.anyio
async def test_tail_reader_skips_a_torn_last_line_and_reads_only_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(20):
        await log.write("submit", order_ref=f"sp-{i}")
    await log.close()
    await anyio.Path(path).write_bytes(path.read_bytes() + b'{"event": "submit", "order_')  # torn
    records = await read_audit_tail(path)
    assert [r["order_ref"] for r in records] == [f"sp-{i}" for i in range(20)]
    tail = await read_audit_tail(path, max_bytes=300)
    assert 0 < len(tail) < 20 and tail[-1]["order_ref"] == "sp-19"
    assert await read_audit_tail(tmp_path / "missing.jsonl") == []


@pytest.mark.anyio
async def test_a_restart_reads_the_state_snapshot_and_only_the_lines_after_it(
    tmp_path: Path,
) -> None:
    from sumppump.audit import read_audit_state, state_path
    from sumppump.trading.ledger import OrderLedger
    from tests.trading.factory import placed, stored

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    # A long history: many finished orders' lines the snapshot makes unnecessary to read.
    for n in range(2000):
        await log.write("refusal", order_ref=f"sp-old-{n}", code="X", message="m" * 200)
    _, _, working = stored()
    _, _, filled = stored()
    ledger = OrderLedger()
    placed(ledger, working, order_id=3)
    placed(ledger, filled, order_id=4, status="Filled", filled=1, avg=3.2)
    offset = await log.write_state(ledger.snapshot)
    assert offset == path.stat().st_size > 400_000
    await log.write("status", order_ref=working.preview_id, state="cancelled", status="Cancelled")
    await log.close()
    assert stat.S_IMODE(state_path(path).stat().st_mode) == 0o600

    records = await read_audit_state(path)
    assert not any(str(r["order_ref"]).startswith("sp-old") for r in records)
    assert len(records) == len(ledger.snapshot()) + 1
    again = OrderLedger()
    again.replay(records)
    w, f = again.get(working.preview_id), again.get(filled.preview_id)
    assert w is not None and w.state == "cancelled" and w.tracked.order_id == 3
    assert f is not None and f.tracked.exec_ids == frozenset({"e-4"})
    assert (f.tracked.perm_id, f.tracked.avg_fill_price) == (400, 3.2)


@pytest.mark.anyio
async def test_without_a_snapshot_an_old_log_is_read_from_its_tail(tmp_path: Path) -> None:
    from sumppump.audit import read_audit_state, state_path

    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps({"event": "submit", "order_ref": "sp-a"}) + "\n")
    assert [r["order_ref"] for r in await read_audit_state(path)] == ["sp-a"]
    state_path(path).write_text('{"offset": 999999, "records": []}')  # about another log
    assert [r["order_ref"] for r in await read_audit_state(path)] == ["sp-a"]
    state_path(path).write_text("{torn")
    assert [r["order_ref"] for r in await read_audit_state(path)] == ["sp-a"]
