"""Provider behaviour inside the engine (issue 7): zero pressure is the contract-blind run draw for draw; each
engine mechanism fires only where the contract lets it, and moves its own outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim import simulate
from sim.config.contract import load_contract
from sim.core.vocabulary import UNPLANNED_EXITS
from sim.engine.history import TABLES
from sim.experiments.providers import provider_model
from tests.conftest import SCENARIOS

SEED = 11
# M4 caution strong enough to see on the small scenario (the calibrated profile's fitted values are smaller)
CAUTIOUS = {"behaviour.discharge_timing.caution": 20.0, "behaviour.discharge_timing.held_decline_per_week": 0.2}


@pytest.fixture(scope="module")
def wk_pbr():
    return load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")


@pytest.fixture(scope="module")
def blind(small):
    return simulate(small, SEED)


def _tables_equal(a, b):
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)


def test_behaviour_off_builds_no_provider(small, wk_pbr):
    assert small.behaviour.mode == "off"
    assert provider_model(small, wk_pbr) is None
    assert provider_model(small.with_changes({"behaviour.mode": "base"}), None) is None


@pytest.mark.parametrize("mode", ["calibrated", "stress"])
def test_zero_pressure_reproduces_the_contract_blind_run(small, blind, mode):
    """A block contract puts nothing at risk: with behaviour on, every table is the contract-blind run's. So
    ``provider_model`` builds no provider for it (the engine is asked nothing); built anyway, the provider's
    every mechanism is neutral in the engine."""
    from sim.experiments.providers import pilot_history
    from sim.provider.model import ProviderModel

    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    on = small.with_changes({"behaviour.mode": mode, **CAUTIOUS})
    assert provider_model(on, block) is None
    assert provider_model(on.with_changes({"horizon.years": 1}), block) is None  # no year to learn from needed
    provider = ProviderModel.build(on, block, pilot_history(on), on.behaviour.resolve())
    assert provider.behaviour.active
    assert float(np.max(provider.pressure(provider.year_starts + 30.0))) == 0.0
    _tables_equal(simulate(on, SEED, provider=provider), blind)


def test_the_provider_view_of_an_outcome_contract_has_pressure(small, wk_pbr):
    provider = provider_model(small.with_changes({"behaviour.mode": "stress"}), wk_pbr)
    assert float(np.max(provider.pressure(provider.year_starts + 300.0))) > 0.0


def _run(scenario, contract, mode="stress", **terms):
    """A run with a provider that weighs margin fully (profit orientation 1: the strongest response the
    contract invites), under ``contract`` with the given service terms."""
    if terms:
        contract = contract.with_changes({f"service_terms.{k}": v for k, v in terms.items()})
    on = scenario.with_changes({"behaviour.mode": mode, "behaviour.provider.profit_orientation": 1.0})
    return simulate(on, SEED, provider=provider_model(on, contract))


def _in_contract(h, frame):
    return frame[frame["referral"] >= 0] if "referral" in frame else frame[frame["time"] >= 0]


def test_band_drift_only_where_the_provider_assesses(small, wk_pbr, blind):
    independent = _run(small, wk_pbr, assessment="independent")
    own = _run(small, wk_pbr, assessment="provider")
    assert (independent.events["kind"] == "band_drift").sum() == 0
    codes = lambda h, c: h.episodes[c].cat.codes  # noqa: E731
    assert (codes(independent, "band") == codes(independent, "assessed_band")).all()
    drifted = own.episodes[codes(own, "band") != codes(own, "assessed_band")]
    assert len(drifted) > 0
    # always towards more severe need, one band
    assert ((drifted["assessed_band"].cat.codes - drifted["band"].cat.codes) == 1).all()
    # the drift is the provider's record only: the assessment itself is what the blind run assessed
    keys = ["client_id", "episode"]
    first = own.episodes[own.episodes["episode"] == 0].set_index(keys)["assessed_band"]
    base = blind.episodes[blind.episodes["episode"] == 0].set_index(keys)["band"]
    assert (first.cat.codes == base.reindex(first.index).cat.codes).all()


def test_cream_skimming_needs_provider_discretion(small, wk_pbr):
    allocated = _run(small, wk_pbr, intake="assessor")
    own = _run(small, wk_pbr, assessment="provider", intake="provider")
    assert not allocated.episodes["deflected"].any()
    assert own.episodes["deflected"].sum() > 0
    out = own.episodes[own.episodes["exit_reason"] == "deflected"]
    assert out["treatment_start"].isna().all()


def test_parking_raises_drop_out_among_parked_clients(small, wk_pbr):
    h = _run(small, wk_pbr)
    treated = h.episodes[h.episodes["treatment_start"].notna() & h.episodes["exit"].notna()]
    parked, not_parked = treated[treated["parked"]], treated[~treated["parked"]]
    assert len(parked) > 20
    unplanned = lambda d: d["exit_reason"].isin(UNPLANNED_EXITS).mean()  # noqa: E731
    assert unplanned(parked) > unplanned(not_parked)


def test_a_contact_floor_bounds_parking(small, wk_pbr):
    floored = _run(small, wk_pbr, contact_floor_per_month=4.0)  # weekly contacts: nothing left to cut
    assert not floored.episodes["parked"].any()


def test_verified_reviews_remove_misrecording(small, wk_pbr):
    verified = _run(small, wk_pbr, verified_reviews=True)
    assert not verified.reviews["misrecorded"].any()


def test_stress_recodes_unplanned_exits_and_defers_re_entry_past_the_window(small, wk_pbr):
    """Under stress (only: both are zero in base mode) some unplanned exits are recorded as transfers, and some
    relapsed completers are taken back only after the sustained-outcome window has closed."""
    base, stress = _run(small, wk_pbr, mode="base"), _run(small, wk_pbr, mode="stress")
    kinds = lambda h: h.events["kind"].value_counts()  # noqa: E731
    assert kinds(base)[["exit_recoded", "re_entry_deferred"]].sum() == 0
    assert kinds(stress)["exit_recoded"] > 0
    recoded = stress.events[stress.events["kind"] == "exit_recoded"]
    ep = stress.episodes.set_index(["client_id", "episode"])
    assert (ep.loc[list(zip(recoded["client_id"], recoded["episode"])), "exit_reason"] == "transferred").all()
    deferred = stress.events[stress.events["kind"] == "re_entry_deferred"]
    if len(deferred):  # each comes back the day after its window closes, never inside it
        provider = provider_model(small.with_changes({"behaviour.mode": "stress"}), wk_pbr)
        window = provider.sustained_window()
        for r in deferred.itertuples():
            nxt = ep.loc[(r.client_id, r.episode + 1)]["referral"] if (r.client_id, r.episode + 1) in ep.index \
                else np.inf
            assert nxt >= ep.loc[(r.client_id, r.episode)]["exit"] + window


def _year_one(h):
    """Exits of episodes in the first contract year, by recorded reason."""
    ep = h.episodes
    return ep[(ep["exit"] >= 0) & (ep["exit"] < 365.25)]["exit_reason"].value_counts()


def test_caution_holds_ready_clients_and_some_held_clients_decline_to_continue(small, wk_pbr):
    """M4 caution under a re-presentation test: ready clients are held (fewer planned exits in year 1), some
    held clients decline to continue before their new date (more declined), and nothing else starts it."""
    plain = _run(small, wk_pbr, mode="base")
    on = small.with_changes({"behaviour.mode": "base", **CAUTIOUS, "behaviour.provider.profit_orientation": 1.0})
    cautious = simulate(on, SEED, provider=provider_model(on, wk_pbr))
    held = lambda h: (h.events["kind"] == "discharge_held").sum()  # noqa: E731
    assert held(cautious) > held(plain) + 20
    before, after = _year_one(plain), _year_one(cautious)
    assert after["planned"] < before["planned"]
    assert after["declined"] > before["declined"]
    # every extra declined exit comes from an episode whose discharge was held, after the hold began
    ep = cautious.episodes.set_index(["client_id", "episode"])
    holds = cautious.events[cautious.events["kind"] == "discharge_held"].set_index(["client_id", "episode"])
    declined = ep[ep["exit_reason"] == "declined"]
    from_holds = declined.index.isin(holds.index)
    assert from_holds.sum() >= after["declined"] - before["declined"]
    assert (declined.loc[from_holds, "exit"] >= holds.loc[declined.index[from_holds], "time"]).all()


def test_caution_holds_no_more_ready_clients_than_its_cap(small, wk_pbr):
    """min(max_held_share, caution x G): late in the term, where caution x G is past the cap, a client whose
    uniform lies above the cap is discharged on time and one below it is held."""
    on = small.with_changes({"behaviour.mode": "base", **CAUTIOUS, "behaviour.provider.profit_orientation": 1.0})
    capped = provider_model(on.with_changes({"behaviour.discharge_timing.max_held_share": 0.3}), wk_pbr)
    free = provider_model(on, wk_pbr)
    late = float(free.year_starts[-1]) + 300.0
    assert 20.0 * float(free.pressure(late)) > 0.5
    assert free.caution_hold(1, late, 0.5, 0.5) > 0.0
    assert capped.caution_hold(1, late, 0.5, 0.5) == 0.0
    assert capped.caution_hold(1, late, 0.29, 0.5) == free.caution_hold(1, late, 0.29, 0.5) > 0.0


def test_the_calibrated_cap_is_the_fitted_hold_share_at_the_end_of_the_pilot_year(wk_pbr):
    """The calibrated cap leaves the fitted first year alone (caution x G stays below it up to the year's end
    under West Kent's PbR, no cash stress) and binds from the second year, where the fit saw nothing."""
    from sim.config.behaviour import BehaviourSpec
    from sim.provider.decisions import gaming_pressure

    calibrated = BehaviourSpec().resolve("calibrated")
    share = wk_pbr.raw()["pbr_share"]["by_year"]
    m = calibrated.discharge_timing
    end_of_year_one = m.caution * float(gaming_pressure(calibrated, share[0], 365.0))
    start_of_year_two = m.caution * float(gaming_pressure(calibrated, share[1], 366.0))
    assert end_of_year_one <= m.max_held_share < start_of_year_two
    assert m.max_held_share - end_of_year_one < 0.01


def test_caution_needs_a_sustained_outcome_to_protect(small, wk_pbr):
    """Without a paid non-re-presentation outcome there is nothing to be cautious about: the run with caution
    is the run without it, table for table."""
    raw = wk_pbr.raw()
    raw["outcomes"] = {k: v for k, v in raw["outcomes"].items() if v["measure"] != "sustained_recovery"}
    from sim.config.contract import contract_from_dict

    no_test = contract_from_dict(raw, "no sustained outcome")
    plain = small.with_changes({"behaviour.mode": "base"})
    cautious = small.with_changes({"behaviour.mode": "base", **CAUTIOUS})
    provider = provider_model(cautious, no_test)
    assert provider.sustained_window() is None
    _tables_equal(simulate(cautious, SEED, provider=provider),
                  simulate(plain, SEED, provider=provider_model(plain, no_test)))
