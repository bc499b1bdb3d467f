"""The national PbR pilot evaluation's measures, read from one History as NDTMS-style records would give them.

Mason, Sutton, Whittaker et al. (Addiction 2015; 110(7):1120-8) compared the eight pilot areas with the other 141
by difference in differences on service users' records. :func:`pilot_measures` counts each measure of one run as
``events`` over ``population`` (people, referrals, starts or reviews), so that runs can be pooled and compared
as odds ratios (:mod:`sim.experiments.pilot`). The pilot was of drug recovery and the evaluation read the drug
treatment records (NDTMS), so the measures count drug clients only (:data:`DRUG_GROUPS`: alcohol-only clients are
left out). The windows are contract years counted from the contract start: ``*_y1`` measures the first; the
others the first two. Each definition:

successful_completion_y1   people in treatment in year 1 whose episode ended in a planned exit in year 1
declined_y1                people in treatment in year 1 whose episode ended "declined to continue" in year 1
initiation                 referrals in the window that started treatment within 6 months of referral
completion                 people in treatment in the window with a planned exit in it
completion_without_representation
                           the same, counting only planned exits not followed by a referral within 6 months
abstinence                 completed in-treatment TOP reviews (not the start review) recording abstinence
non_injecting              completed reviews of episodes injecting at their start review, recording no injecting
mortality                  people in treatment in the window who died in treatment in it
acquisitive_crime          police-recorded offences in treatment in the window, per person in treatment (a rate:
                           its comparison is a rate ratio)
housing_problem            completed in-treatment reviews recording a housing problem
waited_over_3_weeks        treatment starts in the window more than 21 days after their referral
people_in_treatment        people in treatment in the window, and in the year before the contract (population):
                           the base of ``treatment_journeys_change``

A 6-month follow-up that runs past the end of the horizon is not observed: a run needs half a year after the
window (:data:`FOLLOW_UP_DAYS`); the counts refuse a shorter horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.measures import PILOT_MEASURE_NAMES
from sim.core.vocabulary import TREATMENT_STATES
from sim.engine.history import History

DRUG_GROUPS = ("opiate", "non_opiate", "non_opiate_alcohol")
FOLLOW_UP_DAYS = 182.0   # "within 6 months": the evaluation's re-presentation test and the initiation window
WAIT_DAYS = 21.0         # the national waiting-time standard: 3 weeks from referral to treatment


@dataclass(frozen=True)
class PilotMeasure:
    window_years: int       # 1: the first contract year; 2: the first two
    kind: str               # "share" (an odds ratio compares it) or "rate" (a rate ratio)
    population: str         # what the denominator counts
    description: str


PILOT_MEASURES: dict[str, PilotMeasure] = {
    "successful_completion_y1": PilotMeasure(1, "share", "people in treatment",
                                             "planned exit in contract year 1"),
    "declined_y1": PilotMeasure(1, "share", "people in treatment", "exit recorded 'declined to continue' in year 1"),
    "initiation": PilotMeasure(2, "share", "referrals", "started treatment within 6 months of referral"),
    "completion": PilotMeasure(2, "share", "people in treatment", "planned exit"),
    "completion_without_representation": PilotMeasure(2, "share", "people in treatment",
                                                      "planned exit not followed by a referral within 6 months"),
    "abstinence": PilotMeasure(2, "share", "completed in-treatment reviews", "abstinent at the review"),
    "non_injecting": PilotMeasure(2, "share", "completed reviews of episodes injecting at their start",
                                  "not injecting at the review"),
    "mortality": PilotMeasure(2, "share", "people in treatment", "died in treatment"),
    "acquisitive_crime": PilotMeasure(2, "rate", "people in treatment", "police-recorded offences in treatment"),
    "housing_problem": PilotMeasure(2, "share", "completed in-treatment reviews", "housing problem at the review"),
    "waited_over_3_weeks": PilotMeasure(2, "share", "treatment starts", "more than 21 days from referral to start"),
}


if tuple(PILOT_MEASURES) != PILOT_MEASURE_NAMES:
    raise ValueError("sim.core.measures.PILOT_MEASURE_NAMES must list PILOT_MEASURES in order")


def pilot_measures(history: History, scenario: Scenario, groups: tuple[str, ...] = DRUG_GROUPS) -> pd.DataFrame:
    """One run's counts: ``measure``, ``events``, ``population`` for every measure of :data:`PILOT_MEASURES`, and
    ``people_in_treatment`` (events: people in treatment a year in the two-year window; population: in the year
    before the contract), over the clients of ``groups``. Needs a horizon of two contract years and the 6-month
    follow-up, and a warm-up of a year."""
    from sim.analysis.offending import offences_by_spell, recorded_between

    two = 2 * DAYS_PER_YEAR
    if history.end < two + FOLLOW_UP_DAYS - 1e-9:
        raise ValueError(f"the pilot measures follow two contract years and 6 months after them: the horizon is "
                         f"{history.end:g} days, at least {two + FOLLOW_UP_DAYS:g} are needed")
    if history.start > -DAYS_PER_YEAR + 1e-9:
        raise ValueError("the pilot measures compare numbers in treatment with the year before the contract: a "
                         "warm-up of at least a year is needed")
    clients = history.clients.loc[history.clients["group"].astype(object).isin(groups), "client_id"]
    ep = history.episodes[history.episodes["client_id"].isin(clients)]
    sp = history.spells[history.spells["state"].astype(object).isin(TREATMENT_STATES)
                        & history.spells["client_id"].isin(clients)]
    all_reviews = history.reviews[history.reviews["client_id"].isin(clients)]
    rv = all_reviews[all_reviews["completed"].astype(bool)]
    exit_reason = ep["exit_reason"].astype(object)
    next_referral = ep.groupby("client_id")["referral"].shift(-1).to_numpy(dtype=float)

    def people(a: float, b: float) -> np.ndarray:
        return sp.loc[(sp["start"] < b) & (sp["end"] > a), "client_id"].unique()

    def exits(a: float, b: float, reasons: tuple[str, ...]) -> pd.Series:
        t = ep["exit"].to_numpy(dtype=float)
        return (ep["treatment_start"].notna() & exit_reason.isin(reasons) & (t >= a) & (t < b)).to_numpy()

    rows = []
    y1 = people(0.0, DAYS_PER_YEAR)
    rows.append(("successful_completion_y1", ep.loc[exits(0, DAYS_PER_YEAR, ("planned",)), "client_id"].nunique(),
                 len(y1)))
    rows.append(("declined_y1", ep.loc[exits(0, DAYS_PER_YEAR, ("declined",)), "client_id"].nunique(), len(y1)))

    referral = ep["referral"].to_numpy(dtype=float)
    referred = (referral >= 0) & (referral < two)
    wait = ep["treatment_start"].to_numpy(dtype=float) - referral
    rows.append(("initiation", int((referred & (wait <= FOLLOW_UP_DAYS)).sum()), int(referred.sum())))

    both = people(0.0, two)
    planned = exits(0, two, ("planned",))
    rows.append(("completion", ep.loc[planned, "client_id"].nunique(), len(both)))
    back = next_referral - ep["exit"].to_numpy(dtype=float) <= FOLLOW_UP_DAYS  # NaN (never back) is False
    rows.append(("completion_without_representation", ep.loc[planned & ~back, "client_id"].nunique(), len(both)))

    in_window = (rv["time"] >= 0) & (rv["time"] < two)
    reviews = rv[in_window & (rv["stage"].astype(object) == "review")]
    rows.append(("abstinence", int((reviews["use"].astype(object) == "abstinent").sum()), len(reviews)))
    start = all_reviews[(all_reviews["stage"].astype(object) == "start")
                        & all_reviews["injecting"].astype(bool)][["client_id", "episode"]]
    injectors = reviews.merge(start.drop_duplicates(), on=["client_id", "episode"])
    rows.append(("non_injecting", int((~injectors["injecting"].astype(bool)).sum()), len(injectors)))
    rows.append(("mortality", ep.loc[exits(0, two, ("died",)), "client_id"].nunique(), len(both)))

    offences = offences_by_spell(history, scenario)
    treated = offences[offences["state"].isin(TREATMENT_STATES) & offences["client_id"].isin(clients)]
    rows.append(("acquisitive_crime", recorded_between(treated, 0.0, two), len(both)))

    rows.append(("housing_problem", int(reviews["housing_problem"].astype(bool).sum()), len(reviews)))
    start_t = ep["treatment_start"].to_numpy(dtype=float)
    started = (start_t >= 0) & (start_t < two)
    rows.append(("waited_over_3_weeks", int((started & (wait > WAIT_DAYS)).sum()), int(started.sum())))

    per_year = (len(y1) + len(people(DAYS_PER_YEAR, two))) / 2
    rows.append(("people_in_treatment", per_year, len(people(-DAYS_PER_YEAR, 0.0))))
    return pd.DataFrame(rows, columns=["measure", "events", "population"]).astype({"events": float,
                                                                                   "population": float})
