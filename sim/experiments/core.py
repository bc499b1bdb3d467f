"""Experiments at scale: runs described as data, executors that run them anywhere, and replications with error bars.

A run is a :class:`RunSpec`: a point (an index into an experiment's parameter sets), a replication number, the
scenario and contract as plain dicts (workers get scenario data, never pickled simulators), the root seed and
the mode. :func:`run_one` turns a spec into one tidy long table with columns ``point, replication, period,
category, metric, value``:

* the yearly measures of :func:`sim.analysis.measures.by_period` (financial years, period ``"2012-13"``...), for all
  clients (category ``"all"``) and per substance group (category = the group), for the columns in
  ``MEASURE_COLUMNS`` (capacity use for all clients only; shares empty where undefined are NaN rows);
* under a contract (category ``"contract"``), per contract year (period ``"contract year N"``) the metrics of
  ``CONTRACT_METRICS`` (as ``pbrsim compare`` computes them) and ``observed`` (1 if the whole contract year lies
  inside the horizon, else 0); and over the term (period ``"term"``) their totals over the observed years
  (``working_capital_needed``: the largest; ``spend_per_planned_exit``: spend / planned exits).

Seeds: replication ``r`` of every point uses ``SeedSequence(seed, spawn_key=(r,))`` — the ``r``-th child of
``SeedSequence(seed)``, as in :mod:`sim.experiments.compare` — so every point of a sweep sees the same random numbers in
replication ``r`` (common random numbers across points), and a result never depends on which worker ran it or
when. Runs whose History cannot depend on their contract (the same scenario and replication, the provider's
behaviour off) are one task: the History is simulated and measured once and settled under each contract
(:func:`shared_histories`, :func:`run_shared`), giving exactly the tables of runs simulated one by one.
Executors (:mod:`sim.experiments.executors`) share one interface,
``executor.map(function, specs, progress=None)``, yielding results as runs finish; :func:`run_specs` sorts the
final table, so the same specs give identical tables whatever the executor or number of workers. With a
:class:`sim.experiments.store.ResultStore`, every finished run is written to disk as soon as its task ends, and a killed
experiment resumes without recomputing finished runs.

>>> from sim import load_scenario                                              # doctest: +SKIP
>>> reps = replicate(load_scenario("scenarios/west_kent.toml"), 20, seed=1)    # doctest: +SKIP
>>> reps.summary()            # per period, category and metric: n, mean, sd, 95% CI     # doctest: +SKIP
>>> replications_needed(reps.table, ["planned_exits", "in_treatment"]).n      # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis import measures
from sim.config.contract import Contract, contract_from_dict, load_contract
from sim.config.scenario import Scenario, scenario_from_dict
from sim.core.errors import unsettled_reported
from sim.core.measures import PERIOD_MEASURES
from sim.engine.history import History
from sim.engine.system import simulate
from sim.experiments.executors import LOG, SerialExecutor, make_executor
from sim.experiments.providers import provider_model
from sim.experiments.seeds import replication_seed
from sim.experiments.signals import note_kept
from sim.experiments.statistics import SMALL_SAMPLE, t_half_width
from sim.experiments.store import COLUMNS, KEY_COLUMNS, ResultStore, StoreMismatch, concat, digest, empty_table, tidy
from sim.experiments.uncertainty import drawn_scenario, variance_split
from sim.money.settlement import METRICS as _METRICS
from sim.money.settlement import Settlement, check, contract_year_metrics, settle, term_metrics

__all__ = [
    "RunSpec", "run_one", "run_shared", "SharedRunFailed", "run_specs", "shared_histories", "contract_year_metrics",
    "SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "ProgressBar", "progress_bar", "replicate",
    "Replications", "summarise", "replications_needed", "ReplicationsNeeded", "ResultStore", "StoreMismatch",
    "COLUMNS", "KEY_COLUMNS", "MEASURE_COLUMNS", "CONTRACT_METRICS", "EXECUTORS", "empty_table", "tidy", "concat",
]

MEASURE_COLUMNS = PERIOD_MEASURES  # the numeric columns of measures.by_period (units: sim.core.measures); the last
                                   # three: all clients only
MEASURE_BREAKDOWNS = (None, "group")
CONTRACT_METRICS = tuple(_METRICS)  # income, outcome_payments, cost, margin, ... (sim.money.settlement.METRICS)
CONTRACT_CATEGORY = "contract"
PARAMETER_PERIOD, PARAMETER_CATEGORY = "parameters", "psa"  # the parameter draw of a run (see sim.experiments.uncertainty)
TERM_PERIOD = "term"


# --- one run ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment, as data (small and picklable).

    ``scenario`` is ``Scenario.raw()`` (after any changes); ``contract`` a contract's raw dict or None;
    ``seed`` the experiment's root seed (replication ``r`` uses ``SeedSequence(seed, spawn_key=(r,))``);
    ``aggregate``: ship back only the tidy table (True) or the History too (False). Every replication of a point
    has the same scenario, contract, seed and mode."""

    point: int
    replication: int
    scenario: dict
    contract: dict | None = None
    seed: int = 0
    aggregate: bool = True
    runs_per_draw: int = 1  # probabilistic sensitivity analysis: replication r uses parameter draw r // this

    __hash__ = None  # holds dicts

    @property
    def key(self) -> tuple[int, int]:
        return (self.point, self.replication)

    def seed_sequence(self) -> np.random.SeedSequence:
        return replication_seed(self.seed, self.replication)

    def history_digest(self) -> str:
        """A hash of what the run's History depends on when its provider is blind to the contract: the scenario,
        the seed and the draws (not the contract, the replication number or the mode)."""
        return digest({"scenario": self.scenario, "seed": self.seed, "runs_per_draw": self.runs_per_draw})

    def inputs_digest(self) -> str:
        """A hash of what determines the point's results (not the replication number)."""
        return digest({"scenario": self.scenario, "contract": self.contract, "seed": self.seed,
                       "aggregate": self.aggregate, "runs_per_draw": self.runs_per_draw})

    def build(self) -> tuple[Scenario, Contract | None]:
        """The validated scenario and contract."""
        scenario = scenario_from_dict(self.scenario, f"<point {self.point}>")
        contract = None
        if self.contract is not None:
            contract = contract_from_dict(self.contract, f"<contract of point {self.point}>")
        return scenario, contract


def scenario_raw(scenario: Scenario | dict) -> dict:
    return scenario if isinstance(scenario, dict) else scenario.raw()


def contract_raw(contract: Contract | dict | str | os.PathLike | None) -> dict | None:
    """A contract as a plain dict (the file as written, after ``extends``), or None."""
    if contract is None or isinstance(contract, dict):
        return contract
    if isinstance(contract, (str, os.PathLike)):
        contract = load_contract(contract)
    return contract.raw()


def run_one(spec: RunSpec, keep_history: bool | None = None) -> pd.DataFrame | tuple[pd.DataFrame, History]:
    """Simulate one run and return its tidy long table (see the module docstring).

    With ``keep_history`` (default: ``not spec.aggregate``) return ``(table, history)``."""
    scenario, contract, parts = _inputs(spec)
    history = simulate(scenario, spec.seed_sequence(), provider=provider_model(scenario, contract))
    return _result(spec, scenario, contract, parts, history, measure_rows(history), keep_history)


def run_shared(specs: list[RunSpec]) -> list:
    """Runs that differ only in their contract, with a provider blind to it: the same replication of the same
    scenario, so the same History (common random numbers). It is simulated and measured once, then settled under
    each run's contract. Each result is exactly what ``run_one(spec)`` returns (see :func:`shared_histories`).
    If a run fails, the runs before it are not lost: :class:`SharedRunFailed` carries them and the error."""
    results, history, measured = [], None, None
    first = specs[0]
    shared = (first.history_digest(), first.replication)
    for spec in specs:
        if (spec.history_digest(), spec.replication) != shared:
            raise ValueError(f"runs {first.key} and {spec.key} differ in scenario, seed or replication: they do "
                             "not share a History")
        try:
            scenario, contract, parts = _inputs(spec)
            if provider_model(scenario, contract) is not None:
                raise ValueError(f"run {spec.key}: its provider responds to the contract, so it has a History of "
                                 "its own")
            if history is None:
                history = simulate(scenario, spec.seed_sequence())
                measured = measure_rows(history)
            results.append(_result(spec, scenario, contract, parts, history, measured))
        except Exception as e:
            raise SharedRunFailed(results, e) from e
    return results


class SharedRunFailed(Exception):
    """A run of a task of runs sharing a History failed: ``results``, the runs finished before it, and ``error``."""

    def __init__(self, results: list, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.results, self.error = results, error

    def __reduce__(self):  # across processes: the results and the error, not the message alone
        return (type(self), (self.results, self.error))


def _inputs(spec: RunSpec) -> tuple[Scenario, Contract | None, list[pd.DataFrame]]:
    """The run's scenario and contract, with its parameter draw in place under uncertainty (then also the rows
    that record the draw)."""
    scenario, contract = spec.build()
    parts = []
    if scenario.uncertainty:  # one parameter set per draw, recorded beside the results
        draw = spec.replication // max(spec.runs_per_draw, 1)
        if contract is None:
            scenario, values = drawn_scenario(scenario, spec.seed, draw)
        else:
            scenario, contract, values = drawn_scenario(scenario, spec.seed, draw, contract)
        parts.append(pd.DataFrame({"period": PARAMETER_PERIOD, "category": PARAMETER_CATEGORY,
                                   "metric": ["draw", *values], "value": [float(draw), *values.values()]}))
    return scenario, contract, parts


def _result(spec: RunSpec, scenario: Scenario, contract: Contract | None, parts: list[pd.DataFrame],
            history: History, measured: pd.DataFrame, keep_history: bool | None = None):
    parts = [*parts, measured]
    if contract is not None:
        parts.append(contract_rows(settle(contract, history, scenario)))
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "point", spec.point)
    table.insert(1, "replication", spec.replication)
    table = tidy(table)
    keep = (not spec.aggregate) if keep_history is None else keep_history
    return (table, history) if keep else table


def measure_rows(history: History) -> pd.DataFrame:
    """A run's yearly measures (all groups, then by group) as tidy rows of the results table."""
    frames = []
    for by in MEASURE_BREAKDOWNS:
        yearly = measures.by_period(history, "year", by)
        cols = [c for c in MEASURE_COLUMNS if c in yearly.columns]
        frames.append(yearly.melt(id_vars=["period", "category"], value_vars=cols, var_name="metric"))
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out


def contract_rows(settlement: Settlement) -> pd.DataFrame:
    """A settlement's contract-year and term metrics as tidy rows of the results table."""
    by_year = contract_year_metrics(settlement)
    yearly = by_year.astype(float)
    yearly.index = [f"contract year {k}" for k in by_year.index]
    long = yearly.rename_axis("period").reset_index().melt(id_vars="period", var_name="metric")
    term = term_metrics(by_year)
    term_rows = pd.DataFrame({"period": TERM_PERIOD, "metric": term.index, "value": term.to_numpy(dtype=float)})
    out = pd.concat([long, term_rows], ignore_index=True)
    out.insert(1, "category", CONTRACT_CATEGORY)
    return out


def replications(function: Callable, tasks: Iterable, executor=None,
                 progress: Callable[[int], Any] | None = None) -> list:
    """The one replication loop: ``function(task)`` for every task (replication ``r``'s task builds its seed with
    :func:`sim.experiments.seeds.replication_seed`), on ``executor`` (default: this process, one after another),
    results in task order whichever order the executor finishes them in; ``progress(done)`` after each.
    ``function`` must be a module-level function when the executor runs it in other processes."""
    jobs = [(function, i, task) for i, task in enumerate(tasks)]
    done = (executor or SerialExecutor()).map(_indexed, jobs, progress)
    return [result for _, result in sorted(done, key=lambda d: d[0])]


def _indexed(job: tuple) -> tuple[int, Any]:
    function, i, task = job
    return i, function(task)



# --- running many ----------------------------------------------------------------------------------------------


def run_specs(specs: Iterable[RunSpec], executor=None, store: ResultStore | str | os.PathLike | None = None,
              progress: Callable[[int], Any] | None = None, *, function: Callable = run_one,
              experiment: dict | None = None, histories: dict | None = None) -> pd.DataFrame:
    """Run ``specs`` on ``executor`` (default serial) and return their tidy table, sorted by
    (point, replication, period, category, metric).

    With a ``store`` (a :class:`ResultStore` or a folder) each finished run is written when its task ends, runs
    already there are skipped, and the table is read back from the store at the end; ``experiment`` (JSON-like) is
    the experiment's spec, checked against the one stored (see :meth:`ResultStore.begin`). Without a store,
    results are kept in memory. ``progress(done)`` receives the number of finished runs, counting runs found in
    the store. ``function(spec)`` returns a table, or ``(table, history)``: the History then goes into
    ``histories`` (a dict keyed by (point, replication)) if given. With the default ``run_one``, runs that share
    a History are one task (:func:`shared_histories`). Every spec is checked (scenario, contract) before anything
    runs.
    """
    specs = list(specs)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        seen, dup = set(), None
        for k in keys:
            if k in seen:
                dup = k
                break
            seen.add(k)
        raise ValueError(f"run (point, replication) = {dup} appears more than once")
    points, history_keys, scenarios = _check_points(specs)
    if isinstance(store, (str, os.PathLike)):
        store = ResultStore(store)
    done_before: set = set()
    if store is not None:
        store.begin(experiment, points)
        store.clean()
        damaged = sorted(k for k in store.discard_damaged() if k in set(keys))
        if damaged:
            shown = ", ".join(f"point={p}/replication={r}" for p, r in damaged[:5]) + (" ..." if len(damaged) > 5
                                                                                        else "")
            LOG.warning(f"recomputing {len(damaged)} run{'s' if len(damaged) != 1 else ''} whose stored part was "
                        f"damaged or unverified: {shown}")
        done_before = store.done() & set(keys)
    todo = [s for s in specs if s.key not in done_before]
    offset = len(done_before)
    if progress is not None and offset:
        progress(offset)
    report = None if progress is None else (lambda n: progress(offset + n))

    own = executor is None or isinstance(executor, str)
    if executor is None:
        executor = SerialExecutor()
    elif isinstance(executor, str):
        executor = make_executor(executor)
    tables: list[pd.DataFrame] = []  # the latest results; merged into compact chunks as they come
    chunks: list[pd.DataFrame] = []
    results: Iterable = ()
    try:
        with unsettled_reported(scenarios, stacklevel=4):
            if function is run_one:  # runs that share a History simulate it once
                tasks = shared_histories(todo, history_keys, getattr(executor, "workers", 1))
                results = _flatten(executor.map(_run_task, tasks) if tasks else (), report)
            else:
                results = executor.map(function, todo, report) if todo else ()
            for result in results:
                table, history = result if isinstance(result, tuple) else (result, None)
                key = _key_of(table)
                if history is not None and histories is not None:
                    histories[key] = history
                if store is not None:
                    store.write(key, table)
                else:
                    tables.append(table)
                    if len(tables) >= 256:
                        chunks.append(concat(tables))
                        tables = []
    except KeyboardInterrupt as interrupt:  # the command line says what was kept
        if store is not None:
            note_kept(interrupt, store)
        raise
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # stop the executor's runs now, not when a traceback is freed
            close()
        if own:
            executor.close()
    if store is not None:
        return store.load(keys)
    return concat(chunks + tables)


def _run_task(specs: list[RunSpec]) -> list:
    return run_shared(specs) if len(specs) > 1 else [run_one(specs[0])]


def _flatten(task_results: Iterable[list], progress: Callable[[int], Any] | None) -> Iterator:
    """Each task's results, one run at a time, counting finished runs for ``progress``. A task whose run failed
    gives the runs it finished before the error is raised (after the tasks under way, as the executors do)."""
    done = 0

    def counted(results):
        nonlocal done
        for result in results:
            done += 1
            if progress is not None:
                progress(done)
            yield result

    try:
        for results in task_results:
            yield from counted(results)
    except SharedRunFailed as failed:
        yield from counted(failed.results)
        raise failed.error from failed
    finally:
        close = getattr(task_results, "close", None)
        if close is not None:
            close()


def _key_of(table: pd.DataFrame) -> tuple[int, int]:
    if not len(table):
        raise ValueError("a run returned an empty table")
    return int(table["point"].iloc[0]), int(table["replication"].iloc[0])


def _check_points(specs: list[RunSpec]) -> tuple[dict[int, str], dict[int, str | None], list[Scenario]]:
    """Digest of each point's inputs (every replication of a point must share them), and of what its Histories
    depend on (:meth:`RunSpec.history_digest`) when they cannot depend on its contract: the provider blind to it
    (behaviour off, or no contract) and the History not handed back (aggregate mode); else None; and each point's
    scenario. Validates each point once."""
    points: dict[int, str] = {}
    histories: dict[int, str | None] = {}
    scenarios: list[Scenario] = []
    for s in specs:
        d = s.inputs_digest()
        if s.point in points:
            if points[s.point] != d:
                raise ValueError(f"the replications of point {s.point} differ in scenario, contract, seed or mode")
            continue
        points[s.point] = d
        scenario, contract = s.build()
        scenarios.append(scenario)
        if contract is not None:
            check(contract, scenario)
        blind = contract is None or scenario.behaviour.mode == "off"
        # a run that hands back its History keeps one of its own: Histories in the results are never shared
        histories[s.point] = s.history_digest() if blind and s.aggregate else None
    return points, histories, scenarios


def shared_histories(specs: list[RunSpec], history_keys: dict[int, str | None], workers: int = 1,
                     largest: int = 16) -> list[list[RunSpec]]:
    """The runs as tasks: runs with the same History (the same replication of points whose Histories digest the
    same, see :func:`_check_points`) go together, to be simulated once (:func:`run_shared`); every other run is a
    task of its own. Fewer tasks than workers are split so every worker has one (each part simulates the History
    again); no task holds more than ``largest`` runs, since work under way when an experiment is stopped is lost.
    Tasks keep the order of their first run."""
    groups: dict[tuple, list[RunSpec]] = {}
    for i, spec in enumerate(specs):
        key = history_keys.get(spec.point)
        groups.setdefault((key, spec.replication) if key is not None else (None, i), []).append(spec)
    tasks = []
    for group in groups.values():
        n = len(group)
        parts = math.ceil(n / largest)  # of near-equal size
        bounds = [i * n // parts for i in range(parts + 1)]
        tasks += [group[a:b] for a, b in zip(bounds, bounds[1:])]
    while len(tasks) < workers:  # halve the largest task, in place
        i = max(range(len(tasks)), key=lambda k: len(tasks[k]), default=None)
        if i is None or len(tasks[i]) < 2:
            break
        half = len(tasks[i]) // 2
        tasks[i:i + 1] = [tasks[i][:half], tasks[i][half:]]
    return tasks


# --- replications ----------------------------------------------------------------------------------------------


@dataclass
class Replications:
    """``n`` replications of one scenario (point 0): the tidy long ``table``, and Histories if kept."""

    table: pd.DataFrame
    scenario: str
    seed: int
    contract: str | None = None
    histories: dict | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.table["replication"].nunique())

    def summary(self, confidence: float = 0.95) -> pd.DataFrame:
        """Per (period, category, metric): n, mean, sd, ci_low, ci_high (t-interval)."""
        return summarise(self.table, ("period", "category", "metric"), confidence)

    def needed(self, metrics, relative_half_width: float = 0.05, confidence: float = 0.95,
               k_limit: int = 5) -> ReplicationsNeeded:
        return replications_needed(self.table, metrics, relative_half_width, confidence, k_limit)


# figures that can be below zero; every other measure and contract figure is a count, rate, share or sum of
# pounds paid, whose interval is not reported below 0 (a t-interval at n = 2 can be)
SIGNED_METRICS = frozenset({"margin", "community_savings", "outcome_payments"})


def summarise(table: pd.DataFrame, by: Iterable[str] = ("point", "period", "category", "metric"),
              confidence: float = 0.95) -> pd.DataFrame:
    """Across replications, per group of ``by``: ``n`` (finite values), ``mean``, ``sd``, the ``confidence``
    t-interval of the mean (``ci_low``, ``ci_high``; NaN with fewer than two values; the lower bound not below 0
    for a quantity that cannot be, see :data:`SIGNED_METRICS`), the ``confidence`` uncertainty interval of the
    values themselves (``ui_low``, ``ui_high``: percentiles over replications, and over parameter draws under
    ``[uncertainty]``) and ``small_sample`` (fewer than 5 values; :mod:`sim.experiments.statistics`). A parameter
    draw's index is not a result and is left out. Works on a partly finished store's table too."""
    by = list(by)
    values = table.assign(value=table["value"].where(np.isfinite(table["value"])))
    if "period" in values.columns:
        values = values[~((values["period"].astype(str) == PARAMETER_PERIOD) & (values["metric"].astype(str) == "draw"))]
    g = values.groupby(by, observed=True, sort=True)["value"]
    tail = (1 - confidence) / 2
    out = pd.DataFrame({"n": g.count(), "mean": g.mean(), "sd": g.std(ddof=1)})
    n = out["n"].to_numpy(dtype=float)
    half = t_half_width(out["sd"].to_numpy(), n, confidence)  # NaN with fewer than two (sim.experiments.statistics)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    if "metric" in by:
        metric = out.index.get_level_values("metric").astype(str)
        period = out.index.get_level_values("period").astype(str) if "period" in by else np.array([""] * len(out))
        bounded = ~np.isin(metric, list(SIGNED_METRICS)) & (period != PARAMETER_PERIOD)
        out["ci_low"] = np.where(bounded, np.maximum(out["ci_low"], 0.0), out["ci_low"])
    low, high = g.quantile(tail), g.quantile(1 - tail)
    several = out["n"] >= 2
    out["ui_low"], out["ui_high"] = low.where(several), high.where(several)
    out["small_sample"] = out["n"] < SMALL_SAMPLE
    out["n"] = out["n"].astype(np.int64)
    return out.reset_index()


def replicate(scenario: Scenario, n: int, seed: int | None = None, contract=None, executor=None,
              store: ResultStore | str | os.PathLike | None = None, progress: Callable[[int], Any] | None = None,
              aggregate: bool = True, runs_per_draw: int = 1) -> Replications:
    """``n`` replications of ``scenario`` (point 0), replication ``r`` from ``SeedSequence(seed, spawn_key=(r,))``
    (``seed`` defaults to the scenario's), optionally settled under ``contract`` (a Contract, its raw dict or a
    file). With a ``store``, finished replications are kept on disk and skipped on a rerun, and a rerun with a
    larger ``n`` adds replications. ``aggregate=False`` also keeps each History (in memory; not in the store)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    seed = int(scenario.seed if seed is None else seed)
    raw, craw = scenario_raw(scenario), contract_raw(contract)
    specs = [RunSpec(0, r, raw, craw, seed, aggregate, runs_per_draw) for r in range(n)]
    experiment = {"kind": "replicate", "scenario": raw, "contract": craw, "seed": seed, "aggregate": aggregate,
                  "runs_per_draw": runs_per_draw}
    histories = None if aggregate else {}
    table = run_specs(specs, executor, store, progress, experiment=experiment, histories=histories)
    name = scenario.name if isinstance(scenario, Scenario) else str(raw.get("name", ""))
    return Replications(table, name, seed, None if craw is None else craw.get("name"),
                        None if histories is None else {r: h for (_, r), h in sorted(histories.items())})


# --- how many replications -------------------------------------------------------------------------------------


@dataclass
class ReplicationsNeeded:
    """``table``: per output (point, period, category, metric), the replications available, the relative CI
    half-width with all of them, and ``n_needed`` (NaN: more replications needed) and ``n_provisional``; ``n``:
    the largest ``n_needed`` over the outputs (NaN if any output needs more replications)."""

    table: pd.DataFrame
    n: float
    relative_half_width: float
    confidence: float

    @property
    def enough(self) -> bool:
        return not math.isnan(self.n)

    def __str__(self) -> str:
        if self.enough:
            return (f"{int(self.n)} replications give every output a {self.confidence:.0%} CI within "
                    f"±{self.relative_half_width:.1%} of its mean")
        short = self.table[self.table["n_needed"].isna()]
        names = ", ".join(f"{r.metric} ({r.category}, {r.period})" for r in short.head(5).itertuples())
        return f"more replications needed for {len(short)} output(s): {names}"


def _relative_half_widths(x: np.ndarray, confidence: float) -> np.ndarray:
    """d[n-1] = CI half-width / |mean| of the first n values, n = 1..len(x) (d[0] = NaN)."""
    m = len(x)
    d = np.full(m, np.nan)
    if m < 2:
        return d
    y = x - x.mean()  # shift for accuracy: the variance does not change
    n = np.arange(1, m + 1, dtype=float)
    s1, s2 = np.cumsum(y), np.cumsum(y * y)
    mean = s1 / n + x.mean()
    var = np.maximum((s2 - s1 * s1 / n) / np.maximum(n - 1, 1), 0.0)
    half = t_half_width(np.sqrt(var), n, confidence)  # d[0] is set to NaN below
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(half == 0, 0.0, half / np.abs(mean))
    d[0] = np.nan
    return d


def _look_ahead(n: int, k_limit: int) -> int:
    """Hoad et al.'s f(kLimit, n): kLimit up to 100 replications, then growing in proportion to n."""
    return k_limit if n <= 100 else int(math.floor(k_limit * n / 100))


def _solution(d: np.ndarray, target: float, k_limit: int) -> tuple[float, float]:
    """(confirmed n, provisional n) for the relative half-widths ``d`` (``d[i]``: after i + 1 replications)."""
    ok = d <= target  # NaN (n = 1) compares False
    m = len(d)
    for i in range(1, m):
        if not ok[i]:
            continue
        n = i + 1
        ahead = _look_ahead(n, k_limit)
        if not ok[i:i + ahead + 1].all():  # d_n .. d_{n+ahead}, as far as they exist
            continue
        if i + ahead <= m - 1:
            return float(n), float(n)
        # the look-ahead runs past the replications there are; it does for every later n too (it never shrinks)
        return math.nan, float(n)
    return math.nan, math.nan


def replications_needed(table: pd.DataFrame, metrics, relative_half_width: float = 0.05,
                        confidence: float = 0.95, k_limit: int = 5) -> ReplicationsNeeded:
    """How many replications give each output a confidence interval within ``relative_half_width`` of its mean.

    The replications algorithm of Hoad, Robinson and Davies (2010), "Automated selection of the number of
    replications for a discrete-event simulation", Journal of the Operational Research Society 61(11),
    1632-1644: taking replications in order (replication 0, 1, ...), the relative precision after ``n`` of them is
    d_n = t_{n-1, (1+confidence)/2} * s_n / sqrt(n) / |mean_n| (cumulative mean and standard deviation). The
    answer is the smallest n with d_n <= ``relative_half_width`` that stays so for the next f(kLimit, n)
    replications, f = ``k_limit`` for n <= 100 and floor(``k_limit`` * n / 100) above (their look-ahead, which
    guards against a chance early convergence). It is confirmed only when those look-ahead replications exist;
    otherwise ``n_needed`` is NaN ("more replications needed") and ``n_provisional`` gives the smallest n that
    meets the target for every replication after it that there is. An output that never varies needs 2.

    ``metrics``: metric names (every period and category of each), or (period, category, metric) tuples.
    Values that are NaN (undefined shares) are left out. The overall ``n`` is the largest over all outputs (NaN if
    any needs more replications): run that many to meet the target for every output at once.
    """
    if not 0 < confidence < 1 or relative_half_width <= 0 or k_limit < 0:
        raise ValueError("need 0 < confidence < 1, relative_half_width > 0 and k_limit >= 0")
    metrics = [metrics] if isinstance(metrics, (str, tuple)) else list(metrics)
    names = {m for m in metrics if isinstance(m, str)}
    triples = {tuple(m) for m in metrics if not isinstance(m, str)}
    labels = table[["period", "category", "metric"]].astype(object)
    chosen = labels["metric"].isin(names)
    if triples:
        chosen |= pd.Series(list(zip(labels["period"], labels["category"], labels["metric"])),
                            index=table.index).isin(triples)
    sub = table[chosen.to_numpy()]
    missing = (names - set(sub["metric"].astype(object))) | \
        (triples - set(zip(*(sub[c].astype(object) for c in ("period", "category", "metric")))))
    if missing:
        raise ValueError(f"not in the table: {sorted(map(str, missing))}")
    rows = []
    for (point, period, category, metric), d in sub.groupby(["point", "period", "category", "metric"],
                                                             observed=True, sort=True):
        x = d.sort_values("replication")["value"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        rel = _relative_half_widths(x, confidence)
        confirmed, provisional = _solution(rel, relative_half_width, k_limit)
        mean = float(x.mean()) if len(x) else math.nan
        rows.append({"point": point, "period": period, "category": category, "metric": metric,
                     "replications": len(x), "mean": mean,
                     "relative_half_width": float(rel[-1]) if len(x) else math.nan,
                     "n_needed": confirmed, "n_provisional": provisional})
    result = pd.DataFrame(rows, columns=["point", "period", "category", "metric", "replications", "mean",
                                         "relative_half_width", "n_needed", "n_provisional"])
    for c in ("period", "category", "metric"):
        result[c] = result[c].astype(object)
    overall = math.nan if result["n_needed"].isna().any() or not len(result) else float(result["n_needed"].max())
    return ReplicationsNeeded(result, overall, relative_half_width, confidence)


def convergence(table: pd.DataFrame, needed: ReplicationsNeeded) -> pd.DataFrame:
    """The relative CI half-width of each output of ``needed`` after 2, 3, ... replications (in replication
    order): ``point, period, category, metric, replications, relative_half_width``; for the convergence plot."""
    keys = needed.table[["point", "period", "category", "metric"]].astype(object)
    labels = table[["point", "period", "category", "metric"]].astype(object)
    rows = []
    for key in keys.itertuples(index=False):
        mask = np.ones(len(table), dtype=bool)
        for c, v in zip(("point", "period", "category", "metric"), key):
            mask &= (labels[c] == v).to_numpy()
        x = table[mask].sort_values("replication")["value"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        rel = _relative_half_widths(x, needed.confidence)
        rows += [(*key, n + 1, float(rel[n])) for n in range(1, len(x))]
    return pd.DataFrame(rows, columns=["point", "period", "category", "metric", "replications",
                                       "relative_half_width"])


def replicate_to_precision(scenario: Scenario, relative_half_width: float, metrics, store: ResultStore | str | os.PathLike,
                           seed: int | None = None, contract=None, executor=None, start: int = 10,
                           limit: int = 1000, progress: Callable[[int], Any] | None = None, runs_per_draw: int = 1,
                           categories=("all", "contract"), confidence: float = 0.95, k_limit: int = 5,
                           ) -> tuple[Replications, ReplicationsNeeded]:
    """Replications of ``scenario`` until every output of ``metrics`` (in ``categories``) has a ``confidence``
    interval within ``relative_half_width`` of its mean, confirmed by Hoad et al.'s look-ahead
    (:func:`replications_needed`), or ``limit`` replications. It runs ``start``, then as many as the provisional
    answer says (plus the look-ahead), or half as many again while some output has none; the ``store`` keeps
    every finished replication, so each round adds runs and an interrupted search resumes. Replication r is the
    same run as in :func:`replicate` (the result does not depend on the rounds)."""
    if not 0 < relative_half_width < 1:
        raise ValueError(f"relative_half_width must be in (0, 1), got {relative_half_width}")
    n = max(min(int(start), int(limit)), 3)
    while True:
        reps = replicate(scenario, n, seed, contract, executor, store=store, progress=progress,
                         runs_per_draw=runs_per_draw)
        chosen = reps.table[reps.table["category"].astype(str).isin(list(categories))]
        needed = replications_needed(chosen, metrics, relative_half_width, confidence, k_limit)
        if needed.enough or n >= limit:
            return reps, needed
        provisional = needed.table["n_provisional"]
        if provisional.isna().any():
            n = min(limit, math.ceil(1.5 * n))
        else:
            ahead = _look_ahead(int(provisional.max()), k_limit)
            n = min(limit, max(n + 1, int(provisional.max()) + ahead))


# --- probabilistic sensitivity analysis ----------------------------------------------------------------------------


def parameter_and_stochastic_variance(table: pd.DataFrame) -> pd.DataFrame:
    """For a replicated experiment with parameter draws (``[uncertainty]``, several runs per draw), the split of
    each result's variance into parameter and stochastic parts, per (point, period, category, metric)."""
    draws = table[(table["period"] == PARAMETER_PERIOD) & (table["metric"] == "draw")][
        ["point", "replication", "value"]].rename(columns={"value": "draw"})
    if draws.empty:
        raise ValueError("no parameter draws in this table: the scenario has no [uncertainty]")
    results = table[table["period"] != PARAMETER_PERIOD].merge(draws, on=["point", "replication"])
    results = results.astype({"period": str, "category": str, "metric": str})
    return variance_split(results, by=["point", "period", "category", "metric"])
