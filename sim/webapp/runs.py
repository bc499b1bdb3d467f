"""The page's computations, without Streamlit: simulate a design's replications (the slow step, in a pool of
processes), then settle them under one or more contracts (fast, pure) into tidy tables.

Replication ``r`` (from 0) of a design is simulated from ``sim.experiments.seeds.replication_seed(seed, r)`` —
the seed replication ``r`` of ``pbrsim compare SCENARIO --contracts CONTRACT --seed SEED`` (and of ``pbrsim
replicate SCENARIO --seed SEED``) uses — so every figure on the page can be reproduced from the downloaded
files. Every contract is settled on the same Histories, so differences between designs are paired. With the
provider's behaviour on, the behaviour responds to the contract, so each contract needs its own simulation
(:func:`simulation_key` then includes the contract).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.analysis import measures
from sim.analysis.delivered import delivered_by_year, delivered_term
from sim.analysis.offending import cohort_offences
from sim.config.contract import contract_from_dict
from sim.config.scenario import scenario_from_dict
from sim.engine.history import History, derived
from sim.engine.system import simulate
from sim.experiments.compare import Comparison, fingerprint, with_spend_per_recovery
from sim.experiments.seeds import replication_seed
from sim.experiments.statistics import SMALL_SAMPLE
from sim.experiments.statistics import mean_ci as interval
from sim.money.settlement import commissioner_by_year, contract_year_metrics, monthly_cash, settle, term_metrics
from sim.webapp.design import Design

# yearly measures shown with uncertainty bands (columns of sim.analysis.measures.by_period)
OUTCOME_MEASURES = ("in_treatment", "treatment_starts", "planned_exits", "successful_completions",
                    "planned_share_of_exits", "re_presentations", "deaths")


def canonical(raw: dict) -> str:
    """A dict as canonical JSON: the cache key of what it holds (dates as ISO strings)."""
    return json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))


def responds_to(design: Design) -> dict | None:
    """The contract the simulated provider responds to: None when its behaviour is off (the contract-blind
    model, whose Histories every contract shares)."""
    return design.contract.raw() if design.behaviour != "off" else None


def simulation_key(design: Design) -> tuple[str, tuple[int, ...]]:
    """What the simulated Histories depend on: the scenario as written and the seeds — and the contract only when
    the provider's behaviour responds to it. Tariffs are not in it: a tariff change only re-settles."""
    scenario = design.scenario.raw()
    if design.behaviour != "off":
        scenario = {**scenario, "__contract__": design.contract.raw()}
    return canonical(scenario), design.seeds


# --- the slow step: simulation -------------------------------------------------------------------------------


def simulate_replication(scenario_raw: dict, seed: int | tuple[int, int], contract_raw: dict | None = None) -> History:
    """One replication (a top-level function, so worker processes can run it): ``seed`` a ``(root seed, r)`` pair
    (replication r, :func:`sim.experiments.seeds.replication_seed`; what :attr:`Design.seeds` gives) or a plain
    seed (the run ``pbrsim run --seed SEED`` gives). With the provider's behaviour on
    (``behaviour.mode``) the provider responds to ``contract_raw``, as in ``pbrsim compare``: its beliefs come
    from one contract-blind pilot run on the scenario's own seed."""
    scenario = scenario_from_dict(scenario_raw, "<page design>")
    contract = contract_from_dict(contract_raw, "<page contract>") if contract_raw is not None else None
    if isinstance(seed, tuple):
        if scenario.uncertainty:  # replication r carries parameter draw r, as pbrsim compare's
            scenario, contract = _drawn(scenario, contract, *seed)
        seed = replication_seed(*seed)
    provider = None
    if contract is not None and scenario.behaviour.mode != "off":
        from sim.experiments.providers import provider_model

        provider = provider_model(scenario, contract)
    return simulate(scenario, seed, provider=provider) if provider is not None else simulate(scenario, seed)


def _drawn(scenario, contract, root: int, r: int):
    """The scenario (and contract, where it has the uncertain paths) with parameter draw ``r`` of root seed
    ``root`` in place (:mod:`sim.experiments.uncertainty`): the same draw for every design, as in compare."""
    from sim.experiments.uncertainty import drawn_contract, drawn_scenario

    drawn, values = drawn_scenario(scenario, root, r)
    return drawn, (drawn_contract(contract, values) if contract is not None else None)


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def make_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Worker processes started with ``spawn`` (never forked from a threaded web server)."""
    return ProcessPoolExecutor(workers or available_cores(), mp_context=multiprocessing.get_context("spawn"))


def simulate_replications(scenario_raw: dict, seeds: Sequence[int | tuple[int, int]], pool: Executor | None = None,
                          progress: Callable[[int, int], None] | None = None,
                          contract_raw: dict | None = None) -> list[History]:
    """The Histories of every seed, in seed order; ``progress(done, total)`` after each. Without a pool (or for
    one replication) they run here. ``contract_raw``: the contract the provider responds to (behaviour on)."""
    return _each_seed(simulate_replication, scenario_raw, seeds, pool, progress, contract_raw)


def simulate_and_measure(scenario_raw: dict, seed: int | tuple[int, int],
                         contract_raw: dict | None = None) -> tuple[History, pd.DataFrame, pd.DataFrame]:
    """:func:`simulate_replication` and the History's yearly measures and offending cohorts (:func:`measured`),
    in the same (worker) process: the page's first run measures while other replications simulate."""
    history = simulate_replication(scenario_raw, seed, contract_raw)
    return (history, *measured(history, scenario_from_dict(scenario_raw, "<page design>")))


def simulate_measured(scenario_raw: dict, seeds: Sequence[int | tuple[int, int]], pool: Executor | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      contract_raw: dict | None = None) -> tuple[list[History], Activity]:
    """:func:`simulate_replications` with each History's :class:`Activity` measured where it was simulated: the
    same Histories and the same Activity as :func:`activity` of them."""
    done = _each_seed(simulate_and_measure, scenario_raw, seeds, pool, progress, contract_raw)
    return [h for h, _, _ in done], _activity([(y, c) for _, y, c in done])


def _each_seed(run, scenario_raw, seeds, pool, progress, contract_raw) -> list:
    total = len(seeds)
    if pool is None or total == 1:
        out = []
        for i, seed in enumerate(seeds, 1):
            out.append(run(scenario_raw, seed, contract_raw))
            if progress:
                progress(i, total)
        return out
    futures = {pool.submit(run, scenario_raw, seed, contract_raw): i for i, seed in enumerate(seeds)}
    out: list = [None] * total
    for done, future in enumerate(as_completed(futures), 1):
        out[futures[future]] = future.result()
        if progress:
            progress(done, total)
    return out


@dataclass
class Activity:
    """What the clients did, whatever the contract: yearly measures and the offending cohort, per replication."""

    measures: pd.DataFrame    # replication, period (financial year), measure columns
    offending: pd.DataFrame   # replication, period, start, end, contract, cohort, offences, offences_per_member


def measured(history: History, scenario) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One History's yearly measures (all clients) and offending cohorts, without a replication column."""
    m = measures.by_period(history, "year")
    return (m[m["category"] == "all"] if "category" in m.columns else m), cohort_offences(history, scenario, "year")


def activity(histories: Sequence[History], scenario_raw: dict) -> Activity:
    scenario = scenario_from_dict(scenario_raw, "<page design>")
    return _activity([measured(h, scenario) for h in histories])


def _activity(parts: Sequence[tuple[pd.DataFrame, pd.DataFrame]]) -> Activity:
    return Activity(pd.concat([y.assign(replication=r) for r, (y, _) in enumerate(parts)], ignore_index=True),
                    pd.concat([c.assign(replication=r) for r, (_, c) in enumerate(parts)], ignore_index=True))


# --- the fast step: settlement -------------------------------------------------------------------------------


@dataclass
class Settled:
    """One contract settled on every replication: tidy tables with a ``replication`` column (pounds, people)."""

    contract: str
    by_year: pd.DataFrame        # replication, contract_year, observed, METRICS (as pbrsim compare)
    term: pd.DataFrame           # replication, METRICS totals over the observed contract years
    income: pd.DataFrame         # replication, contract_year, component, amount
    commissioner: pd.DataFrame   # replication, contract_year, commissioner_by_year columns
    cash: pd.DataFrame           # replication, period, start, end, cost, income, net, cumulative_cash
    offending: pd.DataFrame      # replication, the settlement's offending table (empty without a pot)
    paid: pd.DataFrame           # replication, contract_year, component, band, outcomes (count), amount
    fingerprints: list[str]


PARTS = ("by_year", "income", "commissioner", "cash", "offending", "paid")


def settle_one(contract_raw: dict, history: History, scenario_raw: dict, replication: int) -> dict:
    """One History under one contract: the page's tables for that replication."""
    contract = contract_from_dict(contract_raw, "<page contract>")
    scenario = scenario_from_dict(scenario_raw, "<page design>")
    r = replication
    seed = history.seed
    if scenario.uncertainty and getattr(seed, "spawn_key", ()) == (r,):  # replication r of a root seed: its draw
        scenario, contract = _drawn(scenario, contract, int(seed.entropy), r)
    s = settle(contract, history, scenario)
    years = s.years[["contract_year", "start", "end"]]
    commissioner = commissioner_by_year(s)
    by_year = contract_year_metrics(s, commissioner).join(
        _delivered_by_year(history, scenario, canonical(years.to_dict("list"))))
    inc = s.income_by_year().drop(columns="total").reset_index().melt(
        id_vars="contract_year", var_name="component", value_name="amount")
    pay = s.payments[s.payments["kind"].isin(["outcome", "clawback"])]
    paid = pay.assign(outcomes=np.where(pay["kind"] == "outcome", 1, 0)).groupby(
        ["contract_year", "component", "band"], as_index=False)[["outcomes", "amount"]].sum()
    return {
        "name": contract.name, "fingerprint": _fingerprint(history),
        "term": pd.concat([term_metrics(by_year), delivered_term(by_year[by_year["observed"].astype(bool)])]).rename(r),
        "by_year": by_year.reset_index().assign(replication=r), "income": inc.assign(replication=r),
        "commissioner": commissioner.reset_index().assign(replication=r),
        "cash": monthly_cash(s).assign(replication=r),
        "offending": s.offending.assign(replication=r) if len(s.offending) else None,
        "paid": paid.assign(replication=r),
    }


@derived
def _fingerprint(history: History) -> str:
    """:func:`sim.experiments.compare.fingerprint`, kept on the History: it is settled again at every tariff change."""
    return fingerprint(history)


@derived
def _delivered_by_year(history: History, scenario, years: str) -> pd.DataFrame:
    """What a design buys per contract year (:mod:`sim.analysis.delivered`), kept on the History: a tariff change
    re-settles without measuring the clients again."""
    return delivered_by_year(history, scenario, pd.DataFrame(json.loads(years)))


def settle_replications(contract_raw: dict, histories: Sequence[History], scenario_raw: dict) -> Settled:
    """Settle every History under one contract (validated again: the page's design or a shipped one), in this
    process: what settlement derives from a History is kept on it (``sim.engine.history.derived``), so re-settling
    under another tariff takes a fraction of the first settlement."""
    contract_from_dict(contract_raw, "<page contract>")  # refuse a bad contract here, before any work
    done = [settle_one(contract_raw, h, scenario_raw, r) for r, h in enumerate(histories)]
    frames = {}
    for k in PARTS:
        found = [d[k] for d in done if d[k] is not None]
        frames[k] = _first_replication(pd.concat(found, ignore_index=True)) if found else pd.DataFrame()
    term = pd.DataFrame([d["term"] for d in done]).rename_axis("replication").reset_index()
    return Settled(done[0]["name"] if done else contract_raw.get("name", ""), term=term,
                   fingerprints=[d["fingerprint"] for d in done], **frames)


def _first_replication(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["replication", *frame.columns.drop("replication")]]


def comparison(settled: Sequence[Settled]) -> Comparison:
    """Several contracts on the same replications, as :class:`sim.experiments.compare.Comparison` (the first is the
    reference of the paired differences)."""
    names = [s.contract for s in settled]
    if len(set(names)) != len(names):
        raise ValueError(f"contract names must differ, got {names}")
    by_year = pd.concat([s.by_year.assign(contract=s.contract) for s in settled], ignore_index=True)
    by_year = by_year[["replication", "contract", *by_year.columns.drop(["replication", "contract"])]]
    term = pd.concat([s.term.assign(contract=s.contract) for s in settled], ignore_index=True)
    term = with_spend_per_recovery(term[["replication", "contract", *term.columns.drop(["replication", "contract"])]])
    prints = pd.DataFrame([(r, s.contract, f) for s in settled for r, f in enumerate(s.fingerprints)],
                          columns=["replication", "contract", "history"])
    return Comparison(names, by_year, term, prints)


# --- gaming indicators: what the provider's responses did, as pbrsim audit-contract reports them ----------------

# (metric of sim.provider.outputs.METRICS, need band) -> label; over the term, shares as fractions
GAMING = {
    ("share_of_starters", "critical"): "share of starts: Critical",
    ("share_of_starters", "substantial"): "share of starts: Substantial",
    ("share_of_starters", "moderate"): "share of starts: Moderate",
    ("share_of_starters", "low"): "share of starts: Low",
    ("deflected_share", "all"): "referrals deflected at intake (M1)",
    ("parked_share", "all"): "episodes parked (M2)",
    ("reviews_per_client_year", "all"): "TOP reviews per client-year (M3)",
    ("misrecorded_share", "all"): "TOP reviews misrecorded (M3)",
    ("held_share", "all"): "planned exits held a week or more (M4)",
    ("fast_tracked_share", "all"): "planned exits brought forward a week or more (M4)",
    ("bunching_after_window", "all"): "re-presentations just after / just before the window closes (M4)",
    ("band_drift_share", "all"): "referrals recorded a band more severe than assessed (M6)",
}
GAMING_COUNTS = ("reviews_per_client_year", "bunching_after_window")  # not shares


def gaming(histories: Sequence[History], scenario_raw: dict) -> pd.DataFrame:
    """Per replication, the :data:`GAMING` indicators over the contract period, from
    :func:`sim.provider.outputs.behaviour_outputs` (the figures ``pbrsim audit-contract`` reports): band mix at
    entry, deflection, parking, review frequency and misrecording, discharge timing, band drift."""
    from sim.provider.outputs import TERM, behaviour_outputs

    scenario = scenario_from_dict(scenario_raw, "<page design>")
    rows = []
    for r, h in enumerate(histories):
        out = behaviour_outputs(h, None, scenario)
        out = out[out["period"] == TERM].set_index(["metric", "band"])["value"]
        rows.append({"replication": r, **{label: float(out.get(key, np.nan)) for key, label in GAMING.items()}})
    return pd.DataFrame(rows, columns=["replication", *GAMING.values()])


# --- summaries over replications ------------------------------------------------------------------------------


def mean_ci(values, lower: float | None = None) -> tuple[float, float, float]:
    """Mean and 95% confidence interval (t) of the finite values; the interval is NaN for fewer than two
    (:func:`sim.experiments.statistics.mean_ci`). ``lower``: the least value the quantity can take (0 for
    counts, deaths, rates): the interval's lower bound is not reported below it."""
    s = interval(values, lower=lower)
    return s.mean, s.ci_low, s.ci_high


def summarise(frame: pd.DataFrame, by: str | list[str], columns: Sequence[str],
              lower: float | None = None) -> pd.DataFrame:
    """Long table: ``by``, metric, mean, ci_low, ci_high, replications, small_sample — across the ``replication``
    column. ``small_sample``: fewer than ``SMALL_SAMPLE`` (5) replications, so the interval is rough (and NaN
    with fewer than two). ``lower=0.0`` for quantities that cannot be negative (counts, deaths, rates)."""
    by = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, d in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for c in columns:
            if c not in d.columns:
                continue
            mean, lo, hi = mean_ci(pd.to_numeric(d[c], errors="coerce"), lower)
            n = int(d["replication"].nunique())
            rows.append((*key, c, mean, lo, hi, n, n < SMALL_SAMPLE))
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "replications", "small_sample"])
