"""Strike search for ``suggest_strikes``: every Level-2 candidate of one expiry, vectorised.

For an outlook the candidates are:

* ``bullish``: long calls at every strike, bull call spreads for every strike pair;
* ``bearish``: long puts at every strike, bear put spreads for every strike pair;
* ``volatile``: long straddles at every strike, long strangles for every put-below-call pair.

Each is priced at the mid (what ``calculate_strategy`` defaults to), per one unit, and gets its
max loss, max gain, breakevens, reward/risk and risk-neutral probability of profit (lognormal with
the at-the-money iv: ``P(S_T`` beyond the breakeven``)``, both tails for straddles and strangles).

Ranking: ``score`` is the average expiry P&L per dollar at risk over the outcomes the outlook
describes: for bullish/bearish the stock ending anywhere (evenly) between today's price and the
target, for volatile the stock ending at either target (``spot ± |target − spot|``). The default
target is a one-standard-deviation move, ``spot·e^{±σ√T}`` with the at-the-money iv. Averaging
over the path to the target, not only at it, keeps cheap far-out-of-the-money lottery tickets and
near-riskless deep-in-the-money spreads off the top (both were tried: expected return under a
shifted lognormal favours the former, a Sharpe ratio the latter). Ties go to the higher
probability of profit, and each structure kind first gets its fair share of the list.
``pnl_at_target`` is the plain expiry P&L at the target when one is given.

Everything is computed on numpy arrays over all candidates at once; only the top ``limit`` become
:class:`Candidate` structs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

from sumppump.quant.probability import probability_above
from sumppump.strategies.model import StrategyLeg, StrategyRefused

__all__ = ["Candidate", "ChainSlice", "Outlook", "suggest"]

Outlook = Literal["bullish", "bearish", "volatile"]
F64 = NDArray[np.float64]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChainSlice:
    """One expiry of a chain as arrays aligned on ``strikes`` (NaN where a value is missing).

    ``spot`` is the underlying price, ``years`` the time to expiry, ``multiplier`` the contracts'
    multiplier. ``call_mid``/``put_mid`` default to ``(bid + ask) / 2`` where both sides exist.
    """

    expiry: str
    strikes: ArrayLike
    call_bid: ArrayLike
    call_ask: ArrayLike
    put_bid: ArrayLike
    put_ask: ArrayLike
    call_iv: ArrayLike
    put_iv: ArrayLike
    spot: float
    years: float
    multiplier: int
    call_mid: ArrayLike | None = None
    put_mid: ArrayLike | None = None
    r: float = 0.0
    q: float = 0.0


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """One suggestion, per unit (one contract, one spread): money in dollars, prices per share.

    ``debit`` is the mid net per unit and ``natural_debit`` the net at the natural price;
    ``max_gain``/``reward_risk`` are ``None`` when unbounded; ``breakevens`` sorted;
    ``probability_of_profit`` risk-neutral at expiry; ``expected_pnl`` the outlook-weighted
    expected P&L behind ``score = expected_pnl / max_loss`` (``None`` without a scenario: no
    target and no volatility).
    """

    strategy: str
    legs: tuple[StrategyLeg, ...]
    strikes: tuple[float, ...]
    debit: float
    natural_debit: float | None
    max_loss: float
    max_gain: float | None
    breakevens: tuple[float, ...]
    reward_risk: float | None
    probability_of_profit: float | None
    pnl_at_target: float | None
    expected_pnl: float | None
    score: float | None


_KIND_NAMES = (
    "long_call",
    "bull_call_spread",
    "long_put",
    "bear_put_spread",
    "long_straddle",
    "long_strangle",
)
LONG_CALL, BULL_CALL, LONG_PUT, BEAR_PUT, STRADDLE, STRANGLE = range(6)


def _arr(x: ArrayLike | None, n: int) -> F64:
    if x is None:
        return np.full(n, np.nan)
    a = np.asarray(x, dtype=float).reshape(-1)
    if a.size != n:
        raise StrategyRefused(
            "INVALID_ARGUMENT", "chain arrays differ in length", "align every array on strikes"
        )
    return a


def _mid(bid: F64, ask: F64, given: F64) -> F64:
    with np.errstate(invalid="ignore"):
        computed = np.where((bid >= 0) & (ask >= bid), 0.5 * (bid + ask), np.nan)
    return np.where(np.isfinite(given), given, computed)


def _atm_iv(strikes: F64, call_iv: F64, put_iv: F64, spot: float) -> float | None:
    ivs = np.where(np.isfinite(call_iv) & np.isfinite(put_iv), 0.5 * (call_iv + put_iv),
                   np.where(np.isfinite(call_iv), call_iv, put_iv))  # fmt: skip
    ok = np.isfinite(ivs) & (ivs > 0)
    if not ok.any():
        return None
    idx = np.flatnonzero(ok)
    nearest = idx[np.argmin(np.abs(strikes[idx] - spot))]
    return float(ivs[nearest])


def _prob_above(level: F64, spot: float, sigma: float, years: float, r: float, q: float) -> F64:
    """Risk-neutral P(S_T > level); 1 where level <= 0."""
    return probability_above(spot, level, years, sigma, r, q)


def suggest(
    chain: ChainSlice,
    outlook: Outlook,
    *,
    target_price: float | None = None,
    max_debit: float | None = None,
    atm_iv: float | None = None,
    limit: int = 10,
) -> tuple[Candidate, ...]:
    """The best ``limit`` Level-2 candidates for ``outlook`` in ``chain``, best first.

    ``max_debit`` is dollars per unit (debit × multiplier), e.g. 500 for "at most $500 a spread".
    ``atm_iv`` overrides the at-the-money iv read from the chain. Candidates need a positive ask on
    every bought leg, a positive bid on every sold leg, a positive mid debit and, for spreads, a
    debit below the strike width (else nothing can be gained). Returns an empty tuple when nothing
    qualifies. Raises :class:`StrategyRefused` (``INVALID_ARGUMENT``) for an unknown outlook,
    misaligned arrays, or a non-positive spot, time or target.
    """
    if outlook not in ("bullish", "bearish", "volatile"):
        raise StrategyRefused(
            "INVALID_ARGUMENT", f"outlook {outlook!r}", "use bullish, bearish or volatile"
        )
    if not (chain.spot > 0 and chain.years > 0 and chain.multiplier > 0):
        raise StrategyRefused(
            "INVALID_ARGUMENT", "spot, time to expiry and multiplier must be positive", ""
        )
    if target_price is not None and not (math.isfinite(target_price) and target_price > 0):
        raise StrategyRefused("INVALID_ARGUMENT", f"target_price {target_price!r}", "a price > 0")
    strikes = np.asarray(chain.strikes, dtype=float).reshape(-1)
    n = strikes.size
    order = np.argsort(strikes)
    strikes = strikes[order]

    def col(x: ArrayLike | None) -> F64:
        return _arr(x, n)[order]

    cb, ca, pb, pa = (
        col(chain.call_bid),
        col(chain.call_ask),
        col(chain.put_bid),
        col(chain.put_ask),
    )
    cm = _mid(cb, ca, col(chain.call_mid))
    pm = _mid(pb, pa, col(chain.put_mid))
    s, t, r, q, m = chain.spot, chain.years, chain.r, chain.q, float(chain.multiplier)
    sigma = (
        atm_iv if atm_iv is not None else _atm_iv(strikes, col(chain.call_iv), col(chain.put_iv), s)
    )

    with np.errstate(invalid="ignore"):
        call_long_ok = (ca > 0) & (cm > 0)
        call_short_ok = (cb > 0) & np.isfinite(cm)
        put_long_ok = (pa > 0) & (pm > 0)
        put_short_ok = (pb > 0) & np.isfinite(pm)

    i_up, j_up = np.triu_indices(n, k=1)  # i < j: strikes[i] < strikes[j] (distinct strikes)
    distinct = strikes[j_up] > strikes[i_up]
    i_up, j_up = i_up[distinct], j_up[distinct]
    width = strikes[j_up] - strikes[i_up]
    idx = np.arange(n)
    blocks: list[dict[str, np.ndarray]] = []

    def add(kind: int, a: np.ndarray, b: np.ndarray, ok: np.ndarray, debit: F64, natural: F64,
            gain: F64, be_lo: F64, be_hi: F64, k_lo: F64, k_hi: F64) -> None:  # fmt: skip
        with np.errstate(invalid="ignore"):
            keep = ok & (debit > 0) & np.isfinite(debit) & (gain > 0)
        blocks.append(
            {
                "kind": np.full(int(keep.sum()), kind),
                "a": a[keep], "b": b[keep], "debit": debit[keep], "natural": natural[keep],
                "gain": gain[keep], "be_lo": be_lo[keep], "be_hi": be_hi[keep],
                "k_lo": k_lo[keep], "k_hi": k_hi[keep],
            }
        )  # fmt: skip

    nan_n = np.full(n, np.nan)
    nan_p = np.full(i_up.size, np.nan)
    inf_n = np.full(n, np.inf)
    if outlook == "bullish":
        add(LONG_CALL, idx, idx, call_long_ok, cm, ca, inf_n, nan_n, strikes + cm,
            strikes, strikes)  # fmt: skip
        d = cm[i_up] - cm[j_up]
        add(BULL_CALL, i_up, j_up, call_long_ok[i_up] & call_short_ok[j_up], d,
            ca[i_up] - cb[j_up], width - d, nan_p, strikes[i_up] + d,
            strikes[i_up], strikes[j_up])  # fmt: skip
    elif outlook == "bearish":
        add(LONG_PUT, idx, idx, put_long_ok, pm, pa, strikes - pm, strikes - pm, nan_n,
            strikes, strikes)  # fmt: skip
        d = pm[j_up] - pm[i_up]
        add(BEAR_PUT, j_up, i_up, put_long_ok[j_up] & put_short_ok[i_up], d,
            pa[j_up] - pb[i_up], width - d, strikes[j_up] - d, nan_p,
            strikes[i_up], strikes[j_up])  # fmt: skip
    else:
        d = cm + pm
        add(STRADDLE, idx, idx, call_long_ok & put_long_ok, d, ca + pa, inf_n, strikes - d,
            strikes + d, strikes, strikes)  # fmt: skip
        d = pm[i_up] + cm[j_up]
        add(STRANGLE, i_up, j_up, put_long_ok[i_up] & call_long_ok[j_up], d,
            pa[i_up] + ca[j_up], np.full(i_up.size, np.inf), strikes[i_up] - d,
            strikes[j_up] + d, strikes[i_up], strikes[j_up])  # fmt: skip

    cand = {key: np.concatenate([blk[key] for blk in blocks]) for key in blocks[0]}
    if max_debit is not None:
        keep = cand["debit"] * m <= max_debit + 1e-9
        cand = {key: v[keep] for key, v in cand.items()}
    if cand["kind"].size == 0:
        return ()

    has_lo, has_hi = np.isfinite(cand["be_lo"]), np.isfinite(cand["be_hi"])
    if sigma is not None and sigma > 0:
        p_lo = 1.0 - _prob_above(np.where(has_lo, cand["be_lo"], 1.0), s, sigma, t, r, q)
        p_hi = _prob_above(np.where(has_hi, cand["be_hi"], 1.0), s, sigma, t, r, q)
        pop = np.where(has_lo, p_lo, 0.0) + np.where(has_hi, p_hi, 0.0)
    else:
        pop = np.full(cand["kind"].size, np.nan)
    max_loss = cand["debit"] * m
    kind, k_lo, k_hi, debit = cand["kind"], cand["k_lo"], cand["k_hi"], cand["debit"]
    pnl_target = None
    if target_price is not None:
        pnl_target = (_expiry_value(kind, k_lo, k_hi, np.asarray(target_price)) - debit) * m

    scenario = _scenario_prices(outlook, s, sigma, t, target_price)
    ev = np.full(kind.size, np.nan)
    score = np.full(kind.size, np.nan)
    if scenario is not None:
        pnl = (_expiry_value(kind[:, None], k_lo[:, None], k_hi[:, None], scenario[None, :])
               - debit[:, None]) * m  # fmt: skip
        ev = pnl.mean(axis=1)
        score = ev / max_loss

    best = _rank(kind, score, pop, limit)

    out: list[Candidate] = []
    for c in best:
        kind_c = int(cand["kind"][c])
        a, b = int(cand["a"][c]), int(cand["b"][c])
        legs = _legs(kind_c, float(strikes[a]), float(strikes[b]), chain.expiry)
        gain = float(cand["gain"][c]) * m
        bounded = math.isfinite(gain)
        bes = tuple(float(v) for v in (cand["be_lo"][c], cand["be_hi"][c]) if math.isfinite(v))
        natural = float(cand["natural"][c])
        out.append(
            Candidate(
                strategy=_KIND_NAMES[kind_c],
                legs=legs,
                strikes=tuple(sorted({leg.strike for leg in legs if leg.strike is not None})),
                debit=float(cand["debit"][c]),
                natural_debit=natural if math.isfinite(natural) else None,
                max_loss=float(max_loss[c]),
                max_gain=gain if bounded else None,
                breakevens=tuple(sorted(bes)),
                reward_risk=gain / float(max_loss[c]) if bounded else None,
                probability_of_profit=float(pop[c]) if math.isfinite(pop[c]) else None,
                pnl_at_target=None if pnl_target is None else float(pnl_target[c]),
                expected_pnl=float(ev[c]) if math.isfinite(ev[c]) else None,
                score=float(score[c]) if math.isfinite(score[c]) else None,
            )
        )
    return tuple(out)


_SCENARIO_POINTS = 101


def _scenario_prices(
    outlook: str, spot: float, sigma: float | None, years: float, target: float | None
) -> F64 | None:
    """Where the outlook says the stock ends: evenly from spot to the target for a direction, the
    two targets for ``volatile``. The default target is a one-standard-deviation move
    (``spot·e^{±σ√T}``); with no volatility and no target there is no scenario (``None``)."""
    if target is None:
        if sigma is None or not sigma > 0:
            return None
        move = math.exp(sigma * math.sqrt(years))
        target = spot * move if outlook != "bearish" else spot / move
    if outlook == "volatile":
        distance = abs(target - spot) or spot * 0.05
        return np.array([max(spot - distance, 0.0), spot + distance])
    return np.linspace(spot, target, _SCENARIO_POINTS)


def _expiry_value(kind: np.ndarray, k_lo: np.ndarray, k_hi: np.ndarray, x: np.ndarray) -> F64:
    """Expiry value per share of each candidate kind at underlying price ``x`` (broadcasting)."""
    width = k_hi - k_lo
    return np.select(
        [kind == LONG_CALL, kind == BULL_CALL, kind == LONG_PUT, kind == BEAR_PUT],
        [np.maximum(x - k_lo, 0.0), np.clip(x - k_lo, 0.0, width),
         np.maximum(k_lo - x, 0.0), np.clip(k_hi - x, 0.0, width)],
        default=np.maximum(k_lo - x, 0.0) + np.maximum(x - k_hi, 0.0),
    )  # fmt: skip


def _rank(kind: np.ndarray, score: F64, pop: F64, limit: int) -> list[int]:
    """Indices of the best ``limit`` candidates: by score (then probability of profit), with each
    structure kind first limited to its fair share of the list so one kind cannot crowd out the
    other (a list of ten nearly identical deep in-the-money calls helps no one)."""
    rank_score = np.where(np.isfinite(score), score, -np.inf)
    rank_pop = np.where(np.isfinite(pop), pop, -1.0)
    order = np.lexsort((-rank_pop, -rank_score))
    kinds = np.unique(kind)
    if limit <= 0 or order.size == 0:
        return []
    quota = math.ceil(limit / kinds.size)
    taken: dict[int, int] = {}
    first: list[int] = []
    rest: list[int] = []
    for c in order.tolist():
        k = int(kind[c])
        if taken.get(k, 0) < quota:
            taken[k] = taken.get(k, 0) + 1
            first.append(c)
        else:
            rest.append(c)
    chosen = first[:limit]
    if len(chosen) < limit:
        chosen += rest[: limit - len(chosen)]
    position = {c: i for i, c in enumerate(order.tolist())}
    return sorted(chosen, key=position.__getitem__)


def _legs(kind: int, k_a: float, k_b: float, expiry: str) -> tuple[StrategyLeg, ...]:
    """Legs of a candidate; ``k_a`` is the bought (or put) strike, ``k_b`` the other."""

    def leg(action: Literal["BUY", "SELL"], right: Literal["C", "P"], k: float) -> StrategyLeg:
        return StrategyLeg(action=action, right=right, strike=float(k), expiry=expiry, ratio=1)

    match kind:
        case 0:
            return (leg("BUY", "C", k_a),)
        case 1:
            return (leg("BUY", "C", k_a), leg("SELL", "C", k_b))
        case 2:
            return (leg("BUY", "P", k_a),)
        case 3:
            return (leg("BUY", "P", k_a), leg("SELL", "P", k_b))
        case 4:
            return (leg("BUY", "C", k_a), leg("BUY", "P", k_a))
        case _:
            return (leg("BUY", "P", k_a), leg("BUY", "C", k_b))
