"""The simulated broker: accounts, positions, the order state machine, fills and what-if.

Orders follow IB's visible states: ``PreSubmitted`` (accepted, waiting: market closed,
untransmitted,
or a stop not yet triggered) -> ``Submitted`` (working) -> partial fills -> ``Filled``; or
``Cancelled`` / ``Inactive``. Matching is against the simulated quote:

* MKT fills at the touch (ask to buy, bid to sell);
* LMT fills at the touch when marketable; with ``fill_policy="mid"`` (the default) a limit at or
  better than the mid also fills, at the limit (what a patient mid-price order usually gets);
  ``fill_policy="touch"`` fills only marketable limits;
* STP / STP LMT trigger on the last price crossing the stop, then behave as MKT / LMT;
* BAG combos fill all legs together at a net price (guaranteed combo), with one execution per leg
  plus one for the combo, like TWS.

Options trading permission follows IBKR's levels: 1 covered calls, 2 adds long options and
debit spreads (every short option covered by stock or by a long option of the same type and expiry
with a better strike), 3 credit spreads, 4 uncovered. An order the account's level does not allow
is rejected with error 201, whether it is placed or only previewed (what-if).

OCA groups (``ocaGroup`` + ``ocaType``, per account) follow IB: when an order of a group executes
a quantity q, ocaType 1 (or 0, unset) cancels every other working order of the group; ocaType 2
and 3 reduce every other working order's total quantity by q (combo units for a BAG) and cancel
one left at or below its filled quantity. Cancellation and reduction are reported as openOrder +
orderStatus only (no error 202), in the same step as the fill. A group name is single-use, as
IB documents: an order joining a group none of whose orders is still working (filled, cancelled
or rejected) is cancelled at once; a group with a working order can be joined. Members of one
group in different accounts are refused with 10224.

IB's order rules (notes/ib-behaviour.md §a; each cites its source where it is enforced): STP LMT
on a BAG is refused with 387; ``eTradeOnly`` / ``firmQuoteOnly`` with 10268 / 10269; stops
trigger by IB's ``triggerMethod`` (default: bid/ask for options, last for stocks, "Last" for
combos, whose last only a fill of the same combo prints). Expired options settle after 17:30
New York on their expiry day (:mod:`.expiry`).

A placeOrder reusing a live order's id modifies it (price, stop price, quantity, type, TIF,
transmit, OCA group) and keeps the order id and permId; see :meth:`Broker._modify` for the
refusals (104 filled, 103 finished otherwise, 105 other contract/action, 321 quantity below the
filled quantity).

The broker never touches sockets; it reports through the :class:`BrokerListener` it is given.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .catalog import Catalog, Instrument, OptionContract, Underlying, min_tick
from .clock import (
    NEW_YORK,
    SimClock,
    is_extended_session,
    is_regular_session,
    next_regular_open,
    session_bounds,
)
from .market import MarketModel
from .protocol import (
    UNSET_DOUBLE,
    ComboLegSpec,
    OpenOrderView,
    OrderStateView,
    PlaceOrderRequest,
    WireContract,
)

__all__ = [
    "Account",
    "AccountSpec",
    "Broker",
    "BrokerListener",
    "Execution",
    "OrderRejected",
    "Position",
    "SimOrder",
]

log = logging.getLogger(__name__)

Legs = list[tuple[OptionContract | Underlying, int, str]]
"""Combo legs: (instrument, ratio, BUY/SELL)."""

ACTIVE_STATES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted"})
DONE_STATES = frozenset({"Filled", "Cancelled", "Inactive", "ApiCancelled"})


@dataclass(slots=True)
class AccountSpec:
    """How an account starts. ``stocks`` maps symbol -> shares (bought 10% below the start
    price)."""

    account_id: str = "U1234567"
    cash: float = 100_000.0
    stocks: dict[str, float] = field(default_factory=lambda: {"AAPL": 200.0})
    options_level: int = 2


@dataclass(slots=True)
class Position:
    instrument: Instrument
    quantity: float = 0.0
    avg_cost: float = 0.0  # IB convention: per unit, times the multiplier, commissions included
    realized_pnl: float = 0.0


@dataclass(slots=True)
class Account:
    account_id: str
    cash: float
    options_level: int
    positions: dict[int, Position] = field(default_factory=dict)
    realized_pnl: float = 0.0

    @property
    def is_paper(self) -> bool:
        return self.account_id.startswith("D")


@dataclass(slots=True)
class Execution:
    exec_id: str
    order: SimOrder
    instrument: Instrument | None  # None: the combo's own execution
    contract: WireContract
    side: str  # BOT / SLD
    shares: float
    price: float
    time: dt.datetime
    cum_qty: float
    avg_price: float
    commission: float
    realized_pnl: float | None


@dataclass(slots=True)
class SimOrder:
    order_id: int
    client_id: int
    perm_id: int
    account: str
    contract: WireContract
    instrument: Instrument | None  # None for BAG
    legs: list[tuple[OptionContract | Underlying, int, str]]  # (instrument, ratio, BUY/SELL)
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    outside_rth: bool
    order_ref: str
    transmit: bool
    parent_id: int
    oca_group: str
    placed_at: dt.datetime
    oca_type: int = 0
    trigger_method: int = 0
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    triggered: bool = False
    fill_plan: deque[float] = field(default_factory=deque)
    not_before: dt.datetime | None = None
    day_end: dt.datetime | None = None
    completed_time: str = ""
    completed_status: str = ""
    why_held: str = ""

    @property
    def remaining(self) -> float:
        return max(0.0, self.quantity - self.filled)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def is_combo(self) -> bool:
        return self.contract.sec_type == "BAG"

    def view(self, *, what_if: bool = False) -> OpenOrderView:
        return OpenOrderView(
            order_id=self.order_id,
            client_id=self.client_id,
            perm_id=self.perm_id,
            action=self.action,
            total_quantity=self.quantity,
            order_type=self.order_type,
            lmt_price=self.lmt_price,
            aux_price=self.aux_price,
            tif=self.tif,
            account=self.account,
            order_ref=self.order_ref,
            outside_rth=self.outside_rth,
            oca_group=self.oca_group,
            oca_type=self.oca_type,
            trigger_method=self.trigger_method,
            parent_id=self.parent_id,
            what_if=what_if,
            transmit=self.transmit,
            filled_quantity=self.filled,
            completed_time=self.completed_time,
            completed_status=self.completed_status,
        )


class OrderRejected(Exception):
    """An order (or what-if) refused with IB error ``code``."""

    def __init__(self, code: int, text: str, advanced_json: str = "") -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.advanced_json = advanced_json


class BrokerListener(Protocol):
    def order_changed(self, order: SimOrder) -> None: ...

    def order_filled(self, order: SimOrder, executions: list[Execution]) -> None: ...

    def order_error(self, order: SimOrder, code: int, text: str) -> None: ...

    def positions_changed(self, account_id: str, instruments: list[Instrument]) -> None: ...


UNSUPPORTED_ORDER_TYPE = "Unsupported order type for this exchange and security type."
"""IB's text for 387 (IB message codes; received live in QuantConnect/Lean#7720)."""


def _combo_shape(legs: Legs) -> tuple[tuple[int, int, str], ...]:
    return tuple(sorted((inst.con_id, ratio, action) for inst, ratio, action in legs))


def _stop_crossed(order: SimOrder, buy: bool, bid: float, ask: float, last: float) -> bool:
    """Whether ``order``'s stop price is crossed under its ``triggerMethod``.

    IB's trigger methods (IB ``Order.triggerMethod``;
    https://interactivebrokers.github.io/tws-api/trigger_method_limit.html): 0 default =
    double bid/ask for US options (and OTC stocks), last for everything else, and "Last" in
    that table's COMBO row; 1 double bid/ask and 4 bid/ask (a buy stop on the ask, a sell
    stop on the bid); 2 last and 3 double last; 7 last or bid/ask; 8 mid-point, only while the
    spread is below 0.1% of the mid. The "double" variants are treated as their single forms
    (one quote per step). notes/ib-behaviour.md §a.
    """
    stop = order.aux_price
    assert stop is not None
    method = order.trigger_method
    if method == 0:
        is_option = isinstance(order.instrument, OptionContract)
        method = 4 if is_option else 2

    def by_last() -> bool:
        return not math.isnan(last) and (last >= stop if buy else last <= stop)

    def by_quote() -> bool:
        if buy:
            return ask > 0 and ask >= stop
        return bid > 0 and bid <= stop if order.instrument is not None else bid <= stop

    if method in (2, 3):
        return by_last()
    if method in (1, 4):
        return by_quote()
    if method == 7:
        return by_last() or by_quote()
    if method == 8:
        mid = (bid + ask) / 2
        if mid == 0 or (ask - bid) >= 0.001 * abs(mid):
            return False
        return mid >= stop if buy else mid <= stop
    return by_last()


def _conforms(price: float, tick: float) -> bool:
    return abs(round(price / tick) * tick - price) < 1e-6


def _opt_commission(contracts: float) -> float:
    return round(max(1.0, 0.65 * contracts), 2)


def _stock_commission(shares: float, value: float) -> float:
    return round(min(max(1.0, 0.005 * shares), 0.01 * value if value > 0 else 1.0), 2)


class Broker:
    """Accounts and orders of the simulated world. Not thread-safe; used from one event loop."""

    def __init__(
        self,
        catalog: Catalog,
        market: MarketModel,
        clock: SimClock,
        accounts: list[AccountSpec],
        *,
        fill_policy: str = "mid",
    ) -> None:
        if fill_policy not in ("mid", "touch"):
            raise ValueError("fill_policy is 'mid' or 'touch'")
        self.catalog = catalog
        self.market = market
        self.clock = clock
        self.fill_policy = fill_policy
        self.accounts: dict[str, Account] = {}
        for spec in accounts:
            acct = Account(spec.account_id, spec.cash, spec.options_level)
            for symbol, shares in spec.stocks.items():
                und = catalog.underlying(symbol)
                if und is None:
                    raise ValueError(f"unknown symbol {symbol!r} in account spec")
                acct.positions[und.con_id] = Position(und, shares, round(und.price * 0.9, 4))
            self.accounts[acct.account_id] = acct
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self.listener: BrokerListener | None = None
        self._next_perm_id = 1_800_000_001
        self._exec_seq = 0
        self._rejections: deque[tuple[int, str, str]] = deque()
        self._fill_plans: deque[list[float]] = deque()
        self._fill_delays: deque[float] = deque()
        self.max_order_id = 0
        self.persistent_rejection: tuple[int, str] | None = None
        self.split_fills = 1
        self.default_fill_delay = 0.0
        self.unset_commission_outside_rth = False
        """What-ifs outside regular hours leave the commission unset (ib_insync#380)."""
        self.lapse_instructions: dict[tuple[str, int], int] = {}
        """(account, option conId) -> contracts instructed not to exercise at expiry."""
        self.combo_last: dict[tuple[tuple[int, int, str], ...], float] = {}
        """Last traded net price of each combo shape (sorted conId, ratio, action)."""

    # --- scripting hooks --------------------------------------------------------------------

    def reject_next_order(self, code: int, text: str, advanced_json: str = "") -> None:
        self._rejections.append((code, text, advanced_json))

    def partial_fill_next_order(self, quantities: list[float]) -> None:
        self._fill_plans.append(list(quantities))

    def delay_next_fill(self, seconds: float) -> None:
        self._fill_delays.append(seconds)

    # --- accounts ---------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        if not account_id:
            return next(iter(self.accounts.values()))
        try:
            return self.accounts[account_id]
        except KeyError:
            raise OrderRejected(
                201, f"Order rejected - reason:Account {account_id} is not valid"
            ) from None

    def account_values(self, acct: Account) -> dict[str, float]:
        """Cash, values and margins of ``acct`` at current marks."""
        stock_value = option_value = gross = unrealized = 0.0
        for pos in acct.positions.values():
            if pos.quantity == 0:
                continue
            mark = self.market.mark(pos.instrument)
            value = pos.quantity * mark * pos.instrument.multiplier
            unrealized += value - pos.quantity * pos.avg_cost
            gross += abs(value)
            if isinstance(pos.instrument, Underlying):
                stock_value += value
            else:
                option_value += value
        init, maint = self._margin(acct, {})
        net_liq = acct.cash + stock_value + option_value
        available = net_liq - init
        return {
            "NetLiquidation": net_liq,
            "TotalCashValue": acct.cash,
            "SettledCash": acct.cash,
            "StockMarketValue": stock_value,
            "OptionMarketValue": option_value,
            "GrossPositionValue": gross,
            "EquityWithLoanValue": net_liq,
            "InitMarginReq": init,
            "MaintMarginReq": maint,
            "AvailableFunds": available,
            "ExcessLiquidity": net_liq - maint,
            "BuyingPower": max(0.0, available) * 4.0,
            "UnrealizedPnL": unrealized,
            "RealizedPnL": acct.realized_pnl,
            "Cushion": (net_liq - maint) / net_liq if net_liq else 0.0,
        }

    def _margin(
        self, acct: Account, delta: dict[int, tuple[Instrument, float]]
    ) -> tuple[float, float]:
        """(initial, maintenance) margin of the account's positions plus ``delta`` (conId ->
        (instrument, signed quantity change)). Reg T style: long stock 50%/25%, long options
        paid in full, covered shorts nothing, spreads their width, naked shorts the usual
        20%-of-underlying rule."""
        quantities: dict[int, tuple[Instrument, float]] = {
            cid: (p.instrument, p.quantity) for cid, p in acct.positions.items()
        }
        for cid, (inst, dq) in delta.items():
            prev = quantities.get(cid, (inst, 0.0))[1]
            quantities[cid] = (inst, prev + dq)
        init = maint = 0.0
        for inst, q in quantities.values():
            if isinstance(inst, Underlying) and q:
                value = abs(q) * self.market.mark(inst)
                init += value * (0.5 if q > 0 else 1.5)
                maint += value * (0.25 if q > 0 else 0.3)
        for short, qty, cover in self._coverage(
            {c: q for c, (_i, q) in quantities.items()}, quantities
        ):
            if cover == "stock" or cover == "debit":
                continue
            if cover.startswith("credit:"):
                width = float(cover.split(":", 1)[1])
                init += width * 100 * qty
                maint += width * 100 * qty
                continue
            spot = self.market.spot(short.symbol)
            otm = (
                max(0.0, short.strike - spot)
                if short.right == "C"
                else max(0.0, spot - short.strike)
            )
            premium = self.market.mark(short)
            req = (premium + max(0.2 * spot - otm, 0.1 * spot)) * 100 * qty
            init += req
            maint += req
        return init, maint

    def _coverage(
        self, quantities: dict[int, float], instruments: dict[int, tuple[Instrument, float]]
    ) -> list[tuple[OptionContract, float, str]]:
        """Pair every short option with cover: 'stock', 'debit' (long option of the same type and
        expiry with a better strike), 'credit:<width>' (a long with a worse strike, or a later
        expiry: level-3 spreads) or 'naked'."""
        shares: dict[str, float] = {}
        longs: list[list[Any]] = []  # [long option, contracts still free to cover]
        shorts: list[tuple[OptionContract, float]] = []
        for cid, q in quantities.items():
            inst = instruments[cid][0]
            if isinstance(inst, Underlying):
                if q > 0:
                    shares[inst.symbol] = shares.get(inst.symbol, 0.0) + q
            elif q > 0:
                longs.append([inst, q])
            elif q < 0:
                shorts.append((inst, -q))
        result = []
        # Debit-spread cover first, then stock, then credit-spread cover.
        for short, qty in sorted(shorts, key=lambda s: s[0].strike):
            left = qty
            for kind in ("debit", "stock", "credit"):
                if left <= 0:
                    break
                if kind == "stock":
                    if short.right != "C":
                        continue
                    covered = min(left, shares.get(short.symbol, 0.0) // 100)
                    if covered > 0:
                        shares[short.symbol] -= covered * 100
                        result.append((short, covered, "stock"))
                        left -= covered
                    continue
                for entry in longs:
                    inst, avail = entry
                    if avail <= 0 or inst.symbol != short.symbol or inst.right != short.right:
                        continue
                    if inst.expiry < short.expiry:
                        continue
                    better = (
                        inst.strike <= short.strike
                        if short.right == "C"
                        else (inst.strike >= short.strike)
                    )
                    # Level 2 covers only same-expiry debit spreads; a worse strike (credit
                    # spread) or a later expiry (calendar / diagonal) is a level-3 spread.
                    is_debit = better and inst.expiry == short.expiry
                    if (kind == "debit") != is_debit:
                        continue
                    used = min(avail, left)
                    entry[1] -= used
                    left -= used
                    width = 0.0 if better else abs(inst.strike - short.strike)
                    label = "debit" if is_debit else f"credit:{width}"
                    result.append((short, used, label))
                    if left <= 0:
                        break
            if left > 0:
                result.append((short, left, "naked"))
        return result

    def required_level(self, acct: Account, delta: dict[int, tuple[Instrument, float]]) -> int:
        """The options permission level the account needs for the positions after ``delta``."""
        option_changes = [
            (inst, dq) for inst, dq in delta.values() if isinstance(inst, OptionContract)
        ]
        if not option_changes:
            return 0
        quantities: dict[int, tuple[Instrument, float]] = {
            cid: (p.instrument, p.quantity) for cid, p in acct.positions.items()
        }
        before = {cid: q for cid, (_i, q) in quantities.items()}
        for cid, (inst, dq) in delta.items():
            quantities[cid] = (inst, quantities.get(cid, (inst, 0.0))[1] + dq)
        after = {cid: q for cid, (_i, q) in quantities.items()}
        # Closing trades (only reducing existing option positions) are allowed at any level.
        opening = any(
            abs(after.get(inst.con_id, 0.0)) > abs(before.get(inst.con_id, 0.0))
            for inst, _dq in option_changes
        )
        if not opening:
            return 0
        level = 1
        if any(
            q > before.get(cid, 0.0) and q > 0
            for cid, q in after.items()
            if isinstance(quantities[cid][0], OptionContract)
        ):
            level = 2
        for _short, _qty, cover in self._coverage(after, quantities):
            if cover == "debit":
                level = max(level, 2)
            elif cover.startswith("credit:"):
                level = max(level, 3)
            elif cover == "naked":
                level = max(level, 4)
        return level

    # --- orders -----------------------------------------------------------------------------

    def _resolve(
        self, req: PlaceOrderRequest
    ) -> tuple[WireContract, Instrument | None, list[tuple[OptionContract | Underlying, int, str]]]:
        today = self.clock.today()
        wc = req.contract
        if wc.sec_type == "BAG":
            legs: list[tuple[OptionContract | Underlying, int, str]] = []
            specs: list[ComboLegSpec] = []
            for leg in wc.combo_legs:
                inst = self.catalog.by_con_id(leg.con_id, today)
                if inst is None or leg.action not in ("BUY", "SELL") or leg.ratio <= 0:
                    raise OrderRejected(
                        200, "No security definition has been found for the request"
                    )
                legs.append((inst, leg.ratio, leg.action))
                specs.append(leg)
            if not legs:
                raise OrderRejected(200, "No security definition has been found for the request")
            symbol = wc.symbol or legs[0][0].symbol
            contract = WireContract(
                con_id=28812380,  # IB's generic BAG conId
                symbol=symbol,
                sec_type="BAG",
                exchange=wc.exchange or "SMART",
                currency="USD",
                combo_legs=tuple(specs),
            )
            return contract, None, legs
        matches = self.catalog.match(wc, today)
        if len(matches) != 1:
            raise OrderRejected(200, "No security definition has been found for the request")
        inst = matches[0]
        return inst.wire(wc.exchange or "SMART"), inst, []

    def _delta(
        self, action: str, quantity: float, inst: Instrument | None, legs: Legs
    ) -> dict[int, tuple[Instrument, float]]:
        sign = 1.0 if action == "BUY" else -1.0
        delta: dict[int, tuple[Instrument, float]] = {}
        items = [(inst, 1, "BUY")] if inst is not None else legs
        for leg_inst, ratio, leg_action in items:
            leg_sign = 1.0 if leg_action == "BUY" else -1.0
            prev = delta.get(leg_inst.con_id, (leg_inst, 0.0))[1]
            delta[leg_inst.con_id] = (leg_inst, prev + sign * leg_sign * ratio * quantity)
        return delta

    def _validate(
        self, req: PlaceOrderRequest
    ) -> tuple[Account, WireContract, Instrument | None, Legs, dict[int, tuple[Instrument, float]]]:
        if req.action not in ("BUY", "SELL"):
            raise OrderRejected(201, f"Order rejected - reason:Invalid action {req.action!r}")
        if req.total_quantity <= 0:
            raise OrderRejected(434, "The order size cannot be zero.")
        self._check_ib_order_rules(req)
        if req.tif not in ("", "DAY", "GTC"):
            raise OrderRejected(
                201, f"Order rejected - reason:Time in force {req.tif} is not supported"
            )
        if req.order_type in ("LMT", "STP LMT") and req.lmt_price is None:
            raise OrderRejected(201, "Order rejected - reason:Limit price is missing")
        if req.order_type in ("STP", "STP LMT") and req.aux_price is None:
            raise OrderRejected(201, "Order rejected - reason:Stop price is missing")
        acct = self.account(req.account)
        self._check_oca_accounts(req, acct)
        contract, inst, legs = self._resolve(req)
        if inst is not None:
            for price in (req.lmt_price, req.aux_price):
                if price is not None and not _conforms(price, min_tick(inst, abs(price))):
                    raise OrderRejected(
                        110,
                        "The price does not conform to the minimum price variation for this "
                        "contract.",
                    )
        delta = self._delta(req.action, req.total_quantity, inst, legs)
        needed = self.required_level(acct, delta)
        if needed > acct.options_level:
            raise OrderRejected(
                201,
                "Order rejected - reason:YOUR ACCOUNT IS NOT APPROVED FOR THIS OPTION STRATEGY. "
                f"IT REQUIRES OPTIONS TRADING PERMISSION LEVEL {needed} "
                f"(ACCOUNT LEVEL {acct.options_level}).",
            )
        return acct, contract, inst, legs, delta

    def _estimate_commission(self, inst: Instrument | None, legs: Legs, quantity: float) -> float:
        items = [(inst, 1, "")] if inst is not None else legs
        total = 0.0
        for leg_inst, ratio, _a in items:
            n = ratio * quantity
            if isinstance(leg_inst, Underlying):
                total += _stock_commission(n, n * self.market.mark(leg_inst))
            else:
                total += _opt_commission(n)
        return round(total, 2)

    def _cost(self, delta: dict[int, tuple[Instrument, float]]) -> float:
        """Cash spent (positive) or received at marks for the position changes."""
        return sum(dq * self.market.mark(i) * i.multiplier for i, dq in delta.values())

    def what_if(self, req: PlaceOrderRequest) -> OrderStateView:
        """Margin and commission impact of an order without placing it; raises
        :class:`OrderRejected` for what TWS would refuse (contract, permission)."""
        self._check_scripted_rejection()
        acct, _contract, inst, legs, delta = self._validate(req)
        values = self.account_values(acct)
        init_b, maint_b = self._margin(acct, {})
        init_a, maint_a = self._margin(acct, delta)
        commission = self._estimate_commission(inst, legs, req.total_quantity)
        ewl_b = values["EquityWithLoanValue"]
        ewl_a = ewl_b - commission
        if self.unset_commission_outside_rth and not is_regular_session(self.clock.now()):
            # A preview outside regular hours can carry valid margins with the commission
            # unset, 1.7976931348623157E308 on the wire (seen on paper: erdewit/ib_insync#380;
            # notes/ib-behaviour.md §d). Not always, so it is a switch.
            commission = UNSET_DOUBLE
        return OrderStateView(
            status="PreSubmitted",
            init_margin_before=round(init_b, 2),
            maint_margin_before=round(maint_b, 2),
            equity_with_loan_before=round(ewl_b, 2),
            init_margin_change=round(init_a - init_b, 2),
            maint_margin_change=round(maint_a - maint_b, 2),
            equity_with_loan_change=round(ewl_a - ewl_b, 2),
            init_margin_after=round(init_a, 2),
            maint_margin_after=round(maint_a, 2),
            equity_with_loan_after=round(ewl_a, 2),
            commission=commission,
            min_commission=commission,
            max_commission=commission,
            commission_currency="USD",
        )

    def _check_scripted_rejection(self) -> None:
        if self._rejections:
            code, text, advanced_json = self._rejections.popleft()
            raise OrderRejected(code, text, advanced_json)

    def place(self, req: PlaceOrderRequest, client_id: int) -> SimOrder:
        """Accept a new order or modify a live one; raises :class:`OrderRejected`.

        The listener hears every state change; call :meth:`step` to let working orders fill.
        """
        key = (client_id, req.order_id)
        existing = self.orders.get(key)
        if existing is not None:
            return self._modify(existing, req)
        if req.order_id <= 0:
            raise OrderRejected(103, "Duplicate order id")
        try:
            return self._place_new(req, client_id)
        except OrderRejected as exc:
            self._record_rejected(req, client_id, exc)
            raise

    def _record_rejected(self, req: PlaceOrderRequest, client_id: int, exc: OrderRejected) -> None:
        """Keep a rejected order as Inactive so reqCompletedOrders shows it (and its id is used)."""
        now = self.clock.now()
        order = SimOrder(
            order_id=req.order_id,
            client_id=client_id,
            perm_id=self._next_perm_id,
            account=req.account or next(iter(self.accounts)),
            contract=req.contract,
            instrument=None,
            legs=[],
            action=req.action,
            quantity=req.total_quantity,
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            aux_price=req.aux_price,
            tif=req.tif or "DAY",
            outside_rth=req.outside_rth,
            order_ref=req.order_ref,
            transmit=req.transmit,
            parent_id=req.parent_id,
            oca_group=req.oca_group,
            oca_type=req.oca_type,
            placed_at=now,
            status="Inactive",
            completed_time=now.strftime("%Y%m%d %H:%M:%S UTC"),
            completed_status=f"Rejected: {exc.text}",
        )
        self._next_perm_id += 1
        self.max_order_id = max(self.max_order_id, req.order_id)
        self.orders[(client_id, req.order_id)] = order

    def _place_new(self, req: PlaceOrderRequest, client_id: int) -> SimOrder:
        key = (client_id, req.order_id)
        self._check_scripted_rejection()
        if self.persistent_rejection is not None:
            raise OrderRejected(*self.persistent_rejection)
        acct, contract, inst, legs, delta = self._validate(req)
        cost = self._cost(delta) + self._estimate_commission(inst, legs, req.total_quantity)
        if cost > 0:
            values = self.account_values(acct)
            _init_after, _m = self._margin(acct, delta)
            if cost > values["AvailableFunds"]:
                raise OrderRejected(
                    201,
                    "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE "
                    "DESIRED POSITION YOUR EQUITY WITH LOAN VALUE "
                    f"[{values['EquityWithLoanValue']:.2f} USD] MUST EXCEED THE INITIAL MARGIN "
                    f"[{cost + values['InitMarginReq']:.2f} USD]",
                )
        now = self.clock.now()
        order = SimOrder(
            order_id=req.order_id,
            client_id=client_id,
            perm_id=self._next_perm_id,
            account=acct.account_id,
            contract=contract,
            instrument=inst,
            legs=legs,
            action=req.action,
            quantity=req.total_quantity,
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            aux_price=req.aux_price,
            tif=req.tif or "DAY",
            outside_rth=req.outside_rth,
            order_ref=req.order_ref,
            transmit=req.transmit,
            parent_id=req.parent_id,
            oca_group=req.oca_group,
            oca_type=req.oca_type,
            trigger_method=req.trigger_method,
            placed_at=now,
        )
        self._next_perm_id += 1
        self.max_order_id = max(self.max_order_id, req.order_id)
        if self._fill_plans:
            order.fill_plan = deque(self._fill_plans.popleft())
        elif self.split_fills > 1:
            first = max(1.0, float(int(req.total_quantity / self.split_fills)))
            order.fill_plan = deque([first] * (self.split_fills - 1))
        delay = self._fill_delays.popleft() if self._fill_delays else self.default_fill_delay
        if delay:
            order.not_before = now + dt.timedelta(seconds=delay)
        if order.tif == "DAY":
            # A DAY order lives until the close of the session it can first trade in.
            session_day = next_regular_open(now).astimezone(NEW_YORK).date()
            stock_only = inst is not None and isinstance(inst, Underlying)
            _open, order.day_end = session_bounds(
                session_day, extended=stock_only and order.outside_rth
            )
        self.orders[key] = order
        if self._oca_group_used_up(order):
            self._finish(order, "Cancelled", f"OCA group {order.oca_group} was already used")
            return order
        self._set_status(order, "PreSubmitted")
        if order.transmit and self._can_trade(order):
            self._set_status(order, "Submitted")
        return order

    def _modify(self, order: SimOrder, req: PlaceOrderRequest) -> SimOrder:
        """Apply a placeOrder that reuses a live order's id: new price, stop price, quantity,
        type, time in force, transmit flag or OCA group; order id and permId stay.

        Raises :class:`OrderRejected` and leaves the order as it was: 104 for a filled order,
        103 for one already cancelled or inactive (the id is used), 105 when the contract or
        the action differ from the original, 434 for a zero quantity, 321 for a quantity below
        the filled quantity or a missing limit/stop price, 387 for an unsupported type and 110
        for a price off the tick.
        """
        if order.status == "Filled":
            raise OrderRejected(104, "Can't modify a filled order.")
        if not order.is_active:
            raise OrderRejected(103, "Duplicate order id")
        contract, inst, legs = self._resolve(req)
        if req.action != order.action or not self._same_contract(order, contract, inst, legs):
            raise OrderRejected(105, "Order being modified does not match original order.")
        if req.total_quantity <= 0:
            raise OrderRejected(434, "The order size cannot be zero.")
        if req.total_quantity < order.filled - 1e-9:
            raise OrderRejected(
                321,
                "Error validating request.-'bB' : cause - The total quantity "
                f"{req.total_quantity:g} is below the filled quantity {order.filled:g}",
            )
        self._check_ib_order_rules(req)
        if req.oca_group and req.oca_group != order.oca_group:
            self._check_oca_accounts(req, self.accounts[order.account])
        if req.order_type in ("LMT", "STP LMT") and req.lmt_price is None:
            raise OrderRejected(
                321, "Error validating request.-'bB' : cause - Limit price is missing"
            )
        if req.order_type in ("STP", "STP LMT") and req.aux_price is None:
            raise OrderRejected(
                321, "Error validating request.-'bB' : cause - Stop price is missing"
            )
        if inst is not None:
            for price in (req.lmt_price, req.aux_price):
                if price is not None and not _conforms(price, min_tick(inst, abs(price))):
                    raise OrderRejected(
                        110,
                        "The price does not conform to the minimum price variation for this "
                        "contract.",
                    )
        if req.order_type != order.order_type or req.aux_price != order.aux_price:
            # A new stop price (or type) is evaluated afresh against the market.
            order.triggered = False
        order.quantity = req.total_quantity
        order.order_type = req.order_type
        order.lmt_price = req.lmt_price
        order.aux_price = req.aux_price
        order.tif = req.tif or order.tif
        order.transmit = req.transmit
        order.outside_rth = req.outside_rth
        order.order_ref = req.order_ref
        joins_group = bool(req.oca_group) and req.oca_group != order.oca_group
        order.oca_group = req.oca_group
        order.oca_type = req.oca_type
        order.trigger_method = req.trigger_method
        if joins_group and self._oca_group_used_up(order):
            self._finish(order, "Cancelled", f"OCA group {order.oca_group} was already used")
            return order
        self._notify(order)
        if order.status == "PreSubmitted" and order.transmit and self._can_trade(order):
            self._set_status(order, "Submitted")
        return order

    @staticmethod
    def _same_contract(
        order: SimOrder, contract: WireContract, inst: Instrument | None, legs: Legs
    ) -> bool:
        if order.instrument is not None or inst is not None:
            return (
                order.instrument is not None
                and inst is not None
                and order.instrument.con_id == inst.con_id
            )

        def shape(items: Legs) -> list[tuple[int, int, str]]:
            return sorted((i.con_id, ratio, action) for i, ratio, action in items)

        return contract.sec_type == "BAG" and shape(order.legs) == shape(legs)

    # --- OCA groups -------------------------------------------------------------------------

    def _oca_members(self, order: SimOrder) -> list[SimOrder]:
        """The other orders of ``order``'s OCA group (same account, same group name)."""
        if not order.oca_group:
            return []
        return [
            other
            for other in self.orders.values()
            if other is not order
            and other.account == order.account
            and other.oca_group == order.oca_group
        ]

    def _oca_group_used_up(self, order: SimOrder) -> bool:
        """True when ``order`` would reuse a finished OCA group: the name has members and none
        of them is still working (filled, cancelled or rejected alike).

        IB: "OCA group names must be unique ... Once you use a name, you cannot use it again
        even after the order fills or is canceled" (TWS guide, Miscellaneous order fields,
        https://www.ibkrguides.com/tws/usersguidebook/specializedorderentry/miscellaneous.htm;
        notes/ib-behaviour.md §c). IB documents no error code for it; like an order joining a
        group that has already acted, the order is cancelled at once (openOrder + orderStatus
        Cancelled). A group with a working member (even one reduced by a partial execution)
        can still be joined: that is how a group is built, one order after another."""
        members = self._oca_members(order)
        return bool(members) and not any(m.is_active for m in members)

    def _check_oca_accounts(self, req: PlaceOrderRequest, acct: Account) -> None:
        """10224 when the OCA group already holds orders of another account.

        Live TWS: "Error 10224 ... One-cancels-all group of orders should contain orders with
        exactly the same account ... contains orders for Personal Account ..., Undefined"
        (ib-api-reloaded/ib_async#75; notes/ib-behaviour.md §c). An order without an account
        in a login that manages several accounts counts as "Undefined", as in that report."""
        if not req.oca_group:
            return
        mine = acct.account_id if req.account or len(self.accounts) == 1 else "Undefined"
        others = {
            o.account
            for o in self.orders.values()
            if o.oca_group == req.oca_group and o.is_active and o.account != mine
        }
        if others:
            raise OrderRejected(
                10224,
                "One-cancels-all group of orders should contain orders with exactly the same "
                f"account. Group {req.oca_group} contains orders for "
                f"{', '.join(sorted(others | {mine}))}",
            )

    @staticmethod
    def _check_ib_order_rules(req: PlaceOrderRequest) -> None:
        """IB's refusals of order types and attributes, with IB's codes and texts."""
        if req.order_type not in ("LMT", "MKT", "STP", "STP LMT"):
            raise OrderRejected(387, UNSUPPORTED_ORDER_TYPE)
        if req.order_type == "STP LMT" and req.contract.sec_type == "BAG":
            # IB's order-type table lists BAG for STP but not for STP LMT (IBKR Campus "Order
            # Types", https://www.interactivebrokers.com/campus/ibkr-api-page/order-types/);
            # an order type the contract does not allow is refused with 387 (IB message codes;
            # QuantConnect/Lean#7720). notes/ib-behaviour.md §a.
            raise OrderRejected(387, UNSUPPORTED_ORDER_TYPE)
        # TWS 983+ refuses the deprecated attributes (IB message codes 10268 / 10269,
        # https://interactivebrokers.github.io/tws-api/message_codes.html); issue 19.
        if req.e_trade_only:
            raise OrderRejected(10268, "The 'EtradeOnly' order attribute is not supported.")
        if req.firm_quote_only:
            raise OrderRejected(10269, "The 'firmQuoteOnly' order attribute is not supported.")

    def _apply_oca(self, filled: SimOrder, quantity: float) -> None:
        """IB's OCA rule after ``filled`` executed ``quantity`` (combo units for a BAG).

        ocaType 1 (and 0, unset): every other working order of the group is cancelled.
        ocaType 2 and 3: every other working order's total quantity shrinks by ``quantity``;
        one left with a total at or below its filled quantity is cancelled. Fills here are
        synchronous, so applying this before any other order is evaluated is the "block"
        (no overfill across the group). The type of the executing order decides.
        """
        oca_type = filled.oca_type or 1
        for other in self._oca_members(filled):
            if not other.is_active:
                continue
            if oca_type == 1:
                self._finish(other, "Cancelled", f"Cancelled by OCA group {filled.oca_group}")
                continue
            new_total = round(other.quantity - quantity, 8)
            if new_total <= other.filled + 1e-9:
                self._finish(
                    other, "Cancelled", f"Reduced to nothing by OCA group {other.oca_group}"
                )
            else:
                other.quantity = new_total
                self._notify(other)

    def cancel(self, client_id: int, order_id: int) -> SimOrder:
        """Cancel a working order; raises :class:`OrderRejected` with 10147 / 10148."""
        order = self.orders.get((client_id, order_id))
        if order is None:
            raise OrderRejected(
                10147, f"OrderId {order_id} that needs to be cancelled is not found."
            )
        if not order.is_active:
            raise OrderRejected(
                10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: "
                f"{order.status}.",
            )
        self._finish(order, "Cancelled", "Cancelled by user")
        if self.listener:
            self.listener.order_error(order, 202, "Order Canceled - reason:")
        return order

    def cancel_all(self) -> list[SimOrder]:
        cancelled = []
        for order in list(self.orders.values()):
            if order.is_active:
                self._finish(order, "Cancelled", "Global cancel")
                if self.listener:
                    self.listener.order_error(order, 202, "Order Canceled - reason:")
                cancelled.append(order)
        return cancelled

    def _finish(self, order: SimOrder, status: str, why: str) -> None:
        order.completed_time = self.clock.now().strftime("%Y%m%d %H:%M:%S UTC")
        order.completed_status = why
        self._set_status(order, status)

    def _set_status(self, order: SimOrder, status: str) -> None:
        order.status = status
        self._notify(order)

    def _notify(self, order: SimOrder) -> None:
        if self.listener:
            self.listener.order_changed(order)

    def _trading_instruments(self, order: SimOrder) -> list[Instrument]:
        return (
            [order.instrument] if order.instrument is not None else [i for i, _r, _a in order.legs]
        )

    def _can_trade(self, order: SimOrder) -> bool:
        now = self.clock.now()
        if is_regular_session(now):
            return True
        stock_only = all(isinstance(i, Underlying) for i in self._trading_instruments(order))
        return stock_only and order.outside_rth and is_extended_session(now)

    def step(self) -> None:
        """Advance every working order once: release held orders at the open, trigger stops and
        fill what is marketable (at most one scripted slice per order per step), and settle
        expired options (see :mod:`.expiry`)."""
        from .expiry import settle_expired, unique

        for account_id, instruments in settle_expired(self, self.clock.now()).items():
            if self.listener and instruments:
                self.listener.positions_changed(account_id, unique(instruments))
        for order in list(self.orders.values()):
            if not order.is_active:
                continue
            if order.day_end is not None and self.clock.now() >= order.day_end:
                self._finish(order, "Cancelled", "Expired at the close (DAY)")
                continue
            if not order.transmit:
                continue
            if not self._can_trade(order):
                if order.status == "Submitted":
                    order.status = "PreSubmitted"
                    self._notify(order)
                continue
            if order.status == "PreSubmitted":
                self._set_status(order, "Submitted")
            if order.not_before is not None and self.clock.now() < order.not_before:
                continue
            self._try_fill(order)

    # --- matching ---------------------------------------------------------------------------

    def _quote(self, inst: Instrument) -> tuple[float, float, float]:
        """(bid, ask, last) of an instrument."""
        if isinstance(inst, Underlying):
            q = self.market.stock_quote(inst.symbol)
            return q.bid, q.ask, q.last
        oq = self.market.option_quote(inst)
        return oq.bid, oq.ask, oq.last

    def _fill_price(self, order: SimOrder) -> float | None:
        if order.instrument is not None:
            bid, ask, last = self._quote(order.instrument)
        else:
            bid = ask = 0.0
            for inst, ratio, leg_action in order.legs:
                b, a, _l = self._quote(inst)
                if leg_action == "BUY":
                    ask += ratio * a
                    bid += ratio * b
                else:
                    ask -= ratio * b
                    bid -= ratio * a
            bid, ask = round(bid, 2), round(ask, 2)
            # A combo's "last" is the last trade of the combo itself, which option combos
            # rarely print: only a fill of the same combo here sets one.
            combo_last = self.combo_last.get(_combo_shape(order.legs))
            last = combo_last if combo_last is not None else math.nan
        buy = order.action == "BUY"
        order_type = order.order_type
        if order_type in ("STP", "STP LMT") and not order.triggered:
            assert order.aux_price is not None
            if not _stop_crossed(order, buy, bid, ask, last):
                return None
            order.triggered = True
        if order_type in ("MKT", "STP"):
            if order.instrument is not None and not buy and bid <= 0:
                return None
            return ask if buy else bid
        limit = order.lmt_price
        assert limit is not None
        if buy and limit >= ask:
            return ask
        if not buy and limit <= bid:
            return bid
        if self.fill_policy == "mid" and (bid > 0 or order.instrument is None):
            mid = (bid + ask) / 2
            if (buy and limit >= mid) or (not buy and limit <= mid):
                return limit
        return None

    def _try_fill(self, order: SimOrder) -> None:
        price = self._fill_price(order)
        if price is None:
            return
        qty = order.remaining
        if order.fill_plan:
            qty = min(qty, order.fill_plan.popleft())
        if qty <= 0:
            return
        self.fill(order, qty, round(price, 4))

    def fill(self, order: SimOrder, quantity: float, price: float) -> list[Execution]:
        """Execute ``quantity`` of ``order`` at ``price`` (net price for a combo): update the
        account and positions, record executions and tell the listener."""
        acct = self.accounts[order.account]
        now = self.clock.now()
        new_filled = order.filled + quantity
        order.avg_fill_price = (order.avg_fill_price * order.filled + price * quantity) / new_filled
        order.filled = new_filled
        order.last_fill_price = price
        executions: list[Execution] = []
        buy = order.action == "BUY"
        if order.instrument is not None:
            executions.append(
                self._execute_leg(
                    acct, order, order.instrument, order.contract, buy, quantity, price, now
                )
            )
        else:
            leg_prices = self._leg_prices(order, price)
            for (inst, ratio, leg_action), leg_price in zip(order.legs, leg_prices, strict=True):
                leg_buy = (leg_action == "BUY") == buy
                executions.append(
                    self._execute_leg(
                        acct,
                        order,
                        inst,
                        inst.wire("SMART"),
                        leg_buy,
                        ratio * quantity,
                        leg_price,
                        now,
                    )
                )
            self._exec_seq += 1
            executions.append(
                Execution(
                    exec_id=self._exec_id(),
                    order=order,
                    instrument=None,
                    contract=order.contract,
                    side="BOT" if buy else "SLD",
                    shares=quantity,
                    price=price,
                    time=now,
                    cum_qty=order.filled,
                    avg_price=round(order.avg_fill_price, 4),
                    commission=0.0,
                    realized_pnl=None,
                )
            )
        self.executions.extend(executions)
        if order.is_combo:
            self.combo_last[_combo_shape(order.legs)] = price
        if order.remaining <= 1e-9:
            order.status = "Filled"
            order.completed_time = now.strftime("%Y%m%d %H:%M:%S UTC")
            order.completed_status = "Filled"
        if self.listener:
            self.listener.order_filled(order, executions)
        self._apply_oca(order, quantity)
        return executions

    def _leg_prices(self, order: SimOrder, net: float) -> list[float]:
        """Split a combo's net price over its legs: leg mids, the difference on the first leg."""
        buy = order.action == "BUY"
        mids = []
        for inst, _ratio, _a in order.legs:
            b, a, _l = self._quote(inst)
            mids.append(round((b + a) / 2, 2))
        signed = [
            (1 if (leg_action == "BUY") == buy else -1) * ratio
            for _i, ratio, leg_action in order.legs
        ]
        combo_sign = 1 if buy else -1
        implied = sum(s * m for s, m in zip(signed, mids, strict=True)) * combo_sign
        diff = net - implied
        first = signed[0] * combo_sign
        mids[0] = round(max(0.0, mids[0] + diff / first), 4)
        return mids

    def _exec_id(self) -> str:
        return f"0000e0d5.{self._exec_seq:08x}.01.01"

    def _execute_leg(
        self,
        acct: Account,
        order: SimOrder,
        inst: Instrument,
        contract: WireContract,
        buy: bool,
        quantity: float,
        price: float,
        now: dt.datetime,
    ) -> Execution:
        mult = inst.multiplier
        if isinstance(inst, Underlying):
            commission = _stock_commission(quantity, quantity * price)
        else:
            commission = _opt_commission(quantity)
        pos = acct.positions.get(inst.con_id)
        if pos is None:
            pos = acct.positions[inst.con_id] = Position(inst)
        signed = quantity if buy else -quantity
        realized: float | None = None
        if pos.quantity == 0 or (pos.quantity > 0) == buy:
            # Opening or adding: average in, commission included (IB's avgCost convention).
            total = (
                abs(pos.quantity) * pos.avg_cost
                + quantity * price * mult
                + (commission if buy else -commission)
            )
            pos.quantity += signed
            pos.avg_cost = total / abs(pos.quantity)
        else:
            closing = min(quantity, abs(pos.quantity))
            direction = 1.0 if pos.quantity > 0 else -1.0
            realized = (price * mult - pos.avg_cost) * closing * direction - commission
            pos.realized_pnl += realized
            acct.realized_pnl += realized
            pos.quantity += signed
            rest = quantity - closing
            if abs(pos.quantity) < 1e-9:
                pos.quantity = 0.0
                pos.avg_cost = 0.0
            elif rest > 0:
                pos.avg_cost = price * mult
        acct.cash += (-1 if buy else 1) * quantity * price * mult - commission
        self._exec_seq += 1
        earlier = [e for e in self.executions if e.order is order and e.instrument is inst]
        cum = sum(e.shares for e in earlier) + quantity
        avg = (sum(e.shares * e.price for e in earlier) + quantity * price) / cum
        return Execution(
            exec_id=self._exec_id(),
            order=order,
            instrument=inst,
            contract=contract,
            side="BOT" if buy else "SLD",
            shares=quantity,
            price=price,
            time=now,
            cum_qty=cum,
            avg_price=round(avg, 6),
            commission=commission,
            realized_pnl=realized,
        )

    def order_state(self, order: SimOrder) -> OrderStateView:
        return OrderStateView(status=order.status, commission=UNSET_DOUBLE)
