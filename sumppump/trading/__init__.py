"""The pure core of the order path: every decision execution makes, as synchronous functions
over values (messages, previews, the order ledger, quotes).

The rule: nothing here imports ``anyio``, ``ib_async`` or :mod:`sumppump.actors`, holds a
``Ref``, or ``await``\\ s (a test checks it). :mod:`sumppump.actors.execution` keeps the I/O, the
audit writes, the order lock and the application of these decisions; each of its handlers reads
*gather → decide → apply → reply*.

What lives where:

* :mod:`~sumppump.trading.ledger`: one :class:`~sumppump.trading.ledger.OrderRecord` per order
  with its state machine; the replay of the audit log.
* :mod:`~sumppump.trading.previews`: the preview store (a stored preview holds its
  ``CreatePreview`` terms); :mod:`~sumppump.trading.confirm`: the confirm text;
  :mod:`~sumppump.trading.prices`: ticks, mids, multipliers, reference prices.
* :mod:`~sumppump.trading.terms`: analysis → preview terms (``calculate_strategy`` and roll).
* :mod:`~sumppump.trading.gate`: the execute refusal ladder; :mod:`~sumppump.trading.refusals`.
* :mod:`~sumppump.trading.changes`: close and roll; :mod:`~sumppump.trading.modify`;
  :mod:`~sumppump.trading.stops`; :mod:`~sumppump.trading.strategy_orders`: the exact order of
  a built strategy (risk's analysis).
* :mod:`~sumppump.trading.breaker`, :mod:`~sumppump.trading.account` (the one account-kind
  rule), :mod:`~sumppump.trading.outcome` and :mod:`~sumppump.trading.report` (what became of
  an order), :mod:`~sumppump.trading.holdings`, :mod:`~sumppump.trading.reconciliation`.
"""

from __future__ import annotations

from sumppump.trading.account import account_kind as account_kind
from sumppump.trading.breaker import CircuitBreaker as CircuitBreaker
from sumppump.trading.ledger import OrderLedger as OrderLedger
from sumppump.trading.ledger import OrderRecord as OrderRecord
from sumppump.trading.previews import Preview as Preview
from sumppump.trading.previews import PreviewStore as PreviewStore
