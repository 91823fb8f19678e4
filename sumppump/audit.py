"""The append-only audit log: one JSON line per preview, submission, status change, fill, cancel,
refusal and reconciliation, each with its ``order_ref``.

* The file is created with mode 0600 (its directory 0700); an existing file with looser
  permissions is tightened on open.
* Every line is written with one ``write`` on an ``O_APPEND`` descriptor and ``fsync``-ed before
  :meth:`AuditLog.write` returns, so a ``submit`` line is on disk before the order is sent (the
  write-ahead record a restart reconciles from).
* File I/O runs in a worker thread (``anyio.to_thread``); the event loop never blocks on disk.
  Writes are serialised by a lock, so lines never interleave.
* Secrets never reach it: keys that name one (token, secret, password, authorization, api key,
  cookie) are dropped, ``Bearer …`` values are masked, and the exact strings given as
  ``redact`` (the HTTP bearer token from settings) are replaced wherever they appear.

Cancellation: a caller cancelled while its line is being written does not interrupt the write
(the thread finishes it); the line is either fully written or not at all.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import msgspec

__all__ = ["AuditEvent", "AuditLog", "read_audit_state", "read_audit_tail", "scrub"]

AuditEvent = Literal[
    "preview", "submit", "status", "fill", "cancel", "refusal", "reconcile", "stop_follow"
]

_SECRET_KEY: Final = re.compile(
    r"token|secret|passw|authori[sz]ation|api[_-]?key|cookie|credential", re.IGNORECASE
)
_BEARER: Final = re.compile(r"(?i)\bbearer\s+\S+")
_REDACTED: Final = "[redacted]"
_SAFE_KEYS: Final = frozenset({"order_ref", "preview_id"})


def scrub(value: Any, redact: Iterable[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) without secrets: secret-named keys dropped, bearer
    values masked, every string in ``redact`` replaced."""
    needles = tuple(s for s in redact if s)

    def clean(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {
                str(k): clean(v)
                for k, v in item.items()
                if str(k) in _SAFE_KEYS or not _SECRET_KEY.search(str(k))
            }
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        if isinstance(item, str):
            for needle in needles:
                item = item.replace(needle, _REDACTED)
            return _BEARER.sub(f"Bearer {_REDACTED}", item)
        return item

    return clean(value)


class AuditLog:
    """Appends audit lines to ``path``. Open lazily; :meth:`close` releases the descriptor."""

    def __init__(self, path: Path, *, redact: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self._redact = tuple(s for s in redact if s)
        self._fd: int | None = None
        self._lock = anyio.Lock()
        self._thread_lock = threading.Lock()
        self.lines_written = 0

    async def write(
        self,
        event: AuditEvent,
        *,
        order_ref: str,
        symbol: str = "",
        **fields: Any,
    ) -> None:
        """Append one line ``{ts, event, order_ref, symbol, **fields}`` and fsync it.

        ``fields`` may hold msgspec structs; they are converted to JSON types.

        :raises OSError: the file cannot be opened or written (the caller must not go on with
            an order whose audit line failed).
        """
        record: dict[str, Any] = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "event": event,
            "order_ref": order_ref,
            "symbol": symbol,
        }
        record.update(msgspec.to_builtins(fields))
        line = msgspec.json.encode(scrub(record, self._redact)) + b"\n"
        async with self._lock:
            await anyio.to_thread.run_sync(self._append, line, abandon_on_cancel=False)
        self.lines_written += 1

    def _append(self, line: bytes) -> None:
        with self._thread_lock:
            if self._fd is None:
                self._fd = _open_private(self.path)
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            await anyio.to_thread.run_sync(os.close, fd)


def _open_private(path: Path) -> int:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file created elsewhere is tightened
    except (AttributeError, OSError):  # pragma: no cover - platforms without fchmod
        os.chmod(path, 0o600)
    return fd


def _read_tail(path: Path, max_bytes: int) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first one may be cut
    records = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            item = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue  # a torn last line after a crash
        if isinstance(item, dict):
            records.append(item)
    return records


async def read_audit_tail(path: Path, *, max_bytes: int = 4 * 1024 * 1024) -> list[dict[str, Any]]:
    """The records in the last ``max_bytes`` of the log, oldest first (torn lines skipped)."""
    return await anyio.to_thread.run_sync(_read_tail, Path(path), max_bytes)


async def read_audit_state(path: Path) -> list[dict[str, Any]]:
    """The records a restart replays, oldest first."""
    return await read_audit_tail(path)
