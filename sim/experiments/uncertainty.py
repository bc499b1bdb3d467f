"""Probabilistic sensitivity analysis: parameter uncertainty, drawn once per replication.

A scenario's ``[uncertainty]`` table gives a distribution for the number at any dotted key path of the scenario,
or of the contract it is settled under when the path starts with ``contract.``::

    [uncertainty]
    "treatment.drop_out_rate_per_year.by_group.opiate" = { dist = "gamma", mean = 0.173, shape = 25 }
    "after_exit.relapse_years.by_group.opiate.scale" = { dist = "lognormal", median = 1.37, sigma = 0.2 }

Replication ``r`` uses parameter draw ``r // runs_per_draw``: each draw comes from its own stream, spawned from
the root seed with key ``(draw, PSA_KEY)``, separate from the stochastic streams inside a run (which use
``(r,)``), so the same draw index always gives the same parameter set, recorded beside the results. With more
than one run per draw, ``variance_split`` separates the variance of a result into the part due to the
parameters and the part due to stochastic variation inside runs (a one-way random-effects analysis), which
says whether more runs or better data would narrow an answer.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.config.base import has_number
from sim.config.scenario import Scenario

PSA_KEY = 0x505341  # "PSA": the spawn-key suffix of parameter draws


def parameter_draw(scenario: Scenario, seed: int, draw: int) -> dict[str, float]:
    """Values for every uncertain key path of draw number ``draw`` (in sorted path order, by inversion)."""
    paths = sorted(scenario.uncertainty)
    if not paths:
        return {}
    gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(draw, PSA_KEY))))
    u = gen.random(len(paths))
    return {path: float(scenario.uncertainty[path].ppf(float(x))) for path, x in zip(paths, u)}


CONTRACT = "contract."


def drawn_scenario(scenario: Scenario, seed: int, draw: int, contract=None):
    """The scenario (and contract) with draw ``draw``'s parameter values in place, validated again, and the
    values. Key paths that start with ``contract.`` change the contract where it has a number at the path
    (:func:`drawn_contract`), and nothing in a run without one."""
    values = parameter_draw(scenario, seed, draw)
    own = {k: v for k, v in values.items() if not k.startswith(CONTRACT)}
    scenario = scenario.with_changes(own) if own else scenario
    if contract is None:
        return scenario, values
    return scenario, drawn_contract(contract, values), values


def drawn_contract(contract, values: dict[str, float]):
    """``contract`` with the draw's ``contract.`` values at the paths where it has a number; a design without the
    path (a block contract has no offending pot) is left as it is, so one draw applies to every design compared."""
    theirs = {k.removeprefix(CONTRACT): v for k, v in values.items()
              if k.startswith(CONTRACT) and has_number(contract, k.removeprefix(CONTRACT))}
    return contract.with_changes(theirs) if theirs else contract


def variance_split(table: pd.DataFrame, value: str = "value", draw: str = "draw",
                   by: list[str] | None = None) -> pd.DataFrame:
    """Split the variance of ``value`` into parameter and stochastic parts, per group of ``by`` columns.

    ``table`` has one row per run with its parameter ``draw``. With ``m`` runs per draw (balanced), the
    stochastic variance is the mean within-draw variance, and the parameter variance is the variance of the draw
    means less the stochastic variance / m (floored at 0). Columns: ``draws``, ``runs_per_draw``, ``mean``,
    ``total_variance``, ``parameter_variance``, ``stochastic_variance``, ``parameter_share``.
    """
    by = list(by or [])
    rows = []
    groups = table.groupby(by, sort=False) if by else [((), table)]
    for key, d in groups:
        per = d.groupby(draw)[value]
        m = int(per.size().min())
        if m < 2 or per.ngroups < 2:
            raise ValueError("variance_split needs at least two draws with at least two runs each")
        within = float(per.var(ddof=1).mean())
        between = float(per.mean().var(ddof=1))
        parameter = max(between - within / m, 0.0)
        total = parameter + within
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update({"draws": per.ngroups, "runs_per_draw": m, "mean": float(d[value].mean()),
                    "total_variance": total, "parameter_variance": parameter, "stochastic_variance": within,
                    "parameter_share": parameter / total if total > 0 else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)
