"""Sweeps over contract features with the provider responding (``pbrsim behaviour-sweep``): a sweep spec
(:mod:`sim.experiments.sweep`) run with behaviour on through the experiment machinery, adding the behaviour
outputs and a total-distortion index to each run's table. Derived contract keys
(``contract.band_weight_steepness``, ``contract.pbr_share_every_year``) sweep a whole ladder of band weights or
PbR shares with one number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.config.contract import Contract
from sim.experiments.provider_runs import simulate_with_provider
from sim.provider.outputs import ALL, TERM, mechanism_strength

if TYPE_CHECKING:
    pass



# --- 5. sweeps over contract features with behaviour on ------------------------------------------------------------

STEEPNESS_PATH = "contract.band_weight_steepness"
PBR_SHARE_PATH = "contract.pbr_share_every_year"
# derived sweep keys: one number that sets several contract keys (see apply_derived)
DERIVED_PATHS = {
    STEEPNESS_PATH: "log(w_critical / w_low) of a log-linear band-weight ladder (0 = flat, negative = inverted), "
                    "the structured bands' mean weight kept at the design's",
    PBR_SHARE_PATH: "the same PbR share in every contract year",
}
# the positions of the structured bands on the ladder: Low 0 ... Critical 1
_LADDER = {"critical": 1.0, "substantial": 2 / 3, "moderate": 1 / 3, "low": 0.0}
BEHAVIOUR_CATEGORY = "behaviour"  # the mechanism strengths, term; outputs: "behaviour.<band>"
CHANGE_PREFIX = "behaviour_change"  # outputs on minus off, same seed: "behaviour_change.<band>"
SWEEP_ITERATIONS = 2  # M7 passes per sweep run


def steep_weights(weights: Mapping[str, float], steepness: float) -> dict[str, float]:
    """Band weights on a log-linear ladder: w_b proportional to exp(steepness x x_b), x_b from 0 (Low) to 1
    (Critical), so w_critical / w_low = exp(steepness) (0 = flat; negative = inverted, Low paid more than
    Critical, which no design does but which shows what weights flatter than a nearly flat margin-neutral tariff
    invite); scaled so the structured bands' mean weight is the mean of ``weights``. ``no_need`` keeps its weight.
    West Kent's 1.8 / 0.45 is a steepness of log 4 = 1.39."""
    if not math.isfinite(steepness):
        raise ValueError(f"band-weight steepness must be a number, got {steepness}")
    raw = {b: math.exp(steepness * x) for b, x in _LADDER.items()}
    mean = float(np.mean([weights.get(b, 1.0) for b in _LADDER]))
    scale = mean / float(np.mean(list(raw.values())))
    return {**{b: raw[b] * scale for b in _LADDER}, "no_need": weights.get("no_need", 0.0)}


def apply_derived(contract: Contract, values: Mapping[str, Any]) -> Contract:
    """``contract`` with the derived sweep keys of :data:`DERIVED_PATHS` applied (validated again)."""
    changes: dict[str, Any] = {}
    for path, value in values.items():
        if path == STEEPNESS_PATH:
            changes["band_weights"] = steep_weights(contract.band_weights, float(value))
        elif path == PBR_SHARE_PATH:
            changes["pbr_share"] = {"by_year": [float(value)] * contract.years}
        else:
            raise KeyError(f"{path!r} is not a derived sweep key; known: {', '.join(DERIVED_PATHS)}")
    return contract.with_changes(changes) if changes else contract


def behaviour_run(spec) -> pd.DataFrame:
    """One run of a behaviour sweep (a :class:`sim.experiments.core.RunSpec`, module level for worker processes): the
    rows :func:`sim.experiments.core.run_one` gives (yearly measures; contract figures per contract year and over the
    term) for the run with the provider responding (:func:`simulate_with_provider`, M7 included), plus the
    mechanism strengths (category ``behaviour``, period ``term``), the :func:`behaviour_outputs` (category
    ``behaviour.<band>``) and their change against the behaviour-off run of the same seed (category
    ``behaviour_change.<band>``)."""
    from sim.experiments.core import PARAMETER_CATEGORY, PARAMETER_PERIOD, contract_rows, measure_rows
    from sim.experiments.store import tidy
    from sim.experiments.uncertainty import drawn_scenario

    scenario, contract = spec.build()
    if contract is None:
        raise ValueError(f"point {spec.point}: a behaviour sweep needs a contract")
    parts = []
    if scenario.uncertainty:
        draw = spec.replication // max(spec.runs_per_draw, 1)
        scenario, contract, values = drawn_scenario(scenario, spec.seed, draw, contract)
        parts.append(pd.DataFrame({"period": PARAMETER_PERIOD, "category": PARAMETER_CATEGORY,
                                   "metric": ["draw", *values], "value": [float(draw), *values.values()]}))
    seed = spec.seed_sequence()
    off = simulate_with_provider(scenario.with_changes({"behaviour.mode": "off"}), contract, seed)
    run = simulate_with_provider(scenario, contract, seed, SWEEP_ITERATIONS)
    parts += [measure_rows(run.history), contract_rows(run.settlement)]
    strength = mechanism_strength(run.history, run.provider, run.cash, end=run.settlement.years["end"].max())
    parts.append(pd.DataFrame({"period": TERM, "category": BEHAVIOUR_CATEGORY, "metric": list(strength),
                               "value": [float(v) for v in strength.values()]}))
    on = run.outputs(blind=off.settlement)
    base = off.outputs(blind=off.settlement)
    change = on.merge(base, on=["period", "contract_year", "band", "metric"], suffixes=("", "_off"), how="left")
    change["value"] = change["value"] - change["value_off"]
    for frame, prefix in ((on, BEHAVIOUR_CATEGORY), (change, CHANGE_PREFIX)):
        parts.append(pd.DataFrame({"period": frame["period"], "category": prefix + "." + frame["band"],
                                   "metric": frame["metric"], "value": frame["value"].astype(float)}))
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "point", spec.point)
    table.insert(1, "replication", spec.replication)
    return tidy(table)


def _split_spec(spec):
    """The spec without its derived parameters (for :func:`sim.experiments.sweep.check_sweep`), and those parameters."""
    derived = [p for p in spec.parameters if p.path in DERIVED_PATHS]
    plain = spec.model_copy(update={"parameters": [p for p in spec.parameters if p.path not in DERIVED_PATHS]})
    return plain, derived


def check_behaviour_sweep(spec) -> None:
    """Refuse, before anything runs, a behaviour sweep that cannot run: everything :func:`sim.experiments.sweep.check_sweep`
    checks for the ordinary key paths, a contract, a behaviour mode other than off, and each derived key at its
    low and high value (or each value)."""
    from sim.config.base import source_of
    from sim.config.contract import ContractError
    from sim.experiments.sweep import SweepError, check_sweep

    plain, derived = _split_spec(spec)
    check_sweep(plain)
    spec._base = plain._base
    scenario, contract = plain.base()
    found = []
    where = source_of(("parameters",), spec._provenance, spec._source)
    if contract is None:
        found.append((spec._source, "contract", None, "a behaviour sweep needs a contract (give `contract`, or a "
                                                      "scenario that names one)"))
    if scenario.behaviour.mode == "off" and not any(p.path == "behaviour.mode" for p in plain.parameters):
        found.append((source_of(("changes",), spec._provenance, spec._source), "changes.behaviour.mode", "off",
                      "the provider does not respond with behaviour off: set behaviour.mode to base or stress"))
    for i, p in enumerate(spec.parameters):
        if p.path not in DERIVED_PATHS or contract is None:
            continue
        tried = p.values if p.values is not None else [p.low, p.high]
        for value in tried:
            try:
                apply_derived(contract, {p.path: value})
            except (ContractError, ValueError, TypeError) as e:
                message = e.problems[0][3] if isinstance(e, ContractError) else str(e)
                found.append((where, f"parameters[{i}].path", p.path, f"{message} (with value {value!r})"))
    if found:
        raise SweepError(found)


def load_behaviour_sweep(path: str | Path):
    """Read and validate a sweep spec that may sweep the derived keys of :data:`DERIVED_PATHS`, its scenario and
    contract, and every key path (:func:`check_behaviour_sweep`)."""
    from sim.experiments.sweep import load_sweep

    return load_sweep(path, check=check_behaviour_sweep)


def behaviour_sweep_specs(spec, points: pd.DataFrame | None = None) -> list:
    """The runs of a behaviour sweep as data (:class:`sim.experiments.core.RunSpec`), the derived keys applied; the
    same seeds at every point (common random numbers)."""
    from sim.experiments.core import RunSpec, contract_raw
    from sim.experiments.sweep import design_points, point_scenario

    plain, derived = _split_spec(spec)
    points = design_points(spec) if points is None else points
    scenario, contract = spec.base() if spec._base is not None else plain.base()
    specs = []
    for point, row in points.iterrows():
        sc, co = point_scenario(scenario, contract, plain, row)
        co = apply_derived(co, {p.path: row[p.path] for p in derived})
        raw, craw = sc.raw(), contract_raw(co)
        specs += [RunSpec(int(point), r, raw, craw, spec.seed) for r in range(spec.replications)]
    return specs


def run_behaviour_sweep(spec, executor=None, store=None, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every point of a sweep spec with the provider responding (:func:`behaviour_run`) through the
    experiment machinery (:func:`sim.experiments.core.run_specs`: any executor; with a ``store`` finished runs are kept
    and a rerun resumes); returns ``(points, table)``. The spec may sweep the derived keys of
    :data:`DERIVED_PATHS` beside ordinary scenario and ``contract.`` key paths."""
    from sim.experiments.core import run_specs
    from sim.experiments.sweep import design_points

    check_behaviour_sweep(spec)
    points = design_points(spec)
    specs = behaviour_sweep_specs(spec, points)
    experiment = {"kind": "behaviour_sweep", "spec": spec.model_dump(mode="json"), "points": len(points)}
    table = run_specs(specs, executor, store, progress, function=behaviour_run, experiment=experiment)
    return points, table


SWEEP_INDEX_METRICS = (("distortion", BEHAVIOUR_CATEGORY), ("deflected_share", BEHAVIOUR_CATEGORY),
                       ("parked_share", BEHAVIOUR_CATEGORY), ("band_drift_share", BEHAVIOUR_CATEGORY),
                       ("spend_per_true_outcome", BEHAVIOUR_CATEGORY + "." + ALL))
SWEEP_MECHANISMS = ("deflected_share", "parked_share", "misrecorded_share", "band_drift_share", "held_share",
                    "fast_tracked_share")


def behaviour_sweep_summary(spec, points: pd.DataFrame, table: pd.DataFrame,
                            metrics: Iterable[tuple[str, str]] = (("share_of_starters", "behaviour.critical"),
                                                                  ("spend_per_true_outcome", "behaviour.all"),
                                                                  ("completions_per_referral",
                                                                   "behaviour_change.critical_minus_low"))
                            ) -> pd.DataFrame:
    """One row per point: the swept values (as applied), the mean over replications of each mechanism strength
    and of the total distortion (term), and the term value of each (metric, category) in ``metrics``."""
    from sim.experiments.sweep import applied_points

    out = applied_points(spec, points).copy()
    term = table[table["period"].astype(str) == TERM]
    strength = term[term["category"] == BEHAVIOUR_CATEGORY].groupby(["point", "metric"])["value"].mean().unstack()
    for m in (*SWEEP_MECHANISMS, "capacity_cut", "mean_pressure", "distortion"):
        if m in strength:
            out[m] = strength[m].reindex(out.index)
    for metric, category in metrics:
        rows = term[(term["metric"] == metric) & (term["category"] == category)]
        out[f"{metric} ({category})"] = rows.groupby("point")["value"].mean().reindex(out.index)
    return out
