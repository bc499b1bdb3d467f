"""Known answers: measures computed from a hand-built History of three clients."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sim import measures
from sim.config.scenario import Horizon
from sim.core.calendar import periods
from sim.core.vocabulary import BANDS, STATES
from sim.engine.history import Client, Recorder

S = {name: i for i, name in enumerate(STATES)}


def _client(rec, cid, t, group=0, source=0):
    c = Client(cid, group, source, t)
    c.male, c.age, c.injecting, c.dual_diagnosis, c.housing_problem = True, 30.0, False, False, False
    c.criminal_justice, c.offending_rate = False, 0.0
    rec.new_client(c)
    return c


@pytest.fixture(scope="module")
def history():
    """Contract from 1 April 2020 for two years (730 days); warm-up one year.

    client 1: referred day 10, assessed day 12 (critical), starts day 20, planned exit day 200, re-presents
              day 300 and is still awaiting assessment at the end;
    client 2: stock: referred day -50, starts day -40, drops out day 100;
    client 3: referred day 30, assessed day 35 (no need), signposted.
    """
    rec = Recorder()
    rec.capacity += [("caseload", -365.0, 10), ("inpatient_detox_beds", -365.0, 1), ("rehab_places", -365.0, 1)]
    c1 = _client(rec, 1, 10.0)
    ep = rec.new_episode(c1, 10.0, 0)
    rec.event(c1, 10.0, "referral")
    rec.state(c1, S["awaiting_assessment"], 10.0)
    ep.assessed, ep.band = 12.0, BANDS.index("critical")
    rec.state(c1, S["awaiting_treatment"], 12.0)
    ep.treatment_start, ep.modality = 20.0, 0
    rec.state(c1, S["in_treatment"], 20.0)
    ep.exit, ep.exit_reason = 200.0, "planned"
    rec.state(c1, S["recovered"], 200.0)
    c1.episode = 1
    rec.new_episode(c1, 300.0, 0)
    rec.state(c1, S["awaiting_assessment"], 300.0)

    c2 = _client(rec, 2, -50.0, group=2)
    ep = rec.new_episode(c2, -50.0, 0)
    rec.state(c2, S["awaiting_assessment"], -50.0)
    ep.assessed, ep.band = -45.0, BANDS.index("moderate")
    rec.state(c2, S["awaiting_treatment"], -45.0)
    ep.treatment_start = -40.0
    rec.state(c2, S["in_treatment"], -40.0)
    ep.exit, ep.exit_reason = 100.0, "dropped_out"
    rec.state(c2, S["disengaged"], 100.0)

    c3 = _client(rec, 3, 30.0, group=2)
    ep = rec.new_episode(c3, 30.0, 0)
    rec.state(c3, S["awaiting_assessment"], 30.0)
    ep.assessed, ep.band = 35.0, BANDS.index("no_need")
    ep.exit, ep.exit_reason = 35.0, "signposted"
    rec.state(c3, S["signposted"], 35.0)
    horizon = Horizon(contract_start=dt.date(2020, 4, 1), years=2, warmup_years=1)
    return rec.finish(horizon.end_day, horizon, "tiny", 0)


def test_financial_year_and_quarter_periods():
    per = periods(dt.date(2020, 4, 1), 730.0, "year")
    assert list(per["period"]) == ["2020-21", "2021-22"]
    assert list(per["start"]) == [0.0, 365.0] and list(per["end"]) == [365.0, 730.0]
    q = periods(dt.date(2020, 4, 1), 730.0, "quarter")
    assert list(q["period"][:5]) == ["2020-21 Q1", "2020-21 Q2", "2020-21 Q3", "2020-21 Q4", "2021-22 Q1"]
    assert list(q["start"][:5]) == [0.0, 91.0, 183.0, 275.0, 365.0]
    mid = periods(dt.date(2020, 6, 15), 300.0, "year")  # a mid-year start has a short first year
    assert list(mid["period"]) == ["2020-21", "2021-22"] and mid["end"][0] == (dt.date(2021, 4, 1)
                                                                               - dt.date(2020, 6, 15)).days


def test_yearly_counts(history):
    y = measures.by_period(history, "year").set_index("period")
    first = y.loc["2020-21"]
    assert first["referrals"] == 3 and first["re_presentations"] == 1
    assert first["assessments"] == 2 and first["treatment_starts"] == 1
    assert first["in_treatment"] == 2 and first["in_treatment_at_end"] == 0
    assert first["exits"] == 2 and first["planned_exits"] == 1 and first["dropped_out"] == 1
    assert first["planned_share_of_exits"] == 0.5
    assert first["successful_completions"] == 0.5
    assert first["mean_wait_days"] == 10.0 and first["started_within_3_weeks"] == 1.0
    assert first["re_presented_6m"] == 1.0 and first["re_presented_12m"] == 1.0  # back after 100 days
    assert first["caseload_use"] == pytest.approx((180 + 100) / (10 * 365))
    second = y.loc["2021-22"]
    assert second["referrals"] == 0 and second["in_treatment"] == 0 and second["exits"] == 0
    assert np.isnan(second["planned_share_of_exits"])


def test_breakdowns_by_band_and_group(history):
    b = measures.by_period(history, "year", "band")
    first = b[b["period"] == "2020-21"].set_index("category")
    assert first.loc["critical", "planned_exits"] == 1 and first.loc["moderate", "dropped_out"] == 1
    assert first.loc["critical", "in_treatment"] == 1
    g = measures.by_period(history, "year", "group")
    first = g[g["period"] == "2020-21"].set_index("category")
    assert first.loc["opiate", "referrals"] == 2  # client 1 twice
    assert first.loc["alcohol", "referrals"] == 1 and first.loc["alcohol", "in_treatment"] == 1


def test_re_presentation_window_past_the_horizon_is_empty(history):
    q = measures.by_period(history, "quarter").set_index("period")
    assert q.loc["2020-21 Q3", "planned_exits"] == 1
    assert q.loc["2020-21 Q3", "re_presented_6m"] == 1.0  # day 200 + 6 months is inside the horizon
    assert "re_presented_12m" in q.columns


def test_quarters_sum_to_years(history):
    q = measures.by_period(history, "quarter")
    y = measures.by_period(history, "year")
    for col in ("referrals", "assessments", "treatment_starts", "exits", "planned_exits", "deaths"):
        assert q[col].sum() == y[col].sum()


def test_a_client_with_no_group_is_counted_in_no_group(history):
    """A History whose clients table lacks a client (e.g. cut down by hand): by group, that client's
    episodes count in no category, as in the other rows."""
    import dataclasses

    cut = dataclasses.replace(history, clients=history.clients[history.clients["client_id"] != 1])
    g = measures.by_period(cut, "year", "group")
    first = g[g["period"] == "2020-21"].set_index("category")
    assert first.loc["opiate", "referrals"] == 0 and first.loc["alcohol", "referrals"] == 1
    assert first["referrals"].sum() == 1


def test_a_censored_column_of_any_truthy_type_gives_the_same_table(history):
    """Histories read back from files may carry ``censored`` as objects or pandas' nullable booleans."""
    import dataclasses

    expected = measures.by_period(history, "quarter")
    for dtype in (object, "boolean"):
        spells = history.spells.assign(censored=history.spells["censored"].astype(dtype))
        got = measures.by_period(dataclasses.replace(history, spells=spells), "quarter")
        assert got.equals(expected)
