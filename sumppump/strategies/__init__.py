"""Pure strategy logic: the Level-2 catalogue, builders from intent to legs, the coverage rule,
order analysis and strike search. Nothing here knows about actors, TWS or MCP."""

from __future__ import annotations
