"""A model of a person's whole position lifecycle, run against the real MCP app on the simulator.

A hypothesis ``RuleBasedStateMachine`` opens positions (long call / put, debit spreads, covered
calls), sets stops, closes them whole or in part (at mid or at the natural price), modifies
working orders (limit, stop, quantity), rolls long options and debit spreads to later
expiries, lets the simulated market move and orders fill, and attacks execute_trade (a made-up
preview id, a preview used twice). Each example gets a fresh app (``running_app``) in an
asyncio blocking portal; hypothesis drives it from this thread.

After EVERY step, against the simulator's own book (``app.sim.broker``, read inside its event
loop):

(a) what is held obeys the Level-2 rule (no uncovered short call or put, no short stock);
(b) no working stop outlives its position: none trades the wrong way, and per contract the
    stops together (the largest of each OCA group, which IB reduces together) never trade more
    than is held. Stops that execution itself follows are given a moment to be followed;
(c) every order TWS received came from one confirmed preview (``assert_order_invariants``);
and the simulator counted no pacing or limit violation.

Every refusal is a structured error whose code is one the step may legitimately answer.

Sizes: the CI test runs a few derandomized examples; the ``slow`` soak test runs many random
ones (``SUMPPUMP_SOAK=1``; ``SUMPPUMP_LIFECYCLE_EXAMPLES`` / ``_STEPS`` / ``_SEED`` override).
"""

from __future__ import annotations

import string
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from sumppump.messages.connection import PositionInfo
from sumppump.trading.holdings import level2_after
from tests.reliability.support import (
    ACCOUNT,
    App,
    assert_no_violations,
    assert_order_invariants,
    code_of,
    placed_orders,
    running_app,
    size,
)

OPENINGS = ("long_call", "long_put", "bull_call_spread", "bear_put_spread", "covered_call")
STOP_TYPES = ("STP", "STP LMT")
WORKING = ("PendingSubmit", "PreSubmitted", "Submitted")
#: How long a stop that execution follows itself (not through its OCA group) may outlive the
#: fill of the close that ends its position: the fill report's round trip, with slack.
FOLLOW_UP_S = 3.0

#: What each step may answer besides success. Anything else (ORDER_OUTCOME_UNKNOWN,
#: SERVICE_UNAVAILABLE, NOT_CONNECTED, NOT_IMPLEMENTED, ...) fails the model.
PREVIEW_REFUSALS = frozenset(
    {
        "INVALID_ARGUMENT",
        "NOT_PERMITTED_LEVEL2",
        "NO_MARKET_DATA",
        "RISK_LIMIT",
        "INSUFFICIENT_FUNDS",
        "PRICE_MOVED",
    }
)
EXECUTE_REFUSALS = frozenset(
    {"PRICE_MOVED", "RISK_LIMIT", "INSUFFICIENT_FUNDS", "ORDER_REJECTED", "INVALID_ARGUMENT"}
)
FORGED_REFUSALS = frozenset({"PREVIEW_UNKNOWN", "INVALID_ARGUMENT", "CONFIRM_MISMATCH"})
REPLAY_REFUSALS = frozenset({"PREVIEW_USED"})

#: Counts over every example of a run, for the one-line summary.
TALLY: Counter[str] = Counter()
#: Why TWS rejected orders whose preview passed every check.
REJECTIONS: Counter[str] = Counter()


# ---------------------------------------------------------------------- the simulator's book


def _position_info(con_id: int, quantity: float, inst: Any) -> PositionInfo:
    """A simulator position as the PositionInfo the Level-2 rule reads (avg cost unused)."""
    if getattr(inst, "sec_type", "STK") != "OPT":
        return PositionInfo(
            account=ACCOUNT,
            con_id=con_id,
            symbol=getattr(inst, "symbol", "AAPL"),
            sec_type="STK",
            quantity=quantity,
            avg_cost=0.0,
        )
    return PositionInfo(
        account=ACCOUNT,
        con_id=con_id,
        symbol=inst.symbol,
        sec_type="OPT",
        quantity=quantity,
        avg_cost=0.0,
        expiry=f"{inst.expiry[:4]}-{inst.expiry[4:6]}-{inst.expiry[6:]}",
        strike=inst.strike,
        right=inst.right,
        multiplier=100.0,
    )


def _order_exposure(order: Any) -> dict[int, float]:
    """Signed contracts (shares) per conId the working order would still trade."""
    sign = 1 if order.action == "BUY" else -1
    if order.is_combo:
        exposure: dict[int, float] = {}
        for inst, ratio, action in order.legs:
            leg_sign = 1 if action == "BUY" else -1
            exposure[inst.con_id] = (
                exposure.get(inst.con_id, 0.0) + sign * leg_sign * ratio * order.remaining
            )
        return exposure
    return {order.instrument.con_id: sign * order.remaining}


def sim_positions(app: App) -> dict[int, tuple[float, Any]]:
    """{con_id: (quantity, instrument)} of what the simulator's account holds."""
    return {
        con_id: (pos.quantity, pos.instrument)
        for con_id, pos in app.sim.broker.accounts[ACCOUNT].positions.items()
        if abs(pos.quantity) > 1e-9
    }


def level2_problem(app: App) -> str | None:
    """(a): why the simulator's book breaks the Level-2 rule, or None."""
    held = [_position_info(con_id, qty, inst) for con_id, (qty, inst) in sim_positions(app).items()]
    verdict = level2_after(held, (), 0)
    return None if verdict.allowed else f"{verdict.reason}; held {held}"


def stop_problem(app: App) -> str | None:
    """(b): a working stop that trades the wrong way or, with the other stops, more than is
    held, or None. Stops of one OCA group (ocaType 2 reduces them together) count once, by the
    largest; ungrouped stops each count."""
    positions = sim_positions(app)
    by_group: dict[str, dict[int, float]] = {}
    for order in app.sim.broker.orders.values():
        if not order.is_active or order.order_type not in STOP_TYPES:
            continue
        group = order.oca_group if order.oca_group and order.oca_type == 2 else f"#{order.order_id}"
        for con_id, size_ in _order_exposure(order).items():
            held = positions.get(con_id, (0.0, None))[0]
            if abs(size_) > abs(held) + 1e-9 or size_ * held > 0:
                return f"stop {order.order_ref} trades {size_} of {con_id}; {held} is held"
            largest = by_group.setdefault(group, {})
            largest[con_id] = max(largest.get(con_id, 0.0), abs(size_))
    total: Counter[int] = Counter()
    for largest in by_group.values():
        for con_id, size_ in largest.items():
            total[con_id] += size_
    for con_id, size_ in total.items():
        held = positions.get(con_id, (0.0, None))[0]
        if size_ > abs(held) + 1e-9:
            return f"stops together trade {size_} of {con_id}; {held} is held ({by_group})"
    return None


def nets_against_a_stop(app: App, legs: list[dict[str, Any]]) -> bool:
    """Whether an opening order with ``legs`` (the analysis' legs) would reduce a held
    position that a working stop protects (found as defect D-L1: such an order now joins the
    stop's OCA group; counted in the tally)."""
    stopped: set[int] = set()
    for order in app.sim.broker.orders.values():
        if order.is_active and order.order_type in STOP_TYPES:
            stopped.update(_order_exposure(order))
    for con_id, (qty, inst) in sim_positions(app).items():
        if con_id not in stopped:
            continue
        for entry in legs:
            leg = entry["leg"]
            sign = 1 if leg["action"] == "BUY" else -1
            if leg["right"] == "STK":
                same = getattr(inst, "sec_type", "STK") != "OPT"
            else:
                same = (
                    getattr(inst, "sec_type", "STK") == "OPT"
                    and inst.right == leg["right"]
                    and inst.strike == leg["strike"]
                    and inst.expiry == leg["expiry"].replace("-", "")
                )
            if same and sign * qty < 0:
                return True
    return False


async def check_book(app: App) -> str | None:
    """Every invariant, inside the simulator's event loop; answers a description of a stop
    that needed the follow-up window (for the tally), or None."""
    problem = level2_problem(app)
    assert problem is None, f"(a) Level-2 broken in the simulator's book: {problem}"
    assert_order_invariants(app.sim, app.confirmed)
    assert_no_violations(app.sim)
    first = stop_problem(app)
    if first is None:
        return None
    with anyio.move_on_after(FOLLOW_UP_S):
        while (problem := stop_problem(app)) is not None:
            await anyio.sleep(0.05)
    assert problem is None, f"(b) a stop outlived its position for {FOLLOW_UP_S}s: {problem}"
    return first


# ---------------------------------------------------------------------- the model


class LifecycleModel(RuleBasedStateMachine):
    """One example: a fresh app, a chain, and the person's steps. ``portal`` is set by
    :func:`run_model` before hypothesis builds instances."""

    portal: BlockingPortal

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="lifecycle-")
        self._app_cm: AbstractContextManager[App] = self.portal.wrap_async_context_manager(
            running_app(Path(self._tmp.name))
        )
        self.app = self._app_cm.__enter__()
        found = self.ok("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
        self.expiry: str = found["expiry"]
        self.expiries: list[str] = list(found["expiries"])
        self.strikes: list[float] = sorted({row["strike"] for row in found["rows"]})
        #: Refs of orders that opened something (opens and rolls), for naming positions.
        self.opened: list[str] = []
        #: Refs of closes placed (enlarging one was defect D-L4: now refused).
        self.closes: set[str] = set()
        #: (preview_id, confirm_text) of every preview executed, for replays.
        self.used: list[tuple[str, str]] = []
        TALLY["examples"] += 1

    def teardown(self) -> None:
        try:
            self._app_cm.__exit__(None, None, None)
        finally:
            self._tmp.cleanup()

    # ------------------------------------------------------------------ calls

    def call(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.portal.call(self.app.call, name, args or {})

    def ok(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.portal.call(self.app.ok, name, args or {})

    def refused(self, step: str, answer: dict[str, Any], allowed: frozenset[str]) -> bool:
        """Whether ``answer`` is a refusal (tallied); fails on a code ``step`` may not give."""
        code = code_of(answer)
        if code is None:
            return False
        TALLY[f"refused {code}"] += 1
        if code == "ORDER_REJECTED":
            message = answer["error"]["message"]
            REJECTIONS[f"{step}: {message}"[:200]] += 1
            # TWS refusing what a preview passed is a defect (D-L3, a limit off the tick, was
            # one: now refused at preview time).
            raise AssertionError(f"{step}: TWS refused a previewed order: {message}")
        assert code in allowed, f"{step}: unexpected {code}: {answer['error']}"
        return True

    def preview(self, step: str, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        answer = self.call(tool, args)
        TALLY[f"{step} previews"] += 1
        if self.refused(f"{step} {args}", answer, PREVIEW_REFUSALS):
            return None
        assert answer["preview_id"] and answer["confirm_text"], answer
        return answer

    def confirm(self, step: str, preview: dict[str, Any]) -> dict[str, Any] | None:
        """execute_trade the preview; the placed order's answer, or None when refused."""
        sent = len(placed_orders(self.app.sim))
        answer = self.call(
            "execute_trade",
            {"preview_id": preview["preview_id"], "confirm_text": preview["confirm_text"]},
        )
        self.used.append((preview["preview_id"], preview["confirm_text"]))
        if self.refused(f"execute {step}", answer, EXECUTE_REFUSALS):
            return None
        TALLY[f"{step} placed"] += 1
        TALLY[f"status {answer['status']}"] += 1
        if step != "modify":
            assert len(placed_orders(self.app.sim)) == sent + 1, "one preview, one order"
        return answer

    # ------------------------------------------------------------------ what is held

    def position_names(self) -> list[str | None]:
        """Names a person might use for what is held now (and a few that name nothing)."""
        names: list[str | None] = [None, "STK", "no such position"]
        for p in self.ok("get_positions")["positions"]:
            if p["symbol"] != "AAPL" or abs(p["quantity"]) < 1e-9:
                continue
            names.append(str(p["con_id"]))
            if p["sec_type"] == "OPT":
                names.append(f"AAPL {p['expiry']} {p['strike']:g} {p['right']}")
                names.append(f"{p['expiry']} {p['strike']:g} {p['right']}")
        names.extend(self.opened)
        names.extend(["long call", "bull call spread", "covered call"])
        return names

    def working_orders(self) -> list[dict[str, Any]]:
        return [
            o
            for o in self.ok("get_open_orders")["orders"]
            if o["status"] in WORKING and o["order_ref"].startswith("sp-")
        ]

    # ------------------------------------------------------------------ rules

    @initialize(
        strategy=st.sampled_from(OPENINGS),
        quantity=st.integers(1, 3),
        data=st.data(),
        resting=st.booleans(),
    )
    def first_position(self, strategy: str, quantity: int, data: Any, resting: bool) -> None:
        """Every example starts from something opened here (or its refusal)."""
        self.open(strategy, quantity, data, resting)

    @rule(
        strategy=st.sampled_from(OPENINGS),
        quantity=st.integers(1, 3),
        data=st.data(),
        resting=st.booleans(),
    )
    def open_position(self, strategy: str, quantity: int, data: Any, resting: bool) -> None:
        self.open(strategy, quantity, data, resting)

    def open(self, strategy: str, quantity: int, data: Any, resting: bool) -> None:
        """Open at mid (fills at once) or at a low limit (rests, to be modified later)."""
        if strategy in ("bull_call_spread", "bear_put_spread"):
            low = data.draw(st.integers(0, len(self.strikes) - 2), label="low strike")
            high = data.draw(st.integers(low + 1, len(self.strikes) - 1), label="high strike")
            strikes = [self.strikes[low], self.strikes[high]]
        else:
            strikes = [data.draw(st.sampled_from(self.strikes), label="strike")]
        args: dict[str, Any] = {
            "symbol": "AAPL",
            "strategy": strategy,
            "expiry": self.expiry,
            "strikes": strikes,
            "quantity": quantity,
        }
        preview = self.preview("open", "calculate_strategy", args)
        if preview is None:
            return
        net = preview["limit_price"]
        if resting and net > 0.1:
            args["limit_price"] = round(max(0.05, net * 0.5), 2)
            preview = self.preview("open", "calculate_strategy", args)
            if preview is None:
                return
        if self.portal.call(nets_against_a_stop, self.app, preview["legs"]):
            TALLY["opens netting against a stop"] += 1
        placed = self.confirm("open", preview)
        if placed is not None:
            self.opened.append(placed["order_ref"])

    @rule(data=st.data(), percent=st.sampled_from([None, 20.0, 50.0, 80.0]))
    def set_stop(self, data: Any, percent: float | None) -> None:
        position = data.draw(st.sampled_from(self.position_names()), label="position")
        args: dict[str, Any] = {"symbol": "AAPL", "position": position}
        if percent is not None:
            args["stop_percent"] = percent
        preview = self.preview("stop", "set_stop_loss", args)
        if preview is not None:
            self.confirm("stop", preview)

    @rule(
        data=st.data(),
        quantity=st.sampled_from([None, 1, 2, 3]),
        price=st.sampled_from(["mid", "natural"]),
    )
    def close(self, data: Any, quantity: int | None, price: str) -> None:
        position = data.draw(st.sampled_from(self.position_names()), label="position")
        args: dict[str, Any] = {"symbol": "AAPL", "position": position, "quantity": quantity}
        preview = self.preview("close", "close_position", args)
        if preview is None:
            return
        details = preview["details"]
        assert details["action"] == "close" and details["quantity"] <= details["held"], details
        if price == "natural" and details["natural"] is not None:
            preview = self.preview(
                "close", "close_position", {**args, "limit_price": details["natural"]}
            )
            if preview is None:
                return
        placed = self.confirm("close", preview)
        if placed is not None:
            self.closes.add(placed["order_ref"])

    @rule(
        data=st.data(),
        what=st.sampled_from(["limit_price", "stop_price", "quantity"]),
        factor=st.sampled_from([0.5, 0.8, 0.95, 1.05, 1.5]),
    )
    def modify(self, data: Any, what: str, factor: float) -> None:
        orders = self.working_orders()
        if not orders:
            return
        order = data.draw(st.sampled_from(orders), label="order")
        args: dict[str, Any] = {"order_ref": order["order_ref"]}
        if what == "quantity":
            args["quantity"] = data.draw(st.integers(1, 3), label="quantity")
            if order["order_ref"] in self.closes and args["quantity"] > order["quantity"]:
                TALLY["close enlargements tried"] += 1
        elif what == "stop_price" and order["aux_price"]:
            args["stop_price"] = round(abs(order["aux_price"]) * factor, 2)
        elif order["limit_price"]:
            args["limit_price"] = round(order["limit_price"] * factor, 2)
        else:
            return
        preview = self.preview("modify", "modify_order", args)
        if preview is None:
            return
        assert preview["replaces_order_ref"] == order["order_ref"], preview
        placed = self.confirm("modify", preview)
        if placed is not None:
            assert placed["order_ref"] == order["order_ref"], placed

    @rule(data=st.data(), other_strikes=st.booleans())
    def roll(self, data: Any, other_strikes: bool) -> None:
        position = data.draw(st.sampled_from(self.position_names()), label="position")
        new_expiry = data.draw(st.sampled_from(self.expiries[:6]), label="new expiry")
        args: dict[str, Any] = {"symbol": "AAPL", "new_expiry": new_expiry, "position": position}
        if other_strikes:
            count = data.draw(st.integers(1, 2), label="strike count")
            picked = data.draw(
                st.lists(
                    st.sampled_from(self.strikes), min_size=count, max_size=count, unique=True
                ),
                label="new strikes",
            )
            args["new_strikes"] = sorted(picked)
        preview = self.preview("roll", "roll_position", args)
        if preview is None:
            return
        assert new_expiry > self.expiry, f"a roll to {new_expiry} was previewed: {preview}"
        placed = self.confirm("roll", preview)
        if placed is not None:
            self.opened.append(placed["order_ref"])

    @rule(seconds=st.sampled_from([0.0, 1.0, 5.0, 30.0, 120.0]), move=st.floats(-0.05, 0.05))
    def market_moves(self, seconds: float, move: float) -> None:
        """The clock advances (working orders may fill, stops trigger), the price moves a
        little, or the random walk resumes."""
        sim = self.app.sim
        if abs(move) < 0.005:
            self.portal.call(sim.set_price, "AAPL", None)
        else:
            spot = self.portal.call(sim.market.spot, "AAPL")
            self.portal.call(sim.set_price, "AAPL", round(spot * (1 + move), 2))
        self.portal.call(sim.advance, seconds)
        TALLY["market moves"] += 1

    @rule(data=st.data())
    def cancel(self, data: Any) -> None:
        orders = self.working_orders()
        if orders:
            order = data.draw(st.sampled_from(orders), label="order")
            answer = self.call("cancel_order", {"order_ref": order["order_ref"]})
            self.refused("cancel", answer, frozenset({"INVALID_ARGUMENT"}))
            TALLY["cancels"] += 1

    @rule(
        tail=st.text(string.ascii_letters + string.digits + "-_", min_size=24, max_size=24),
        use_real_text=st.booleans(),
    )
    def forged_preview_id(self, tail: str, use_real_text: bool) -> None:
        """execute_trade with an id no preview has: refused, nothing sent."""
        forged = "sp-" + tail
        text = self.used[-1][1] if use_real_text and self.used else "Buy 1 AAPL"
        sent = len(placed_orders(self.app.sim))
        answer = self.call("execute_trade", {"preview_id": forged, "confirm_text": text})
        # App.call records every id it sees as confirmed; this one names no preview.
        self.app.confirmed.discard(forged)
        TALLY["attacks"] += 1
        assert code_of(answer) is not None, f"a forged preview id was executed: {answer}"
        self.refused("forged execute", answer, FORGED_REFUSALS)
        assert len(placed_orders(self.app.sim)) == sent
        assert all(o.order_ref != forged for o in self.app.sim.orders_received)

    @rule(data=st.data())
    def replay_used_preview(self, data: Any) -> None:
        """execute_trade again with a preview already executed: refused, nothing sent."""
        if not self.used:
            return
        preview_id, text = data.draw(st.sampled_from(self.used), label="used preview")
        sent = len(placed_orders(self.app.sim))
        answer = self.call("execute_trade", {"preview_id": preview_id, "confirm_text": text})
        TALLY["attacks"] += 1
        assert code_of(answer) is not None, f"a used preview was executed again: {answer}"
        self.refused("replayed execute", answer, REPLAY_REFUSALS)
        assert len(placed_orders(self.app.sim)) == sent

    # ------------------------------------------------------------------ invariants

    @invariant()
    def book_is_safe(self) -> None:
        TALLY["steps"] += 1
        needed_follow_up = self.portal.call(check_book, self.app)
        if needed_follow_up is not None:
            TALLY["stops followed after the fill"] += 1


# ---------------------------------------------------------------------- running it


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as running:
        yield running


def run_model(portal: BlockingPortal, examples: int, steps: int, *, randomised: bool) -> str:
    """Run ``examples`` examples of up to ``steps`` steps (derandomized unless
    ``randomised``) and answer the one-line summary."""
    TALLY.clear()
    REJECTIONS.clear()
    LifecycleModel.portal = portal
    run_state_machine_as_test(
        LifecycleModel,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=not randomised,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
    assert TALLY["examples"] >= examples, TALLY
    return summary(TALLY)


def summary(tally: Counter[str]) -> str:
    refusals = {k.removeprefix("refused "): v for k, v in tally.items() if k.startswith("refused")}
    placed = {k.removesuffix(" placed"): v for k, v in tally.items() if k.endswith(" placed")}
    statuses = {k.removeprefix("status "): v for k, v in tally.items() if k.startswith("status ")}
    return (
        f"lifecycle model: {tally['examples']} examples, {tally['steps']} checked states, "
        f"{sum(placed.values())} orders placed {dict(sorted(placed.items()))} "
        f"statuses {dict(sorted(statuses.items()))}, {tally['market moves']} market moves, "
        f"{tally['attacks']} attacks, refusals {dict(sorted(refusals.items()))}, "
        f"{tally['stops followed after the fill']} stops followed after a fill"
    )


def test_lifecycle_model_keeps_the_book_level2_and_every_order_confirmed(
    portal: BlockingPortal,
) -> None:
    line = run_model(
        portal,
        examples=size(5, 5, env="SUMPPUMP_LIFECYCLE_CI_EXAMPLES"),
        steps=8,
        randomised=False,
    )
    print(line)
    print(f"rejected by TWS after a preview passed: {dict(REJECTIONS)}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_soak_lifecycle_model(portal: BlockingPortal) -> None:
    line = run_model(
        portal,
        examples=size(20, 150, env="SUMPPUMP_LIFECYCLE_EXAMPLES"),
        steps=size(20, 30, env="SUMPPUMP_LIFECYCLE_STEPS"),
        randomised=True,
    )
    print(f"soak {line}")
    print(f"rejected by TWS after a preview passed: {dict(REJECTIONS)}")


# ---------------------------------------------------------------------- defects found


async def _confirm(app: App, preview: dict[str, Any]) -> dict[str, Any]:
    assert "preview_id" in preview, preview
    return await app.call(
        "execute_trade",
        {"preview_id": preview["preview_id"], "confirm_text": preview["confirm_text"]},
    )


async def _front_chain(app: App) -> tuple[str, list[float]]:
    found = await app.ok("get_options_chain", {"symbol": "AAPL", "strikes_each_side": 3})
    return found["expiry"], sorted({row["strike"] for row in found["rows"]})


async def _stop_left_by_an_opening_spread(tmp: Path) -> str | None:
    async with running_app(tmp) as app:
        expiry, strikes = await _front_chain(app)
        bought = await app.ok(
            "calculate_strategy",
            {"symbol": "AAPL", "strategy": "long_call", "expiry": expiry, "strikes": [strikes[3]]},
        )
        assert (await _confirm(app, bought))["status"] == "Filled"
        stop = await app.ok(
            "set_stop_loss", {"symbol": "AAPL", "position": f"{expiry} {strikes[3]:g} C"}
        )
        assert code_of(await _confirm(app, stop)) is None
        spread = await app.call(
            "calculate_strategy",
            {
                "symbol": "AAPL",
                "strategy": "bull_call_spread",
                "expiry": expiry,
                "strikes": [strikes[2], strikes[3]],
            },
        )
        if code_of(spread) is not None:
            return None  # refused: the stop cannot be orphaned
        placed = await _confirm(app, spread)
        if code_of(placed) is None:
            await anyio.sleep(1.0)
        return stop_problem(app)


def test_an_opening_order_that_flattens_a_stopped_position_leaves_no_stop_behind(
    portal: BlockingPortal, tmp_path: Path
) -> None:
    assert portal.call(_stop_left_by_an_opening_spread, tmp_path) is None


async def _stops_listed_for_closing_a_spread_leg(tmp: Path) -> tuple[list[Any], bool]:
    async with running_app(tmp) as app:
        expiry, strikes = await _front_chain(app)
        opened = await app.ok(
            "calculate_strategy",
            {
                "symbol": "AAPL",
                "strategy": "bull_call_spread",
                "expiry": expiry,
                "strikes": [strikes[2], strikes[4]],
                "quantity": 2,
            },
        )
        ref = (await _confirm(app, opened))["order_ref"]
        stop = await app.ok("set_stop_loss", {"symbol": "AAPL", "position": ref})
        stop_ref = (await _confirm(app, stop))["order_ref"]
        # the 200 shares held cover the two short calls, so the long leg may be sold alone
        name = f"AAPL {expiry} {strikes[2]:g} C"
        first = await app.ok("close_position", {"symbol": "AAPL", "position": name})
        close = await app.ok(
            "close_position",
            {"symbol": "AAPL", "position": name, "limit_price": first["details"]["natural"]},
        )
        assert (await _confirm(app, close))["status"] == "Filled"
        await anyio.sleep(1.0)
        stop_alive = any(
            o.order_ref == stop_ref and o.is_active for o in app.sim.broker.orders.values()
        )
        return close["details"]["stops"], stop_alive


def test_closing_a_spread_leg_alone_says_what_happens_to_the_spread_stop(
    portal: BlockingPortal, tmp_path: Path
) -> None:
    stops, stop_alive = portal.call(_stops_listed_for_closing_a_spread_leg, tmp_path)
    assert not stop_alive  # what happens: the stop is cancelled with the close (safe)
    assert [s["how"] for s in stops] == ["cancelled"]  # what the preview should have said


async def _off_tick_change(tmp: Path, tool: str) -> tuple[str | None, str | None]:
    """(the preview's code, the execution's code) for a limit off the 0.05 tick of an
    option quoted above $3 (the 220 call, about $9)."""
    async with running_app(tmp) as app:
        expiry, strikes = await _front_chain(app)
        opened = await app.ok(
            "calculate_strategy",
            {
                "symbol": "AAPL",
                "strategy": "long_call",
                "expiry": expiry,
                "strikes": [strikes[1]],
                "limit_price": 3.0 if tool == "modify_order" else None,
            },
        )
        ref = (await _confirm(app, opened))["order_ref"]
        if tool == "modify_order":
            preview = await app.call("modify_order", {"order_ref": ref, "limit_price": 3.33})
        else:
            name = f"{expiry} {strikes[1]:g} C"
            preview = await app.call(
                "close_position", {"symbol": "AAPL", "position": name, "limit_price": 9.33}
            )
        if code_of(preview) is not None:
            return code_of(preview), None
        return None, code_of(await _confirm(app, preview))


@pytest.mark.parametrize("tool", ["modify_order", "close_position"])
def test_a_limit_off_the_tick_is_refused_at_preview_like_an_opening_order(
    portal: BlockingPortal, tmp_path: Path, tool: str
) -> None:
    previewed, executed = portal.call(_off_tick_change, tmp_path, tool)
    assert previewed == "INVALID_ARGUMENT" or executed is None, (previewed, executed)


async def _enlarged_close(tmp: Path, quantity: int) -> tuple[str | None, str]:
    """(the modify preview's code, its confirm text) for a working close of the one long call
    held, enlarged to ``quantity``."""
    async with running_app(tmp) as app:
        expiry, strikes = await _front_chain(app)
        opened = await app.ok(
            "calculate_strategy",
            {"symbol": "AAPL", "strategy": "long_call", "expiry": expiry, "strikes": [strikes[3]]},
        )
        assert (await _confirm(app, opened))["status"] == "Filled"
        name = f"{expiry} {strikes[3]:g} C"
        at_mid = await app.ok("close_position", {"symbol": "AAPL", "position": name})
        high = round(at_mid["details"]["natural"] * 2, 1)  # rests: far above the market
        close = await app.ok(
            "close_position", {"symbol": "AAPL", "position": name, "limit_price": high}
        )
        ref = (await _confirm(app, close))["order_ref"]
        change = await app.call("modify_order", {"order_ref": ref, "quantity": quantity})
        return code_of(change), change.get("confirm_text", "")


@pytest.mark.parametrize("quantity", [3, 4])
def test_a_working_close_cannot_be_enlarged_beyond_what_is_held(
    portal: BlockingPortal, tmp_path: Path, quantity: int
) -> None:
    code, text = portal.call(_enlarged_close, tmp_path, quantity)
    assert code in ("INVALID_ARGUMENT", "NOT_PERMITTED_LEVEL2"), text
