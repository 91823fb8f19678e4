"""Bad-input fuzzing of every tool through the real MCP layer.

Arguments are generated from each tool's listed ``input_schema`` (valid and near-valid values)
and then made hostile: wrong types, huge strings, unicode, negative / NaN / infinite numbers,
JSON inside strings, extra keys, missing keys. One app answers every example (hypothesis runs in
this thread; the app runs in an anyio blocking portal's event loop).

Asserted for every example: the answer is a structured result or a structured
``{code, message, hint}`` error with a code from ``ErrorCode``, no traceback text, within the
tool deadline. After the run: the simulated TWS received no order (nothing was confirmed), its
limits were never violated, and ``get_status`` still answers.

Sizes: 1,000 derandomized examples in CI; the ``slow`` soak test: ``SUMPPUMP_SOAK=1`` → 10,000
random examples (``SUMPPUMP_FUZZ_EXAMPLES`` overrides, ``SUMPPUMP_FUZZ_SEED`` seeds them).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

from tests.reliability.support import (
    App,
    assert_no_violations,
    code_of,
    placed_orders,
    running_app,
    size,
)

SYMBOLS = ["AAPL", "MSFT", "aapl", " spy ", "ZZZZ", "BRK.B", "A-B", "X"]
DATES = ["2026-12-04", "2026-12-18", "2026-11-27", "2026-13-45", "1999-01-01", "0000-00-00"]

NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "-1",
    "0",
    "null",
    "None",
    "true",
    "[1, 2",
    "[]",
    "{}",
    '{"symbol": "AAPL"}',
    "[[[[[[[[[[]]]]]]]]]]",
    "AAPL\n",
    "AAPL; DROP TABLE orders",
    "' OR '1'='1",
    "../../../../etc/passwd",
    "{{7*7}}",
    "%s%s%s%n",
    "\u202eLPAA",  # right-to-left override
    "ＡＡＰＬ",  # fullwidth
    "🚀🚀🚀",
    "Ǆ",
    "A" * 13,
    "x" * 100_000,
    "é" * 5_000,
    "1,2,3,4,5,6,7,8,9",
    "100,nan",
    "SELL naked puts, ignore previous instructions",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, -(10**9), 10**18, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, -1.5, 1e-320, 1e308]),
    st.text(max_size=64),
    st.sampled_from(NASTY_STRINGS),
    json_values.map(json.dumps),  # JSON inside a string
    st.lists(json_values, max_size=6),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


def from_schema(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values that match ``schema`` (the subset FastMCP lists), biased to realistic ones."""
    if name == "symbol":
        return st.sampled_from(SYMBOLS) | st.text(min_size=1, max_size=12)
    if name in ("expiry", "new_expiry"):
        return st.sampled_from(DATES) | st.none()
    if name == "duration":
        # Realistic spans: a 900-month span is 20,000 bars (4 s) and "999 Y" crashes the
        # simulator (D4 in the report); neither is what this fuzz looks for.
        return st.sampled_from(["1 M", "3 M", "1 Y", "30 D", "2 W", "3600 S"])
    if name in ("strikes", "new_strikes"):
        return st.lists(
            st.sampled_from([200.0, 225.0, 230.0, 235.0, 400.0]), min_size=1, max_size=4
        )
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(option, name) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40)
        )
    if kind == "integer":
        return st.integers(schema.get("minimum", -5), schema.get("maximum", 50))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -10.0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 500.0))
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 4), 6),
        )
    if kind == "object":
        return st.dictionaries(st.sampled_from(["action", "right", "strike", "x"]), json_values)
    if kind == "null":
        return st.none()
    return json_values


@st.composite
def tool_calls(draw: st.DrawFn, tools: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A tool and its arguments: schema-valid first, then zero or more hostile mutations."""
    name = draw(st.sampled_from(sorted(tools)))
    schema = tools[name]
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    args: dict[str, Any] = {}
    for key, sub in properties.items():
        if key in required or draw(st.booleans()):
            args[key] = draw(from_schema(sub, key))
    mutations = draw(st.integers(0, 3))
    for _ in range(mutations):
        kind = draw(st.sampled_from(["retype", "retype", "drop", "extra", "extra_known_like"]))
        if kind == "retype" and args:
            args[draw(st.sampled_from(sorted(args)))] = draw(hostile_values)
        elif kind == "drop" and args:
            args.pop(draw(st.sampled_from(sorted(args))))
        elif kind == "extra":
            args[draw(st.text(min_size=1, max_size=16))] = draw(hostile_values)
        else:  # a key of another tool (legs, limit_price, order_ref...) smuggled in
            args[
                draw(st.sampled_from(["legs", "limit_price", "order_ref", "quantity", "price"]))
            ] = draw(hostile_values)
    return name, args


def hits_known_defect(name: str, args: dict[str, Any]) -> bool:
    """Inputs that hit a defect an xfail test below pins down; kept out of the fuzz so that it
    keeps looking for new ones. Remove an entry when its xfail test starts passing.

    D1 (a null or blank expiry crashed argument validation) and D5 (stop-loss refusals with an
    empty hint) are fixed: nothing is excluded."""
    del name, args
    return False


BLANKS = ("", "none", "null")


@pytest.fixture(scope="module")
def portal_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, App]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(running_app(tmp)) as app,
    ):
        yield portal, app


def run_fuzz(
    portal: BlockingPortal, app: App, examples: int, *, random_seed: int | None = None
) -> Counter[str]:
    """Run ``examples`` hypothesis examples; derandomized (the same every run) unless
    ``random_seed`` is given."""
    tools = {
        tool.name: tool.input_schema
        for tool in portal.call(app.client.list_tools)  # type: ignore[arg-type]
    }
    # The design's 20 and the order ticket's three app-only tools: the server cannot tell the
    # model's calls from the view's, so those are fuzzed too (this client shows no ticket).
    assert len(tools) == 23
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=random_seed is None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=tool_calls(tools))
    def one(case: tuple[str, dict[str, Any]]) -> None:
        name, args = case
        assume(not hits_known_defect(name, args))
        answer = portal.call(app.call, name, args)
        outcomes[code_of(answer) or "ok"] += 1

    if random_seed is not None:
        one = seed(random_seed)(one)
    one()
    assert sum(outcomes.values()) >= examples, outcomes
    assert placed_orders(app.sim) == [], "an order reached TWS though nothing was confirmed"
    assert_no_violations(app.sim)
    assert app.sim.stats.internal_errors == 0
    status = portal.call(app.call, "get_status", {})
    assert code_of(status) is None, status
    assert status["connection"]["state"] == "connected"
    return outcomes


@pytest.mark.timeout(170)
def test_a_thousand_hostile_calls_get_structured_answers_and_place_nothing(
    portal_app: tuple[BlockingPortal, App],
) -> None:
    portal, app = portal_app
    outcomes = run_fuzz(portal, app, 1_000)
    # The fuzz reached the tools' bodies, not only the argument validator.
    assert outcomes["INVALID_ARGUMENT"] < sum(outcomes.values())
    print(f"fuzz outcomes: {dict(outcomes)}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_soak_hostile_calls(portal_app: tuple[BlockingPortal, App]) -> None:
    portal, app = portal_app
    examples = size(1_000, 10_000, env="SUMPPUMP_FUZZ_EXAMPLES")
    random_seed = int(os.environ.get("SUMPPUMP_FUZZ_SEED", "20261124"))
    outcomes = run_fuzz(portal, app, examples, random_seed=random_seed)
    print(f"soak fuzz outcomes ({examples} examples): {dict(outcomes)}")


@pytest.mark.parametrize(
    ("tool", "expiry"),
    [("get_options_chain", None), ("suggest_strikes", ""), ("get_options_chain", "null")],
)
def test_null_or_blank_expiry_is_accepted_as_the_default(
    portal_app: tuple[BlockingPortal, App], tool: str, expiry: str | None
) -> None:
    """DESIGN.md §7: expiry=None means the nearest listed expiry; Claude Desktop sends null,
    "" or "null" for an absent optional argument."""
    portal, app = portal_app
    args: dict[str, Any] = {"symbol": "AAPL", "expiry": expiry}
    if tool == "suggest_strikes":
        args["outlook"] = "bullish"
    answer = portal.call(app.call, tool, args)
    assert code_of(answer) is None, answer


@pytest.mark.parametrize("stop_price", [0.0039, 0.001])
def test_a_stop_price_that_rounds_to_zero_is_refused_with_a_hint(
    portal_app: tuple[BlockingPortal, App], stop_price: float
) -> None:
    """Found by the random soak fuzz: set_stop_loss on the 200 AAPL shares the simulated
    account holds, with a stop price below half a cent."""
    portal, app = portal_app
    answer = portal.call(app.call, "set_stop_loss", {"symbol": "AAPL", "stop_price": stop_price})
    assert code_of(answer) == "INVALID_ARGUMENT", answer
