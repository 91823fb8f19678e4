"""Execution's exercise and lapse protocol: a long option's exercise (or do-not-exercise)
instruction, previewed and then executed through the same gate as an order
(:mod:`sumppump.messages.execution` lists these in its request and reply unions)."""

from __future__ import annotations

from typing import Literal

from sumppump.messages.base import Command, Reply
from sumppump.messages.common import AccountKind

__all__ = ["ExercisePreviewCreated", "ExerciseSubmitted", "PrepareExercise"]


class PrepareExercise(Command, frozen=True, kw_only=True):
    """Preview exercising (``action="exercise"``) or lapsing (do not exercise) ``quantity``
    contracts (None: all) of the long option ``position`` (an ``expiry strike right`` text or
    a con_id; None: the only option held in ``symbol``). Reply :class:`ExercisePreviewCreated`
    or :class:`ExecutionRefused` (nothing stored). Executed with :class:`ExecutePreview` through
    the same gate as an order; execution then sends the order desk's ``ExerciseOption``."""

    symbol: str
    position: str | None = None
    quantity: int | None = None
    action: Literal["exercise", "lapse"] = "exercise"


class ExercisePreviewCreated(Reply, frozen=True, kw_only=True):
    """A stored exercise or lapse instruction. ``shares``: + bought / − delivered; ``cash``:
    money moved (− paid); ``shares_after`` / ``contracts_after``: what is held afterwards;
    ``cutoff``: IB's deadline (ISO, New York offset) and ``cutoff_source`` where it is stated."""

    preview_id: str
    confirm_text: str
    expires_at: str
    expires_in_s: float
    symbol: str
    account: str
    account_kind: AccountKind
    action: Literal["exercise", "lapse"]
    contract: str
    con_id: int
    contracts: int
    shares: float
    cash: float
    shares_after: float
    contracts_after: float
    intrinsic: float | None = None
    spot: float | None = None
    cutoff: str
    cutoff_source: str
    warnings: tuple[str, ...] = ()


class ExerciseSubmitted(Reply, frozen=True, kw_only=True):
    """The instruction went to IB (irrevocable). ``confirmed``: the positions moved as an
    exercise does; a lapse is never confirmed before expiry. ``state``: ``exercised``,
    ``exercise_sent`` (no position change seen in time) or ``lapse_sent``."""

    order_ref: str
    symbol: str
    action: Literal["exercise", "lapse"]
    contract: str
    quantity: int
    state: str
    confirmed: bool
    option_position_before: float
    option_position_after: float
    shares_before: float | None = None
    shares_after: float | None = None
    cash: float
    confirm_text: str
    account_kind: AccountKind
    message: str
