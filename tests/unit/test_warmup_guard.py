"""A warm-up shorter than the scenario says its system needs (issue 18): runs warn, prices from the year before the
contract are refused, tender volumes are not."""

from __future__ import annotations

import warnings

import pytest

from sim import simulate
from sim.cli import main
from sim.config.base import ConfigError
from sim.config.contract import load_contract
from sim.core.errors import UnsettledWarmupWarning
from sim.money.settlement import check
from tests.builders import small_scenario, west_kent
from tests.conftest import SCENARIOS

PBR = SCENARIOS / "contracts" / "west_kent_pbr.toml"


def test_west_kent_says_how_long_its_system_takes_to_settle():
    horizon = west_kent().horizon
    assert horizon.settled_after_years == 20 and horizon.warmup_years >= horizon.settled_after_years
    assert horizon.unsettled("west_kent") is None


def test_a_short_warm_up_warns_naming_both_values():
    short = small_scenario(years=1, warmup_years=2)
    with pytest.warns(UnsettledWarmupWarning, match=r"warmup_years = 2 is shorter than the 20 years"):
        simulate(short, seed=1)
    settled = short.with_changes({"horizon.settled_after_years": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsettledWarmupWarning)
        simulate(settled, seed=1)  # no warning


def test_prices_from_the_year_before_are_refused_in_an_unsettled_warm_up_and_tender_volumes_are_not():
    short = small_scenario(years=1, warmup_years=2)
    tender = load_contract(PBR)
    check(tender, short)  # the shipped design is priced on tender volumes: allowed (the run warns)
    baseline = tender.with_changes({"outcomes.planned_exit.expected_volume": "baseline"})
    with pytest.raises(ConfigError, match=r"outcomes\.planned_exit\.expected_volume.*prices or baselines from the year before"):
        check(baseline, short)
    check(baseline, west_kent())  # settled: allowed
    escalator = load_contract(SCENARIOS / "contracts" / "cohort_escalator.toml")
    escalator = escalator.with_changes({"outcomes.abstinence.escalator.baseline_rate": "baseline"})
    with pytest.raises(ConfigError, match=r"outcomes\.abstinence\.escalator\.baseline_rate"):
        check(escalator, short)


def test_an_offending_baseline_from_the_year_before_is_refused_in_an_unsettled_warm_up():
    short = small_scenario(years=1, warmup_years=2)
    tender = load_contract(PBR)
    assert tender.offending.baseline_offences > 0  # the shipped design writes the tender's baseline
    own_year = tender.with_changes({"offending.baseline_offences": None})
    with pytest.raises(ConfigError, match=r"offending\.baseline_offences.*prices or baselines from the year before"):
        check(own_year, short)
    check(own_year, west_kent())  # settled: allowed


def test_the_command_line_prints_the_warning_as_one_line(tmp_path, capsys):
    scenario = tmp_path / "short.toml"
    scenario.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "short"\n'
                        '[horizon]\nwarmup_years = 1\nyears = 1\n')
    with warnings.catch_warnings():
        warnings.simplefilter("always", UnsettledWarmupWarning)  # the suite ignores it (pyproject.toml)
        assert main(["run", str(scenario), "--contract", "none", "--no-plots", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: scenario short: horizon.warmup_years = 1 is shorter than the 20 years" in err
    assert "UnsettledWarmupWarning" not in err


@pytest.mark.parametrize("workers", [1, 2])
def test_an_experiment_warns_once_however_many_runs_and_workers(workers, capfd):
    from sim.experiments.core import RunSpec, run_specs
    from sim.experiments.executors import ProcessExecutor, SerialExecutor

    short = small_scenario(years=1, warmup_years=2)
    settled = short.with_changes({"horizon.settled_after_years": 2})
    specs = [RunSpec(point, r, sc.raw(), None, 7) for point, sc in enumerate([short, short, settled])
             for r in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnsettledWarmupWarning)
        with (ProcessExecutor(workers) if workers > 1 else SerialExecutor()) as executor:
            run_specs(specs, executor)
    unsettled = [w for w in caught if issubclass(w.category, UnsettledWarmupWarning)]
    assert len(unsettled) == 1, [str(w.message) for w in unsettled]
    assert str(unsettled[0].message).endswith("(2 of 3 points)")
    assert "is shorter than" not in capfd.readouterr().err  # the workers said nothing of their own
