"""Calibration: target measures, target files and their errors, parameters, and recovering known parameters
from targets the model itself generated."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from sim import load_scenario, measures, simulate
from sim.cli import main
from sim.analysis.targets import MEASURES, measure
from sim.config.targets import TargetError, load_targets, targets_from_dict
from sim.experiments.calibrate import (
    CalibrationError,
    Evaluator,
    calibrate,
    check,
    current_value,
    parse_parameter,
    seed_sequences,
    write_calibrated,
)

from tests.conftest import SCENARIOS

ALCOHOL_ONLY = {"opiate": 0, "non_opiate": 0, "alcohol": 600, "non_opiate_alcohol": 0}
DROP_OUT = "treatment.drop_out_rate_per_year.by_group.alcohol"
MEDIAN = "treatment.completion_weeks.by_group.alcohol.median"


@pytest.fixture(scope="module")
def alcohol(west_kent):
    """Alcohol clients only, a 1-year warm-up and 2 reported years: a run takes a fraction of a second."""
    return west_kent.with_changes({"horizon.warmup_years": 1, "horizon.years": 2,
                                   "population.arrivals_per_year": ALCOHOL_ONLY})


def generated_targets(truth, names, replications=6, seed=99, tolerance=0.01):
    """Targets whose figures are the model's own means at ``truth``, on replications the fit never sees."""
    raw = {"name": "generated", "target": [
        {"measure": m, "groups": "alcohol", "value": 0.5, "tolerance": tolerance, "source": "the model [E]"}
        for m in names]}
    table = check(truth, targets_from_dict(raw), replications, seed)
    for t, v in zip(raw["target"], table["simulated"]):
        t["value"] = float(v)
    return targets_from_dict(raw)


# --- measures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_history(small):
    return simulate(small, seed=3)


def test_target_measures_agree_with_the_reported_measures(small_history):
    """On a horizon of whole financial years, the target measures equal sim.analysis.measures' definitions."""
    summary = measures.summary(small_history)
    for group in ("opiate", "alcohol", None):
        row = summary.loc[group or "all"]
        assert measure(small_history, "in_treatment_per_year", groups=group) == row["in_treatment_per_year"]
        assert measure(small_history, "treatment_starts_per_year", groups=group) == \
            row["treatment_starts_per_year"]
        for name in ("successful_completions", "planned_share_of_exits"):
            assert measure(small_history, name, groups=group) == pytest.approx(row[name], abs=1e-12)
    assert measure(small_history, "started_within_3_weeks") == pytest.approx(
        summary.loc["all", "started_within_3_weeks"], abs=1e-12)


def test_every_measure_is_defined_and_in_its_range(small_history):
    for name, m in MEASURES.items():
        value = measure(small_history, name)
        assert math.isfinite(value), name
        if m.unit == "share":
            assert 0 <= value <= 1, name
        else:
            assert value > 0, name


def test_shares_of_exits_add_up(small_history):
    parts = sum(measure(small_history, f"{r}_share_of_exits") for r in ("planned", "dropped_out", "declined",
                                                                        "withdrawn", "transferred"))
    assert parts <= 1 + 1e-12
    assert parts > 0.97  # only deaths in treatment are left out


def test_groups_and_sources_select_episodes(small_history):
    total = measure(small_history, "treatment_starts_per_year")
    by_group = sum(measure(small_history, "treatment_starts_per_year", groups=g)
                   for g in ("opiate", "non_opiate", "alcohol", "non_opiate_alcohol"))
    assert by_group == total
    self_referred = measure(small_history, "treatment_starts_per_year", sources=["self"])
    assert 0 < self_referred < total


# --- target files --------------------------------------------------------------------------------------------


GOOD = """name = "t"
[[target]]
measure = "successful_completions"
groups = ["opiate"]
value = 0.07
tolerance = 0.01
source = "[P] somewhere"
"""


def _errors(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError) as e:
        load_targets(path)
    return str(e.value)


@pytest.mark.parametrize("old, new, expected", [
    ('measure = "successful_completions"', 'measure = "sucessful_completions"',
     "target[0].measure = 'sucessful_completions': unknown measure (did you mean 'successful_completions'?)"),
    ("tolerance = 0.01", "tolerance = 0.01\ntolerence = 2", "target[0].tolerence = 2: unknown key"),
    ('source = "[P] somewhere"\n', "", "target[0].source = None: required key is missing"),
    ("value = 0.07", "value = 0.07\nrange = [0.06, 0.08]", "give exactly one of value, range, at_least and at_most"),
    ("value = 0.07", "value = 7", "successful_completions is a share: figures must be in [0, 1], got 7"),
    ("value = 0.07", "range = [0.08, 0.06]", "range must be [low, high]"),
    ('groups = ["opiate"]', 'groups = ["opiates"]', "target[0].groups[0] = 'opiates'"),
    ('groups = ["opiate"]', 'sources = ["prison"]', "unknown referral source 'prison' (did you mean "
                                                    "'prison_release'?)"),
    ("tolerance = 0.01", "tolerance = -0.01", "target[0].tolerance = -0.01"),
    ("tolerance = 0.01", "", "give exactly one of tolerance and relative_tolerance"),
])
def test_bad_target_files_give_clear_errors(tmp_path, old, new, expected):
    assert old in GOOD
    message = _errors(tmp_path, GOOD.replace(old, new))
    assert message.startswith("invalid target file")
    assert "bad.toml" in message
    assert expected in message


def test_every_problem_is_reported_at_once(tmp_path):
    text = GOOD.replace('measure = "successful_completions"', 'measure = "nope"') + GOOD.split("\n", 1)[1] \
        .replace("tolerance = 0.01", "tolerance = 0")
    message = _errors(tmp_path, text)
    assert "target[0].measure = 'nope'" in message and "target[1].tolerance = 0" in message


def test_a_target_file_needs_targets_and_valid_toml(tmp_path):
    assert "target = None: required key is missing" in _errors(tmp_path, 'name = "t"\n')
    assert "not valid TOML" in _errors(tmp_path, 'name = "t\n')
    with pytest.raises(TargetError, match="no such file"):
        load_targets(tmp_path / "missing.toml")


def test_shipped_target_files_are_valid_and_sourced():
    files = sorted((SCENARIOS / "targets").glob("*.toml"))
    assert {f.stem for f in files} >= {"national", "west_kent", "essex", "east_sussex_star", "herefordshire"}
    for f in files:
        targets = load_targets(f)
        assert targets.scenario_path().is_file(), f
        for t in targets.target:
            assert any(tag in t.source for tag in ("[P]", "[D]", "[E]", "[K]")), (f, t.label)


def test_within_and_the_aim_of_a_range():
    t = targets_from_dict({"name": "t", "target": [{"measure": "caseload", "range": [700, 800],
                                                    "tolerance": 35, "source": "[K] x"}]}).target[0]
    assert t.within(680) and t.within(835) and not t.within(664) and not t.within(836)
    assert t.aim == (725, 775)
    assert t.residual(750) == 0 and t.residual(705) == pytest.approx(-20 / 35)
    one_sided = targets_from_dict({"name": "t", "target": [{"measure": "caseload", "at_least": 700,
                                                            "tolerance": 20, "source": "[K] x"}]}).target[0]
    assert one_sided.within(681) and not one_sided.within(679) and one_sided.residual(1e6) == 0


# --- parameters ----------------------------------------------------------------------------------------------


def test_current_value_follows_inheritance(west_kent):
    raw = west_kent.raw()  # the file as written: a group without its own entry takes the table's value
    drop, weeks = raw["treatment"]["drop_out_rate_per_year"], raw["treatment"]["completion_weeks"]
    assert "non_opiate" not in drop["by_group"] and "non_opiate" not in weeks["by_group"]
    assert current_value(west_kent, "treatment.drop_out_rate_per_year.by_group.opiate") == drop["by_group"]["opiate"]
    assert current_value(west_kent, "treatment.drop_out_rate_per_year.by_group.non_opiate") == drop["value"]
    assert current_value(west_kent, "treatment.completion_weeks.by_group.non_opiate.median") == weeks["median"]
    assert current_value(west_kent, "treatment.completion_weeks.by_group.opiate.median") == \
        weeks["by_group"]["opiate"]["median"]
    assert current_value(west_kent, "after_exit.relapse_years.by_group.alcohol.scale") == 1.37
    assert current_value(west_kent, "population.arrivals_per_year.opiate") == \
        raw["population"]["arrivals_per_year"]["opiate"]
    assert current_value(west_kent, "mutual_aid.engagement.by_group.opiate") == 0.3
    with pytest.raises(KeyError):
        current_value(west_kent, "treatment.no_such_rate")


def test_parameters_are_checked_before_anything_runs(west_kent):
    p = parse_parameter("population.arrivals_per_year.opiate+population.arrivals_per_year.alcohol", west_kent)
    arrivals = west_kent.population.arrivals_per_year
    assert p.start == (arrivals["opiate"], arrivals["alcohol"]) and p.low == 0.25 and p.high == 4
    assert p.values(2.0) == {"population.arrivals_per_year.opiate": 2 * arrivals["opiate"],
                             "population.arrivals_per_year.alcohol": 2 * arrivals["alcohol"]}
    capped = parse_parameter("mutual_aid.engagement", west_kent)   # a probability stops at 1
    assert capped.high == pytest.approx(1 / 0.3)
    bounded = parse_parameter("treatment.drop_out_rate_per_year.by_group.opiate=0.1:0.3", west_kent)
    opiate = west_kent.treatment.drop_out_rate_per_year.resolve("opiate").value
    assert bounded.low * opiate == pytest.approx(0.1) and bounded.high * opiate == pytest.approx(0.3)
    with pytest.raises(CalibrationError, match="no number at this key path"):
        parse_parameter("treatment.drop_out_rate_per_yaer", west_kent)
    with pytest.raises(CalibrationError, match="outside the bounds"):
        parse_parameter("treatment.drop_out_rate_per_year.by_group.opiate=0.2:0.3", west_kent)
    with pytest.raises(CalibrationError, match="starting value must be above 0"):
        parse_parameter("population.seasonality_amplitude", west_kent)
    with pytest.raises(CalibrationError, match="invalid at the high bound"):
        parse_parameter("assessment.attends_treatment=0.5:1.5", west_kent)


def test_evaluations_use_common_random_numbers(alcohol):
    targets = [t for t in targets_from_dict({"name": "t", "target": [
        {"measure": "planned_share_of_exits", "value": 0.5, "tolerance": 0.1, "source": "[E] x"}]}).target]
    with Evaluator(alcohol, targets, seed_sequences(5, 2)) as ev:
        a, b = ev({DROP_OUT: 0.9}), ev({DROP_OUT: 0.9})
        higher = ev({DROP_OUT: 0.95})
    assert np.array_equal(a, b)
    assert (higher < a).all()  # the same clients: every replication moves the same way


# --- recovering known parameters -------------------------------------------------------------------------------


def test_calibrate_recovers_a_known_drop_out_rate(alcohol):
    """Targets from the model at drop-out 1.1 a year (on replications the fit never sees); the fit starts at
    West Kent's 0.684 and must land within 10% of 1.1."""
    truth = alcohol.with_changes({DROP_OUT: 1.1})
    targets = generated_targets(truth, ["planned_share_of_exits"])
    result = calibrate(alcohol, targets, [DROP_OUT], replications=2, seed=1, max_evaluations=20)
    fitted = result.changes[DROP_OUT]
    assert fitted == pytest.approx(1.1, rel=0.10), result.evaluations
    assert result.within
    assert result.start_table["within"].sum() == 0  # the start was off target: the fit moved it


@pytest.mark.slow
def test_calibrate_recovers_two_parameters(alcohol):
    """Drop-out rate and median time to completion from completions and planned share, within 10%."""
    alcohol = alcohol.with_changes({"population.arrivals_per_year.alcohol": 1200})  # less noise for two
    truth = alcohol.with_changes({DROP_OUT: 1.1, MEDIAN: 30})
    targets = generated_targets(truth, ["successful_completions", "planned_share_of_exits"])
    result = calibrate(alcohol, targets, [DROP_OUT, MEDIAN], replications=2, seed=1, max_evaluations=40)
    assert result.changes[DROP_OUT] == pytest.approx(1.1, rel=0.10), result.evaluations
    assert result.changes[MEDIAN] == pytest.approx(30, rel=0.10), result.evaluations
    nm = calibrate(alcohol, targets, [DROP_OUT, MEDIAN], replications=2, seed=1, method="nelder_mead",
                   max_evaluations=40)
    assert nm.changes[DROP_OUT] == pytest.approx(1.1, rel=0.15), nm.evaluations


def test_cli_writes_a_scenario_that_extends_the_input(tmp_path, alcohol, capsys):
    scenario = tmp_path / "site.toml"
    scenario.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "site"\n'
                        "horizon.warmup_years = 1\nhorizon.years = 2\n"
                        'population.arrivals_per_year = { opiate = 0, non_opiate = 0, alcohol = 600, '
                        "non_opiate_alcohol = 0 }\n")
    targets = tmp_path / "targets.toml"
    targets.write_text('name = "site"\n[[target]]\nmeasure = "planned_share_of_exits"\ngroups = "alcohol"\n'
                       'value = 0.5\ntolerance = 0.02\nsource = "[E] a test figure"\n')
    out, table = tmp_path / "out" / "calibrated.toml", tmp_path / "fit.csv"
    code = main(["calibrate", str(scenario), str(targets), "--params", DROP_OUT, "--seeds", "2",
                 "--max-evaluations", "5", "--out", str(out), "--table", str(table), "--name", "site_fitted"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "planned_share_of_exits (alcohol)" in printed and "[E] a test figure" in printed
    written = out.read_text()
    assert "Calibrated by `pbrsim calibrate`" in written and str(targets) in written
    data = tomllib.loads(written)
    assert data["extends"] == "../site.toml" and data["name"] == "site_fitted"
    assert set(data) == {"extends", "name", "description", "treatment"}  # only the fitted key besides names
    calibrated = load_scenario(out)
    fitted = data["treatment"]["drop_out_rate_per_year"]["by_group"]["alcohol"]
    assert calibrated.treatment.drop_out_rate_per_year.resolve("alcohol").value == fitted
    assert fitted > 0.684  # more drop-out lowers the planned share from about 0.57 towards 0.5
    assert table.is_file() and "within" in table.read_text()


def test_cli_without_params_reports_the_fit(tmp_path, capsys):
    code = main(["calibrate", str(SCENARIOS / "herefordshire.toml"), str(SCENARIOS / "targets" /
                 "herefordshire.toml"), "--seeds", "1", "--table", str(tmp_path / "fit.csv")])
    printed = capsys.readouterr().out
    assert "service users at any one time" in printed and "over 700 service users" in printed
    assert code in (0, 1) and (tmp_path / "fit.csv").is_file()


def test_cli_bad_parameter_is_refused_before_running(tmp_path, capsys):
    code = main(["calibrate", str(SCENARIOS / "west_kent.toml"), str(SCENARIOS / "targets" / "west_kent.toml"),
                 "--params", "treatment.drop_out_rate_per_yaer", "--out", str(tmp_path / "x.toml")])
    assert code == 2
    assert "--params treatment.drop_out_rate_per_yaer: no number at this key path" in capsys.readouterr().err
    assert not (tmp_path / "x.toml").exists()


def test_write_calibrated_round_trips(tmp_path, alcohol):
    targets = generated_targets(alcohol, ["planned_share_of_exits"], replications=2)
    result = calibrate(alcohol, targets, [DROP_OUT], replications=1, seed=1, max_evaluations=1)
    base = tmp_path / "base.toml"
    base.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\n')
    path = write_calibrated(result, tmp_path / "sub" / "fitted.toml", base, name="fitted")
    assert load_scenario(path).treatment.drop_out_rate_per_year.resolve("alcohol").value == \
        result.changes[DROP_OUT]


def test_write_calibrated_round_trips_two_parameters_and_a_quoted_description(tmp_path, alcohol):
    targets = generated_targets(alcohol, ["successful_completions", "planned_share_of_exits"], replications=2)
    result = calibrate(alcohol, targets, [DROP_OUT, MEDIAN], replications=1, seed=1, max_evaluations=2)
    base = tmp_path / "base.toml"
    base.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\n')
    description = 'a "quoted" site\\fit, # not a comment'
    path = write_calibrated(result, tmp_path / "fitted.toml", base, name="fitted", description=description)
    text = path.read_text()
    assert text.startswith("# Calibrated by `pbrsim calibrate`")
    fitted = [line for line in text.splitlines() if line.startswith(("treatment.", "population."))]
    assert len(fitted) == 2 and all("# [D] fitted (" in line for line in fitted)  # each number beside its tag
    loaded = load_scenario(path)
    assert loaded.name == "fitted" and loaded.description == description
    assert loaded.treatment.drop_out_rate_per_year.resolve("alcohol").value == result.changes[DROP_OUT]
    data = tomllib.loads(text)
    assert data["treatment"]["completion_weeks"]["by_group"]["alcohol"]["median"] == result.changes[MEDIAN]


def test_a_refit_starts_from_an_earlier_fit_and_keeps_its_bounds_relative_to_it(alcohol):
    earlier = alcohol.with_changes({DROP_OUT: 0.5})
    fresh = parse_parameter(DROP_OUT, alcohol)
    refit = parse_parameter(DROP_OUT, alcohol, start_from=earlier)
    assert fresh.start == (alcohol.treatment.drop_out_rate_per_year.resolve("alcohol").value,)
    assert refit.start == (0.5,)
    assert refit.values(refit.low) == {DROP_OUT: 0.125} and refit.values(refit.high) == {DROP_OUT: 2.0}


# --- pilot evaluation targets ----------------------------------------------------------------------------------

PILOT = {"measure": "pilot.successful_completion_y1", "range": [0.788, 0.937], "tolerance": 0.001,
         "source": "[P] Mason et al. 2015"}


def test_pilot_targets_are_paired_odds_ratios_of_one_kind():
    targets = targets_from_dict({"name": "p", "target": [PILOT, {**PILOT, "measure": "pilot.declined_y1",
                                                                 "range": [2.094, 4.113]}]})
    assert targets.pilot and [t.pilot for t in targets.target] == ["successful_completion_y1", "declined_y1"]
    system = {"measure": "caseload", "value": 700, "tolerance": 35, "source": "[K] x"}
    with pytest.raises(TargetError, match="need separate files"):
        targets_from_dict({"name": "p", "target": [PILOT, system]})
    with pytest.raises(TargetError, match="no groups, sources or relative_to"):
        targets_from_dict({"name": "p", "target": [{**PILOT, "groups": ["opiate"]}]})
    with pytest.raises(TargetError, match="odds .or rate. ratio: figures must be above 0, got 0"):
        targets_from_dict({"name": "p", "target": [{**PILOT, "range": [0, 0.9]}]})
    with pytest.raises(TargetError, match="did you mean 'pilot.declined_y1'"):
        targets_from_dict({"name": "p", "target": [{**PILOT, "measure": "pilot.decline_y1"}]})


def test_a_pilot_fit_compares_the_pilot_with_its_counterfactual_on_common_random_numbers(tmp_path):
    """The pilot evaluator's odds ratios are the evaluate-pilot ones, replication by replication; a
    contract-blind provider's payment part is nil, so only the LASARS hand-off moves them."""
    from sim.experiments.calibrate import PilotEvaluator
    from sim.experiments.pilot import evaluate_pilot, paired_ratios

    pilot = tmp_path / "pilot.toml"
    pilot.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "p"\n'
                     f'counterfactual = "{(SCENARIOS / "west_kent_counterfactual.toml").as_posix()}"\n'
                     "[horizon]\nwarmup_years = 2\nyears = 2.5\n")
    scenario = load_scenario(pilot)
    targets = targets_from_dict({"name": "p", "target": [PILOT, {**PILOT, "measure": "pilot.initiation",
                                                                 "range": [0.5, 1.5]}]}).target
    seeds = seed_sequences(5, 2)
    with PilotEvaluator(scenario, targets, seeds) as ev:
        ratios = ev()
    assert ratios.shape == (2, 2)
    from sim.cli.common import scenario_contract, scenario_counterfactual

    cf = scenario_counterfactual(scenario).with_changes({"horizon.years": 2.5, "horizon.end": None,
                                                          "horizon.warmup_years": 2})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluation = evaluate_pilot(scenario, scenario_contract(scenario), cf, scenario_contract(cf), 2, seed=5)
    counts = evaluation.counts
    for r in range(2):
        arm = lambda a: counts[(counts["replication"] == r) & (counts["arm"] == a)]  # noqa: E731
        expected = paired_ratios(arm("pilot"), arm("counterfactual"), ["successful_completion_y1", "initiation"])
        np.testing.assert_allclose(ratios[:, r], expected)
    assert (ratios[1] < 1).all()  # the LASARS hand-off loses referrals before treatment
