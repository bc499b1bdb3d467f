"""Offending: offences by spell, the offending cohort, the attachment curve and the offending payment."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import measures
from sim.analysis.offending import (
    OFFENDING_STREAM,
    attachment_fraction,
    client_uniforms,
    cohort_offences,
    offences_by_spell,
    offending_settlement,
)
from sim.config.scenario import Horizon
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.randomness import ClientRandom, Stream
from sim.core.vocabulary import BANDS, GROUPS, STATES, TREATMENT_STATES
from sim.engine.history import Client, Recorder

S = {name: i for i, name in enumerate(STATES)}
Y = DAYS_PER_YEAR
# contract from 1 April 2020 for two years, two warm-up years (from day -730.5): the only whole warm-up
# financial year is 2019-20 = [-366, 0) (2020 is a leap year); then 2020-21 = [0, 365), 2021-22 = [365, 730)
HORIZON = Horizon(contract_start=dt.date(2020, 4, 1), years=2, warmup_years=2)


@pytest.fixture(scope="module")
def scenario(west_kent):
    """Every offence recorded; band-specific ratios to check which band a spell uses."""
    return west_kent.with_changes({
        "offending.recorded_share": 1.0,
        "offending.in_treatment": {"value": 0.53, "by_group": {"opiate": {"by_band": {"critical": 0.4}}}},
        "offending.before_treatment": {"value": 1.0, "by_band": {"critical": 0.7}},
    })


def _client(rec, cid, group, rate, t):
    c = Client(cid, GROUPS.index(group), 0, t)
    c.male, c.age, c.injecting, c.dual_diagnosis, c.housing_problem = True, 30.0, False, False, False
    c.criminal_justice, c.offending_rate = rate > 0, float(rate)
    rec.new_client(c)
    return c


def _journey(rec, c, steps):
    """``steps``: (day, state) or (day, state, band) or (day, "referral"): a new episode from that day."""
    for step in steps:
        t, what = step[0], step[1]
        if what == "referral":
            if c.ep is not None:
                c.episode += 1  # as the pathway does: before the first state of the new episode
            rec.new_episode(c, t, 0)
            rec.state(c, S["awaiting_assessment"], t)
            continue
        if what == "awaiting_treatment" or (what == "signposted"):
            c.ep.assessed, c.ep.band = t, BANDS.index(step[2])
        rec.state(c, S[what], t)


def _tiny(b_drop_out=600.0, seed=7):
    """A: opiate, critical, treated from the warm-up, planned exit then relapse. B: alcohol, treated in the
    second contract year only, drops out. C: never offends. D: opiate, treated, custody, released, dies.
    E: offender signposted, never treated. F: treated, transferred out of the area on day 30."""
    rec = Recorder()
    _journey(rec, _client(rec, 1, "opiate", 100, -100.0), [
        (-100, "referral"), (-90, "awaiting_treatment", "critical"), (-80, "in_treatment"),
        (50, "community_detox"), (60, "in_treatment"), (200, "recovered"), (500, "relapsed")])
    _journey(rec, _client(rec, 2, "alcohol", 50, 400.0), [
        (400, "referral"), (410, "awaiting_treatment", "moderate"), (420, "in_treatment"),
        (b_drop_out, "disengaged")])
    _journey(rec, _client(rec, 3, "opiate", 0, -500.0), [
        (-500, "referral"), (-490, "awaiting_treatment", "critical"), (-480, "in_treatment")])
    _journey(rec, _client(rec, 4, "opiate", 200, -300.0), [
        (-300, "referral"), (-290, "awaiting_treatment", "substantial"), (-280, "in_treatment"),
        (100, "in_custody"), (300, "referral"), (310, "died")])
    _journey(rec, _client(rec, 5, "non_opiate", 80, -50.0), [(-50, "referral"), (-45, "signposted", "no_need")])
    _journey(rec, _client(rec, 6, "non_opiate", 40, -200.0), [
        (-200, "referral"), (-195, "awaiting_treatment", "low"), (-190, "in_treatment"), (30, "transferred")])
    return rec.finish(HORIZON.end_day, HORIZON, "tiny", np.random.SeedSequence(seed))


def _one_spell_each(n, rate, days, seed=11):
    """``n`` offenders, each awaiting assessment for the whole of [0, days)."""
    rec = Recorder()
    for i in range(n):
        c = _client(rec, 1000 + i, "opiate", rate, 0.0)
        _journey(rec, c, [(0.0, "referral")])
    horizon = Horizon(contract_start=dt.date(2020, 4, 1), end=dt.date(2020, 4, 1) + dt.timedelta(days=days),
                      warmup_years=0)
    return rec.finish(float(days), horizon, "many", np.random.SeedSequence(seed))


# --- offences by spell ---------------------------------------------------------------------------------------


def test_ratio_per_state_and_expected_offences(scenario):
    sp = _spells_only(offences_by_spell(_tiny(), scenario)).set_index(["client_id", "start"])
    expect = {  # (client, start): (state, ratio, rate, days)
        (1, -100): ("awaiting_assessment", 1.0, 100, 10),   # before assessment: the band-free value
        (1, -90): ("awaiting_treatment", 0.7, 100, 10),     # assessed critical
        (1, -80): ("in_treatment", 0.4, 100, 130),          # opiate critical
        (1, 50): ("community_detox", 0.4, 100, 10),
        (1, 200): ("recovered", 0.39, 100, 300),
        (1, 500): ("relapsed", 1.0, 100, 230),
        (2, 410): ("awaiting_treatment", 1.0, 50, 10),
        (2, 420): ("in_treatment", 0.53, 50, 180),
        (2, 600): ("disengaged", 0.85, 50, 130),
        (4, -280): ("in_treatment", 0.53, 200, 380),
        (4, 100): ("in_custody", 0.0, 200, 200),
        (4, 310): ("died", 0.0, 200, 420),
        (5, -45): ("signposted", 1.0, 80, 775),
        (6, 30): ("transferred", 0.0, 40, 700),
    }
    for key, (state, ratio, rate, days) in expect.items():
        row = sp.loc[key]
        assert row["state"] == state
        assert row["ratio"] == pytest.approx(ratio) and row["rate"] == rate
        assert row["expected"] == pytest.approx(rate * ratio * days / Y)
    assert 3 not in sp.index.get_level_values("client_id")  # a non-offender has no offences
    assert (sp.loc[(4, 100), "episode"], sp.loc[(4, 300), "episode"]) == (0, 1)  # custody belongs to episode 0


def _spells_only(sp):
    """The rows that are History spells (not the year before first referral)."""
    return sp[sp["state"] != "before_referral"].reset_index(drop=True)


def test_every_offender_spell_once_with_integer_counts(scenario):
    h = _tiny()
    everything = offences_by_spell(h, scenario)
    sp = _spells_only(everything)
    offenders = h.spells[h.spells["client_id"].isin([1, 2, 4, 5, 6])]
    assert sorted(zip(sp["client_id"], sp["start"])) == sorted(zip(offenders["client_id"], offenders["start"]))
    # and a year before each offender's first referral, untreated (band-free before-treatment ratio)
    before = everything[everything["state"] == "before_referral"].set_index("client_id")
    first = h.clients.set_index("client_id")["first_referral"]
    assert sorted(before.index) == [1, 2, 4, 5, 6]
    assert (before["end"] == first.loc[before.index]).all() and (before["end"] - before["start"] == 366).all()
    assert (before["ratio"] == 1.0).all() and (before["episode"] == -1).all()
    assert list(sp.columns) == ["client_id", "episode", "state", "start", "end", "rate", "ratio", "expected",
                                "recorded"]
    assert sp["recorded"].dtype == np.int64 and (sp["recorded"] >= 0).all()
    assert (sp.loc[sp["ratio"] == 0, "recorded"] == 0).all()


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_recorded_counts_are_poisson_with_the_expected_mean(west_kent, share):
    days = 730
    sp = _spells_only(offences_by_spell(_one_spell_each(4000, 1.0, days), west_kent.with_changes(
        {"offending.recorded_share": share})))
    mean = share * days / Y  # about 2 (or 1) recorded offences each
    assert sp["expected"].to_numpy() == pytest.approx(days / Y)
    assert sp["recorded"].mean() == pytest.approx(mean, abs=0.1)      # standard error about 0.02
    assert sp["recorded"].var() == pytest.approx(mean, rel=0.15)      # Poisson: variance = mean


def test_same_history_same_counts_and_other_clients_keep_theirs(scenario):
    a = offences_by_spell(_tiny(), scenario)
    pd.testing.assert_frame_equal(a, offences_by_spell(_tiny(), scenario))
    b = offences_by_spell(_tiny(b_drop_out=550.0), scenario)  # client 2's life changes
    pd.testing.assert_frame_equal(a[a["client_id"] != 2].reset_index(drop=True),
                                  b[b["client_id"] != 2].reset_index(drop=True))
    big = offences_by_spell(_one_spell_each(200, 50.0, 365, seed=1), scenario)
    other = offences_by_spell(_one_spell_each(200, 50.0, 365, seed=2), scenario)
    assert (big["recorded"] != other["recorded"]).any()  # another seed, other draws


def test_uniforms_are_those_of_client_random():
    seed = np.random.SeedSequence(5)
    r = ClientRandom(seed)
    got = client_uniforms(seed, Stream.TREATMENT, np.full(6, 42), np.full(6, 3), np.arange(1, 7))
    assert list(got) == list(r.draws_array(Stream.TREATMENT, 42, 3, 6))
    got = client_uniforms(seed, Stream.REVIEW, np.array([1, 2, 1_000_007]), np.array([0, 1, 2]), np.ones(3))
    assert list(got) == [r.draws(Stream.REVIEW, c, e, 1)[0] for c, e in ((1, 0), (2, 1), (1_000_007, 2))]
    assert OFFENDING_STREAM == Stream.OFFENDING and list(Stream).count(Stream.OFFENDING) == 1  # its own stream


# --- the offending cohort ------------------------------------------------------------------------------------


def test_cohort_members_and_expected_offences(scenario):
    c = cohort_offences(_tiny(), scenario).set_index("period")
    assert list(c.index) == ["2019-20", "2020-21", "2021-22"]
    assert list(c["start"]) == [-366.0, 0.0, 365.0] and list(c["end"]) == [0.0, 365.0, 730.0]
    assert list(c["contract"]) == [False, True, True]
    # A, D, F in treatment in both of the first years (C never offends, E is never treated, B starts on day
    # 420); in 2021-22 only B (A is relapsed, D dead, F transferred out)
    assert list(c["cohort"]) == [3, 3, 1]
    # members first referred during the year also count their untreated offending before referral
    a = 100 * (266 + 10 + 0.7 * 10 + 0.4 * 80) / Y
    d = 200 * (66 + 10 + 10 + 0.53 * 280) / Y
    f = 40 * (166 + 5 + 5 + 0.53 * 190) / Y
    assert c.loc["2019-20", "expected_offences"] == pytest.approx(a + d + f)
    a = 100 * (0.4 * 200 + 0.39 * 165) / Y
    d = 200 * (0.53 * 100 + 10) / Y  # custody and death count nothing; back before treatment on release
    f = 40 * 0.53 * 30 / Y
    assert c.loc["2020-21", "expected_offences"] == pytest.approx(a + d + f)
    b = 50 * (35 + 10 + 10 + 0.53 * 180 + 0.85 * 130) / Y  # referred on day 400: 35 days before referral
    assert c.loc["2021-22", "expected_offences"] == pytest.approx(b)


def test_recorded_offences_are_pro_rated_across_periods(scenario):
    h = _tiny()
    sp = offences_by_spell(h, scenario)
    c = cohort_offences(h, scenario).set_index("period")
    # B is 2021-22's only member: its spells lie inside it, and 35 of the 366 days before its referral
    b = sp[sp["client_id"] == 2]
    before = b[b["state"] == "before_referral"].iloc[0]
    expected = b.loc[b["state"] != "before_referral", "recorded"].sum() + before["recorded"] * 35 / 366
    assert c.loc["2021-22", "offences"] == pytest.approx(expected)
    assert c.loc["2021-22", "offences_per_member"] == c.loc["2021-22", "offences"]
    # A's treatment spell [-80, 50) is split 80:50 between the first two years
    treat = sp[(sp["client_id"] == 1) & (sp["start"] == -80)].iloc[0]
    rec = Recorder()
    _journey(rec, _client(rec, 1, "opiate", 100, -80.0), [
        (-80, "referral"), (-80, "awaiting_treatment", "critical"), (-80, "in_treatment")])
    lone = rec.finish(50.0, HORIZON, "one", h.seed)
    one = cohort_offences(lone, scenario).set_index("period")
    alone = _spells_only(offences_by_spell(lone, scenario))
    n = alone["recorded"].iloc[0]
    assert n == treat["recorded"]  # same client, episode and start: same draw
    pre = offences_by_spell(lone, scenario).iloc[0]
    assert pre["state"] == "before_referral"
    assert one.loc["2019-20", "offences"] == pytest.approx(n * 80 / 130 + pre["recorded"] * 286 / 366)
    assert one.loc["2020-21", "offences"] == pytest.approx(n * 50 / 130)
    assert one["offences"].dtype == float


def test_an_empty_cohort_and_bad_frequency(scenario):
    rec = Recorder()
    _journey(rec, _client(rec, 9, "alcohol", 0, -10.0), [(-10, "referral"), (-5, "in_treatment")])
    _journey(rec, _client(rec, 8, "alcohol", 30, -10.0), [(-10, "referral"), (-5, "signposted", "no_need")])
    c = cohort_offences(rec.finish(730.0, HORIZON, "none", 3), scenario)
    assert (c["cohort"] == 0).all() and (c["offences"] == 0).all() and c["offences_per_member"].isna().all()
    with pytest.raises(ValueError, match="freq"):
        cohort_offences(_tiny(), scenario, freq="month")


def test_a_spell_running_backwards_is_named_not_counted(scenario):
    """A hand-made History with an episode starting after the horizon's end gives a spell of negative length: its
    Poisson mean would be NaN and its count garbage (-9.2e18 once), so it is refused, naming the spell."""
    rec = Recorder()
    _journey(rec, _client(rec, 7, "opiate", 100, -10.0), [(-10, "referral"), (-5, "in_treatment")])
    late = _client(rec, 5, "alcohol", 50, 800.0)
    _journey(rec, late, [(800, "referral")])  # after the horizon's end (day 730): the final spell runs backwards
    h = rec.finish(HORIZON.end_day, HORIZON, "backwards", np.random.SeedSequence(3))
    with pytest.raises(ValueError, match=r"client 5, state awaiting_assessment, start 800.0, end 730.0"):
        offences_by_spell(h, scenario)


# --- the attachment curve ------------------------------------------------------------------------------------


def test_attachment_points_and_cap():
    assert attachment_fraction(0.0) == pytest.approx(0.53)
    assert attachment_fraction(0.043) == pytest.approx(1.0)
    assert attachment_fraction(0.0215) == pytest.approx(0.765)
    assert attachment_fraction(0.2) == 1.0
    f = attachment_fraction(np.array([0.0, 0.0215, 0.043, 0.2]))
    assert isinstance(f, np.ndarray) and f == pytest.approx([0.53, 0.765, 1.0, 1.0])
    assert attachment_fraction(0.0, paid_at_baseline=0.0, full_at_reduction=0.1) == 0.0
    assert np.isnan(attachment_fraction(np.nan))


def test_below_baseline_rules():
    zero_at = -0.53 * 0.043 / 0.47  # about -4.85%
    assert zero_at == pytest.approx(-0.0485, abs=1e-4)
    assert attachment_fraction(-0.02) == pytest.approx(0.53 - 0.47 * 0.02 / 0.043)
    assert attachment_fraction(zero_at) == pytest.approx(0.0, abs=1e-12)
    assert attachment_fraction(-0.1) == 0.0 and attachment_fraction(-0.1, below_baseline="extend") == 0.0
    assert attachment_fraction(-0.01, below_baseline="zero") == 0.0
    assert attachment_fraction(0.0, below_baseline="zero") == pytest.approx(0.53)  # baseline equalled
    assert attachment_fraction(-0.5, below_baseline="hold") == pytest.approx(0.53)
    assert attachment_fraction(0.0215, below_baseline="hold") == pytest.approx(0.765)


@pytest.mark.parametrize("kwargs, name", [
    ({"paid_at_baseline": 1.5}, "paid_at_baseline"), ({"paid_at_baseline": -0.1}, "paid_at_baseline"),
    ({"paid_at_baseline": float("nan")}, "paid_at_baseline"), ({"paid_at_baseline": "half"}, "paid_at_baseline"),
    ({"full_at_reduction": 0.0}, "full_at_reduction"), ({"full_at_reduction": -0.04}, "full_at_reduction"),
    ({"full_at_reduction": float("inf")}, "full_at_reduction"), ({"below_baseline": "clip"}, "below_baseline"),
])
def test_bad_curve_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        attachment_fraction(0.01, **kwargs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-2.0, 1.0, allow_nan=False), min_size=1, max_size=30),
       st.floats(0.0, 1.0), st.floats(1e-4, 1.0), st.sampled_from(["extend", "zero", "hold"]))
def test_fraction_is_a_share_and_never_falls_as_offences_fall(reductions, paid, full, rule):
    r = np.sort(np.array(reductions))
    f = attachment_fraction(r, paid_at_baseline=paid, full_at_reduction=full, below_baseline=rule)
    assert ((f >= 0.0) & (f <= 1.0)).all()
    assert (np.diff(f) >= -1e-12).all()


# --- the offending payment -----------------------------------------------------------------------------------


def _table(offences, contract=None):
    labels = ["2011-12", "2012-13", "2013-14", "2014-15", "2015-16"][:len(offences)]
    t = pd.DataFrame({"period": labels, "offences": offences})
    if contract is not None:
        t["contract"] = contract
    return t


def test_settlement_against_a_baseline_year():
    base = 1190.0  # the baseline West Kent's pot and price imply (ref pbr-contracts §6)
    s = offending_settlement(_table([base, base, base * (1 - 0.043), 1000.0, 1250.0]), "2011-12",
                             pot=200_000, price_per_offence=3_900).set_index("period")
    assert list(s.index) == ["2012-13", "2013-14", "2014-15", "2015-16"]
    assert (s["baseline_offences"] == base).all()
    assert s.loc["2012-13", "payment"] == pytest.approx(106_000)  # 53% for equalling the baseline
    assert s.loc["2012-13", "community_savings"] == 0.0
    assert s.loc["2013-14", "reduction"] == pytest.approx(0.043)
    assert s.loc["2013-14", "payment"] == pytest.approx(200_000)
    assert s.loc["2013-14", "offences_saved"] == pytest.approx(51.17)
    assert s.loc["2013-14", "community_savings"] == pytest.approx(51.17 * 3_900)
    assert s.loc["2014-15", "payment"] == 200_000 and s.loc["2014-15", "community_savings"] == pytest.approx(
        190 * 3_900)
    assert s.loc["2015-16", "payment"] == 0.0  # 5% more offences: below the line's zero
    assert s.loc["2015-16", "offences_saved"] == pytest.approx(-60)
    assert s.loc["2015-16", "community_savings"] == pytest.approx(-234_000)
    held = offending_settlement(_table([base, 1250.0]), "2011-12", 200_000, 3_900, below_baseline="hold")
    assert held["payment"].tolist() == pytest.approx([106_000])


def test_settlement_against_a_number_of_offences():
    s = offending_settlement(_table([900.0, 978.5, 1000.0], contract=[False, True, True]), 1000,
                             pot=200_000, price_per_offence=3_900)
    assert s["period"].tolist() == ["2012-13", "2013-14"]
    assert s["fraction_paid"].tolist() == pytest.approx([0.765, 0.53])
    assert s["payment"].tolist() == pytest.approx([153_000, 106_000])
    assert s["community_savings"].tolist() == pytest.approx([21.5 * 3_900, 0.0])
    every = offending_settlement(_table([900.0, 978.5]), 1000.0, 100_000, 1_000)  # no contract column: all rows
    assert every["payment"].tolist() == pytest.approx([100_000, 76_500])


@pytest.mark.parametrize("args, name", [
    (("2010-11", 200_000, 3_900), "baseline_period"), ((0, 200_000, 3_900), "baseline_period"),
    ((True, 200_000, 3_900), "baseline_period"), (("2011-12", -1, 3_900), "pot"),
    (("2011-12", 200_000, float("nan")), "price_per_offence"),
])
def test_settlement_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        offending_settlement(_table([1000.0, 990.0]), *args)
    with pytest.raises(ValueError, match="baseline"):
        offending_settlement(_table([0.0, 5.0]), "2011-12", 200_000, 3_900)


# --- a real small simulation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(small, small_history_seed_1):
    h = small_history_seed_1  # the session's small run, seed 1 (read only)
    return h, _spells_only(offences_by_spell(h, small))


def test_simulation_every_offender_spell_covered(run, small):
    h, sp = run
    offenders = set(h.clients.loc[h.clients["offending_rate"] > 0, "client_id"])
    assert set(sp["client_id"]) == offenders
    theirs = h.spells[h.spells["client_id"].isin(offenders)]
    assert sorted(zip(sp["client_id"], sp["start"])) == sorted(zip(theirs["client_id"], theirs["start"]))
    assert (sp["recorded"] >= 0).all() and (sp["expected"] >= 0).all() and sp["recorded"].dtype == np.int64
    total = small.offending.recorded_share.value * sp["expected"].sum()
    assert sp["recorded"].sum() == pytest.approx(total, rel=0.1)
    pd.testing.assert_frame_equal(sp, _spells_only(offences_by_spell(h, small)))


def test_simulation_cohort_has_warm_up_and_contract_years(run, small):
    h, _ = run
    c = cohort_offences(h, small)
    # warm-up from day -730.5: 2010-11 began on day -731, so 2011-12 is the only whole warm-up year
    assert c["period"].tolist() == ["2011-12", "2012-13", "2013-14"]
    assert c["contract"].tolist() == [False, True, True]
    assert (c["cohort"] > 0).all() and (c["offences"] > 0).all()
    yearly = measures.by_period(h, "year").set_index("period")
    for _, row in c[c["contract"]].iterrows():
        assert row["cohort"] <= yearly.loc[row["period"], "in_treatment"]
    q = cohort_offences(h, small, "quarter")
    # whole quarters: 2010-11 Q1 began on day -731, Q2 on day -640
    assert q["period"].tolist()[:4] == ["2010-11 Q2", "2010-11 Q3", "2010-11 Q4", "2011-12 Q1"]
    assert len(q) == 3 + 4 * len(c) and q["contract"].sum() == 8
    # a year's cohort holds every member of its quarters' cohorts, so it counts at least their offences
    by_year = q.groupby(q["period"].str[:7])["offences"].sum()
    assert (c.set_index("period")["offences"] >= by_year.reindex(c["period"]) - 1e-9).all()


def test_simulation_less_offending_in_treatment_than_before(run):
    _, sp = run
    years = (sp["end"] - sp["start"]) / Y

    def per_person_year(states):
        pick = sp["state"].isin(states)
        return sp.loc[pick, "expected"].sum() / years[pick].sum()

    before = per_person_year(["awaiting_assessment", "awaiting_treatment"])
    assert per_person_year(TREATMENT_STATES) < before
    assert per_person_year(["recovered"]) < per_person_year(TREATMENT_STATES)


def test_poisson_quantile_is_scipys():
    from scipy import stats

    from sim.analysis.offending import poisson_quantile

    rng = np.random.default_rng(0)
    u = rng.random(20_000)
    mean = np.concatenate([np.zeros(500), rng.random(9_500) * 0.01, rng.exponential(3.0, 10_000)])
    assert np.array_equal(poisson_quantile(u, mean), stats.poisson.ppf(u, mean))


def test_the_criminal_justice_share_of_returns_rises_with_offending():
    """Returns by arrest referral arise from recorded offences out of treatment (issue 18): with offenders
    offending three times as often, a larger share of re-presentations comes by the criminal-justice route."""
    from sim import simulate
    from tests.builders import small_scenario

    def cj_share(mean: float) -> float:
        sc = small_scenario(years=3, warmup_years=3, **{"population.offending_rate_per_year.mean": mean})
        shares = []
        for seed in (1, 2):
            ep = simulate(sc, seed=seed).episodes
            returns = ep[(ep["episode"] > 0) & (ep["referral"] >= 0)]
            shares.append(float((returns["source"] == "arrest_referral").mean()))
        return float(np.mean(shares))

    low, high = cj_share(130.0), cj_share(390.0)
    assert high > low + 0.03, (low, high)
    none = cj_share(1e-6)  # offenders who hardly offend are hardly ever brought back by arrest
    assert none < low
