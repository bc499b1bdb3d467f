"""Cost-effectiveness of contract designs and the value of information on the choice between them.

The commissioner's decision is which design to tender. Each design has, per replication (a parameter draw under
``[uncertainty]`` and the stochastic histories), a term spend C (pounds, assessments included) and an amount of an
outcome E (:data:`OUTCOMES`: sustained recoveries, planned exits, or recorded offences averted). At a willingness to
pay lambda (pounds per unit of the outcome) its net monetary benefit is NMB = lambda E - C; the best design
maximises the expected NMB.

* **Incremental analysis** (:func:`incremental`): each design against a reference, from paired replications: the
  mean extra spend, the mean extra outcome, and the incremental cost-effectiveness ratio (a ratio of means), or
  what replaces it: "dominates", "dominated", "identical outcomes" (a contract-blind provider buys the same).
* **Acceptability** (:func:`acceptability`): per lambda, the share of replications in which each design has the
  highest NMB (the cost-effectiveness acceptability curve), and which design has the highest expected NMB (the
  frontier).
* **Value of information** (:func:`evpi`, :func:`evppi`): the expected value of perfect information,
  E[max_d NMB_d] - max_d E[NMB_d], with the expectation over the parameter draws (replications of one draw are
  averaged first, so the noise of a single run is not counted as uncertainty that information could remove); and
  the partial value of learning a group of parameters, by the regression method of Strong, Oakley & Brennan
  (Med Decis Making 2014; 34(3):311-26): the incremental NMB of each design is regressed on the group's draws, and
  EVPPI = mean_i max_d g_d(phi_i) - max_d mean_i g_d(phi_i) with g the fitted values. The regression is least
  squares on a polynomial basis (degree 3 in each standardised parameter, with the pairwise products for a
  group of several: a smooth regression in the spirit of the paper's GAM, which needs no R). Both are in pounds
  over the term; ``_per_year`` divides by the contract years observed.

Everything here is a pure function of the comparison's term table (and parameter draws): nothing is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from sim.experiments.statistics import chance_text, mean_ci

# the outcome a willingness to pay is stated for: (term column, sign: +1 more is better, -1 fewer is better)
OUTCOMES = {"sustained_recoveries": ("sustained_recoveries", 1.0),
            "planned_exits": ("planned_exits", 1.0),
            "offences_averted": ("recorded_offences", -1.0)}
OUTCOME_UNITS = {"sustained_recoveries": "sustained recovery", "planned_exits": "planned exit",
                 "offences_averted": "recorded offence averted"}


def effects(term: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per replication and contract: ``spend`` (C, pounds) and ``effect`` (E, in the outcome's units; offences
    averted are the negative of recorded offences, so that differences between designs are the offences averted)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    column, sign = OUTCOMES[outcome]
    return pd.DataFrame({"replication": term["replication"], "contract": term["contract"],
                         "spend": term["spend"].astype(float), "effect": sign * term[column].astype(float)})


def _wide(term: pd.DataFrame, outcome: str, value: str, contracts: list[str]) -> pd.DataFrame:
    e = effects(term, outcome)
    return e.pivot(index="replication", columns="contract", values=value)[contracts]


def incremental(term: pd.DataFrame, contracts: list[str], outcome: str) -> pd.DataFrame:
    """Each design against the first (the reference), paired by replication: the mean extra spend and extra
    outcome with their 95% CIs, and the ICER (mean extra spend over mean extra outcome, pounds per unit) or the
    reason there is none."""
    spend, effect = _wide(term, outcome, "spend", contracts), _wide(term, outcome, "effect", contracts)
    ref = contracts[0]
    rows = []
    for name in contracts[1:]:
        dc, de = spend[name] - spend[ref], effect[name] - effect[ref]
        c, e = mean_ci(dc), mean_ci(de)
        if np.allclose(de, 0.0):
            verdict, icer = "identical outcomes", np.nan
        elif e.mean > 0 and c.mean <= 0:
            verdict, icer = "dominates", np.nan
        elif e.mean < 0 and c.mean >= 0:
            verdict, icer = "dominated", np.nan
        else:
            icer = c.mean / e.mean
            verdict = "more effective, costs more" if e.mean > 0 else "less effective, costs less"
        rows.append({"contract": name, "versus": ref, "outcome": outcome, "replications": c.n,
                     "extra_spend": c.mean, "extra_spend_ci_low": c.ci_low, "extra_spend_ci_high": c.ci_high,
                     "extra_outcome": e.mean, "extra_outcome_ci_low": e.ci_low, "extra_outcome_ci_high": e.ci_high,
                     "icer": icer, "verdict": verdict})
    return pd.DataFrame(rows)


def net_benefit(term: pd.DataFrame, contracts: list[str], outcome: str, wtp) -> np.ndarray:
    """NMB = lambda E - C, an array [lambda, replication, design] (pounds over the term)."""
    spend = _wide(term, outcome, "spend", contracts).to_numpy(float)
    effect = _wide(term, outcome, "effect", contracts).to_numpy(float)
    lam = np.asarray(wtp, dtype=float).reshape(-1, 1, 1)
    return lam * effect[None] - spend[None]


def net_benefit_table(term: pd.DataFrame, contracts: list[str], outcome: str, wtp) -> pd.DataFrame:
    """Per lambda and design: the mean NMB, the mean incremental NMB against the reference with its 95% CI, and
    the chance the design has the highest NMB (a count over replications, said with its resolution)."""
    nmb = net_benefit(term, contracts, outcome, wtp)
    best = nmb.argmax(axis=2)
    rows = []
    for i, lam in enumerate(np.asarray(wtp, dtype=float)):
        for d, name in enumerate(contracts):
            inmb = mean_ci(nmb[i, :, d] - nmb[i, :, 0])
            hits = int((best[i] == d).sum())
            rows.append({"wtp": lam, "contract": name, "net_benefit": float(nmb[i, :, d].mean()),
                         "incremental_net_benefit": inmb.mean, "inb_ci_low": inmb.ci_low, "inb_ci_high": inmb.ci_high,
                         "probability_best": hits / nmb.shape[1], "best_in": chance_text(hits, nmb.shape[1])})
    return pd.DataFrame(rows)


def acceptability(term: pd.DataFrame, contracts: list[str], outcome: str, wtp) -> pd.DataFrame:
    """The acceptability curves: per lambda and design, the share of replications in which the design has the
    highest NMB (ties to the first listed), and ``on_frontier``: whether it has the highest expected NMB."""
    nmb = net_benefit(term, contracts, outcome, wtp)
    best, frontier = nmb.argmax(axis=2), nmb.mean(axis=1).argmax(axis=1)
    rows = [{"wtp": float(lam), "contract": name, "probability_best": float((best[i] == d).mean()),
             "on_frontier": bool(frontier[i] == d)}
            for i, lam in enumerate(np.asarray(wtp, dtype=float)) for d, name in enumerate(contracts)]
    return pd.DataFrame(rows)


def draw_means(nmb: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
    """[lambda, replication, design] averaged over the replications of each parameter draw: [lambda, draw, design].
    Without draws (no [uncertainty]) every replication is its own."""
    if draws is None:
        return nmb
    draws = np.asarray(draws)
    keys = np.unique(draws)
    return np.stack([nmb[:, draws == k, :].mean(axis=1) for k in keys], axis=1)


def evpi(nmb: np.ndarray) -> np.ndarray:
    """E[max_d NMB] - max_d E[NMB] for each lambda (``nmb``: [lambda, draw, design]): the most a commissioner
    should pay to learn every uncertain parameter before choosing. Zero when one design is best in every draw."""
    return np.maximum(nmb.max(axis=2).mean(axis=1) - nmb.mean(axis=1).max(axis=1), 0.0)  # >= 0 but for rounding


def polynomial_basis(phi: np.ndarray, degree: int = 3, interactions: bool = True) -> np.ndarray:
    """Columns 1, z, z^2, ... z^degree for each standardised parameter, and (``interactions``) the pairwise
    products z_j z_k."""
    phi = np.asarray(phi, dtype=float).reshape(len(phi), -1)
    sd = phi.std(axis=0)
    z = (phi - phi.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    columns = [np.ones(len(z))]
    for j in range(z.shape[1]):
        columns += [z[:, j] ** p for p in range(1, degree + 1)]
    if interactions:
        columns += [z[:, j] * z[:, k] for j, k in combinations(range(z.shape[1]), 2)]
    return np.column_stack(columns)


MIN_DRAWS_EVPPI = 20  # below this a regression on the draws fits their noise: no EVPPI is reported


def regression_basis(phi: np.ndarray, draws: int) -> np.ndarray | None:
    """The richest basis (degree 3 down to 1, with then without pairwise products) that has at most a third as
    many columns as there are draws, so a small PSA is not fitted to its noise; None if none does or there are
    fewer than :data:`MIN_DRAWS_EVPPI` draws."""
    if draws < MIN_DRAWS_EVPPI:
        return None
    for interactions in (True, False):
        for degree in (3, 2, 1):
            basis = polynomial_basis(phi, degree, interactions)
            if basis.shape[1] <= draws // 3:
                return basis
    return None


def evppi(nmb: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The partial EVPI of the parameters ``phi`` ([draw, parameter]) for each lambda (``nmb``: [lambda, draw,
    design]), by regression (module docstring): the fitted values keep what the parameters explain and drop the
    noise of the runs. NaN when there are too few draws (:func:`regression_basis`)."""
    basis = regression_basis(phi, nmb.shape[1])
    if basis is None:
        return np.full(nmb.shape[0], np.nan)
    incremental_nmb = nmb - nmb[:, :, :1]  # against the first design: the same decision, less noise
    out = np.zeros(nmb.shape[0])
    for i in range(nmb.shape[0]):
        coef, *_ = np.linalg.lstsq(basis, incremental_nmb[i], rcond=None)
        fitted = basis @ coef  # [draw, design]
        out[i] = max(fitted.max(axis=1).mean() - fitted.mean(axis=0).max(), 0.0)
    return out


def parameter_groups(paths: list[str]) -> dict[str, list[str]]:
    """Each uncertain key path alone, and the paths grouped by their first key (``costs``, ``contract``,
    ``treatment``...) where a group has more than one, and all of them together (whose EVPPI is the EVPI without
    the noise of single runs)."""
    groups: dict[str, list[str]] = {p: [p] for p in paths}
    by_section: dict[str, list[str]] = {}
    for p in paths:
        by_section.setdefault(p.split(".")[0], []).append(p)
    for section, members in by_section.items():
        if len(members) > 1:
            groups[f"{section}.*"] = members
    if len(paths) > 1:
        groups["all parameters"] = list(paths)
    return groups


@dataclass
class CostEffectiveness:
    """The cost-effectiveness and value-of-information tables of one comparison at a set of willingness-to-pay
    values (pounds per unit of ``outcome``)."""
    outcome: str
    wtp: np.ndarray
    years: int
    incremental: pd.DataFrame
    net_benefit: pd.DataFrame
    acceptability: pd.DataFrame
    value_of_information: pd.DataFrame   # wtp (the grid), evpi, evpi_per_year, draws, asked
    evppi: pd.DataFrame                  # wtp, group, parameters, evppi, evppi_per_year


def analyse(term: pd.DataFrame, contracts: list[str], outcome: str, wtp, years: int,
            parameters: pd.DataFrame | None = None) -> CostEffectiveness:
    """Every table of the module for a comparison's ``term`` table at the willingness-to-pay values ``wtp``
    (the acceptability curves and the EVPI over :func:`wtp_grid` of them); ``parameters`` (replication, draw, one
    column per uncertain key path) for the value of information over parameter draws; ``years``: contract years
    observed."""
    asked = np.unique(np.asarray(wtp, dtype=float))
    if len(asked) == 0 or (asked < 0).any():
        raise ValueError(f"give willingness-to-pay values of at least 0 pounds, got {list(asked)}")
    grid = wtp_grid(asked)
    replications = np.sort(term["replication"].unique())
    draws, phi = None, pd.DataFrame(index=replications)
    if parameters is not None and len(parameters):
        p = parameters.set_index("replication").loc[replications]
        draws = p["draw"].to_numpy()
        phi = p.drop(columns="draw").groupby(draws).first()
    by_draw = draw_means(net_benefit(term, contracts, outcome, grid), draws)
    per_year = max(int(years), 1)
    value = evpi(by_draw)
    voi = pd.DataFrame({"wtp": grid, "evpi": value, "evpi_per_year": value / per_year, "draws": by_draw.shape[1],
                        "asked": np.isin(grid, asked)})
    at_asked = np.isin(grid, asked)
    rows = []
    for name, members in parameter_groups(list(phi.columns)).items():
        partial = evppi(by_draw[at_asked], phi[members].to_numpy())
        rows += [{"wtp": lam, "group": name, "parameters": " ".join(members), "evppi": v,
                  "evppi_per_year": v / per_year} for lam, v in zip(asked, partial)]
    partial_table = pd.DataFrame(rows, columns=["wtp", "group", "parameters", "evppi", "evppi_per_year"])
    return CostEffectiveness(outcome, asked, per_year, incremental(term, contracts, outcome),
                             net_benefit_table(term, contracts, outcome, asked),
                             acceptability(term, contracts, outcome, grid), voi, partial_table)


def wtp_grid(wtp, points: int = 41) -> np.ndarray:
    """The values to draw curves over: 0 to twice the largest asked for, with the asked-for values included."""
    wtp = np.asarray(wtp, dtype=float)
    return np.unique(np.concatenate([np.linspace(0.0, 2.0 * wtp.max(), points), wtp]))
