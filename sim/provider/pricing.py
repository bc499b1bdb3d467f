"""Money before a run: what each outcome is worth to the provider, and how much of its income is at risk.

:func:`price_schedule` turns a contract into the net value to the provider of each outcome for a client of each
band, per contract year: after caps, floors, clawback and payment lags, discounted. :func:`share_at_risk` is the
share of income that still responds to outcomes at the margin (zero where a cap binds).

Units: pounds; days unless the name says months (a month is 365.25 / 12 days).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special

from sim.config.behaviour import MONTH_DAYS, PAYMENT_WAIT_DAYS, BehaviourSpec, ProviderProfile
from sim.config.contract import Contract, Outcome
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.vocabulary import BANDS
from sim.money.settlement import baseline_year  # the settlement's own rule, so the provider's view agrees with it

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    from sim.config.scenario import Scenario
    from sim.engine.history import History



# --- 2. money before a run: the price schedule ---------------------------------------------------------------------


SCHEDULE_COLUMNS = ["contract_year", "outcome", "measure", "band", "unit_price", "weight", "multiplier", "gross",
                    "volume", "delay_days", "evidence_days", "discount", "clawback_risk", "cap_factor",
                    "floor_factor", "value", "present_value"]


def discount_factor(days, discount_per_month: float, stress=0.0, stress_discount_per_month: float = 0.0):
    """Present value of a pound received ``days`` from now: delta ** (days / month), with the monthly factor
    delta = 1 / (1 + r + r_stress x stress) (§3.2)."""
    rate = discount_per_month + stress_discount_per_month * np.asarray(stress, dtype=float)
    return (1.0 + rate) ** (-np.asarray(days, dtype=float) / MONTH_DAYS)


def baseline_volumes(contract: Contract, history: History) -> pd.DataFrame:
    """Outcomes achieved in the year before the contract start, by band, under each outcome's once-per rule:
    ``outcome``, ``band``, ``volume``. This is the volume that prices an outcome with ``expected_volume =
    "baseline"`` in settlement, and the provider's forecast of a year's volume."""
    from sim.analysis.outcomes import achievements

    rows = []
    for name, o in contract.outcomes.items():
        found = achievements(history, o.measure, o.window_days).sort_values(["time", "client_id"], kind="stable")
        try:
            base = baseline_year(history, found, o)
        except ValueError:
            raise ValueError("baseline volumes need a History with at least a year of warm-up before the contract "
                             "start") from None
        counts = base["band"].value_counts()
        rows += [(name, b, float(counts.get(b, 0))) for b in BANDS]
    return pd.DataFrame(rows, columns=["outcome", "band", "volume"])


def _slack(cap: float | None, expected: float, variance: float) -> float:
    """Probability that a cap does not bind over a period in which payments are expected to total ``expected``
    with variance ``variance``: the chance that one more outcome is paid at the margin. Once a cap binds an extra
    outcome only brings the day the cap is reached forward, so its marginal value is zero (§3.1)."""
    if cap is None:
        return 1.0
    if variance <= 0:
        return 1.0 if expected < cap else 0.0
    return float(special.ndtr((cap - expected) / math.sqrt(variance)))


def _clawback_risk(history: History, outcome: Outcome) -> pd.Series:
    """By band: the share of achievements followed by a re-presentation within ``clawback_days`` (windows that
    close after the horizon are left out)."""
    from sim.analysis.outcomes import achievements

    found = achievements(history, outcome.measure, outcome.window_days)
    found = found[found["time"] + outcome.clawback_days <= history.end]
    if found.empty:
        return pd.Series(0.0, index=list(BANDS))
    refs = history.episodes[["client_id", "referral"]].dropna().sort_values("referral")
    merged = pd.merge_asof(found.sort_values("time").rename(columns={"time": "t"}),
                           refs.rename(columns={"referral": "t"}).assign(next_referral=lambda d: d["t"]),
                           on="t", by="client_id", direction="forward", allow_exact_matches=False)
    back = (merged["next_referral"] - merged["t"]) < outcome.clawback_days
    return back.groupby(merged["band"]).mean().reindex(list(BANDS), fill_value=0.0).astype(float)


def _offending_unit(contract: Contract, scenario: Scenario | None, history: History | None) -> float:
    """Marginal pounds per recorded offence avoided, on the attachment line at the baseline."""
    o = contract.offending
    total = None
    if history is not None and scenario is not None:
        from sim.analysis.offending import cohort_offences

        cohort = cohort_offences(history, scenario, "year")
        before = cohort[cohort["end"] <= 0]
        if len(before):
            row = before.iloc[-1]
            if o.baseline_offences is None:
                total = float(row["offences"])
            else:
                total = o.baseline_offences * (float(row["cohort"]) if o.measure == "per_member" else 1.0)
    elif o.baseline_offences is not None and o.measure == "volume":
        total = o.baseline_offences
    if not total or total <= 0:
        return float("nan")
    return o.pot * (1.0 - o.paid_at_baseline) / (o.full_at_reduction * total)


def price_schedule(contract: Contract, scenario: Scenario | None = None, history: History | None = None, *,
                   volumes: pd.DataFrame | None = None, profile: ProviderProfile | None = None) -> pd.DataFrame:
    """The marginal price schedule: what one more outcome of each kind, for a client of each band, is worth to
    the provider in each contract year. Computed before a run; every provider decision reads it.

    ``history`` is a contract-blind History of the same scenario covering the year before the contract: it
    supplies the baseline volumes that price ``share_of_pot`` outcomes (exactly as settlement does), the volumes
    the provider expects (for caps and floors), clawback risks and the offending baseline. ``volumes``
    (``outcome, band, volume``: expected achievements a year) overrides the History's. Without either, prices
    from the baseline cannot be set (an error) and caps and floors are taken not to bind.

    Columns (one row per contract year, outcome and band; the offending pot as outcome ``offending``, priced
    per recorded offence avoided): ``unit_price`` (pounds before the band weight), ``weight``, ``multiplier``
    (an escalator's at the baseline rate), ``gross`` = unit x weight x multiplier; ``volume`` (expected a year);
    ``delay_days`` (evidence to cash: lag, the wait for the payment date, an escalator's year-end
    reconciliation); ``evidence_days`` (from the deciding event, a planned exit, to evidence: the window of a
    sustained outcome, else 0); ``discount`` (of ``delay_days``); ``clawback_risk``; ``cap_factor`` (chance
    every cap that applies is slack at the margin: the outcome's cap per year, the PbR cap, the term cap);
    ``floor_factor`` (chance total income is between the income floor and cap, where one more pound counts);
    ``value`` = gross x discount x (1 - clawback_risk) x cap_factor x floor_factor (pounds at evidence);
    ``present_value`` = value discounted over ``evidence_days`` (pounds at the deciding event).
    """
    if profile is None:
        spec = getattr(scenario, "behaviour", None)
        profile = spec.provider if isinstance(spec, BehaviourSpec) else ProviderProfile()
    needs_baseline = any(o.expected_volume == "baseline" for o in contract.outcomes.values())
    if volumes is None and history is not None:
        volumes = baseline_volumes(contract, history)
    if volumes is None and needs_baseline:
        raise ValueError(f"contract {contract.name}: prices from the baseline year need a contract-blind History "
                         f"(history=...) or expected volumes (volumes=...)")
    vol = {} if volumes is None else {(r.outcome, r.band): float(r.volume) for r in volumes.itertuples()}
    known = volumes is not None
    rows = []
    for year in range(1, contract.years + 1):
        for name, o in contract.outcomes.items():
            weights = {b: contract.weight(o, b) for b in BANDS}
            if o.price is not None:
                unit = o.price
            else:
                v = (sum(weights[b] * vol.get((name, b), 0.0) for b in BANDS) if o.expected_volume == "baseline"
                     else o.weighted_volume(weights.__getitem__))
                unit = contract.outcome_pot(year) * o.share_of_pot / v if v > 0 else 0.0
            mult = o.escalator.multiplier(1.0, 1.0) if o.escalator is not None else 1.0
            delay = o.lag_days + PAYMENT_WAIT_DAYS[o.payment]
            if o.escalator is not None:  # the multiplier is known, and paid, after the year ends
                delay = max(delay, DAYS_PER_YEAR / 2 + contract.reconciliation_lag_days)
            evidence = o.window_days if o.measure == "sustained_recovery" else 0.0
            claw = _clawback_risk(history, o) if (o.clawback_days and history is not None) else None
            for b in BANDS:
                rows.append((year, name, o.measure, b, unit, weights[b], mult, unit * weights[b] * mult,
                             vol.get((name, b), 0.0 if known else np.nan), delay, evidence,
                             0.0 if claw is None else float(claw[b])))
        if contract.offending is not None:
            unit = _offending_unit(contract, scenario, history)
            for b in BANDS:
                rows.append((year, "offending", "offending", b, unit, 1.0, 1.0, unit, np.nan,
                             DAYS_PER_YEAR / 2 + contract.offending.lag_days, 0.0, 0.0))
    out = pd.DataFrame(rows, columns=SCHEDULE_COLUMNS[:11] + ["clawback_risk"])
    out["discount"] = discount_factor(out["delay_days"], profile.discount_per_month)
    out["cap_factor"], out["floor_factor"] = _margin_factors(contract, out)
    out["value"] = out["gross"] * out["discount"] * (1 - out["clawback_risk"]) * out["cap_factor"] * \
        out["floor_factor"]
    out["present_value"] = out["value"] * discount_factor(out["evidence_days"], profile.discount_per_month)
    return out[SCHEDULE_COLUMNS]


def _margin_factors(contract: Contract, s: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Cap and floor factors per row (see ``price_schedule``): payments per year treated as a sum of Poisson
    counts of outcomes, with the variance that implies, against each cap."""
    paid = s[s["outcome"] != "offending"].copy()
    vol = paid["volume"].fillna(0.0)
    paid["mean"] = paid["gross"] * (1 - paid["clawback_risk"]) * vol
    paid["var"] = paid["gross"] ** 2 * vol
    per = paid.groupby(["contract_year", "outcome"])[["mean", "var"]].sum()
    own = {}
    for (y, name), r in per.iterrows():
        cap = contract.outcomes[name].cap_per_year
        own[(y, name)] = (_slack(cap, r["mean"], r["var"]), r["mean"] if cap is None else min(r["mean"], cap),
                          r["var"])
    offending = contract.offending.pot * contract.offending.paid_at_baseline if contract.offending else 0.0
    year_mean, year_var, pbr = {}, {}, {}
    for y in range(1, contract.years + 1):
        parts = [v for (yy, _), v in own.items() if yy == y]
        year_mean[y] = sum(p[1] for p in parts) + offending
        year_var[y] = sum(p[2] for p in parts)
        cap = contract.pbr_cap * contract.pot(y) if contract.pbr_cap is not None else None
        pbr[y] = _slack(cap, year_mean[y], year_var[y])
    term = _slack(contract.term_cap, sum(year_mean.values()), sum(year_var.values()))
    floor = {}
    for y in range(1, contract.years + 1):
        income = contract.annual_value * (1 - contract.share(y)) + min(
            year_mean[y], contract.pbr_cap * contract.pot(y) if contract.pbr_cap is not None else np.inf)
        sd = math.sqrt(year_var[y])
        top = np.inf if contract.income_cap is None else contract.income_cap * contract.annual_value
        low = -np.inf if contract.income_floor is None else contract.income_floor * contract.annual_value
        if sd > 0:
            floor[y] = float(special.ndtr((top - income) / sd) - special.ndtr((low - income) / sd))
        else:
            floor[y] = float(low < income < top) if np.isfinite(low) or np.isfinite(top) else 1.0
    cap_factor = np.array([min(own.get((y, n), (1.0,))[0], pbr[y], term)
                           for y, n in zip(s["contract_year"], s["outcome"])])
    floor_factor = np.array([floor[y] for y in s["contract_year"]])
    return cap_factor, floor_factor


def share_at_risk(contract: Contract, schedule: pd.DataFrame) -> pd.Series:
    """By contract year: the share of income that responds to outcomes at the margin, *s* of §3.2: the PbR share
    times the payment-weighted share of outcome money whose caps and floors are slack. Zero under a block
    contract, with nothing priced, or where a cap binds."""
    out = {}
    for y in range(1, contract.years + 1):
        rows = schedule[(schedule["contract_year"] == y) & (schedule["outcome"] != "offending")]
        live = rows["cap_factor"] * rows["floor_factor"]
        money = rows["gross"] * rows["volume"].fillna(0.0)
        if money.sum() > 0:
            share_live = float((money * live).sum() / money.sum())
        elif (rows["gross"] > 0).any():  # volumes unknown: the priced outcomes count alike
            share_live = float(live[rows["gross"] > 0].mean())
        else:
            share_live = 0.0
        out[y] = contract.share(y) * share_live
    return pd.Series(out, name="share_at_risk", dtype=float).rename_axis("contract_year")
