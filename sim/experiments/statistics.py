"""The one way pbrsim summarises replications: the mean and its Student-t confidence interval.

:func:`mean_ci` summarises one sample; :func:`t_half_width` is the vectorised half-width for a table of groups
(``sim.experiments.core.summarise``). Conventions, the same everywhere:

* only finite values count (NaN and infinities are dropped); ``n`` is how many are left;
* the half-width is ``t(0.5 + confidence / 2, n - 1) * s / sqrt(n)``, with ``s`` the sample standard deviation
  (``ddof=1``) and ``t`` the quantile of :data:`scipy.stats.t`;
* with ``n < 2`` there is no interval: the half-width and both bounds are NaN (never a zero-width interval);
  with ``n == 0`` the mean is NaN too;
* ``small_sample`` is True when ``n < SMALL_SAMPLE`` (5): the interval exists but rests on very few
  replications (the t quantile is large and the standard deviation itself is poorly estimated); reports show it
  as a ``small_sample`` column or a warning;
* ``lower``: for a quantity that cannot be below a bound (counts, deaths, rates: ``lower=0.0``), the caller may
  say so and the lower bound is clipped at it (the t-interval is symmetric and at n = 2 can go negative). Without
  ``lower`` nothing is clipped: margins and differences can be negative.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

SMALL_SAMPLE = 5       # below this many replications an interval is flagged small_sample
CONFIDENCE = 0.95


class MeanCI(NamedTuple):
    mean: float
    half_width: float   # the symmetric t half-width (NaN with n < 2), before any clipping at ``lower``
    ci_low: float
    ci_high: float
    n: int
    small_sample: bool


def t_quantile(n, confidence: float = CONFIDENCE):
    """The two-sided ``confidence`` quantile of Student's t with ``n - 1`` degrees of freedom (NaN for n < 2);
    ``n`` a number or an array."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        q = np.where(n >= 2, stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
    return float(q) if q.ndim == 0 else q


def t_half_width(sd, n, confidence: float = CONFIDENCE):
    """``t(n - 1) * sd / sqrt(n)``, elementwise (NaN where n < 2)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = t_quantile(n, confidence) * np.asarray(sd, dtype=float) / np.sqrt(n)
    return float(half) if np.ndim(half) == 0 else half


def mean_ci(values, confidence: float = CONFIDENCE, lower: float | None = None) -> MeanCI:
    """Mean and ``confidence`` t-interval of the finite ``values`` (see the module's conventions)."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, math.nan, 0, True)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, math.nan, n, True)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    low, high = mean - half, mean + half
    if lower is not None:
        low = max(low, float(lower))
    return MeanCI(mean, half, low, high, n, n < SMALL_SAMPLE)


def small_sample(n) -> np.ndarray | bool:
    """True where ``n`` (a count or an array of counts) is below :data:`SMALL_SAMPLE`."""
    out = np.asarray(n) < SMALL_SAMPLE
    return bool(out) if out.ndim == 0 else out
