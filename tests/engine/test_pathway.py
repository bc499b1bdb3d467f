"""The client journey: conservation, determinism, common random numbers, dated changes, monotonicity."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sim import load_scenario, simulate
from sim.core.vocabulary import GROUPS, STATES, TREATMENT_STATES
from sim.engine.history import TABLES
from tests.builders import ROOT, small_scenario


@pytest.fixture(scope="module")
def history(small):
    return simulate(small, seed=11)


def test_every_client_is_in_exactly_one_state_at_every_time(history):
    """Spells of each client tile [first referral, end of horizon] with no gap and no overlap."""
    sp = history.spells.sort_values(["client_id", "start"])
    assert (sp["end"] > sp["start"]).all()
    first = sp.groupby("client_id").head(1).set_index("client_id")
    last = sp.groupby("client_id").tail(1).set_index("client_id")
    clients = history.clients.set_index("client_id")
    assert set(first.index) == set(clients.index)
    np.testing.assert_allclose(first["start"], clients.loc[first.index, "first_referral"])
    np.testing.assert_allclose(last["end"], history.end)
    assert last["censored"].all()
    same = sp["client_id"].to_numpy()[1:] == sp["client_id"].to_numpy()[:-1]
    np.testing.assert_array_equal(sp["start"].to_numpy()[1:][same], sp["end"].to_numpy()[:-1][same])
    assert sp["censored"].sum() == len(clients)  # exactly one open spell each


def test_state_counts_add_up_to_everyone_who_has_arrived(history):
    sp = history.spells
    for t in np.linspace(history.start + 1, history.end - 1, 9):
        here = sp[(sp["start"] <= t) & (sp["end"] > t)]
        arrived = (history.clients["first_referral"] <= t).sum()
        assert len(here) == arrived
        assert here["client_id"].is_unique
        assert set(here["state"].astype(str)) <= set(STATES)


def test_dead_and_transferred_clients_stay_there(history):
    sp = history.spells
    for state in ("died", "transferred"):
        who = sp.loc[sp["state"] == state, "client_id"]
        later = sp[sp["client_id"].isin(who)].groupby("client_id").tail(1)
        assert (later["state"] == state).all()


def test_episodes_events_and_spells_agree(history):
    ep, ev = history.episodes, history.events
    exits = ev[ev["kind"] == "exit"]
    treated = ep[ep["treatment_start"].notna() & ep["exit"].notna()
                 & ep["exit_reason"].isin(["planned", "dropped_out", "declined", "withdrawn", "transferred", "custody",
                                             "died"])]
    assert ev["kind"].notna().all()  # every kind is in vocabulary.EVENT_KINDS
    assert len(exits) == len(treated)
    starts = ev[ev["kind"] == "treatment_start"]
    assert len(starts) == ep["treatment_start"].notna().sum()
    # a planned exit needs 12 weeks of abstinence: the last reviews before it are abstinent
    planned = treated[treated["exit_reason"] == "planned"]
    assert (planned["exit"] - planned["treatment_start"] >= 12 * 7 - 1e-9).all()
    # waits are non-negative and bands are set once assessed
    assert ((ep["treatment_start"] - ep["referral"]).dropna() >= 0).all()
    assert ep.loc[ep["assessed"].notna(), "band"].notna().all()
    # every death event leaves the client dead
    deaths = ev[ev["kind"] == "death"]
    assert deaths["client_id"].is_unique
    final = history.spells.groupby("client_id").tail(1).set_index("client_id")["state"]
    assert (final.loc[deaths["client_id"]] == "died").all()


def test_reviews_fall_on_the_12_week_grid(history, small):
    rv = history.reviews
    start = history.episodes.set_index(["client_id", "episode"])["treatment_start"]
    grid = rv[rv["stage"] == "review"]
    offset = grid["time"].to_numpy() - start.loc[list(zip(grid["client_id"], grid["episode"]))].to_numpy()
    np.testing.assert_allclose(offset, grid["number"] * 84.0)
    assert rv["quality_of_life"].between(0, 20).all()
    done = rv[rv["stage"] == "review"]["completed"].mean()
    assert 0.85 < done < 0.95  # scenario: 90% of due reviews are completed


def test_same_seed_gives_identical_tables(small):
    a, b = simulate(small, seed=5), simulate(small, seed=5)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_give_different_histories(small):
    a, b = simulate(small, seed=5), simulate(small, seed=6)
    assert len(a.clients) != len(b.clients) or not a.clients["first_referral"].equals(b.clients["first_referral"])


def test_withdrawn_exits_are_drop_outs_recorded_apart_and_change_nothing_else(small):
    """The withdrawn share relabels exits on the drop-out hazard and touches no other draw: every episode is the
    same, a share of its drop-outs is recorded as withdrawn, and declines are unchanged."""
    none = simulate(small.with_changes({"treatment.withdrawn_share": 0.0}), seed=4)
    some = simulate(small.with_changes({"treatment.withdrawn_share": 0.3}), seed=4)
    a, b = none.episodes, some.episodes
    assert (a["exit_reason"] != "withdrawn").all()
    relabelled = (a["exit_reason"] != b["exit_reason"]).to_numpy()
    assert ((a["exit_reason"][relabelled] == "dropped_out") & (b["exit_reason"][relabelled] == "withdrawn")).all()
    pd.testing.assert_frame_equal(a.drop(columns="exit_reason"), b.drop(columns="exit_reason"))
    pd.testing.assert_frame_equal(none.spells, some.spells)
    # the share of exits on the drop-out hazard recorded as withdrawn: 0.3 (binomial, within 4 standard errors)
    on_clock = b["exit_reason"].isin(["dropped_out", "declined", "withdrawn"])
    n, k = int(on_clock.sum()), int((b["exit_reason"] == "withdrawn").sum())
    assert n > 200
    assert abs(k / n - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5, (k, n)


def test_doubling_rehab_places_leaves_arrivals_and_attributes_unchanged(small):
    """Common random numbers: a capacity change alters no client's arrival time or attributes."""
    base = simulate(small, seed=3)
    more = simulate(small.with_changes({"capacity.rehab_places": 2 * small.capacity.rehab_places}), seed=3)
    pd.testing.assert_frame_equal(base.clients.drop(columns="band"), more.clients.drop(columns="band"))
    # and first-episode assessments, which happen before any rehab, are identical too
    first = lambda h: h.episodes[h.episodes["episode"] == 0][["client_id", "referral", "source"]]  # noqa: E731
    pd.testing.assert_frame_equal(first(base), first(more))


def test_a_dated_capacity_cut_changes_nothing_before_it_and_lengthens_waits_after(small):
    cut_day = 365.0
    cut_date = small.horizon.contract_start + dt.timedelta(days=cut_day)
    changed = small.with_changes({"schedule": [{"date": cut_date, "note": "recovery-worker vacancies",
                                                "set": {"capacity.recovery_workers": 10}}]})
    assert [t for t, _ in changed.epochs()] == [small.horizon.start_day, cut_day]
    assert changed.epochs()[1][1].capacity.caseload == 500  # below the ~600 on the small caseload
    waits_before, waits_after = [], []
    for seed in (1, 2, 3):
        base, after = simulate(small, seed=seed), simulate(changed, seed=seed)
        # identical up to the cut
        for name in ("events", "spells"):
            a, b = getattr(base, name), getattr(after, name)
            col = "time" if name == "events" else "start"
            a = a[a[col] < cut_day].reset_index(drop=True)
            b = b[b[col] < cut_day].reset_index(drop=True)
            if name == "spells":  # spells still open at the cut may end differently
                a, b = a.drop(columns=["end", "censored"]), b.drop(columns=["end", "censored"])
            pd.testing.assert_frame_equal(a, b)
        for h, out in ((base, waits_before), (after, waits_after)):
            ep = h.episodes
            started = ep[(ep["referral"] >= cut_day + 30) & ep["treatment_start"].notna()]
            out.append((started["treatment_start"] - started["referral"]).mean())
    assert np.mean(waits_after) > np.mean(waits_before) + 5  # days


def test_more_caseload_capacity_never_lengthens_waits(small):
    """Monotonicity: mean wait for treatment falls as recovery workers are added (same seeds)."""
    waits = []
    for workers in (10, 11, 12, 20):  # the small scenario has ~500-650 people on the caseload
        sc = small.with_changes({"capacity.recovery_workers": workers})
        w = []
        for seed in (1, 2):
            ep = simulate(sc, seed=seed).episodes
            ep = ep[(ep["referral"] >= 0) & ep["treatment_start"].notna()]
            w.append((ep["treatment_start"] - ep["referral"]).mean())
        waits.append(np.mean(w))
    assert all(a >= b for a, b in zip(waits, waits[1:])), waits
    assert waits[0] > 2 * waits[-1], waits


def test_higher_relapse_means_fewer_sustained_recoveries(small):
    """Monotonicity: a shorter time to relapse leaves fewer people recovered at the end of the horizon."""
    recovered = []
    for scale in (1.0, 0.3, 0.1):
        sc = small.with_changes({"after_exit.relapse_years.scale": 1.37 * scale})
        n = 0
        for seed in (1, 2):
            sp = simulate(sc, seed=seed).spells
            n += ((sp["state"] == "recovered") & sp["censored"]).sum()
        recovered.append(n)
    assert recovered[0] > recovered[1] > recovered[2], recovered


def test_treatment_states_hold_a_caseload_place(history, small):
    """Nobody is on the caseload beyond its capacity at any time."""
    sp = history.spells[history.spells["state"].isin(TREATMENT_STATES)]
    times = np.linspace(history.start + 30, history.end - 1, 25)
    for t in times:
        assert ((sp["start"] <= t) & (sp["end"] > t)).sum() <= small.capacity.caseload


def test_a_hold_a_rounding_error_in_the_past_is_now(small):
    """A death time reached as admission + stay can differ from the death time by a rounding error: waiting
    until it must not ask SimPy for a negative delay. Anything further in the past is a bug and says so."""
    from sim.engine.system import TreatmentSystem

    ts = TreatmentSystem(small, 1)
    ts.env.run(until=10.0)
    assert ts.hold(10.0 - 1e-13) == 10.0
    with pytest.raises(RuntimeError, match="the past"):
        ts.hold(9.0)


def test_episode_rows_are_the_keyed_draws_of_each_stage():
    """A row drawn in a batch holds exactly the numbers each stage would draw for itself."""
    from sim.core.randomness import EPISODE_LAYOUT, PROVIDER_LAYOUT, ClientRandom, episode_draws

    r = ClientRandom(np.random.SeedSequence(3))
    clients, episodes = np.array([7, 7, 123_456, 2]), np.array([0, 4, 1, 0])
    rows = episode_draws(r, clients, episodes)
    for row, c, e in zip(rows, clients, episodes):
        for stream, (start, count) in EPISODE_LAYOUT.items():
            assert row[start:start + count].tolist() == r.draws(stream, int(c), int(e), count)
    assert episode_draws(r, clients[:1], 0).tolist() == rows[:1].tolist()
    with_provider = episode_draws(r, clients, episodes, provider=True)
    assert with_provider[:, :rows.shape[1]].tolist() == rows.tolist()
    for row, c, e in zip(with_provider, clients, episodes):
        for stream, (start, count) in PROVIDER_LAYOUT.items():
            assert row[start:start + count].tolist() == r.draws(stream, int(c), int(e), count)


def test_the_planned_threshold_distance_is_the_providers():
    """M6's distance of the band-setting score from the next more severe band, planned for a batch, is
    ``threshold_distance`` of that score against the domain's cumulative shares."""
    from sim.core.randomness import ClientRandom
    from sim.engine.plans import BAND, DEPENDENCY, DRIFT_DISTANCE, DRIFT_U, WIDER_NEEDS, Planner
    from sim.provider.decisions import threshold_distance

    sc = small_scenario(years=1, warmup_years=0)
    planner = Planner(sc.epochs(), ClientRandom(np.random.SeedSequence(5)), provider=True)
    n = 400
    g = np.arange(n) % len(GROUPS)
    plans = planner.plan(planner.draws(np.arange(n), 0), g, np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))
    a = sc.assessment
    for p, group in zip(plans, g):
        domain = a.dependency_domain if p[DEPENDENCY] <= p[WIDER_NEEDS] else a.wider_needs_domain
        cum = np.cumsum(domain.resolve(GROUPS[group]).probabilities())
        assert p[DRIFT_DISTANCE] == float(threshold_distance(p[DRIFT_U], cum))
    assert len(set(plans[:, BAND].tolist())) > 2 and np.isfinite(plans[:, DRIFT_DISTANCE]).any()


def test_planning_in_batches_changes_no_result(small, monkeypatch):
    """Episode plans computed for a batch (first episodes a chunk of arrivals at a time, re-presentations of
    everyone pending) are only a faster way to the same plans: a run that plans every episode alone gives
    identical tables."""
    import functools

    from sim.engine import system as pathway

    batched = simulate(small, seed=4)
    assert (batched.episodes["episode"] > 0).sum() > 50  # re-presentations happen, so their plans are used
    alone = pathway.TreatmentSystem._plan_batch

    def one_at_a_time(self):
        pending = self._pending
        for c in pending:
            self._pending = [c]
            alone(self)

    monkeypatch.setattr(pathway.TreatmentSystem, "_arrival_chunks",
                        functools.partialmethod(pathway.TreatmentSystem._arrival_chunks, chunk=1))
    monkeypatch.setattr(pathway.TreatmentSystem, "_plan_batch", one_at_a_time)
    one_by_one = simulate(small, seed=4)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(batched, table), getattr(one_by_one, table))


@pytest.mark.parametrize("enabled", [True, False])
def test_a_run_leaves_the_garbage_collector_as_it_found_it(small, enabled):
    """The cyclic collector is paused during a run (speed) and restored after it, also when the run fails."""
    import gc

    from sim.engine.system import TreatmentSystem

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        short = small.with_changes({"horizon.years": 1})
        simulate(short, 1)
        assert gc.isenabled() is enabled

        def interrupt(t):
            assert not gc.isenabled()  # paused while the run goes on
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            TreatmentSystem(short, 1).run(progress=interrupt)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_during_a_run_starts_with_the_collector_as_before():
    import gc
    import os

    from sim.engine import kernel

    was = gc.isenabled()
    gc.enable()
    try:
        with kernel.cyclic_gc_paused():
            pid = os.fork()
            if pid == 0:  # the child: nothing paused, the collector back on
                os._exit(0 if gc.isenabled() and kernel._gc_pauses == 0 else 1)
            _, status = os.waitpid(pid, 0)
            assert not gc.isenabled()  # the parent's run is still paused
        assert os.waitstatus_to_exitcode(status) == 0
        assert gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


def test_a_client_process_yielding_neither_an_event_nor_a_day_says_so():
    import simpy

    from sim.engine.kernel import ClientProcess

    def life():
        yield 3

    with pytest.raises(TypeError, match="yielded 3"):
        ClientProcess(simpy.Environment(), life())


def _patient_wait(place_free_at: float | None, patience_until: float, freeing_first: bool = False):
    """A client waiting (event, day) for a place a second process frees at ``place_free_at`` (never if None);
    returns what the waiting process was sent, when, and every day it woke."""
    import simpy

    from sim.engine.kernel import ClientProcess

    env = simpy.Environment()
    place = env.event()
    seen = {}

    def waiting():
        seen["admitted"] = yield place, patience_until
        seen["at"] = env.now
        yield 50.0  # a later hold: a called-off wait must not wake it early
        seen["woke_again"] = env.now

    def freeing():
        yield place_free_at
        place.succeed()

    processes = [waiting, freeing] if place_free_at is not None else [waiting]
    for life in (processes[::-1] if freeing_first else processes):
        ClientProcess(env, life())
    env.run(until=100)
    return seen


def test_a_place_that_comes_before_the_clients_patience_ends_admits_them():
    seen = _patient_wait(place_free_at=3.0, patience_until=10.0)
    assert seen == {"admitted": True, "at": 3.0, "woke_again": 50.0}  # the alarm at day 10 woke nobody


def test_a_client_whose_patience_ends_first_leaves_and_the_later_place_wakes_nobody():
    seen = _patient_wait(place_free_at=20.0, patience_until=10.0)
    assert seen == {"admitted": False, "at": 10.0, "woke_again": 50.0}  # the place at day 20 woke nobody


def test_a_place_granted_at_the_moment_patience_ends_is_taken():
    """The place is granted on day 10 before the alarm for day 10 is processed (its callbacks not yet run): the
    client is told the place is theirs, as a granted place cannot be left; granted after the alarm, it is not."""
    assert _patient_wait(10.0, 10.0, freeing_first=True) == {"admitted": True, "at": 10.0, "woke_again": 50.0}
    assert _patient_wait(10.0, 10.0, freeing_first=False)["admitted"] is False
    assert _patient_wait(None, 10.0)["admitted"] is False


def test_a_routine_review_due_on_the_exit_day_does_not_turn_on_rounding():
    """A planned exit exactly 12 weeks after the start (abstinent from the start) falls on a review day: the review
    is held whichever way the two sums of days round in their last bit."""
    from sim.core.randomness import ClientRandom
    from sim.engine import reviews

    scenario = load_scenario(ROOT / "scenarios" / "west_kent.toml")
    start = 101.82590434
    ends = [start + 84.0, np.nextafter(start + 84.0, 0.0), np.nextafter(start + 84.0, np.inf)]
    n = len(ends)
    columns = {"client_id": np.arange(n, dtype=np.int64), "episode": np.zeros(n, np.int64),
               "g": np.zeros(n, np.int64), "b": np.ones(n, np.int64), "epoch": np.zeros(n, np.int64),
               "start": np.full(n, start), "end": np.array(ends), "planned": np.ones(n, bool),
               "abstinent_from": np.full(n, start), "injecting": np.zeros(n, bool),
               "housing_problem": np.zeros(n, bool), "offending_rate": np.zeros(n)}
    assert set(columns) == set(reviews.EPISODE_COLUMNS)
    table, _ = reviews.generate(columns, [(scenario.horizon.start_day, scenario)],
                                ClientRandom(np.random.SeedSequence(1)), None)
    stages = np.concatenate([part["stage"] for part in table])
    ids = np.concatenate([part["client_id"] for part in table])
    assert [int((ids == i).sum()) for i in range(n)] == [3, 3, 3]  # start, the 12-week review, the exit review
    assert list(stages[ids == 1]) == list(stages[ids == 0]) == list(stages[ids == 2])
