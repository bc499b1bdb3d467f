"""Property tests: invariants that hold for any valid scenario, on small random variants of West Kent."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import simulate
from sim.core.vocabulary import TREATMENT_STATES

variants = st.fixed_dictionaries({
    "capacity.assessors": st.integers(0, 4),
    "capacity.recovery_workers": st.floats(0, 12),
    "capacity.inpatient_detox_beds": st.integers(0, 3),
    "capacity.rehab_places": st.integers(0, 4),
    "assessment.attends_treatment": st.floats(0, 1),
    "treatment.drop_out_rate_per_year.value": st.floats(0, 3),
    "rehab.probability.value": st.floats(0, 0.5),
    "inpatient_detox.probability.value": st.floats(0, 0.5),
    "mutual_aid.engagement": st.floats(0, 1),
    "after_exit.represent_after_relapse": st.floats(0, 1),
    "custody.represent_on_release": st.floats(0, 1),
})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=variants, seed=st.integers(0, 2**32 - 1))
def test_every_client_accounted_for_and_capacities_respected(small, changes, seed):
    sc = small.with_changes({"horizon.warmup_years": 0.5, "horizon.years": 1,
                             "population.arrivals_per_year": {"opiate": 60, "non_opiate": 30, "alcohol": 80,
                                                              "non_opiate_alcohol": 30},
                             **changes})
    h = simulate(sc, seed=seed)
    sp = h.spells.sort_values(["client_id", "start"])
    # spells tile each client's time in the system
    assert (sp["end"] > sp["start"]).all()
    same = sp["client_id"].to_numpy()[1:] == sp["client_id"].to_numpy()[:-1]
    np.testing.assert_array_equal(sp["start"].to_numpy()[1:][same], sp["end"].to_numpy()[:-1][same])
    assert sp.groupby("client_id")["end"].max().eq(h.end).all()
    assert sp["client_id"].nunique() == len(h.clients)
    # nobody holds a place that does not exist
    for states, cap in ((TREATMENT_STATES, sc.capacity.caseload),
                        ({"inpatient_detox"}, sc.capacity.inpatient_detox_beds),
                        ({"residential_rehab"}, sc.capacity.rehab_places)):
        held = sp[sp["state"].isin(states)]
        for t in np.linspace(h.start, h.end, 13)[1:-1]:
            assert ((held["start"] <= t) & (held["end"] > t)).sum() <= cap
    # no treatment without assessment; no assessment without an assessor
    if sc.capacity.assessors == 0:
        assert h.episodes["assessed"].isna().all()
    assert (h.episodes["treatment_start"].isna() | h.episodes["assessed"].notna()).all()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(["base", "stress"]), profit=st.floats(0, 1),
       assessment=st.sampled_from(["independent", "embedded", "provider"]),
       intake=st.sampled_from(["provider", "assessor"]), floor=st.one_of(st.none(), st.floats(0, 6)),
       seed=st.integers(0, 2**32 - 1))
def test_a_responding_provider_keeps_the_books_and_the_same_arrivals(small, mode, profit, assessment, intake,
                                                                      floor, seed):
    """With the provider responding, every client is still accounted for, places are never over-filled, and
    the same people arrive with the same attributes as in the contract-blind run (paired comparisons)."""
    from sim.config.contract import load_contract
    from sim.experiments.providers import provider_model
    from tests.conftest import SCENARIOS

    contract = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml").with_changes({
        "service_terms.assessment": assessment, "service_terms.intake": intake,
        "service_terms.contact_floor_per_month": floor})
    sc = small.with_changes({"horizon.warmup_years": 1.5, "horizon.years": 2,
                             "population.arrivals_per_year": {"opiate": 60, "non_opiate": 30, "alcohol": 80,
                                                              "non_opiate_alcohol": 30},
                             "behaviour.mode": mode, "behaviour.provider.profit_orientation": profit})
    h = simulate(sc, seed, provider=provider_model(sc, contract))
    blind = simulate(sc.with_changes({"behaviour.mode": "off"}), seed)
    sp = h.spells.sort_values(["client_id", "start"])
    same = sp["client_id"].to_numpy()[1:] == sp["client_id"].to_numpy()[:-1]
    np.testing.assert_array_equal(sp["start"].to_numpy()[1:][same], sp["end"].to_numpy()[:-1][same])
    assert sp.groupby("client_id")["end"].max().eq(h.end).all()
    held = sp[sp["state"].isin(TREATMENT_STATES)]
    for t in np.linspace(h.start, h.end, 13)[1:-1]:
        assert ((held["start"] <= t) & (held["end"] > t)).sum() <= sc.capacity.caseload
    cols = ["client_id", "group", "male", "age", "injecting", "source", "first_referral"]
    assert h.clients[cols].equals(blind.clients[cols])
