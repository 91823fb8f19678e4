"""Contract definitions (conIds) of an expiry on disk for the trading day (DESIGN.md §3): one JSON
file per day under the user cache dir. Never quotes. An unreadable file is ignored, an unwritable
one only logged: the cache saves requests, it never decides an answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

import anyio
import msgspec

from sumppump.messages.common import OptionContract

__all__ = ["ContractDiskCache"]

log = logging.getLogger(__name__)


class ContractDiskCache:
    """``get``/``put`` by key (``SYMBOL|expiry|trading class``) for ``today()``'s file."""

    def __init__(self, cache_dir: Path, today: Callable[[], date]) -> None:
        self._cache_dir = cache_dir
        self._today = today
        self._entries: dict[str, list[OptionContract]] | None = None
        self._day = ""
        self._loading = anyio.Lock()  # concurrent requests read the file once

    def _path(self) -> Path:
        return self._cache_dir / f"contracts-{self._today().isoformat()}.json"

    async def get(self, key: str) -> tuple[OptionContract, ...] | None:
        entries = await self._load()
        found = entries.get(key)
        return tuple(found) if found is not None else None

    async def put(self, key: str, contracts: tuple[OptionContract, ...]) -> None:
        entries = await self._load()
        entries[key] = list(contracts)
        path = anyio.Path(self._path())
        try:
            await path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{id(entries)}.tmp")
            await tmp.write_bytes(msgspec.json.encode(entries))
            await tmp.replace(path)
        except OSError as exc:
            log.warning("could not write the contract cache %s: %s", path, exc)

    async def _load(self) -> dict[str, list[OptionContract]]:
        async with self._loading:
            day = self._today().isoformat()
            if self._entries is not None and self._day == day:
                return self._entries
            entries: dict[str, list[OptionContract]] = {}
            path = anyio.Path(self._path())
            try:
                raw = await path.read_bytes()
                entries = msgspec.json.decode(raw, type=dict[str, list[OptionContract]])
            except FileNotFoundError:
                pass
            except (OSError, msgspec.DecodeError) as exc:
                log.warning("ignoring unreadable contract cache %s: %s", path, exc)
            self._entries, self._day = entries, day
            return entries
