"""Calibration: fit chosen scenario parameters to published figures, on common random numbers.

Every evaluation simulates the same replications (replication ``r`` uses ``SeedSequence(seed, spawn_key=(r,))``,
as :mod:`sim.experiments.core` does), so two nearby parameter sets see the same clients with the same luck: the
objective moves smoothly with the parameters instead of jumping with the noise, and a finite-difference step of
a few per cent means something. Draws are by inversion, so a client keeps their quantile when a rate changes.

A **parameter** is a dotted key path with a number (``treatment.drop_out_rate_per_year.by_group.opiate``,
``treatment.completion_weeks.by_group.opiate.median``, ``after_exit.relapse_years.scale``), or several joined
by ``+``, moved together by one factor (``treatment.drop_out_rate_per_year.by_group.opiate+treatment.
custody_rate_per_year.by_group.opiate``: one scale on two hazards). A path that is not written in the file
starts from the value it inherits (``by_group.G`` falls back to the base). Bounds follow ``=LOW:HIGH`` in the
first path's unit; the default is a quarter to four times the starting value (a probability stops at 1).
Parameters are fitted on the log scale, so the fit never leaves the positive numbers.

Targets may be the national pilot evaluation's paired odds ratios (``measure = "pilot.successful_completion_y1"``):
each replication then runs the pilot and its counterfactual (:class:`PilotEvaluator`), and the parameters are
usually the provider's (``behaviour.discharge_timing.caution.calibrated``: the calibrated profile's value).

The **objective** is the vector of each calibration target's distance from its aim (:mod:`sim.config.targets`, computed by :mod:`sim.analysis.targets`) in
tolerances, on the mean over the replications: ``scipy.optimize.least_squares`` (trust region, two-point
differences of 5% on the log scale) or Nelder-Mead minimises its sum of squares, and stops as soon as every target
is at its aim or the evaluation budget is spent, returning the best parameters it evaluated. Fitted values are
rounded to four significant figures and the fit table describes the rounded values.

:func:`write_calibrated` writes a scenario that ``extends`` the input and sets only the fitted keys, with a
header saying what was fitted to which targets and how well.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from sim.analysis.targets import evaluate
from sim.config.base import ConfigError
from sim.config.behaviour import Level
from sim.config.scenario import Scenario, ScenarioError, scenario_from_dict
from sim.config.targets import Target, TargetFile
from sim.engine.system import simulate
from sim.experiments.seeds import replication_seeds
from sim.experiments.statistics import mean_ci

DEFAULT_SPAN = 4.0          # default bounds: start / 4 to start x 4
DIFF_STEP = 0.05            # finite-difference step on the log scale (about 5%)
SIGNIFICANT = 4             # fitted values are written to four significant figures
METHODS = ("least_squares", "nelder_mead")


class CalibrationError(ConfigError):
    """Problems with a calibration's parameters, each as (where, key path, value, message)."""

    what = "calibration"


# --- parameters ----------------------------------------------------------------------------------------------


def current_value(scenario: Scenario, path: str) -> float:
    """The number a dotted key path holds in the scenario as written, or inherits (``by_group.G`` and
    ``by_band.B`` entries fall back to what they refine: ``by_group.G.by_band.B`` > ``by_group.G`` >
    ``by_band.B`` > the base). Raises KeyError if there is no number there."""
    raw = scenario.raw()
    parts = path.split(".")
    for candidate in _fallbacks(parts):
        value = _walk(raw, candidate)
        if value is not None:
            return value
    node = scenario  # not written: the schema's default (a provider profile's calibrated value, say)
    for part in parts:
        if isinstance(node, Level) and part in ("base", "calibrated", "stress"):
            node = node.at(part)  # a mode's value (calibrated: the base where nothing was fitted)
        else:
            node = getattr(node, part, None)
    if not _is_number(node):
        raise KeyError(path)
    return float(node)


def _fallbacks(parts: list[str]) -> list[list[str]]:
    """The key path, then the paths it inherits from, most specific first."""
    out = [parts]
    marks = [i for i, p in enumerate(parts[:-1]) if p in ("by_group", "by_band")]
    if len(marks) == 2:
        g, b = marks
        out.append(parts[:b] + parts[b + 2:])                       # by_group.G.X
        out.append(parts[:g] + parts[b:])                           # by_band.B.X
        out.append(parts[:g] + parts[b + 2:])                       # X
    elif len(marks) == 1:
        i = marks[0]
        out.append(parts[:i] + parts[i + 2:])
    return [p for p in out if p]


def _walk(raw: dict, parts: list[str]) -> float | None:
    node = raw
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif _is_number(node) and part == "value" and i == len(parts) - 1:
            return float(node)
        else:
            return None
    if isinstance(node, dict) and _is_number(node.get("value")):
        return float(node["value"])
    return float(node) if _is_number(node) else None


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class Parameter:
    """One free number: key paths moved together by a factor from their starting values, within bounds."""

    paths: tuple[str, ...]
    start: tuple[float, ...]
    low: float    # bounds on the factor
    high: float

    @property
    def name(self) -> str:
        return "+".join(self.paths)

    def values(self, factor: float) -> dict[str, float]:
        return {p: _round(s * factor) for p, s in zip(self.paths, self.start)}


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


def parse_parameter(spec: str, scenario: Scenario, start_from: Scenario | None = None) -> Parameter:
    """``PATH[+PATH...][=LOW:HIGH]`` against a scenario: every path must hold a positive number, and the
    scenario must be valid at both bounds (checked here, before anything runs). ``start_from``: a scenario whose
    values at the paths are the starting values instead of ``scenario``'s (an earlier fit, to refit from)."""
    text, _, bounds = spec.partition("=")
    paths = tuple(p.strip() for p in text.split("+") if p.strip())
    if not paths:
        raise CalibrationError([(f"--params {spec!r}", "", None, "no key path")])
    problems, start = [], []
    for path in paths:
        try:
            value = current_value(start_from or scenario, path)
        except KeyError:
            problems.append((f"--params {path}", "", None, "no number at this key path in the scenario"))
            continue
        if not value > 0:
            problems.append(("--params", path, value, "fitting is on the log scale: the starting value must be "
                             "above 0 (set a positive value in the scenario first)"))
        start.append(value)
    if problems:
        raise CalibrationError(problems)
    explicit = bool(bounds)
    if explicit:
        try:
            lo, hi = (float(x) for x in bounds.split(":"))
        except ValueError:
            raise CalibrationError([("--params", spec, bounds, "bounds must be LOW:HIGH, e.g. =0.05:0.5")]) from None
        if not 0 < lo < hi:
            raise CalibrationError([("--params", spec, bounds, "bounds must satisfy 0 < LOW < HIGH")])
        low, high = lo / start[0], hi / start[0]
        if not low <= 1 <= high:
            raise CalibrationError([("--params", spec, bounds,
                                     f"the starting value {start[0]:g} is outside the bounds")])
    else:
        low, high = 1 / DEFAULT_SPAN, DEFAULT_SPAN
    param = Parameter(paths, tuple(start), low, high)
    for side in ("low", "high"):
        try:
            scenario.with_changes(param.values(getattr(param, side)))
        except ScenarioError as e:
            if not explicit and side == "high" and max(start) <= 1:  # a probability: stop at 1
                param = Parameter(paths, tuple(start), low, 1 / max(start))
                try:
                    scenario.with_changes(param.values(param.high))
                    continue
                except ScenarioError:
                    pass
            value = param.values(getattr(param, side))
            raise CalibrationError([("--params", spec, value, f"the scenario is invalid at the {side} bound: "
                                     f"{e.problems[0][3]} (give bounds with =LOW:HIGH)")]) from None
    return param


# --- evaluating a scenario against targets ------------------------------------------------------------------


def seed_sequences(seed: int, replications: int, first: int = 0) -> list[np.random.SeedSequence]:
    """Replication r's seed, as every experiment gives it (sim.experiments.seeds.replication_seed)."""
    return replication_seeds(seed, replications, first)


def _one_run(args) -> list[float]:
    raw, seed, targets = args
    scenario = raw if isinstance(raw, Scenario) else scenario_from_dict(raw, "<calibration>")
    return evaluate(simulate(scenario, seed), targets)


class Evaluator:
    """Simulates a scenario (with changes) over fixed replications and measures the targets: an array of
    shape (targets, replications). Reuse one across evaluations; close it (or use ``with``) when done."""

    def __init__(self, scenario: Scenario, targets: Sequence[Target], seeds: Sequence, workers: int = 1):
        self.scenario, self.targets, self.seeds = scenario, list(targets), list(seeds)
        self.workers = max(1, min(workers, len(self.seeds)))
        self._pool = ProcessPoolExecutor(self.workers) if self.workers > 1 else None

    def __call__(self, changes: dict[str, float] | None = None) -> np.ndarray:
        scenario = self.scenario.with_changes(changes) if changes else self.scenario
        if self._pool is None:
            runs = [_one_run((scenario, s, self.targets)) for s in self.seeds]
        else:
            raw = copy.deepcopy(scenario.raw())
            runs = list(self._pool.map(_one_run, [(raw, s, self.targets) for s in self.seeds]))
        return np.array(runs, dtype=float).T.reshape(len(self.targets), len(self.seeds))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PilotEvaluator(Evaluator):
    """As :class:`Evaluator`, for targets that are the pilot evaluation's paired odds ratios (``pilot.*``): in each
    replication the pilot (the scenario under its contract, the provider responding) against its counterfactual
    (the scenario's ``counterfactual`` under its own contract), as :mod:`sim.experiments.pilot` runs them. The
    counterfactual does not depend on the fitted parameters: it is simulated once per replication."""

    def __init__(self, scenario: Scenario, targets: Sequence[Target], seeds: Sequence, workers: int = 1):
        from sim.config.contract import load_contract
        from sim.config.scenario import load_scenario

        if scenario.counterfactual_path() is None:
            raise CalibrationError([(scenario._source, "counterfactual", None, "pilot evaluation targets need the "
                                     "scenario's counterfactual (e.g. counterfactual = "
                                     "\"west_kent_counterfactual.toml\")")])
        counterfactual = load_scenario(scenario.counterfactual_path()).with_changes({  # over the pilot's horizon
            "horizon.warmup_years": scenario.horizon.warmup_years, "horizon.years": scenario.horizon.years,
            "horizon.end": None})
        if scenario.contract_path() is None or counterfactual.contract_path() is None:
            raise CalibrationError([(scenario._source, "contract", None, "pilot evaluation targets need the "
                                     "scenario and its counterfactual to name their contracts")])
        super().__init__(scenario, targets, seeds, workers)
        self.measures = [t.pilot for t in self.targets]
        self.contract = load_contract(scenario.contract_path())
        self.reference = self._counts(counterfactual, load_contract(counterfactual.contract_path()))

    def _counts(self, scenario: Scenario, contract) -> list[pd.DataFrame]:
        from sim.experiments.pilot import arm_counts

        tasks = [(copy.deepcopy(scenario.raw()), contract.raw(), s) for s in self.seeds]
        return list(self._pool.map(arm_counts, tasks)) if self._pool is not None else [arm_counts(t) for t in tasks]

    def __call__(self, changes: dict[str, float] | None = None) -> np.ndarray:
        from sim.experiments.pilot import paired_ratios

        scenario = self.scenario.with_changes(changes) if changes else self.scenario
        pilot = self._counts(scenario, self.contract)
        return np.array([paired_ratios(p, r, self.measures) for p, r in zip(pilot, self.reference)]).T


def evaluator(targets: Sequence[Target]) -> type[Evaluator]:
    """The evaluator a list of targets needs: :class:`PilotEvaluator` for pilot evaluation targets."""
    return PilotEvaluator if targets and targets[0].pilot is not None else Evaluator


def fit_table(targets: Sequence[Target], values: np.ndarray, source_file: str = "") -> pd.DataFrame:
    """One row per target: the figure, the simulated mean over replications with its 95% CI; ``within`` (the mean
    within tolerance: calibration's aim), ``covers`` (the CI reaches the target), ``informative`` (the CI is
    narrow enough to tell: :meth:`sim.config.targets.Target.informative`) and ``passes`` (both: the validation
    report's rule, which fewer replications make harder, not easier)."""
    rows = []
    for t, v in zip(targets, values):
        s = mean_ci(v)
        n, mean, half = s.n, s.mean, s.half_width
        rows.append({
            "target": t.label, "role": t.role, "measure": t.measure, "subset": t.subset.label(),
            "figure": t.figure(), "tolerance": t.tol, "simulated": mean, "ci_low": mean - half,
            "ci_high": mean + half, "runs": n, "within": t.within(mean),
            "covers": t.covered(mean - half, mean + half), "informative": t.informative(half),
            "passes": t.covered(mean - half, mean + half) and t.informative(half), "source": t.source,
            "targets_file": source_file,
        })
    return pd.DataFrame(rows)


def check(scenario: Scenario, targets: TargetFile | Sequence[Target], replications: int = 4,
          seed: int | None = None, workers: int = 1, first: int = 0) -> pd.DataFrame:
    """The fit table of a scenario against targets, over ``replications`` replications."""
    items = list(targets.target) if isinstance(targets, TargetFile) else list(targets)
    where = str(targets.path or targets.name) if isinstance(targets, TargetFile) else ""
    seeds = seed_sequences(scenario.seed if seed is None else seed, replications, first)
    with evaluator(items)(scenario, items, seeds, workers) as ev:
        return fit_table(items, ev(), where)


# --- fitting ---------------------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """What a calibration found: the fitted values, the fit, and every evaluation on the way."""

    scenario: Scenario                  # the input
    targets: TargetFile
    parameters: list[Parameter]
    factors: np.ndarray                 # best factor per parameter
    table: pd.DataFrame                 # the fit at the rounded fitted values
    evaluations: pd.DataFrame           # one row per evaluation: factors, cost, targets within
    replications: int
    seed: int
    method: str
    message: str
    check_table: pd.DataFrame | None = None   # on fresh replications, if asked for
    command: str = ""
    start_table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def changes(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p, f in zip(self.parameters, self.factors):
            out.update(p.values(float(f)))
        return out

    @property
    def calibrated(self) -> Scenario:
        return self.scenario.with_changes(self.changes)

    def values(self) -> pd.DataFrame:
        """Per key path: the starting value, the fitted value, the bounds."""
        rows = []
        for p, f in zip(self.parameters, self.factors):
            for path, s in zip(p.paths, p.start):
                rows.append({"parameter": path, "start": s, "fitted": _round(s * f),
                             "low": _round(s * p.low), "high": _round(s * p.high), "factor": float(f)})
        return pd.DataFrame(rows)

    @property
    def within(self) -> bool:
        cal = self.table[self.table["role"] == "calibration"]
        return bool(cal["within"].all())


class _Stop(Exception):
    pass


def calibrate(scenario: Scenario, targets: TargetFile, params: Sequence[str | Parameter], replications: int = 2,
              seed: int | None = None, workers: int = 1, method: str = "least_squares", max_evaluations: int = 60,
              check_replications: int = 0, progress: Callable[[dict], None] | None = None,
              start_from: Scenario | None = None) -> Calibration:
    """Fit ``params`` (key paths, see the module docstring) so the scenario meets the calibration targets,
    starting from the scenario's values or from ``start_from``'s (only the fitted paths are taken from it)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    parameters = [p if isinstance(p, Parameter) else parse_parameter(p, scenario, start_from) for p in params]
    names = [p for par in parameters for p in par.paths]
    if len(set(names)) != len(names):
        raise CalibrationError([(f"--params {', '.join(names)}", "", None, "a key path is named twice")])
    fitted = [t for t in targets.target if t.role == "calibration"]
    if not fitted:
        raise CalibrationError([(str(targets.path or targets.name), "", None,
                                 "no target with role = 'calibration' to fit")])
    seed = scenario.seed if seed is None else seed
    seeds = seed_sequences(seed, replications)
    where = str(targets.path or targets.name)
    log_lo = np.log([p.low for p in parameters])
    log_hi = np.log([p.high for p in parameters])
    seen: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    trail: list[dict] = []

    def changes_at(x: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for p, xi in zip(parameters, x):
            out.update(p.values(float(np.exp(xi))))
        return out

    with evaluator(targets.target)(scenario, targets.target, seeds, workers) as ev:
        def residuals(x: np.ndarray) -> np.ndarray:
            x = np.clip(x, log_lo, log_hi)
            key = tuple(np.round(x, 9))
            if key not in seen:
                if len(seen) >= max_evaluations:
                    raise _Stop("evaluation budget spent")
                values = ev(changes_at(x))
                means = np.array([np.nanmean(v) if np.isfinite(v).any() else math.nan for v in values])
                r = np.array([t.residual(m) for t, m in zip(targets.target, means) if t.role == "calibration"])
                seen[key] = (r, values)
                row = {"evaluation": len(seen), **{p.name: float(np.exp(xi)) for p, xi in zip(parameters, x)},
                       "cost": float(r @ r), "at_aim": int((r == 0).sum()), "targets": len(r)}
                trail.append(row)
                if progress is not None:
                    progress(row)
                if not r.any():
                    raise _Stop("every calibration target is at its aim")
            return seen[key][0]

        def jacobian(x: np.ndarray) -> np.ndarray:
            """Forward differences of a fixed step on the log scale (backward at an upper bound)."""
            r0 = residuals(x)
            jac = np.empty((len(r0), len(x)))
            for i in range(len(x)):
                step = DIFF_STEP if x[i] + DIFF_STEP <= log_hi[i] else -DIFF_STEP
                moved = x.copy()
                moved[i] += step
                jac[:, i] = (residuals(moved) - r0) / step
            return jac

        x0 = np.zeros(len(parameters))
        message = ""
        try:
            residuals(x0)
            if method == "least_squares":
                res = optimize.least_squares(residuals, x0, jac=jacobian, bounds=(log_lo, log_hi), method="trf",
                                             x_scale=1.0, xtol=1e-3, ftol=1e-4, gtol=1e-8)
            else:
                simplex = np.vstack([x0] + [x0 + 0.15 * np.eye(len(x0))[i] for i in range(len(x0))])
                res = optimize.minimize(lambda x: float(residuals(x) @ residuals(x)), x0, method="Nelder-Mead",
                                        bounds=list(zip(log_lo, log_hi)),
                                        options={"initial_simplex": np.clip(simplex, log_lo, log_hi),
                                                 "xatol": 0.01, "fatol": 1e-3})
            message = str(res.message)
        except _Stop as stop:
            message = str(stop)
        best = min(seen, key=lambda k: float(seen[k][0] @ seen[k][0]))
        factors = np.exp(np.array(best))
        final = {}
        for p, f in zip(parameters, factors):
            final.update(p.values(float(f)))
        # the table describes the rounded values that will be written
        table = fit_table(targets.target, ev(final), where)
        start_table = fit_table(targets.target, seen[tuple(np.round(x0, 9))][1], where)
    check_table = None
    if check_replications:
        check_table = check(scenario.with_changes(final), targets, check_replications, seed, workers,
                            first=replications)
    return Calibration(scenario, targets, parameters, factors, table, pd.DataFrame(trail), replications, seed,
                       method, message, check_table, start_table=start_table)


# --- the calibrated scenario file --------------------------------------------------------------------------------


def _toml_number(x: float) -> int | float:
    """A fitted value as TOML writes it: a whole number as an integer (as the scenario files write them)."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


def _toml_key(key: str) -> str:
    """One part of a dotted key: bare where TOML allows it, quoted otherwise."""
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_calibrated(result: Calibration, out: str | Path, scenario_path: str | Path, name: str | None = None,
                     description: str | None = None, command: str = "", start_path: str | Path | None = None) -> Path:
    """Write a scenario that extends ``scenario_path`` and sets only the fitted keys (atomically): a comment
    block saying how it was fitted and how well, then one dotted key per fitted value, each with its tag
    ("[D] fitted", the starting value and the bounds) beside it."""
    import tomli_w

    from sim.core.version import __version__
    from sim.engine.history import write_atomic

    out = Path(out)
    folder = out.resolve().parent

    def relative(path) -> str:  # relative where the two share a folder below the root (a repository)
        path = Path(path).resolve()
        return (os.path.relpath(path, folder) if os.path.commonpath([path, folder]) != path.anchor
                else path.as_posix())

    extends = relative(scenario_path)
    targets_path = result.targets.path or result.targets.name
    cal = result.table
    lines = [
        f"# Calibrated by `pbrsim calibrate` (pbrsim {__version__}, {dt.date.today().isoformat()}): "
        f"{len(result.parameters)} parameter(s) fitted",
        f"# to the calibration targets in {targets_path} ({result.targets.name}), on {result.replications} "
        f"replications (root seed {result.seed},",
        f"# common random numbers), by {result.method.replace('_', ' ')} on the log scale; "
        f"{len(result.evaluations)} evaluations ({result.message}).",
        f"# Everything else comes from {extends}. The fitted values are [D]: derived by simulation from the "
        "figures below.",
    ]
    if start_path is not None:
        lines.append(f"# The search started from the values in {start_path} (an earlier fit): 'was' below.")
    if command:
        lines.append(f"# Command: {command}")
    lines.append("#")
    lines.append("# Fit: target: simulated mean [95% CI] against the figure +/- tolerance (role)")
    for _, row in cal.iterrows():
        mark = "within" if row["within"] else "OUTSIDE"
        lines.append(f"#   {row['target']}: {row['simulated']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}] "
                     f"v {row['figure']} +/- {row['tolerance']:.3g} ({row['role']}): {mark}")
    desc = description if description is not None else (result.scenario.description + " (calibrated)").strip()
    head = {"extends": extends, "name": name or result.scenario.name + "_calibrated", "description": desc}
    body = []
    for _, row in result.values().iterrows():
        was = "unchanged: the start was at the aim" if row["fitted"] == row["start"] else f"was {row['start']:.4g}"
        key = ".".join(_toml_key(k) for k in row["parameter"].split("."))
        value = tomli_w.dumps({"v": _toml_number(row["fitted"])}).split("=", 1)[1].strip()
        body.append(f"{key} = {value}   # [D] fitted ({was}; bounds {row['low']:.4g}-{row['high']:.4g})")
    text = "\n".join(lines) + "\n\n" + tomli_w.dumps(head) + "\n" + "\n".join(body) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda p: Path(p).write_text(text))
    return out
