"""pbrsim report-validation: every target against the simulation with its CI, and the queueing checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sim import simulate
from sim.cli import main
from sim.experiments.validation import discover, erlang_c_wait, littles_law, validation_report

from tests.conftest import SCENARIOS


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small scenario (a fraction of West Kent, short horizon) and a target file naming it."""
    d = tmp_path_factory.mktemp("validation")
    (d / "small.toml").write_text(
        f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "small"\n'
        "horizon.warmup_years = 3\nhorizon.years = 3\n"
        "population.arrivals_per_year = { opiate = 40, non_opiate = 20, alcohol = 140, non_opiate_alcohol = 20 }\n")
    (d / "targets.toml").write_text(
        'name = "small_targets"\nscenario = "small.toml"\n'
        '[[target]]\nname = "alcohol completions"\nmeasure = "successful_completions"\ngroups = "alcohol"\n'
        'range = [0.3, 0.45]\ntolerance = 0.03\nsource = "[E] a test figure"\n'
        '[[target]]\nname = "far too many in treatment"\nmeasure = "in_treatment_per_year"\nvalue = 5000\n'
        'relative_tolerance = 0.1\nrole = "validation"\nsource = "[E] another"\n')
    return d


@pytest.fixture(scope="module")
def report(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "validation"
    return validation_report([files / "small.toml"], [files / "targets.toml"], replications=2,
                             queue_replications=2, out=out), out


def test_every_target_is_reported_with_its_ci_and_source(report):
    r, out = report
    fit = r.fit
    assert list(fit["target"]) == ["alcohol completions", "far too many in treatment"]
    assert (fit["ci_low"] <= fit["simulated"]).all() and (fit["simulated"] <= fit["ci_high"]).all()
    assert fit.set_index("target").loc["far too many in treatment", "within"] == False  # noqa: E712
    assert not fit.set_index("target").loc["far too many in treatment", "passes"]
    assert (fit["passes"] == (fit["covers"] & fit["informative"])).all()
    md = (out / "validation.md").read_text()
    page = (out / "validation.html").read_text()
    for text in ("alcohol completions", "far too many in treatment", "[E] a test figure", "Erlang C",
                 "Little's law", "What is and is not validated", "Targets that do not pass"):
        assert text in md and text in page
    assert pd.read_csv(out / "fit.csv").shape[0] == 2
    assert list((out / "figures").glob("*.png"))


def test_queueing_checks(report):
    q = report[0].queueing
    erlang = q[q["check"].str.startswith("Erlang C")].iloc[0]
    assert erlang["expected"] > 1.0  # a queue really forms
    whole = q[q["check"].str.contains("whole run")].iloc[0]
    assert whole["simulated"] == pytest.approx(1.0, abs=1e-3) and whole["within"]
    assert q["check"].str.contains("steady-state window").sum() == 2


def test_erlang_c_known_values():
    assert erlang_c_wait(0.5, 1.0, 1) == pytest.approx(1.0)           # M/M/1: rho / (mu - lambda)
    assert erlang_c_wait(1.5, 1.0, 2) == pytest.approx(9 / 7)         # P(wait) 9/14, / (c mu - lambda)
    with pytest.raises(ValueError, match="unstable"):
        erlang_c_wait(2.0, 1.0, 2)


def test_littles_law_is_an_identity_over_the_whole_run(small):
    h = simulate(small, seed=2)
    for groups in (None, ["opiate"], ["alcohol"]):
        law = littles_law(h, groups)
        assert law["ratio"] == pytest.approx(1.0, abs=1e-9)
        assert law["L"] > 10


def test_discover_pairs_shipped_targets_with_their_scenarios():
    pairs = {p.name: [t.name for t in files] for p, files in discover(None, None)}
    assert pairs["west_kent.toml"] == ["national", "west_kent"]
    for site in ("essex", "east_sussex_star", "herefordshire"):
        assert pairs[f"{site}.toml"] == [site]


def test_cli(files, tmp_path, capsys):
    code = main(["report-validation", str(files / "small.toml"), "--targets", str(files / "targets.toml"),
                 "--seeds", "1", "--queue-seeds", "2", "--out", str(tmp_path / "v")])
    printed = capsys.readouterr().out
    # one replication has no confidence interval: its mean is on target, but it cannot pass
    assert code == 0 and "small: 0/1 calibration targets pass (mean within tolerance: 1)" in printed
    assert "queueing checks" in printed
    assert (tmp_path / "v" / "validation.html").is_file()
    assert not math.isnan(pd.read_csv(tmp_path / "v" / "fit.csv")["simulated"].iloc[0])


def test_a_scenario_no_target_file_names_is_refused(files):
    with pytest.raises(ValueError, match="no scenario to validate"):
        validation_report([files / "small.toml"], out=None)  # the shipped target files name other scenarios


def test_a_target_passes_only_on_an_interval_that_reaches_it_and_is_narrow_enough_to_tell():
    """The pass rule: the CI reaches the figure (or range) widened by the tolerance, and its half-width is at most
    the tolerance (or half the range). With fewer replications the interval widens and a pass gets harder."""
    import numpy as np

    from sim.config.targets import TargetFile
    from sim.experiments.calibrate import fit_table

    targets = TargetFile.model_validate({"name": "t", "target": [
        {"name": "point", "measure": "in_treatment_per_year", "value": 100, "tolerance": 5, "source": "[E]"},
        {"name": "range", "measure": "in_treatment_per_year", "range": [80, 120], "tolerance": 2, "source": "[E]"}]})
    rng = np.random.default_rng(0)
    many = np.vstack([100 + rng.normal(0, 3, 40), 100 + rng.normal(0, 30, 40)])
    few = np.array([[97.0, 103.0], [70.0, 130.0]])  # the same means from 2 runs: t(1) = 12.7
    t_many, t_few = fit_table(targets.target, many), fit_table(targets.target, few)
    assert t_many["passes"].tolist() == [True, True]
    assert t_few["within"].all() and not t_few["informative"].any() and not t_few["passes"].any()
    off = fit_table(targets.target, many + np.array([[20.0], [0.0]]))  # the point target's mean 20 off it
    assert not off.loc[0, "covers"] and not off.loc[0, "passes"] and off.loc[1, "passes"]
