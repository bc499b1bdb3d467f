"""The national PbR pilot evaluation redone in silico: the pilot against its counterfactual on paired replications.

Three arms, every replication on the same seed (common random numbers: the same people are referred in each):

``counterfactual``  what areas outside the pilot had: the counterfactual scenario (the provider assesses at intake,
                    no independent LASARS service) under its own contract (block);
``lasars_block``    the pilot's system (LASARS) under the counterfactual's contract: the system-design change alone;
``pilot``           the pilot's system under its PbR contract, the provider responding as the scenario's
                    ``[behaviour]`` says (contract-blind when its mode is off).

The pilot effect (``pilot`` against ``counterfactual``) splits into the system-design part (``lasars_block``
against ``counterfactual``) and the payment part (``pilot`` against ``lasars_block``). With the provider contract-
blind the payment part is nil by construction: the two arms' Histories are identical.

Each measure of :mod:`sim.analysis.evaluation` is compared as the evaluation did, by an odds ratio (a rate ratio
for ``acquisitive_crime``): the point estimate from the counts pooled over replications, its 95% interval from
the spread of the paired per-replication log ratios (a t-interval over replications). ``treatment_journeys_change``
is a difference in differences: each arm's percentage change in people in treatment a year from the year before
the contract to the first two contract years, the pilot's minus the counterfactual's, in percentage points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.analysis.evaluation import PILOT_MEASURES, pilot_measures
from sim.config.contract import Contract, contract_from_dict
from sim.config.scenario import Scenario, scenario_from_dict
from sim.core.errors import unsettled_reported
from sim.experiments.seeds import replication_seed
from sim.experiments.statistics import t_half_width

ARMS = ("counterfactual", "lasars_block", "pilot")
COMPARISONS = {  # name: (arm, against)
    "pilot effect": ("pilot", "counterfactual"),
    "system design (LASARS)": ("lasars_block", "counterfactual"),
    "payment (provider response)": ("pilot", "lasars_block"),
}
EVALUATION_COLUMNS = ["measure", "counterfactual_rate", "pilot_rate", "odds_ratio", "ci_low", "ci_high",
                      "replications", "statistic", "population"]
JOURNEYS = "treatment_journeys_change"


@dataclass(frozen=True)
class PilotEvaluation:
    """The counts of every arm and replication (``counts``: ``replication``, ``arm``, ``measure``, ``events``,
    ``population``), and what was run."""

    counts: pd.DataFrame
    scenario: str
    contract: str
    counterfactual: str
    counterfactual_contract: str
    behaviour: str
    replications: int
    seed: int

    def table(self, comparison: str = "pilot effect") -> pd.DataFrame:
        """``evaluation.csv``: one row per measure, the arm against its reference (see :data:`COMPARISONS`)."""
        arm, against = COMPARISONS[comparison]
        return evaluation_table(self.counts, arm, against)

    def parts(self) -> pd.DataFrame:
        """Every comparison of :data:`COMPARISONS`, one below the other, with a ``comparison`` column."""
        return pd.concat([self.table(c).assign(comparison=c) for c in COMPARISONS], ignore_index=True)


def evaluate_pilot(scenario: Scenario, contract: Contract, counterfactual: Scenario, counterfactual_contract: Contract,
                   replications: int, seed: int | None = None, executor=None, progress=None) -> PilotEvaluation:
    """Run the three arms of the module docstring ``replications`` times each (replication ``r`` on
    ``replication_seed(seed, r)`` in every arm; default seed: the scenario's) and count the pilot measures."""
    from sim.experiments.core import replications as run_replications
    from sim.money.settlement import check

    if replications < 2:
        raise ValueError(f"an interval over paired replications needs at least 2, got {replications}")
    check(contract, scenario)
    check(counterfactual_contract, counterfactual)
    check(counterfactual_contract, scenario)
    root = int(scenario.seed if seed is None else seed)
    raws = (scenario.raw(), contract.raw(), counterfactual.raw(), counterfactual_contract.raw())
    tasks = [(*raws, r, replication_seed(root, r)) for r in range(replications)]
    with unsettled_reported([scenario, counterfactual]):
        parts = run_replications(_replication, tasks, executor, progress)
    return PilotEvaluation(pd.concat(parts, ignore_index=True), scenario.name, contract.name, counterfactual.name,
                           counterfactual_contract.name, scenario.behaviour.mode, replications, root)


def _replication(task: tuple) -> pd.DataFrame:
    """One replication of every arm, from the scenarios and contracts as data. With the pilot's provider
    contract-blind, ``lasars_block`` and ``pilot`` are the same History: it is simulated and counted once."""
    from sim.experiments.provider_runs import simulate_with_provider

    scenario_raw, contract_raw, cf_raw, cf_contract_raw, r, child = task
    scenario = scenario_from_dict(scenario_raw, "<pilot scenario>")
    counterfactual = scenario_from_dict(cf_raw, "<counterfactual scenario>")
    contract = contract_from_dict(contract_raw, "<pilot contract>")
    block = contract_from_dict(cf_contract_raw, "<counterfactual contract>")
    counted: dict[tuple, pd.DataFrame] = {}
    frames = []
    for arm, (sc, c) in zip(ARMS, ((counterfactual, block), (scenario, block), (scenario, contract))):
        key = (arm == "counterfactual", None if sc.behaviour.mode == "off" else c.name)
        if key not in counted:
            run = simulate_with_provider(sc, c, np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key))
            counted[key] = pilot_measures(run.history, run.scenario)
        frames.append(counted[key].assign(replication=r, arm=arm))
    return pd.concat(frames, ignore_index=True)[["replication", "arm", "measure", "events", "population"]]


def arm_counts(task: tuple) -> pd.DataFrame:
    """One arm of one replication, from its scenario and contract as data and the replication's seed: the
    counts of every pilot measure (``measure``, ``events``, ``population``)."""
    from sim.experiments.provider_runs import simulate_with_provider

    scenario_raw, contract_raw, child = task
    scenario = scenario_from_dict(scenario_raw, "<pilot arm scenario>")
    contract = contract_from_dict(contract_raw, "<pilot arm contract>")
    run = simulate_with_provider(scenario, contract, np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key))
    return pilot_measures(run.history, run.scenario)


def paired_ratios(arm: pd.DataFrame, against: pd.DataFrame, measures) -> np.ndarray:
    """The odds ratio (rate ratio) of each of ``measures`` in one replication, ``arm``'s counts against
    ``against``'s (frames of :func:`arm_counts`)."""
    a, b = arm.set_index("measure"), against.set_index("measure")
    kinds = [PILOT_MEASURES[m].kind for m in measures]
    return np.array([math.exp(float(_log_ratio(a.at[m, "events"], a.at[m, "population"], b.at[m, "events"],
                                                b.at[m, "population"], k))) for m, k in zip(measures, kinds)])


def _log_ratio(e1, n1, e0, n0, kind: str) -> np.ndarray:
    """Log odds ratio (``share``) or log rate ratio (``rate``) of arm 1 against arm 0, elementwise; a zero cell
    adds a half to every cell of its comparison (Haldane), so identical arms still give exactly 0."""
    e1, n1, e0, n0 = (np.asarray(x, dtype=float) for x in (e1, n1, e0, n0))
    if kind == "rate":
        zero = (e1 == 0) | (e0 == 0)
        e1, e0 = e1 + 0.5 * zero, e0 + 0.5 * zero
        return np.log(e1 / n1) - np.log(e0 / n0)
    a, b, c, d = e1, n1 - e1, e0, n0 - e0
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    a, b, c, d = (x + 0.5 * zero for x in (a, b, c, d))
    return np.log(a / b) - np.log(c / d)


def evaluation_table(counts: pd.DataFrame, arm: str = "pilot", against: str = "counterfactual") -> pd.DataFrame:
    """The measures of ``arm`` against ``against`` (columns :data:`EVALUATION_COLUMNS`; the rates are named
    counterfactual and pilot whatever the two arms are)."""
    wide = counts.pivot_table(index=["measure", "replication"], columns="arm", values=["events", "population"],
                              aggfunc="sum")
    rows = []
    for name, spec in PILOT_MEASURES.items():
        w = wide.loc[name]
        e1, n1, e0, n0 = (w[(v, a)].to_numpy(float) for v, a in
                          (("events", arm), ("population", arm), ("events", against), ("population", against)))
        n = len(w)
        pooled = float(_log_ratio(e1.sum(), n1.sum(), e0.sum(), n0.sum(), spec.kind))
        per_rep = _log_ratio(e1, n1, e0, n0, spec.kind)
        half = t_half_width(per_rep.std(ddof=1), n) if n > 1 else math.nan
        rows.append((name, e0.sum() / n0.sum(), e1.sum() / n1.sum(), math.exp(pooled), math.exp(pooled - half),
                     math.exp(pooled + half), n, "odds ratio" if spec.kind == "share" else "rate ratio",
                     spec.population))
    w = wide.loc["people_in_treatment"]
    change = {a: 100.0 * (w[("events", a)].to_numpy(float) / w[("population", a)].to_numpy(float) - 1.0)
              for a in (arm, against)}
    diff = change[arm] - change[against]
    half = t_half_width(diff.std(ddof=1), len(diff)) if len(diff) > 1 else math.nan
    rows.append((JOURNEYS, float(change[against].mean()), float(change[arm].mean()), float(diff.mean()),
                 float(diff.mean() - half), float(diff.mean() + half), len(diff), "difference (percentage points)",
                 "people in treatment a year, against the year before the contract"))
    return pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
