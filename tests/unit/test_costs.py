"""Costs: known answers on a hand-built History (no SimPy), then a small and a full West Kent run."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sim import load_scenario, simulate
from sim.analysis.costs import COMMISSIONER_ITEMS, PROVIDER_ITEMS, commissioner_costs, costs_by_period, delivery_costs
from sim.config.scenario import Horizon
from sim.core.calendar import periods
from sim.core.vocabulary import BANDS, GROUPS, MODALITIES, STATES, TREATMENT_STATES
from sim.engine.history import Client, Recorder

from tests.conftest import SCENARIOS

S = {name: i for i, name in enumerate(STATES)}
Y = 365.25  # days per year, as in the scenario
END = 365.0  # 1 April 2012 to 1 April 2013

# round prices, so every answer below can be done by hand
PRICES = {
    "costs.recovery_worker_per_year": 40000,
    "costs.overheads_per_year": 800000,
    "costs.ost_per_client_year": {"value": 1000, "by_band": {"critical": 1500}},
    "costs.community_detox": {"value": 300, "by_group": {"opiate": 400}},
    "costs.inpatient_detox_per_day": {"value": 100, "by_group": {"opiate": 200}},
    "costs.rehab_per_week": 500,
    "costs.bbv_test": 30,
    "costs.hep_b_course": 90,
    "costs.mutual_aid_per_client_year": 100,
    "costs.assessment": 150,
}


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(SCENARIOS / "west_kent.toml").with_changes(PRICES)


def _client(rec, cid, t, group):
    c = Client(cid, GROUPS.index(group), 0, t)
    c.male, c.age, c.injecting, c.dual_diagnosis, c.housing_problem = True, 30.0, False, False, False
    c.criminal_justice, c.offending_rate = False, 0.0
    rec.new_client(c)
    return c


def _episode(rec, c, t, band, modality, mutual_aid):
    ep = rec.new_episode(c, t, 0)
    ep.band, ep.modality, ep.mutual_aid = BANDS.index(band), MODALITIES.index(modality), mutual_aid
    return ep


def _path(rec, c, *steps):
    for state, t in steps:
        rec.state(c, S[state], t)


@pytest.fixture(scope="module")
def history():
    """Contract from 1 April 2012 for one year (365 days); warm-up one year; 32 workers (1,600 places).

    client 1: opiate, critical, OST: in treatment from day -30 (the warm-up) to 100, then recovered.
              Assessed on day -110 and tested on day -40: warm-up, never costed.
    client 2: alcohol, substantial, psychosocial, mutual aid: in treatment 10-40, inpatient detox 40-50,
              in treatment 50-60, rehab 60-74, in treatment 74-200, recovered. Assessed day 5; a BBV test
              and a hepatitis B course on day 10.
    client 3: opiate, moderate, OST: assessed day 302, in treatment 310-320, community detox 320-330, in
              treatment 330 to the end of the horizon (censored).
    """
    rec = Recorder()
    rec.capacity += [("caseload", -365.0, 1600), ("assessors", -365.0, 3)]
    c1 = _client(rec, 1, -120.0, "opiate")
    _episode(rec, c1, -120.0, "critical", "ost", False)
    rec.event(c1, -110.0, "assessed", "critical")
    rec.event(c1, -40.0, "bbv_test")
    _path(rec, c1, ("awaiting_assessment", -120.0), ("awaiting_treatment", -110.0), ("in_treatment", -30.0),
          ("recovered", 100.0))

    c2 = _client(rec, 2, 0.0, "alcohol")
    _episode(rec, c2, 0.0, "substantial", "psychosocial", True)
    rec.event(c2, 5.0, "assessed", "substantial")
    rec.event(c2, 10.0, "bbv_test")
    rec.event(c2, 10.0, "hep_b_course_start")
    _path(rec, c2, ("awaiting_assessment", 0.0), ("awaiting_treatment", 5.0), ("in_treatment", 10.0),
          ("inpatient_detox", 40.0), ("in_treatment", 50.0), ("residential_rehab", 60.0), ("in_treatment", 74.0),
          ("recovered", 200.0))

    c3 = _client(rec, 3, 300.0, "opiate")
    _episode(rec, c3, 300.0, "moderate", "ost", False)
    rec.event(c3, 302.0, "assessed", "moderate")
    rec.event(c3, 320.0, "community_detox_start")
    _path(rec, c3, ("awaiting_assessment", 300.0), ("awaiting_treatment", 302.0), ("in_treatment", 310.0),
          ("community_detox", 320.0), ("in_treatment", 330.0))
    horizon = Horizon(contract_start=dt.date(2012, 4, 1), years=1, warmup_years=1)
    return rec.finish(horizon.end_day, horizon, "tiny", 0)


def _totals(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby("item", sort=False)["cost"].sum()


# --- known answers ---------------------------------------------------------------------------------------------


def test_each_item_by_hand(history, scenario):
    total = _totals(delivery_costs(history, scenario))
    assert list(total.index) == list(PROVIDER_ITEMS)
    expected = {
        "staff": 32 * 40000 * END / Y,  # a year at 32 workers: about £1.28m
        "overheads": 800000 * END / Y,
        # OST client-days inside the horizon: client 1 (critical) 100, client 3 (moderate) 55
        "prescribing": 100 / Y * 1500 + 55 / Y * 1000,
        "community_detox": 400,  # client 3, opiate price
        "inpatient_detox": 10 * 100,  # client 2: ten bed-days at the alcohol price
        "rehab": 14 / 7 * 500,  # two weeks
        "bbv_tests": 30,  # client 1's test was in the warm-up
        "hep_b": 90,
        "mutual_aid": 190 / Y * 100,  # client 2: days 10-200 on the caseload, rehab and detox included
    }
    for item, value in expected.items():
        assert total[item] == pytest.approx(value, rel=1e-12, abs=1e-9), item
    assert total["staff"] == pytest.approx(1.28e6, rel=1e-3)


def test_ost_client_for_100_days(history, scenario):
    rows = delivery_costs(history, scenario)
    early = rows[(rows["item"] == "prescribing") & (rows["end"] <= 100)]["cost"].sum()
    # April-June 2012 are days 0-91: client 1 alone, the 30 warm-up days never costed
    assert early == pytest.approx(91 / Y * 1500)
    assert _totals(rows)["prescribing"] - 55 / Y * 1000 == pytest.approx(100 / Y * 1500)


def test_commissioner_pays_assessments(history, scenario):
    rows = commissioner_costs(history, scenario)
    assert set(rows["item"]) == set(COMMISSIONER_ITEMS)
    assert rows["cost"].sum() == pytest.approx(2 * 150)  # days 5 and 302; the one on day -110 is warm-up
    by_month = rows.set_index("period")["cost"]
    assert by_month["2012-04"] == 150 and by_month["2013-01"] == 150 and by_month.sum() == 300
    assert "assessments" not in set(delivery_costs(history, scenario)["item"])


def test_months_tile_the_horizon(history, scenario):
    rows = delivery_costs(history, scenario)
    months = rows.drop_duplicates("period")
    assert list(months["period"]) == [f"2012-{m:02d}" for m in range(4, 13)] + ["2013-01", "2013-02", "2013-03"]
    assert months["start"].iloc[0] == 0 and months["end"].iloc[-1] == END
    assert (months["start"].to_numpy()[1:] == months["end"].to_numpy()[:-1]).all()
    assert list(months["end"] - months["start"])[:3] == [30, 31, 30]
    assert len(rows) == 12 * len(PROVIDER_ITEMS) and (rows["cost"] >= 0).all()


def test_mid_month_contract_start_clips_the_first_month(history, scenario):
    late = dataclasses.replace(history, contract_start=dt.date(2012, 4, 15))
    months = delivery_costs(late, scenario).drop_duplicates("period")
    assert months["period"].iloc[0] == "2012-04" and months["end"].iloc[0] == 16  # 15-30 April
    assert months["period"].iloc[-1] == "2013-04" and months["end"].iloc[-1] == END  # to 14 April 2013


def test_monthly_rows_sum_to_the_whole_horizon(history, scenario):
    monthly = _totals(delivery_costs(history, scenario))
    for freq in ("quarter", "year"):
        other = _totals(delivery_costs(history, scenario, freq))
        assert np.allclose(monthly.to_numpy(), other.reindex(monthly.index).to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="freq"):
        delivery_costs(history, scenario, "week")


def test_costs_by_period_keeps_the_totals(history, scenario):
    rows = delivery_costs(history, scenario)
    for freq in ("quarter", "year"):
        table = costs_by_period(rows, periods(history.contract_start, history.end, freq))
        assert list(table.columns) == ["period", *PROVIDER_ITEMS, "total"]
        assert table["total"].sum() == pytest.approx(rows["cost"].sum(), rel=1e-12)
        assert np.allclose(table[list(PROVIDER_ITEMS)].sum().to_numpy(), _totals(rows).to_numpy())
        assert np.allclose(table[list(PROVIDER_ITEMS)].sum(axis=1), table["total"])
    q = costs_by_period(rows, periods(history.contract_start, history.end, "quarter")).set_index("period")
    assert q.loc["2012-13 Q1", "rehab"] == 1000 and q.loc["2012-13 Q2", "rehab"] == 0
    assert q.loc["2012-13 Q4", "community_detox"] == 400


def test_costs_by_period_splits_rows_that_straddle_a_boundary():
    rows = pd.DataFrame({"period": ["a", "a"], "start": [0.0, 0.0], "end": [30.0, 30.0],
                         "item": ["staff", "rehab"], "cost": [300.0, 60.0]})
    per = pd.DataFrame({"period": ["p1", "p2"], "start": [0.0, 10.0], "end": [10.0, 40.0]})
    out = costs_by_period(rows, per).set_index("period")
    assert out.loc["p1", "staff"] == pytest.approx(100) and out.loc["p2", "staff"] == pytest.approx(200)
    assert out.loc["p1", "total"] == pytest.approx(120) and out.loc["p2", "total"] == pytest.approx(240)


def test_a_capacity_cut_halfway_halves_the_staff_cost_after_it(history, scenario):
    cut = dataclasses.replace(history, capacity=pd.DataFrame(
        [("caseload", -365.0, 1600), ("caseload", 182.5, 800)], columns=["resource", "time", "capacity"]))
    staff = delivery_costs(cut, scenario).query("item == 'staff'")
    per_day = (staff["cost"] / (staff["end"] - staff["start"])).to_numpy()
    before, after = per_day[staff["end"].to_numpy() <= 182.5], per_day[staff["start"].to_numpy() >= 182.5]
    assert np.allclose(before, 32 * 40000 / Y) and np.allclose(after, 16 * 40000 / Y)
    assert staff["cost"].sum() == pytest.approx((32 + 16) * 40000 * 182.5 / Y)
    # September 2012 (days 153-183) holds the change half a day before its end
    assert staff.set_index("period").loc["2012-09", "cost"] == pytest.approx((32 * 29.5 + 16 * 0.5) * 40000 / Y)


def test_the_warm_up_is_never_costed(history, scenario):
    """Moving every warm-up spell and event further back changes nothing."""
    h = history
    early = dataclasses.replace(
        h,
        spells=h.spells.assign(start=np.where(h.spells["start"] < 0, h.spells["start"] - 200, h.spells["start"])),
        events=h.events.assign(time=np.where(h.events["time"] < 0, h.events["time"] - 200, h.events["time"])),
        capacity=pd.concat([pd.DataFrame([("caseload", -900.0, 3000)], columns=h.capacity.columns), h.capacity]))
    for f in (delivery_costs, commissioner_costs):
        pd.testing.assert_frame_equal(f(h, scenario), f(early, scenario))


def _capacity_history(scenario):
    """A History with no clients and the caseload a run of ``scenario`` would record, epoch by epoch."""
    rec = Recorder()
    rec.capacity += [("caseload", t, s.capacity.caseload) for t, s in scenario.epochs()]
    return rec.finish(scenario.horizon.end_day, scenario.horizon, scenario.name, 0)


def test_staff_follow_dated_vacancies():
    vac = load_scenario(SCENARIOS / "west_kent_vacancies.toml")  # 3/4 of the workers from 1 Oct 2013 to 31 Mar 2014
    h = _capacity_history(vac)
    year = costs_by_period(delivery_costs(h, vac), periods(h.contract_start, h.end, "year")).set_index("period")
    w, n = vac.costs.recovery_worker_per_year, vac.capacity.recovery_workers
    in_post = vac.epochs()[1][1].capacity.caseload / vac.capacity.caseload_per_worker  # whole places, so about 0.75 n
    assert in_post == pytest.approx(0.75 * n, abs=1 / vac.capacity.caseload_per_worker)
    assert year.loc["2012-13", "staff"] == pytest.approx(n * w * 365 / Y)
    assert year.loc["2013-14", "staff"] == pytest.approx((n * 183 + in_post * 182) * w / Y)
    assert year.loc["2014-15", "staff"] == pytest.approx(n * w * 365 / Y)
    assert (year["prescribing"] == 0).all() and (year["overheads"] > 0).all()


def test_workers_are_places_over_the_caseload_per_worker_in_force(scenario):
    """Bigger caseloads from October: the same 32 workers hold 1,280 places at 40 each, and cost the same."""
    bigger = scenario.with_changes({"capacity.recovery_workers": 32,
                                    "schedule": [{"date": dt.date(2012, 10, 1),
                                                  "set": {"capacity.caseload_per_worker": 40}}]})
    h = _capacity_history(bigger)
    assert list(h.capacity["capacity"]) == [1600, 1280]
    assert _totals(delivery_costs(h, bigger))["staff"] == pytest.approx(32 * 40000 * h.end / Y)
    # without a capacity table the scenario's own caseload is used
    bare = dataclasses.replace(h, capacity=h.capacity.iloc[:0])
    assert _totals(delivery_costs(bare, bigger))["staff"] == pytest.approx(32 * 40000 * h.end / Y)


# --- a real run --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(small, small_history_seed_1):
    return small, small_history_seed_1  # the session's small run, seed 1 (read only)


def test_small_run_costs(small_run):
    sc, h = small_run
    rows = delivery_costs(h, sc)
    assert (rows["cost"] >= 0).all() and rows["cost"].notna().all()
    assert set(rows["item"]) == set(PROVIDER_ITEMS)
    assert (rows.groupby("period", sort=False)["item"].apply(list) == [list(PROVIDER_ITEMS)] * 24).all()
    months = rows.drop_duplicates("period")
    assert len(months) == 24 and months["start"].iloc[0] == 0 and months["end"].iloc[-1] == h.end
    assert (months["start"].to_numpy()[1:] == months["end"].to_numpy()[:-1]).all()
    total = _totals(rows)
    assert (total > 0).all(), total[total <= 0]
    # rehab by hand from the spells: days on a rehab place inside the horizon x the weekly price / 7
    sp = h.spells[h.spells["state"] == "residential_rehab"]
    days = (sp["end"].clip(0, h.end) - sp["start"].clip(0, h.end)).sum()
    assert total["rehab"] == pytest.approx(days / 7 * sc.costs.rehab_per_week.value)
    # mutual aid by hand: caseload days of engaged episodes
    on = h.spells[h.spells["state"].isin(TREATMENT_STATES)].merge(h.episodes, on=["client_id", "episode"])
    on = on[on["mutual_aid"]]
    days = (on["end"].clip(0, h.end) - on["start"].clip(0, h.end)).sum()
    assert total["mutual_aid"] == pytest.approx(days / Y * sc.costs.mutual_aid_per_client_year)
    events = h.events[(h.events["time"] >= 0) & (h.events["time"] < h.end)]["kind"].value_counts()
    assert total["bbv_tests"] == pytest.approx(events["bbv_test"] * sc.costs.bbv_test)
    assessed = commissioner_costs(h, sc)["cost"].sum()
    assert assessed == pytest.approx(events["assessed"] * sc.costs.assessment)
    year = costs_by_period(rows, periods(h.contract_start, h.end, "year"))
    assert year["total"].sum() == pytest.approx(rows["cost"].sum())


@pytest.mark.slow
def test_west_kent_costs_about_four_million_a_year(west_kent):
    """The reference's budget cross-check (domain-parameters §8h): about £4.0m a year for a £4m contract."""
    h = simulate(west_kent, seed=1)
    year = costs_by_period(delivery_costs(h, west_kent), periods(h.contract_start, h.end, "year"))
    lasars = costs_by_period(commissioner_costs(h, west_kent), periods(h.contract_start, h.end, "year"))
    table = year.set_index("period").T
    table.loc["assessments (commissioner)"] = lasars.set_index("period")["assessments"]
    with pd.option_context("display.float_format", "{:,.0f}".format, "display.width", 200):
        print("\nWest Kent, seed 1, pounds a year (2014-15 prices)\n", table)
    assert ((year["total"] > 3.0e6) & (year["total"] < 5.0e6)).all(), year["total"]
