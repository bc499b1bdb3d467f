"""Sweeps: designs over key paths of a scenario and its contract, and their sensitivity indices.

A sweep spec is a TOML file, validated like scenarios (every problem at once, each naming the file, the key path
and the value) before anything runs::

    name = "west_kent_contract_sensitivity"
    scenario = "../west_kent.toml"                 # relative to this file
    contract = "../contracts/west_kent_pbr.toml"   # optional; default: the contract the scenario names
    design = "morris"                              # grid, lhs, sobol or morris
    samples = 40                                   # lhs: points; sobol: base samples N; morris: trajectories N
    replications = 5
    seed = 1

    [changes]                                      # applied to the scenario (and contract) before sweeping
    "horizon.warmup_years" = 3

    [[parameters]]
    path = "capacity.recovery_workers"             # a dotted key path into the scenario ...
    low = 24
    high = 40
    integer = true

    [[parameters]]
    path = "contract.offending.pot"                # ... or, after ``contract.``, into the contract
    low = 100_000
    high = 300_000

Designs (:func:`design_points`): a full ``grid`` (each parameter's ``values``, or ``levels`` points from ``low``
to ``high``), a Latin hypercube (``lhs``, N points), Saltelli's extension of the Sobol' sequence (``sobol``,
N x (D + 2) points, first-order and total indices only) and Morris trajectories (``morris``, N x (D + 1)
points), the last three from SALib. Points are numbered 0..P-1 and are the same for the same seed.

A point is a set of values at key paths; :func:`point_scenario` applies the sweep's ``changes`` and then the
point's values to the base scenario and contract (validated again). Key paths work as in
:meth:`sim.config.scenario.Scenario.with_changes`, with two guards:

* a path naming a parameter that has ``by_group``/``by_band`` overrides (``treatment.drop_out_rate_per_year``)
  sets its base ``value`` and keeps the overrides, as a dated change does; name an override to sweep it;
* a path naming a table (a distribution, a section) or a list is refused: name one number inside it
  (``after_exit.relapse_years.by_group.opiate.scale``).

An ``integer`` parameter (a capacity) is rounded to the nearest whole number. In the lhs, sobol and morris
designs it is sampled on [low - 0.5, high + 0.5] and the rounded value clipped to [low, high], so every whole
number in the range is equally likely; the design table keeps the unrounded numbers (SALib's analyses need
them) and :func:`applied_points` gives the values as applied.

Analysis: :func:`sweep_table_to_outputs` turns the long results table (``point, replication, period, category,
metric, value``) into one number per point; :func:`sobol_indices` and :func:`morris_indices` give tidy tables of
indices; :func:`plot_sobol` and :func:`plot_morris` plot them.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator  # noqa: E402

from sim.config.base import ConfigError, PlainName, Section, read_with_extends, show, source_of, validated  # noqa: E402
from sim.config.contract import Contract  # noqa: E402
from sim.config.scenario import Scenario  # noqa: E402

DESIGNS = ("grid", "lhs", "sobol", "morris")
MAX_RUNS = 100_000  # runs in one sweep (points x replications): a 10,000-run results table is a few hundred MB
MAX_VALUE = 1e12  # any swept value (each point is validated again against the scenario's own bounds)
CONTRACT_PREFIX = "contract."


class SweepError(ConfigError):
    """Problems found in a sweep spec, each as (file, key path, value, message)."""

    what = "sweep"


# --- the spec ---------------------------------------------------------------------------------------------------


class Parameter(Section):
    """One swept number: a dotted key path and its range (or, for a grid, its values)."""

    path: str = Field(description="dotted key path into the scenario, or into the contract after 'contract.'")
    low: float | None = Field(None, ge=-MAX_VALUE, le=MAX_VALUE, description="lowest value (the parameter's unit)")
    high: float | None = Field(None, ge=-MAX_VALUE, le=MAX_VALUE, description="highest value (the parameter's "
                                                                               "unit)")
    values: list[int | float | str | bool] | None = Field(None, min_length=1, max_length=1000,
                                                          description="the values, for a grid design")
    levels: int | None = Field(None, ge=2, le=1000, description="grid points from low to high, ends included")
    integer: bool = Field(False, description="round to a whole number (capacities)")

    @field_validator("path")
    @classmethod
    def _dotted(cls, path: str) -> str:
        parts = path.split(".")
        if not path or any(not p or p != p.strip() for p in parts):
            raise ValueError("a key path is names joined by dots, e.g. 'capacity.rehab_places'")
        if path == "contract":
            raise ValueError("name a key inside the contract, e.g. 'contract.offending.pot'")
        return path

    @field_validator("high")
    @classmethod
    def _above_low(cls, high: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("low")
        if high is not None and low is not None and not high > low:
            raise ValueError(f"high must be above low ({low:g})")
        return high

    @field_validator("values")
    @classmethod
    def _given_alone(cls, values: list | None, info: ValidationInfo) -> list | None:
        if values is not None and (info.data.get("low") is not None or info.data.get("high") is not None):
            raise ValueError("give either values or low and high, not both")
        return values

    @model_validator(mode="after")
    def _range_or_values(self) -> Self:
        if self.values is None and (self.low is None or self.high is None):
            if self.low is not None or self.high is not None:
                raise ValueError(f"{'low' if self.low is None else 'high'} is missing: give low and high")
            raise ValueError("give low and high (or values, for a grid)")
        return self

    @property
    def target(self) -> Literal["scenario", "contract"]:
        return "contract" if self.path.startswith(CONTRACT_PREFIX) else "scenario"

    @property
    def bounds(self) -> tuple[float, float]:
        """The sampled range: [low, high], widened by half a unit each side for an integer parameter."""
        if self.low is None or self.high is None:
            numbers = [float(v) for v in self.values or [] if isinstance(v, (int, float)) and not isinstance(v, bool)]
            return (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
        return (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)

    def applied(self, value: Any) -> Any:
        """The value as applied: rounded (half up) and clipped to [low, high] for an integer parameter."""
        if not self.integer or isinstance(value, (str, bool)):
            return value
        x = math.floor(float(value) + 0.5)
        if self.low is not None:
            x = max(x, math.ceil(self.low))
        if self.high is not None:
            x = min(x, math.floor(self.high))
        return int(x)


class SweepSpec(Section):
    """A validated sweep. Built by :func:`load_sweep` from a file, or directly in code (then the key paths are
    checked by :func:`check_sweep`, and the design's rules by :func:`design_points`)."""

    name: PlainName
    description: str = ""
    scenario: str = Field(description="the scenario file (relative to the spec file)")
    contract: str | None = Field(None, description="the contract file (relative to the spec file); default: the "
                                                   "one the scenario names")
    design: Literal["grid", "lhs", "sobol", "morris"]
    samples: int | None = Field(None, ge=1, le=MAX_RUNS, description="lhs: points; sobol: base samples N (a power of 2), "
                                                        "N x (D + 2) points; morris: trajectories, N x (D + 1) points")
    morris_levels: int = Field(4, ge=2, le=100, description="levels of the Morris grid (even numbers are best)")
    replications: int = Field(1, ge=1, le=MAX_RUNS, description="replications of each point")
    seed: int = Field(0, ge=0, lt=2**63, description="seeds the design and, through the experiment, the "
                                                     "replications")
    changes: dict[str, Any] = Field(default_factory=dict, description="values at dotted key paths applied to "
                                    "the scenario (or, after 'contract.', the contract) before sweeping")
    parameters: list[Parameter] = Field(min_length=1, max_length=100)

    _source: str = PrivateAttr(default="<sweep>")
    _provenance: dict[tuple, str] = PrivateAttr(default_factory=dict)
    _base: tuple[Scenario, Contract | None] | None = PrivateAttr(default=None)

    @field_validator("changes", mode="before")
    @classmethod
    def _flatten(cls, changes: Any) -> Any:
        return flatten_changes(changes) if isinstance(changes, dict) else changes

    @model_validator(mode="after")
    def _within_machine(self) -> Self:
        runs = self.expected_points() * self.replications
        if runs > MAX_RUNS:
            raise ValueError(f"the design has {self.expected_points():,} points x {self.replications:,} "
                             f"replications = {runs:,} runs: more than the {MAX_RUNS:,} a sweep may have (lower "
                             f"samples, levels or replications)")
        return self

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.parameters]

    def problem(self) -> dict[str, Any]:
        """SALib's problem definition: the parameter paths and their sampled bounds."""
        return {"num_vars": len(self.parameters), "names": self.paths,
                "bounds": [list(p.bounds) for p in self.parameters]}

    def expected_points(self) -> int:
        """How many points the design has."""
        d = len(self.parameters)
        if self.design == "grid":
            return math.prod(len(p.values) if p.values is not None else (p.levels or 0) for p in self.parameters)
        n = self.samples or 0
        return {"lhs": n, "sobol": n * (d + 2), "morris": n * (d + 1)}[self.design]

    def scenario_file(self) -> Path:
        return _relative(self.scenario, ("scenario",), self)

    def contract_file(self) -> Path | None:
        return None if self.contract is None else _relative(self.contract, ("contract",), self)

    def base(self) -> tuple[Scenario, Contract | None]:
        """The scenario and contract the sweep starts from, read from their files, with ``changes`` applied
        (validated by :func:`check_sweep` on first use)."""
        if self._base is None:
            check_sweep(self)
        return self._base


def flatten_changes(changes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"horizon": {"years": 2}}`` (TOML's bare dotted keys) as ``{"horizon.years": 2}``. A table naming a
    ``dist`` is a value (a whole distribution), not a level of the path."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and "dist" not in value:
            out.update(flatten_changes(value, f"{path}."))
        else:
            out[path] = value
    return out


def _relative(name: str, key: tuple, spec: SweepSpec) -> Path:
    named_in = Path(source_of(key, spec._provenance, spec._source))
    return named_in.parent / name if named_in.suffix == ".toml" else Path(name)


# --- loading and checking -----------------------------------------------------------------------------------------


def load_sweep(path: str | Path, check=None) -> SweepSpec:
    """Read and validate a sweep spec, its scenario and contract, and every key path it sweeps (``check``:
    default :func:`check_sweep`; provider-behaviour sweeps pass their own, which knows their derived keys)."""
    path = Path(path)
    raw, provenance = read_with_extends(path, SweepError)
    spec = validated(raw, SweepSpec, SweepError, str(path), provenance)
    spec._source = str(path)
    spec._provenance = provenance
    (check or check_sweep)(spec)
    return spec


def sweep_from_dict(raw: dict[str, Any], source: str = "<sweep>") -> SweepSpec:
    """A sweep spec from a dictionary (paths relative to the working directory); key paths are not checked."""
    spec = validated(copy.deepcopy(raw), SweepSpec, SweepError, source)
    spec._source = source
    return spec


def design_problems(spec: SweepSpec) -> list[tuple[str, Any, str]]:
    """The design's rules, as (key path, value, message): what a grid or a sampled design needs."""
    found: list[tuple[str, Any, str]] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(spec.parameters):
        if p.path in seen:
            found.append((f"parameters[{i}].path", p.path, f"already swept by parameters[{seen[p.path]}]"))
        seen.setdefault(p.path, i)
        if spec.design == "grid":
            if p.values is None and p.levels is None:
                found.append((f"parameters[{i}]", p.path, "a grid needs levels (points from low to high) or "
                                                          "values"))
        else:
            if p.values is not None:
                found.append((f"parameters[{i}].values", p.values, f"values are for grid designs; a {spec.design} "
                                                                   f"design samples from low to high"))
            if p.levels is not None:
                found.append((f"parameters[{i}].levels", p.levels, f"levels are for grid designs; {spec.design} "
                                                                   f"uses samples"))
    if spec.design == "grid":
        if spec.samples is not None:
            found.append(("samples", spec.samples, "a grid uses each parameter's levels or values, not samples"))
    elif spec.samples is None:
        found.append(("samples", None, f"a {spec.design} design needs samples"))
    elif spec.design == "sobol" and spec.samples & (spec.samples - 1):
        found.append(("samples", spec.samples, "Sobol' sequences are balanced only for a power of 2 base "
                                               "samples (e.g. 32, 64, 1024)"))
    elif spec.design == "morris" and spec.samples < 2:
        found.append(("samples", spec.samples, "Morris needs at least 2 trajectories"))
    return found


def check_sweep(spec: SweepSpec, scenario: Scenario | None = None, contract: Contract | None = None) -> None:
    """Refuse, before anything runs, a sweep that cannot run: the design's rules, the scenario and contract
    files, the ``changes``, and every parameter at its low and its high value (or each of its values).

    ``scenario`` and ``contract`` (both as read, before ``changes``) replace the files the spec names. On success
    the spec remembers its base (:meth:`SweepSpec.base`)."""
    from sim.config.contract import ContractError, load_contract
    from sim.config.scenario import ScenarioError, load_scenario

    source = spec._source
    found = [(source, k, v, m) for k, v, m in design_problems(spec)]

    if scenario is None:
        file = spec.scenario_file()
        if not file.is_file():
            found.append((source_of(("scenario",), spec._provenance, source), "scenario", spec.scenario,
                          f"no such file: {file}"))
            raise SweepError(found)
        try:
            scenario = load_scenario(file)
        except ScenarioError as e:
            raise SweepError(found + e.problems, ((source_of(("scenario",), spec._provenance, source), "scenario",
                                                   spec.scenario), *e.via)) from None
    if contract is None:
        file = spec.contract_file()
        key = "contract"
        if file is None and scenario.contract is not None:
            file, key = scenario.contract_path(), None
        if file is not None:
            if not file.is_file():
                where = (source_of(("contract",), spec._provenance, source), "contract", spec.contract) if key else \
                    (source, "scenario", spec.scenario)
                found.append((*where, f"no such file: {file}" if key else f"the contract it names is missing: {file}"))
                raise SweepError(found)
            try:
                contract = load_contract(file)
            except ContractError as e:
                via = ((source_of(("contract",), spec._provenance, source), "contract", spec.contract) if key else
                       (source, "scenario", spec.scenario))
                raise SweepError(found + e.problems, (via, *e.via)) from None

    # the changes, all together
    changes_source = source_of(("changes",), spec._provenance, source)
    base_scenario, base_contract = scenario, contract
    scenario_changes, contract_changes = _split(spec.changes, scenario, contract, found, changes_source, "changes.",
                                               swept=False)
    try:
        base_scenario = scenario.with_changes(scenario_changes) if scenario_changes else scenario
    except ScenarioError as e:
        found += _explain(e, scenario_changes, changes_source, "changes.", "")
    if contract_changes:
        try:
            base_contract = contract.with_changes(contract_changes)
        except ContractError as e:
            found += _explain(e, contract_changes, changes_source, "changes.contract.", CONTRACT_PREFIX)
    if found:
        raise SweepError(found)
    if base_contract is not None:
        found += _settlement_problems(base_scenario, base_contract, (changes_source, "changes", None))
    if found:
        raise SweepError(found)

    # each parameter at the ends of its range (or each of its values)
    for i, p in enumerate(spec.parameters):
        where = (source_of(("parameters",), spec._provenance, source), f"parameters[{i}].path", p.path)
        tried = [("value", p.applied(v)) for v in p.values] if p.values is not None else \
            [("low", p.applied(p.low)), ("high", p.applied(p.high))]
        messages: list[str] = []
        said: set = set()  # (key, message): each problem once, whether low, high or both show it
        for name, value in tried:
            rows: list = []
            sc, co = _split({p.path: value}, base_scenario, base_contract, rows, "", "")
            if rows:
                messages = [m for *_, m in rows]
                break
            applied = next(iter(co)) if co else next(iter(sc))
            try:
                point_s = base_scenario.with_changes(sc) if sc else base_scenario
                point_c = base_contract.with_changes(co) if co else base_contract
            except (ScenarioError, ContractError) as e:
                what = "contract" if co else "scenario"
                for key, message, text in _details(e, applied):
                    if (key, message) not in said:
                        said.add((key, message))
                        messages.append(f"{text} (in the {what}, with {name} = {value!r})")
                continue
            if point_c is not None and p.path.startswith(("horizon.", CONTRACT_PREFIX)):
                for *_, m in _settlement_problems(point_s, point_c, where):
                    if ("", m) not in said:
                        said.add(("", m))
                        messages.append(f"{m} (with {name} = {value!r})")
        found += [(*where, m) for m in messages]
    if found:
        raise SweepError(found)
    spec._base = (base_scenario, base_contract)


def _split(values: Mapping[str, Any], scenario: Scenario, contract: Contract | None, found: list, source: str,
           prefix: str, swept: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Changes for the scenario and for the contract. A swept number's path is resolved against the raw file
    (:func:`resolve_path`); a fixed change (``swept`` False) may also set a table or a list whole. Problems are
    appended to ``found``."""
    sc: dict[str, Any] = {}
    co: dict[str, Any] = {}
    for path, value in values.items():
        if path == "contract":
            found.append((source, f"{prefix}{path}", value, "give the contract file as the sweep's `contract`"))
            continue
        if path.startswith(CONTRACT_PREFIX):
            if contract is None:
                found.append((source, f"{prefix}{path}", value, "a contract key path needs a contract: give "
                                                                 "`contract` in the sweep, or name one in the "
                                                                 "scenario"))
                continue
            inner = path.removeprefix(CONTRACT_PREFIX)
            target, raw = co, _raw_of(contract)
        else:
            inner, target, raw = path, sc, scenario.raw()
        if swept or _is_number(value):
            try:
                inner = resolve_path(raw, inner)
            except KeyError as e:
                if swept:
                    found.append((source, f"{prefix}{path}", value, e.args[0]))
                    continue
        target[inner] = value
    return sc, co


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(x, (bool, np.bool_))


def resolve_path(raw: Mapping[str, Any], path: str) -> str:
    """Where a swept number goes: ``path`` itself, or ``path.value`` when it names a parameter with overrides.
    A KeyError (with a message) if it names a table or a list."""
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return path  # a default or a new override: validation will judge it
        node = node[part]
    if isinstance(node, dict):
        if "value" in node:
            return f"{path}.value"
        inside = ", ".join(list(node)[:6])
        raise KeyError(f"a table, not a number; name a number inside it ({inside})")
    if isinstance(node, list):
        raise KeyError("a list, not a number; sweep a number")
    return path


def _raw_of(contract: Contract) -> dict:
    return contract.raw()


def _details(e: ConfigError, applied: str) -> list[tuple[str, str, str]]:
    """An error's problems as (key, message, words): the words leave out the file (a copy 'with changes'), and
    the key and value when they are those of the applied path."""
    out = []
    for _, key, value, message in e.problems:
        if key in (applied, applied.removesuffix(".value")) or not key:
            out.append((key, message, message))
        else:
            out.append((key, message, f"{key} = {show(value)}: {message}"))
    return out


def _explain(e: ConfigError, applied: Mapping[str, Any], source: str, prefix: str, strip: str) -> list:
    """A scenario's or contract's problems with the changes, as rows naming the sweep file."""
    rows = []
    for _, key, value, message in e.problems:
        path = key.removesuffix(".value")
        if path in {k.removesuffix(".value") for k in applied}:
            rows.append((source, f"{prefix}{path}", value, message))
        else:
            rows.append((source, prefix.rstrip("."), None, f"{strip}{key} = {value!r}: {message}" if key else message))
    return rows


def _settlement_problems(scenario: Scenario, contract: Contract, where: tuple) -> list:
    from sim.config.contract import ContractError
    from sim.money.settlement import check

    try:
        check(contract, scenario)
    except ContractError as e:
        return [(*where, m) for *_, m in e.problems]
    return []


# --- designs ------------------------------------------------------------------------------------------------------


def design_points(spec: SweepSpec, seed: int | None = None) -> pd.DataFrame:
    """The design: one row per point (index ``point``, 0..P-1), one column per parameter path, in the
    parameter's unit (unrounded; see :func:`applied_points`). The same spec and seed give the same points.

    ``df.attrs`` holds the SALib ``problem``, the ``design``, the ``seed`` and ``morris_levels``."""
    bad = design_problems(spec)
    if bad:
        raise SweepError([(spec._source, k, v, m) for k, v, m in bad])
    seed = spec.seed if seed is None else seed
    problem = spec.problem()
    if spec.design == "grid":
        axes = [list(p.values) if p.values is not None else list(np.linspace(p.low, p.high, p.levels))
                for p in spec.parameters]
        table = pd.DataFrame(list(itertools.product(*axes)), columns=spec.paths)
    else:
        from SALib.sample import latin, morris, sobol

        if spec.design == "lhs":
            x = latin.sample(copy.deepcopy(problem), spec.samples, seed=seed)
        elif spec.design == "sobol":
            x = sobol.sample(copy.deepcopy(problem), spec.samples, calc_second_order=False, seed=seed)
        else:  # SALib's samplers add keys to the problem: give them a copy
            x = morris.sample(copy.deepcopy(problem), spec.samples, num_levels=spec.morris_levels, seed=seed)
        table = pd.DataFrame(x, columns=spec.paths)
    table.index = pd.RangeIndex(len(table), name="point")
    table.attrs.update(problem=problem, design=spec.design, seed=seed, morris_levels=spec.morris_levels)
    return table


def applied_points(spec: SweepSpec, points: pd.DataFrame) -> pd.DataFrame:
    """The design as applied: integer parameters rounded and clipped to [low, high]."""
    out = points.copy()
    for p in spec.parameters:
        if p.integer:
            out[p.path] = [p.applied(v) for v in points[p.path]]
    return out


def point_changes(spec: SweepSpec, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """The sweep's ``changes`` followed by the point's values (rounded where ``integer``), at the paths as
    written in the spec: what to record beside a point's results."""
    values = {p.path: p.applied(_plain(row[p.path])) for p in spec.parameters}
    return {**spec.changes, **values}


def point_scenario(base_scenario: Scenario, base_contract: Contract | None, spec: SweepSpec,
                   row: Mapping[str, Any] | pd.Series) -> tuple[Scenario, Contract | None]:
    """The scenario and contract of one point: the sweep's ``changes`` then the row's values, applied with
    :meth:`Scenario.with_changes` / :meth:`Contract.with_changes` (validated again). The bases may be the files
    as read or :meth:`SweepSpec.base` (the changes are set again, which changes nothing)."""
    found: list = []
    sc, co = _split(spec.changes, base_scenario, base_contract, found, spec._source, "changes.", swept=False)
    values = {p.path: p.applied(_plain(row[p.path])) for p in spec.parameters}
    sc2, co2 = _split(values, base_scenario, base_contract, found, spec._source, "")
    sc.update(sc2)
    co.update(co2)
    if found:
        raise SweepError(found)
    scenario = base_scenario.with_changes(sc) if sc else base_scenario
    contract = base_contract.with_changes(co) if co else base_contract
    return scenario, contract


def iter_points(spec: SweepSpec, points: pd.DataFrame | None = None) -> Iterator[tuple[int, Scenario,
                                                                                        Contract | None]]:
    """(point, scenario, contract) for every point of the design, from the spec's base."""
    points = design_points(spec) if points is None else points
    scenario, contract = spec.base()
    for point, row in points.iterrows():
        yield (int(point), *point_scenario(scenario, contract, spec, row))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- analysis -----------------------------------------------------------------------------------------------------


def sweep_table_to_outputs(table: pd.DataFrame, metric: str, period: str | None = None, category: str = "all",
                           points: int | Sequence[int] | None = None) -> pd.Series:
    """One number per point from the long results table (``point, replication, period, category, metric,
    value``): the ``metric`` for ``category``, averaged over replications. With ``period`` None it is then
    averaged over the periods (each period weighing the same, whatever the replications that reported it);
    otherwise only that period is used.

    A Series indexed by point, in point order. ``points`` (a count or the point numbers) reindexes it so that
    points with no results (a partly finished sweep) show as NaN."""
    missing = {"point", "replication", "period", "category", "metric", "value"} - set(table.columns)
    if missing:
        raise KeyError(f"the results table has no column {sorted(missing)}")
    rows = table[(table["metric"] == metric) & (table["category"] == category)]
    if period is not None:
        rows = rows[rows["period"].astype(str) == str(period)]
    if rows.empty and len(table):
        known = sorted(table["metric"].unique())
        raise KeyError(f"no results for metric {metric!r}, category {category!r}"
                       + (f", period {period!r}" if period is not None else "") + f"; metrics: {known}")
    per_period = rows.groupby(["point", "period"], sort=True)["value"].mean()
    out = per_period.groupby(level="point").mean().astype(float)
    out.name = metric
    if points is not None:
        out = out.reindex(range(points) if isinstance(points, int) else list(points))
        out.index.name = "point"
    return out


def _problem_of(spec_or_problem: SweepSpec | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(spec_or_problem, SweepSpec):
        return spec_or_problem.problem()
    return {k: copy.deepcopy(spec_or_problem[k]) for k in ("num_vars", "names", "bounds")}


def _outputs(points: pd.DataFrame | None, outputs: Any) -> np.ndarray:
    """The outputs as a vector in point order, refusing missing points."""
    if isinstance(outputs, pd.Series) and points is not None:
        outputs = outputs.reindex(points.index)
    y = np.asarray(outputs, dtype=float).ravel()
    if points is not None and len(y) != len(points):
        raise ValueError(f"{len(y)} outputs for {len(points)} points")
    if np.isnan(y).any():
        gone = np.flatnonzero(np.isnan(y))
        raise ValueError(f"no output for {len(gone)} points (e.g. {gone[:5].tolist()}): indices need every point")
    return y


def sobol_indices(spec_or_problem: SweepSpec | Mapping[str, Any], points: pd.DataFrame | None, outputs: Any, *,
                  conf_level: float = 0.95, num_resamples: int = 100, seed: int = 0) -> pd.DataFrame:
    """First-order and total Sobol' indices (SALib, Saltelli/Jansen estimators, bootstrap confidence half-widths)
    from the outputs of a ``sobol`` design, one per point in point order.

    Columns ``parameter, S1, S1_conf, ST, ST_conf``."""
    from SALib.analyze import sobol

    problem = _problem_of(spec_or_problem)
    y = _outputs(points, outputs)
    d = problem["num_vars"]
    if len(y) % (d + 2):
        raise ValueError(f"{len(y)} outputs is not a multiple of D + 2 = {d + 2}: not a Sobol' design of "
                         f"{d} parameters without second-order terms")
    # a Generator, not the int: SALib 1.6 leaves the bootstrap unseeded when seed == 0 ("if seed:")
    si = sobol.analyze(problem, y, calc_second_order=False, num_resamples=num_resamples, conf_level=conf_level,
                       seed=np.random.default_rng(seed), print_to_console=False)
    return pd.DataFrame({"parameter": problem["names"], "S1": si["S1"], "S1_conf": si["S1_conf"],
                         "ST": si["ST"], "ST_conf": si["ST_conf"]})


def morris_indices(spec_or_problem: SweepSpec | Mapping[str, Any], points: pd.DataFrame, outputs: Any, *,
                   num_levels: int | None = None, conf_level: float = 0.95, num_resamples: int = 100,
                   seed: int = 0) -> pd.DataFrame:
    """Morris elementary-effect statistics (SALib) from the outputs of a ``morris`` design, one per point in
    point order: ``mu_star`` (mean absolute effect: importance), its bootstrap confidence half-width, ``sigma``
    (spread of the effects: interactions or non-linearity) and ``mu`` (signed mean). Effects are per unit of
    the parameter's range on the Morris grid, so they compare across parameters of different units.

    Columns ``parameter, mu_star, mu_star_conf, sigma, mu``; ``num_levels`` defaults to the spec's (or 4)."""
    from SALib.analyze import morris

    problem = _problem_of(spec_or_problem)
    if num_levels is None:
        num_levels = spec_or_problem.morris_levels if isinstance(spec_or_problem, SweepSpec) else \
            points.attrs.get("morris_levels", 4)
    y = _outputs(points, outputs)
    x = points[problem["names"]].to_numpy(dtype=float)
    if len(y) % (problem["num_vars"] + 1):
        raise ValueError(f"{len(y)} outputs is not a multiple of D + 1 = {problem['num_vars'] + 1}: not a "
                         f"Morris design")
    si = morris.analyze(problem, x, y, num_resamples=num_resamples, conf_level=conf_level, num_levels=num_levels,
                        seed=seed, print_to_console=False)
    return pd.DataFrame({"parameter": problem["names"], "mu_star": np.asarray(si["mu_star"], dtype=float),
                         "mu_star_conf": np.asarray(si["mu_star_conf"], dtype=float),
                         "sigma": np.asarray(si["sigma"], dtype=float), "mu": np.asarray(si["mu"], dtype=float)})


# --- plots --------------------------------------------------------------------------------------------------------


def plot_sobol(indices: pd.DataFrame, title: str = "") -> plt.Figure:
    """First-order (S1) and total (ST) Sobol' indices per parameter, with 95% confidence half-widths."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(indices))
    width = 0.38
    ax.bar(x - width / 2, indices["S1"], width, yerr=indices["S1_conf"], capsize=4, color="tab:blue",
           label="first order (S1): alone")
    ax.bar(x + width / 2, indices["ST"], width, yerr=indices["ST_conf"], capsize=4, color="tab:orange",
           label="total (ST): with interactions")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(list(x), indices["parameter"], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("share of the output's variance")
    ax.set_title(title or "Sobol' sensitivity indices")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_morris(indices: pd.DataFrame, title: str = "") -> plt.Figure:
    """Morris screening: mean absolute elementary effect (mu*) against their spread (sigma), one labelled point
    per parameter; points near the origin matter little, points high above the diagonal interact."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.errorbar(indices["mu_star"], indices["sigma"], xerr=indices["mu_star_conf"].fillna(0), fmt="o",
                capsize=4, color="tab:blue")
    for row in indices.itertuples():
        ax.annotate(row.parameter, (row.mu_star, row.sigma), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    top = float(np.nanmax([indices["mu_star"].max(), indices["sigma"].max(), 0.0]) or 1.0) * 1.1
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="sigma = mu*")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mu* (mean absolute effect over the range)")
    ax.set_ylabel("sigma (spread of the effects)")
    ax.set_title(title or "Morris screening")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --- running and analysing a sweep ----------------------------------------------------------------------------------


def sweep_specs(spec: SweepSpec, points: pd.DataFrame | None = None) -> list:
    """The runs of a sweep as data: every point x replication, replication r on the same seed at every point
    (common random numbers across points)."""
    from sim.experiments.core import RunSpec, contract_raw

    points = design_points(spec) if points is None else points
    specs = []
    for point, scenario, contract in iter_points(spec, points):
        clash = set(scenario.uncertainty) & set(spec.paths)
        if clash:
            raise SweepError([(spec._source, "parameters",
                               sorted(clash), "a swept key path is also in the scenario's [uncertainty]")])
        raw, craw = scenario.raw(), contract_raw(contract)
        specs += [RunSpec(point, r, raw, craw, spec.seed) for r in range(spec.replications)]
    return specs


def run_sweep(spec: SweepSpec, executor=None, store=None, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every point of the design (checked first) and return ``(points, table)``; with a ``store`` (a folder
    or a ResultStore) finished runs are kept and a rerun resumes."""
    from sim.experiments.core import run_specs

    check_sweep(spec)
    points = design_points(spec)
    specs = sweep_specs(spec, points)
    experiment = {"kind": "sweep", "spec": spec.model_dump(mode="json"), "points": len(points)}
    table = run_specs(specs, executor, store, progress, experiment=experiment)
    return points, table


def analyse(spec: SweepSpec, points: pd.DataFrame, table: pd.DataFrame, metric: str, period: str | None = None,
            category: str = "all") -> pd.DataFrame | None:
    """Sensitivity indices of one result (Sobol for a Sobol design, Morris for a Morris design; None for grids
    and Latin hypercubes, whose tables are for response surfaces)."""
    outputs = sweep_table_to_outputs(table, metric, period, category, points=len(points))
    if outputs.isna().any():
        raise ValueError(f"{int(outputs.isna().sum())} of {len(points)} points have no results yet: finish the "
                         "sweep (rerun it: finished runs are kept) before computing indices")
    if spec.design == "sobol":
        return sobol_indices(spec, points, outputs.to_numpy(), seed=spec.seed)
    if spec.design == "morris":
        return morris_indices(spec, points, outputs.to_numpy(), seed=spec.seed)
    return None
