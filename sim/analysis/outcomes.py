"""Outcome measures for payment: pure functions of a History, each with its window and evidence rule.

``achievements(history, measure, window_days)`` returns every time a client achieved and evidenced an outcome:
columns ``client_id``, ``episode``, ``band`` (the episode's LASARS band), ``group``, ``time`` (the day the
outcome is evidenced). Evidence is what a commissioner would see: a *completed* TOP review (missed reviews are
no evidence, so they cost money), a recorded discharge, an NDTMS record of a vaccination or test. Rules about
paying (once per client per window, caps, lags) belong to :mod:`sim.money.settlement`.

Definitions follow the national drug recovery outcomes (../shared/reference/pbr-contracts.md §1.2; descriptions
in the measure registry :mod:`sim.core.measures`, :data:`sim.config.contract.MEASURES`). "Two reviews within 12 months" means two completed reviews (not the start
review) of the same treatment episode at most ``window_days`` apart; the outcome is evidenced at the second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.config.contract import MEASURES
from sim.engine.history import History, derived

COLUMNS = ["client_id", "episode", "band", "group", "time"]
NORMATIVE_QUALITY_OF_LIFE = 14  # the average TOP score at successful completion (pbr-contracts.md §1.2)
RECORDED_EVENTS = {"hep_b_completed": "hep_b_course_complete", "bbv_tested": "bbv_test",
                   "entered_training": "entered_training"}  # payable outcomes evidenced by a recorded event (kind)
# the payable outcomes achievements() computes in its own branch (the rest: RECORDED_EVENTS)
COMPUTED = ("reliable_improvement", "abstinence", "normative_quality_of_life", "stopped_injecting",
            "housing_resolved", "planned_exit", "sustained_recovery", "engagement")
if set(COMPUTED) | set(RECORDED_EVENTS) != set(MEASURES):  # every payable outcome of the registry, and only those
    raise ImportError("sim.analysis.outcomes computes " + ", ".join(sorted(set(COMPUTED) | set(RECORDED_EVENTS)))
                      + "; the registry's payable outcomes (sim.core.measures) are " + ", ".join(sorted(MEASURES)))


def _with_band(history: History, frame: pd.DataFrame) -> pd.DataFrame:
    ep = history.episodes[["client_id", "episode", "band"]]
    out = frame.merge(ep, on=["client_id", "episode"], how="left")
    out = out.merge(history.clients[["client_id", "group"]], on="client_id", how="left")
    out["band"] = out["band"].astype(object)
    out["group"] = out["group"].astype(object)
    return out[COLUMNS].sort_values(["time", "client_id"], ignore_index=True)


def _two_reviews(reviews: pd.DataFrame, ok: pd.Series, window: float) -> pd.DataFrame:
    """Reviews at which ``ok`` holds for the second time within ``window`` days in the same episode."""
    r = reviews[ok & reviews["completed"] & (reviews["stage"] != "start")]
    r = r.sort_values(["client_id", "episode", "time"])
    if r.empty:
        return r[["client_id", "episode", "time"]]
    same = (r["client_id"].to_numpy()[1:] == r["client_id"].to_numpy()[:-1]) & \
           (r["episode"].to_numpy()[1:] == r["episode"].to_numpy()[:-1])
    close = np.diff(r["time"].to_numpy()) <= window
    second = np.r_[False, same & close]
    return r.loc[second, ["client_id", "episode", "time"]]


def _eligible_at_start(reviews: pd.DataFrame, column: str) -> pd.Series:
    """Reviews of episodes whose start review recorded ``column`` (e.g. injecting) as true."""
    start = reviews[(reviews["stage"] == "start") & reviews[column]][["client_id", "episode"]]
    key = pd.MultiIndex.from_frame(reviews[["client_id", "episode"]])
    return pd.Series(key.isin(pd.MultiIndex.from_frame(start)), index=reviews.index)


@derived
def achievements(history: History, measure: str, window_days: float = 365.0) -> pd.DataFrame:
    """Every evidenced achievement of ``measure`` in the history (warm-up included; settlement picks dates),
    sorted by time, then client (stably: settlement's first-earned, first-paid order relies on it)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; expected one of {', '.join(MEASURES)}")
    rv, ep, ev = history.reviews, history.episodes, history.events
    if measure == "reliable_improvement":
        found = _two_reviews(rv, rv["use"].isin(["abstinent", "improved"]), window_days)
    elif measure == "abstinence":
        found = _two_reviews(rv, rv["use"] == "abstinent", window_days)
    elif measure == "normative_quality_of_life":
        found = _two_reviews(rv, rv["quality_of_life"] >= NORMATIVE_QUALITY_OF_LIFE, window_days)
    elif measure == "stopped_injecting":
        found = _two_reviews(rv, _eligible_at_start(rv, "injecting") & ~rv["injecting"], window_days)
    elif measure == "housing_resolved":
        eligible = _eligible_at_start(rv, "housing_problem") & ~rv["housing_problem"]
        at_exit = rv[eligible & rv["completed"] & (rv["stage"] == "exit")][["client_id", "episode", "time"]]
        found = pd.concat([_two_reviews(rv, eligible, window_days), at_exit])
        found = found.sort_values("time").drop_duplicates(["client_id", "episode"])
    elif measure == "planned_exit":
        found = ep.loc[ep["exit_reason"] == "planned", ["client_id", "episode", "exit"]].rename(columns={"exit": "time"})
    elif measure == "sustained_recovery":
        found = sustained_recoveries(history, window_days)
    elif measure == "engagement":
        found = ep.loc[ep["treatment_start"].notna(), ["client_id", "episode", "treatment_start"]]
        found = found.rename(columns={"treatment_start": "time"})
    else:
        kind = RECORDED_EVENTS[measure]
        found = ev.loc[ev["kind"] == kind, ["client_id", "episode", "time"]]
    return _with_band(history, found)


def sustained_recoveries(history: History, window_days: float) -> pd.DataFrame:
    """Planned exits with no re-presentation within ``window_days``, evidenced when the window closes.

    A re-presentation ``d`` days after the exit breaks the outcome if ``d < window_days`` (so with a 183-day
    window, day 182 breaks it and day 183 does not). A client who dies in the window is no evidence of recovery,
    and a window that has not closed by the end of the horizon is not yet evidenced.
    """
    ep = history.episodes.sort_values(["client_id", "episode"])
    nxt = ep.groupby("client_id")["referral"].shift(-1)
    planned = ep[ep["exit_reason"] == "planned"].assign(next_referral=nxt)
    deaths = history.events.loc[history.events["kind"] == "death", ["client_id", "time"]]
    died = planned["client_id"].map(deaths.set_index("client_id")["time"])
    closes = planned["exit"] + window_days
    ok = ~(planned["next_referral"] - planned["exit"] < window_days) & ~(died < closes) & (closes <= history.end)
    return planned.loc[ok, ["client_id", "episode"]].assign(time=closes[ok].to_numpy())
