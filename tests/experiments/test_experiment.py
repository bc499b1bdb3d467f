"""Experiments: one run as data, executors that agree, replications with error bars, how many replications."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sim import load_scenario, measures, simulate
from sim.config.contract import load_contract
from sim.experiments.compare import compare
from sim.experiments.core import COLUMNS, CONTRACT_METRICS, Replications, ResultStore, RunSpec, SharedRunFailed, StoreMismatch, contract_raw, replicate, replications_needed, run_one, run_shared, run_specs, shared_histories, summarise
from sim.experiments.executors import DaskExecutor, ProcessExecutor, ProgressBar, SerialExecutor, make_executor

from tests.conftest import SCENARIOS
from tests.builders import small_scenario

CONTRACT = SCENARIOS / "contracts" / "west_kent_pbr.toml"
SEED = 11


@pytest.fixture(scope="module")
def tiny():
    """West Kent with a 2-year warm-up and 1 reported year: about a second a run."""
    return small_scenario(years=1, warmup_years=2)


@pytest.fixture(scope="module")
def specs(tiny):
    """Three points (the second with fewer recovery workers, the third the same as the first) x 2 replications,
    settled under the West Kent contract."""
    fewer = tiny.with_changes({"capacity.recovery_workers": 18})
    c = contract_raw(CONTRACT)
    scenarios = [tiny.raw(), fewer.raw(), tiny.raw()]
    return [RunSpec(p, r, scenarios[p], c, SEED) for p in range(3) for r in range(2)]


@pytest.fixture(scope="module")
def serial_table(specs):
    return run_specs(specs, SerialExecutor())


# --- one run -----------------------------------------------------------------------------------------------------


def test_table_shape(serial_table):
    t = serial_table
    assert list(t.columns) == COLUMNS
    assert t["value"].dtype == np.float64 and t["point"].dtype == np.int64
    assert not t.duplicated(["point", "replication", "period", "category", "metric"]).any()
    assert set(t["category"]) == {"all", "opiate", "non_opiate", "alcohol", "non_opiate_alcohol", "contract"}
    assert set(t["period"]) == {"2012-13", "contract year 1", "term"}
    contract_rows = t[t["category"] == "contract"]
    assert set(CONTRACT_METRICS) <= set(contract_rows["metric"])
    # sorted by the key columns
    keys = t[["point", "replication", "period", "category", "metric"]].astype({"period": object, "category": object,
                                                                               "metric": object})
    assert keys.equals(keys.sort_values(list(keys.columns), ignore_index=True))


def test_run_one_is_deterministic_and_matches_simulate(tiny, specs, serial_table):
    spec = specs[1]  # point 0, replication 1
    first, history = run_one(spec, keep_history=True)
    again = run_one(spec)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(
        first, serial_table[(serial_table["point"] == 0) & (serial_table["replication"] == 1)].reset_index(drop=True))
    # the same History as simulating the scenario object with the replication's seed
    direct = simulate(tiny, np.random.SeedSequence(SEED, spawn_key=(1,)))
    pd.testing.assert_frame_equal(history.spells, direct.spells)
    yearly = measures.by_period(direct, "year")
    row = first[(first["category"] == "all") & (first["metric"] == "in_treatment")]
    assert row["value"].item() == yearly["in_treatment"].item()


def test_contract_metrics_agree_with_compare(tiny, serial_table):
    """Replication r uses the r-th child of SeedSequence(seed), as pbrsim compare does."""
    cmp = compare(tiny, [load_contract(CONTRACT)], 1, seed=SEED)
    term = cmp.term.iloc[0]
    ours = serial_table[(serial_table["point"] == 0) & (serial_table["replication"] == 0)
                        & (serial_table["period"] == "term")].set_index("metric")["value"]
    for metric in CONTRACT_METRICS:
        assert ours[metric] == pytest.approx(term[metric], rel=1e-12, nan_ok=True), metric


def test_common_random_numbers_across_points(serial_table):
    def point(p):
        return serial_table[serial_table["point"] == p].drop(columns="point").reset_index(drop=True)

    pd.testing.assert_frame_equal(point(0), point(2))  # same scenario, same replication -> same seed
    assert not point(0)["value"].equals(point(1)["value"])  # fewer workers change something
    rep = serial_table[serial_table["point"] == 0]
    assert not rep[rep["replication"] == 0]["value"].reset_index(drop=True).equals(
        rep[rep["replication"] == 1]["value"].reset_index(drop=True))


# --- executors ---------------------------------------------------------------------------------------------------


def test_processes_give_identical_tables(specs, serial_table):
    for workers in (1, 2):
        with ProcessExecutor(workers) as executor:
            table = run_specs(specs, executor)
        pd.testing.assert_frame_equal(table, serial_table)


def test_dask_gives_identical_tables(specs, serial_table):
    with DaskExecutor(workers=2) as executor:
        assert executor.workers == 2
        done = []
        table = run_specs(specs, executor, progress=done.append)
    pd.testing.assert_frame_equal(table, serial_table)
    assert sorted(done) == list(range(1, len(specs) + 1))
    assert executor.client is None and executor.cluster is None  # closed what it opened


def test_make_executor():
    assert isinstance(make_executor("serial"), SerialExecutor)
    ex = make_executor("processes", 3)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 3
    ex.close()
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("threads")
    with pytest.raises(ValueError, match="scheduler"):
        make_executor("processes", 2, "tcp://127.0.0.1:8786")


def _square(x):
    return x * x


def test_executors_yield_every_result_and_count_progress():
    for executor in (SerialExecutor(), ProcessExecutor(2)):
        done = []
        with executor:
            results = list(executor.map(_square, range(7), done.append))
        assert sorted(results) == [x * x for x in range(7)]
        assert done == list(range(1, 8))


def test_progress_bar_shows_only_when_asked():
    quiet = io.StringIO()
    with ProgressBar(3, file=quiet) as bar:  # a StringIO is no terminal
        bar(1), bar(3)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    with ProgressBar(3, desc="sweep", show=True, file=shown) as bar:
        bar(1), bar(2), bar(3)
    text = shown.getvalue()
    assert "3/3" in text and "run" in text and "<" in text  # count, unit, elapsed<remaining (the ETA)


def test_bad_specs_are_refused(tiny):
    raw = tiny.raw()
    with pytest.raises(ValueError, match="more than once"):
        run_specs([RunSpec(0, 0, raw), RunSpec(0, 0, raw)])
    with pytest.raises(ValueError, match="replications of point 0 differ"):
        run_specs([RunSpec(0, 0, raw, seed=1), RunSpec(0, 1, raw, seed=2)])
    bad = {**raw, "capacity": {**raw["capacity"], "rehab_placez": 3}}
    with pytest.raises(ValueError, match="rehab_placez"):  # checked before anything runs
        run_specs([RunSpec(0, 0, bad)])


# --- runs that share a History ----------------------------------------------------------------------------------


def _runs(keys: dict[int, str | None], replications: int) -> list[RunSpec]:
    return [RunSpec(p, r, {}) for p in keys for r in range(replications)]


def test_runs_group_by_history_and_replication():
    """Points 0 and 1 have the same History (a contract-only difference), point 2 a provider that may respond:
    one task per replication for 0 and 1, one per run for 2, in the order of their first run."""
    keys = {0: "a", 1: "a", 2: None}
    tasks = shared_histories(_runs(keys, 2), keys)
    assert [[s.key for s in t] for t in tasks] == [[(0, 0), (1, 0)], [(0, 1), (1, 1)], [(2, 0)], [(2, 1)]]


def test_few_tasks_are_split_for_the_workers_and_none_is_too_large():
    keys = {p: "a" for p in range(10)}  # a grid over contract terms, one replication: one History
    assert [len(t) for t in shared_histories(_runs(keys, 1), keys, workers=1)] == [10]
    assert [len(t) for t in shared_histories(_runs(keys, 1), keys, workers=2)] == [5, 5]
    assert [len(t) for t in shared_histories(_runs(keys, 1), keys, workers=4)] == [2, 3, 2, 3]
    assert [len(t) for t in shared_histories(_runs(keys, 1), keys, workers=1, largest=4)] == [3, 3, 4]
    assert [len(t) for t in shared_histories(_runs(keys, 3), keys, workers=2)] == [10, 10, 10]  # enough tasks


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 30), st.sampled_from(["a", "b", None]), min_size=1, max_size=12),
       st.integers(1, 4), st.integers(1, 8), st.integers(1, 6))
def test_tasks_partition_the_runs(keys, replications, workers, largest):
    runs = _runs(keys, replications)
    tasks = shared_histories(runs, keys, workers, largest)
    assert sorted(s.key for t in tasks for s in t) == sorted(s.key for s in runs)  # each run once
    for t in tasks:
        assert 1 <= len(t) <= largest
        if len(t) > 1:  # only runs with one History together
            assert {(keys[s.point], s.replication) for s in t} == {(keys[t[0].point], t[0].replication)}
            assert keys[t[0].point] is not None
    assert len(tasks) >= min(workers, len(runs))


@pytest.fixture
def simulations(monkeypatch):
    """How many Histories ``sim.experiments.core`` simulates (in this process)."""
    import sim.experiments.core

    count = []
    real = sim.experiments.core.simulate
    monkeypatch.setattr(sim.experiments.core, "simulate", lambda *a, **k: count.append(1) or real(*a, **k))
    return count


def _contract_runs(tiny, replications=2):
    """Points 0 and 1: two contracts on one scenario; point 2: another scenario."""
    west_kent = load_contract(CONTRACT)
    contracts = [contract_raw(west_kent), contract_raw(west_kent.with_changes({"offending.pot": 400_000}))]
    fewer = tiny.with_changes({"capacity.recovery_workers": 18}).raw()
    runs = [RunSpec(p, r, tiny.raw(), contracts[p], SEED) for p in range(2) for r in range(replications)]
    return runs + [RunSpec(2, r, fewer, contracts[0], SEED) for r in range(replications)]


def test_shared_history_gives_what_each_run_gives_alone(tiny, simulations, tmp_path):
    """Two contracts on one scenario (behaviour off): the History is simulated once and settled under each, and
    the tables are exactly those of runs simulated alone; a different scenario is never grouped with them. A
    store keeps every run, and a rerun simulates nothing."""
    runs = _contract_runs(tiny)
    seen = []
    table = run_specs(runs, progress=seen.append, store=tmp_path / "store")
    assert len(simulations) == 4  # 6 runs: one History per replication of points 0 and 1, two for point 2
    alone = pd.concat([run_one(s) for s in runs], ignore_index=True)
    pd.testing.assert_frame_equal(table, alone, check_exact=True)
    assert seen == list(range(1, len(runs) + 1))  # progress counts runs, not tasks
    del simulations[:]
    pd.testing.assert_frame_equal(run_specs(runs, store=tmp_path / "store"), table)
    assert simulations == []
    shared = run_shared([runs[0], runs[2]])  # replication 0 of both contracts
    pd.testing.assert_frame_equal(shared[1], run_one(runs[2]), check_exact=True)
    term = table[(table["period"] == "term") & (table["metric"] == "income")].set_index(["point", "replication"])
    assert term.loc[(0, 0), "value"] != term.loc[(1, 0), "value"]  # the contracts do differ


def test_uncertain_contract_terms_under_a_shared_history(tiny, simulations):
    """A ``contract.`` key path in [uncertainty] draws each run's contract; the drawn scenario, and so the History,
    is the same for both contracts."""
    uncertain = tiny.with_changes({"uncertainty": {
        "contract.offending.pot": {"dist": "triangular", "low": 1e5, "mode": 2e5, "high": 3e5},
        "capacity.recovery_workers": {"dist": "triangular", "low": 24, "mode": 30, "high": 36}}}).raw()
    west_kent = load_contract(CONTRACT)
    contracts = [contract_raw(west_kent), contract_raw(west_kent.with_changes({"pbr_share.by_year": [0.5, 0.5, 0.5, 0.5]}))]
    runs = [RunSpec(p, 0, uncertain, contracts[p], SEED) for p in range(2)]
    table = run_specs(runs)
    assert len(simulations) == 1
    alone = pd.concat([run_one(s) for s in runs], ignore_index=True)
    pd.testing.assert_frame_equal(table, alone, check_exact=True)


def test_a_failing_run_keeps_the_runs_before_it_in_its_task(tiny, monkeypatch, tmp_path):
    import sim.experiments.core

    real = sim.experiments.core.settle

    def settle(contract, history, scenario):
        if contract.offending.pot == 400_000:
            raise RuntimeError("a settlement that fails")
        return real(contract, history, scenario)

    monkeypatch.setattr(sim.experiments.core, "settle", settle)
    runs = _contract_runs(tiny, replications=1)
    with pytest.raises(RuntimeError, match="a settlement that fails"):
        run_specs(runs, store=tmp_path / "store")
    assert (0, 0) in ResultStore(tmp_path / "store").done()  # simulated with (1, 0), finished before it failed


def test_a_failed_shared_task_crosses_processes_whole():
    import pickle

    failed = pickle.loads(pickle.dumps(SharedRunFailed([pd.DataFrame({"value": [1.0]})], KeyError("pot"))))
    assert isinstance(failed.error, KeyError) and failed.results[0]["value"].tolist() == [1.0]
    assert "KeyError" in str(failed)


def test_grouping_reads_the_scenario_as_data(tiny):
    """A date written as a date or as text is the same scenario: the runs share a History, and agree with
    runs alone. Runs that hand back their History (not aggregate) keep their own."""
    from sim.experiments.core import _check_points

    as_text = tiny.raw()
    as_text["horizon"] = {**as_text["horizon"], "contract_start": as_text["horizon"]["contract_start"].isoformat()}
    runs = [RunSpec(0, 0, tiny.raw(), None, SEED), RunSpec(1, 0, as_text, contract_raw(CONTRACT), SEED)]
    shared = run_shared(runs)
    pd.testing.assert_frame_equal(shared[1], run_one(runs[1]), check_exact=True)
    _, keys, _ = _check_points([*runs, RunSpec(2, 0, tiny.raw(), None, SEED, aggregate=False)])
    assert keys[0] == keys[1] is not None and keys[2] is None


def test_a_responding_provider_keeps_its_own_history(tiny):
    """With provider behaviour on, the History depends on the contract: such runs are never grouped, and
    ``run_shared`` refuses them."""
    from sim.experiments.core import _check_points

    responding = tiny.with_changes({"behaviour.mode": "stress", "horizon.years": 2}).raw()
    c = contract_raw(CONTRACT)
    runs = [RunSpec(0, 0, responding, c, SEED), RunSpec(1, 0, responding, c, SEED),
            RunSpec(2, 0, tiny.raw(), c, SEED), RunSpec(3, 0, tiny.raw(), None, SEED)]
    _, keys, _ = _check_points(runs)
    assert keys[0] is None and keys[1] is None and keys[2] == keys[3] is not None
    assert [len(t) for t in shared_histories(runs, keys)] == [1, 1, 2]
    with pytest.raises(SharedRunFailed, match="responds to the contract") as failed:
        run_shared(runs[:2])
    assert isinstance(failed.value.error, ValueError) and failed.value.results == []
    with pytest.raises(ValueError, match="do not share a History"):
        run_shared([runs[2], RunSpec(4, 1, tiny.raw(), c, SEED)])  # another replication


# --- replications ------------------------------------------------------------------------------------------------


def test_replicate_summary_and_store(tiny, tmp_path):
    seen = []
    reps = replicate(tiny, 6, seed=5, store=tmp_path / "reps", progress=seen.append)
    assert isinstance(reps, Replications) and reps.n == 6 and seen[-1] == 6
    s = reps.summary()
    assert list(s.columns) == ["period", "category", "metric", "n", "mean", "sd", "ci_low", "ci_high", "ui_low",
                               "ui_high", "small_sample"]
    finite = s[s["n"] >= 2]
    assert ((finite["ci_low"] <= finite["mean"]) & (finite["mean"] <= finite["ci_high"])).all()
    assert ((finite["ui_low"] <= finite["mean"]) & (finite["mean"] <= finite["ui_high"])).all()
    assert (s["small_sample"] == (s["n"] < 5)).all()  # 6 replications, fewer finite values for a few
    counts = s[~s["metric"].isin(["margin", "community_savings", "outcome_payments"])]
    assert (counts["ci_low"].dropna() >= 0).all()  # a count's interval is not reported below 0
    row = s[(s["period"] == "2012-13") & (s["category"] == "all") & (s["metric"] == "in_treatment")].iloc[0]
    values = reps.table[(reps.table["category"] == "all") & (reps.table["metric"] == "in_treatment")]["value"]
    assert row["n"] == 6 and row["sd"] > 0
    assert (row["ui_low"], row["ui_high"]) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    assert row["mean"] == pytest.approx(values.mean())
    half = stats.t.ppf(0.975, 5) * values.std(ddof=1) / math.sqrt(6)
    assert row["ci_high"] - row["mean"] == pytest.approx(half)

    # a rerun into the same store computes nothing and gives the same table
    again_seen = []
    again = replicate(tiny, 6, seed=5, store=tmp_path / "reps", progress=again_seen.append)
    pd.testing.assert_frame_equal(again.table, reps.table)
    assert again_seen == [6]
    # a different experiment is refused rather than mixed in
    with pytest.raises(StoreMismatch, match="seed"):
        replicate(tiny, 6, seed=6, store=tmp_path / "reps")
    # without a store, keeping the Histories: the same table
    kept = replicate(tiny, 1, seed=5, aggregate=False)
    pd.testing.assert_frame_equal(kept.table, reps.table[reps.table["replication"] == 0].reset_index(drop=True))
    assert list(kept.histories) == [0] and len(kept.histories[0].spells) > 0


def test_summarise_by_hand():
    table = pd.DataFrame({"point": 0, "replication": [0, 1, 2, 0], "period": ["y", "y", "y", "y"],
                          "category": "all", "metric": ["a", "a", "a", "b"], "value": [1.0, 2.0, 6.0, np.nan]})
    s = summarise(table).set_index("metric")
    assert s.loc["a", "n"] == 3 and s.loc["a", "mean"] == 3.0
    assert s.loc["a", "sd"] == pytest.approx(math.sqrt(7))
    assert s.loc["a", "ci_high"] == pytest.approx(3 + stats.t.ppf(0.975, 2) * math.sqrt(7 / 3))
    assert s.loc["b", "n"] == 0 and math.isnan(s.loc["b", "ci_low"])


def _synthetic(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(0, r, "2012-13", "all", m, v) for m, vs in values.items() for r, v in enumerate(vs)]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_replications_needed_by_hand():
    """Alternating 90, 110 (sd about 10 around 100). After an even n the mean is 100 and s = 10 sqrt(n / (n - 1)),
    so the relative half-width is t_{n-1} * 10 / sqrt(n - 1) / 100; after an odd n, mean = 100 - 10 / n and
    s = 10 sqrt((n + 1) / n). With a 5% target: n = 18 gives t_17 = 2.1098 -> 5.12%; n = 19 gives mean 99.474,
    s = 10.260, t_18 = 2.1009 -> 4.97%; and every n from 19 on is within 5%, so 19 is the answer (k_limit = 5 needs
    replications 20-24 to exist: with 24 it is confirmed, with 23 only provisional)."""
    alternating = [90.0 if r % 2 == 0 else 110.0 for r in range(40)]
    for n in (18, 19):
        x = np.array(alternating[:n])
        d = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n) / x.mean()
        assert (d > 0.05) if n == 18 else (d <= 0.05)
    found = replications_needed(_synthetic({"a": alternating[:24]}), ["a"])
    assert found.n == 19 and found.table["n_needed"].item() == 19
    short = replications_needed(_synthetic({"a": alternating[:23]}), ["a"])
    assert math.isnan(short.n) and short.table["n_provisional"].item() == 19 and not short.enough
    assert "more replications needed" in str(short)


def test_replications_needed_look_ahead_and_several_metrics():
    """A metric that meets the target early by chance and then leaves it is not counted as converged there."""
    steady = [100.0] * 12  # never varies: 2 replications, confirmed by the next 5
    lucky = [100.0, 100.5, 100.2, 150.0, 50.0, 100.0, 99.0, 101.0, 100.0, 100.0, 100.0, 100.0]
    table = _synthetic({"steady": steady, "lucky": lucky, "other": [1.0] * 12})
    found = replications_needed(table, ["steady", "lucky"], relative_half_width=0.3, k_limit=5)
    by = found.table.set_index("metric")
    assert set(by.index) == {"steady", "lucky"}
    assert by.loc["steady", "n_needed"] == 2
    # by hand (t_{n-1} s_n / sqrt(n) / mean_n): n = 2: 3.2%, 3: 0.6%, then the 150 and the 50 give 35.1%, 43.8%,
    # 33.1% at n = 4, 5, 6 and 26.7%, 22.3%, 19.2%, 16.9%, 15.0%, 13.5% at n = 7 ... 12: within 30% from 7 on, and
    # 8 to 12 exist to confirm it
    x = np.array(lucky)
    d = {n: stats.t.ppf(0.975, n - 1) * x[:n].std(ddof=1) / math.sqrt(n) / x[:n].mean() for n in range(2, 13)}
    assert [n for n in d if d[n] <= 0.3] == [2, 3, 7, 8, 9, 10, 11, 12]
    assert by.loc["lucky", "n_needed"] == 7
    assert found.n == 7
    with pytest.raises(ValueError, match="not in the table"):
        replications_needed(table, ["missing"])


def test_contract_parameters_can_be_uncertain():
    """A ``contract.`` key path in [uncertainty] changes the contract of each draw: under a block contract the
    income of a contract year is exactly the drawn annual value."""
    from sim.config.contract import load_contract
    from sim.experiments.core import RunSpec, contract_raw, run_one

    scenario = load_scenario(SCENARIOS / "west_kent.toml").with_changes({
        "horizon.warmup_years": 2, "horizon.years": 1, "behaviour.mode": "off",
        "uncertainty": {"contract.annual_value": {"dist": "triangular", "low": 3e6, "mode": 4e6, "high": 5e6}}})
    block = contract_raw(load_contract(SCENARIOS / "contracts" / "block.toml"))
    incomes, drawn = [], []
    for r in range(2):
        table = run_one(RunSpec(0, r, scenario.raw(), block, seed=9))
        row = table[(table["metric"] == "income") & (table["period"] == "contract year 1")]
        incomes.append(float(row["value"].iloc[0]))
        drawn.append(float(table.loc[table["metric"] == "contract.annual_value", "value"].iloc[0]))
    assert incomes == pytest.approx(drawn) and drawn[0] != drawn[1]
    assert all(3e6 <= d <= 5e6 for d in drawn)


# --- probabilistic sensitivity analysis on paired comparisons ------------------------------------------------------

PSA = {"treatment.drop_out_rate_per_year.by_group.opiate": {"dist": "gamma", "mean": 0.137, "shape": 25},
       "costs.rehab_per_week": {"dist": "triangular", "low": 300, "mode": 600, "high": 1000},
       "contract.offending.pot": {"dist": "triangular", "low": 100_000, "mode": 200_000, "high": 300_000}}


def test_compare_applies_the_uncertainty_shared_by_every_design_and_on_any_executor(tiny):
    from sim.money.settlement import check

    uncertain = tiny.with_changes({"uncertainty": PSA, "horizon.years": 2})
    block, pbr = load_contract(SCENARIOS / "contracts" / "block.toml"), load_contract(CONTRACT)
    for c in (block, pbr):
        check(c, uncertain, compared_with=[block, pbr])  # the pot is PbR's: the block contract ignores it
    serial = compare(uncertain, [block, pbr], 4, seed=SEED, runs_per_draw=2)
    with ProcessExecutor(2) as executor:
        parallel = compare(uncertain, [block, pbr], 4, seed=SEED, runs_per_draw=2, executor=executor)
    pd.testing.assert_frame_equal(serial.term, parallel.term)
    pd.testing.assert_frame_equal(serial.parameters, parallel.parameters)
    p = serial.parameters.set_index("replication")
    assert list(p["draw"]) == [0, 0, 1, 1]
    assert p.loc[0].equals(p.loc[1]) and not p.loc[0].equals(p.loc[2])  # two runs of each draw
    # the contract-blind provider: both designs saw one History per replication, and the histories differ
    prints = serial.fingerprints
    assert (prints.groupby("replication")["history"].nunique() == 1).all()
    assert prints.drop_duplicates("replication")["history"].nunique() == 4
    # the drawn pot is PbR's pot: a settled year's payment is the drawn pot times the share earned
    years = serial.by_year[(serial.by_year["contract"] == pbr.name) & serial.by_year["observed"].astype(bool)
                           & (serial.by_year["offending_fraction_paid"] > 0)]
    assert len(years)
    pot = years["offending_payment"] / years["offending_fraction_paid"]
    assert np.allclose(pot.to_numpy(), p.loc[years["replication"], "contract.offending.pot"].to_numpy())
    # the same parameter draws as replicate's (the same streams), and the same costs: spend differs, cost does not
    assert (serial.paired_differences().set_index("metric").loc["cost", "mean_difference"] == 0)
    summary = serial.summary()
    for m in ("margin", "spend"):
        assert (summary[f"{m}_ui_low"] <= summary[m]).all() and (summary[m] <= summary[f"{m}_ui_high"]).all()
    assert summary["small_sample"].all() and summary["losses"].str.contains(r" of | in ").all()


def test_an_uncertain_contract_path_no_design_has_is_refused_naming_it(tiny):
    from sim.config.contract import ContractError
    from sim.money.settlement import check

    uncertain = tiny.with_changes({"uncertainty": {"contract.offending.pot": PSA["contract.offending.pot"]}})
    block = load_contract(SCENARIOS / "contracts" / "block.toml")
    with pytest.raises(ContractError, match="contract.offending.pot.*no number at 'offending.pot'"):
        check(block, uncertain, compared_with=[block])


def test_replicating_to_a_precision_stops_when_the_look_ahead_confirms_it_or_at_the_limit(tiny, tmp_path):
    from sim.experiments.core import convergence, replicate_to_precision

    reps, needed = replicate_to_precision(tiny, 0.05, ["in_treatment"], tmp_path / "loose", seed=5, start=3,
                                          limit=40)
    assert needed.enough and reps.n >= needed.n + 5  # the answer and its look-ahead of 5 replications were run
    assert reps.n < 40
    plain = replicate(tiny, reps.n, seed=5)  # the same runs as replicate's, whatever the rounds
    pd.testing.assert_frame_equal(reps.table, plain.table)
    strict, short = replicate_to_precision(tiny, 1e-6, ["in_treatment"], tmp_path / "strict", seed=5, start=3,
                                           limit=6)
    assert not short.enough and strict.n == 6 and "more replications needed" in str(short)
    curve = convergence(strict.table, short)
    assert set(curve["replications"]) == {2, 3, 4, 5, 6}
    assert len(curve) == 5 * len(short.table)
