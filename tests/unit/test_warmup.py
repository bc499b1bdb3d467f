"""The warm-up diagnostic (MSER-5) and distributions with a share for whom the event never comes."""

import numpy as np
import pytest

from sim.analysis.warmup import mser
from sim.core.distributions import Dist


@pytest.mark.parametrize("change", [20, 40, 75])
def test_mser5_finds_a_known_change_point_in_a_noisy_series(change):
    rng = np.random.default_rng(change)
    level = np.where(np.arange(200) < change, 80.0, 100.0)  # a start-up level, then the long-run one
    cut = mser(level + rng.normal(0, 2.0, 200))
    assert cut.settled
    # never short of the change (on a batch boundary here); MSER may cut a batch or two more where noise dips
    assert change <= cut.observations <= change + 10


def test_mser5_cuts_a_decaying_start_up_near_where_it_has_died_out():
    rng = np.random.default_rng(3)
    start_up = 50.0 * np.exp(-np.arange(200) / 8.0)  # below 1, the noise, from about observation 31
    cut = mser(100.0 - start_up + rng.normal(0, 1.0, 200))
    assert cut.settled and 15 <= cut.observations <= 40


def test_mser5_says_a_series_still_drifting_has_not_settled():
    series = np.linspace(0.0, 100.0, 200) + np.random.default_rng(1).normal(0, 0.5, 200)
    assert not mser(series).settled


def test_mser5_needs_enough_observations():
    with pytest.raises(ValueError, match="at least 20"):
        mser([1.0] * 19)


def test_a_never_share_maps_the_highest_uniforms_to_never_and_the_rest_onto_the_whole_distribution():
    plain = Dist.model_validate({"dist": "weibull", "scale": 1.37, "shape": 0.93})
    cured = Dist.model_validate({"dist": "weibull", "scale": 1.37, "shape": 0.93, "never": 0.54})
    u = np.linspace(0.001, 0.999, 999)
    x = cured.ppf(u)
    assert np.isinf(x[u >= 0.46]).all() and np.isfinite(x[u < 0.46]).all()
    assert np.allclose(x[u < 0.46], plain.ppf(u[u < 0.46] / 0.46))
    assert np.all(np.diff(x[np.isfinite(x)]) > 0)  # a client's luck keeps its order
    assert cured.cdf(np.inf) == 1.0 and cured.cdf(1e9) == pytest.approx(0.46)  # the rest never: mass at inf
    assert cured.cdf(1.0) == pytest.approx(0.46 * plain.cdf(1.0))
    assert cured.ppf(0.2) == pytest.approx(plain.ppf(0.2 / 0.46))  # the scalar path agrees
    assert cured.expected() == np.inf


def test_the_planners_quantiles_apply_the_never_share_per_cell():
    from sim.engine.plans import _quantiles

    entries = [Dist.model_validate({"dist": "weibull", "scale": 1.0, "shape": 0.8, "never": n}) for n in (0.0, 0.35, 1.0)]
    f = _quantiles(entries)
    u = np.array([0.3, 0.3, 0.3, 0.7, 0.7, 0.7])
    cell = np.array([0, 1, 2, 0, 1, 2])
    got = f(u, cell)
    want = [entries[0].ppf(0.3), entries[1].ppf(0.3), np.inf, entries[0].ppf(0.7), np.inf, np.inf]
    assert np.allclose(got[np.isfinite(want)], np.array(want)[np.isfinite(want)])
    assert np.array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("never", [-0.1, 1.5])
def test_a_never_share_outside_0_1_is_refused(never):
    with pytest.raises(ValueError, match="never"):
        Dist.model_validate({"dist": "exponential", "mean": 2.0, "never": never})
