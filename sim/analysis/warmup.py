"""The warm-up a scenario needs, chosen by the MSER-5 rule rather than guessed.

A run starts empty: nobody in treatment, nobody who could re-present. The numbers a contract prices (clients in
treatment, planned exits, re-presentations) climb towards the system's long-run level, and a warm-up discards
that climb. MSER-5 (White 1997; White, Cobb & Spratt 2000; Hoad, Robinson & Davies 2010, the rule the STARS
tools use) finds where to cut: average the replications' series, group it into batches of 5 observations, and
truncate the first ``d`` batches where the marginal standard error of what is left,

    MSER(d) = sum_{i > d} (Y_i - mean(Y_{>d}))^2 / (n - d)^2,

is smallest, looking only at ``d`` up to half the series (past that the rule is unreliable, and a minimum there
means the series has not settled: the run is too short to tell).

MSER-5 keeps cutting while any drift is left, however slow: a series still creeping up by 0.1% a year after 20
years (an opiate caseload whose long-stayers take decades to accumulate) reaches the half-way limit and is
reported as not settled: run longer, or treat the remaining drift as part of the system.

:func:`sim.experiments.warmup.warmup_diagnostic` applies it to a scenario: replications run with no warm-up over
a long horizon, the quarterly measures the contracts price per substance group, the truncation point of each,
and the warm-up the scenario needs (the largest). ``pbrsim warmup SCENARIO`` prints and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BATCH = 5
# what the contracts price, per substance group, quarter by quarter
MEASURES = ("in_treatment", "planned_exits", "re_presentations", "treatment_starts")


@dataclass(frozen=True)
class Truncation:
    """Where MSER-5 cuts one series: ``observations`` dropped from the start (a multiple of the batch), and
    whether the minimum fell inside the first half of the series (``settled``)."""

    observations: int
    batches: int
    settled: bool


def mser(series, batch: int = BATCH) -> Truncation:
    """MSER-``batch`` truncation point of one series (e.g. the mean over replications of a quarterly count).

    >>> start_up = [12.0, 9.0, 7.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.2]
    >>> mser(start_up + [1.0, 0.8, 1.2, 0.9, 1.1] * 8).observations
    10
    """
    y = np.asarray(series, dtype=float)
    n_batches = len(y) // batch
    if n_batches < 4:
        raise ValueError(f"MSER-{batch} needs at least {4 * batch} observations, got {len(y)}")
    z = y[:n_batches * batch].reshape(n_batches, batch).mean(axis=1)
    # the statistic for every truncation d = 0 .. n - 1, from suffix sums
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z ** 2)[::-1])[::-1]
    m = n_batches - np.arange(n_batches)
    stat = (s2 - s1 ** 2 / m) / m ** 2
    half = n_batches // 2
    d = int(np.argmin(stat[:half + 1]))
    return Truncation(observations=d * batch, batches=d, settled=d < half)


def quarterly_measures(history, by: str = "group") -> pd.DataFrame:
    """The quarterly measures the contracts price, one column per (measure, category), indexed by quarter
    from the start of the run."""
    from sim.analysis.measures import by_period

    t = by_period(history, "quarter", by=by)
    t = t[t["category"] != "unassessed"].copy()
    t["q"] = t.groupby("category").cumcount()
    return t.pivot(index="q", columns="category", values=list(MEASURES))
