"""Settlement: a History and a contract in, dated payments out.

Known answers on small hand-built Histories (no SimPy) for every payment rule, property tests (hypothesis) on
random hand-built Histories, the paired comparison, and one real small simulation settled under every shipped
contract. Histories are built with ``tests.builders.Build``; the contract starts on 1 April 2012, so contract
year 1 is days [0, 365) and year 2 is [365, 730) (2012-13 and 2013-14).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim import simulate
from sim.analysis import offending as offending_module
from sim.analysis.costs import delivery_costs
from sim.analysis.offending import COHORT_COLUMNS, attachment_fraction, cohort_offences
from sim.config.contract import Contract, load_contract
from sim.experiments.compare import METRICS, compare, fingerprint
from sim.analysis.delivered import DELIVERED
from sim.money.settlement import PAYMENT_COLUMNS, _apply_caps, commissioner_by_year, monthly_cash, provider_by_year, settle

from tests.builders import Build, small_scenario
from tests.conftest import SCENARIOS

CONTRACTS = sorted((SCENARIOS / "contracts").glob("*.toml"))
END = 730.0  # two contract years
PBR_KINDS = ["outcome", "offending"]


def day(d: dt.date) -> float:
    return float((d - dt.date(2012, 4, 1)).days)


def contract(outcomes=None, **kw) -> Contract:
    """£1.2m a year for two years, 25% at risk (a £300k pot); outcomes and rules as given."""
    raw = {"name": "test", "annual_value": 1_200_000.0, "term_years": 2, "pbr_share": {"by_year": [0.25, 0.25]},
           "outcomes": outcomes or {}}
    raw.update(kw)
    return Contract.model_validate(raw)


def bbv(price=1000.0, **kw):
    """An outcome on the BBV test event: the simplest measure to place by hand."""
    return {"measure": "bbv_tested", "price": price, "payment": "on_evidence", **kw}


def bbv_tests(times_by_client, bands=None, group="opiate"):
    """One client per entry, in treatment from day -300 (the baseline year) to the end; a BBV test at each
    time given (days) for that client. ``bands``: the episode band of each client (default moderate)."""
    b = Build()
    for i, times in enumerate(times_by_client):
        c = b.client(i + 1, group=group)
        b.episode(c, -310, band=(bands or {}).get(i + 1, "moderate"), start=-300)
        for t in times:
            b.event(c, t, "bbv_test")
    return b


def outcome_rows(s, component=None):
    p = s.payments[s.payments["kind"] == "outcome"]
    return p if component is None else p[p["component"] == component]


@pytest.fixture(scope="module")
def scenario(west_kent):
    """West Kent, every offence recorded (used only by the offending payment and the costs)."""
    return west_kent.with_changes({"offending.recorded_share": 1.0})


# --- core payments ------------------------------------------------------------------------------------------------


def test_core_is_the_annual_value_less_the_pbr_share_monthly_in_advance(scenario):
    h = Build().finish()
    s = settle(contract(), h, scenario)
    core = s.payments[s.payments["component"] == "core"]
    assert len(s.payments) == len(core) == 24
    assert core["amount"].tolist() == pytest.approx([0.75 * 1_200_000 / 12] * 24)
    assert (core["due"] == core["earned"]).all() and (core["kind"] == "core").all()
    dates = pd.to_datetime(h.date(core["due"].to_numpy()))
    assert (dates.day == 1).all()
    assert [f"{d:%Y-%m}" for d in dates[:13]] == [f"{y}-{m:02d}" for y, m in
                                                 [(2012, m) for m in range(4, 13)] + [(2013, m) for m in range(1, 5)]]
    assert core.groupby("contract_year")["amount"].sum().tolist() == pytest.approx([900_000, 900_000])
    assert core.groupby("contract_year").size().tolist() == [12, 12]


@pytest.mark.parametrize("form, shares", [
    ({"linear": [0.25, 0.60]}, [0.25, 0.25 + 0.35 / 3, 0.25 + 0.70 / 3, 0.60]),
    ({"step": [0.25, 0.10, 0.50]}, [0.25, 0.35, 0.45, 0.50]),
    ({"by_year": [0.25, 0.37, 0.48, 0.60]}, [0.25, 0.37, 0.48, 0.60]),
])
def test_pbr_share_forms_give_the_core_of_each_year(scenario, form, shares):
    c = contract(term_years=2, extension_years=2, pbr_share=form)
    assert [c.share(k) for k in range(1, 5)] == pytest.approx(shares)
    assert [c.pot(k) for k in range(1, 5)] == pytest.approx([1_200_000 * x for x in shares])
    s = settle(c, Build().finish(years=4), scenario)
    core = s.payments[s.payments["component"] == "core"]
    assert core.groupby("contract_year")["amount"].sum().tolist() == pytest.approx(
        [1_200_000 * (1 - x) for x in shares])
    assert s.years["share"].tolist() == pytest.approx(shares)


def test_core_in_arrears_and_quarterly_in_advance(scenario):
    h = Build().finish()
    arrears = settle(contract(core_payment="monthly_in_arrears"), h, scenario).payments
    assert arrears["earned"].iloc[0] == 0.0 and arrears["due"].iloc[0] == 30.0  # April paid on 1 May
    assert (arrears["due"] > arrears["earned"]).all() and arrears["due"].max() == END
    quarterly = settle(contract(core_payment="quarterly_in_advance"), h, scenario).payments
    assert quarterly["due"].tolist() == [0.0, 91.0, 183.0, 275.0, 365.0, 456.0, 548.0, 640.0]
    assert quarterly["amount"].tolist() == pytest.approx([900_000 / 4] * 8)


@pytest.mark.parametrize("years, paid", [(2, [4_000_000, 4_000_000]), (4, [4_000_000] * 4),
                                         (2.5, [4_000_000, 4_000_000, 4_000_000 / 12 * 6])])
def test_block_contract_pays_its_annual_value_per_year_and_nothing_else(scenario, years, paid):
    b = bbv_tests([[10, 400]])  # outcomes happen, but a block contract pays for none of them
    c = b.client(9, rate=50)
    b.episode(c, 20, start=30, exit=200)
    h = b.finish(years=years)
    s = settle(load_contract(SCENARIOS / "contracts" / "block.toml"), h, scenario)
    p = s.payments
    assert set(p["kind"]) == {"core"} and (p["due"] == p["earned"]).all()
    assert p.groupby("contract_year")["amount"].sum().tolist() == pytest.approx(paid)
    # a partial last year: the months that start before the end of the horizon (October 2014 to March 2015 not)
    assert p.groupby("contract_year").size().tolist() == [round(12 * x / 4_000_000) for x in paid]


# --- prices, band weights, share of the pot -----------------------------------------------------------------------


WEIGHTS = {"critical": 1.8, "substantial": 1.3, "moderate": 0.75, "low": 0.45, "no_need": 0.0}


def test_price_times_band_weight(scenario):
    h = bbv_tests([[10], [20], [30], [40]], bands={1: "critical", 2: "moderate", 3: "low", 4: "no_need"}).finish()
    s = settle(contract({"t": bbv()}, band_weights=WEIGHTS), h, scenario)
    assert outcome_rows(s)["amount"].tolist() == pytest.approx([1800, 750, 450, 0])
    assert outcome_rows(s)["band"].tolist() == ["critical", "moderate", "low", "no_need"]
    # the outcome's own weights replace the contract's
    own = {"critical": 3.0, "substantial": 2.0, "moderate": 1.0, "low": 0.5, "no_need": 0.25}
    s = settle(contract({"t": bbv(band_weights=own)}, band_weights=WEIGHTS), h, scenario)
    assert outcome_rows(s)["amount"].tolist() == pytest.approx([3000, 1000, 500, 250])
    # the default weight is 1 in every band
    s = settle(contract({"t": bbv()}), h, scenario)
    assert outcome_rows(s)["amount"].tolist() == pytest.approx([1000] * 4)


def test_share_of_pot_over_a_numeric_expected_volume(scenario):
    h = bbv_tests([[10], [20]], bands={1: "critical"}).finish()
    o = {"measure": "bbv_tested", "share_of_pot": 0.5, "expected_volume": 10, "payment": "on_evidence"}
    s = settle(contract({"t": o}, band_weights=WEIGHTS), h, scenario)
    unit = 300_000 * 0.5 / 10
    assert outcome_rows(s)["amount"].tolist() == pytest.approx([1.8 * unit, 0.75 * unit])
    # the offending pot comes out of the pot first
    off = {"pot": 100_000, "price_per_offence": 3900, "baseline_offences": 5.0}
    s = settle(contract({"t": o}, band_weights=WEIGHTS, offending=off), h, scenario)
    assert outcome_rows(s)["amount"].tolist() == pytest.approx([1.8 * 10_000, 0.75 * 10_000])


@pytest.mark.parametrize("tests_in_year_1, earned", [
    ([[10], [20], [30]], 1.0),            # two critical, one low: the tender's expectation, the whole share
    ([[10], [20], [30], [40]], 1 + 0.75 / 4.05),  # one moderate more: more
    ([[10], [20]], (1.8 + 1.8) / 4.05),   # the low one fewer: less
])
def test_tender_volumes_by_band_pay_the_share_at_expectation_and_more_or_less_around_it(scenario, tests_in_year_1,
                                                                                          earned):
    """expected_volume by band: {critical 2, low 1} weighs 2 x 1.8 + 1 x 0.45 = 4.05, whatever happened before the
    contract (the history has no baseline-year tests at all)."""
    bands = {1: "critical", 2: "critical", 3: "low", 4: "moderate"}
    h = bbv_tests(tests_in_year_1, bands=bands).finish()
    o = {"measure": "bbv_tested", "share_of_pot": 0.4, "payment": "on_evidence",
         "expected_volume": {"critical": 2, "low": 1, "moderate": 0}}
    s = settle(contract({"t": o}, band_weights=WEIGHTS), h, scenario)
    by_year = outcome_rows(s).groupby("contract_year")["amount"].sum()
    assert by_year.loc[1] == pytest.approx(earned * 0.4 * 300_000)
    unit = 0.4 * 300_000 / 4.05
    assert outcome_rows(s)["amount"].tolist()[:2] == pytest.approx([1.8 * unit, 1.8 * unit])


def test_tender_volumes_must_weigh_something():
    with pytest.raises(ValueError, match="band-weighted volume is 0"):
        contract({"t": {"measure": "bbv_tested", "share_of_pot": 0.4, "expected_volume": {"no_need": 50}}},
                 band_weights=WEIGHTS)
    with pytest.raises(ValueError, match="expected_volume"):
        contract({"t": {"measure": "bbv_tested", "share_of_pot": 0.4, "expected_volume": {"critical": -1}}})


def test_share_of_pot_priced_from_the_baseline_year(scenario):
    """Baseline (the year before the contract): two critical and one low achievement, weighted volume
    2 x 1.8 + 0.45 = 4.05. The same performance in a contract year earns exactly the share of that year's pot."""
    bands = {1: "critical", 2: "critical", 3: "low", 4: "moderate"}
    h = bbv_tests([[-200, 100, 400], [-100, 200, 500], [-50, 300, 600], [-400]], bands=bands).finish()
    o = {"measure": "bbv_tested", "share_of_pot": 0.4, "expected_volume": "baseline", "payment": "on_evidence",
         "window_days": 200.0}  # once per client per 200 days: each of the three tests of a client is paid
    c = contract({"t": o}, band_weights=WEIGHTS, pbr_share={"by_year": [0.25, 0.5]})
    s = settle(c, h, scenario)
    by_year = outcome_rows(s).groupby("contract_year")["amount"].sum()
    assert by_year.tolist() == pytest.approx([0.4 * 300_000, 0.4 * 600_000])
    unit = 0.4 * 300_000 / 4.05
    assert outcome_rows(s)["amount"].tolist()[:3] == pytest.approx([1.8 * unit, 1.8 * unit, 0.45 * unit])
    # twice the baseline volume earns twice the share (no cap), and the baseline needs a year of warm-up
    h2 = bbv_tests([[-200, 100, 110], [-100, 200, 210], [-50, 300, 310]], bands=bands).finish()
    o = {**o, "window_days": 5.0}
    once_per_episode = {**o, "once_per": "episode"}
    assert outcome_rows(settle(contract({"t": o}, band_weights=WEIGHTS), h2, scenario))["amount"].sum() == \
        pytest.approx(2 * 0.4 * 300_000)
    assert outcome_rows(settle(contract({"t": once_per_episode}, band_weights=WEIGHTS), h2, scenario))[
        "amount"].sum() == pytest.approx(0.4 * 300_000)  # once per episode: the second tests are not paid
    with pytest.raises(ValueError, match="warm-up"):
        settle(c, bbv_tests([[100]]).finish(warmup=0.5), scenario)


def test_the_baseline_year_is_the_whole_year_before_the_contract(scenario):
    """Regression (was settlement.py: the baseline year taken as [-365, 0), which leaves out 1 April 2011, day
    -366, when the year before the contract holds 29 February). Achieved on 1 April 2011 and on 1 June 2012: the
    baseline volume is 1, so the contract-year achievement earns the whole share."""
    h = bbv_tests([[-365.5, 61]]).finish()
    assert str(h.date(-365.5)) == "2011-04-01"
    o = {"measure": "bbv_tested", "share_of_pot": 0.4, "expected_volume": "baseline", "payment": "on_evidence"}
    s = settle(contract({"t": o}), h, scenario)
    assert outcome_rows(s)["amount"].sum() == pytest.approx(0.4 * 300_000)


# --- once-per rules and caps ----------------------------------------------------------------------------------------


def _two_episodes():
    """Client 1: episode 0 (days 10-300, tested on days 30, 100 and 290), episode 1 (from day 394, tested on
    days 394, 395 and 700). Client 2: tested on day 50."""
    b = Build()
    c = b.client(1)
    b.episode(c, 10, start=20, exit=300, reason="dropped_out")
    for t in (30, 100, 290):
        b.event(c, t, "bbv_test")
    b.episode(c, 394, start=394)
    for t in (394, 395, 700):
        b.event(c, t, "bbv_test")
    d = b.client(2)
    b.episode(d, 40, start=45)
    b.event(d, 50, "bbv_test")
    return b.finish()


@pytest.mark.parametrize("once_per, window, paid", [
    ("episode", 365.0, [(1, 30.0), (2, 50.0), (1, 394.0)]),
    ("client", 365.0, [(1, 30.0), (2, 50.0)]),
    ("window", 365.0, [(1, 30.0), (2, 50.0), (1, 395.0)]),      # 395 - 30 = 365: a new window; 394 is not
    ("window", 183.0, [(1, 30.0), (2, 50.0), (1, 290.0), (1, 700.0)]),  # 100 is inside 30's window
])
def test_once_per_rules(scenario, once_per, window, paid):
    s = settle(contract({"t": bbv(once_per=once_per, window_days=window)}), _two_episodes(), scenario)
    assert list(zip(outcome_rows(s)["client_id"], outcome_rows(s)["earned"])) == paid


def test_cap_per_year_first_earned_first_paid(scenario):
    h = bbv_tests([[10, 200], [20], [30], [400]]).finish()
    s = settle(contract({"t": bbv(window_days=100, cap_per_year=2500)}), h, scenario)
    rows = outcome_rows(s).sort_values("earned")
    assert list(zip(rows["earned"], rows["amount"])) == [(10.0, 1000), (20.0, 1000), (30.0, 500), (200.0, 0),
                                                          (400.0, 1000)]


def test_pbr_cap_across_outcomes_first_earned_first_paid(scenario):
    h = bbv_tests([[10, 40], [20], [30], [400]]).finish()
    # pot £300k x 0.01 = £3,000 a year, shared by both outcomes in the order earned
    c = contract({"a": bbv(1000.0, once_per="episode"), "b": {"measure": "bbv_tested", "price": 1500.0,
                                                              "once_per": "window", "window_days": 10.0}},
                 pbr_cap=0.01)
    s = settle(c, h, scenario)
    rows = outcome_rows(s).sort_values(["earned", "component"])
    assert list(zip(rows["earned"], rows["component"], rows["amount"])) == [
        (10.0, "a", 1000), (10.0, "b", 1500), (20.0, "a", 500), (20.0, "b", 0), (30.0, "a", 0), (30.0, "b", 0),
        (40.0, "b", 0), (400.0, "a", 1000), (400.0, "b", 1500)]
    assert outcome_rows(s).groupby("contract_year")["amount"].sum().tolist() == pytest.approx([3000, 2500])


def test_term_cap_over_the_whole_term(scenario):
    h = bbv_tests([[10], [20], [400], [500]]).finish()
    s = settle(contract({"t": bbv()}, term_cap=2500), h, scenario)
    rows = outcome_rows(s).sort_values("earned")
    assert rows["amount"].tolist() == [1000, 1000, 500, 0]
    assert rows["contract_year"].tolist() == [1, 1, 2, 2]


def test_income_floor_tops_up_each_observed_year(scenario):
    h = bbv_tests([[10], [20], [400]]).finish(years=1.5)  # year 2 is not observed: no reconciliation yet
    c = contract({"t": bbv()}, pbr_share={"by_year": [1.0, 1.0]}, income_floor=0.5)
    s = settle(c, h, scenario)
    adj = s.payments[s.payments["kind"] == "adjustment"]
    assert adj["component"].tolist() == ["floor"] and adj["contract_year"].tolist() == [1]
    assert adj["amount"].tolist() == pytest.approx([600_000 - 2000])
    assert adj["earned"].tolist() == [365.0] and adj["due"].tolist() == [365.0 + 91]  # reconciliation lag
    assert s.payments.loc[s.payments["contract_year"] == 1, "amount"].sum() == pytest.approx(600_000)
    # above the floor: no adjustment
    assert "adjustment" not in set(settle(contract({"t": bbv(700_000.0)}, pbr_share={"by_year": [1.0, 1.0]},
                                                   income_floor=0.5), h, scenario).payments["kind"])


def test_income_cap_recovers_the_excess(scenario):
    h = bbv_tests([[10], [20], [400]]).finish()
    c = contract({"t": bbv(200_000.0)}, income_cap=1.0, reconciliation_lag_days=30)
    s = settle(c, h, scenario)
    adj = s.payments[s.payments["kind"] == "adjustment"]
    assert list(zip(adj["component"], adj["contract_year"], adj["due"])) == [("cap", 1, 395.0)]
    assert adj["amount"].tolist() == pytest.approx([-100_000])  # 900k core + 400k outcomes, cut to 1.2m
    assert s.income_by_year()["total"].tolist() == pytest.approx([1_200_000, 1_100_000])


# --- clawback ---------------------------------------------------------------------------------------------------------


def _exits(returns):
    """One client per entry: planned exit on day 100, back after the given number of days (None: never)."""
    b = Build()
    for i, back in enumerate(returns):
        c = b.client(i + 1)
        b.episode(c, 10, start=20, exit=100)
        if back is not None:
            b.episode(c, 100 + back, start=110 + back)
    return b.finish()


def test_clawback_when_the_client_re_presents_inside_the_window(scenario):
    h = _exits([182, 183, 30, None, 629.0])  # 629: back on day 729, after the window
    o = {"measure": "planned_exit", "price": 1000.0, "once_per": "episode", "clawback_days": 183,
         "payment": "quarterly_in_arrears"}
    s = settle(contract({"pe": o}), h, scenario)
    assert outcome_rows(s)["amount"].tolist() == [1000] * 5  # every planned exit is paid first
    back = s.payments[s.payments["kind"] == "clawback"].sort_values("earned")
    assert list(zip(back["client_id"], back["earned"], back["amount"])) == [(3, 130.0, -1000), (1, 282.0, -1000)]
    assert back["due"].tolist() == [183.0, 365.0]  # the quarter ends after the re-presentation
    assert back["contract_year"].tolist() == [1, 1] and back["component"].tolist() == ["pe", "pe"]
    # no clawback rule: no negative payments
    assert (settle(contract({"pe": {**o, "clawback_days": None}}), h, scenario).payments["amount"] >= 0).all()


@pytest.mark.parametrize("cap, paid, recovered", [
    ({"pbr_cap": 0.001}, [300, 0], []), ({"term_cap": 300.0}, [300, 0], []),
    ({"term_cap": 450.0}, [300, 150], [-150]), ({}, [300, 300], [-300]),
])
def test_clawback_recovers_what_was_paid_after_the_caps(scenario, cap, paid, recovered):
    """Regression (was settlement.py: clawbacks computed before the PbR and term caps, so a payment the cap cut
    to £0 was still recovered in full)."""
    h = _exits([None, 50])  # client 1 stays out; client 2 (also out on day 100) re-presents on day 150
    o = {"measure": "planned_exit", "price": 300.0, "once_per": "episode", "clawback_days": 183}
    s = settle(contract({"pe": o}, **cap), h, scenario)  # client 1 is paid first (same day, lower id)
    p = s.payments
    assert outcome_rows(s).sort_values("client_id")["amount"].tolist() == pytest.approx(paid)
    assert p.loc[p["kind"] == "clawback", "amount"].tolist() == pytest.approx(recovered)
    net = p[p["kind"].isin(["outcome", "clawback"])].groupby("client_id")["amount"].sum()
    assert net.tolist() == pytest.approx([300.0, 0.0])


@pytest.mark.parametrize("cap", [{"pbr_cap": 0.001}, {"term_cap": 300.0}, {"cap_per_year": 300.0}])
def test_a_clawed_back_payment_takes_no_room_under_a_cap(scenario, cap):
    def history(with_client_1):
        b = Build()
        c = b.client(2)
        b.episode(c, 10, start=20)
        b.event(c, 200, "bbv_test")  # kept: client 2 never re-presents
        if with_client_1:
            d = b.client(1)
            b.episode(d, 10, start=20)
            b.event(d, 100, "bbv_test")  # earned first, then recovered: client 1 re-presents on day 150
            b.episode(d, 150, start=160)
        return b.finish()

    o = bbv(300.0, clawback_days=183, cap_per_year=cap.get("cap_per_year"))
    c = contract({"t": o}, **{k: v for k, v in cap.items() if k != "cap_per_year"})
    totals = [settle(c, history(w), scenario).payments["amount"].to_numpy(float).sum() for w in (False, True)]
    assert totals[1] >= totals[0]


@st.composite
def payments_under_caps(draw):
    """Outcome payments of two outcomes, offending payments and clawbacks on random days, under random caps
    (each absent, loose or binding)."""
    n = draw(st.integers(0, 60))
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["outcome"] * 6 + ["clawback"] * 2 + ["offending"]))
        component = "offending" if kind == "offending" else draw(st.sampled_from(["a", "b"]))
        amount = draw(st.sampled_from([0.0, 100.0, 250.0, 333.33, 1000.0]))
        client = -1 if kind == "offending" else draw(st.integers(1, 4))
        band = "" if kind == "offending" else draw(st.sampled_from(["low", "moderate"]))
        earned = float(draw(st.integers(0, 729)))
        rows.append((component, kind, client, band, earned, earned, 1 + int(earned >= 365),
                     -amount if kind == "clawback" else amount))
    cap = st.one_of(st.none(), st.sampled_from([1.0, 500.0, 1500.0, 1e9]))
    c = contract({"a": bbv(cap_per_year=draw(cap)), "b": bbv(cap_per_year=draw(cap))},
                 pbr_cap=draw(st.one_of(st.none(), st.sampled_from([0.001, 0.005, 0.02, 10.0]))),
                 term_cap=draw(cap))
    years = pd.DataFrame({"contract_year": [1, 2], "start": [0.0, 365.0], "end": [365.0, 730.0],
                          "pot": [300_000.0, 300_000.0]})
    return c, pd.DataFrame(rows, columns=PAYMENT_COLUMNS), years


@settings(max_examples=300, deadline=None)
@given(payments_under_caps())
def test_caps_settled_with_arrays_pay_exactly_what_paying_one_by_one_pays(case):
    """The uncapped prefix settled with arrays, then one by one (settlement's way), against every payment one by
    one: the same rows, amounts equal to the last bit."""
    c, payments, years = case
    fast = _apply_caps(c, payments, years)
    one_by_one = _apply_caps(c, payments, years, vectorised=False)
    pd.testing.assert_frame_equal(fast, one_by_one, check_exact=True)


# --- lags and payment timing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payment, lag, due", [
    ("quarterly_in_arrears", 91, dt.date(2013, 7, 1)),   # claimed 19 June 2013: paid when that quarter ends
    ("monthly_in_arrears", 91, dt.date(2013, 7, 1)),
    ("annually_in_arrears", 91, dt.date(2014, 4, 1)),
    ("on_evidence", 91, dt.date(2013, 6, 19)),
    ("quarterly_in_arrears", 0, dt.date(2013, 4, 1)),   # no lag: the quarter ends with the financial year
])
def test_a_lag_moves_the_payment_into_the_next_financial_year(scenario, payment, lag, due):
    earned = day(dt.date(2013, 3, 20))
    b = Build()
    c = b.client(1)
    b.episode(c, 10, start=20, exit=earned)
    h = b.finish()
    o = {"measure": "planned_exit", "price": 1000.0, "lag_days": lag, "payment": payment}
    row = outcome_rows(settle(contract({"pe": o}), h, scenario)).iloc[0]
    assert str(h.date(row["earned"])) == "2013-03-20" and row["contract_year"] == 1
    assert str(h.date(row["due"])) == str(due) and row["due"] == day(due)
    assert row["due"] >= 365.0  # 2013-14


def test_outcomes_outside_the_term_or_horizon_are_not_paid(scenario):
    h = bbv_tests([[-1, 0, 729.5, 729.9]]).finish()
    s = settle(contract({"t": bbv(window_days=1.0)}), h, scenario)
    assert outcome_rows(s)["earned"].tolist() == [0.0, 729.5]
    one_year = contract({"t": bbv(window_days=1.0)}, term_years=1, pbr_share={"by_year": [0.25]})
    assert outcome_rows(settle(one_year, h, scenario))["earned"].tolist() == [0.0]


# --- the escalator --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tests_in_year_1, multiplier", [(1, 0.5), (2, 1.0), (3, 1.5), (4, 1.5)])
def test_escalator_multiplier_from_the_years_achievement_rate(scenario, tests_in_year_1, multiplier):
    # four people in treatment in year 1; a baseline rate of 0.5 a person: 2 tests equal it
    h = bbv_tests([[10 * (i + 1)] if i < tests_in_year_1 else [] for i in range(4)]).finish()
    esc = {"baseline_rate": 0.5, "thresholds": [0.0, 0.1], "multipliers": [0.5, 1.0, 1.5]}
    s = settle(contract({"t": bbv(escalator=esc)}, reconciliation_lag_days=91), h, scenario)
    rows = outcome_rows(s)
    assert rows["amount"].tolist() == pytest.approx([1000 * multiplier] * tests_in_year_1)
    assert (rows["due"] == 365.0 + 91).all()  # the multiplier is known once the year is over


def test_escalator_against_the_baseline_years_rate(scenario):
    # the same four people in treatment in the baseline year, two tested then: a rate of 0.5
    h = bbv_tests([[-100, 10], [-50, 20], [30], []]).finish()
    esc = {"baseline_rate": "baseline", "thresholds": [0.0, 0.1], "multipliers": [0.5, 1.0, 1.5]}
    s = settle(contract({"t": bbv(escalator=esc)}), h, scenario)
    assert outcome_rows(s)["amount"].tolist() == pytest.approx([1500] * 3)  # 3 of 4: +50%
    h = bbv_tests([[-100, 10], [-50], [-20], []]).finish()
    assert outcome_rows(settle(contract({"t": bbv(escalator=esc)}), h, scenario))["amount"].tolist() == \
        pytest.approx([500])  # 1 of 4 against 3 of 4


# --- the offending payment ------------------------------------------------------------------------------------------


def _cohort_table(per_member, members=(100, 100, 100)):
    """A hand-made cohort table: the baseline year 2011-12 and the two contract years."""
    starts, ends = [-366.0, 0.0, 365.0], [0.0, 365.0, 730.0]
    t = pd.DataFrame({"period": ["2011-12", "2012-13", "2013-14"], "start": starts, "end": ends,
                      "contract": [False, True, True], "cohort": list(members)})
    t["offences_per_member"] = list(per_member)
    t["offences"] = t["offences_per_member"] * t["cohort"]
    t["expected_offences"] = t["offences"]
    return t[COHORT_COLUMNS]


OFFENDING = {"pot": 200_000, "paid_at_baseline": 0.53, "full_at_reduction": 0.043, "price_per_offence": 3900,
             "lag_days": 274}


@pytest.mark.parametrize("year_1, year_2, paid", [
    (10 * (1 - 0.043), 10.0, [200_000, 106_000]),        # 4.3% fewer: the whole pot; at the baseline: 53%
    (8.0, 10 * (1 - 0.0215), [200_000, 153_000]),        # never above the pot; halfway: 76.5%
    (10.2, 10.5, [200_000 * (0.53 - 0.47 * 0.02 / 0.043), 0.0]),  # above the baseline: the line down, then 0
])
def test_offending_curve_and_its_date(scenario, monkeypatch, year_1, year_2, paid):
    monkeypatch.setattr(offending_module, "cohort_offences", lambda h, sc, freq: _cohort_table([10.0, year_1, year_2]))
    s = settle(contract(offending=OFFENDING), Build().finish(), scenario)
    rows = s.payments[s.payments["kind"] == "offending"]
    assert rows["amount"].tolist() == pytest.approx(paid, abs=1e-6)
    assert rows["earned"].tolist() == [365.0, 730.0]
    assert rows["due"].tolist() == [365.0 + 274, 730.0 + 274]  # lag_days after each contract year ends
    assert (rows["component"] == "offending").all() and (rows["client_id"] == -1).all()
    off = s.offending.set_index("contract_year")
    assert off["baseline"].tolist() == [10.0, 10.0]
    assert off.loc[1, "community_savings"] == pytest.approx((10.0 - year_1) * 100 * 3900)


def test_offending_measures_and_a_fixed_baseline(scenario, monkeypatch):
    # per member the cohort's rate falls 4.3%; in total (it grew from 100 to 110 members) offences rose
    monkeypatch.setattr(offending_module, "cohort_offences",
                        lambda h, sc, freq: _cohort_table([10.0, 9.57, 10.0], members=(100, 110, 100)))
    per_member = settle(contract(offending=OFFENDING), Build().finish(), scenario)
    assert per_member.payments.loc[per_member.payments["kind"] == "offending", "amount"].tolist() == \
        pytest.approx([200_000, 106_000])
    volume = settle(contract(offending={**OFFENDING, "measure": "volume", "below_baseline": "zero"}),
                    Build().finish(), scenario)
    assert volume.payments.loc[volume.payments["kind"] == "offending", "amount"].tolist() == \
        pytest.approx([0.0, 106_000])  # 1,052.7 against 1,000: above the baseline, and the rule is zero
    fixed = settle(contract(offending={**OFFENDING, "baseline_offences": 9.57}), Build().finish(), scenario)
    assert fixed.payments.loc[fixed.payments["kind"] == "offending", "amount"].tolist() == \
        pytest.approx([106_000, 200_000 * (0.53 - 0.47 * (10 / 9.57 - 1) / 0.043)])


def test_offending_from_the_real_cohort_of_a_hand_built_history(scenario):
    b = Build()
    for i in range(6):
        c = b.client(i + 1, rate=60.0)
        b.episode(c, -500 + 10 * i, start=-490 + 10 * i, exit=200 + 50 * i, reason="planned")
    h = b.finish()
    s = settle(contract(offending=OFFENDING), h, scenario)
    cohort = cohort_offences(h, scenario, "year").set_index("period")
    base = cohort.loc["2011-12", "offences_per_member"]
    y1 = cohort.loc["2012-13", "offences_per_member"]
    rows = s.payments[s.payments["kind"] == "offending"]
    assert rows["amount"].iloc[0] == pytest.approx(200_000 * attachment_fraction(1 - y1 / base))
    assert s.offending["baseline"].iloc[0] == pytest.approx(base)


def test_offending_only_for_observed_years_and_needs_a_baseline(scenario):
    b = Build()
    c = b.client(1, rate=60.0)
    b.episode(c, -600, start=-590)
    s = settle(contract(offending=OFFENDING), b.finish(years=1.5), scenario)
    assert s.payments.loc[s.payments["kind"] == "offending", "contract_year"].tolist() == [1]
    with pytest.raises(ValueError, match="baseline"):
        settle(contract(offending=OFFENDING), Build().finish(warmup=0.5), scenario)


def test_an_empty_baseline_cohort_is_not_settled(scenario):
    """Regression (was settlement.py: an empty baseline cohort gave a NaN offending payment, and under a term cap
    every later PbR payment became NaN too)."""
    b = Build()
    c = b.client(1, rate=100.0)           # the only offender starts treatment in the contract
    b.episode(c, 10, start=20, exit=100)
    b.event(c, 400, "bbv_test")
    s = settle(contract({"t": bbv()}, offending=OFFENDING, term_cap=1e6), b.finish(), scenario)
    assert np.isfinite(s.payments["amount"].to_numpy(float)).all()
    assert not (s.payments["kind"] == "offending").any() and not s.offending["observed"].any()
    assert outcome_rows(s)["amount"].tolist() == [1000.0]


def test_community_savings_on_the_baseline_rate_whatever_the_contract(scenario, monkeypatch):
    """Offences saved = the baseline year's rate per member x this year's members - this year's offences, priced
    at the scenario's savings per recorded offence: the same under a block contract as under PbR."""
    table = _cohort_table([10.0, 9.0, 10.5], members=(100, 120, 80))
    monkeypatch.setattr(offending_module, "cohort_offences", lambda h, sc, freq: table)
    price = scenario.offending.savings_per_recorded_offence
    expected = [(10.0 * 120 - 9.0 * 120) * price, (10.0 * 80 - 10.5 * 80) * price]  # 120 saved; 40 more
    for c in (contract(offending=OFFENDING), load_contract(SCENARIOS / "contracts" / "block.toml")):
        comm = commissioner_by_year(settle(c, Build().finish(), scenario))
        assert comm["community_savings"].tolist() == pytest.approx(expected)
        assert comm["community_savings_per_pound"].tolist() == pytest.approx(
            (comm["community_savings"] / comm["spend"]).tolist())
    direct = offending_module.community_savings(table, 1.0)
    assert direct["offences_saved"].tolist() == pytest.approx([120.0, -40.0])
    assert (direct["baseline_rate"] == 10.0).all()
    assert offending_module.community_savings(table[table["contract"]], 1.0)["community_savings"].isna().all()
    with pytest.raises(ValueError, match="price_per_offence"):
        offending_module.community_savings(table, -1.0)


# --- validation of the schedule -----------------------------------------------------------------------------------


def test_a_step_schedule_never_leaves_zero_to_one():
    """Regression (was contract.py: for the step form only the first share and the maximum were checked, so a
    negative rise gave negative PbR shares and a core above the annual value)."""
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        contract(term_years=2, extension_years=2, pbr_share={"step": [0.1, -0.2, 0.5]})
    falling = contract(term_years=2, extension_years=2, pbr_share={"step": [0.7, -0.2, 0.9]})
    assert [falling.share(k) for k in range(1, 5)] == pytest.approx([0.7, 0.5, 0.3, 0.1])


# --- calendar edge cases ------------------------------------------------------------------------------------------


def test_monthly_cash_counts_every_cost_for_a_mid_month_start(scenario):
    """Regression (was settlement.py: monthly_cash looked costs up by its own month starts, the contract start's
    day of the month, while costs are by calendar month, so a 15 June start lost almost all its cost)."""
    b = Build(dt.date(2012, 6, 15))
    c = b.client(1)
    b.episode(c, -10, start=-5)
    s = settle(contract(), b.finish(), scenario)
    assert monthly_cash(s)["cost"].sum() == pytest.approx(delivery_costs(s.history, scenario)["cost"].sum())


def test_core_months_lie_inside_their_contract_year_for_a_31st_start(scenario):
    """Regression (was settlement.py: month starts clamped to the 28th, so a contract starting on 31 January had
    its first month start on day -3, and year 2's first core month inside year 1)."""
    h = Build(dt.date(2012, 1, 31)).finish()
    s = settle(contract(), h, scenario)
    core = s.payments[s.payments["kind"] == "core"].merge(s.years, on="contract_year")
    assert ((core["earned"] >= core["start"]) & (core["earned"] < core["end"])).all()
    assert [str(d) for d in h.date(core["earned"].to_numpy()[:3])] == ["2012-01-31", "2012-02-29", "2012-03-31"]
    assert core.groupby("contract_year").size().tolist() == [12, 12]


def test_payment_columns_stay_numeric_when_no_adjustment_is_due(scenario):
    s = settle(contract({"t": bbv()}, income_floor=0.0, income_cap=10.0), bbv_tests([[10]]).finish(), scenario)
    assert not (s.payments["kind"] == "adjustment").any()
    assert [str(s.payments[c].dtype) for c in ("earned", "due", "amount")] == ["float64"] * 3


# --- property tests on random hand-built Histories ----------------------------------------------------------------

EVENT_KINDS = ["bbv_test", "hep_b_course_complete", "entered_training"]
EVENT_MEASURES = ["bbv_tested", "hep_b_completed", "entered_training"]
ALL_MEASURES = ["reliable_improvement", "abstinence", "planned_exit", "sustained_recovery", "stopped_injecting",
                "housing_resolved", "normative_quality_of_life", "engagement", *EVENT_MEASURES]
PAYMENTS = ["monthly_in_arrears", "quarterly_in_arrears", "annually_in_arrears", "on_evidence"]
BAND_NAMES = list(WEIGHTS)


@st.composite
def journeys(draw, max_clients=5):
    """A History as data: clients, their episodes, TOP reviews and recorded events (built by ``build``)."""
    clients = []
    for _ in range(draw(st.integers(1, max_clients))):
        t = float(draw(st.integers(-700, 650)))
        episodes = []
        while t + 7 < END and len(episodes) < 3:  # every episode starts inside the horizon, as in a real History
            duration = float(draw(st.integers(20, 500)))
            reason = draw(st.sampled_from(["planned", "planned", "dropped_out", "died"]))
            start = t + 7
            exit_ = start + duration
            reviews = []
            r = start + 84
            while r < min(exit_, END) and len(reviews) < 6:
                reviews.append((r, draw(st.booleans()), draw(st.sampled_from(["abstinent", "improved", "neither"])),
                                draw(st.sampled_from([10, 14, 16])), draw(st.booleans()), draw(st.booleans())))
                r += 84
            events = [(draw(st.sampled_from(EVENT_KINDS)), start + draw(st.integers(0, 400)))
                      for _ in range(draw(st.integers(0, 3)))]
            episodes.append({"referral": t, "band": draw(st.sampled_from(BAND_NAMES)), "start": start,
                             "exit": exit_ if exit_ < END else None, "reason": reason, "reviews": reviews,
                             "events": events})
            if exit_ >= END or reason == "died":
                break
            t = exit_ + draw(st.integers(1, 400))
        clients.append({"group": draw(st.sampled_from(["opiate", "alcohol"])),
                        "rate": draw(st.sampled_from([0.0, 0.0, 30.0])), "injecting": draw(st.booleans()),
                        "housing": draw(st.booleans()), "episodes": episodes})
    return clients


def build(spec, extra=None):
    """The History of ``spec``; ``extra``: (client index, episode index, ("event", kind, time) or ("review",
    time, fields)) added to it. An anchor client, an offender in treatment from the warm-up on, keeps the
    offending cohort non-empty, so that the offending payment is usually settled."""
    b = Build()
    anchor = b.client(999, rate=50.0)
    b.episode(anchor, -700, start=-690)
    for i, cl in enumerate(spec):
        c = b.client(i + 1, group=cl["group"], rate=cl["rate"], injecting=cl["injecting"], housing=cl["housing"])
        for j, e in enumerate(cl["episodes"]):
            b.episode(c, e["referral"], band=e["band"], start=e["start"], exit=e["exit"], reason=e["reason"])
            b.review(c, e["start"], stage="start", use="neither", injecting=cl["injecting"], housing=cl["housing"])
            for n, (t, done, use, qol, inj, housing) in enumerate(e["reviews"]):
                b.review(c, t, number=n + 1, completed=done, use=use, qol=qol, injecting=inj and cl["injecting"],
                         housing=housing and cl["housing"])
            if e["exit"] is not None and e["reason"] == "planned":
                b.review(c, e["exit"], stage="exit", use="abstinent", qol=16)
            for kind, t in e["events"]:
                if t < END:
                    b.event(c, t, kind)
            if extra is not None and extra[0] == i and extra[1] == j:
                what = extra[2]
                if what[0] == "event":
                    b.event(c, what[2], what[1])
                else:
                    b.review(c, what[1], **what[2])
    return b.finish()


@st.composite
def contracts(draw, flat=False, caps=True, clawback=True, adjustments=True, term_cap=True, measures=None):
    """A random valid contract. ``flat``: one price whatever the band, year or achievement rate, and no per-year
    caps, escalators, floors or income caps."""
    n = draw(st.integers(1, 3))
    outcomes = {}
    for i in range(n):
        o = {"measure": draw(st.sampled_from(measures or ALL_MEASURES)),
             "once_per": draw(st.sampled_from(["episode", "client", "window"])),
             "window_days": draw(st.sampled_from([183.0, 365.0])), "lag_days": draw(st.sampled_from([0.0, 91.0])),
             "payment": draw(st.sampled_from(PAYMENTS))}
        if flat or draw(st.booleans()):
            o["price"] = draw(st.sampled_from([100.0, 1000.0, 25_000.0]))
        else:
            o["share_of_pot"] = draw(st.floats(0.01, 1.0 / n))
            o["expected_volume"] = draw(st.one_of(st.just("baseline"), st.floats(0.5, 20)))
        if not flat and caps and draw(st.booleans()):
            o["cap_per_year"] = draw(st.floats(0, 60_000))
        if clawback and draw(st.booleans()):
            o["clawback_days"] = draw(st.sampled_from([90.0, 183.0, 365.0]))
        if not flat and draw(st.booleans()):
            o["escalator"] = {"baseline_rate": draw(st.one_of(st.just("baseline"), st.floats(0.01, 2.0))),
                              "thresholds": [0.0, 0.1], "multipliers": [0.5, 1.0, 1.5]}
        outcomes[f"o{i}"] = o
    raw = {"name": "random", "annual_value": 1_000_000.0, "term_years": 2,
           "pbr_share": {"by_year": [draw(st.floats(0, 1)), draw(st.floats(0, 1))]}, "outcomes": outcomes}
    if not flat:
        raw["band_weights"] = {band: draw(st.sampled_from([0.0, 0.45, 1.0, 1.8])) for band in BAND_NAMES}
    if draw(st.booleans()):
        raw["offending"] = {"pot": draw(st.floats(0, 300_000)), "price_per_offence": 3900,
                            "below_baseline": draw(st.sampled_from(["extend", "zero", "hold"]))}
    if not flat and caps and draw(st.booleans()):
        raw["pbr_cap"] = draw(st.floats(0.01, 1.5))
    if term_cap and (flat or caps) and draw(st.booleans()):
        raw["term_cap"] = draw(st.floats(1.0, 500_000))
    if not flat and adjustments and draw(st.booleans()):
        floor = draw(st.floats(0.0, 1.0))
        raw["income_floor"] = floor
        if draw(st.booleans()):
            raw["income_cap"] = draw(st.floats(max(floor, 0.1), 1.5))
    elif not flat and adjustments and draw(st.booleans()):
        raw["income_cap"] = draw(st.floats(0.1, 1.5))
    return Contract.model_validate(raw)


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(spec=journeys(), c=contracts())
def test_caps_hold_and_nothing_is_negative_without_clawback(scenario, spec, c):
    s = settle(c, build(spec), scenario)
    p = s.payments
    assert list(p.columns) == PAYMENT_COLUMNS
    assert np.isfinite(p["amount"]).all()
    pbr = p[p["kind"].isin(PBR_KINDS + ["clawback"])]  # caps bind on net payouts: a clawback frees its room
    if c.pbr_cap is not None:
        for y in s.years.itertuples():
            paid = pbr.loc[pbr["contract_year"] == y.contract_year, "amount"].sum()
            assert paid <= c.pbr_cap * y.pot * (1 + 1e-9) + 1e-6
    if c.term_cap is not None:
        assert pbr["amount"].sum() <= c.term_cap * (1 + 1e-9) + 1e-6
    for name, o in c.outcomes.items():
        if o.cap_per_year is not None:
            mine = p[(p["component"] == name) & p["kind"].isin(["outcome", "clawback"])]
            per_year = mine.groupby("contract_year")["amount"]
            assert (per_year.sum() <= o.cap_per_year * (1 + 1e-9) + 1e-6).all()
    negative = p[p["amount"] < 0]
    clawback_on = {name for name, o in c.outcomes.items() if o.clawback_days is not None}
    assert (negative["kind"].isin(["clawback", "adjustment"])).all()
    assert set(negative.loc[negative["kind"] == "clawback", "component"]) <= clawback_on
    assert set(negative.loc[negative["kind"] == "adjustment", "component"]) <= ({"cap"} if c.income_cap else set())
    assert (p.loc[p["kind"] == "core", "due"] == p.loc[p["kind"] == "core", "earned"]).all()
    assert (p["due"] >= p["earned"]).all()


@PROPERTY
@given(spec=journeys())
def test_a_block_contract_on_any_history_pays_its_annual_value(scenario, spec):
    s = settle(load_contract(SCENARIOS / "contracts" / "block.toml"), build(spec), scenario)
    assert set(s.payments["kind"]) == {"core"}
    assert s.payments.groupby("contract_year")["amount"].sum().tolist() == pytest.approx([4_000_000] * 2)
    assert s.payments.groupby("contract_year").size().tolist() == [12, 12]


def _total(c, history, scenario):
    return settle(c, history, scenario).payments["amount"].to_numpy(dtype=float).sum()


@PROPERTY
@given(spec=journeys(), c=st.one_of(contracts(clawback=False, term_cap=False),
                                    contracts(clawback=False, adjustments=False),
                                    contracts(caps=False, term_cap=False), contracts(caps=False, adjustments=False),
                                    contracts(caps=False, term_cap=False, measures=EVENT_MEASURES)),
       data=st.data())
def test_a_new_achievement_never_lowers_the_payment(scenario, spec, c, data):
    """Evidence of an outcome the client had not achieved before (a recorded event of a kind they have none of),
    inside the contract: under any mix of prices, band weights, escalators, once-per rules, caps, floors and
    income caps the total paid does not fall. (Not combined: a term cap with floors or income caps, which move
    money between years.)"""
    i = data.draw(st.integers(0, len(spec) - 1), label="client")
    j = data.draw(st.integers(0, len(spec[i]["episodes"]) - 1), label="episode")
    kind = data.draw(st.sampled_from(EVENT_KINDS), label="kind")
    assume(all(k != kind for e in spec[i]["episodes"] for k, _ in e["events"]))
    e = spec[i]["episodes"][j]
    assume(e["start"] < END - 1)  # evidence needs time inside the horizon
    t = data.draw(st.floats(max(e["start"], 0.0), END - 1), label="time")
    before = _total(c, build(spec), scenario)
    after = _total(c, build(spec, (i, j, ("event", kind, t))), scenario)
    assert after >= before - 1e-6 * max(1.0, abs(before))


@PROPERTY
@given(spec=journeys(), c=contracts(flat=True, clawback=False), data=st.data())
def test_more_evidence_never_lowers_a_flat_payment(scenario, spec, c, data):
    """Any added evidence (an event, or a completed TOP review, for any client, whatever they achieved before)
    under flat prices with once-per rules and a term cap: the total paid does not fall."""
    assume(not any(o.measure == "housing_resolved" and o.once_per == "window" for o in c.outcomes.values()))
    i = data.draw(st.integers(0, len(spec) - 1), label="client")
    j = data.draw(st.integers(0, len(spec[i]["episodes"]) - 1), label="episode")
    e = spec[i]["episodes"][j]
    last = min(END - 1, e["exit"] if e["exit"] is not None else END - 1)
    t = data.draw(st.floats(max(e["start"] + 1, 0.0), max(last, max(e["start"] + 1, 0.0))), label="time")
    if data.draw(st.booleans(), label="review"):
        fields = {"use": data.draw(st.sampled_from(["abstinent", "improved"])), "qol": 16, "injecting": False,
                  "housing": False}
        extra = ("review", t, fields)
    else:
        extra = ("event", data.draw(st.sampled_from(EVENT_KINDS)), t)
    before = _total(c, build(spec), scenario)
    after = _total(c, build(spec, (i, j, extra)), scenario)
    assert after >= before - 1e-6 * max(1.0, abs(before))


# --- the paired comparison ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(small):
    wk = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")
    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    return compare(small, [wk, wk.with_changes({"name": "west_kent_again"}), block], replications=2, seed=1)


def test_compare_settles_the_same_histories_under_every_contract(comparison):
    f = comparison.fingerprints
    assert len(f) == 6 and comparison.contracts == ["west_kent_pbr", "west_kent_again", "block"]
    per_replication = f.groupby("replication")["history"].nunique()
    assert (per_replication == 1).all()  # identical histories for every contract
    assert f.groupby("replication")["history"].first().nunique() == 2  # other replications, other histories


def test_compare_on_worker_processes_is_identical(small, comparison):
    """Replications run elsewhere, from the scenario and contracts as data, finishing in any order: the same
    comparison, table for table."""
    from sim.experiments.executors import ProcessExecutor

    wk = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")
    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    done = []
    with ProcessExecutor(2) as executor:
        elsewhere = compare(small, [wk, wk.with_changes({"name": "west_kent_again"}), block], replications=2, seed=1,
                            progress=done.append, executor=executor)
    for name in ("by_year", "term", "fingerprints"):
        pd.testing.assert_frame_equal(getattr(elsewhere, name), getattr(comparison, name), check_exact=True)
    assert sorted(done) == [1, 2]


def test_paired_differences_of_a_contract_against_itself_are_zero(comparison):
    d = comparison.paired_differences()
    same = d[d["contract"] == "west_kent_again"]
    # the money, what it buys, and spend per sustained recovery
    assert set(same["metric"]) == set(METRICS) | set(DELIVERED) | {"spend_per_sustained_recovery"}
    assert (same["mean_difference"] == 0).all()
    assert (same["ci_low"] == 0).all() and (same["ci_high"] == 0).all()
    assert (same["ui_low"] == 0).all() and (same["ui_high"] == 0).all()
    block = d[d["contract"] == "block"].set_index("metric")
    assert block.loc["cost", "mean_difference"] == 0  # the same clients cost the same to treat
    assert (block.loc[list(DELIVERED), "mean_difference"] == 0).all()  # ... and have the same outcomes
    assert comparison.outcomes_identical()
    term = comparison.term.set_index(["replication", "contract"])
    assert (term["starts"] > 0).all() and (term["sustained_recoveries"] <= term["planned_exits"]).all()
    assert block.loc["outcome_payments", "mean_difference"] < 0  # block pays no outcomes
    summary = comparison.summary()
    assert list(summary.index) == comparison.contracts
    assert summary.loc["west_kent_pbr", "income"] == summary.loc["west_kent_again", "income"]
    # the same clients save the community the same, whatever is paid for them
    assert summary.loc["block", "community_savings"] == summary.loc["west_kent_pbr", "community_savings"]
    assert np.isfinite(summary.loc["block", "community_savings"])


def test_the_summary_gives_the_chance_of_a_loss_and_the_5th_percentile_margin(comparison):
    summary = comparison.summary()
    for name, d in comparison.term.groupby("contract"):
        margins = np.sort(d["margin"].to_numpy(float))  # two replications: the 5th percentile interpolates
        assert summary.loc[name, "margin_p5"] == pytest.approx(margins[0] + 0.05 * (margins[1] - margins[0]))
        assert summary.loc[name, "probability_of_loss"] == (margins < 0).mean()


def test_the_offending_lottery_counts_replications_paying_nothing_and_in_full(comparison):
    lottery = comparison.offending_lottery()
    assert set(lottery["contract"]) == {"west_kent_pbr", "west_kent_again"}  # block has no pot
    by_year = comparison.by_year
    for row in lottery.itertuples():
        d = by_year[(by_year["contract"] == row.contract) & (by_year["contract_year"] == row.contract_year)]
        fraction = d["offending_fraction_paid"].to_numpy(float)
        assert row.replications == len(d) == 2
        assert row.pays_nothing == (fraction == 0).mean() and row.pays_in_full == (fraction == 1).mean()
        # earned on the £200k pot; paid after the PbR cap, which outcome payments earned earlier can fill
        assert 0 <= row.mean_payment <= 200_000 * fraction.mean() + 1e-6
        assert row.mean_payment == pytest.approx(d["offending_payment"].mean())
    assert by_year.loc[by_year["contract"] == "block", "offending_fraction_paid"].isna().all()
    assert (by_year.loc[by_year["contract"] == "block", "offending_payment"] == 0).all()


# --- one real small simulation, settled under every shipped contract -----------------------------------------------


@pytest.fixture(scope="module")
def run(small):
    """The first replication of the comparison above: the same seed as compare(..., seed=1)'s replication 0."""
    return simulate(small, np.random.SeedSequence(1).spawn(2)[0])


@pytest.fixture(scope="module")
def settled(run, small):
    return {path.stem: settle(load_contract(path), run, small) for path in CONTRACTS}


def test_the_run_is_the_comparisons_first_replication(run, comparison):
    assert fingerprint(run) == comparison.fingerprints.loc[0, "history"]


def test_every_shipped_contract_settles(settled):
    assert set(settled) >= {"block", "cohort_escalator", "high_stretch", "national_pbr", "social_impact_bond",
                            "west_kent_pbr"}
    for name, s in settled.items():
        p = s.payments
        assert list(p.columns) == PAYMENT_COLUMNS and len(p) > 0, name
        assert np.isfinite(p["amount"]).all(), name
        assert set(p["kind"]) <= {"core", "outcome", "clawback", "offending", "adjustment"}, name
        if s.contract.outcomes:
            assert (p["kind"] == "outcome").any(), name
        assert set(p["contract_year"]) == {1, 2}, name


def test_due_after_earned_and_core_in_advance_on_the_day(settled):
    for name, s in settled.items():
        p = s.payments
        core = p["kind"] == "core"
        if s.contract.core_payment.endswith("in_advance"):
            assert (p.loc[core, "due"] == p.loc[core, "earned"]).all(), name
        assert (p.loc[~core, "due"] >= p.loc[~core, "earned"]).all(), name
        assert (p["due"] >= p["earned"]).all(), name


def test_block_pays_its_value_on_the_real_run(settled):
    p = settled["block"].payments
    assert set(p["kind"]) == {"core"}
    assert p.groupby("contract_year")["amount"].sum().tolist() == pytest.approx([4_000_000, 4_000_000])


def test_caps_on_the_real_run(settled):
    for name, s in settled.items():
        c, p = s.contract, s.payments
        pbr = p[p["kind"].isin(PBR_KINDS)]
        if c.pbr_cap is not None:
            by_year = pbr.groupby("contract_year")["amount"].sum()
            pots = s.years.set_index("contract_year")["pot"]
            assert (by_year <= c.pbr_cap * pots.reindex(by_year.index) + 1e-6).all(), name
        if c.term_cap is not None:
            assert pbr["amount"].sum() <= c.term_cap + 1e-6, name
        clawback = any(o.clawback_days is not None for o in c.outcomes.values())
        assert (p["amount"] >= 0).all() or clawback or c.income_cap is not None, name


def test_provider_view_adds_up(settled):
    for name, s in settled.items():
        v = provider_by_year(s)
        components = [col for col in ["core", *s.contract.outcomes, "offending", "floor", "cap"] if col in v]
        assert v["income"].to_numpy() == pytest.approx(v[components].sum(axis=1).to_numpy()), name
        assert v["margin"].to_numpy() == pytest.approx((v["income"] - v["cost"]).to_numpy()), name
        paid = s.payments.groupby("contract_year")["amount"].sum()
        assert v["income"].to_numpy() == pytest.approx(paid.reindex(v.index).to_numpy()), name
        assert (v["cost"] > 0).all() and (v["working_capital_needed"] >= 0).all(), name
        for sub in s.contract.subcontractors:
            assert (v["prime_income"] + v[f"{sub.name}_income"]).to_numpy() == pytest.approx(v["income"].to_numpy())
            assert (v["prime_cost"] + v[f"{sub.name}_cost"]).to_numpy() == pytest.approx(v["cost"].to_numpy())
        comm = commissioner_by_year(s)
        assert comm["payments"].to_numpy() == pytest.approx(v["income"].to_numpy()), name
        assert comm["spend"].to_numpy() == pytest.approx((comm["payments"] + comm["assessments"]).to_numpy()), name


def test_monthly_cash_is_the_running_sum_of_net(settled, run, small):
    cost = delivery_costs(run, small)["cost"].sum()
    for name, s in settled.items():
        m = monthly_cash(s)
        assert m["net"].to_numpy() == pytest.approx((m["income"] - m["cost"]).to_numpy()), name
        assert m["cumulative_cash"].to_numpy() == pytest.approx(np.cumsum(m["net"].to_numpy())), name
        assert m["income"].sum() == pytest.approx(s.payments["amount"].sum()), name  # every payment lands
        assert m["cost"].sum() == pytest.approx(cost), name
        assert (np.diff(m["start"].to_numpy()) > 0).all() and m["start"].iloc[0] == 0.0, name
        assert m["end"].iloc[-1] > s.payments["due"].max(), name


def test_resettling_a_history_gives_the_same_payments_and_derived_tables_are_copies(run, small):
    """Achievements, costs and cohorts are kept on the History between settlements (sim.engine.history.derived): a
    caller changing what it was handed must not change what the next settlement sees."""
    from sim.analysis.outcomes import achievements

    contract = load_contract(CONTRACTS[0])
    first = settle(contract, run, small).payments
    handed = achievements(run, "planned_exit", 365.0)
    handed["time"] = -1.0
    assert (achievements(run, "planned_exit", 365.0)["time"] >= run.start).all()
    pd.testing.assert_frame_equal(settle(contract, run, small).payments, first)


def test_a_horizon_past_the_contract_puts_no_later_cost_into_its_last_year(west_kent):
    """A 6-year horizon on a 4-year contract: each contract year's cost, income and cash are those of the same
    year of the 4-year run (the months after the term belong to no contract year)."""
    contract = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")
    four, six = (small_scenario(years=y, warmup_years=2) for y in (4, 6))
    views = {}
    for name, scenario in (("four", four), ("six", six)):
        st = settle(contract, simulate(scenario, 11), scenario)
        views[name] = (provider_by_year(st), commissioner_by_year(st), monthly_cash(st))
    p4, p6 = views["four"][0], views["six"][0]
    assert list(p4.index) == list(p6.index) == [1, 2, 3, 4]
    np.testing.assert_allclose(p6["cost"], p4["cost"], rtol=1e-9)
    np.testing.assert_allclose(views["six"][1]["assessments"], views["four"][1]["assessments"], rtol=1e-9)
    # a contract year's cost is the sum of its months in the cash table, and cash agrees with income less cost
    cash = views["six"][2]
    term_end = float(cash.loc[cash["period"] == "2016-04", "start"].iloc[0])
    assert cash.loc[cash["start"] >= term_end, "cost"].eq(0).all(), "no delivery cost after the term"
    assert cash.loc[cash["start"] < term_end, "cost"].sum() == pytest.approx(p6["cost"].sum(), rel=1e-9)
    assert p6["cash_at_year_end"].iloc[-1] == pytest.approx(
        cash.loc[cash["start"] < term_end, "net"].sum(), rel=1e-9)
