"""Server-held previews: opaque single-use ids bound to an exact order (pure, no I/O).

A preview is the only way an order reaches TWS. Its id (``secrets``, 144 bits) maps to the stored
order and a sha256 of its canonical form; the model can never pass legs or prices to execute.
Ideas from notes/competitors.md §2-§3 and §10: the order stays on the server (ib-gateway-mcp), a
TTL on the monotonic *and* the wall clock (tastytrade: whichever ends first, so a laptop suspend
cannot stretch it), atomic single use (the check and the mark have no ``await`` between them; the
store is synchronous), and tombstones so a refusal can say *why* an id no longer works.

A stored :class:`Preview` holds the :class:`~sumppump.messages.execution.CreatePreview` it was
made from (``terms``, with the order bound to the id): no field list is copied by hand, so a
term added to ``CreatePreview`` reaches the stored preview by itself.

:class:`PreviewStore` is not thread-safe and need not be: one actor owns it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from sumppump.messages.execution import CreatePreview, PreviewKind
from sumppump.messages.orders import OrderSpec
from sumppump.trading.confirm import confirm_text_for
from sumppump.trading.prices import structure_mid

__all__ = [
    "PREVIEW_ID_PREFIX",
    "FollowUp",
    "Preview",
    "PreviewStore",
    "Tombstone",
    "TombstoneReason",
    "is_preview_id",
    "new_preview_id",
    "order_digest",
    "replace_order_ref",
]

#: Every order we place carries ``orderRef = preview id``; the prefix tells ours from others'.
PREVIEW_ID_PREFIX: Final = "sp-"
_ID_BYTES: Final = 18  # 144 bits of randomness
_ID_RE: Final = re.compile(r"^sp-[A-Za-z0-9_-]{24}$")

TombstoneReason = Literal[
    "used",  # submitted (or handed to TWS with an unknown outcome)
    "expired",  # TTL passed
    "voided",  # the session switched to another symbol (older versions; still read in logs)
    "superseded",  # price moved; a fresh preview replaced it
    "risk_refused",  # the re-check at execute time refused it
    "epoch_changed",  # the connection was re-established since the preview
    "evicted",  # too many open previews; the oldest was dropped
    "declined",  # the person pressed Cancel in the order ticket
]


def new_preview_id() -> str:
    """A fresh preview id: ``sp-`` and 24 URL-safe characters (144 random bits)."""
    return PREVIEW_ID_PREFIX + secrets.token_urlsafe(_ID_BYTES)


def is_preview_id(value: str) -> bool:
    """Whether ``value`` has the shape of one of our ids (our orderRefs)."""
    return bool(_ID_RE.match(value))


def order_digest(
    order: OrderSpec, *, symbol: str, kind: str, epoch: int, snapshot_mid: float | None
) -> str:
    """sha256 (hex) of the canonical JSON of everything a preview binds: the order (with its
    order_ref), the symbol, the kind, the connection epoch and the snapshot mid. Keys sorted,
    so the digest depends on values only."""
    payload = {
        "order": msgspec.to_builtins(order),
        "symbol": symbol,
        "kind": kind,
        "epoch": epoch,
        "snapshot_mid": snapshot_mid,
    }
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()


class FollowUp(msgspec.Struct, frozen=True, kw_only=True):
    """A stop to cancel (``reduce_by`` ≥ its size) or shrink once ``after_ref`` has filled:
    ``per_unit`` of the stop's quantity per unit of ``after_ref`` filled. A close or roll's
    preview carries them; on submit they move onto the order's ledger record."""

    after_ref: str
    stop_ref: str
    per_unit: float


@dataclass(frozen=True, slots=True)
class Preview:
    """One stored preview: ``terms`` as created (symbol upper-cased, ``terms.order.order_ref ==
    preview_id``), the confirm text and digest made from them, and the two clocks' expiry."""

    preview_id: str
    terms: CreatePreview
    confirm_text: str
    digest: str
    snapshot_mid: float | None
    created_mono: float
    created_wall: float
    expires_mono: float
    expires_wall: float
    follow_ups: tuple[FollowUp, ...] = ()

    @property
    def order(self) -> OrderSpec:
        return self.terms.order

    @property
    def symbol(self) -> str:
        return self.terms.symbol

    @property
    def kind(self) -> PreviewKind:
        return self.terms.kind

    @property
    def expires_at(self) -> str:
        return dt.datetime.fromtimestamp(self.expires_wall, dt.UTC).isoformat(timespec="seconds")

    def intact(self) -> bool:
        """Whether the stored order still hashes to the digest it was issued with."""
        return hmac.compare_digest(
            self.digest,
            order_digest(
                self.order,
                symbol=self.symbol,
                kind=self.kind,
                epoch=self.terms.epoch,
                snapshot_mid=self.snapshot_mid,
            ),
        )


@dataclass(frozen=True, slots=True)
class Tombstone:
    preview_id: str
    reason: TombstoneReason
    symbol: str
    at_wall: float
    detail: str = ""


@dataclass(slots=True)
class PreviewStore:
    """Open previews and the tombstones of finished ones.

    ``mono`` and ``wall`` are the clocks (injectable for tests). Expiry is checked lazily on
    every access: a preview is expired when *either* clock says its TTL has passed.
    ``max_open`` bounds open previews (the oldest is evicted); ``max_tombstones`` bounds the
    memory of finished ids (older ones then read as unknown).
    """

    ttl_s: float
    mono: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    max_open: int = 256
    max_tombstones: int = 4096
    _open: OrderedDict[str, Preview] = field(default_factory=OrderedDict)
    _tombstones: OrderedDict[str, Tombstone] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if not self.ttl_s > 0:
            raise ValueError("the preview TTL must be positive")

    # -- creation

    def add(
        self,
        terms: CreatePreview,
        *,
        follow_ups: tuple[FollowUp, ...] = (),
        ttl_s: float | None = None,
    ) -> Preview:
        """Store ``terms.order`` under a fresh id (its ``order_ref`` becomes the id) and return
        the preview; ``follow_ups`` (the stops a close or roll takes along) are bound to it.

        :raises ValueError: the order is not placeable as given (no legs, quantity < 1,
            ``order_ref`` already set, a limit order without a limit price, a single leg with a
            non-positive limit price, legs of another symbol).
        """
        symbol = terms.symbol.upper()
        _validate(terms.order, symbol)
        preview_id = new_preview_id()
        while preview_id in self._open or preview_id in self._tombstones:  # pragma: no cover
            preview_id = new_preview_id()
        bound = msgspec.structs.replace(
            terms, symbol=symbol, order=replace_order_ref(terms.order, preview_id)
        )
        snapshot_mid = structure_mid(bound.order, bound.quote_snapshot)
        ttl = self.ttl_s if ttl_s is None else ttl_s
        now_mono, now_wall = self.mono(), self.wall()
        confirm = confirm_text_for(
            bound.order,
            kind=bound.kind,
            account_kind=bound.account_kind,
            max_loss=bound.max_loss,
            strategy=bound.strategy,
            replaces_order_ref=bound.replaces_order_ref,
        )
        digest = order_digest(
            bound.order,
            symbol=symbol,
            kind=bound.kind,
            epoch=bound.epoch,
            snapshot_mid=snapshot_mid,
        )
        preview = Preview(
            preview_id=preview_id,
            terms=bound,
            confirm_text=confirm,
            digest=digest,
            snapshot_mid=snapshot_mid,
            created_mono=now_mono,
            created_wall=now_wall,
            expires_mono=now_mono + ttl,
            expires_wall=now_wall + ttl,
            follow_ups=tuple(msgspec.structs.replace(f, after_ref=preview_id) for f in follow_ups),
        )
        self._open[preview_id] = preview
        while len(self._open) > self.max_open:
            oldest = next(iter(self._open))
            self.retire(oldest, "evicted")
        return preview

    # -- lookup and single use

    def lookup(self, preview_id: str) -> Preview | Tombstone | None:
        """The open preview, the tombstone of a finished one, or ``None`` (never issued, or
        forgotten). An open preview whose TTL passed is turned into an ``expired`` tombstone
        here."""
        preview = self._open.get(preview_id)
        if preview is not None:
            if self._expired(preview):
                return self.retire(preview_id, "expired")
            return preview
        return self._tombstones.get(preview_id)

    def claim(self, preview_id: str) -> Preview | Tombstone | None:
        """Single use: return the open, unexpired preview and retire it as ``used`` in the
        same synchronous step; a second claim gets the tombstone."""
        found = self.lookup(preview_id)
        if isinstance(found, Preview):
            self.retire(preview_id, "used")
        return found

    def retire(
        self, preview_id: str, reason: TombstoneReason, detail: str = ""
    ) -> Tombstone | None:
        """Close an open preview with a tombstone saying why. ``None`` if it was not open."""
        preview = self._open.pop(preview_id, None)
        if preview is None:
            return None
        tomb = Tombstone(preview_id, reason, preview.symbol, self.wall(), detail)
        self._tombstones[preview_id] = tomb
        while len(self._tombstones) > self.max_tombstones:
            self._tombstones.popitem(last=False)
        return tomb

    def remember_used(self, preview_id: str, symbol: str = "") -> None:
        """Record a tombstone for an id used before this store existed (a restart reads the
        audit log), so replaying it says ``used``, not ``unknown``."""
        if preview_id not in self._open and preview_id not in self._tombstones:
            self._tombstones[preview_id] = Tombstone(preview_id, "used", symbol, self.wall())

    def void_symbol(self, symbol: str) -> list[str]:
        """Void every open preview of ``symbol`` (the session moved to another symbol)."""
        ids = [pid for pid, p in self._open.items() if p.symbol.upper() == symbol.upper()]
        for pid in ids:
            self.retire(pid, "voided", f"the session switched away from {symbol}")
        return ids

    def void_other_symbols(self, current: str) -> list[str]:
        """Void every open preview whose symbol is not ``current``."""
        ids = [pid for pid, p in self._open.items() if p.symbol.upper() != current.upper()]
        for pid in ids:
            self.retire(pid, "voided", f"the session switched to {current}")
        return ids

    def sweep(self) -> list[str]:
        """Retire every expired open preview; returns their ids."""
        ids = [pid for pid, p in self._open.items() if self._expired(p)]
        for pid in ids:
            self.retire(pid, "expired")
        return ids

    def open_ids(self) -> list[str]:
        return list(self._open)

    def remaining_s(self, preview: Preview) -> float:
        return max(
            0.0,
            min(preview.expires_mono - self.mono(), preview.expires_wall - self.wall()),
        )

    def _expired(self, preview: Preview) -> bool:
        return self.mono() >= preview.expires_mono or self.wall() >= preview.expires_wall


def replace_order_ref(order: OrderSpec, order_ref: str) -> OrderSpec:
    return msgspec.structs.replace(order, order_ref=order_ref)


def _validate(order: OrderSpec, symbol: str) -> None:
    if order.order_ref:
        raise ValueError("order_ref must be empty: execution sets it to the preview id")
    if not order.legs:
        raise ValueError("an order needs at least one leg")
    if order.quantity < 1:
        raise ValueError("quantity must be at least 1")
    if not order.account:
        raise ValueError("the order names no account")
    if any(leg.ratio < 1 for leg in order.legs):
        raise ValueError("leg ratios must be at least 1")
    if any(leg.symbol.upper() != symbol.upper() for leg in order.legs):
        raise ValueError(f"every leg must be on {symbol}")
    if order.order_type in ("LMT", "STP LMT") and order.limit_price is None:
        raise ValueError(f"a {order.order_type} order needs a limit price")
    if order.order_type in ("STP", "STP LMT") and order.stop_price is None:
        raise ValueError(f"a {order.order_type} order needs a stop price")
    if order.order_type == "MKT":
        raise ValueError("market orders are never placed; use a limit price")
    if len(order.legs) == 1 and order.limit_price is not None and order.limit_price <= 0:
        raise ValueError("a single-leg limit price must be positive")
    if len(order.legs) > 1 and len({leg.con_id for leg in order.legs}) != len(order.legs):
        raise ValueError("a combo names the same contract twice")
