"""Exercise or lapse instructions for a long option position, through ib_async's
``exerciseOptions`` (inside the connection boundary: the order desk hands the ``IB`` here).

IB's facts (notes/ib-behaviour.md §f): ``exerciseOptions(contract, 1 = exercise / 2 = lapse,
quantity, account, override)``; the contract's exchange must not be SMART; US options take
instructions until 17:25 ET on expiry day; both are irrevocable. IB sends no message that
confirms an exercise (notes §f, "not found"): the outcome is read from the positions TWS
reports (ib_async's ``positionEvent``). A lapse changes nothing until expiry, so it is only
watched for a refusal for a short while.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import anyio
from ib_async import IB, Contract, Position

from sumppump.actors.runtime import remaining_budget
from sumppump.messages.base import Reply
from sumppump.messages.orders import ExerciseDone, ExerciseOption, OrderRejected

__all__ = ["EXERCISE_WAIT", "LAPSE_GRACE", "exercise_option"]

#: Longest wait for an exercise to show in the positions.
EXERCISE_WAIT: Final = 5.0
#: How long a lapse instruction is watched for a refusal.
LAPSE_GRACE: Final = 1.0
#: Kept from the caller's deadline to build and send the reply.
REPLY_MARGIN: Final = 0.25
#: ``OrderRejected.code`` of a refusal made here, before anything was sent to TWS.
LOCAL_REFUSAL: Final = 0


def _position(ib: IB, account: str, con_id: int) -> float:
    return sum(float(p.position) for p in ib.positions(account) if p.contract.conId == con_id)


def _shares(ib: IB, account: str, symbol: str) -> tuple[int | None, float]:
    """(stock conId, shares) of ``symbol`` held in ``account`` (conId None when none held)."""
    for p in ib.positions(account):
        if p.contract.secType == "STK" and p.contract.symbol == symbol:
            return p.contract.conId, float(p.position)
    return None, 0.0


async def exercise_option(
    ib: IB, msg: ExerciseOption, send_budget: Callable[[int], Awaitable[None]]
) -> Reply:
    """Send one exercise or lapse instruction and report what TWS showed afterwards.

    Refused locally (``OrderRejected`` code 0, nothing sent): no account, a quantity below 1,
    SMART as exchange, or fewer long contracts held than asked. IB's refusal arrives as
    ``OrderRejected`` with IB's code. Otherwise :class:`ExerciseDone` (``confirmed`` only when
    the positions moved). Runs under the caller's deadline; cancellation after the send leaves
    the instruction with IB (it is irrevocable). Pacing exceptions of ``send_budget`` propagate
    (nothing was sent).
    """
    ref = f"exercise {msg.con_id}"

    def refuse(message: str) -> OrderRejected:
        return OrderRejected(order_ref=ref, code=LOCAL_REFUSAL, message=message)

    if not msg.account:
        return refuse("an exercise needs the account that holds the option")
    if msg.quantity < 1:
        return refuse("the quantity to exercise is at least one contract")
    if msg.exchange.upper() in ("", "SMART"):
        return refuse("IB refuses SMART for exercise requests: give the option's exchange")
    before = _position(ib, msg.account, msg.con_id)
    if before < msg.quantity:
        return refuse(
            f"the account holds {before:g} long contracts of {msg.con_id}, fewer than "
            f"{msg.quantity}: only a long position can be exercised or lapsed"
        )
    under_id, shares_before = _shares(ib, msg.account, msg.symbol)
    contract = Contract(
        conId=msg.con_id, symbol=msg.symbol, secType="OPT", exchange=msg.exchange, currency="USD"
    )
    await send_budget(1)
    req_id = ib.client.getReqId()
    wake = anyio.Event()
    refused: list[tuple[int, str]] = []

    def on_error(error_req_id: int, code: int, message: str, _contract: object) -> None:
        if error_req_id == req_id:
            refused.append((code, message))
            wake.set()

    def on_position(position: Position) -> None:
        if position.account == msg.account:
            wake.set()

    ib.errorEvent += on_error
    ib.positionEvent += on_position
    exercising = msg.action == "exercise"
    limit = EXERCISE_WAIT if exercising else LAPSE_GRACE
    try:
        # The client-level call, so the request id (which IB's refusal carries) is ours.
        ib.client.exerciseOptions(  # type: ignore[no-untyped-call]
            req_id, contract, 1 if exercising else 2, msg.quantity, msg.account, int(msg.override)
        )
        with anyio.move_on_after(max(0.0, min(limit, remaining_budget(limit)) - REPLY_MARGIN)):
            while not refused and not (
                exercising and _position(ib, msg.account, msg.con_id) <= before - msg.quantity
            ):
                await wake.wait()
                wake = anyio.Event()
    finally:
        ib.errorEvent -= on_error
        ib.positionEvent -= on_position
    if refused:
        code, text = refused[0]
        return OrderRejected(order_ref=ref, code=code, message=text)
    after = _position(ib, msg.account, msg.con_id)
    under_after_id, shares_after = _shares(ib, msg.account, msg.symbol)
    confirmed = exercising and after <= before - msg.quantity
    if confirmed:
        detail = f"exercised {msg.quantity}: shares {shares_before:g} -> {shares_after:g}"
    elif exercising:
        detail = "sent; TWS showed no position change in time: check the positions"
    else:
        detail = "lapse instruction sent and not refused; IB confirms nothing until expiry"
    return ExerciseDone(
        con_id=msg.con_id,
        account=msg.account,
        action=msg.action,
        quantity=msg.quantity,
        confirmed=confirmed,
        option_position_before=before,
        option_position_after=after,
        underlying_con_id=under_id or under_after_id,
        shares_before=shares_before,
        shares_after=shares_after,
        detail=detail,
    )
