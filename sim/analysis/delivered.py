"""What a contract design buys, per contract year: the outcomes of the clients beside the money.

:func:`delivered_by_year` reads one History (every group) over the settlement's contract years:

``starts``                 treatment starts in the year (people may start more than once)
``in_treatment``           people in treatment at any time in the year
``mean_wait_days``         referral to treatment start of the year's starts (days)
``waited_over_3_weeks``    share of the year's starts more than 21 days after their referral
``sustained_recoveries``   planned exits in the year not followed by a referral within 6 months (a later exit
                           whose 6 months run past the horizon counts as sustained: the window is censored)
``recorded_offences``      police-recorded offences of everyone simulated, in the year (apportioned by days)
``deaths``                 deaths in the year, in treatment or not
``recoveries_observable``  1 if the 6-month follow-up of the year's last exits closes before the horizon ends
                           (its sustained recoveries are known), else 0

:data:`DELIVERED_TERM` says how a term total is taken: summed, or the mean of the years. Planned exits are the
settlement's own (``planned_exits`` of :func:`sim.money.settlement.contract_year_metrics`). Spend per sustained
recovery is taken over the years whose recoveries are observable only (:func:`delivered_term`): a year whose
follow-up is still open would count its spend against recoveries that are not yet known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.evaluation import FOLLOW_UP_DAYS, WAIT_DAYS
from sim.config.scenario import Scenario
from sim.core.vocabulary import TREATMENT_STATES
from sim.engine.history import History

DELIVERED_TERM = {"starts": "sum", "in_treatment": "mean", "mean_wait_days": "mean", "waited_over_3_weeks": "mean",
                  "sustained_recoveries": "sum", "recorded_offences": "sum", "deaths": "sum"}
DELIVERED = tuple(DELIVERED_TERM)
OBSERVABLE = "recoveries_observable"
# term totals over the years whose sustained recoveries are observable: the numerator and denominator of spend per
# sustained recovery (sim.experiments.compare.RATIOS)
OBSERVABLE_TERM = ("spend_observable_years", "sustained_recoveries_observable_years")


def delivered_by_year(history: History, scenario: Scenario, years: pd.DataFrame) -> pd.DataFrame:
    """Per contract year (``years``: ``contract_year``, ``start``, ``end`` in days, as a settlement's), the
    measures of the module docstring; index ``contract_year``."""
    from sim.analysis.offending import offences_by_spell, recorded_between

    ep = history.episodes
    start = ep["treatment_start"].to_numpy(dtype=float)
    wait = start - ep["referral"].to_numpy(dtype=float)
    exit_t = ep["exit"].to_numpy(dtype=float)
    planned = (ep["exit_reason"].astype(object) == "planned").to_numpy() & np.isfinite(start)
    back = ep.groupby("client_id")["referral"].shift(-1).to_numpy(dtype=float) - exit_t <= FOLLOW_UP_DAYS
    sp = history.spells[history.spells["state"].astype(object).isin(TREATMENT_STATES)]
    deaths = history.events.loc[history.events["kind"].astype(object) == "death", "time"].to_numpy(dtype=float)
    offences = offences_by_spell(history, scenario)

    rows = []
    for y in years.itertuples():
        a, b = float(y.start), float(y.end)
        began = (start >= a) & (start < b)
        out = (exit_t >= a) & (exit_t < b)
        rows.append({
            "contract_year": int(y.contract_year),
            "starts": float(began.sum()),
            "in_treatment": float(sp.loc[(sp["start"] < b) & (sp["end"] > a), "client_id"].nunique()),
            "mean_wait_days": float(wait[began].mean()) if began.any() else np.nan,
            "waited_over_3_weeks": float((wait[began] > WAIT_DAYS).mean()) if began.any() else np.nan,
            "sustained_recoveries": float((planned & out & ~back).sum()),
            "recorded_offences": recorded_between(offences, a, b),
            "deaths": float(((deaths >= a) & (deaths < b)).sum()),
            OBSERVABLE: float(b + FOLLOW_UP_DAYS <= history.end),
        })
    return pd.DataFrame(rows).set_index("contract_year")[[*DELIVERED, OBSERVABLE]]


def delivered_term(by_year: pd.DataFrame) -> pd.Series:
    """Term figures from :func:`delivered_by_year` rows of the observed years (see :data:`DELIVERED_TERM`) and,
    where the rows carry the commissioner's ``spend`` (a contract's figures joined to them), the spend and the
    sustained recoveries of the years whose recoveries are observable (:data:`OBSERVABLE_TERM`)."""
    term = {m: (by_year[m].sum() if how == "sum" else by_year[m].mean()) for m, how in DELIVERED_TERM.items()}
    if "spend" in by_year.columns and OBSERVABLE in by_year.columns:
        known = by_year[OBSERVABLE].to_numpy(dtype=float) > 0
        term[OBSERVABLE_TERM[0]] = by_year["spend"].to_numpy(dtype=float)[known].sum()
        term[OBSERVABLE_TERM[1]] = by_year["sustained_recoveries"].to_numpy(dtype=float)[known].sum()
    return pd.Series(term, dtype=float)
