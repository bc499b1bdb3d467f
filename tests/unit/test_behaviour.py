"""Provider behaviour, the decision core (sim/behaviour.py): the [behaviour] schema and its errors, the price
schedule by hand on tiny contracts (and against settlement), gaming pressure, each mechanism's direction and
damping, the cash response, and the margin-neutral tariff check — on hand-built Histories (no SimPy) except
where a small simulated History is the point."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim import simulate
from sim.analysis.costs import delivery_costs
from sim.config.behaviour import (
    MECHANISMS,
    OFF,
    PROFIT_ORIENTATION,
    BehaviourError,
    BehaviourSpec,
    Level,
    ProviderProfile,
    behaviour_from_dict,
    load_behaviour,
    parameter_ranges,
)
from sim.config.contract import Contract, ContractError, ServiceTerms, contract_from_dict, load_contract
from sim.core.vocabulary import BANDS
from sim.money.settlement import settle
from sim.provider.cash import capacity_changes, cash_inputs, cash_response
from sim.provider.decisions import (
    accept_probability,
    band_drift_probability,
    band_weight_gap,
    defer_probability,
    deflection_fate,
    discharge_signal,
    discretion,
    effort_multipliers,
    effort_prices,
    effort_shares,
    fast_track_days,
    gaming_pressure,
    hold_days,
    hold_probability,
    independence,
    intake_throttle,
    margin_signal,
    misrecord_probability,
    parking_effects,
    parking_probability,
    parking_stakes,
    postpone_probability,
    recode_probability,
    representation_risk,
    reserved_share,
    review_frequency_multiplier,
    threshold_distance,
    throttled_delay,
)
from sim.provider.model import ProviderModel
from sim.provider.pricing import price_schedule, share_at_risk
from sim.provider.profiles import band_profile, margin_neutral_weights

from tests.builders import Build, small_scenario
from tests.conftest import SCENARIOS

MONTH = 365.25 / 12
WEIGHTS = {"critical": 2.0, "substantial": 1.5, "moderate": 1.0, "low": 0.5, "no_need": 0.0}
PROFILE = ProviderProfile(discount_per_month=0.01)


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def tiny(outcomes=None, **kw) -> Contract:
    """£1.2m a year for two years, 25% at risk (a £300k pot), the WEIGHTS above."""
    raw = {"name": "tiny", "annual_value": 1_200_000.0, "term_years": 2, "pbr_share": {"by_year": [0.25, 0.25]},
           "band_weights": WEIGHTS, "outcomes": outcomes or {}}
    raw.update(kw)
    return Contract.model_validate(raw)


PLANNED = {"measure": "planned_exit", "price": 1000.0, "payment": "quarterly_in_arrears", "once_per": "episode"}
SUSTAINED = {"measure": "sustained_recovery", "share_of_pot": 0.5, "expected_volume": 100.0, "window_days": 365,
             "lag_days": 91, "payment": "on_evidence", "once_per": "episode"}


def row(schedule, outcome, band, year=1):
    r = schedule[(schedule["outcome"] == outcome) & (schedule["band"] == band) & (schedule["contract_year"] == year)]
    assert len(r) == 1
    return r.iloc[0]


def volumes(outcome, by_band):
    return pd.DataFrame([(outcome, b, float(by_band.get(b, 0.0))) for b in BANDS], columns=["outcome", "band",
                                                                                             "volume"])


@pytest.fixture(scope="module")
def scenario(west_kent):
    return west_kent


@pytest.fixture(scope="module")
def base():
    return BehaviourSpec(mode="base").resolve()


# --- schema ---------------------------------------------------------------------------------------------------


def test_off_by_default_and_every_mechanism_off_with_it():
    spec = BehaviourSpec()
    assert spec.mode == "off"
    off = spec.resolve()
    assert not off.active
    assert not any(getattr(off, m).enabled for m in MECHANISMS)
    on = spec.resolve("base")
    assert on.active and all(getattr(on, m).enabled for m in MECHANISMS)


def test_a_number_sets_both_modes_a_table_one_and_the_mode_picks():
    spec = behaviour_from_dict({"mode": "stress", "parking": {"contact_multiplier": 0.6,
                                                                "max_parked_share": {"stress": 0.55}}})
    assert spec.parking.contact_multiplier == Level(base=0.6, stress=0.6)
    assert spec.parking.max_parked_share == Level(base=0.3, stress=0.55)  # base keeps its default
    assert spec.resolve().parking.max_parked_share == 0.55
    assert spec.resolve("base").parking.max_parked_share == 0.3
    # stress-only mechanisms are silent in the base mode
    base = spec.resolve("base").discharge_timing
    assert base.max_defer == 0.0 and base.max_recode == 0.0
    assert spec.resolve().discharge_timing.max_defer == 0.2


def test_a_disabled_mechanism_stays_off_in_any_mode():
    spec = behaviour_from_dict({"mode": "stress", "band_drift": {"enabled": False}})
    assert not spec.resolve().band_drift.enabled and spec.resolve().parking.enabled


def test_profit_orientation_by_provider_type_unless_given():
    lam = {t: ProviderProfile(type=t).lam for t in PROFIT_ORIENTATION}
    assert lam["for_profit"] > lam["voluntary"] > lam["nhs_trust"] > 0
    assert ProviderProfile(type="for_profit", profit_orientation=0.1).lam == 0.1


def test_validation_errors_name_the_file_the_key_and_the_value():
    raw = {"behaviour": {"mode": "sometimes",
                         "parking": {"max_parked_share": {"base": 0.45}},
                         "band_drift": {"price_respons": 1.0},
                         "provider": {"profit_orientation": 1.5},
                         "effort_shift": {"base_share_unpaid_care": 0.5}}}
    with pytest.raises(BehaviourError) as e:
        behaviour_from_dict(raw, "site.toml")
    text = str(e.value)
    assert text.startswith("invalid behaviour")
    assert "site.toml: behaviour.parking.max_parked_share = " in text
    assert "base value 0.45 is outside the base range [0.1, 0.4]" in text
    assert "behaviour.band_drift.price_respons = 1.0: unknown key (did you mean 'price_response'?)" in text
    assert "behaviour.provider.profit_orientation = 1.5" in text
    assert "behaviour.mode = 'sometimes'" in text
    assert "base effort shares must sum to 1" in text


def test_a_stress_value_is_checked_against_the_stress_range():
    behaviour_from_dict({"parking": {"max_parked_share": {"stress": 0.6}}})  # the stress range's top
    with pytest.raises(BehaviourError, match=r"stress value 0.7 is outside the stress range \[0.1, 0.6\]"):
        behaviour_from_dict({"parking": {"max_parked_share": {"stress": 0.7}}})


def test_load_behaviour_reads_a_file_with_extends_and_names_the_file_a_bad_value_came_from(tmp_path):
    (tmp_path / "base.toml").write_text('[behaviour]\nmode = "base"\n[behaviour.gatekeeping]\nmax_throttle = 0.9\n')
    (tmp_path / "site.toml").write_text('extends = "base.toml"\n[behaviour.provider]\ntype = "for_profit"\n')
    with pytest.raises(BehaviourError) as e:
        load_behaviour(tmp_path / "site.toml")
    assert f"{tmp_path / 'base.toml'}: behaviour.gatekeeping.max_throttle" in str(e.value)
    (tmp_path / "base.toml").write_text('[behaviour]\nmode = "base"\n[behaviour.gatekeeping]\nmax_throttle = 0.4\n'
                                        '[horizon]\nyears = 4\n')  # a scenario's other sections are not read
    spec = load_behaviour(tmp_path / "site.toml")
    assert spec.mode == "base" and spec.provider.type == "for_profit"
    assert spec.gatekeeping.max_throttle.base == 0.4
    (tmp_path / "flat.toml").write_text('mode = "stress"\n[cash_stress]\nenabled = false\n')
    assert not load_behaviour(tmp_path / "flat.toml").resolve().cash_stress.enabled
    with pytest.raises(BehaviourError, match="no such file"):
        load_behaviour(tmp_path / "missing.toml")


def test_every_default_lies_in_its_ranges_and_has_a_source():
    table = parameter_ranges()
    assert set(table["mechanism"]) == set(MECHANISMS)
    assert ((table["base_low"] <= table["base"]) & (table["base"] <= table["base_high"])).all()
    assert ((table["stress_low"] <= table["stress"]) & (table["stress"] <= table["stress_high"])).all()
    assert table["source"].str.len().gt(0).all()
    # every mechanism is stressed somewhere
    stressed = table[table["stress"] != table["base"]]["mechanism"]
    assert set(stressed) == set(MECHANISMS)


# --- contract service terms ------------------------------------------------------------------------------------------


def test_service_terms_default_to_the_simulated_system_and_validate():
    c = tiny()
    assert c.service_terms is None and c.terms == ServiceTerms()
    assert c.terms.assessment == "independent" and c.terms.contact_floor_per_month is None
    t = tiny(service_terms={"assessment": "provider", "audit_share": 0.1, "contact_floor_per_month": 2}).terms
    assert (t.assessment, t.audit_share, t.contact_floor_per_month) == ("provider", 0.1, 2)
    with pytest.raises(ContractError) as e:
        contract_from_dict({**tiny().raw(), "service_terms": {"assessment": "self", "audit_share": 2}}, "c.toml")
    assert "c.toml: service_terms.assessment = 'self'" in str(e.value)
    assert "c.toml: service_terms.audit_share = 2" in str(e.value)


def test_service_terms_change_no_payment(scenario):
    b = Build()
    c1 = b.client(1)
    b.episode(c1, -300, band="critical", start=-290, exit=40, reason="planned")
    h = b.finish()
    plain = settle(tiny({"planned": PLANNED}), h, scenario).payments
    terms = settle(tiny({"planned": PLANNED}, service_terms={"assessment": "provider", "audit_share": 0.2}), h,
                   scenario).payments
    pd.testing.assert_frame_equal(plain, terms)


# --- the price schedule ---------------------------------------------------------------------------------------------


def test_price_schedule_by_hand():
    s = price_schedule(tiny({"planned": PLANNED, "sustained": SUSTAINED}), profile=PROFILE)
    assert len(s) == 2 * 2 * len(BANDS)
    r = row(s, "planned", "critical")
    # £1,000 x weight 2; paid at the end of the quarter: on average 1.5 months after the exit
    assert (r.unit_price, r.weight, r.gross) == (1000.0, 2.0, 2000.0)
    assert r.delay_days == pytest.approx(1.5 * MONTH)
    assert r.discount == pytest.approx(1.01 ** -1.5)
    assert r.value == pytest.approx(2000 * 1.01 ** -1.5) and r.present_value == pytest.approx(r.value)
    assert np.isnan(r.volume) and r.cap_factor == 1.0 and r.floor_factor == 1.0  # no volumes: caps slack
    r = row(s, "sustained", "low", year=2)
    # £300k pot x 0.5 / 100 = £1,500 x 0.5; evidenced a year after the exit, paid 91 days later
    assert r.unit_price == pytest.approx(1500.0) and r.gross == pytest.approx(750.0)
    assert (r.delay_days, r.evidence_days) == (91.0, 365.0)
    assert r.value == pytest.approx(750 * 1.01 ** (-91 / MONTH))
    assert r.present_value == pytest.approx(r.value * 1.01 ** (-365 / MONTH))
    assert row(s, "planned", "no_need").value == 0.0


def test_escalator_paid_after_the_year_ends():
    esc = {**PLANNED, "escalator": {"baseline_rate": 0.1, "thresholds": [0.0, 0.1], "multipliers": [0.5, 1.0, 1.5]}}
    s = price_schedule(tiny({"planned": esc}, reconciliation_lag_days=30), profile=PROFILE)
    r = row(s, "planned", "moderate")
    assert r.multiplier == 1.0  # at the baseline rate
    assert r.delay_days == pytest.approx(365.25 / 2 + 30)


def test_prices_from_the_baseline_need_a_history_or_volumes():
    c = tiny({"planned": {**PLANNED, "price": None, "share_of_pot": 0.4, "expected_volume": "baseline"}})
    with pytest.raises(ValueError, match="need a contract-blind History"):
        price_schedule(c)
    s = price_schedule(c, volumes=volumes("planned", {"critical": 10, "low": 20}), profile=PROFILE)
    # the band-weighted baseline volume: 10 x 2 + 20 x 0.5 = 30; £300k x 0.4 / 30 = £4,000
    assert row(s, "planned", "critical").unit_price == pytest.approx(4000.0)
    assert row(s, "planned", "critical").gross == pytest.approx(8000.0)


def test_the_schedule_prices_as_settlement_pays(scenario):
    """Baseline pricing from a History: the schedule's gross price is what settlement pays for that outcome."""
    b = Build()
    for cid, band in ((1, "critical"), (2, "critical"), (3, "low")):  # planned exits in the baseline year
        b.episode(b.client(cid), -330, band=band, start=-320, exit=-100, reason="planned")
    for cid, band in ((4, "critical"), (5, "low")):  # and in contract year 1
        b.episode(b.client(cid), 10, band=band, start=20, exit=200, reason="planned")
    h = b.finish()
    c = tiny({"planned": {**PLANNED, "price": None, "share_of_pot": 0.4, "expected_volume": "baseline"}})
    s = price_schedule(c, scenario, h)
    paid = settle(c, h, scenario).payments
    paid = paid[paid["kind"] == "outcome"].set_index("band")["amount"]
    assert row(s, "planned", "critical").volume == 2 and row(s, "planned", "low").volume == 1
    assert row(s, "planned", "critical").gross == pytest.approx(paid["critical"])
    assert row(s, "planned", "low").gross == pytest.approx(paid["low"])
    assert paid["critical"] == pytest.approx(300_000 * 0.4 / (2 * 2 + 1 * 0.5) * 2)


def test_a_cap_that_binds_takes_the_value_at_the_margin_to_nothing():
    vol = volumes("planned", {"critical": 10})  # expected £20,000 a year, variance 2,000^2 x 10
    sd = math.sqrt(2000.0 ** 2 * 10)
    factor = {}
    for cap in (1e9, 20_000.0, 10_000.0, 1.0):
        s = price_schedule(tiny({"planned": {**PLANNED, "cap_per_year": cap}}), volumes=vol, profile=PROFILE)
        factor[cap] = row(s, "planned", "critical").cap_factor
        assert factor[cap] == pytest.approx(phi((cap - 20_000) / sd))
        assert row(s, "planned", "critical").value == pytest.approx(2000 * 1.01 ** -1.5 * factor[cap])
    assert factor[1e9] == 1.0 and factor[20_000.0] == pytest.approx(0.5) and factor[1.0] < 0.001
    # the PbR cap (a multiple of the £300k pot) and the term cap act alike
    many = volumes("planned", {"critical": 200})  # £400,000 expected a year against a £300,000 pot
    s = price_schedule(tiny({"planned": PLANNED}, pbr_cap=1.0), volumes=many, profile=PROFILE)
    assert row(s, "planned", "critical").cap_factor == pytest.approx(phi(-100_000 / math.sqrt(2000.0 ** 2 * 200)))
    s = price_schedule(tiny({"planned": PLANNED}, term_cap=1_000_000), volumes=many, profile=PROFILE)
    assert row(s, "planned", "critical", 2).cap_factor == pytest.approx(phi(200_000 / math.sqrt(2000.0 ** 2 * 400)))


def test_income_floor_and_cap_bound_the_value_of_an_outcome():
    vol = volumes("planned", {"critical": 100})  # £200,000 of outcomes on a £900,000 core
    sd = math.sqrt(2000.0 ** 2 * 100)
    s = price_schedule(tiny({"planned": PLANNED}, income_floor=1.0), volumes=vol, profile=PROFILE)
    # topped up to £1.2m: one more outcome only lowers the top-up unless income tops the floor anyway
    assert row(s, "planned", "critical").floor_factor == pytest.approx(1 - phi((1_200_000 - 1_100_000) / sd))
    s = price_schedule(tiny({"planned": PLANNED}, income_cap=0.9), volumes=vol, profile=PROFILE)
    assert row(s, "planned", "critical").floor_factor == pytest.approx(phi((1_080_000 - 1_100_000) / sd))


def test_clawback_risk_from_the_history(scenario):
    b = Build()
    for cid in (1, 2):
        b.episode(b.client(cid), 0, band="moderate", start=10, exit=100, reason="planned")
    b.episode(b.by_id[1], 150, band="moderate")  # client 1 re-presents 50 days after the exit
    h = b.finish()
    c = tiny({"planned": {**PLANNED, "clawback_days": 90}})
    r = row(price_schedule(c, scenario, h, profile=PROFILE), "planned", "moderate")
    assert r.clawback_risk == pytest.approx(0.5)
    assert r.value == pytest.approx(1000 * 1.01 ** -1.5 * 0.5 * r.cap_factor)


def test_share_at_risk():
    vol = volumes("planned", {"critical": 10})
    c = tiny({"planned": PLANNED})
    assert share_at_risk(c, price_schedule(c, volumes=vol)).tolist() == [0.25, 0.25]
    block = tiny({"planned": PLANNED}, pbr_share={"by_year": [0.0, 0.0]})
    assert share_at_risk(block, price_schedule(block, volumes=vol)).tolist() == [0.0, 0.0]
    nothing_priced = tiny()
    assert share_at_risk(nothing_priced, price_schedule(nothing_priced)).tolist() == [0.0, 0.0]
    capped = tiny({"planned": {**PLANNED, "cap_per_year": 1.0}})
    assert share_at_risk(capped, price_schedule(capped, volumes=vol)).max() < 0.25 * 0.001


# --- gaming pressure ---------------------------------------------------------------------------------------------


def test_pressure_by_hand(base):
    # voluntary sector (0.3), half at risk, nine months in (1 - 1/e of the ramp), half stressed
    g = gaming_pressure(base, 0.5, 9 * MONTH, stress=0.5)
    assert float(g) == pytest.approx(0.3 * 0.5 * 1.5 * (1 - math.exp(-1)))
    assert gaming_pressure(base, np.array([0.5, 1.0]), 1e6).tolist() == pytest.approx([0.15, 0.3])
    assert float(gaming_pressure(BehaviourSpec(provider={"profit_orientation": 1}).resolve("base"),
                                   1.0, 1e6, stress=1.0)) == 1.0  # capped at 1


def test_pressure_is_exactly_zero_when_off_before_the_start_or_with_nothing_at_risk(base):
    t = np.array([-100.0, 0.0, 100.0, 1000.0])
    assert (gaming_pressure(OFF, 1.0, t, stress=1.0) == 0).all()
    assert (gaming_pressure(None, 1.0, t) == 0).all()
    assert gaming_pressure(base, 1.0, t)[:2].tolist() == [0.0, 0.0]
    assert (gaming_pressure(base, 0.0, t, stress=1.0) == 0).all()


@pytest.fixture(scope="module")
def small():
    """A small West Kent and its contract-blind History: two years of warm-up, three reported."""
    scenario = small_scenario(years=3, warmup_years=2)
    return scenario, simulate(scenario, 3)


STRESS = BehaviourSpec(mode="stress").resolve()


def test_block_contract_means_no_pressure(small):
    scenario, h = small
    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    model = ProviderModel.build(scenario, block, h, behaviour=STRESS)
    t = np.linspace(-100, 1000, 12)
    assert (model.pressure(t) == 0).all()
    bands = np.arange(len(BANDS))
    assert (model.accept_probability(bands, 400.0) == 1.0).all()
    assert (model.parking_probability(bands, 400.0) == 0.0).all()
    assert (model.intake_throttle(bands, 400.0, 0.99) == 1.0).all()
    assert (model.band_drift_probability(np.zeros(5), bands, 400.0) == 0.0).all()
    assert (model.discharge_shift_days(bands, 400.0, 0.3, 0.2, 1e-9) == 0.0).all()
    effects = model.review_effects(0, 400.0)
    assert (effects.frequency, effects.postpone, effects.misrecord) == (1.0, 0.0, 0.0)
    assert (effects.multipliers == 1.0).all() and float(model.reserved_share(400.0)) == 0.0
    wk = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")
    on = ProviderModel.build(scenario, wk, h, behaviour=BehaviourSpec(mode="base").resolve())
    assert (on.pressure(t[t > 0]) > 0).all() and (on.pressure(t[t <= 0]) == 0).all()
    assert (ProviderModel.build(scenario, wk, h).pressure(t) == 0).all()  # the scenario's default: off


def test_the_provider_model_reads_the_contract(small):
    scenario, h = small
    wk = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")
    provider_run = wk.with_changes({"service_terms": {"assessment": "provider"}})
    model = ProviderModel.build(scenario, provider_run, h, behaviour=STRESS)
    t = 600.0
    bands = np.arange(4)
    margin = model.margin(bands, t)
    accept = model.accept_probability(bands, t)
    assert (accept < 1).all() and np.argmin(accept) == np.argmin(margin)
    # a client the provider believes will do well is worth more to it
    assert float(model.margin(0, t, z=1.0)) > float(model.margin(0, t, z=0.0)) > float(model.margin(0, t, z=-1.0))
    drift = model.band_drift_probability(np.full(4, 0.1), bands, t)
    assert drift[0] == 0.0 and (drift[1:] > 0).all()  # Critical has no band above it
    independent = ProviderModel.build(scenario, wk, h, behaviour=STRESS)
    assert (independent.band_drift_probability(np.full(4, 0.1), bands, t) == 0.0).all()
    assert (independent.accept_probability(bands, t) > accept).all()


def test_completion_without_a_sustained_test_fast_tracks_and_a_heavy_sustained_outcome_holds(small):
    scenario, h = small
    weights = {"band_weights": {b: (0.0 if b == "no_need" else 1.0) for b in BANDS}}
    completion = tiny({"planned": {**PLANNED, "price": 3000.0}}, **weights)
    sustained = tiny({"planned": {**PLANNED, "price": 100.0},
                      "sustained": {**SUSTAINED, "share_of_pot": None, "expected_volume": None, "price": 20000.0}},
                     **weights)
    bands, t = np.arange(4), 500.0
    fast = ProviderModel.build(scenario, completion, h, behaviour=STRESS)
    hold = ProviderModel.build(scenario, sustained, h, behaviour=STRESS)
    assert (fast.discharge_signal(bands, t, 0.3, 0.25) < 0).all()
    assert (fast.discharge_shift_days(bands, t, 0.3, 0.25, 0.5) < 0).all()
    assert (hold.discharge_signal(bands, t, 0.3, 0.25) > 0).all()
    assert (hold.discharge_shift_days(bands, t, 0.3, 0.25, 1e-6) > 0).all()
    assert not fast.reviews_paid() and not hold.reviews_paid()
    assert fast.review_effects(0, t).frequency == 1.0


# --- M1 cream-skimming -----------------------------------------------------------------------------------------------


def test_acceptance_falls_with_the_margin_and_the_pressure():
    kw = dict(discretion=0.5, max_deflected=0.25, sharpness=4.0)
    margins = np.array([-1.0, 0.0, 1.0])
    p = accept_probability(margins, 0.4, **kw)
    assert (np.diff(p) > 0).all() and (p < 1).all()
    assert float(accept_probability(0.0, 0.4, **kw)) == pytest.approx(1 - 0.5 * 0.25 * 0.4 * 0.5)
    assert float(accept_probability(-1.0, 0.8, **kw)) < float(accept_probability(-1.0, 0.4, **kw))
    assert (accept_probability(margins, 0.0, **kw) == 1.0).all()


def test_only_provider_discretion_deflects(base):
    m = base.cream_skimming
    d = {a: discretion(ServiceTerms(assessment=a), m) for a in ("independent", "embedded", "provider")}
    assert d == {"independent": 0.05, "embedded": 0.25, "provider": 0.5}
    assert discretion(ServiceTerms(assessment="provider", intake="assessor"), m) == 0.0
    kw = dict(max_deflected=0.25, sharpness=4.0)
    assert float(accept_probability(-2.0, 0.5, discretion=0.0, **kw)) == 1.0
    assert float(accept_probability(-2.0, 0.5, discretion=d["provider"], **kw)) < \
        float(accept_probability(-2.0, 0.5, discretion=d["independent"], **kw)) < 1.0


def test_deflection_fate():
    signposted, delay = deflection_fate(np.array([0.2, 0.7]), np.array([0.5, 0.5]), signposted_share=0.5,
                                          delay_mean_days=21.0)
    assert signposted.tolist() == [True, False]
    assert delay.tolist() == pytest.approx([0.0, 21.0 * math.log(2)])


# --- M2 parking ---------------------------------------------------------------------------------------------------


def test_parking_rises_as_the_revenue_at_stake_falls(base):
    m = base.parking
    kw = dict(max_parked=m.max_parked_share, sharpness=m.sharpness)
    lost = np.array([0.0, 20.0, 40.0, 80.0])
    p = parking_probability(lost, 40.0, 0.5, **kw)
    assert (np.diff(p) < 0).all()
    assert float(p[2]) == pytest.approx(0.5 * 0.3 * 0.5)  # Delta R = Delta c: logistic(0)
    assert (parking_probability(lost, 40.0, 0.0, **kw) == 0.0).all()


def test_parking_effects_and_stakes_by_hand(base):
    e = parking_effects(base.parking)
    assert (e.contact_multiplier, e.outcome_multiplier, e.drop_out_multiplier, e.effort_cut) == \
        pytest.approx((0.5, 0.75, 1.3, 0.5))
    lost, saved = parking_stakes(1200.0, 12.0, 80.0, e)
    assert (lost, saved) == pytest.approx((0.25 * 100.0, 0.5 * 80.0))


def test_contact_floors_bound_parking(base):
    m = base.parking
    free = parking_effects(m)
    half = parking_effects(m, contact_floor_per_month=3.0)  # 3 of 4 contacts: at most a quarter cut
    full = parking_effects(m, contact_floor_per_month=4.0)
    assert half.contact_multiplier == 0.75 and half.effort_cut == pytest.approx(0.25)
    assert free.outcome_multiplier < half.outcome_multiplier < full.outcome_multiplier == 1.0
    assert free.drop_out_multiplier > half.drop_out_multiplier > full.drop_out_multiplier == 1.0
    assert full.contact_multiplier == 1.0 and full.effort_cut == 0.0
    _, saved = parking_stakes(100.0, 12.0, 80.0, full)
    assert float(parking_probability(0.0, saved, 1.0, max_parked=0.6, sharpness=4.0)) == 0.0


# --- M3 effort shift ------------------------------------------------------------------------------------------------


def test_effort_shifts_towards_what_is_paid(base):
    m = base.effort_shift
    shares0 = np.array([0.35, 0.25, 0.40])
    prices = np.array([900.0, 300.0, 0.0])
    s = effort_shares(prices, 0.5, base_shares=shares0, elasticity=m.elasticity)
    assert s.sum() == pytest.approx(1.0)
    assert s[0] > 0.35 and s[2] < 0.40  # towards paid reviews, away from unpaid care
    stronger = effort_shares(prices, 1.0, base_shares=shares0, elasticity=m.elasticity)
    assert stronger[0] > s[0]
    assert (effort_shares(prices, 0.0, base_shares=shares0, elasticity=m.elasticity) == shares0).all()
    assert (effort_shares(np.zeros(3), 1.0, base_shares=shares0, elasticity=2.5) == pytest.approx(shares0))
    mult = effort_multipliers(s, shares0, 0.5)
    assert mult[0] > 1 > mult[2]
    assert (effort_multipliers(shares0, shares0, 0.5) == 1.0).all()
    assert effort_prices({"abstinence": 100.0, "planned_exit": 50.0, "bbv_tested": 5.0}).tolist() == [100, 50, 5]


def test_review_timing_and_misrecording_need_paid_self_reported_reviews(base):
    m = base.effort_shift
    assert float(review_frequency_multiplier(0.4, True, max_review_frequency=1.5)) == pytest.approx(1.2)
    assert float(review_frequency_multiplier(0.4, False, max_review_frequency=1.5)) == 1.0
    assert float(postpone_probability(0.4, True, False, max_postpone=m.max_postpone)) == pytest.approx(0.12)
    assert float(postpone_probability(0.4, True, True, max_postpone=m.max_postpone)) == 0.0
    p = float(misrecord_probability(0.5, True, False, 0.0, max_misrecord=0.2))
    assert p == pytest.approx(0.1)
    assert float(misrecord_probability(0.5, True, False, 0.5, max_misrecord=0.2)) == pytest.approx(p / 2)
    assert float(misrecord_probability(0.5, True, True, 0.0, max_misrecord=0.2)) == 0.0


# --- M4 discharge timing -----------------------------------------------------------------------------------------


def test_discharge_signal_by_hand():
    s = discharge_signal(1000.0, 2000.0, 365.0, 0.3, 0.2, hold_days=28.0, revenue_scale=1000.0,
                           discount_per_month=0.0)
    assert float(s) == pytest.approx((1000 + 2000 * 0.8 - 1000 - 2000 * 0.7) / 1000)
    cost = discharge_signal(1000.0, 0.0, 365.0, 0.3, 0.2, hold_days=MONTH, revenue_scale=1000.0,
                              discount_per_month=0.0, holding_cost_per_month=100.0)
    assert float(cost) == pytest.approx(-0.1)


def test_the_discharge_response_changes_sign_with_the_prices():
    kw = dict(hold_days=28.0, revenue_scale=1000.0, discount_per_month=0.005, holding_cost_per_month=50.0)
    heavy_sustained = discharge_signal(500.0, 4000.0, 365.0, 0.4, 0.3, **kw)
    completion_only = discharge_signal(2000.0, 0.0, 365.0, 0.4, 0.3, **kw)
    assert heavy_sustained > 0 > completion_only
    g = 0.5
    assert float(hold_probability(heavy_sustained, g, sharpness=4)) > 0
    assert float(hold_probability(completion_only, g, sharpness=4)) == 0
    assert float(fast_track_days(completion_only, g, sharpness=4, max_fast_track_weeks=8)) > 0
    assert float(fast_track_days(heavy_sustained, g, sharpness=4, max_fast_track_weeks=8)) == 0
    assert float(hold_probability(0.0, g, sharpness=4)) == 0.0  # indifferent: neither
    assert float(fast_track_days(-10.0, 0.5, sharpness=4, max_fast_track_weeks=8)) == pytest.approx(
        7 * 8 * 0.5 * math.tanh(20))


def test_hold_days_are_whole_steps_drawn_from_one_uniform_up_to_the_maximum():
    signal = 1.0
    p = float(hold_probability(signal, 0.6, sharpness=4))
    assert p == pytest.approx(0.6 * math.tanh(2))
    u = np.array([0.99, p * 1.0001, p * 0.9999, p ** 2 * 0.9999, 1e-300])
    days = hold_days(signal, 0.6, u, sharpness=4, hold_step_days=28, max_hold_weeks=26)
    assert days.tolist() == [0.0, 0.0, 28.0, 56.0, 6 * 28.0]  # at most floor(26 x 7 / 28) = 6 steps
    assert (hold_days(signal, 0.0, u, sharpness=4, hold_step_days=28, max_hold_weeks=26) == 0).all()
    rng = np.random.default_rng(1)
    draws = hold_days(signal, 0.6, rng.random(200_000), sharpness=4, hold_step_days=28, max_hold_weeks=1000)
    assert draws.mean() / 28 == pytest.approx(p / (1 - p), rel=0.02)  # geometric


def test_representation_risk_falls_with_abstinence_when_the_relapse_hazard_falls():
    exponential = lambda t: np.exp(-np.asarray(t) / 700.0)  # noqa: E731
    flat = representation_risk(exponential, np.array([0.0, 90.0]), 365.0)
    assert flat.tolist() == pytest.approx([1 - math.exp(-365 / 700)] * 2)
    weibull = lambda t: np.exp(-(np.asarray(t) / 700.0) ** 0.6)  # noqa: E731
    falling = representation_risk(weibull, np.array([0.0, 90.0, 180.0]), 365.0, represent_probability=0.5)
    assert falling[0] > falling[1] > falling[2] > 0
    assert falling[0] == pytest.approx(0.5 * (1 - math.exp(-(365 / 700) ** 0.6)))


def test_deferral_and_recoding_are_stress_settings(base):
    stress = BehaviourSpec(mode="stress").resolve().discharge_timing
    m = base.discharge_timing
    days = np.array([-5.0, 10.0, 56.0, 60.0])
    assert (defer_probability(0.5, days, True, max_defer=m.max_defer, within_days=56) == 0).all()
    p = defer_probability(0.5, days, True, max_defer=stress.max_defer, within_days=56)
    assert p.tolist() == pytest.approx([0.0, 0.1, 0.1, 0.0])
    assert (defer_probability(0.5, days, False, max_defer=stress.max_defer, within_days=56) == 0).all()
    assert float(recode_probability(0.5, max_recode=m.max_recode)) == 0.0
    assert float(recode_probability(0.5, max_recode=stress.max_recode)) == pytest.approx(0.025)


# --- M5 gatekeeping ----------------------------------------------------------------------------------------------


def test_intake_is_throttled_for_low_margins_only_when_capacity_is_tight(base):
    m = base.gatekeeping
    kw = dict(utilisation_threshold=m.utilisation_threshold, max_throttle=m.max_throttle, sharpness=4.0)
    margins = np.array([-1.0, 0.0, 1.0])
    tight = intake_throttle(margins, 0.5, 0.95, **kw)
    assert (np.diff(tight) > 0).all() and (tight < 1).all()
    assert float(tight[1]) == pytest.approx(1 - 0.3 * 0.5 * 0.5)
    assert (intake_throttle(margins, 0.5, 0.80, **kw) == 1.0).all()
    assert (intake_throttle(margins, 0.0, 0.99, **kw) == 1.0).all()
    # an engagement fee lifts every start's margin, so the throttle eases
    fee = margin_signal(300.0, 1000.0, 0.25, 500.0) - margin_signal(0.0, 1000.0, 0.25, 500.0)
    assert fee == pytest.approx(0.6)
    assert float(intake_throttle(-0.5 + fee, 0.5, 0.95, **kw)) > float(intake_throttle(-0.5, 0.5, 0.95, **kw))
    assert float(reserved_share(0.5, reserved_share=m.reserved_share)) == pytest.approx(0.15)


def test_a_wait_standard_bounds_the_throttled_delay():
    assert throttled_delay(10.0, 0.5).tolist() == 20.0
    assert float(throttled_delay(10.0, 0.5, wait_standard_days=15.0)) == 15.0
    assert float(throttled_delay(20.0, 0.5, wait_standard_days=15.0)) == 20.0  # never shorter than it was
    assert float(throttled_delay(10.0, 1.0, wait_standard_days=5.0)) == 10.0


# --- M6 band drift -------------------------------------------------------------------------------------------------


def test_threshold_distance_by_hand():
    cum = np.array([0.1, 0.4, 0.8, 0.95, 1.0])
    d = threshold_distance(np.array([0.05, 0.13, 0.39, 0.5]), cum)
    assert d[0] == np.inf
    assert d[1:].tolist() == pytest.approx([0.1, 29 / 30, 0.25])


def test_band_weight_gap_by_hand():
    gap = band_weight_gap({"critical": 1.8, "substantial": 1.3, "moderate": 0.75, "low": 0.45, "no_need": 0.0})
    assert gap.tolist() == pytest.approx(np.array([0.0, 0.5, 0.55, 0.3, 0.45]) / 1.075)
    assert (band_weight_gap({b: 1.0 for b in BANDS})[:4] == 0).all()


def test_band_drift_only_where_the_provider_assesses_and_damped_by_audit(base):
    m = base.band_drift
    kw = dict(eligibility_margin=m.eligibility_margin, baseline_drift=m.baseline_drift,
              price_response=m.price_response)
    near, far = 0.2, 0.8
    i = {a: independence(ServiceTerms(assessment=a), m) for a in ("independent", "embedded", "provider")}
    assert i == {"independent": 1.0, "embedded": 0.5, "provider": 0.0}
    p = float(band_drift_probability(near, 0.5, 0.4, independence=0.0, audit_share=0.0, **kw))
    assert p == pytest.approx(0.02 + 0.5 * 0.4 * 0.5)
    assert float(band_drift_probability(near, 0.5, 0.4, independence=0.5, audit_share=0.0, **kw)) == \
        pytest.approx(p / 2)
    assert float(band_drift_probability(near, 0.5, 0.4, independence=1.0, audit_share=0.0, **kw)) == 0.0
    assert float(band_drift_probability(far, 0.5, 0.4, independence=0.0, audit_share=0.0, **kw)) == 0.0
    audited = float(band_drift_probability(near, 0.5, 0.4, independence=0.0, audit_share=0.5, **kw))
    assert audited == pytest.approx(0.02 + 0.5 * 0.4 * 0.5 * 0.5)
    steeper = float(band_drift_probability(near, 1.0, 0.4, independence=0.0, audit_share=0.0, **kw))
    assert steeper > p
    assert float(band_drift_probability(near, 1.0, 0.0, independence=0.0, audit_share=0.0, **kw)) == 0.0


# --- every decision is exactly neutral at zero pressure --------------------------------------------------------------


def test_zero_pressure_is_exactly_neutral(base):
    x = np.linspace(-3, 3, 7)
    zero = np.zeros(7)
    assert (accept_probability(x, zero, discretion=0.5, max_deflected=0.5, sharpness=4) == 1.0).all()
    assert (parking_probability(x, 10.0, zero, max_parked=0.6, sharpness=4) == 0.0).all()
    shares = np.array([0.35, 0.25, 0.40])
    assert (effort_shares(np.array([1.0, 2.0, 0.0]), 0.0, base_shares=shares, elasticity=2.5) == shares).all()
    assert (review_frequency_multiplier(zero, True, max_review_frequency=2) == 1.0).all()
    assert (postpone_probability(zero, True, False, max_postpone=0.5) == 0.0).all()
    assert (misrecord_probability(zero, True, False, 0.0, max_misrecord=0.2) == 0.0).all()
    assert (hold_days(x, zero, 0.01, sharpness=4, hold_step_days=28, max_hold_weeks=52) == 0.0).all()
    assert (fast_track_days(x, zero, sharpness=4, max_fast_track_weeks=12) == 0.0).all()
    assert (defer_probability(zero, 10.0, True, max_defer=0.2, within_days=56) == 0.0).all()
    assert (recode_probability(zero, max_recode=0.05) == 0.0).all()
    assert (intake_throttle(x, zero, 1.0, utilisation_threshold=0.7, max_throttle=0.5, sharpness=4) == 1.0).all()
    assert (reserved_share(zero, reserved_share=0.5) == 0.0).all()
    assert (band_drift_probability(0.0, 1.0, zero, independence=0.0, audit_share=0.0, eligibility_margin=1.0,
                                     baseline_drift=0.05, price_response=1.0) == 0.0).all()


# --- M7 cash stress ----------------------------------------------------------------------------------------------


def months(cost, income, staff=None):
    n = len(cost)
    frame = pd.DataFrame({"start": np.arange(n) * MONTH, "cost": np.asarray(cost, float),
                          "income": np.asarray(income, float)})
    if staff is not None:
        frame["staff"] = np.asarray(staff, float)
    return frame


def test_a_provider_in_surplus_feels_no_stress(base):
    r = cash_response(months([100] * 12, [110] * 12), base)
    assert r["reserve"].tolist() == pytest.approx([200 + 10 * m for m in range(12)])
    assert (r["stress"] == 0).all() and (r["capacity_multiplier"] == 1).all()
    assert not r["intake_frozen"].any() and not r["handed_back"].any()


def test_a_running_deficit_stresses_cuts_freezes_and_hands_back(base):
    r = cash_response(months([100] * 24, [70] * 24, staff=[60] * 24), base)
    # reserve opens at 2 months of cost (200); stress trigger 200; freeze below 100
    assert r["reserve"].iloc[0] == 200 and r["stress"].iloc[0] == 0
    assert r["reserve"].iloc[1] == 170 and r["stress"].iloc[1] == pytest.approx(0.15)
    assert r["capacity_multiplier"].iloc[3] == pytest.approx(0.9)  # cut at the first quarter's end
    assert r["cost"].iloc[3] == pytest.approx(100 - 60 * 0.1)      # staff cost falls with the cut
    assert r["intake_frozen"].iloc[5] and not r["intake_frozen"].iloc[2]
    assert (np.diff(r["capacity_multiplier"].iloc[:12]) <= 0).all()
    handed = r.index[r["handed_back"]]
    assert len(handed) and r["handed_back"].iloc[handed[0]:].all()
    first_negative = int(np.argmax(r["reserve"].to_numpy() < 0))
    assert handed[0] == first_negative + 6  # six months below zero
    after = r.iloc[handed[0]:]
    assert (after["stress"] == 0).all() and (after["capacity_multiplier"] == 1).all()


def test_working_capital_arranged_for_the_lags_leaves_a_design_performing_as_bid_unstressed(base):
    """Outcome money three months in arrears: 300 short by month 3, then paid back with the arrears. Bid with that
    working capital the provider feels nothing; without it, every lagged contract starts stressed (issue 19)."""
    lagged = months([100] * 12, [0, 0, 0] + [100] * 6 + [200] * 3)
    planned = cash_response(lagged, base, arranged=300.0)
    assert planned["reserve"].iloc[0] == 500 and planned["reserve"].min() == 200  # never below the trigger
    assert (planned["stress"] == 0).all() and (planned["capacity_multiplier"] == 1).all()
    bare = cash_response(lagged, base)
    assert bare["stress"].iloc[1] == pytest.approx(0.5) and bare["capacity_multiplier"].iloc[3] == pytest.approx(0.9)
    # performing below the bid stresses, in proportion to the shortfall against it
    worse = cash_response(months([100] * 12, [0, 0, 0] + [80] * 6 + [200] * 3), base, arranged=300.0)
    assert worse["stress"].max() > 0 and worse["capacity_multiplier"].min() < 1


def test_working_capital_funds_the_timing_of_payments_not_a_loss():
    from sim.provider.cash import timing_shortfall

    cost = [100] * 12
    assert timing_shortfall([0, 0, 0] + [100] * 6 + [200] * 3, cost) == pytest.approx(300)
    # a fifth too little in all: the cost scaled to 80 a month, the arrears still 3 months of it
    assert timing_shortfall([0, 0, 0] + [80] * 6 + [160] * 3, cost) == pytest.approx(240)
    assert timing_shortfall([100] * 12, cost) == 0 and timing_shortfall([50] * 12, cost) == 0
    assert timing_shortfall([300] + [0] * 3, [100] * 4) == 0  # paid in advance


def test_the_arranged_working_capital_is_the_bid_runs_timing_shortfall():
    from sim.money.settlement import monthly_cash
    from sim.provider.cash import arranged_working_capital, timing_shortfall

    sc = small_scenario(years=2, warmup_years=2)
    h = simulate(sc, seed=1)
    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    flat = arranged_working_capital(settle(block, h, sc))  # monthly in advance: only costs' ups and downs
    assert 0 <= flat < 0.01 * block.annual_value
    pbr = settle(load_contract(SCENARIOS / "contracts" / "high_stretch.toml"), h, sc)
    cash = monthly_cash(pbr)
    assert arranged_working_capital(pbr) == timing_shortfall(cash["income"], cash["cost"]) > 10 * flat


def test_a_cash_response_that_is_off_only_reports(base):
    r = cash_response(months([100] * 24, [70] * 24), base, active=False)
    assert (r["stress"] == 0).all() and (r["capacity_multiplier"] == 1).all() and not r["handed_back"].any()
    assert r["reserve"].iloc[-1] < 0
    assert cash_response(months([100] * 24, [70] * 24), OFF)["stress"].eq(0).all()


def test_capacity_changes_are_valid_schedule_entries(west_kent, base):
    r = cash_response(months([100] * 12, [80] * 12), base)
    changes = capacity_changes(r, west_kent)
    assert changes and all(c["note"].startswith("provider cash stress") for c in changes)
    cut = west_kent.with_changes({"schedule": changes})
    workers = [s.capacity.recovery_workers for _, s in cut.epochs()]
    assert workers[0] == west_kent.capacity.recovery_workers and workers[1] == pytest.approx(0.9 * workers[0])


def test_cash_from_a_settled_run(small, base):
    scenario, h = small
    high = load_contract(SCENARIOS / "contracts" / "high_stretch.toml")
    settlement = settle(high, h, scenario)
    monthly = cash_inputs(settlement)
    staff = monthly["staff"].sum()
    assert staff == pytest.approx(scenario.capacity.recovery_workers * scenario.costs.recovery_worker_per_year
                                  * h.end / 365.25)
    assert monthly["cost"].sum() == pytest.approx(delivery_costs(h, scenario, "month")["cost"].sum())
    assert monthly["income"].sum() == pytest.approx(settlement.payments["amount"].sum())
    r = cash_response(monthly, base)
    assert len(r) == len(monthly) and r["reserve"].iloc[0] == pytest.approx(2 * monthly["cost"].iloc[:12].mean())
    assert (r["reserve"].diff().iloc[1:].to_numpy() == pytest.approx(
        (r["income"] - r["cost"] - r["overdraft_cost"]).iloc[:-1].to_numpy()))


# --- margin-neutral tariff check ---------------------------------------------------------------------------------------


def test_band_profile_and_neutral_weights_by_hand(west_kent):
    """Four clients on OST: critical (one planned exit, one drop-out) and low (one planned exit) start in the
    reference year; a low-band start after it is costed but not a reference episode."""
    b = Build()
    b.episode(b.client(1), 0, band="critical", start=10, exit=100, reason="planned")
    b.episode(b.client(2), 0, band="critical", start=20, exit=200, reason="dropped_out")
    b.episode(b.client(3), 0, band="low", start=30, exit=130, reason="planned")
    b.episode(b.client(4), 380, band="low", start=400, exit=500, reason="planned")
    h = b.finish(years=2)
    c = tiny({"planned": {**PLANNED, "payment": "on_evidence"}})
    prof = band_profile(c, h, west_kent, follow_up_days=365)
    assert prof.starters.to_dict() == {"critical": 2, "substantial": 0, "moderate": 0, "low": 1}
    assert prof.achievements.loc[["critical", "low"], "planned"].tolist() == [0.5, 1.0]
    assert prof.months[["critical", "low"]].tolist() == pytest.approx([135 / MONTH, 100 / MONTH])
    # staff (100 places / 50 per worker x West Kent's pay) and overheads a year over 730 days, shared over the
    # 470 caseload-days; OST at West Kent's price a client-year
    costs = west_kent.costs
    per_day = (2 * costs.recovery_worker_per_year + costs.overheads_per_year) * 730 / 365.25 / 470
    ost = costs.ost_per_client_year.value / 365.25
    cost = {"critical": (270 * ost + 270 * per_day) / 2, "low": 100 * ost + 100 * per_day}
    assert prof.cost[["critical", "low"]].tolist() == pytest.approx([cost["critical"], cost["low"]])

    check = margin_neutral_weights(c, west_kent, h, follow_up_days=365)
    t = check.table
    unit = {"critical": 1000 * 0.5, "low": 1000.0}  # paid on evidence, no lag: undiscounted
    assert t.loc[["critical", "low"], "unit_value"].tolist() == pytest.approx([unit["critical"], unit["low"]])
    budget = 2 * 2.0 * unit["critical"] + 1 * 0.5 * unit["low"]
    m = (budget - 0.25 * (2 * cost["critical"] + cost["low"])) / 3
    for band in ("critical", "low"):
        assert t.loc[band, "neutral_weight"] == pytest.approx((m + 0.25 * cost[band]) / unit[band])
        assert t.loc[band, "design_margin"] == pytest.approx(WEIGHTS[band] * unit[band] - 0.25 * cost[band])
    neutral = t.loc[["critical", "low"], "neutral_weight"] * t.loc[["critical", "low"], "unit_value"] \
        - 0.25 * t.loc[["critical", "low"], "cost"]
    assert neutral.tolist() == pytest.approx([m, m])


def test_neutral_weights_equalise_margins_on_a_simulated_history(west_kent):
    small = small_scenario(years=3, warmup_years=2)
    h = simulate(small, 5)
    priced = {"planned": {**PLANNED}, "abstinence": {"measure": "abstinence", "price": 400.0, "lag_days": 91},
              "sustained": {**SUSTAINED, "share_of_pot": None, "expected_volume": None, "price": 2000.0}}
    flat = tiny(priced, band_weights={b: (0.0 if b == "no_need" else 1.0) for b in BANDS})
    check = margin_neutral_weights(flat, small, h)
    assert check.feasible and check.distance > 0 and check.margin_spread > 0
    assert check.invites.startswith("cream-skimming")  # Critical clients cost more for the same price
    neutral = {**check.table["neutral_weight"].to_dict(), "no_need": 0.0}
    again = margin_neutral_weights(flat.with_changes({"band_weights": neutral}), small, h)
    assert again.margin_spread == pytest.approx(0.0, abs=1e-9)
    assert again.distance == pytest.approx(0.0, abs=1e-9)
    assert again.table["design_margin"].tolist() == pytest.approx(again.table["neutral_margin"].tolist())
    # steeper than neutral invites upcoding
    steep = {"critical": 4.0, "substantial": 2.0, "moderate": 1.0, "low": 0.25, "no_need": 0.0}
    assert margin_neutral_weights(flat.with_changes({"band_weights": steep}), small, h).steepness > 1
    assert check.steepness == pytest.approx(0.0)  # flat: log(1) / log(w*_c / w*_l)


def test_band_profile_needs_a_follow_up(west_kent):
    h = Build().finish(years=1)
    with pytest.raises(ValueError, match="follow_up_days"):
        band_profile(tiny({"planned": PLANNED}), h, west_kent, follow_up_days=365)


def test_the_engines_one_client_answers_equal_the_vectorised_mechanisms(small):
    """The engine asks a ProviderModel about one client at a time, answered by float arithmetic over cached
    terms; every answer must equal the vectorised functions of sim.provider.decisions for the same inputs."""
    from sim.core.calendar import DAYS_PER_YEAR
    from sim.provider.decisions import representation_risk, throttled_delay

    scenario, h = small
    wk = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")
    provider_run = wk.with_changes({"service_terms": {"assessment": "provider", "wait_standard_days": 21}})
    relapse = scenario.after_exit.relapse_years.at(0, 1)
    moved = set()  # the answers that were not the neutral one somewhere: the comparison is not of zeros
    for behaviour in (STRESS, BehaviourSpec(mode="base").resolve()):
        model = ProviderModel.build(scenario, provider_run, h, behaviour=behaviour)
        reference = ProviderModel.build(scenario, provider_run, h, behaviour=behaviour)  # nothing cached
        rng = np.random.default_rng(7)
        for day in (-3.0, 0.0, 10.0, 200.0, 401.0, 800.0, 1200.0):
            for band in range(len(BANDS)):
                z = float(rng.normal())
                # G is the pressure at the start of the day (it moves over months)
                assert model.accept_probability(band, day + 0.7, z) == model.accept_probability(band, day, z)
                moved |= {"accept"} if model.accept_probability(band, day, z) < 1 else set()
                moved |= {"parking"} if model.parking_probability(band, day, z) > 0 else set()
                moved |= {"effort"} if model.start_effort(band, day) != (1.0, 1.0) else set()
                moved |= {"drift"} if model.band_drift_at(0.01, band, day) > 0 else set()
                moved |= {"throttle"} if model.start_delay(band, day, 10.0, 0.99, z) != 10.0 else set()
                moved |= {"discharge"} if model.discharge_shift(band, day, 60.0, relapse, 0.4, 0.5) != 0 else set()
                assert model.accept_probability(band, day, z) == pytest.approx(
                    float(reference.accept_probability(np.array(band), np.array(day), np.array(z))), abs=1e-12)
                assert model.parking_probability(band, day, z) == pytest.approx(
                    float(reference.parking_probability(np.array(band), np.array(day), np.array(z))), abs=1e-12)
                completion, drop_out = model.start_effort(band, day)
                _, multipliers = reference.effort(np.array(band), np.array(day))
                assert (completion, drop_out) == pytest.approx((multipliers[1], 1.0 / multipliers[2]), rel=1e-12)
                for distance in (0.01, 0.5, 2.0):
                    assert model.band_drift_at(distance, band, day) == pytest.approx(
                        float(reference.band_drift_probability(np.array(distance), np.array(band), np.array(day))),
                        abs=1e-12)
                use = 0.99
                m = float(reference.intake_throttle(np.array(band), np.array(day), use, np.array(z)))
                expected = float(throttled_delay(10.0, m, 21)) if m != 1.0 else 10.0
                assert model.start_delay(band, day, 10.0, use, z) == pytest.approx(expected, rel=1e-12)
                for abstinent in (0.0, 60.0, 400.0):
                    u = float(rng.uniform())
                    def survival(days):
                        return 1.0 - relapse.cdf(np.asarray(days) / DAYS_PER_YEAR)
                    step = behaviour.discharge_timing.hold_step_days
                    now = representation_risk(survival, abstinent, 365.0, 0.4)
                    held = representation_risk(survival, abstinent + step, 365.0, 0.4)
                    assert model.discharge_shift(band, day, abstinent, relapse, 0.4, u) == pytest.approx(
                        float(reference.discharge_shift_days(np.array(band), np.array(day), now, held, u)),
                        abs=1e-9)
    assert moved == {"accept", "parking", "effort", "drift", "throttle", "discharge"}


def test_the_shipped_west_kent_provider_responds_as_calibrated_and_the_other_sites_are_contract_blind():
    """West Kent runs its pilot design with the provider fitted to the national evaluation (issue 19); the other
    sites' figures are fitted to the system alone and say so; the counterfactual keeps West Kent's provider (it
    differs only in assessment and payment)."""
    from sim import load_scenario

    assert load_scenario(SCENARIOS / "west_kent.toml").behaviour.mode == "calibrated"
    assert load_scenario(SCENARIOS / "west_kent_counterfactual.toml").behaviour.mode == "calibrated"
    for site in ("essex", "herefordshire", "east_sussex_star"):
        assert load_scenario(SCENARIOS / f"{site}.toml").behaviour.mode == "off", site
