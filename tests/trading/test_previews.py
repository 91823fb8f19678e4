"""The pure preview store: ids, binding, confirm text, TTL on two clocks, single use, tombstones."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sumppump.messages.common import Quote
from sumppump.messages.execution import CreatePreview
from sumppump.messages.orders import OrderLeg, OrderSpec
from sumppump.trading.confirm import confirm_matches
from sumppump.trading.previews import (
    Preview,
    PreviewStore,
    Tombstone,
    is_preview_id,
    new_preview_id,
    order_digest,
)
from sumppump.trading.prices import round_to_tick, slippage_allowance, structure_mid

ACCOUNT = "U1234567"


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0


def call_leg(con_id: int, strike: float, action: str = "BUY") -> OrderLeg:
    return OrderLeg(
        con_id=con_id,
        symbol="AAPL",
        sec_type="OPT",
        action=action,  # type: ignore[arg-type]
        ratio=1,
        multiplier=100.0,
        expiry="2026-12-18",
        strike=strike,
        right="C",
    )


def spread(limit: float = 3.25, quantity: int = 1) -> OrderSpec:
    return OrderSpec(
        order_ref="",
        account=ACCOUNT,
        symbol="AAPL",
        legs=(call_leg(11, 230.0), call_leg(12, 240.0, "SELL")),
        quantity=quantity,
        limit_price=limit,
    )


def single(limit: float = 5.10, quantity: int = 2) -> OrderSpec:
    return OrderSpec(
        order_ref="",
        account=ACCOUNT,
        symbol="AAPL",
        legs=(call_leg(11, 230.0),),
        quantity=quantity,
        limit_price=limit,
    )


def make_store(ttl: float = 120.0) -> tuple[PreviewStore, Clocks]:
    clocks = Clocks()
    return PreviewStore(ttl, mono=lambda: clocks.mono, wall=lambda: clocks.wall), clocks


def add(
    store: PreviewStore, order: OrderSpec | None = None, symbol: str = "AAPL", **kw: object
) -> Preview:
    order = order or spread()
    if symbol != "AAPL":
        order = msgspec.structs.replace(
            order,
            symbol=symbol,
            legs=tuple(msgspec.structs.replace(leg, symbol=symbol) for leg in order.legs),
        )
    args: dict[str, object] = {
        "symbol": symbol,
        "kind": "open",
        "strategy": "bull_call_spread",
        "max_loss": 325.0,
        "max_gain": 675.0,
        "net_debit": order.limit_price or 0.0,
        "epoch": 1,
        "account_kind": "LIVE",
        "quote_snapshot": (Quote(con_id=11, bid=5.0, ask=5.2), Quote(con_id=12, bid=1.9, ask=2.1)),
    }
    args.update(kw)
    ttl = args.pop("ttl_s", None)
    terms = msgspec.convert(
        {"order": msgspec.to_builtins(order), **msgspec.to_builtins(args)}, CreatePreview
    )
    return store.add(terms, ttl_s=ttl)  # type: ignore[arg-type]


def test_ids_are_unique_opaque_and_carry_at_least_128_random_bits() -> None:
    ids = {new_preview_id() for _ in range(2000)}
    assert len(ids) == 2000
    for pid in list(ids)[:50]:
        assert is_preview_id(pid)
        assert len(pid) - 3 == 24  # 24 base64 characters = 144 bits
    assert not is_preview_id("sp-short")
    assert not is_preview_id("order-123")


def test_preview_binds_the_order_ref_to_its_id_and_hashes_the_exact_order() -> None:
    store, _ = make_store()
    preview = add(store)
    assert preview.order.order_ref == preview.preview_id
    assert preview.intact()
    assert preview.snapshot_mid == pytest.approx(5.1 - 2.0)
    base = {"symbol": "AAPL", "kind": "open", "epoch": 1, "snapshot_mid": preview.snapshot_mid}
    changed = [
        msgspec.structs.replace(preview.order, limit_price=3.26),
        msgspec.structs.replace(preview.order, quantity=2),
        msgspec.structs.replace(preview.order, tif="GTC"),
        msgspec.structs.replace(preview.order, account="U7654321"),
        msgspec.structs.replace(preview.order, legs=preview.order.legs[::-1]),
    ]
    for order in changed:
        assert order_digest(order, **base) != preview.digest  # type: ignore[arg-type]
    assert order_digest(preview.order, **{**base, "epoch": 2}) != preview.digest  # type: ignore[arg-type]
    tampered = Preview(
        **{
            **{f: getattr(preview, f) for f in Preview.__slots__},
            "terms": msgspec.structs.replace(preview.terms, order=changed[0]),
        }
    )
    assert not tampered.intact()


def test_confirm_text_is_one_line_with_the_order_and_max_loss_in_words() -> None:
    store, _ = make_store()
    text = add(store).confirm_text
    assert "\n" not in text
    assert text.startswith("Open bull call spread on LIVE account U1234567:")
    assert "+1 AAPL 2026-12-18 230 call; -1 AAPL 2026-12-18 240 call" in text
    assert "limit 3.25 net debit per unit, DAY" in text
    assert text.endswith("You can lose at most $325.00.")
    one = add(store, single(), strategy="long_call", max_loss=1020.0).confirm_text
    assert "BUY 2 contracts of AAPL 2026-12-18 230 call, limit 5.1, DAY" in one
    assert "$1,020.00" in one
    unbounded = add(store, max_loss=None).confirm_text
    assert "not limited" in unbounded


def test_confirm_text_of_a_stop_and_of_an_untransmitted_order() -> None:
    store, _ = make_store()
    stop = OrderSpec(
        order_ref="",
        account=ACCOUNT,
        symbol="AAPL",
        legs=(call_leg(11, 230.0, "SELL"),),
        quantity=2,
        order_type="STP",
        stop_price=2.55,
        tif="GTC",
    )
    text = add(store, stop, kind="stop", strategy="", max_loss=0.0, net_debit=0.0).confirm_text
    assert text.startswith("Protective stop on LIVE account")
    assert (
        "SELL 2 contracts of AAPL 2026-12-18 230 call, stop 2.55 (market when triggered), GTC"
        in text
    )
    held = add(store, msgspec.structs.replace(spread(), transmit=False)).confirm_text
    assert held.endswith("It waits for Transmit in TWS.")


def test_confirm_matching_is_exact_up_to_whitespace() -> None:
    text = "Open long call on LIVE account U1: BUY 1 contract. You can lose at most $325.00."
    assert confirm_matches(text, "  " + text.replace(" ", "  \n") + "\n")
    assert not confirm_matches(text, text.replace("$325.00", "$3.25"))
    assert not confirm_matches(text, text[:-1])
    assert not confirm_matches(text, "")


def test_a_preview_is_single_use() -> None:
    store, _ = make_store()
    pid = add(store).preview_id
    first = store.claim(pid)
    assert isinstance(first, Preview)
    second = store.claim(pid)
    assert isinstance(second, Tombstone) and second.reason == "used"
    assert store.lookup(pid) == second


def test_unknown_ids_are_none_and_forgotten_tombstones_become_unknown() -> None:
    store, _ = make_store()
    store.max_tombstones = 2
    assert store.lookup(new_preview_id()) is None
    ids = [add(store).preview_id for _ in range(3)]
    for pid in ids:
        store.claim(pid)
    assert store.lookup(ids[0]) is None
    assert isinstance(store.lookup(ids[2]), Tombstone)


def test_expiry_on_the_monotonic_clock_alone() -> None:
    store, clocks = make_store(ttl=2.0)
    pid = add(store).preview_id
    clocks.mono += 1.9
    assert isinstance(store.lookup(pid), Preview)
    clocks.mono += 0.1
    tomb = store.claim(pid)
    assert isinstance(tomb, Tombstone) and tomb.reason == "expired"


def test_expiry_on_the_wall_clock_alone_covers_a_suspended_laptop() -> None:
    store, clocks = make_store(ttl=120.0)
    pid = add(store).preview_id
    clocks.wall += 3600  # suspended: the monotonic clock did not advance
    tomb = store.lookup(pid)
    assert isinstance(tomb, Tombstone) and tomb.reason == "expired"


def test_expires_at_is_iso_utc_and_remaining_counts_down() -> None:
    store, clocks = make_store(ttl=120.0)
    preview = add(store)
    assert preview.expires_at == "2027-01-15T08:02:00+00:00"
    clocks.mono += 20
    assert store.remaining_s(preview) == pytest.approx(100.0)


def test_voiding_a_symbol_tombstones_only_its_previews() -> None:
    store, _ = make_store()
    aapl = add(store).preview_id
    msft = add(store, symbol="MSFT").preview_id
    assert store.void_symbol("aapl") == [aapl]
    tomb = store.lookup(aapl)
    assert isinstance(tomb, Tombstone) and tomb.reason == "voided"
    assert isinstance(store.lookup(msft), Preview)
    assert store.void_other_symbols("AAPL") == [msft]


def test_the_oldest_open_preview_is_evicted_beyond_the_bound() -> None:
    store, _ = make_store()
    store.max_open = 2
    ids = [add(store).preview_id for _ in range(3)]
    tomb = store.lookup(ids[0])
    assert isinstance(tomb, Tombstone) and tomb.reason == "evicted"
    assert store.open_ids() == ids[1:]


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (msgspec.structs.replace(spread(), order_ref="sp-x"), "order_ref"),
        (msgspec.structs.replace(spread(), legs=()), "leg"),
        (msgspec.structs.replace(spread(), quantity=0), "quantity"),
        (msgspec.structs.replace(spread(), limit_price=None), "limit price"),
        (msgspec.structs.replace(single(), limit_price=0.0), "positive"),
        (msgspec.structs.replace(spread(), order_type="MKT"), "market"),
        (msgspec.structs.replace(spread(), account=""), "account"),
        (
            msgspec.structs.replace(
                spread(), legs=(call_leg(11, 230.0), call_leg(11, 230.0, "SELL"))
            ),
            "twice",
        ),
    ],
)
def test_orders_that_cannot_be_placed_as_given_are_refused(order: OrderSpec, message: str) -> None:
    store, _ = make_store()
    with pytest.raises(ValueError, match=message):
        add(store, order)
    assert store.open_ids() == []


def test_structure_mid_signs_legs_and_needs_every_leg_quoted() -> None:
    quotes = (Quote(con_id=11, bid=5.0, ask=5.2), Quote(con_id=12, bid=1.9, ask=2.1))
    assert structure_mid(spread(), quotes) == pytest.approx(3.1)
    assert structure_mid(single(), quotes) == pytest.approx(5.1)
    assert structure_mid(spread(), quotes[:1]) is None
    assert structure_mid(spread(), (quotes[0], Quote(con_id=12, bid=None, ask=2.1))) is None


def test_slippage_allowance_is_ten_percent_or_one_tick_whichever_is_larger() -> None:
    assert slippage_allowance(3.25, 0.10, 0.01) == pytest.approx(0.325)
    assert slippage_allowance(0.05, 0.10, 0.01) == pytest.approx(0.01)
    assert slippage_allowance(-2.0, 0.10, 0.05) == pytest.approx(0.2)


def test_round_to_tick() -> None:
    assert round_to_tick(3.1249, 0.05) == pytest.approx(3.10)
    assert round_to_tick(3.125, 0.05) == pytest.approx(3.15)
    assert round_to_tick(-1.234, 0.01) == pytest.approx(-1.23)
    with pytest.raises(ValueError):
        round_to_tick(1.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "claim", "tick", "void", "sweep"]),
            st.integers(min_value=0, max_value=7),
        ),
        max_size=60,
    )
)
def test_no_preview_is_ever_claimed_twice(ops: list[tuple[str, int]]) -> None:
    store, clocks = make_store(ttl=5.0)
    ids: list[str] = []
    claimed: set[str] = set()
    for op, n in ops:
        match op:
            case "add":
                ids.append(add(store, symbol=("AAPL", "MSFT")[n % 2]).preview_id)
            case "claim" if ids:
                pid = ids[n % len(ids)]
                got = store.claim(pid)
                if isinstance(got, Preview):
                    assert pid not in claimed
                    assert clocks.mono < got.expires_mono and clocks.wall < got.expires_wall
                    claimed.add(pid)
                else:
                    assert got is not None
            case "tick":
                clocks.mono += n
            case "void":
                store.void_symbol(("AAPL", "MSFT")[n % 2])
            case "sweep":
                store.sweep()
