"""Calibration and validation targets: published figures, the measures that simulate them, and target files.

A target file (``scenarios/targets/*.toml``) holds the figures a site or the nation reported, each with its
source, and names the scenario they describe::

    name = "essex"
    scenario = "../essex.toml"            # relative to this file

    [[target]]
    measure = "planned_discharges_per_in_treatment"
    groups = ["opiate"]                   # default: every group
    range = [0.102, 0.106]                # or value = 0.104, at_least = ..., at_most = ...
    tolerance = 0.01                      # absolute, in the measure's unit (or relative_tolerance = 0.05)
    source = "seed 003 (Essex DAAT, September 2011), indicator 4: PDU 10.2%, 10.6%, 10.3% [K]"

A target may compare two subsets: with ``relative_to = { sources = ["self"] }`` its value is the ratio of the
measure on the target's subset to the measure on that one ("the same completion rate from every source" is a
ratio of 1).

**Measures** (``MEASURES``) are computed from a History over the *reporting years*: whole years counted from the
contract start (anniversaries, so a horizon starting 1 July reports July-June years); a part-year at the end is
left out. Counts are per year (the mean over the reporting years); shares are pooled over them (the sum of the
numerators over the sum of the denominators). ``groups`` and ``sources`` select episodes by the client's
substance group and the episode's referral source. The definitions follow :mod:`sim.analysis.measures` (the same people
in treatment, exits and waits), so the two agree on financial-year horizons.

A target's ``role`` is ``calibration`` (the default: fitted to, and a shipped scenario must be within tolerance
of it) or ``validation`` (held out: reported against the simulation, never fitted to).

A figure is *within tolerance* when the simulated mean lies within ``tolerance`` of the target (of its range, or
on the right side of a one-sided bound less the tolerance). Calibration (:mod:`sim.experiments.calibrate`) aims for the
middle half of a range, or half a tolerance inside a one-sided bound, so that a fit does not sit on an edge.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Self

import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr, field_validator, model_validator

from sim.config.base import ConfigError, Section, read_with_extends, validated
from sim.config.contract import contract_years
from sim.core.vocabulary import GROUPS, SOURCES, TREATMENT_STATES, Group
from sim.engine.history import History

TREATMENT_EXITS = ("planned", "dropped_out", "declined", "transferred", "custody", "died")
EFFECTIVE_DAYS = 84.0         # NDTMS "effective treatment": retained 12 weeks, or a planned exit before that
RELAPSE_COHORT_YEARS = 5.0    # re-presentation measures follow planned exits from this long before the contract
                              # start (in the warm-up) to the last exit whose window ends inside the horizon
DAYS_PER_YEAR = 365.25


MAX_FIGURE = 1e9  # any target figure or tolerance (counts of people, shares, days, pounds)
Figure = Annotated[float, Field(ge=-MAX_FIGURE, le=MAX_FIGURE)]


class TargetError(ConfigError):
    """Problems found in a target file, each as (file, key path, value, message)."""

    what = "target file"


# --- measures ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    unit: str            # "people", "share", "years" or "days"
    description: str
    compute: Callable[["_Runs", "Subset"], float]


def _check_sources(v: list[str] | None) -> list[str] | None:
    for s in v or ():
        if s not in SOURCES:
            close = difflib.get_close_matches(s, SOURCES, n=1)
            raise ValueError(f"unknown referral source {s!r}" + (f" (did you mean {close[0]!r}?)" if close
                             else f"; one of {', '.join(SOURCES)}"))
    return v


class Subset(Section):
    """Which episodes a measure counts: by the client's substance group and the episode's referral source."""

    groups: list[Group] | None = Field(None, description="substance groups (default: all)")
    sources: list[str] | None = Field(None, description="referral sources of the episode (default: all)")

    @field_validator("groups", "sources", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, v: list[str] | None) -> list[str] | None:
        return _check_sources(v)

    def label(self) -> str:
        parts = []
        if self.groups and set(self.groups) != set(GROUPS):
            parts.append("+".join(self.groups))
        if self.sources:
            parts.append("from " + "+".join(self.sources))
        return ", ".join(parts) or "all"


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


MEASURES: dict[str, Measure] = {
    "in_treatment_per_year": Measure(
        "people", "people in structured treatment at any time in a reporting year (NDTMS 'in treatment')",
        _in_treatment_per_year),
    "in_effective_treatment_per_year": Measure(
        "people", "people in treatment in a year who, by its end or their exit, were retained 12 weeks or left "
        "with a planned exit (NDTMS 'in effective treatment')", _in_effective_treatment_per_year),
    "treatment_starts_per_year": Measure("people", "structured treatment episodes started a year",
                                         _starts_per_year),
    "caseload": Measure("people", "time-average number on the treatment caseload (in treatment, detox or "
                        "rehab): the service users at any one time", _caseload),
    "mean_years_in_treatment": Measure(
        "years", "caseload / exits a year: the mean time in treatment by Little's law, as the NDTMS-derived "
        "figures are computed", _mean_years_in_treatment),
    "successful_completions": Measure(
        "share", "planned exits / people in treatment (the NDTMS successful-completion rate)",
        _exits_by(("planned",), "in_treatment")),
    "planned_share_of_exits": Measure("share", "planned exits / treatment exits", _exits_by(("planned",), "exits")),
    "dropped_out_share_of_exits": Measure("share", "exits dropped out / treatment exits",
                                          _exits_by(("dropped_out",), "exits")),
    "declined_share_of_exits": Measure("share", "exits declining further treatment / treatment exits",
                                       _exits_by(("declined",), "exits")),
    "transferred_share_of_exits": Measure("share", "exits transferred (in the community or to custody) / "
                                          "treatment exits", _exits_by(("transferred", "custody"), "exits")),
    "planned_discharges_per_in_treatment": Measure(
        "share", "planned discharges (planned exits and community transfers, the pre-2012 NDTMS 'planned "
        "exit') / people in treatment", _exits_by(("planned", "transferred"), "in_treatment")),
    "planned_discharge_share_of_exits": Measure(
        "share", "planned discharges (planned exits and community transfers) / treatment exits",
        _exits_by(("planned", "transferred"), "exits")),
    "started_within_3_weeks": Measure("share", "of treatment starts, referral to start within 21 days",
                                      _started_within_3_weeks),
    "mean_wait_days": Measure("days", "referral to treatment start, mean over starts", _mean_wait_days),
    "re_presented_within_1y": Measure(
        "share", "of planned exits, those referred again within 365 days (cohort: planned exits from 5 years "
        "before the contract start whose window ends inside the horizon)", _re_presented(0.0, 365.0)),
    "re_presented_within_2y": Measure("share", "as re_presented_within_1y, within 730 days",
                                      _re_presented(0.0, 730.0)),
    "re_presented_within_3y": Measure("share", "as re_presented_within_1y, within 1,096 days",
                                      _re_presented(0.0, 1096.0)),
    "re_presented_6_to_18m": Measure(
        "share", "of planned exits, those referred again after 6 and within 18 months (183-548 days; cohort as "
        "re_presented_within_1y)", _re_presented(183.0, 548.0)),
    "review_attendance": Measure("share", "TOP reviews completed / TOP reviews due", _review_attendance),
    "injecting_at_review": Measure("share", "completed TOP reviews recording injecting / completed TOP reviews",
                                   _injecting_at_review),
}


# --- target files --------------------------------------------------------------------------------------------


class Target(Section):
    """One published figure and how close the simulation must come to it."""

    name: str | None = Field(None, description="a short label (default: the measure and subset)")
    measure: str = Field(description="one of sim.config.targets.MEASURES")
    groups: list[Group] | None = Field(None, description="substance groups (default: all)")
    sources: list[str] | None = Field(None, description="referral sources of the episode (default: all)")
    relative_to: Subset | None = Field(None, description="the value is the measure here / the measure on this "
                                                         "subset")
    value: float | None = Field(None, ge=-MAX_FIGURE, le=MAX_FIGURE)
    range: tuple[Figure, Figure] | None = Field(None, description="[low, high]: anywhere inside is on target")
    at_least: float | None = Field(None, ge=-MAX_FIGURE, le=MAX_FIGURE)
    at_most: float | None = Field(None, ge=-MAX_FIGURE, le=MAX_FIGURE)
    tolerance: float | None = Field(None, gt=0, le=MAX_FIGURE, description="how far outside the simulated mean may be (the "
                                                            "measure's unit)")
    relative_tolerance: float | None = Field(None, gt=0, le=100, description="tolerance as a share of the target")
    weight: float = Field(1.0, gt=0, le=1000, description="weight in the calibration objective")
    role: Literal["calibration", "validation"] = Field(
        "calibration", description="calibration: fitted to, and a shipped scenario must be within tolerance; "
                                   "validation: held out, reported only")
    source: str = Field(min_length=3, description="where the figure comes from, with its tag ([P], [D], [E], [K])")
    note: str = ""

    @field_validator("groups", "sources", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("measure")
    @classmethod
    def _known_measure(cls, v: str) -> str:
        if v not in MEASURES:
            close = difflib.get_close_matches(v, MEASURES, n=1)
            raise ValueError("unknown measure" + (f" (did you mean '{close[0]}'?)" if close else
                                                  f"; one of {', '.join(MEASURES)}"))
        return v

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, v: list[str] | None) -> list[str] | None:
        return _check_sources(v)

    @model_validator(mode="after")
    def _one_figure(self) -> Self:
        given = [k for k in ("value", "range", "at_least", "at_most") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of value, range, at_least and at_most (got {given or 'none'})")
        if (self.tolerance is None) == (self.relative_tolerance is None):
            raise ValueError("give exactly one of tolerance and relative_tolerance")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range must be [low, high], got {list(self.range)}")
        if MEASURES[self.measure].unit == "share" and self.relative_to is None:
            for x in (self.value, *(self.range or ()), self.at_least, self.at_most):
                if x is not None and not 0 <= x <= 1:
                    raise ValueError(f"{self.measure} is a share: figures must be in [0, 1], got {x}")
        return self

    @property
    def subset(self) -> Subset:
        return Subset(groups=self.groups, sources=self.sources)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        text = f"{self.measure} ({self.subset.label()})"
        return text + (f" / ({self.relative_to.label()})" if self.relative_to else "")

    @property
    def bounds(self) -> tuple[float, float]:
        """[low, high] of the figure itself (one-sided: infinite on the open side)."""
        if self.value is not None:
            return self.value, self.value
        if self.range is not None:
            return self.range
        if self.at_least is not None:
            return self.at_least, math.inf
        return -math.inf, self.at_most

    @property
    def tol(self) -> float:
        """The tolerance in the measure's unit."""
        if self.tolerance is not None:
            return self.tolerance
        lo, hi = self.bounds
        scale = (lo + hi) / 2 if math.isfinite(lo) and math.isfinite(hi) else (lo if math.isfinite(lo) else hi)
        return self.relative_tolerance * abs(scale)

    @property
    def aim(self) -> tuple[float, float]:
        """What calibration aims for: the middle half of a range, half a tolerance inside a one-sided bound."""
        lo, hi = self.bounds
        if self.range is not None:
            quarter = (hi - lo) / 4
            return lo + quarter, hi - quarter
        if self.at_least is not None:
            return lo + self.tol / 2, math.inf
        if self.at_most is not None:
            return -math.inf, hi - self.tol / 2
        return lo, hi

    def figure(self) -> str:
        """The target as text: 0.104, 0.102-0.106, >= 700, <= 0.11."""
        if self.value is not None:
            return f"{self.value:g}"
        if self.range is not None:
            return f"{self.range[0]:g}-{self.range[1]:g}"
        return f">= {self.at_least:g}" if self.at_least is not None else f"<= {self.at_most:g}"

    def within(self, simulated: float) -> bool:
        lo, hi = self.bounds
        return bool(math.isfinite(simulated) and lo - self.tol - 1e-12 <= simulated <= hi + self.tol + 1e-12)

    def residual(self, simulated: float) -> float:
        """Signed distance outside the aim, in tolerances (0 inside it); large when nothing was measured."""
        if not math.isfinite(simulated):
            return 10.0
        lo, hi = self.aim
        off = simulated - lo if simulated < lo else (simulated - hi if simulated > hi else 0.0)
        return self.weight * off / self.tol

    def compute(self, runs: _Runs) -> float:
        value = MEASURES[self.measure].compute(runs, self.subset)
        if self.relative_to is not None:
            value = _ratio(value, MEASURES[self.measure].compute(runs, self.relative_to))
        return value


class TargetFile(Section):
    """A set of targets: the figures one site (or the nation) reported."""

    name: str
    description: str = ""
    scenario: str | None = Field(None, description="the scenario these figures describe (relative to the file)")
    target: list[Target] = Field(min_length=1, description="the figures ([[target]] tables)")

    _path: Path | None = PrivateAttr(default=None)

    def scenario_path(self) -> Path | None:
        if self.scenario is None:
            return None
        return (self._path.parent / self.scenario) if self._path is not None else Path(self.scenario)

    @property
    def path(self) -> Path | None:
        return self._path


def load_targets(path: str | Path) -> TargetFile:
    """Read and validate a target file: every problem at once, naming the file, the key and the value."""
    path = Path(path)
    raw, provenance = read_with_extends(path, TargetError)
    targets = validated(raw, TargetFile, TargetError, str(path), provenance)
    targets._path = path
    return targets


def targets_from_dict(raw: dict, source: str = "<targets>") -> TargetFile:
    return validated(raw, TargetFile, TargetError, source)


def evaluate(history: History, targets: list[Target]) -> list[float]:
    """The simulated value of each target's measure in one run."""
    runs = _Runs(history)
    return [t.compute(runs) for t in targets]


def measure(history: History, name: str, groups=None, sources=None) -> float:
    """One measure of one run, e.g. ``measure(h, "successful_completions", groups="opiate")``."""
    if name not in MEASURES:
        raise KeyError(f"unknown measure {name!r}; one of {', '.join(MEASURES)}")
    return MEASURES[name].compute(_Runs(history), Subset(groups=groups, sources=sources))


def measures_table() -> pd.DataFrame:
    """The measures a target can name, with their units and definitions."""
    return pd.DataFrame([(k, m.unit, m.description) for k, m in MEASURES.items()],
                        columns=["measure", "unit", "definition"])
