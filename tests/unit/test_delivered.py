"""What a design buys, per contract year (sim.analysis.delivered): checked against the same quantities read
another way from the same History."""

from __future__ import annotations

import numpy as np
import pytest

from sim.analysis.delivered import DELIVERED, DELIVERED_TERM, OBSERVABLE, delivered_by_year, delivered_term
from sim.analysis.evaluation import FOLLOW_UP_DAYS
from sim.analysis.targets import measure
from sim.config.contract import load_contract
from sim.money.settlement import contract_year_metrics, settle
from tests.conftest import SCENARIOS


@pytest.fixture(scope="module")
def run(small, small_history_seed_1):
    settlement = settle(load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml"), small_history_seed_1, small)
    return small, small_history_seed_1, settlement, delivered_by_year(small_history_seed_1, small, settlement.years)


def test_every_contract_year_has_every_measure(run):
    _, h, settlement, d = run
    assert list(d.columns) == [*DELIVERED, OBSERVABLE] and list(d.index) == list(settlement.years["contract_year"])
    assert (d[["starts", "in_treatment", "deaths", "recorded_offences"]] >= 0).all().all()
    # a year's sustained recoveries are known once its last exits' 6-month follow-up has closed
    known = settlement.years["end"].to_numpy() + FOLLOW_UP_DAYS <= h.end
    assert list(d[OBSERVABLE] > 0) == list(known)


def test_waits_and_people_agree_with_the_target_measures(run):
    _, h, _, d = run
    # the small run's two contract years are the target measures' two reporting years
    assert d["waited_over_3_weeks"].mul(d["starts"]).sum() / d["starts"].sum() == \
        pytest.approx(1 - measure(h, "started_within_3_weeks"))
    assert d["in_treatment"].mean() == pytest.approx(measure(h, "in_treatment_per_year"))
    assert d["starts"].mean() == pytest.approx(measure(h, "treatment_starts_per_year"))


def test_sustained_recoveries_are_planned_exits_not_back_within_6_months(run):
    _, h, settlement, d = run
    planned = contract_year_metrics(settlement)["planned_exits"]
    assert (d["sustained_recoveries"] <= planned).all() and (d["sustained_recoveries"] > 0).all()
    ep = h.episodes
    nxt = ep.groupby("client_id")["referral"].shift(-1)
    first = ep[(ep["exit_reason"] == "planned") & (ep["exit"] >= 0) & (ep["exit"] < 365)]
    back = (nxt[first.index] - first["exit"]) <= 182
    assert d.loc[1, "sustained_recoveries"] == int((~back).sum())


def test_deaths_are_the_death_events_of_the_year(run):
    _, h, _, d = run
    t = h.events.loc[h.events["kind"] == "death", "time"].to_numpy(float)
    assert d.loc[1, "deaths"] == int(((t >= 0) & (t < 365)).sum())


def test_term_sums_counts_and_averages_levels(run):
    _, _, _, d = run
    term = delivered_term(d)
    for m, how in DELIVERED_TERM.items():
        assert term[m] == pytest.approx(d[m].sum() if how == "sum" else d[m].mean())
    assert np.isfinite(term).all()
