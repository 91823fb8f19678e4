"""Analysis → preview terms (pure): the one mapping from risk's :class:`StrategyAnalysed` to
the :class:`CreatePreview` execution stores, used by ``calculate_strategy`` and by a roll's
new position alike, and the terms of a fresh preview after the price moved.

Strategy names travel in words ("bull call spread"): :func:`strategy_words` turns the tool's
identifier into them and :func:`strategy_id` back, for the one place (risk's
``AnalyseStrategy``) that needs the identifier.
"""

from __future__ import annotations

import msgspec

from sumppump.messages.common import Quote
from sumppump.messages.execution import CreatePreview
from sumppump.messages.risk import StrategyAnalysed
from sumppump.trading.prices import (
    option_price_tick,
    price_multiplier,
    round_to_tick,
    snapshot_quotes,
)

__all__ = ["fresh_terms", "open_terms", "strategy_id", "strategy_words"]


def strategy_words(strategy: str) -> str:
    """``bull_call_spread`` → ``bull call spread``."""
    return strategy.replace("_", " ")


def strategy_id(words: str) -> str:
    """``bull call spread`` → ``bull_call_spread``."""
    return words.replace(" ", "_")


def open_terms(analysed: StrategyAnalysed, strategy: str) -> CreatePreview:
    """The preview of opening the analysed order: max loss with commission, the what-if
    commission when IB gave one (else the estimate), the quotes the analysis used."""
    analysis = analysed.analysis
    return CreatePreview(
        order=analysed.order,
        symbol=analysed.order.symbol,
        kind="open",
        strategy=strategy_words(strategy),
        max_loss=analysis.max_loss_with_commission,
        max_gain=analysis.max_gain,
        breakevens=analysis.breakevens,
        net_debit=analysis.limit_price,
        quote_snapshot=snapshot_quotes(analysed.quote_snapshot),
        underlying_price=analysed.quote_snapshot.underlying_mid,
        epoch=analysed.epoch,
        account_kind=analysed.account_kind,
        min_tick=analysis.tick,
        warnings=analysed.warnings,
        commission=analysed.what_if_commission or analysis.commission.total,
        shares_held_used=analysed.shares_held_used,
        order_max_loss=analysed.order_max_loss,
    )


def fresh_terms(
    old: CreatePreview, now_mid: float, quotes: tuple[Quote, ...]
) -> CreatePreview | None:
    """The same order at the current mid; max loss and gain shift by the change in debit
    (the whole P&L curve moves by it); breakevens are dropped (re-run the analysis). ``None``
    when a single leg's new limit would not be positive. ``old.order`` may carry its ref."""
    order = old.order
    tick = old.min_tick
    if len(order.legs) == 1 and order.legs[0].sec_type == "OPT":
        tick = max(tick, option_price_tick(now_mid))
    new_limit = round_to_tick(now_mid, tick)
    if len(order.legs) == 1 and new_limit <= 0:
        return None
    delta = (new_limit - (order.limit_price or 0.0)) * price_multiplier(order) * order.quantity

    def shifted(value: float | None, sign: float) -> float | None:
        return None if value is None else round(value + sign * delta, 2)

    return msgspec.structs.replace(
        old,
        order=msgspec.structs.replace(order, order_ref="", limit_price=new_limit),
        max_loss=shifted(old.max_loss, 1.0),
        max_gain=shifted(old.max_gain, -1.0),
        breakevens=(),
        net_debit=new_limit,
        quote_snapshot=quotes,
        order_max_loss=shifted(old.order_max_loss, 1.0),
        details=None
        if old.details is None
        else msgspec.structs.replace(old.details, limit_price=new_limit, mid=now_mid),
    )
