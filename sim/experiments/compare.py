"""Paired comparison of contracts: every replication's History is settled under every contract.

Because settlement is pure, the contracts see exactly the same simulated clients (common random numbers), so
differences between them are paired and their confidence intervals narrow. With provider behaviour on, the
provider responds to each contract: each is simulated on the same seed, so the same people arrive with the same
draws, and the histories differ only where the provider's responses make them differ. The first contract is the reference
for the differences. Replication ``r`` uses :func:`sim.experiments.seeds.replication_seed` (the ``r``-th child of the root ``SeedSequence``). Replications can run on any
executor of :mod:`sim.experiments.core` (``pbrsim compare --executor processes``), with identical results.

Under a scenario's ``[uncertainty]`` (probabilistic sensitivity analysis) replication ``r`` also carries parameter
draw ``r // runs_per_draw`` (:mod:`sim.experiments.uncertainty`), shared by every design: common random numbers on
both levels, the draw and the replication. A ``contract.`` key path changes the designs that have a number there
and is ignored by those that do not (a block contract has no offending pot). Summaries give, beside the confidence
interval of each mean, the uncertainty interval of the values themselves (2.5th-97.5th percentiles over draws and
replications), and spend per outcome as a ratio of means with a bootstrap interval
(:mod:`sim.experiments.statistics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.analysis.delivered import DELIVERED, OBSERVABLE_TERM, delivered_by_year, delivered_term
from sim.config.contract import Contract, contract_from_dict
from sim.config.scenario import Scenario, scenario_from_dict
from sim.core.errors import unsettled_reported
from sim.engine.system import simulate
from sim.experiments.core import replications as run_replications
from sim.experiments.providers import provider_model
from sim.experiments.seeds import replication_seed
from sim.experiments.statistics import SMALL_SAMPLE, chance_text, mean_ci, ratio_of_means, uncertainty_interval
from sim.experiments.uncertainty import drawn_contract, drawn_scenario
from sim.money.settlement import METRICS, contract_year_metrics, settle, term_metrics


@dataclass
class Comparison:
    contracts: list[str]
    by_year: pd.DataFrame      # replication, contract, contract_year, metric columns (money, then DELIVERED outcomes)
    term: pd.DataFrame         # replication, contract, metric columns: totals over the observed contract years
    fingerprints: pd.DataFrame  # replication, contract, history fingerprint (identical across contracts unless
                                # the provider responds to them)
    parameters: pd.DataFrame | None = None  # replication, draw, one column per uncertain key path (PSA only)

    def summary(self) -> pd.DataFrame:
        """Per contract, for each term total: the mean, the 95% confidence interval of the mean (``_ci_low``,
        ``_ci_high``: t-interval over replications) and the 95% uncertainty interval of the values (``_ui_low``,
        ``_ui_high``: percentiles over draws and replications); spend per outcome (``spend_per_planned_exit``,
        ``spend_per_sustained_recovery``) as the ratio of the means with a paired bootstrap interval. Also the
        share of replications in which the provider makes a loss over the term (``probability_of_loss``, with
        ``losses``: the count said with its resolution), the 5th percentile of its term margin (``margin_p5``,
        pounds; linear interpolation) and ``small_sample`` (fewer than 5 replications)."""
        rows = []
        for name, d in self.term.groupby("contract", sort=False):
            margin = d["margin"].to_numpy(dtype=float)
            row = {"contract": name, "replications": len(d), "probability_of_loss": float((margin < 0).mean()),
                   "losses": chance_text(int((margin < 0).sum()), len(margin)),
                   "margin_p5": float(np.percentile(margin, 5)) if len(margin) else np.nan,
                   "small_sample": len(d) < SMALL_SAMPLE}
            for m in self.compared():
                if m in RATIOS:
                    num, den = RATIOS[m]
                    ratio = ratio_of_means(d[num], d[den])
                    row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ratio.ratio, ratio.ci_low, ratio.ci_high
                else:
                    ci = mean_ci(d[m].to_numpy(dtype=float))
                    row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ci.mean, ci.ci_low, ci.ci_high
                row[f"{m}_ui_low"], row[f"{m}_ui_high"] = uncertainty_interval(d[m].to_numpy(dtype=float))
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
        """Each contract minus the first, replication by replication (the same clients and parameter draw), for
        the money and what it buys (the outcomes of :mod:`sim.analysis.delivered`, beside ``planned_exits``): the
        mean difference, its 95% confidence interval and the 95% uncertainty interval of the differences."""
        wide = self.term.set_index(["replication", "contract"])
        ref = self.contracts[0]
        rows = []
        for name in self.contracts[1:]:
            for m in self.compared():
                diff = (wide.xs(name, level="contract")[m] - wide.xs(ref, level="contract")[m]).to_numpy(float)
                ci = mean_ci(diff)
                low, high = uncertainty_interval(diff)
                rows.append({"contract": name, "versus": ref, "metric": m, "mean_difference": ci.mean,
                             "ci_low": ci.ci_low, "ci_high": ci.ci_high, "ui_low": low, "ui_high": high,
                             "replications": ci.n})
        return pd.DataFrame(rows)

    def observed_years(self) -> int:
        """How many contract years every replication observed (the term the totals cover)."""
        observed = self.by_year[self.by_year["observed"].astype(bool)]
        return int(observed.groupby(["replication", "contract"])["contract_year"].nunique().min()) if len(observed) else 0

    def compared(self) -> list[str]:
        """The money (:data:`sim.money.settlement.METRICS`) and, where the term table has them, the outcomes
        of :mod:`sim.analysis.delivered` (a comparison built elsewhere may carry the money alone)."""
        return [m for m in COMPARED if m in METRICS or m in self.term.columns]

    def outcomes_identical(self) -> bool:
        """True when every contract saw the same clients in every replication (the provider contract-blind):
        outcome differences are then nil by construction, and only the money differs."""
        return bool((self.fingerprints.groupby("replication")["history"].nunique() == 1).all())


COMPARED = (*METRICS, *DELIVERED, "spend_per_sustained_recovery")
# spend per outcome: the ratio of the term means (numerator, denominator), never the mean of per-replication ratios;
# per sustained recovery over the years whose recoveries are observable (sim.analysis.delivered)
RATIOS = {"spend_per_planned_exit": ("spend", "planned_exits"),
          "spend_per_sustained_recovery": OBSERVABLE_TERM}


def fingerprint(history) -> str:
    """A short hash of a History's spells and events: equal fingerprints, identical clients."""
    h = pd.util.hash_pandas_object(history.spells, index=False).sum() ^ \
        pd.util.hash_pandas_object(history.events, index=False).sum()
    return f"{int(h) & (2**64 - 1):016x}"


def compare(scenario: Scenario, contracts: list[Contract], replications: int, seed: int | None = None,
            progress=None, executor=None, runs_per_draw: int = 1) -> Comparison:
    """Simulate ``replications`` Histories and settle each under every contract. With provider behaviour on
    (``scenario.behaviour.mode``), the provider responds to each contract, so each contract's clients are
    simulated on their own, from the same seed: the same people arrive, and differ only where the provider's
    responses make them differ. ``executor`` (see :mod:`sim.experiments.core`; default: this process) runs the
    replications, each from the scenario and contracts as data; the comparison is identical whichever runs them.
    Under ``[uncertainty]`` replication ``r`` carries parameter draw ``r // runs_per_draw``, the same for every
    contract (see the module docstring)."""
    if not contracts:
        raise ValueError("give at least one contract")
    names = [c.name for c in contracts]
    if len(set(names)) != len(names):
        raise ValueError(f"contract names must differ, got {names}")
    root = int(scenario.seed if seed is None else seed)
    raw, contract_raws = scenario.raw(), [c.raw() for c in contracts]
    per_draw = max(int(runs_per_draw), 1)
    tasks = [(raw, contract_raws, r, replication_seed(root, r), root, r // per_draw) for r in range(replications)]
    with unsettled_reported([scenario]):
        results = run_replications(_replication_task, tasks, executor, progress)  # in replication order
    year_rows = [frame for _, frames, _, _ in results for frame in frames]
    prints = [p for _, _, found, _ in results for p in found]
    drawn = [values for *_, values in results if values is not None]
    by_year = pd.concat(year_rows, ignore_index=True)
    by_year = by_year[["replication", "contract", "contract_year", *by_year.columns.drop(
        ["replication", "contract", "contract_year"])]]
    term = term_table(by_year)
    return Comparison(names, by_year, term, pd.DataFrame(prints, columns=["replication", "contract", "history"]),
                      pd.DataFrame(drawn) if drawn else None)


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
    totals = pd.DataFrame([r.rename(None) for r in rows]).reset_index(drop=True)
    return with_spend_per_recovery(pd.concat([keys, totals], axis=1))


def with_spend_per_recovery(term: pd.DataFrame) -> pd.DataFrame:
    """``term`` with each replication's spend per sustained recovery over the years whose recoveries are observable
    (NaN without a recovery), where it carries them (:data:`sim.analysis.delivered.OBSERVABLE_TERM`)."""
    if OBSERVABLE_TERM[1] in term.columns:
        spend, recoveries = (term[c].to_numpy(dtype=float) for c in OBSERVABLE_TERM)
        with np.errstate(divide="ignore", invalid="ignore"):
            term["spend_per_sustained_recovery"] = np.where(recoveries > 0, spend / recoveries, np.nan)
    return term


def delivered_rows(history, scenario: Scenario, settlement, cache: dict, mark: str | None = None) -> pd.DataFrame:
    """:func:`sim.analysis.delivered.delivered_by_year` over ``settlement``'s contract years, computed once per
    History (told apart by its :func:`fingerprint` ``mark``) and set of years (``cache``: a dict kept across the
    contracts of one replication)."""
    years = settlement.years[["contract_year", "start", "end"]]
    key = (fingerprint(history) if mark is None else mark, tuple(map(tuple, years.to_numpy().tolist())))
    if key not in cache:
        cache[key] = delivered_by_year(history, scenario, years)
    return cache[key]


def _replication_task(task: tuple) -> tuple[int, list[pd.DataFrame], list[tuple], dict | None]:
    """Replication ``r``, from the scenario and contracts as data, with its parameter draw under uncertainty: its
    History (one for every contract the provider is blind to) settled under each contract; the figures per
    contract year, each History's fingerprint, and the draw's values (None without uncertainty). The provider's
    model is built once per process and kept (see ``provider_model``)."""
    scenario_raw, contract_raws, r, child, root, draw = task
    scenario = scenario_from_dict(scenario_raw, "<compared scenario>")
    contracts = [contract_from_dict(raw, f"<contract {i}>") for i, raw in enumerate(contract_raws)]
    drawn = None
    if scenario.uncertainty:  # one draw for every design: the same system, each design's own contract paths
        scenario, values = drawn_scenario(scenario, root, draw)
        contracts = [drawn_contract(c, values) for c in contracts]
        drawn = {"replication": r, "draw": draw, **values}
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
    return r, year_rows, prints, drawn
