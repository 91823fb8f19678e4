"""The payoff chart, checked without a browser: its artists are read back before saving."""

from __future__ import annotations

import struct

import numpy as np

from sumppump.charts import PayoffChart, build_figure, render_payoff_chart
from sumppump.quant.payoff import PayoffLeg, analyse_expiry, expiry_pnl


def bull_call_spread() -> PayoffChart:
    # Buy the 100 call at 3.00, sell the 110 call at 1.00: debit 2.00 × 100 = 200 per spread.
    legs = [
        PayoffLeg(right="C", strike=100.0, position=1, multiplier=100, entry_price=3.00),
        PayoffLeg(right="C", strike=110.0, position=-1, multiplier=100, entry_price=1.00),
    ]
    prices = np.linspace(80, 130, 201)
    profile = analyse_expiry(legs)
    return PayoffChart(
        title="AAPL bull call spread 100/110",
        prices=prices.tolist(),
        pnl_expiry=expiry_pnl(legs, prices).tolist(),
        pnl_today=[],
        breakevens=profile.breakevens,
        max_loss=profile.max_loss,
        max_gain=profile.max_gain,
        spot=104.0,
    )


def test_chart_marks_breakeven_max_loss_and_max_gain_of_a_known_spread() -> None:
    chart = bull_call_spread()
    assert chart.breakevens == (102.0,)
    assert chart.max_loss == 200.0 and chart.max_gain == 800.0
    fig = build_figure(chart)
    texts = {t.get_gid(): t.get_text() for t in fig.axes[0].texts}
    assert texts["breakeven"] == "breakeven 102.00"
    assert texts["max_loss"] == "max loss $200.00"
    assert texts["max_gain"] == "max gain $800.00"
    assert texts["spot"] == "now 104.00"
    line = fig.axes[0].lines[1]  # the first line is the zero axis
    assert line.get_label() == "P&L at expiry"
    assert min(line.get_ydata()) == -200.0 and max(line.get_ydata()) == 800.0


def test_chart_renders_a_png_of_the_expected_size() -> None:
    png = render_payoff_chart(bull_call_spread())
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (800, 450)
    assert len(png) > 10_000


def test_unbounded_gain_is_written_as_such() -> None:
    legs = [PayoffLeg(right="C", strike=100.0, position=1, multiplier=100, entry_price=3.0)]
    prices = np.linspace(80, 130, 101)
    profile = analyse_expiry(legs)
    chart = PayoffChart(
        title="long call",
        prices=prices.tolist(),
        pnl_expiry=expiry_pnl(legs, prices).tolist(),
        pnl_today=[],
        breakevens=profile.breakevens,
        max_loss=profile.max_loss,
        max_gain=profile.max_gain,
        spot=None,
    )
    texts = {t.get_gid(): t.get_text() for t in build_figure(chart).axes[0].texts}
    assert texts["max_gain"] == "max gain: unbounded"
