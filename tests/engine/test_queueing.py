"""Known answers from queueing theory: LASARS assessment run as M/M/c against Erlang C; Little's law on the
caseload."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sim import simulate
from sim.experiments.validation import NO_RETURNS, erlang_c_wait
from tests.builders import small_scenario


@pytest.fixture(scope="module")
def mmc():
    """Assessment as M/M/2: Poisson first referrals only, no booking delay, exponential assessor time."""
    base = small_scenario(years=3, warmup_years=1, **{
        **NO_RETURNS,
        "assessment.booking_delay_days": 0.0,
        "capacity.assessors": 2,
    })
    lam = sum(base.population.arrivals_per_year.values()) / 365.25
    # assessor time chosen so the two assessors are busy 83% of the time, whatever the referral rate
    return base.with_changes({"assessment.assessment_days": {"dist": "exponential", "mean": 0.83 * 2 / lam}})


def test_assessment_queue_matches_erlang_c(mmc):
    lam = sum(mmc.population.arrivals_per_year.values()) / 365.25  # referrals a day
    expected = erlang_c_wait(lam, 1.0 / mmc.assessment.assessment_days.mean, 2)
    means = []
    for seed in range(10):
        h = simulate(mmc, seed=seed)
        ev = h.events
        start = ev[ev["kind"] == "assessment_start"].set_index(["client_id", "episode"])["time"]
        ep = h.episodes.set_index(["client_id", "episode"])
        wait = (start - ep.loc[start.index, "referral"]).to_numpy()
        referred = ep.loc[start.index, "referral"].to_numpy()
        means.append(wait[referred >= 0].mean())  # after the warm-up
    means = np.array(means)
    half = stats.t.ppf(0.975, len(means) - 1) * means.std(ddof=1) / math.sqrt(len(means))
    assert abs(means.mean() - expected) <= half, (means.mean(), half, expected)
    assert expected > 1.0  # the check is not vacuous: the queue really forms (rho = 0.83)


def test_littles_law_on_the_caseload(west_kent):
    """Time-average number in treatment = start rate x mean time in treatment (alcohol clients, stationary)."""
    sc = west_kent.with_changes({
        **NO_RETURNS,
        "population.arrivals_per_year": {"opiate": 0, "non_opiate": 0, "alcohol": 600, "non_opiate_alcohol": 0},
        "horizon.warmup_years": 3, "horizon.years": 6,
    })
    h = simulate(sc, seed=4)
    a, b = 0.0, h.end - 2 * 365.25  # starts observed for two more years: nearly all have exited
    sp = h.spells[h.spells["state"].isin(["in_treatment", "community_detox", "awaiting_inpatient_detox",
                                           "inpatient_detox", "awaiting_rehab", "residential_rehab"])]
    overlap = (np.minimum(sp["end"], b) - np.maximum(sp["start"], a)).clip(lower=0)
    L = overlap.sum() / (b - a)
    ep = h.episodes
    started = ep[(ep["treatment_start"] >= a) & (ep["treatment_start"] < b)]
    lam = len(started) / (b - a)
    exit_or_end = started["exit"].where(started["exit"].notna() & (started["exit_reason"] != ""), h.end)
    W = (exit_or_end - started["treatment_start"]).mean()
    assert started["exit"].notna().mean() > 0.97
    assert L == pytest.approx(lam * W, rel=0.05)
    assert L > 100  # not vacuous
