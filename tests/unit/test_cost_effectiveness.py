"""Cost-effectiveness and value of information on the choice of design: hand-computed answers on toy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.experiments import cost_effectiveness as ce
from sim.experiments.statistics import chance_text, ratio_of_means, uncertainty_interval


def term(rows) -> pd.DataFrame:
    """A term table from (replication, contract, spend, sustained recoveries, recorded offences)."""
    return pd.DataFrame(rows, columns=["replication", "contract", "spend", "sustained_recoveries",
                                       "recorded_offences"]).assign(planned_exits=0.0)


def test_evpi_on_a_two_design_two_draw_toy_is_the_hand_computed_value():
    # draw 0: A has NMB 10, B 0; draw 1: A 0, B 30 (at lambda = 1: NMB = recoveries - spend)
    t = term([(0, "A", 0, 10, 0), (0, "B", 0, 0, 0), (1, "A", 0, 0, 0), (1, "B", 0, 30, 0)])
    nmb = ce.net_benefit(t, ["A", "B"], "sustained_recoveries", [1.0])
    # E[max] = (10 + 30) / 2 = 20; max E = max(5, 15) = 15; EVPI = 5
    assert ce.evpi(nmb)[0] == pytest.approx(5.0)
    result = ce.analyse(t, ["A", "B"], "sustained_recoveries", [1.0], years=2)
    asked = result.value_of_information[result.value_of_information["asked"]]
    assert asked["evpi"].iloc[0] == pytest.approx(5.0) and asked["evpi_per_year"].iloc[0] == pytest.approx(2.5)


def test_evpi_is_zero_when_one_design_is_best_in_every_draw():
    rng = np.random.default_rng(3)
    rows = []
    for r in range(30):
        base = rng.normal(100, 20)
        rows += [(r, "A", 1000.0, base, 50), (r, "B", 900.0, base + rng.uniform(1, 5), 40)]  # B: cheaper, better
    t = term(rows)
    nmb = ce.net_benefit(t, ["A", "B"], "sustained_recoveries", ce.wtp_grid([100.0]))
    assert np.allclose(ce.evpi(nmb), 0.0)
    inc = ce.incremental(t, ["A", "B"], "sustained_recoveries")
    assert inc["verdict"].iloc[0] == "dominates" and np.isnan(inc["icer"].iloc[0])
    averted = ce.incremental(t, ["A", "B"], "offences_averted")
    assert averted["extra_outcome"].iloc[0] == pytest.approx(10.0)  # 50 - 40 offences averted


def test_the_icer_is_a_ratio_of_mean_differences_and_identical_outcomes_have_none():
    t = term([(0, "A", 100, 1, 0), (0, "B", 160, 3, 0), (1, "A", 100, 2, 0), (1, "B", 180, 5, 0)])
    inc = ce.incremental(t, ["A", "B"], "sustained_recoveries").iloc[0]
    # mean extra spend (60 + 80) / 2 = 70; mean extra recoveries (2 + 3) / 2 = 2.5; ICER 28
    assert inc["extra_spend"] == 70 and inc["extra_outcome"] == 2.5 and inc["icer"] == pytest.approx(28.0)
    assert inc["verdict"] == "more effective, costs more"
    same = term([(0, "A", 100, 1, 0), (0, "B", 90, 1, 0), (1, "A", 100, 2, 0), (1, "B", 95, 2, 0)])
    assert ce.incremental(same, ["A", "B"], "sustained_recoveries")["verdict"].iloc[0] == "identical outcomes"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e5, 1e5), st.floats(0.01, 50)), min_size=2, max_size=25))
def test_acceptability_of_a_design_better_in_every_draw_rises_with_the_willingness_to_pay(pairs):
    """B buys more than A in every replication (extra outcome > 0), whatever it costs: the chance B has the higher
    net benefit can only grow with lambda, and the two curves add to one."""
    rows = []
    for r, (extra_spend, extra_outcome) in enumerate(pairs):
        rows += [(r, "A", 1e6, 100.0, 0), (r, "B", 1e6 + extra_spend, 100.0 + extra_outcome, 0)]
    curve = ce.acceptability(term(rows), ["A", "B"], "sustained_recoveries", np.linspace(0, 1e5, 30))
    b = curve[curve["contract"] == "B"]["probability_best"].to_numpy()
    assert (np.diff(b) >= -1e-12).all()
    total = curve.groupby("wtp")["probability_best"].sum().to_numpy()
    assert np.allclose(total, 1.0)


def test_evppi_finds_the_parameter_that_decides_and_not_the_one_that_does_not():
    rng = np.random.default_rng(11)
    n = 200
    decisive, idle = rng.normal(0, 1, n), rng.normal(0, 1, n)
    noise = rng.normal(0, 0.5, n)
    rows = []
    for r in range(n):  # B's net benefit over A's is the decisive parameter (plus run noise)
        rows += [(r, "A", 0.0, 0.0, 0), (r, "B", 0.0, decisive[r] + noise[r], 0)]
    params = pd.DataFrame({"replication": range(n), "draw": range(n), "x.decisive": decisive, "y.idle": idle})
    result = ce.analyse(term(rows), ["A", "B"], "sustained_recoveries", [1.0], years=1, parameters=params)
    e = result.evppi.set_index("group")["evppi"]
    # E[max(0, X)] - max(0, E X) for X ~ N(0, 1): 1 / sqrt(2 pi) = 0.399
    assert e["x.decisive"] == pytest.approx(1 / np.sqrt(2 * np.pi), abs=0.08)
    assert e["y.idle"] < 0.08 and e["all parameters"] == pytest.approx(e["x.decisive"], abs=0.08)
    evpi = result.value_of_information.query("asked")["evpi"].iloc[0]
    assert evpi > e["x.decisive"]  # the EVPI of single noisy runs counts their noise too


def test_evppi_is_not_estimated_from_too_few_draws():
    nmb = np.zeros((1, ce.MIN_DRAWS_EVPPI - 1, 2))
    assert np.isnan(ce.evppi(nmb, np.arange(ce.MIN_DRAWS_EVPPI - 1.0).reshape(-1, 1))).all()


def test_willingness_to_pay_and_outcome_are_checked():
    t = term([(0, "A", 0, 1, 0), (0, "B", 0, 1, 0)])
    with pytest.raises(ValueError, match="at least 0 pounds"):
        ce.analyse(t, ["A", "B"], "sustained_recoveries", [-1.0], years=1)
    with pytest.raises(ValueError, match="outcome must be one of"):
        ce.effects(t, "happiness")


def test_the_statistics_helper_says_chances_with_their_resolution_and_ratios_of_means():
    assert chance_text(0, 20) == "under 1 in 20" and chance_text(20, 20) == "over 19 in 20"
    assert chance_text(3, 20) == "3 of 20"
    spend, outcomes = np.array([100.0, 100, 100, 100, 100, 1000]), np.array([10.0, 10, 10, 10, 10, 1])
    r = ratio_of_means(spend, outcomes)
    assert r.ratio == pytest.approx(1500 / 51)  # not the mean of ratios (10 x 5 and 1000: 175)
    assert r.ci_low <= r.ratio <= r.ci_high and r.n == 6
    assert ratio_of_means(spend, outcomes) == r  # the bootstrap is seeded: the same table every time
    assert np.isnan(ratio_of_means(spend[:3], outcomes[:3]).ci_low)  # too few for a bootstrap
    low, high = uncertainty_interval(np.arange(101.0))
    assert (low, high) == pytest.approx((2.5, 97.5))
    assert np.isnan(uncertainty_interval([1.0])[0])
