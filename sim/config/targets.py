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

The **measures** a target can name are the target measures of the registry (``MEASURES``:
:data:`sim.core.measures.TARGET_MEASURES`, with their units and definitions); they are computed from a History
over the reporting years by :mod:`sim.analysis.targets` (``evaluate``, ``measure``, ``measures_table``). This module
is the file schema only and imports no engine.

A target may instead be a finding of the national pilot evaluation (Mason et al. 2015): ``measure =
"pilot.successful_completion_y1"`` (any of ``sim.core.measures.PILOT_MEASURE_NAMES``) is the paired odds ratio (rate
ratio for ``acquisitive_crime``) of the pilot against the scenario's counterfactual, as ``pbrsim evaluate-pilot``
computes it; a file's targets are all of one kind.

A target's ``role`` is ``calibration`` (the default: fitted to, and a shipped scenario must be within tolerance
of it) or ``validation`` (held out: reported against the simulation, never fitted to).

A figure is *within tolerance* when the simulated mean lies within ``tolerance`` of the target (of its range, or
on the right side of a one-sided bound less the tolerance). Calibration (:mod:`sim.experiments.calibrate`) aims for the
middle half of a range, or half a tolerance inside a one-sided bound, so that a fit does not sit on an edge.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator

from sim.config.base import ConfigError, Section, read_with_extends, validated
from sim.core.measures import PILOT_MEASURE_NAMES, PILOT_PREFIX
from sim.core.measures import TARGET_MEASURES as MEASURES
from sim.core.vocabulary import GROUPS, SOURCES, Group

MAX_FIGURE = 1e9  # any target figure or tolerance (counts of people, shares, days, pounds)
Figure = Annotated[float, Field(ge=-MAX_FIGURE, le=MAX_FIGURE)]


class TargetError(ConfigError):
    """Problems found in a target file, each as (file, key path, value, message)."""

    what = "target file"


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


# --- target files --------------------------------------------------------------------------------------------


class Target(Section):
    """One published figure and how close the simulation must come to it."""

    name: str | None = Field(None, description="a short label (default: the measure and subset)")
    measure: str = Field(description="one of sim.config.targets.MEASURES (sim.core.measures.TARGET_MEASURES)")
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
        known = [*MEASURES, *(PILOT_PREFIX + m for m in PILOT_MEASURE_NAMES)]
        if v not in known:
            close = difflib.get_close_matches(v, known, n=1)
            raise ValueError("unknown measure" + (f" (did you mean '{close[0]}'?)" if close else
                                                  f"; one of {', '.join(known)}"))
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
        if self.pilot is not None:
            if self.groups or self.sources or self.relative_to:
                raise ValueError(f"{self.measure} compares the pilot with its counterfactual as the evaluation "
                                 "defines it: no groups, sources or relative_to")
            for x in (self.value, *(self.range or ()), self.at_least, self.at_most):
                if x is not None and not x > 0:
                    raise ValueError(f"{self.measure} is an odds (or rate) ratio: figures must be above 0, got {x}")
        elif MEASURES[self.measure].unit == "share" and self.relative_to is None:
            for x in (self.value, *(self.range or ()), self.at_least, self.at_most):
                if x is not None and not 0 <= x <= 1:
                    raise ValueError(f"{self.measure} is a share: figures must be in [0, 1], got {x}")
        return self

    @property
    def pilot(self) -> str | None:
        """The pilot evaluation measure this target is the paired odds ratio of, or None (a system measure)."""
        return self.measure.removeprefix(PILOT_PREFIX) if self.measure.startswith(PILOT_PREFIX) else None

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

    def covered(self, ci_low: float, ci_high: float) -> bool:
        """Whether a confidence interval reaches the target (its figure or range, widened by the tolerance)."""
        lo, hi = self.bounds
        return bool(math.isfinite(ci_low) and math.isfinite(ci_high)
                    and ci_low <= hi + self.tol + 1e-12 and ci_high >= lo - self.tol - 1e-12)

    def informative(self, half_width: float) -> bool:
        """Whether a confidence interval is narrow enough to tell a simulation on target from one off it: its
        half-width at most the tolerance, or half the target's range when that is wider (a one-sided target
        takes any finite interval)."""
        lo, hi = self.bounds
        allowed = max(self.tol, (hi - lo) / 2) if math.isfinite(hi - lo) else math.inf
        return bool(math.isfinite(half_width) and half_width <= allowed + 1e-12)

    def residual(self, simulated: float) -> float:
        """Signed distance outside the aim, in tolerances (0 inside it); large when nothing was measured."""
        if not math.isfinite(simulated):
            return 10.0
        lo, hi = self.aim
        off = simulated - lo if simulated < lo else (simulated - hi if simulated > hi else 0.0)
        return self.weight * off / self.tol


class TargetFile(Section):
    """A set of targets: the figures one site (or the nation) reported."""

    name: str
    description: str = ""
    scenario: str | None = Field(None, description="the scenario these figures describe (relative to the file)")
    target: list[Target] = Field(min_length=1, description="the figures ([[target]] tables)")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if len({t.pilot is None for t in self.target}) > 1:
            raise ValueError("pilot evaluation targets (pilot.*) and system targets need separate files: one "
                             "compares two arms on paired replications, the other measures one run")
        return self

    @property
    def pilot(self) -> bool:
        """Whether the targets are the pilot evaluation's paired odds ratios."""
        return self.target[0].pilot is not None

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
