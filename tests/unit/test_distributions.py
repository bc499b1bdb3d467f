"""Unit tests for sim.core.distributions: quantiles, means, validation, overrides, scalars and shares.

Answers come from scipy.stats or by hand; no simulation is run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats

from sim.core.distributions import Dist, Growth, Probability, Rate, Ratio, Shares, shares_of
from sim.core.vocabulary import BANDS, GROUPS

PROBS = [0.01, 0.25, 0.5, 0.9, 0.999]

# (scenario-style parameters, the equivalent frozen scipy distribution)
FAMILIES = {
    "exponential": ({"dist": "exponential", "mean": 4.0}, stats.expon(scale=4.0)),
    "lognormal": ({"dist": "lognormal", "median": 38.0, "sigma": 0.22}, stats.lognorm(s=0.22, scale=38.0)),
    "lognormal_wide": ({"dist": "lognormal", "median": 460.0, "sigma": 1.1}, stats.lognorm(s=1.1, scale=460.0)),
    "gamma": ({"dist": "gamma", "mean": 130.0, "shape": 0.5}, stats.gamma(a=0.5, scale=130.0 / 0.5)),
    "gamma_peaked": ({"dist": "gamma", "mean": 10.0, "shape": 7.5}, stats.gamma(a=7.5, scale=10.0 / 7.5)),
    "weibull": ({"dist": "weibull", "scale": 3.5, "shape": 0.8}, stats.weibull_min(c=0.8, scale=3.5)),
    "weibull_rising": ({"dist": "weibull", "scale": 23.5, "shape": 2.5}, stats.weibull_min(c=2.5, scale=23.5)),
    "triangular": ({"dist": "triangular", "low": 5.0, "mode": 7.0, "high": 14.0},
                   stats.triang(c=(7.0 - 5.0) / (14.0 - 5.0), loc=5.0, scale=9.0)),
    "triangular_left": ({"dist": "triangular", "low": 2.0, "mode": 2.0, "high": 6.0},
                        stats.triang(c=0.0, loc=2.0, scale=4.0)),
    "triangular_right": ({"dist": "triangular", "low": 0.0, "mode": 3.0, "high": 3.0},
                         stats.triang(c=1.0, loc=0.0, scale=3.0)),
    "beta": ({"dist": "beta", "alpha": 2.0, "beta": 5.0}, stats.beta(2.0, 5.0)),
    "beta_u": ({"dist": "beta", "alpha": 0.5, "beta": 0.5}, stats.beta(0.5, 0.5)),
    # weights need not sum to 1; quantiles chosen away from the steps at 0.2 and 0.7
    "categorical": ({"dist": "categorical", "values": [1.5, 3.0, 7.25], "weights": [2.0, 5.0, 3.0]},
                    stats.rv_discrete(values=([1.5, 3.0, 7.25], [0.2, 0.5, 0.3]))),
}


def make(**params) -> Dist:
    return Dist.model_validate(params)


# --- quantiles and means ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("u", PROBS)
def test_ppf_matches_scipy(name, u):
    params, ref = FAMILIES[name]
    d = Dist.model_validate(params)
    got = d.ppf(u)
    assert isinstance(got, float)
    assert got == pytest.approx(float(ref.ppf(u)), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_ppf_is_vectorised(name):
    params, ref = FAMILIES[name]
    got = Dist.model_validate(params).ppf(np.array(PROBS))
    assert isinstance(got, np.ndarray) and got.shape == (len(PROBS),)
    np.testing.assert_allclose(got, ref.ppf(PROBS), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_expected_matches_scipy_mean(name):
    params, ref = FAMILIES[name]
    assert Dist.model_validate(params).expected() == pytest.approx(float(ref.mean()), rel=1e-12)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_scalar_and_array_ppf_agree(name):
    # ppf has a pure-Python path for one float and a numpy path for arrays; they must give the same values
    params, _ = FAMILIES[name]
    for extra in ({}, {"min": 1.0, "max": 6.0}):
        d = Dist.model_validate({**params, **extra})
        u = np.array(PROBS + [1e-9, 0.123456789, 1 - 1e-9])
        scalar = [d.ppf(float(x)) for x in u]
        assert all(isinstance(x, float) for x in scalar)
        np.testing.assert_allclose(scalar, d.ppf(u), rtol=1e-13, atol=0)


def test_fixed_ppf_and_mean():
    d = make(dist="fixed", value=21.0)
    for u in PROBS:
        assert d.ppf(u) == 21.0
    np.testing.assert_array_equal(d.ppf(np.array(PROBS)), np.full(len(PROBS), 21.0))
    assert d.expected() == 21.0


def test_hand_computed_quantiles():
    # exponential: -mean * ln(1 - u); median = mean * ln 2
    assert make(dist="exponential", mean=4).ppf(0.5) == pytest.approx(4 * math.log(2))
    # lognormal: the median is the median; the 0.9 quantile is median * exp(sigma * 1.2815515655446004)
    d = make(dist="lognormal", median=16, sigma=0.3)
    assert d.ppf(0.5) == pytest.approx(16.0)
    assert d.ppf(0.9) == pytest.approx(16 * math.exp(0.3 * 1.2815515655446004))
    # weibull: scale * (-ln(1-u))^(1/shape); at u = 1 - 1/e it is the scale
    assert make(dist="weibull", scale=3.5, shape=0.8).ppf(1 - math.exp(-1)) == pytest.approx(3.5)
    # triangular 5-7-14: F(mode) = 2/9, so ppf(2/9) = 7; ppf(0.5) = 14 - sqrt(0.5 * 9 * 7)
    t = make(dist="triangular", low=5, mode=7, high=14)
    assert t.ppf(2 / 9) == pytest.approx(7.0)
    assert t.ppf(0.5) == pytest.approx(14 - math.sqrt(0.5 * 9 * 7))
    # gamma with shape 1 is exponential
    assert make(dist="gamma", mean=6, shape=1).ppf(0.25) == pytest.approx(-6 * math.log(0.75))
    # beta(1, 1) is uniform
    assert make(dist="beta", alpha=1, beta=1).ppf(0.3) == pytest.approx(0.3)
    # categorical: cumulative weights 0.2, 0.7, 1.0
    c = make(dist="categorical", values=[1.5, 3.0, 7.25], weights=[2, 5, 3])
    assert [c.ppf(u) for u in (0.05, 0.19, 0.21, 0.69, 0.71, 0.999)] == [1.5, 1.5, 3.0, 3.0, 7.25, 7.25]
    # a zero-weight value is never drawn
    z = make(dist="categorical", values=[1, 2, 3], weights=[1, 0, 1])
    assert {z.ppf(u) for u in np.linspace(0.001, 0.999, 999)} == {1.0, 3.0}


def test_lognormal_mean_by_hand():
    assert make(dist="lognormal", median=10, sigma=0.5).expected() == pytest.approx(10 * math.exp(0.125))
    assert make(dist="triangular", low=5, mode=7, high=14).expected() == pytest.approx(26 / 3)
    assert make(dist="weibull", scale=2, shape=1).expected() == pytest.approx(2.0)


def test_min_max_clamp_draws():
    d = make(dist="lognormal", median=16, sigma=0.35, min=12, max=28)
    ref = stats.lognorm(s=0.35, scale=16)
    assert ref.ppf(0.01) < 12 and ref.ppf(0.999) > 28  # the clamp bites at both ends
    assert d.ppf(0.01) == 12.0
    assert d.ppf(0.999) == 28.0
    assert d.ppf(0.5) == pytest.approx(16.0)  # the middle is untouched
    u = np.linspace(0.0005, 0.9995, 2000)
    x = d.ppf(u)
    assert x.min() == 12.0 and x.max() == 28.0
    np.testing.assert_allclose(x, np.clip(ref.ppf(u), 12, 28), rtol=1e-9)


def test_min_only_and_max_only():
    lo = make(dist="exponential", mean=4, min=1)
    assert lo.ppf(0.01) == 1.0
    assert lo.ppf(0.999) == pytest.approx(-4 * math.log(0.001))
    hi = make(dist="exponential", mean=4, max=5)
    assert hi.ppf(0.01) == pytest.approx(-4 * math.log(0.99))
    assert hi.ppf(0.999) == 5.0


def test_expected_ignores_the_clamp():
    # documented: the mean of the unclamped distribution
    assert make(dist="exponential", mean=4, max=1).expected() == 4.0


# --- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, fragment", [
    ({"dist": "lognormal", "median": 10}, "missing sigma"),
    ({"dist": "gamma", "shape": 2}, "missing mean"),
    ({"dist": "triangular", "low": 1, "high": 3}, "missing mode"),
    ({"dist": "categorical", "values": [1, 2]}, "missing weights"),
    ({"dist": "fixed"}, "missing value"),
    ({"dist": "exponential", "mean": 4, "median": 3}, "median is not a parameter of a exponential"),
    ({"dist": "lognormal", "median": 10, "sigma": 0.5, "shape": 2}, "shape is not a parameter of a lognormal"),
    ({"dist": "fixed", "value": 3, "mean": 3}, "mean is not a parameter of a fixed"),
    ({"dist": "exponential", "mean": -4}, "mean must be > 0"),
    ({"dist": "exponential", "mean": 0}, "mean must be > 0"),
    ({"dist": "gamma", "mean": 10, "shape": -1}, "shape must be > 0"),
    ({"dist": "weibull", "scale": 0, "shape": 1}, "scale must be > 0"),
    ({"dist": "lognormal", "median": -1, "sigma": 0.5}, "median must be > 0"),
    ({"dist": "lognormal", "median": 10, "sigma": -0.5}, "sigma must be >= 0"),
    ({"dist": "beta", "alpha": 0, "beta": 1}, "alpha must be > 0"),
    ({"dist": "triangular", "low": 5, "mode": 15, "high": 14}, "triangular needs"),
    ({"dist": "triangular", "low": 5, "mode": 4, "high": 14}, "triangular needs"),
    ({"dist": "triangular", "low": 5, "mode": 5, "high": 5}, "triangular needs"),
    ({"dist": "triangular", "low": -1, "mode": 0, "high": 1}, "triangular needs"),
    ({"dist": "categorical", "values": [1, 2], "weights": [1]}, "as many weights as values"),
    ({"dist": "categorical", "values": [1, 2], "weights": [0, 0]}, "some weight > 0"),
    ({"dist": "categorical", "values": [1, -2], "weights": [1, 1]}, "must be >= 0"),
    ({"dist": "exponential", "mean": 4, "min": 10, "max": 5}, "min (10.0) is greater than max (5.0)"),
    ({"dist": "exponential", "mean": 4, "min": -1}, "min must be >= 0"),
    ({"dist": "fixed", "value": -1}, "value must be >= 0"),
])
def test_impossible_parameters_are_rejected(params, fragment):
    with pytest.raises(ValidationError) as e:
        Dist.model_validate(params)
    assert fragment in str(e.value)


def test_negative_bare_number_is_rejected():
    with pytest.raises(ValidationError, match="value must be >= 0"):
        Dist.model_validate(-3)


def test_unknown_family_and_unknown_key_are_rejected():
    with pytest.raises(ValidationError, match="dist"):
        Dist.model_validate({"dist": "normal", "mean": 1})
    with pytest.raises(ValidationError, match="medain"):
        Dist.model_validate({"dist": "lognormal", "median": 1, "sigma": 1, "medain": 2})


def test_invalid_override_is_rejected():
    with pytest.raises(ValidationError, match="mean must be > 0"):
        Dist.model_validate({"dist": "exponential", "mean": 4, "by_group": {"opiate": {"mean": -1}}})
    with pytest.raises(ValidationError, match="opiat"):
        Dist.model_validate({"dist": "exponential", "mean": 4, "by_group": {"opiat": {"mean": 1}}})
    with pytest.raises(ValidationError, match="severe"):
        Dist.model_validate({"dist": "exponential", "mean": 4, "by_band": {"severe": {"mean": 1}}})


def test_edge_parameters_are_accepted():
    assert make(dist="lognormal", median=5, sigma=0).ppf(0.9) == pytest.approx(5.0)
    assert make(dist="fixed", value=0).ppf(0.3) == 0.0
    assert make(dist="exponential", mean=4, min=2, max=2).ppf(0.9) == 2.0


# --- overrides ----------------------------------------------------------------------------------------------

LAYERED = {
    "dist": "lognormal", "median": 10, "sigma": 0.5, "max": 100,
    "by_band": {"critical": {"median": 20}, "low": {"dist": "exponential", "mean": 3}},
    "by_group": {
        "opiate": {"median": 30, "by_band": {"critical": {"median": 40}, "moderate": {"sigma": 0.9}}},
        "alcohol": {"sigma": 0.1},
    },
}


def _expected_median_or_mean(group: str, band: str | None) -> tuple[str, float]:
    if group == "opiate":
        return "median", {"critical": 40.0}.get(band, 30.0)
    if group == "alcohol":
        return "median", 10.0
    if band == "critical":
        return "median", 20.0
    if band == "low":
        return "mean", 3.0
    return "median", 10.0


def test_override_precedence_through_resolve():
    d = Dist.model_validate(LAYERED)
    assert d.resolve("opiate", "critical").median == 40   # by_group.G.by_band.B
    assert d.resolve("opiate", "substantial").median == 30  # by_group.G
    assert d.resolve("opiate", "low").median == 30          # by_group.G beats by_band.B
    assert d.resolve("opiate", "low").dist == "lognormal"
    assert d.resolve("opiate", None).median == 30           # before assessment: group only
    assert d.resolve("non_opiate", "critical").median == 20  # by_band.B
    assert d.resolve("non_opiate", None) is d                # base
    assert d.resolve("non_opiate", "moderate") is d          # base
    assert d.resolve("alcohol", "critical").sigma == 0.1    # group override wins over band override
    assert d.resolve("alcohol", "critical").median == 10
    low = d.resolve("non_opiate_alcohol", "low")
    assert (low.dist, low.mean, low.median, low.sigma) == ("exponential", 3.0, None, None)


def test_override_inheritance():
    d = Dist.model_validate(LAYERED)
    crit = d.resolve("opiate", "critical")
    # by_group.opiate.by_band.critical inherits dist, sigma and max through by_group.opiate from the base
    assert (crit.dist, crit.median, crit.sigma, crit.max) == ("lognormal", 40.0, 0.5, 100.0)
    mod = d.resolve("opiate", "moderate")
    assert (mod.median, mod.sigma) == (30.0, 0.9)  # median from by_group.opiate, sigma its own
    # an override naming a new family is given in full: it inherits nothing (not even the clamp)
    low = d.resolve("non_opiate", "low")
    assert low.max is None
    assert low.ppf(0.999) == pytest.approx(-3 * math.log(0.001))


def test_override_table_and_at():
    d = Dist.model_validate(LAYERED)
    table = d.table()
    assert len(table) == len(GROUPS) and all(len(row) == len(BANDS) for row in table)
    for g, group in enumerate(GROUPS):
        for b, band in enumerate(BANDS):
            entry = d.at(g, b)
            assert entry is table[g][b]
            assert entry == d.resolve(group, band)
            key, value = _expected_median_or_mean(group, band)
            assert getattr(entry, key) == value, (group, band)
    assert d.table() is table  # cached


def test_partial_group_override_inherits_dist_and_sigma():
    d = Dist.model_validate({"dist": "lognormal", "median": 56, "sigma": 0.4, "by_group": {"opiate": {"median": 68}}})
    o = d.resolve("opiate")
    assert (o.dist, o.median, o.sigma) == ("lognormal", 68.0, 0.4)
    assert o.ppf(0.9) == pytest.approx(stats.lognorm(s=0.4, scale=68).ppf(0.9))
    assert d.resolve("alcohol").median == 56
    # the base is unchanged by its override
    assert d.median == 56


def test_bare_number_is_fixed():
    d = Dist.model_validate(7)
    assert (d.dist, d.value) == ("fixed", 7.0)
    assert d.ppf(0.123) == 7.0
    # also as an override, where it replaces the family
    e = Dist.model_validate({"dist": "exponential", "mean": 4, "by_group": {"opiate": 9}, "by_band": {"low": 2.5}})
    assert (e.resolve("opiate").dist, e.resolve("opiate").value, e.resolve("opiate").mean) == ("fixed", 9.0, None)
    assert e.resolve("opiate", "low").value == 9.0
    assert e.resolve("alcohol", "low").value == 2.5
    assert e.resolve("alcohol", "moderate").mean == 4.0


def test_entries_lists_every_override_with_its_path():
    d = Dist.model_validate(LAYERED)
    paths = {path for path, _ in d.entries()}
    assert paths == {
        (), ("by_band", "critical"), ("by_band", "low"), ("by_group", "opiate"), ("by_group", "alcohol"),
        ("by_group", "opiate", "by_band", "critical"), ("by_group", "opiate", "by_band", "moderate"),
    }


def test_equality_does_not_depend_on_the_lookup_cache():
    a = make(dist="exponential", mean=4)
    b = make(dist="exponential", mean=4)
    assert a == b
    a.table()
    assert a == b


def test_dist_is_frozen():
    d = make(dist="exponential", mean=4)
    with pytest.raises(ValidationError):
        d.mean = 5


# --- scalars ------------------------------------------------------------------------------------------------


def test_scalar_shorthand_and_overrides():
    p = Probability.model_validate({"value": 0.72, "by_group": {"alcohol": 0.64},
                                    "by_band": {"critical": {"value": 0.9}}})
    assert p.resolve("opiate").value == 0.72
    assert p.resolve("alcohol").value == 0.64
    assert p.resolve("alcohol", "critical").value == 0.64
    assert p.resolve("opiate", "critical").value == 0.9
    assert p.at(GROUPS.index("opiate"), BANDS.index("critical")).value == 0.9
    assert Probability.model_validate(0.3).value == 0.3
    # an override with only a by_band table inherits the value of the entry it refines
    q = Probability.model_validate({"value": 0.2, "by_group": {"opiate": {"by_band": {"low": 0.7}}}})
    assert q.resolve("opiate", "moderate").value == 0.2
    assert q.resolve("opiate", "low").value == 0.7


@pytest.mark.parametrize("cls, good, bad", [
    (Probability, [0.0, 0.5, 1.0], [1.2, -0.01, float("nan")]),
    (Rate, [0.0, 0.1, 250.0], [-0.1, float("nan")]),
    (Ratio, [0.0, 0.53, 2.0], [-0.5]),
    (Growth, [-0.99, -0.05, 0.0, 0.3], [-1.0, -5.0]),
])
def test_scalar_bounds(cls, good, bad):
    for v in good:
        assert cls.model_validate(v).value == v
    for v in bad:
        with pytest.raises(ValidationError, match=f"a {cls.what} must be|finite number"):
            cls.model_validate(v)


@pytest.mark.parametrize("cls, bad", [(Probability, 1.2), (Rate, -0.1), (Ratio, -1.0), (Growth, -1.5)])
def test_scalar_bounds_inside_overrides(cls, bad):
    with pytest.raises(ValidationError, match=f"got {bad}"):
        cls.model_validate({"value": 0.5, "by_group": {"opiate": bad}})
    with pytest.raises(ValidationError, match=f"got {bad}"):
        cls.model_validate({"value": 0.5, "by_band": {"low": {"value": bad}}})
    with pytest.raises(ValidationError, match=f"got {bad}"):
        cls.model_validate({"value": 0.5, "by_group": {"opiate": {"by_band": {"low": bad}}}})


def test_probability_message_names_the_range():
    with pytest.raises(ValidationError) as e:
        Probability.model_validate(1.2)
    assert "a probability must be in [0, 1], got 1.2" in str(e.value)


# --- shares -------------------------------------------------------------------------------------------------

ABCD = shares_of("a", "b", "c", "d", name="ABCD")


def test_shares_of_makes_a_shares_type():
    assert issubclass(ABCD, Shares)
    assert ABCD.categories == ("a", "b", "c", "d")
    s = ABCD.model_validate({"a": 0.25, "c": 0.75})  # a bare table is the `p` table
    assert s.p == {"a": 0.25, "c": 0.75}
    np.testing.assert_array_equal(s.probabilities(), [0.25, 0.0, 0.75, 0.0])
    assert ABCD.model_validate({"p": {"d": 1.0}}).probabilities().tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("p, fragment", [
    ({"a": 0.5, "b": 0.4}, "shares must sum to 1, got 0.9"),
    ({"a": 0.5, "b": 0.6}, "shares must sum to 1, got 1.1"),
    ({"a": 0.5, "e": 0.5}, "unknown category 'e'"),
    ({"a": 1.2, "b": -0.2}, "each share must be in [0, 1]"),
    ({}, "shares must sum to 1, got 0"),
])
def test_invalid_shares_are_rejected(p, fragment):
    with pytest.raises(ValidationError) as e:
        ABCD.model_validate(p)
    assert fragment in str(e.value)


def test_invalid_shares_in_an_override_are_rejected():
    with pytest.raises(ValidationError, match="sum to 1"):
        ABCD.model_validate({"p": {"a": 1.0}, "by_group": {"opiate": {"a": 0.5}}})
    with pytest.raises(ValidationError, match="sum to 1"):
        ABCD.model_validate({"p": {"a": 1.0}, "by_band": {"low": {"p": {"b": 0.9}}}})


def test_shares_overrides_replace_the_whole_table():
    s = ABCD.model_validate({"p": {"a": 0.5, "b": 0.5}, "by_group": {"opiate": {"c": 1.0}},
                             "by_band": {"low": {"p": {"d": 1.0}}}})
    assert s.resolve("opiate").p == {"c": 1.0}
    assert s.resolve("opiate", "low").p == {"c": 1.0}
    assert s.resolve("alcohol", "low").p == {"d": 1.0}
    assert s.resolve("alcohol", "critical").p == {"a": 0.5, "b": 0.5}


def _grid(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def test_pick_frequencies_match_the_shares():
    s = ABCD.model_validate({"a": 0.1, "b": 0.0, "c": 0.65, "d": 0.25})
    n = 100_000
    counts = np.bincount([s.pick(u) for u in _grid(n)], minlength=4)
    # a deterministic grid of uniforms hits each share to within one grid step
    np.testing.assert_allclose(counts / n, [0.1, 0.0, 0.65, 0.25], atol=1.5 / n)
    assert counts[1] == 0


def test_pick_never_chooses_zero_share_categories():
    for p in ({"b": 0.3, "c": 0.7}, {"a": 0.5, "d": 0.5}, {"c": 1.0}, {"a": 0.6, "b": 0.3, "c": 0.1}):
        s = ABCD.model_validate(p)
        picked = {ABCD.categories[s.pick(u)] for u in _grid(5000)}
        assert picked == set(p), p
        # exact boundaries: u on a cumulative share goes to the next category with a positive share
        assert ABCD.categories[s.pick(0.0)] == next(c for c in ABCD.categories if p.get(c, 0) > 0)


def test_pick_boundaries_by_hand():
    s = ABCD.model_validate({"a": 0.25, "b": 0.25, "c": 0.0, "d": 0.5})
    assert [s.pick(u) for u in (0.0, 0.2499, 0.25, 0.4999, 0.5, 0.9999)] == [0, 0, 1, 1, 3, 3]


def test_pick_near_one_never_chooses_a_trailing_zero_share():
    exact = ABCD.model_validate({"a": 0.7, "b": 0.2, "c": 0.1})   # d has share 0
    within_tolerance = ABCD.model_validate({"a": 0.5, "b": 0.4999996})  # c, d have share 0
    u_top = float(np.nextafter(1.0, 0.0))
    assert exact.pick(u_top) == 2
    assert within_tolerance.pick(0.9999999) == 1


# --- property tests -----------------------------------------------------------------------------------------

pos = st.floats(min_value=0.05, max_value=500.0, allow_nan=False, allow_infinity=False)
shape = st.floats(min_value=0.1, max_value=50.0, allow_nan=False, allow_infinity=False)
sigma = st.floats(min_value=0.0, max_value=3.0, allow_nan=False, allow_infinity=False)


@st.composite
def triangulars(draw):
    low = draw(st.floats(min_value=0.0, max_value=100.0))
    width = draw(st.floats(min_value=1e-3, max_value=100.0))
    frac = draw(st.floats(min_value=0.0, max_value=1.0))
    high = low + width
    mode = min(max(low + frac * width, low), high)
    return {"dist": "triangular", "low": low, "mode": mode, "high": high}


continuous = st.one_of(
    st.builds(lambda m: {"dist": "exponential", "mean": m}, pos),
    st.builds(lambda m, s: {"dist": "lognormal", "median": m, "sigma": s}, pos, sigma),
    st.builds(lambda m, k: {"dist": "gamma", "mean": m, "shape": k}, pos, shape),
    st.builds(lambda s, k: {"dist": "weibull", "scale": s, "shape": k}, pos, shape),
    triangulars(),
    st.builds(lambda a, b: {"dist": "beta", "alpha": a, "beta": b}, shape, shape),
)


def _non_decreasing(x: np.ndarray) -> bool:
    """Non-decreasing up to rounding: scipy's iterative inverses (gammaincinv) wobble by an ulp at tiny
    quantiles (gamma shape 0.18: 2.93095015e-50 then 1 ulp less), and the triangular upper branch
    ``high - sqrt(...)`` cancels when the mode is near ``low`` (errors ~1e-17). Allow 1e-12 relative or absolute,
    far below anything that matters in days or weeks."""
    return bool(np.all(np.diff(x) >= -1e-12 * np.maximum(1.0, np.abs(x[:-1]))))


uniforms = st.lists(st.floats(min_value=1e-9, max_value=1 - 1e-9), min_size=2, max_size=30)


@settings(max_examples=300, deadline=None)
@given(params=continuous, us=uniforms)
def test_ppf_is_non_decreasing(params, us):
    d = Dist.model_validate(params)
    u = np.sort(np.array(us))
    x = d.ppf(u)
    assert np.all(np.isfinite(x))
    assert np.all(x >= 0)
    assert _non_decreasing(x), (params, u, x)


@settings(max_examples=200, deadline=None)
@given(params=continuous, us=uniforms, lo=st.floats(0, 50), width=st.floats(0, 50))
def test_clamped_ppf_stays_in_bounds_and_non_decreasing(params, us, lo, width):
    d = Dist.model_validate({**params, "min": lo, "max": lo + width})
    x = d.ppf(np.sort(np.array(us)))
    assert np.all(x >= lo) and np.all(x <= lo + width)
    assert _non_decreasing(x)


@settings(max_examples=300, deadline=None)
@given(weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=4, max_size=4).filter(any),
       us=st.lists(st.floats(min_value=0.0, max_value=1 - 1e-9), min_size=1, max_size=50))
def test_shares_summing_to_one_validate_and_pick_a_positive_share(weights, us):
    total = sum(weights)
    p = {c: w / total for c, w in zip(ABCD.categories, weights)}
    s = ABCD.model_validate(p)
    np.testing.assert_allclose(s.probabilities(), np.array(weights) / total)
    for u in us:
        i = s.pick(u)
        assert 0 <= i < len(ABCD.categories)
        assert p[ABCD.categories[i]] > 0, (p, u, i)


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=4)
       .filter(lambda w: sum(w) > 0.01))
def test_normalised_float_shares_validate(weights):
    total = sum(weights)
    p = {c: w / total for c, w in zip(ABCD.categories, weights)}
    s = ABCD.model_validate(p)
    assert s.probabilities().sum() == pytest.approx(1.0)
