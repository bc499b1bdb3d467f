"""Paired comparison of contracts: every replication's History is settled under every contract.

Because settlement is pure, the contracts see exactly the same simulated clients (common random numbers), so
differences between them are paired and their confidence intervals narrow. With provider behaviour on, the
provider responds to each contract: each is simulated on the same seed, so the same people arrive with the same
draws, and the histories differ only where the provider's responses make them differ. The first contract is the reference
for the differences. Replication ``r`` uses :func:`sim.experiments.seeds.replication_seed` (the ``r``-th child of the root ``SeedSequence``). Replications can run on any
executor of :mod:`sim.experiments.core` (``pbrsim compare --executor processes``), with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.analysis.delivered import DELIVERED, delivered_by_year, delivered_term
from sim.config.contract import Contract, contract_from_dict
from sim.config.scenario import Scenario, scenario_from_dict
from sim.core.errors import unsettled_reported
from sim.engine.system import simulate
from sim.experiments.core import replications as run_replications
from sim.experiments.providers import provider_model
from sim.experiments.seeds import replication_seed
from sim.experiments.statistics import mean_ci
from sim.money.settlement import METRICS, contract_year_metrics, settle, term_metrics


@dataclass
class Comparison:
    contracts: list[str]
    by_year: pd.DataFrame      # replication, contract, contract_year, metric columns (money, then DELIVERED outcomes)
    term: pd.DataFrame         # replication, contract, metric columns: totals over the observed contract years
    fingerprints: pd.DataFrame  # replication, contract, history fingerprint (identical across contracts unless
                                # the provider responds to them)

    def summary(self) -> pd.DataFrame:
        """Per contract: mean, 95% CI of each term total, the share of replications in which the provider makes
        a loss over the term (``probability_of_loss``) and the 5th percentile of its term margin
        (``margin_p5``, pounds; linear interpolation between replications)."""
        rows = []
        for name, d in self.term.groupby("contract", sort=False):
            margin = d["margin"].to_numpy(dtype=float)
            row = {"contract": name, "replications": len(d), "probability_of_loss": float((margin < 0).mean()),
                   "margin_p5": float(np.percentile(margin, 5)) if len(margin) else np.nan}
            for m in self.compared():
                mean, half = _mean_ci(d[m].to_numpy(dtype=float))
                row[m], row[f"{m}_ci"] = mean, half
            rows.append(row)
        return pd.DataFrame(rows).set_index("contract")

    def offending_lottery(self) -> pd.DataFrame:
        """The offending pot as the lottery it is: per contract with a pot and contract year, over the
        replications in which the year is settled, the mean payment (pounds) and share of the pot, and the
        shares of replications in which the pot pays nothing and pays in full. Empty without a pot."""
        settled = self.by_year[self.by_year["observed"].astype(bool) & self.by_year["offending_fraction_paid"].notna()]
        rows = []
        for (name, year), d in settled.groupby(["contract", "contract_year"], sort=False):
            fraction = d["offending_fraction_paid"].to_numpy(float)
            rows.append({"contract": name, "contract_year": int(year), "replications": len(d),
                         "mean_payment": float(d["offending_payment"].mean()),
                         "mean_share_paid": float(fraction.mean()),
                         "pays_nothing": float((fraction <= 0).mean()),
                         "pays_in_full": float((fraction >= 1).mean())})
        return pd.DataFrame(rows, columns=["contract", "contract_year", "replications", "mean_payment",
                                           "mean_share_paid", "pays_nothing", "pays_in_full"])

    def paired_differences(self) -> pd.DataFrame:
        """Each contract minus the first, replication by replication, for the money and what it buys (the
        outcomes of :mod:`sim.analysis.delivered`, beside ``planned_exits``): mean difference and 95% CI."""
        wide = self.term.set_index(["replication", "contract"])
        ref = self.contracts[0]
        rows = []
        for name in self.contracts[1:]:
            for m in self.compared():
                diff = (wide.xs(name, level="contract")[m] - wide.xs(ref, level="contract")[m]).to_numpy(float)
                mean, half = _mean_ci(diff)
                rows.append({"contract": name, "versus": ref, "metric": m, "mean_difference": mean,
                             "ci_low": mean - half, "ci_high": mean + half})
        return pd.DataFrame(rows)

    def compared(self) -> list[str]:
        """The money (:data:`sim.money.settlement.METRICS`) and, where the term table has them, the outcomes
        of :mod:`sim.analysis.delivered` (a comparison built elsewhere may carry the money alone)."""
        return [m for m in COMPARED if m in METRICS or m in self.term.columns]

    def outcomes_identical(self) -> bool:
        """True when every contract saw the same clients in every replication (the provider contract-blind):
        outcome differences are then nil by construction, and only the money differs."""
        return bool((self.fingerprints.groupby("replication")["history"].nunique() == 1).all())


COMPARED = (*METRICS, *DELIVERED)


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and 95% t half-width (sim.experiments.statistics.mean_ci; NaN half-width with fewer than two)."""
    s = mean_ci(x)
    return s.mean, s.half_width


def fingerprint(history) -> str:
    """A short hash of a History's spells and events: equal fingerprints, identical clients."""
    h = pd.util.hash_pandas_object(history.spells, index=False).sum() ^ \
        pd.util.hash_pandas_object(history.events, index=False).sum()
    return f"{int(h) & (2**64 - 1):016x}"


def compare(scenario: Scenario, contracts: list[Contract], replications: int, seed: int | None = None,
            progress=None, executor=None) -> Comparison:
    """Simulate ``replications`` Histories and settle each under every contract. With provider behaviour on
    (``scenario.behaviour.mode``), the provider responds to each contract, so each contract's clients are
    simulated on their own, from the same seed: the same people arrive, and differ only where the provider's
    responses make them differ. ``executor`` (see :mod:`sim.experiments.core`; default: this process) runs the
    replications, each from the scenario and contracts as data; the comparison is identical whichever runs them."""
    if not contracts:
        raise ValueError("give at least one contract")
    names = [c.name for c in contracts]
    if len(set(names)) != len(names):
        raise ValueError(f"contract names must differ, got {names}")
    root = int(scenario.seed if seed is None else seed)
    raw, contract_raws = scenario.raw(), [c.raw() for c in contracts]
    tasks = [(raw, contract_raws, r, replication_seed(root, r)) for r in range(replications)]
    with unsettled_reported([scenario]):
        results = run_replications(_replication_task, tasks, executor, progress)  # in replication order
    year_rows = [frame for _, frames, _ in results for frame in frames]
    prints = [p for _, _, found in results for p in found]
    by_year = pd.concat(year_rows, ignore_index=True)
    by_year = by_year[["replication", "contract", "contract_year", *by_year.columns.drop(
        ["replication", "contract", "contract_year"])]]
    return Comparison(names, by_year, term_table(by_year),
                      pd.DataFrame(prints, columns=["replication", "contract", "history"]))


def term_table(by_year: pd.DataFrame) -> pd.DataFrame:
    """Per replication and contract, the totals over the observed contract years of the money
    (:func:`sim.money.settlement.term_metrics`) and, where ``by_year`` has them, of the outcomes
    (:func:`sim.analysis.delivered.delivered_term`)."""
    outcomes = all(m in by_year.columns for m in DELIVERED)
    rows = []
    for _, d in by_year.groupby(["replication", "contract"], sort=False):
        money = term_metrics(d)
        rows.append(pd.concat([money, delivered_term(d[d["observed"].astype(bool)])]) if outcomes else money)
    keys = by_year[["replication", "contract"]].drop_duplicates().reset_index(drop=True)
    return pd.concat([keys, pd.DataFrame([r.rename(None) for r in rows]).reset_index(drop=True)], axis=1)


def delivered_rows(history, scenario: Scenario, settlement, cache: dict, mark: str | None = None) -> pd.DataFrame:
    """:func:`sim.analysis.delivered.delivered_by_year` over ``settlement``'s contract years, computed once per
    History (told apart by its :func:`fingerprint` ``mark``) and set of years (``cache``: a dict kept across the
    contracts of one replication)."""
    years = settlement.years[["contract_year", "start", "end"]]
    key = (fingerprint(history) if mark is None else mark, tuple(map(tuple, years.to_numpy().tolist())))
    if key not in cache:
        cache[key] = delivered_by_year(history, scenario, years)
    return cache[key]


def _replication_task(task: tuple) -> tuple[int, list[pd.DataFrame], list[tuple]]:
    """Replication ``r``, from the scenario and contracts as data: its History (one for every contract the
    provider is blind to) settled under each contract; the figures per contract year, and each History's
    fingerprint. The provider's model is built once per process and kept (see ``provider_model``)."""
    scenario_raw, contract_raws, r, child = task
    scenario = scenario_from_dict(scenario_raw, "<compared scenario>")
    contracts = [contract_from_dict(raw, f"<contract {i}>") for i, raw in enumerate(contract_raws)]
    providers = [provider_model(scenario, contract) for contract in contracts]
    year_rows, prints = [], []
    blind, delivered = None, {}
    for contract, provider in zip(contracts, providers):
        if provider is None:
            blind = history = simulate(scenario, child) if blind is None else blind
        else:
            history = simulate(scenario, np.random.SeedSequence(child.entropy, spawn_key=child.spawn_key),
                               provider=provider)
        settlement = settle(contract, history, scenario)
        mark = fingerprint(history)
        by_year = contract_year_metrics(settlement).join(delivered_rows(history, scenario, settlement, delivered, mark))
        year_rows.append(by_year.reset_index().assign(replication=r, contract=contract.name))
        prints.append((r, contract.name, mark))
    return r, year_rows, prints
