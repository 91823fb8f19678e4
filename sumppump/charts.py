"""The payoff chart: P&L at expiry and today across the price range, with the breakevens, the
max loss and max gain and the current price marked. Rendered with matplotlib's Agg backend (no
display, no network) to PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PayoffChart", "render_payoff_chart"]


@dataclass(frozen=True, slots=True)
class PayoffChart:
    """What to draw. ``pnl_today`` may be empty when no volatility was available."""

    title: str
    prices: Sequence[float]
    pnl_expiry: Sequence[float]
    pnl_today: Sequence[float]
    breakevens: Sequence[float]
    max_loss: float | None  # positive dollars, None = unbounded
    max_gain: float | None  # None = unbounded
    spot: float | None


def build_figure(chart: PayoffChart) -> Figure:
    """The figure itself (tests read its artists back before it is saved)."""
    # Imported here, not at module import: matplotlib costs about half a second, which the
    # server's start-up (spawn → tools/list) should not pay before anyone asks for a chart.
    # A bare Figure renders with Agg: no pyplot, no display.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot()
    prices = list(chart.prices)
    expiry = list(chart.pnl_expiry)
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.fill_between(
        prices,
        expiry,
        0.0,
        where=[v >= 0 for v in expiry],
        color="#2e7d32",
        alpha=0.12,
        interpolate=True,
    )
    ax.fill_between(
        prices,
        expiry,
        0.0,
        where=[v < 0 for v in expiry],
        color="#c62828",
        alpha=0.12,
        interpolate=True,
    )
    ax.plot(prices, expiry, color="#1a237e", linewidth=2.0, label="P&L at expiry")
    if chart.pnl_today:
        ax.plot(
            prices,
            list(chart.pnl_today),
            color="#ef6c00",
            linewidth=1.4,
            linestyle="--",
            label="P&L today",
        )
    for be in chart.breakevens:
        ax.axvline(be, color="#555555", linestyle=":", linewidth=1.0)
        ax.annotate(
            f"breakeven {be:,.2f}",
            xy=(be, 0.0),
            xytext=(4, 8),
            textcoords="offset points",
            fontsize=8,
            gid="breakeven",
        )
    if chart.spot is not None:
        ax.axvline(chart.spot, color="#00897b", linewidth=1.0)
        ax.annotate(
            f"now {chart.spot:,.2f}",
            xy=(chart.spot, ax.get_ylim()[1]),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=8,
            gid="spot",
        )
    low = min(expiry) if expiry else 0.0
    high = max(expiry) if expiry else 0.0
    loss_text = (
        "max loss: unbounded" if chart.max_loss is None else f"max loss ${chart.max_loss:,.2f}"
    )
    gain_text = (
        "max gain: unbounded" if chart.max_gain is None else f"max gain ${chart.max_gain:,.2f}"
    )
    ax.annotate(
        loss_text,
        xy=(prices[expiry.index(low)] if expiry else 0.0, low),
        xytext=(6, 6),
        textcoords="offset points",
        color="#c62828",
        fontsize=9,
        gid="max_loss",
    )
    ax.annotate(
        gain_text,
        xy=(prices[expiry.index(high)] if expiry else 0.0, high),
        xytext=(6, -14),
        textcoords="offset points",
        color="#2e7d32",
        fontsize=9,
        gid="max_gain",
    )
    ax.set_title(chart.title, fontsize=11)
    ax.set_xlabel("underlying price at expiry")
    ax.set_ylabel("profit / loss ($)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def render_payoff_chart(chart: PayoffChart) -> bytes:
    """PNG bytes of the chart."""
    buffer = io.BytesIO()
    build_figure(chart).savefig(buffer, format="png")
    return buffer.getvalue()
