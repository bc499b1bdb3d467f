"""Provider behaviour measured (sim/incentives.py): the outputs by hand on a hand-built History; each mechanism
moving its own outputs in the documented direction on a small simulated West Kent (provider-behaviour.md §4);
damping (an independent LASAR, a binding cap, contact floors); paired comparisons across contracts staying paired
with behaviour on; the M7 cash fixed point; the audit, its report and command; behaviour sweeps.

Simulated tests use two years of warm-up and two or three reported years, a keen provider (profit orientation 1,
a one-month learning ramp) and one mechanism at a time, each against the behaviour-off run of the same seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim.config.behaviour import MECHANISMS, STRUCTURED_BANDS
from sim.config.contract import Contract, load_contract
from sim.core.vocabulary import BANDS, UNPLANNED_EXITS
from sim.experiments.audit import STRENGTH_SHARES, audit_contract
from sim.experiments.behaviour_sweep import (
    BEHAVIOUR_CATEGORY,
    PBR_SHARE_PATH,
    STEEPNESS_PATH,
    apply_derived,
    behaviour_sweep_specs,
    check_behaviour_sweep,
    load_behaviour_sweep,
    run_behaviour_sweep,
    steep_weights,
)
from sim.experiments.compare import fingerprint
from sim.experiments.provider_runs import simulate_with_provider
from sim.experiments.sweep import SweepError, sweep_from_dict
from sim.provider.cash import capacity_changes
from sim.provider.features import contract_features
from sim.provider.outputs import (
    ALL,
    GAP,
    OUTPUT_COLUMNS,
    TERM,
    _episodes,
    behaviour_outputs,
    mechanism_strength,
    output_value,
    pair_outcomes,
)
from sim.report.audit import audit_report, write_audit
from sim.report.behaviour_sweep import write_behaviour_sweep

from tests.conftest import SCENARIOS
from tests.builders import AFTER_EXIT, Build, S

MONTH = 365.25 / 12
SEED = 3
KEEN = {"provider": {"type": "for_profit", "profit_orientation": 1.0, "learning_months": 1.0}}
FLAT = {b: (0.0 if b == "no_need" else 1.0) for b in BANDS}
Y1, Y2 = "contract year 1", "contract year 2"


def only(scenario, mechanism: str, mode: str = "stress", provider: dict | None = None, **values):
    """The scenario with a keen provider and one mechanism switched on."""
    block = {"mode": mode, "provider": {**KEEN["provider"], **(provider or {})}}
    for m in MECHANISMS:
        block[m] = {"enabled": m == mechanism}
    block[mechanism].update(values)
    return scenario.with_changes({"behaviour": block})


def off(scenario):
    return scenario.with_changes({"behaviour.mode": "off"})


def value(outputs, metric, band=ALL, period=TERM):
    return output_value(outputs, metric, band, period)


@pytest.fixture(scope="module")
def wk_pbr():
    return load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")


@pytest.fixture(scope="module")
def blind(small, wk_pbr):
    """The behaviour-off run of the small scenario under the West Kent contract."""
    return simulate_with_provider(off(small), wk_pbr, SEED)


def tiny(outcomes, years=3, share=1.0, **kw) -> Contract:
    raw = {"name": "tiny", "annual_value": 4_000_000.0, "term_years": years, "pbr_share": {"by_year": [share] * years},
           "band_weights": FLAT, "outcomes": outcomes}
    raw.update(kw)
    return Contract.model_validate(raw)


# --- the outputs by hand ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def by_hand():
    """Five clients over three contract years (days 0-365-730-1096):

    1 critical: referred 10, starts 20, parked, planned exit 200, re-presents day 575 (375 days later: just after
      the 365-day window closes); 2 low: referred 30, deflected and signposted out at 30, dies at 400;
    3 critical: referred 40, starts 61, drops out 100; 4 low: referred 50, starts 80, planned exit 300 held 28
      days, re-presents 600 (within the window); 5 assessed moderate, recorded substantial (band drift):
      referred 700, starts 710, still in treatment."""
    b = Build()
    c1, c2, c3, c4, c5 = (b.client(i) for i in range(1, 6))
    e = b.episode(c1, 10, band="critical", start=20, exit=200, reason="planned")
    e.parked = True
    b.episode(c1, 575, band="critical")
    e = b.episode(c2, 30, band="low")
    e.deflected, e.exit, e.exit_reason = True, 30.0, "deflected"
    b.event(c2, 30, "deflected", "signposted")
    b.rec.state(c2, S["disengaged"], 30.0)
    b.die(c2, 400)
    b.episode(c3, 40, band="critical", start=61, exit=100, reason="dropped_out")
    e = b.episode(c4, 50, band="low", start=80, exit=300, reason="planned")
    e.discharge_shift_days = 28.0
    b.episode(c4, 600, band="low")
    e = b.episode(c5, 700, band="substantial", start=710)
    e.assessed_band = BANDS.index("moderate")
    return b.finish(years=3)


def test_outputs_by_hand(by_hand):
    assert AFTER_EXIT["planned"] == "recovered"  # the builder's states, as the outputs read them
    out = behaviour_outputs(by_hand)
    assert set(out.columns) == set(OUTPUT_COLUMNS)
    assert list(dict.fromkeys(out["period"])) == ["contract year 1", "contract year 2", "contract year 3", "term"]
    assert not out.duplicated(["period", "band", "metric"]).any()
    # intake (by the day of assessment); bands are need bands: client 5 counts as moderate
    assert value(out, "referrals") == 7  # five first referrals, two re-presentations
    assert value(out, "referrals", period=Y1) == 4
    assert value(out, "share_starting", "critical", Y1) == 1.0
    assert value(out, "share_starting", "low", Y1) == 0.5
    assert value(out, "share_starting", GAP, Y1) == 0.5
    assert value(out, "deflected_share", "low", Y1) == 0.5
    assert value(out, "signposted_out") == 1
    assert value(out, "band_drift_share", "moderate") == 1.0 and value(out, "band_drift_share", "critical") == 0
    assert value(out, "recorded_share_of_assessed", "substantial", Y2) == pytest.approx(1 / 3)
    # waits and starts
    assert value(out, "mean_wait_days", "critical") == pytest.approx((10 + 21) / 2)
    assert value(out, "waited_over_3_weeks", "critical") == 0.0  # 21 days is not more than 21
    assert value(out, "share_of_starters", "critical", Y1) == pytest.approx(2 / 3)
    # on the caseload in year 1: clients 1 (parked), 3 (critical) and 4 (low)
    assert value(out, "in_treatment", period=Y1) == 3
    assert value(out, "parked_share", "critical", Y1) == 0.5
    months1, months3 = 180 / MONTH, 39 / MONTH
    assert value(out, "contacts_per_client_month", "critical", Y1) == pytest.approx(
        (4 * 0.5 * months1 + 4 * months3) / (months1 + months3))  # standard 4 a month, parked at half
    # exits
    assert value(out, "length_of_stay_days", "critical") == pytest.approx((180 + 39) / 2)
    assert value(out, "unplanned_exit_share", "critical") == 0.5
    assert value(out, "completion_rate", "critical", Y1) == 0.5
    assert value(out, "held_share", "low") == 1.0 and value(out, "mean_shift_days", "low") == 28
    assert value(out, "sustained_share", "critical") == 1.0 and value(out, "sustained_share", "low") == 0.0
    assert value(out, "completions_without_re_presentation") == 1
    # client 1 re-presents 375 days after the exit: in the month after the window closes
    assert value(out, "re_presented_month_after") == 1 and value(out, "re_presented_month_before") == 0
    assert math.isnan(value(out, "bunching_after_window"))  # nothing in the month before
    assert value(out, "re_presentations", period=Y2) == 2
    # people not served: client 2, who died in year 2
    assert value(out, "not_served", "low", Y1) == 1
    assert value(out, "deaths_not_served", "low", Y2) == 1
    assert value(out, "deaths_not_served", period=Y1) == 0
    assert value(out, "caseload_places") == 100


def test_a_shorter_window_moves_the_bunching(by_hand):
    out = behaviour_outputs(by_hand, window_days=300)
    # client 4 re-presents exactly 300 days after the exit: the first day after a 300-day window
    assert value(out, "re_presented_month_after", "low") == 1
    assert value(out, "sustained_share", "low") == 1.0


def test_pairing_outcomes_client_by_client():
    on = pd.DataFrame({"client_id": [1, 1, 2, 3, 3], "component": ["a", "a", "a", "a", "b"],
                       "earned": [10.0, 20.0, 30.0, 40.0, 50.0], "need": ["low"] * 5,
                       "true": [True, True, True, False, True]})
    off_ = pd.DataFrame({"client_id": [1, 2, 4, 3], "component": ["a", "a", "a", "a"],
                         "earned": [15.0, 5.0, 60.0, 45.0], "need": ["low"] * 4, "true": [True] * 4})
    p = pair_outcomes(on, off_)
    counts = p["status"].value_counts().to_dict()
    # client 1: one matched, one more; 2: matched; 3: its 'a' was misrecorded (lost) and 'b' is new; 4: lost
    assert counts == {"anyway": 2, "additional": 2, "lost": 2}
    assert sorted(p.loc[p["status"] == "lost", "earned"]) == [45.0, 60.0]


# --- each mechanism moves its own outputs --------------------------------------------------------------------


def paired(on_history, off_history, keys):
    """The same episodes in two runs of one seed."""
    return (keys.merge(on_history.episodes, on=["client_id", "episode"]),
            keys.merge(off_history.episodes, on=["client_id", "episode"]))


@pytest.fixture(scope="module")
def parking(small):
    return only(small, "parking", drop_out_multiplier=2.0)


@pytest.fixture(scope="module")
def parked(parking, wk_pbr):
    return simulate_with_provider(parking, wk_pbr, SEED)


def test_parking_raises_declined_to_continue_among_the_parked(parked, blind):
    run = parked
    out, base = run.outputs(), blind.outputs()
    parked = run.history.episodes.loc[run.history.episodes["parked"], ["client_id", "episode"]]
    assert len(parked) > 20
    a, b = paired(run.history, blind.history, parked)
    unplanned = lambda d: d["exit_reason"].isin(UNPLANNED_EXITS).mean()  # noqa: E731
    assert unplanned(a) > unplanned(b) + 0.05
    # the bands parked most: more unplanned exits, fewer contacts
    bands = [b for b in STRUCTURED_BANDS if value(out, "parked_share", b) > 0.02]
    assert bands
    for band in bands:
        assert value(out, "unplanned_exit_share", band) > value(base, "unplanned_exit_share", band)
        assert value(out, "contacts_per_client_month", band) < value(base, "contacts_per_client_month", band)
    assert value(base, "parked_share") == 0 and value(base, "contacts_per_client_month") == 4.0


def test_holding_lengthens_stays_and_lowers_re_presentations_within_the_window(small):
    """In-treatment TOP outcomes and a sustained outcome both priced heavily: holding a ready client earns."""
    scenario = only(small.with_changes({"horizon.years": 3}), "discharge_timing", provider={"discount_per_month": 0})
    priced = tiny({"abstinence": {"measure": "abstinence", "price": 30000.0},
                   "sustained": {"measure": "sustained_recovery", "price": 30000.0, "window_days": 365,
                                 "lag_days": 91, "once_per": "episode"}})
    run = simulate_with_provider(scenario, priced, SEED)
    base = simulate_with_provider(off(scenario), priced, SEED)
    out, out_off = run.outputs(), base.outputs()
    assert value(out, "held_share") > 0.05 and value(out, "mean_shift_days") > 0
    assert value(out, "length_of_stay_days") > value(out_off, "length_of_stay_days")
    ep = run.history.episodes
    held = ep.loc[(ep["discharge_shift_days"] >= 1) & (ep["exit_reason"] == "planned"), ["client_id", "episode"]]
    a, b = paired(run.history, base.history, held)
    assert (b["exit_reason"] == "planned").all()
    assert (a["exit"] - a["treatment_start"]).mean() > (b["exit"] - b["treatment_start"]).mean() + 7

    def within(history, rows):
        nxt = _episodes(history).set_index(["client_id", "episode"])["next_referral"]
        gap = nxt.reindex(pd.MultiIndex.from_frame(rows[["client_id", "episode"]])).to_numpy() - rows["exit"]
        return (gap < 365).to_numpy(), (rows["exit"] + 365 <= history.end).to_numpy()

    (on_within, on_closed), (off_within, off_closed) = within(run.history, a), within(base.history, b)
    closed = on_closed & off_closed
    assert closed.sum() > 20
    # the relapse clock runs from readiness: a held client never re-presents within the window sooner
    assert (on_within[closed] <= off_within[closed]).all() and on_within[closed].sum() < off_within[closed].sum()
    assert value(out, "sustained_share") >= value(out_off, "sustained_share")


def test_cream_skimming_lowers_critical_starters_against_low_ones_only_when_the_provider_controls_intake(
        small, wk_pbr, blind):
    """Flat band weights make Critical clients less profitable than Low ones (they cost more): more of them are
    turned away, and fewer start for every Low client who does. (At the bid's costs every structured band is
    deflected a little, so Critical's share of all starters barely moves: 0.1030 against 0.1022 at seed 3.)"""
    scenario = only(small, "cream_skimming")
    provider = wk_pbr.with_changes({"band_weights": FLAT, "service_terms": {"assessment": "provider"}})
    assessor = provider.with_changes({"service_terms.intake": "assessor"})
    run = simulate_with_provider(scenario, provider, SEED)
    allocated = simulate_with_provider(scenario, assessor, SEED)
    out, base = run.outputs(), blind.outputs()
    assert value(out, "deflected_share", "critical") > max(0.01, value(out, "deflected_share", "low"))
    ratio = lambda o: value(o, "share_of_starters", "critical") / value(o, "share_of_starters", "low")  # noqa: E731
    assert ratio(out) < ratio(base)
    assert value(out, "share_starting", "critical") < value(base, "share_starting", "critical")
    assert value(out, "not_served") > 0 and value(base, "not_served") == 0
    # the assessor allocates every start: no discretion, nothing deflected, the contract-blind History
    assert fingerprint(allocated.history) == fingerprint(blind.history)
    assert mechanism_strength(allocated.history, allocated.provider)["deflected_share"] == 0


# --- damping -------------------------------------------------------------------------------------------------


def test_an_independent_lasar_removes_band_drift(small, wk_pbr):
    scenario = only(small, "band_drift")
    drift = {}
    for who in ("independent", "embedded", "provider"):
        run = simulate_with_provider(scenario, wk_pbr.with_changes({"service_terms.assessment": who}), SEED)
        drift[who] = mechanism_strength(run.history, run.provider)["band_drift_share"]
        if who == "provider":
            out = run.outputs()
            assert value(out, "drift_overpayment") > 0
    assert drift["independent"] == 0.0
    assert 0 < drift["embedded"] < drift["provider"]


def test_a_binding_cap_removes_the_incentive_at_the_margin(small, wk_pbr):
    scenario = small.with_changes({"behaviour": {"mode": "stress", **KEEN}})
    free = simulate_with_provider(scenario, wk_pbr, SEED, iterations=1)
    capped = simulate_with_provider(scenario, wk_pbr.with_changes({"pbr_cap": 0.05}), SEED, iterations=1)
    s_free = mechanism_strength(free.history, free.provider, free.cash)
    s_capped = mechanism_strength(capped.history, capped.provider, capped.cash)
    assert s_free["mean_pressure"] > 0.1 and s_free["distortion"] > 0.05
    assert s_capped["share_at_risk"] < 1e-6 and s_capped["mean_pressure"] < 1e-6
    assert s_capped["distortion"] == 0.0
    ep = capped.history.episodes
    assert not (ep["deflected"] | ep["parked"]).any() and (ep["discharge_shift_days"] == 0).all()
    assert s_capped["band_drift_share"] == 0 and not capped.history.reviews["misrecorded"].any()


def test_contact_floors_bound_parking(parking, parked, wk_pbr):
    runs = {floor: simulate_with_provider(
        parking, wk_pbr.with_changes({"service_terms.contact_floor_per_month": floor}), SEED) for floor in (3.0, 4.0)}
    runs[None] = parked
    out = {floor: run.outputs() for floor, run in runs.items()}
    assert value(out[None], "parked_share") > 0.01
    # a floor at the standard contacts leaves nothing to save: no parking
    assert value(out[4.0], "parked_share") == 0 and value(out[4.0], "contacts_per_client_month") == 4.0
    # a lower floor: parked clients keep 3 contacts a month, and parking costs them less
    assert value(out[3.0], "contacts_per_client_month") >= 3.0
    assert value(out[3.0], "contacts_per_client_month") > value(out[None], "contacts_per_client_month")
    assert value(out[3.0], "unplanned_exit_share") <= value(out[None], "unplanned_exit_share")


# --- paired comparisons, zero pressure, M7 -------------------------------------------------------------------


def test_comparisons_across_contracts_stay_paired_with_behaviour_on(small, wk_pbr):
    scenario = small.with_changes({"behaviour": {"mode": "stress", **KEEN}})
    high = load_contract(SCENARIOS / "contracts" / "high_stretch.toml")
    a = simulate_with_provider(scenario, wk_pbr, SEED, iterations=1)
    b = simulate_with_provider(scenario, high, SEED, iterations=1)
    assert fingerprint(a.history) != fingerprint(b.history)  # the provider responds to each contract differently
    people = ["client_id", "group", "male", "age", "injecting", "offending_rate", "source", "first_referral"]
    pd.testing.assert_frame_equal(a.history.clients[people], b.history.clients[people])
    first = ["client_id", "referral", "source", "assessed_band", "dependency_domain", "wider_needs_domain"]
    ea, eb = (h.episodes[h.episodes["episode"] == 0][first] for h in (a.history, b.history))
    pd.testing.assert_frame_equal(ea.reset_index(drop=True), eb.reset_index(drop=True))


def test_zero_pressure_is_the_contract_blind_run(small, blind):
    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    run = simulate_with_provider(small.with_changes({"behaviour": {"mode": "stress", **KEEN}}), block, SEED)
    assert fingerprint(run.history) == fingerprint(blind.history)
    strength = mechanism_strength(run.history, run.provider, run.cash)
    assert all(strength[m] == 0 for m in STRENGTH_SHARES) and strength["mean_pressure"] == 0


def test_cash_stress_cuts_capacity_as_a_fixed_point(small, wk_pbr):
    """60% of the West Kent value: the provider runs out of cash, cuts keyworkers quarter by quarter and freezes
    intake; the capacity path the last run used is the one its own cash implies. (At 55%, priced on the tender's
    volumes, which this 2-year warm-up's half-filled caseload cannot reach, and at the bid's costs, it hands the
    contract back in the first year instead; at 65% it cuts keyworkers without freezing intake.)"""
    poor = wk_pbr.with_changes({"annual_value": 2_400_000})
    scenario = only(small, "cash_stress")
    run = simulate_with_provider(scenario, poor, SEED, iterations=5)
    assert run.converged and run.iterations >= 2 and run.capacity_path
    assert capacity_changes(run.cash, scenario) == run.capacity_path
    caseload = run.history.capacity[run.history.capacity["resource"] == "caseload"]
    assert caseload["capacity"].iloc[-1] < caseload["capacity"].iloc[0]
    assert run.cash["intake_frozen"].any() and run.cash["stress"].max() > 0
    strength = mechanism_strength(run.history, run.provider, run.cash)
    assert strength["capacity_cut"] > 0.3 and strength["months_intake_frozen"] > 0
    out = run.outputs()
    assert value(out, "caseload_places", period=Y2) < value(out, "caseload_places", period=Y1)
    # the same design, the mechanism off: one run, nothing cut, the reserve still reported
    calm = simulate_with_provider(scenario.with_changes({"behaviour.cash_stress.enabled": False}), poor, SEED)
    assert calm.iterations == 1 and not calm.capacity_path and calm.cash["reserve"].min() < 0


# --- the audit ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit(small, wk_pbr):
    scenario = small.with_changes({"behaviour.provider": KEEN["provider"]})
    provider_run = wk_pbr.with_changes({"service_terms.assessment": "provider"})
    return audit_contract(scenario, provider_run, replications=2, seed=SEED, iterations=1, modes=("stress",))


def test_the_audit_reports_mechanisms_effects_features_and_the_tariff_check(audit):
    assert audit.modes == ("off", "stress")
    s = audit.strengths.set_index(["mode", "replication"])
    assert (s.loc["off", list(STRENGTH_SHARES)] == 0).all().all()
    assert (s.loc["stress", "mean_pressure"] > 0).all() and (s.loc["stress", "band_drift_share"] > 0).all()
    assert "band_drift_share" in audit.switched_on("stress")
    eff = audit.effects
    assert set(eff["mode"]) == {"stress"} and (eff["n"] <= 2).all()
    drift = eff[(eff["metric"] == "band_drift_share") & (eff["band"] == ALL) & (eff["period"] == TERM)].iloc[0]
    assert drift["off"] == 0 and drift["difference"] > 0 and drift["ci_low"] <= drift["difference"]
    features = audit.features.set_index("feature")
    assert "M6" in features.loc["Who assesses", "raises"]
    assert features.loc["Contact floor", "setting"] == "none"
    assert audit.tariff is not None and audit.tariff.table.index.tolist() == list(STRUCTURED_BANDS)
    report = audit_report(audit)
    for heading in ("## In brief", "## Which mechanisms switch on", "## What they do to the outputs",
                    "## The contract features responsible", "## Margin-neutral tariff check"):
        assert heading in report


def test_contract_features_follow_the_design(audit, wk_pbr):
    damped = wk_pbr.with_changes({"service_terms": {"contact_floor_per_month": 3, "audit_share": 0.1,
                                                    "verified_reviews": True, "wait_standard_days": 21},
                                  "income_floor": 0.9})
    f = contract_features(damped, audit.provider).set_index("feature")
    assert f.loc["Contact floor", "damps"] == "M2 parking"
    assert "M6" in f.loc["Audit with clawback", "damps"] and f.loc["Who assesses", "raises"] == ""
    assert f.loc["Verified TOP reviews", "damps"] and f.loc["Income floor", "damps"] == "M7"
    assert f.loc["Wait-time standard", "damps"] == "M5"


def test_audit_contract_command_writes_the_folder_whole(tmp_path, audit):
    out = tmp_path / "audit"
    write_audit(audit, out)
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "mechanisms.csv", "mechanism_summary.csv", "effects.csv", "key_effects.csv", "features.csv",
            "outputs.csv", "tariff_check.csv", "price_schedule.csv", "cash.csv", "plots"} <= names
    assert {p.name for p in (out / "plots").glob("*.png")} == {"mechanisms.png", "effects.png", "equity.png",
                                                               "cash.png"}
    effects = pd.read_csv(out / "effects.csv")
    assert len(effects) == len(audit.effects)
    assert not list(tmp_path.glob(".audit.*")), "no temporary folder is left behind"


@pytest.mark.slow
def test_pbrsim_audit_contract(tmp_path):
    from sim.cli import main

    scenario = tmp_path / "small.toml"
    scenario.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "small"\n'
                        f'contract = "{(SCENARIOS / "contracts" / "west_kent_pbr.toml").as_posix()}"\n'
                        "[horizon]\nwarmup_years = 2\nyears = 2\n")
    out = tmp_path / "audit"
    assert main(["audit-contract", str(scenario), "-n", "1", "--iterations", "1", "--out", str(out)]) == 0
    assert (out / "report.md").read_text().startswith("# What `west_kent_pbr` invites: small")
    assert main(["audit-contract", str(scenario), str(SCENARIOS / "contracts" / "no_such.toml"), "--out",
                 str(out)]) == 2
    assert (out / "report.md").exists()  # a failed run leaves the previous results


# --- sweeps -------------------------------------------------------------------------------------------------


def test_steep_weights_by_hand():
    design = {"critical": 1.8, "substantial": 1.3, "moderate": 0.75, "low": 0.45, "no_need": 0.0}
    for k in (-1.0, 0.0, math.log(4), 3.0):
        w = steep_weights(design, k)
        assert w["critical"] / w["low"] == pytest.approx(math.exp(k))
        assert np.mean([w[b] for b in STRUCTURED_BANDS]) == pytest.approx(1.075)
        assert w["no_need"] == 0.0
        ladder = [w[b] for b in ("low", "moderate", "substantial", "critical")]
        assert np.allclose(np.diff(np.log(ladder)), k / 3)
    assert steep_weights(design, 0.0)["critical"] == pytest.approx(1.075)


def test_derived_keys(wk_pbr):
    c = apply_derived(wk_pbr, {STEEPNESS_PATH: 0.0, PBR_SHARE_PATH: 0.4})
    assert [c.share(y) for y in range(1, c.years + 1)] == [0.4] * c.years
    assert len({round(c.band_weights[b], 9) for b in STRUCTURED_BANDS}) == 1
    with pytest.raises(KeyError, match="not a derived sweep key"):
        apply_derived(wk_pbr, {"contract.steepness": 1.0})


def sweep_raw(**kw):
    raw = {"name": "tiny_behaviour", "scenario": str(SCENARIOS / "west_kent.toml"),
           "contract": str(SCENARIOS / "contracts" / "west_kent_pbr.toml"), "design": "grid", "replications": 1,
           "seed": 1, "changes": {"horizon.warmup_years": 2, "horizon.years": 2, "contract.extension_years": 0,
                                  "contract.pbr_share.by_year": [0.5, 0.5], "behaviour.mode": "stress",
                                  "contract.service_terms.assessment": "embedded"},
           "parameters": [{"path": STEEPNESS_PATH, "values": [0.0, 3.0]}]}
    raw.update(kw)
    return raw


def test_a_behaviour_sweep_is_checked_before_it_runs():
    check_behaviour_sweep(sweep_from_dict(sweep_raw()))
    raw = sweep_raw()
    raw["changes"] = {**raw["changes"], "behaviour.mode": "off"}
    raw["parameters"] = [{"path": PBR_SHARE_PATH, "values": [0.5, 1.5]},
                         {"path": "contract.offending.pott", "low": 1, "high": 2, "levels": 2}]
    with pytest.raises(SweepError) as e:
        check_behaviour_sweep(sweep_from_dict(raw))
    text = str(e.value)
    assert "contract.offending.pott" in text


def test_the_shipped_behaviour_sweeps_are_valid():
    spec = load_behaviour_sweep(SCENARIOS / "sweeps" / "behaviour_band_weights.toml")
    steep = next(p for p in spec.parameters if p.path == STEEPNESS_PATH)
    assert min(steep.values) < 0 < max(steep.values) and any(abs(v - math.log(4)) < 1e-3 for v in steep.values)
    scenario, contract = spec.base()
    assert scenario.behaviour.mode != "off" and contract.terms.assessment != "independent"
    features = load_behaviour_sweep(SCENARIOS / "sweeps" / "behaviour_contract_features.toml")
    assert len(behaviour_sweep_specs(features)) == features.expected_points() * features.replications


@pytest.mark.slow
def test_a_behaviour_sweep_runs_through_the_experiment_machinery(tmp_path):
    spec = sweep_from_dict(sweep_raw())
    points, table = run_behaviour_sweep(spec, store=tmp_path / "runs")
    assert len(points) == 2 and set(table["point"]) == {0, 1}
    cats = set(table["category"].astype(str))
    assert {"all", "contract", BEHAVIOUR_CATEGORY, "behaviour.critical", "behaviour_change.all"} <= cats
    summary = write_behaviour_sweep(spec, points, table, tmp_path / "out")
    assert (tmp_path / "out" / "distortion_band_weight_steepness.png").stat().st_size > 0
    # steeper weights pay for upcoding where LASARS sits in the provider
    assert summary.loc[1, "band_drift_share"] > summary.loc[0, "band_drift_share"]
    again = run_behaviour_sweep(spec, store=tmp_path / "runs")[1]  # resumed from the store
    pd.testing.assert_frame_equal(table, again)


def test_compare_reports_what_a_responding_provider_changes(small, wk_pbr):
    """With the provider responding, compare's outcomes differ between designs (and say so); blind, they do not."""
    from sim.analysis.delivered import DELIVERED
    from sim.experiments.compare import compare

    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    responding = compare(small.with_changes({"behaviour": {"mode": "stress", **KEEN}}), [block, wk_pbr], 1, seed=SEED)
    assert not responding.outcomes_identical()
    d = responding.paired_differences().set_index("metric")
    assert (d.loc[list(DELIVERED), "mean_difference"] != 0).any()
    blind = compare(small, [block, wk_pbr], 1, seed=SEED)
    assert blind.outcomes_identical()
    assert (blind.paired_differences().set_index("metric").loc[list(DELIVERED), "mean_difference"] == 0).all()
