"""The contract audit, "what this design invites" (``pbrsim audit-contract``): the design run with behaviour
off, base and stress on common random numbers, which mechanisms switch on and how strongly, what they do to
the outputs (paired differences with 95% CIs), the contract features responsible, and the margin-neutral
tariff check. :func:`sim.report.audit.write_audit` writes it.

Units: days (times since the contract start), months of 365.25 / 12 days, pounds; shares are fractions.
Bands are *need* bands, the band the independent assessment gave (``assessed_band``), before any drift, except
where a metric says it reads the recorded band. Evidence and defaults: ``../shared/reference/provider-behaviour.md``
(section numbers refer to it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.config.contract import Contract
from sim.core.errors import unsettled_reported
from sim.experiments.provider_runs import simulate_with_provider
from sim.experiments.seeds import replication_seed  # noqa: F401  (re-exported: notebooks import it from here)
from sim.experiments.statistics import mean_ci
from sim.provider.features import contract_features
from sim.provider.model import ProviderModel
from sim.provider.outputs import ALL, GAP, MECHANISM_LABELS, OUTPUT_COLUMNS, TERM, mechanism_strength
from sim.provider.profiles import margin_neutral_weights

if TYPE_CHECKING:
    from sim.config.scenario import Scenario



# --- 4. the audit: what this design invites --------------------------------------------------------------------

AUDIT_MODES = ("off", "base", "calibrated", "stress")
# the outputs the report leads with: (metric, band)
KEY_EFFECTS: tuple[tuple[str, str], ...] = (
    ("share_starting", ALL), ("share_starting", "critical"), ("share_of_starters", "critical"),
    ("mean_wait_days", ALL), ("parked_share", ALL), ("contacts_per_client_month", ALL),
    ("length_of_stay_days", ALL), ("abstinent_at_review", ALL), ("non_injecting_at_review", ALL),
    ("reviews_per_client_year", ALL), ("completion_rate", ALL), ("planned_exits", ALL), ("sustained_share", ALL),
    ("re_presentations", ALL), ("bunching_after_window", ALL), ("bbv_tests_per_client_year", ALL),
    ("hep_b_courses_per_client_year", ALL), ("share_starting", GAP), ("completions_per_referral", GAP),
    ("not_served", ALL), ("deaths_not_served", ALL), ("offences_not_served", ALL), ("caseload_places", ALL),
    ("lowest_reserve", ALL), ("outcome_payments", ALL), ("drift_overpayment", ALL), ("spend", ALL),
    ("provider_margin", ALL), ("true_outcomes", ALL), ("spend_per_true_outcome", ALL),
    ("additional_outcomes", ALL), ("lost_outcomes", ALL),
)
STRENGTH_SHARES = ("deflected_share", "parked_share", "misrecorded_share", "band_drift_share", "held_share",
                   "fast_tracked_share", "capacity_cut")


def _mean_ci(x) -> tuple[float, float, float, int]:
    """Mean and 95% t-interval of the finite values (NaN bounds with fewer than two)."""
    s = mean_ci(x)
    return s.mean, s.ci_low, s.ci_high, s.n


def audit_replication(task: tuple) -> dict[str, Any]:
    """One replication of an audit (module level, so worker processes can run it): ``task`` = (scenario raw,
    contract raw, root seed, replication, M7 iterations, modes, keep cash). The behaviour-off run first, then
    every mode on the same seed (the provider's beliefs from :func:`sim.experiments.providers.provider_model`'s pilot run)."""
    from sim.config.contract import contract_from_dict
    from sim.config.scenario import scenario_from_dict
    from sim.experiments.providers import provider_model

    raw, craw, seed, r, iterations, modes, keep_cash = task
    scenario = scenario_from_dict(raw, "<audit scenario>")
    contract = contract_from_dict(craw, "<audit contract>")
    ss = replication_seed(seed, r)
    off = simulate_with_provider(scenario.with_changes({"behaviour.mode": "off"}), contract, ss)
    outputs, strengths, cash, runs = [], [], [], {}
    for mode in modes:
        run = off if mode == "off" else simulate_with_provider(scenario.with_changes({"behaviour.mode": mode}),
                                                               contract, ss, iterations)
        runs[mode] = run
        outputs.append(run.outputs(blind=off.settlement).assign(replication=r, mode=mode))
        strength = mechanism_strength(run.history, run.provider, run.cash, end=off.settlement.years["end"].max())
        strengths.append({"replication": r, "mode": mode, **strength, "iterations": run.iterations,
                          "converged": float(run.converged)})
        if keep_cash:
            cash.append(run.cash.assign(replication=r, mode=mode))
    out: dict[str, Any] = {"outputs": pd.concat(outputs, ignore_index=True), "strengths": pd.DataFrame(strengths),
                           "cash": pd.concat(cash, ignore_index=True) if cash else None}
    if r == 0:
        try:
            out["tariff"] = margin_neutral_weights(contract, off.scenario, off.history)
        except ValueError:  # too short a horizon to follow starters for a year
            out["tariff"] = None
        on = next((runs[m] for m in modes if m != "off"), None)
        out["provider"] = on.provider if on is not None else provider_model(
            scenario.with_changes({"behaviour.mode": "base"}), contract)
    return out


@dataclass
class Audit:
    """What a contract design invites (:func:`audit_contract`)."""

    scenario: str
    contract: Contract
    replications: int
    seed: int
    modes: tuple[str, ...]
    strengths: pd.DataFrame          # replication, mode, the mechanism strengths (MECHANISM_LABELS)
    outputs: pd.DataFrame            # replication, mode, and the behaviour_outputs columns
    effects: pd.DataFrame            # mode, period, band, metric: off and on means, paired difference, 95% CI
    features: pd.DataFrame           # the contract features responsible
    tariff: Any                      # sim.provider.profiles.TariffCheck of replication 0 (None if the horizon is short)
    provider: ProviderModel          # the provider model of replication 0 (its price schedule and share at risk)
    cash: pd.DataFrame | None = None  # the cash path of replication 0 in each mode

    def mechanism_summary(self) -> pd.DataFrame:
        """Per mechanism measure and mode: mean and 95% CI over replications."""
        rows = []
        for name, label in MECHANISM_LABELS.items():
            for mode in self.modes:
                m, lo, hi, n = _mean_ci(self.strengths.loc[self.strengths["mode"] == mode, name])
                rows.append({"measure": name, "description": label, "mode": mode, "mean": m, "ci_low": lo,
                             "ci_high": hi, "n": n})
        return pd.DataFrame(rows)

    def key_effects(self, period: str = TERM) -> pd.DataFrame:
        """The paired differences of :data:`KEY_EFFECTS` over the ``period``."""
        keys = pd.DataFrame(KEY_EFFECTS, columns=["metric", "band"]).reset_index()
        e = self.effects[self.effects["period"] == period].merge(keys, on=["metric", "band"])
        return e.sort_values(["mode", "index"], kind="stable").drop(columns="index").reset_index(drop=True)

    def switched_on(self, mode: str = "base", threshold: float = 0.005) -> list[str]:
        """The mechanisms whose measured share (or capacity cut) exceeds ``threshold`` in ``mode``."""
        s = self.strengths[self.strengths["mode"] == mode]
        return [m for m in STRENGTH_SHARES if len(s) and float(s[m].mean()) > threshold]


def paired_effects(outputs: pd.DataFrame, reference: str = "off") -> pd.DataFrame:
    """Each mode against ``reference``, replication by replication (the same seed: the same clients until the
    provider acts): per period, band and metric the reference mean, the mode's mean, the mean paired difference
    with its 95% CI, the relative difference and the replications that had both."""
    wide = outputs.set_index(["replication", "period", "contract_year", "band", "metric", "mode"])["value"] \
        .unstack("mode")
    rows = []
    modes = [m for m in wide.columns if m != reference]
    for (period, year, band, metric), d in wide.groupby(level=["period", "contract_year", "band", "metric"],
                                                        sort=False):
        base = d[reference].to_numpy(float) if reference in d else np.full(len(d), np.nan)
        ref_mean = _mean_ci(base)[0]
        for mode in modes:
            on = d[mode].to_numpy(float)
            diff = on - base
            m, lo, hi, n = _mean_ci(diff)
            rows.append({"mode": mode, "period": period, "contract_year": year, "band": band, "metric": metric,
                         reference: ref_mean, "on": _mean_ci(on)[0], "difference": m, "ci_low": lo, "ci_high": hi,
                         "relative": m / abs(ref_mean) if ref_mean and np.isfinite(ref_mean) else math.nan, "n": n})
    return pd.DataFrame(rows)


def audit_contract(scenario: Scenario, contract: Contract, replications: int = 5, seed: int | None = None, *,
                   iterations: int = 3, modes: Iterable[str] = AUDIT_MODES, workers: int = 1,
                   progress: Callable[[int], Any] | None = None) -> Audit:
    """Run ``contract`` with behaviour off, base and stress on common random numbers (replication ``r`` on
    ``SeedSequence(seed, spawn_key=(r,))`` in every mode; the provider's beliefs from one contract-blind pilot
    run, as :func:`sim.experiments.providers.provider_model` and :func:`sim.experiments.core.run_one` have them), and report which mechanisms switch on and how strongly, what they do to
    the outputs of :func:`behaviour_outputs` (paired differences against off with 95% CIs), the contract
    features responsible (:func:`contract_features`) and the margin-neutral tariff check
    (:func:`sim.provider.profiles.margin_neutral_weights`). M7 runs as :func:`simulate_with_provider` with
    ``iterations``. The scenario's own behaviour block (provider profile, mechanism switches and values) is
    kept; only its mode changes. ``workers`` > 1 runs replications in worker processes."""
    from sim.money.settlement import check

    if replications < 1:
        raise ValueError(f"replications must be at least 1, got {replications}")
    modes = tuple(dict.fromkeys(["off", *modes]))
    bad = [m for m in modes if m not in AUDIT_MODES]
    if bad:
        raise ValueError(f"modes must be among {AUDIT_MODES}, got {bad}")
    check(contract, scenario)
    if scenario.horizon.years <= 1:
        raise ValueError(f"scenario {scenario.name}: the provider model follows treatment starts for a year, so an "
                         f"audit needs more than one reported year (horizon.years = {scenario.horizon.years:g})")
    seed = int(scenario.seed if seed is None else seed)
    tasks = [(scenario.raw(), contract.raw(), seed, r, iterations, modes, r == 0) for r in range(replications)]
    from sim.experiments.core import replications as run_replications
    from sim.experiments.executors import ProcessExecutor, SerialExecutor

    with (ProcessExecutor(workers) if workers > 1 else SerialExecutor()) as ex, unsettled_reported([scenario]):
        results = run_replications(audit_replication, tasks, ex, progress)  # in replication order
    outputs = pd.concat([d["outputs"] for d in results], ignore_index=True)
    outputs = outputs[["replication", "mode", *OUTPUT_COLUMNS]]
    strengths = pd.concat([d["strengths"] for d in results], ignore_index=True)
    first = results[0]
    effects = paired_effects(outputs)
    mean_strength = {m: strengths[strengths["mode"] == m].drop(columns=["replication", "mode"]).mean()
                     for m in modes}
    features = contract_features(contract, first["provider"], first["tariff"], mean_strength)
    return Audit(scenario.name, contract, replications, seed, modes, strengths, outputs, effects, features,
                 first["tariff"], first["provider"], first["cash"])
