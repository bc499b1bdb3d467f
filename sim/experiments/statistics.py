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


# --- uncertainty over draws and replications, ratios, chances ----------------------------------------------------

def uncertainty_interval(values, coverage: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``coverage`` range of the finite ``values`` themselves (percentiles, linear interpolation): where
    one replication's result falls, parameter and stochastic uncertainty together when the replications carry
    parameter draws. Not the interval of the mean (:func:`mean_ci`), which narrows as replications are added; this
    does not. NaN with fewer than two values."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan
    tail = 100 * (1 - coverage) / 2
    low, high = np.percentile(x, [tail, 100 - tail])
    return float(low), float(high)


class Ratio(NamedTuple):
    ratio: float       # mean numerator / mean denominator
    ci_low: float      # bootstrap interval of the ratio of means (NaN with fewer than SMALL_SAMPLE pairs)
    ci_high: float
    n: int


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20140301  # fixed: a table of results is the same every time it is made


def ratio_of_means(numerator, denominator, confidence: float = CONFIDENCE) -> Ratio:
    """Spend per outcome as the ratio of the means (the total spent over the total bought, not the mean of
    per-replication ratios, which a replication with few outcomes would dominate), with a paired percentile
    bootstrap interval (:func:`scipy.stats.bootstrap`, ``BOOTSTRAP_RESAMPLES`` resamples from a fixed seed). Pairs
    with a non-finite value are dropped; the ratio is NaN when the mean denominator is not positive."""
    num, den = np.asarray(numerator, dtype=float).ravel(), np.asarray(denominator, dtype=float).ravel()
    keep = np.isfinite(num) & np.isfinite(den)
    num, den = num[keep], den[keep]
    n = len(num)
    if n == 0 or den.mean() <= 0:
        return Ratio(math.nan, math.nan, math.nan, n)
    ratio = float(num.mean() / den.mean())
    if n < SMALL_SAMPLE or np.all(num == num[0]) and np.all(den == den[0]):
        return Ratio(ratio, math.nan, math.nan, n)

    def statistic(a, b, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mean(a, axis=axis) / np.mean(b, axis=axis)

    result = stats.bootstrap((num, den), statistic, paired=True, vectorized=True, confidence_level=confidence,
                             n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                             rng=np.random.default_rng(BOOTSTRAP_SEED))
    return Ratio(ratio, float(result.confidence_interval.low), float(result.confidence_interval.high), n)


def chance_text(hits: int, n: int) -> str:
    """A chance estimated from ``n`` replications, said with its resolution: "3 of 20", and never "0%" or "100%":
    none of 20 is "under 1 in 20", all of 20 "over 19 in 20"."""
    hits, n = int(hits), int(n)
    if n <= 0:
        return "not estimated (no replications)"
    if hits == 0:
        return f"under 1 in {n}"
    if hits == n:
        return f"over {n - 1} in {n}"
    return f"{hits} of {n}"


def small_sample_warning(n: int, what: str = "replications") -> str | None:
    """A sentence to print beside results that rest on fewer than :data:`SMALL_SAMPLE` ``what``; None otherwise."""
    if n >= SMALL_SAMPLE:
        return None
    return (f"only {n} {what}: the intervals rest on very few values (a t quantile of "
            f"{t_quantile(max(n, 2)):.1f} and a poorly estimated spread) and ratios have no bootstrap interval; "
            f"use {SMALL_SAMPLE * 4} or more for a decision")
