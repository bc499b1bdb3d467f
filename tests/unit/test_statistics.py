"""sim.experiments.statistics and sim.experiments.seeds: hand-computed intervals, the small-sample guard, the
non-negative option, and one replication-seed rule across commands (the web app's replication r is pbrsim
compare's and pbrsim replicate's replication r)."""

import math

import numpy as np
import pytest

from sim.experiments.seeds import replication_seed, replication_seeds
from sim.experiments.statistics import SMALL_SAMPLE, mean_ci, t_half_width, t_quantile


def test_mean_ci_by_hand():
    s = mean_ci([1, 2, 3, 4])
    # s = sqrt(5/3) = 1.290994; t(0.975, 3) = 3.182446; half = 3.182446 * 1.290994 / 2
    assert s.mean == 2.5 and s.n == 4
    assert s.half_width == pytest.approx(3.182446305284263 * 1.2909944487358056 / 2, rel=1e-12)
    assert s.half_width == pytest.approx(2.054260, abs=1e-6)
    assert (s.ci_low, s.ci_high) == pytest.approx((2.5 - 2.054260, 2.5 + 2.054260), abs=1e-6)
    assert s.small_sample  # 4 < 5


def test_mean_ci_two_values_and_confidence():
    s = mean_ci([0.0, 2.0], confidence=0.90)
    # s = sqrt(2); t(0.95, 1) = 6.313752; half = 6.313752 * sqrt(2) / sqrt(2)
    assert s.mean == 1.0 and s.half_width == pytest.approx(6.313751514675043, rel=1e-12)


def test_fewer_than_two_values_give_no_interval():
    one = mean_ci([3.0, math.nan, math.inf])
    assert one.mean == 3.0 and one.n == 1 and one.small_sample
    assert math.isnan(one.half_width) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    none = mean_ci([])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.ci_low)


def test_small_sample_flag_threshold():
    assert SMALL_SAMPLE == 5
    assert mean_ci(range(SMALL_SAMPLE - 1)).small_sample
    assert not mean_ci(range(SMALL_SAMPLE)).small_sample


def test_lower_bound_only_when_asked():
    deaths = [0.0, 12.0]  # mean 6, half = 12.706205 * 8.485281 / 1.414214 = 76.2: the t-interval goes negative
    plain = mean_ci(deaths)
    assert plain.ci_low < 0
    clipped = mean_ci(deaths, lower=0.0)
    assert clipped.ci_low == 0.0 and clipped.ci_high == plain.ci_high and clipped.half_width == plain.half_width
    assert mean_ci([-3.0, -1.0]).ci_low < -3  # a margin may be negative: nothing clipped without lower


def test_vectorised_half_width_matches():
    assert t_quantile(4) == pytest.approx(3.182446305284263, rel=1e-12)
    half = t_half_width(np.array([1.2909944487358056, 1.0]), np.array([4, 1]))
    assert half[0] == pytest.approx(mean_ci([1, 2, 3, 4]).half_width, rel=1e-12) and math.isnan(half[1])


def test_replication_seed_is_the_spawned_child():
    children = np.random.SeedSequence(2024).spawn(4)
    for r, child in enumerate(children):
        assert (replication_seed(2024, r).generate_state(8) == child.generate_state(8)).all()
    assert [s.spawn_key for s in replication_seeds(7, 2, first=3)] == [(3,), (4,)]
    with pytest.raises(ValueError):
        replication_seed(1, -1)


def test_runspec_calibrate_audit_use_the_rule():
    from sim.experiments.audit import replication_seed as audit_seed
    from sim.experiments.calibrate import seed_sequences
    from sim.experiments.core import RunSpec

    spec = RunSpec(0, 3, {}, None, 99)
    want = replication_seed(99, 3).generate_state(4)
    assert (spec.seed_sequence().generate_state(4) == want).all()
    assert (audit_seed(99, 3).generate_state(4) == want).all()
    assert (seed_sequences(99, 1, first=3)[0].generate_state(4) == want).all()


def test_web_app_replications_are_pbrsim_compares(west_kent):
    """Parallel equals sequential, across commands: the web app's replication r has the History fingerprint of
    pbrsim compare's replication r, and of pbrsim replicate's, for the same root seed."""
    from sim.config.contract import load_contract
    from sim.engine.system import simulate
    from sim.experiments.compare import compare, fingerprint
    from sim.experiments.core import RunSpec
    from sim.webapp import runs as R

    scenario = west_kent.with_changes({"horizon.years": 1, "horizon.warmup_years": 2, "behaviour.mode": "off"})
    contract = load_contract("scenarios/contracts/block.toml")
    seeds = tuple((5, r) for r in range(2))  # what Design.seeds gives for root seed 5, two replications
    app = [fingerprint(h) for h in R.simulate_replications(scenario.raw(), seeds)]
    cmp = compare(scenario, [contract], replications=2, seed=5)
    assert list(cmp.fingerprints.sort_values("replication")["history"]) == app
    rep = [fingerprint(simulate(scenario, RunSpec(0, r, scenario.raw(), None, 5).seed_sequence())) for r in range(2)]
    assert rep == app
    assert app[0] != app[1]
