"""Server-held previews: opaque single-use ids bound to an exact order (pure, no I/O).

A preview is the only way an order reaches TWS. Its id (``secrets``, 144 bits) maps to the stored
order and a sha256 of its canonical form; the model can never pass legs or prices to execute.
Ideas from notes/competitors.md §2-§3 and §10: the order stays on the server (ib-gateway-mcp), a
TTL on the monotonic *and* the wall clock (tastytrade: whichever ends first, so a laptop suspend
cannot stretch it), atomic single use (the check and the mark have no ``await`` between them; the
store is synchronous), and tombstones so a refusal can say *why* an id no longer works.

:class:`PreviewStore` is not thread-safe and need not be: one actor owns it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from sumppump.messages.chain_cache import LegKey
from sumppump.messages.common import Quote
from sumppump.messages.execution import ChangeDetails
from sumppump.messages.orders import OrderLeg, OrderSpec
from sumppump.messages.risk import QuoteSnapshot
from sumppump.strategies.model import StrategyLeg

__all__ = [
    "PREVIEW_ID_PREFIX",
    "Preview",
    "PreviewStore",
    "Tombstone",
    "TombstoneReason",
    "confirm_matches",
    "confirm_text_for",
    "is_preview_id",
    "money",
    "new_preview_id",
    "option_price_tick",
    "order_digest",
    "price_multiplier",
    "replace_order_ref",
    "round_to_tick",
    "slippage_allowance",
    "snapshot_quotes",
    "structure_mid",
]

#: Every order we place carries ``orderRef = preview id``; the prefix tells ours from others'.
PREVIEW_ID_PREFIX: Final = "sp-"
_ID_BYTES: Final = 18  # 144 bits of randomness
_ID_RE: Final = re.compile(r"^sp-[A-Za-z0-9_-]{24}$")

TombstoneReason = Literal[
    "used",  # submitted (or handed to TWS with an unknown outcome)
    "expired",  # TTL passed
    "voided",  # the session switched to another symbol
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


# ---------------------------------------------------------------- prices


def round_to_tick(price: float, tick: float) -> float:
    """``price`` rounded to the nearest multiple of ``tick`` (half away from zero)."""
    if tick <= 0:
        raise ValueError("tick must be positive")
    steps = abs(price) / tick
    rounded = math.floor(steps + 0.5 + 1e-9) * tick
    return round(math.copysign(rounded, price), 10)


def structure_mid(order: OrderSpec, quotes: Iterable[Quote]) -> float | None:
    """The mid of one unit of ``order``'s structure in the limit price's convention (BUY
    legs add, SELL legs subtract, times the leg ratio; a single leg is its own mid).

    For a single-leg order the ratio is ignored (the unit is one contract or share); for a BAG
    each leg counts ``ratio`` times. ``None`` when any leg has no usable mid (no two-sided
    quote): the slippage check then cannot run, and the caller says so.
    """
    mids = {q.con_id: q.mid for q in quotes}
    if len(order.legs) == 1:
        return mids.get(order.legs[0].con_id)
    total = 0.0
    for leg in order.legs:
        mid = mids.get(leg.con_id)
        if mid is None:
            return None
        total += (1 if leg.action == "BUY" else -1) * leg.ratio * mid
    return round(total, 6)


def option_leg_keys(legs: Iterable[OrderLeg]) -> tuple[LegKey, ...]:
    """The option legs of an order as the chain cache names them (stock legs left out)."""
    return tuple(
        LegKey(expiry=leg.expiry, strike=leg.strike, right=leg.right)
        for leg in legs
        if leg.sec_type == "OPT"
        and leg.expiry is not None
        and leg.strike is not None
        and leg.right is not None
    )


def strategy_legs(legs: Iterable[OrderLeg]) -> tuple[StrategyLeg, ...]:
    """An order's legs in the strategies' vocabulary (right ``STK`` for stock)."""
    return tuple(
        StrategyLeg(
            action=leg.action,
            right=leg.right if leg.sec_type == "OPT" and leg.right else "STK",
            strike=leg.strike,
            expiry=leg.expiry,
            ratio=leg.ratio,
        )
        for leg in legs
    )


def option_price_tick(price: float) -> float:
    """A price increment every common US option market rule accepts at ``price``: 0.05 below
    $3 and 0.10 from $3 (the non-penny rule; penny-pilot names also accept these). Used for
    prices we compute ourselves (stops, fresh previews) when the contract's own rule is not at
    hand."""
    return 0.10 if abs(price) >= 3.0 - 1e-9 else 0.05


def snapshot_quotes(snapshot: QuoteSnapshot) -> tuple[Quote, ...]:
    """The risk actor's :class:`~sumppump.messages.risk.QuoteSnapshot` as the quotes a
    :class:`~sumppump.messages.execution.CreatePreview` carries (one per leg, plus the
    underlying)."""
    quotes = [
        Quote(con_id=leg.con_id, bid=leg.bid, ask=leg.ask, ts=leg.ts, data_type=snapshot.data_type)
        for leg in snapshot.legs
    ]
    if all(q.con_id != snapshot.underlying_con_id for q in quotes):
        quotes.append(
            Quote(
                con_id=snapshot.underlying_con_id,
                bid=snapshot.underlying_bid,
                ask=snapshot.underlying_ask,
                last=snapshot.underlying_last,
                ts=snapshot.ts,
                data_type=snapshot.data_type,
            )
        )
    return tuple(quotes)


def slippage_allowance(reference: float, max_slippage: float, tick: float) -> float:
    """How far the mid may move before ``PRICE_MOVED``: ``max_slippage`` (a share, 0.10 = 10 %)
    of the absolute debit/credit, or one tick, whichever is larger."""
    return max(abs(reference) * max_slippage, tick)


def price_multiplier(order: OrderSpec) -> float:
    """Money per 1.00 of the order's unit price: the option multiplier when any leg is an
    option (IB quotes option combos per share), else 1 (stock)."""
    option_multipliers = [leg.multiplier for leg in order.legs if leg.sec_type == "OPT"]
    return max(option_multipliers) if option_multipliers else 1.0


# ---------------------------------------------------------------- confirm text


def money(value: float) -> str:
    """``$1,234.50`` (negative as ``-$12.00``)."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.4g}"


def _leg_words(leg: OrderLeg) -> str:
    if leg.sec_type == "STK":
        return f"{leg.symbol} shares"
    right = {"C": "call", "P": "put"}.get(leg.right or "", "?")
    return f"{leg.symbol} {leg.expiry} {_num(leg.strike or 0.0)} {right}"


def _order_words(order: OrderSpec) -> str:
    if len(order.legs) == 1:
        leg = order.legs[0]
        qty = order.quantity * leg.ratio
        unit = "contract" if leg.sec_type == "OPT" else "share"
        plural = "" if qty == 1 else "s"
        return f"{leg.action} {qty} {unit}{plural} of {_leg_words(leg)}"
    parts = [
        f"{'+' if leg.action == 'BUY' else '-'}{leg.ratio} {_leg_words(leg)}" for leg in order.legs
    ]
    plural = "" if order.quantity == 1 else "s"
    return f"{order.quantity} guaranteed combo{plural} ({'; '.join(parts)})"


def _price_words(order: OrderSpec) -> str:
    tif = order.tif
    match order.order_type:
        case "LMT":
            assert order.limit_price is not None
            if len(order.legs) > 1:
                side = "debit" if order.limit_price >= 0 else "credit"
                return f"limit {_num(abs(order.limit_price))} net {side} per unit, {tif}"
            return f"limit {_num(order.limit_price)}, {tif}"
        case "STP":
            return f"stop {_num(order.stop_price or 0.0)} (market when triggered), {tif}"
        case "STP LMT":
            return (
                f"stop {_num(order.stop_price or 0.0)} then limit "
                f"{_num(order.limit_price or 0.0)}, {tif}"
            )
        case _:
            return f"{order.order_type}, {tif}"


_KIND_WORDS: Final = {
    "open": "Open",
    "stop": "Protective stop",
    "close": "Close",
    "modify": "Change",
    "roll": "Roll",
}


def confirm_text_for(
    order: OrderSpec,
    *,
    kind: str,
    account_kind: str,
    max_loss: float | None,
    strategy: str = "",
    replaces_order_ref: str = "",
) -> str:
    """One line stating the order and its max loss in words, e.g.
    ``Open bull call spread on LIVE account U1234567: 1 guaranteed combo (+1 AAPL 2026-12-18 230
    call; -1 AAPL 2026-12-18 240 call), limit 3.25 net debit per unit, DAY. You can lose at
    most $325.00.``

    Built only from the stored order and analysis, so the words are what would be sent.
    """
    head = _KIND_WORDS.get(kind, kind.capitalize())
    what = f" {strategy.replace('_', ' ')}" if strategy else ""
    target = f" order {replaces_order_ref}" if replaces_order_ref else ""
    if max_loss is None:
        loss = "Your possible loss is not limited."
    elif max_loss <= 0:
        loss = "This order adds no loss beyond what you hold."
    else:
        loss = f"You can lose at most {money(max_loss)}."
    text = (
        f"{head}{what}{target} on {account_kind} account {order.account}: "
        f"{_order_words(order)}, {_price_words(order)}. {loss}"
    )
    if not order.transmit:
        text += " It waits for Transmit in TWS."
    return " ".join(text.split())


def _normalise(text: str) -> str:
    return " ".join(text.split())


def confirm_matches(expected: str, given: str) -> bool:
    """Exact match up to whitespace runs (clients reflow long lines); constant-time compare."""
    return hmac.compare_digest(_normalise(expected).encode(), _normalise(given).encode())


# ---------------------------------------------------------------- the store


@dataclass(frozen=True, slots=True)
class Preview:
    """One stored preview. ``order.order_ref == preview_id``."""

    preview_id: str
    order: OrderSpec
    symbol: str
    kind: str
    strategy: str
    confirm_text: str
    digest: str
    max_loss: float | None
    max_gain: float | None
    breakevens: tuple[float, ...]
    net_debit: float
    quote_snapshot: tuple[Quote, ...]
    snapshot_mid: float | None
    underlying_price: float | None
    epoch: int
    account_kind: str
    min_tick: float
    replaces_order_ref: str
    created_mono: float
    created_wall: float
    expires_mono: float
    expires_wall: float
    warnings: tuple[str, ...] = ()
    commission: float = 0.0
    shares_held_used: int = 0
    order_max_loss: float | None = None
    details: ChangeDetails | None = None
    opening_con_ids: tuple[int, ...] = ()

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
                epoch=self.epoch,
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
        order: OrderSpec,
        *,
        symbol: str,
        kind: str,
        strategy: str = "",
        max_loss: float | None,
        max_gain: float | None,
        breakevens: tuple[float, ...] = (),
        net_debit: float,
        quote_snapshot: tuple[Quote, ...] = (),
        underlying_price: float | None = None,
        epoch: int,
        account_kind: str,
        min_tick: float = 0.01,
        replaces_order_ref: str = "",
        warnings: tuple[str, ...] = (),
        ttl_s: float | None = None,
        commission: float = 0.0,
        shares_held_used: int = 0,
        order_max_loss: float | None = None,
        details: ChangeDetails | None = None,
        opening_con_ids: tuple[int, ...] = (),
    ) -> Preview:
        """Store ``order`` under a fresh id (its ``order_ref`` becomes the id) and return it.

        :raises ValueError: the order is not placeable as given (no legs, quantity < 1,
            ``order_ref`` already set, a limit order without a limit price, a single leg with a
            non-positive limit price, legs of another symbol).
        """
        _validate(order, symbol)
        preview_id = new_preview_id()
        while preview_id in self._open or preview_id in self._tombstones:  # pragma: no cover
            preview_id = new_preview_id()
        bound = replace_order_ref(order, preview_id)
        snapshot_mid = structure_mid(bound, quote_snapshot)
        ttl = self.ttl_s if ttl_s is None else ttl_s
        now_mono, now_wall = self.mono(), self.wall()
        confirm = confirm_text_for(
            bound,
            kind=kind,
            account_kind=account_kind,
            max_loss=max_loss,
            strategy=strategy,
            replaces_order_ref=replaces_order_ref,
        )
        preview = Preview(
            preview_id=preview_id,
            order=bound,
            symbol=symbol,
            kind=kind,
            strategy=strategy,
            confirm_text=confirm,
            digest=order_digest(
                bound, symbol=symbol, kind=kind, epoch=epoch, snapshot_mid=snapshot_mid
            ),
            max_loss=max_loss,
            max_gain=max_gain,
            breakevens=breakevens,
            net_debit=net_debit,
            quote_snapshot=quote_snapshot,
            snapshot_mid=snapshot_mid,
            underlying_price=underlying_price,
            epoch=epoch,
            account_kind=account_kind,
            min_tick=min_tick,
            replaces_order_ref=replaces_order_ref,
            created_mono=now_mono,
            created_wall=now_wall,
            expires_mono=now_mono + ttl,
            expires_wall=now_wall + ttl,
            warnings=warnings,
            commission=commission,
            shares_held_used=shares_held_used,
            order_max_loss=order_max_loss,
            details=details,
            opening_con_ids=opening_con_ids,
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
