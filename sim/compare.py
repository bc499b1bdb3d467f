"""Paired comparison of contracts: every replication's History is settled under every contract.

Because settlement is pure, the contracts see exactly the same simulated clients (common random numbers), so
differences between them are paired and their confidence intervals narrow. The first contract is the reference
for the differences. Replication seeds are spawned from one root ``SeedSequence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .contract import Contract
from .pathway import simulate
from .scenario import Scenario
from .settlement import commissioner_by_year, provider_by_year, settle

METRICS = {
    "income": "provider income (pounds)",
    "outcome_payments": "payments on outcomes and offending (pounds)",
    "cost": "provider delivery cost (pounds)",
    "margin": "provider margin (pounds)",
    "working_capital_needed": "largest cash shortfall before payments arrive (pounds)",
    "spend": "commissioner spend including assessments (pounds)",
    "planned_exits": "planned exits (people)",
    "spend_per_planned_exit": "commissioner spend per planned exit (pounds)",
    "community_savings": "estimated community savings from reduced offending (pounds)",
}


@dataclass
class Comparison:
    contracts: list[str]
    by_year: pd.DataFrame      # replication, contract, contract_year, metric columns
    term: pd.DataFrame         # replication, contract, metric columns: totals over the observed contract years
    fingerprints: pd.DataFrame  # replication, contract, history fingerprint (identical across contracts)

    def summary(self) -> pd.DataFrame:
        """Per contract: mean, 95% CI of each term total, and the probability the provider makes a loss."""
        rows = []
        for name, d in self.term.groupby("contract", sort=False):
            row = {"contract": name, "replications": len(d), "probability_of_loss": float((d["margin"] < 0).mean())}
            for m in METRICS:
                mean, half = _mean_ci(d[m].to_numpy(dtype=float))
                row[m], row[f"{m}_ci"] = mean, half
            rows.append(row)
        return pd.DataFrame(rows).set_index("contract")

    def paired_differences(self) -> pd.DataFrame:
        """Each contract minus the first, replication by replication: mean difference and 95% CI."""
        wide = self.term.set_index(["replication", "contract"])
        ref = self.contracts[0]
        rows = []
        for name in self.contracts[1:]:
            for m in METRICS:
                diff = (wide.xs(name, level="contract")[m] - wide.xs(ref, level="contract")[m]).to_numpy(float)
                mean, half = _mean_ci(diff)
                rows.append({"contract": name, "versus": ref, "metric": m, "mean_difference": mean,
                             "ci_low": mean - half, "ci_high": mean + half})
        return pd.DataFrame(rows)


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def fingerprint(history) -> str:
    """A short hash of a History's spells and events: equal fingerprints, identical clients."""
    h = pd.util.hash_pandas_object(history.spells, index=False).sum() ^ \
        pd.util.hash_pandas_object(history.events, index=False).sum()
    return f"{int(h) & (2**64 - 1):016x}"


def compare(scenario: Scenario, contracts: list[Contract], replications: int, seed: int | None = None,
            progress=None) -> Comparison:
    """Simulate ``replications`` Histories and settle each under every contract."""
    if not contracts:
        raise ValueError("give at least one contract")
    names = [c.name for c in contracts]
    if len(set(names)) != len(names):
        raise ValueError(f"contract names must differ, got {names}")
    root = np.random.SeedSequence(scenario.seed if seed is None else seed)
    year_rows, prints = [], []
    for r, child in enumerate(root.spawn(replications)):
        history = simulate(scenario, child)
        mark = fingerprint(history)
        for contract in contracts:
            s = settle(contract, history, scenario)
            prov = provider_by_year(s)
            comm = commissioner_by_year(s)
            outcome = s.payments[s.payments["kind"].isin(["outcome", "clawback", "offending"])]
            frame = pd.DataFrame({
                "replication": r, "contract": contract.name, "contract_year": prov.index,
                "observed": prov["observed"].to_numpy(),
                "income": prov["income"].to_numpy(), "cost": prov["cost"].to_numpy(),
                "margin": prov["margin"].to_numpy(),
                "outcome_payments": outcome.groupby("contract_year")["amount"].sum().reindex(prov.index,
                                                                                             fill_value=0).to_numpy(),
                "working_capital_needed": prov["working_capital_needed"].to_numpy(),
                "spend": comm["spend"].to_numpy(), "planned_exits": comm["planned_exits"].to_numpy(),
                "community_savings": (comm["community_savings"].to_numpy() if "community_savings" in comm
                                      else np.zeros(len(comm))),
            })
            year_rows.append(frame)
            prints.append((r, contract.name, mark))
        if progress is not None:
            progress(r + 1)
    by_year = pd.concat(year_rows, ignore_index=True)
    observed = by_year[by_year["observed"]]
    term = observed.groupby(["replication", "contract"], sort=False).agg(
        {"income": "sum", "outcome_payments": "sum", "cost": "sum", "margin": "sum",
         "working_capital_needed": "max", "spend": "sum", "planned_exits": "sum",
         "community_savings": "sum"}).reset_index()
    term["spend_per_planned_exit"] = term["spend"] / term["planned_exits"].where(term["planned_exits"] > 0)
    return Comparison(names, by_year, term, pd.DataFrame(prints, columns=["replication", "contract", "history"]))
