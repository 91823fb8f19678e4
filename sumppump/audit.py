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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import msgspec

__all__ = [
    "AuditEvent",
    "AuditLog",
    "read_audit_state",
    "read_audit_tail",
    "scrub",
    "state_path",
]

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
        #: Bytes this object appended (how much a restart would read after the snapshot).
        self.bytes_written = 0

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
        self.bytes_written += len(line)

    def _append(self, line: bytes) -> None:
        with self._thread_lock:
            if self._fd is None:
                self._fd = _open_private(self.path)
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    async def write_state(self, records: Callable[[], list[dict[str, Any]]]) -> int:
        """Replace the state snapshot (:func:`state_path`, atomically: written, fsync-ed,
        renamed) with ``records()`` and the log's current size, so a restart reads the
        snapshot and only the lines written after it. ``records`` is called with no line
        being written, so every line before the recorded size is reflected in it (a line
        after it may be too: replaying a line twice changes nothing). Returns the size.

        :raises OSError: the snapshot could not be written (the previous one stays)."""
        async with self._lock:
            payload = records()
            return await anyio.to_thread.run_sync(
                self._replace_state, payload, abandon_on_cancel=False
            )

    def _replace_state(self, records: list[dict[str, Any]]) -> int:
        with self._thread_lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            body = msgspec.json.encode(scrub({"offset": size, "records": records}, self._redact))
            target = state_path(self.path)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            return size

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
    return _decode(lines)


def _decode(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """The JSON objects among ``lines`` (a torn last line after a crash is skipped)."""
    records = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            item = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue
        if isinstance(item, dict):
            records.append(item)
    return records


async def read_audit_tail(path: Path, *, max_bytes: int = 4 * 1024 * 1024) -> list[dict[str, Any]]:
    """The records in the last ``max_bytes`` of the log, oldest first (torn lines skipped)."""
    return await anyio.to_thread.run_sync(_read_tail, Path(path), max_bytes)


def state_path(path: Path) -> Path:
    """Where the compact state snapshot of the log at ``path`` lives (beside it)."""
    return path.with_name(path.name + ".state")


def _read_state(path: Path, max_bytes: int) -> list[dict[str, Any]]:
    try:
        snapshot = msgspec.json.decode(state_path(path).read_bytes())
    except (FileNotFoundError, msgspec.DecodeError):
        return _read_tail(path, max_bytes)
    offset, records = snapshot.get("offset"), snapshot.get("records")
    if not isinstance(offset, int) or not isinstance(records, list):
        return _read_tail(path, max_bytes)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if offset > size:  # the log was replaced since: the snapshot is not about it
        return _read_tail(path, max_bytes)
    return [r for r in records if isinstance(r, dict)] + _read_from(path, offset)


def _read_from(path: Path, offset: int) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return []
    return _decode(data.split(b"\n"))


async def read_audit_state(path: Path, *, max_bytes: int = 4 * 1024 * 1024) -> list[dict[str, Any]]:
    """The records a restart replays, oldest first: the compact state snapshot written by
    :meth:`AuditLog.write_state` (when there is one) and the lines the log gained after it;
    without a snapshot, the records in the log's last ``max_bytes``. Either way what is read
    at start stays bounded as the log grows; the log itself keeps the full history."""
    return await anyio.to_thread.run_sync(_read_state, Path(path), max_bytes)
