"""Target measures on Histories: the simulated value of each measure a target file can name.

The measures (their names, units and definitions in :data:`sim.core.measures.TARGET_MEASURES`, the registry the
target file schema :mod:`sim.config.targets` validates against) are computed from a History over the *reporting
years*: whole years counted from the contract start (anniversaries, so a horizon starting 1 July reports July-June
years); a part-year at the end is left out. Counts are per year (the mean over the reporting years); shares are
pooled over them (the sum of the numerators over the sum of the denominators). ``groups`` and ``sources`` select
episodes by the client's substance group and the episode's referral source. The definitions follow
:mod:`sim.analysis.measures` (the same people in treatment, exits and waits), so the two agree on financial-year
horizons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from sim.analysis.measures import PLACE_USE, available_place_days, capacity_steps
from sim.config.contract import contract_years
from sim.config.targets import Subset, Target
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR
from sim.core.measures import TARGET_MEASURES
from sim.core.vocabulary import TREATMENT_EXITS, TREATMENT_STATES
from sim.engine.history import History

EFFECTIVE_DAYS = 84.0         # NDTMS "effective treatment": retained 12 weeks, or a planned exit before that
RELAPSE_COHORT_YEARS = 5.0    # re-presentation measures follow planned exits from this long before the contract
                              # start (in the warm-up) to the last exit whose window ends inside the horizon


@dataclass(frozen=True)
class Measure:
    unit: str            # "people", "share", "years" or "days"
    description: str
    compute: Callable[["_Runs", Subset], float]


class _Runs:
    """One History cut into reporting years, with the tables the measures share (computed once)."""

    def __init__(self, h: History):
        self.h = h
        years = contract_years(h.contract_start, max(int(h.end // 365), 1))
        self.years = [(a, b) for _, a, b in years if b <= h.end + 1e-9]
        if not self.years:
            raise ValueError(f"targets need at least one whole reported year; the horizon is {h.end:g} days")
        self.start, self.stop = self.years[0][0], self.years[-1][1]
        ep = h.episodes.merge(h.clients[["client_id", "group"]], on="client_id", how="left")
        ep["group"] = ep["group"].astype(object)
        ep["source"] = ep["source"].astype(object)
        ep["exit_reason"] = ep["exit_reason"].astype(object)
        ep["next_referral"] = ep.groupby("client_id")["referral"].shift(-1).to_numpy()
        self.episodes = ep
        keys = ep[["client_id", "episode", "group", "source"]]
        sp = h.spells[h.spells["state"].astype(object).isin(TREATMENT_STATES)]
        self.treatment = sp.merge(keys, on=["client_id", "episode"], how="left")
        self.reviews = h.reviews.merge(keys, on=["client_id", "episode"], how="left")

    def select(self, frame: pd.DataFrame, subset: Subset) -> pd.DataFrame:
        keep = np.ones(len(frame), dtype=bool)
        if subset.groups:
            keep &= frame["group"].isin(subset.groups).to_numpy()
        if subset.sources:
            keep &= frame["source"].isin(subset.sources).to_numpy()
        return frame[keep]

    def in_years(self, times: pd.Series) -> np.ndarray:
        t = times.to_numpy(dtype=float)
        return (t >= self.start) & (t < self.stop)

    def treated_exits(self, subset: Subset) -> pd.DataFrame:
        ep = self.select(self.episodes, subset)
        ep = ep[ep["treatment_start"].notna() & ep["exit_reason"].isin(TREATMENT_EXITS)]
        return ep[self.in_years(ep["exit"])]

    def in_treatment(self, subset: Subset) -> float:
        """People in treatment at any time in a reporting year, summed over the years."""
        sp = self.select(self.treatment, subset)
        return float(sum(sp.loc[(sp["start"] < b) & (sp["end"] > a), "client_id"].nunique() for a, b in self.years))

    def n_years(self) -> int:
        return len(self.years)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _exits_by(reasons: tuple[str, ...], per: str) -> Callable[[_Runs, Subset], float]:
    def compute(r: _Runs, s: Subset) -> float:
        ex = r.treated_exits(s)
        num = float(ex["exit_reason"].isin(reasons).sum())
        return _ratio(num, float(len(ex)) if per == "exits" else r.in_treatment(s))
    return compute


def _in_treatment_per_year(r: _Runs, s: Subset) -> float:
    return r.in_treatment(s) / r.n_years()


def _in_effective_treatment_per_year(r: _Runs, s: Subset) -> float:
    ep = r.select(r.episodes, s)
    ep = ep[ep["treatment_start"].notna()]
    left = ep["exit"].fillna(r.h.end).to_numpy(dtype=float)
    start = ep["treatment_start"].to_numpy(dtype=float)
    planned = (ep["exit_reason"] == "planned").to_numpy()
    ids = ep["client_id"].to_numpy()
    total = 0
    for a, b in r.years:
        present = (start < b) & (left > a)
        effective = present & ((np.minimum(left, b) - start >= EFFECTIVE_DAYS) | (planned & (left < b)))
        total += len(np.unique(ids[effective]))
    return total / r.n_years()


def _starts_per_year(r: _Runs, s: Subset) -> float:
    ep = r.select(r.episodes, s)
    return float(r.in_years(ep["treatment_start"]).sum()) / r.n_years()


def _caseload(r: _Runs, s: Subset) -> float:
    sp = r.select(r.treatment, s)
    days = (np.minimum(sp["end"], r.stop) - np.maximum(sp["start"], r.start)).clip(lower=0).sum()
    return float(days) / (r.stop - r.start)


def _mean_years_in_treatment(r: _Runs, s: Subset) -> float:
    exits_per_day = len(r.treated_exits(s)) / (r.stop - r.start)
    return _ratio(_caseload(r, s), exits_per_day) / DAYS_PER_YEAR


def _waits(r: _Runs, s: Subset) -> np.ndarray:
    ep = r.select(r.episodes, s)
    ep = ep[r.in_years(ep["treatment_start"])]
    return (ep["treatment_start"] - ep["referral"]).to_numpy(dtype=float)


def _started_within_3_weeks(r: _Runs, s: Subset) -> float:
    w = _waits(r, s)
    return float((w <= 21).mean()) if len(w) else math.nan


def _mean_wait_days(r: _Runs, s: Subset) -> float:
    w = _waits(r, s)
    return float(w.mean()) if len(w) else math.nan


def _re_presented(low_days: float, high_days: float) -> Callable[[_Runs, Subset], float]:
    """Of planned exits whose window is observed, the share whose next referral is in (low, high] days."""
    def compute(r: _Runs, s: Subset) -> float:
        ep = r.select(r.episodes, s)
        ep = ep[(ep["exit_reason"] == "planned") & ep["treatment_start"].notna()]
        first = r.start - RELAPSE_COHORT_YEARS * DAYS_PER_YEAR
        ep = ep[(ep["exit"] >= first) & (ep["exit"] + high_days <= r.h.end)]
        if ep.empty:
            return math.nan
        gap = (ep["next_referral"] - ep["exit"]).to_numpy(dtype=float)
        back = (gap > low_days) & (gap <= high_days)  # NaN (never back) compares False
        return float(back.mean())
    return compute


def _reviews_in_years(r: _Runs, s: Subset) -> pd.DataFrame:
    rv = r.select(r.reviews, s)
    return rv[r.in_years(rv["time"])]


def _review_attendance(r: _Runs, s: Subset) -> float:
    rv = _reviews_in_years(r, s)
    return float(rv["completed"].mean()) if len(rv) else math.nan


def _injecting_at_review(r: _Runs, s: Subset) -> float:
    rv = _reviews_in_years(r, s)
    rv = rv[rv["completed"].astype(bool)]
    return float(rv["injecting"].astype(bool).mean()) if len(rv) else math.nan


def _currently_injecting_in_treatment(r: _Runs, s: Subset) -> float:
    sp = r.select(r.treatment, s)
    rv = r.reviews
    status = rv.loc[rv["stage"] == "start", ["client_id", "episode", "injecting"]]
    sp = sp.merge(status, on=["client_id", "episode"], how="left").sort_values("start", kind="stable")
    num = den = 0
    for a, b in r.years:
        present = sp[(sp["start"] < b) & (sp["end"] > a)].drop_duplicates("client_id", keep="last")
        num += int(present["injecting"].fillna(False).astype(bool).sum())
        den += len(present)
    return _ratio(float(num), float(den))


def _uptake(kind: str) -> Callable[[_Runs, Subset], float]:
    """People admitted (an event of ``kind``) in a reporting year, over the people in treatment that year, pooled
    over the years (NDTMS's count of people receiving a modality in the year among those in treatment)."""
    def compute(r: _Runs, s: Subset) -> float:
        ev = r.h.events
        ev = ev.loc[ev["kind"] == kind, ["client_id", "episode", "time"]]
        ev = r.select(ev.merge(r.episodes[["client_id", "episode", "group", "source"]], on=["client_id", "episode"],
                               how="left"), s)
        admitted = sum(ev.loc[(ev["time"] >= a) & (ev["time"] < b), "client_id"].nunique() for a, b in r.years)
        return _ratio(float(admitted), r.in_treatment(s))
    return compute


def _place_use(name: str) -> Callable[[_Runs, Subset], float]:
    """Occupied place-days over the place-days in force, over the reported years (the period table's measure
    ``name``, for the subset's clients)."""
    resource, states = PLACE_USE[name]

    def compute(r: _Runs, s: Subset) -> float:
        sp = r.select(r.treatment, s)  # the treatment states hold every detox and rehab spell
        sp = sp[sp["state"].astype(object).isin(states)]
        used = float((np.minimum(sp["end"], r.stop) - np.maximum(sp["start"], r.start)).clip(lower=0).sum())
        return _ratio(used, available_place_days(capacity_steps(r.h, resource), r.start, r.stop))
    return compute


def _not_injecting_at_6_month_review(r: _Runs, s: Subset) -> float:
    rv = r.select(r.reviews, s)
    start = rv[(rv["stage"] == "start") & rv["injecting"].astype(bool) & r.in_years(rv["time"])]
    later = rv[(rv["stage"] != "start") & rv["completed"].astype(bool)]
    paired = later.merge(start[["client_id", "episode", "time"]], on=["client_id", "episode"], suffixes=("", "_0"))
    weeks = (paired["time"] - paired["time_0"]) / DAYS_PER_WEEK
    six = paired[(weeks >= 20) & (weeks <= 32)].assign(off=(weeks - 26).abs())
    six = six.sort_values("off", kind="stable").drop_duplicates(["client_id", "episode"])
    return float((~six["injecting"].astype(bool)).mean()) if len(six) else math.nan


_COMPUTE: dict[str, Callable[[_Runs, Subset], float]] = {
    "in_treatment_per_year": _in_treatment_per_year,
    "in_effective_treatment_per_year": _in_effective_treatment_per_year,
    "treatment_starts_per_year": _starts_per_year,
    "caseload": _caseload,
    "mean_years_in_treatment": _mean_years_in_treatment,
    "successful_completions": _exits_by(("planned",), "in_treatment"),
    "planned_share_of_exits": _exits_by(("planned",), "exits"),
    "dropped_out_share_of_exits": _exits_by(("dropped_out",), "exits"),
    "declined_share_of_exits": _exits_by(("declined",), "exits"),
    "withdrawn_share_of_exits": _exits_by(("withdrawn",), "exits"),
    "transferred_share_of_exits": _exits_by(("transferred", "custody"), "exits"),
    "planned_discharges_per_in_treatment": _exits_by(("planned", "transferred"), "in_treatment"),
    "planned_discharge_share_of_exits": _exits_by(("planned", "transferred"), "exits"),
    "started_within_3_weeks": _started_within_3_weeks,
    "mean_wait_days": _mean_wait_days,
    "re_presented_within_1y": _re_presented(0.0, 365.0),
    "re_presented_within_2y": _re_presented(0.0, 730.0),
    "re_presented_within_3y": _re_presented(0.0, 1096.0),
    "re_presented_6_to_18m": _re_presented(183.0, 548.0),
    "review_attendance": _review_attendance,
    "injecting_at_review": _injecting_at_review,
    "currently_injecting_in_treatment": _currently_injecting_in_treatment,
    "not_injecting_at_6_month_review": _not_injecting_at_6_month_review,
    "rehab_uptake": _uptake("rehab_start"),
    "inpatient_detox_uptake": _uptake("inpatient_detox_start"),
    "rehab_place_use": _place_use("rehab_place_use"),
    "detox_bed_use": _place_use("detox_bed_use"),
}
if set(_COMPUTE) != set(TARGET_MEASURES):  # the registry and the implementations name the same measures
    raise ImportError("sim.analysis.targets implements " + ", ".join(sorted(set(_COMPUTE) ^ set(TARGET_MEASURES)))
                      + " but the registry (sim.core.measures) disagrees")

MEASURES: dict[str, Measure] = {name: Measure(m.unit, m.description, _COMPUTE[name])
                                for name, m in TARGET_MEASURES.items()}


def target_value(target: Target, runs: _Runs) -> float:
    """The simulated value of one target (a ratio of two subsets with ``relative_to``)."""
    value = MEASURES[target.measure].compute(runs, target.subset)
    if target.relative_to is not None:
        value = _ratio(value, MEASURES[target.measure].compute(runs, target.relative_to))
    return value


def evaluate(history: History, targets: list[Target]) -> list[float]:
    """The simulated value of each target's measure in one run."""
    runs = _Runs(history)
    return [target_value(t, runs) for t in targets]


def measure(history: History, name: str, groups=None, sources=None) -> float:
    """One measure of one run, e.g. ``measure(h, "successful_completions", groups="opiate")``."""
    if name not in MEASURES:
        raise KeyError(f"unknown measure {name!r}; one of {', '.join(MEASURES)}")
    return MEASURES[name].compute(_Runs(history), Subset(groups=groups, sources=sources))


def measures_table() -> pd.DataFrame:
    """The measures a target can name, with their units and definitions."""
    return pd.DataFrame([(k, m.unit, m.description) for k, m in MEASURES.items()],
                        columns=["measure", "unit", "definition"])
