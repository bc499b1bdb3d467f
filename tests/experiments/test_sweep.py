"""Sweeps: spec files and their errors, designs (grid, Latin hypercube, Sobol', Morris), applying a point, and the
sensitivity indices against functions with known answers (Ishigami; a function with an inert input).

Specs for the index tests are built in code over dummy paths: no scenario is read and nothing is simulated,
except one tiny run of a point of the shipped example sweep.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sim import load_scenario
from sim.config.contract import load_contract
from sim.experiments.sweep import (
    Parameter,
    SweepError,
    SweepSpec,
    applied_points,
    check_sweep,
    design_points,
    iter_points,
    load_sweep,
    morris_indices,
    plot_morris,
    plot_sobol,
    point_scenario,
    sobol_indices,
    sweep_table_to_outputs,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
WEST_KENT = SCENARIOS / "west_kent.toml"
WEST_KENT_PBR = SCENARIOS / "contracts" / "west_kent_pbr.toml"
EXAMPLE = SCENARIOS / "sweeps" / "west_kent_contract_sensitivity.toml"


def spec_of(design: str, parameters: list[dict], samples: int | None = None, seed: int = 0) -> SweepSpec:
    return SweepSpec(name="test", scenario="unused.toml", design=design, samples=samples, seed=seed,
                     parameters=[Parameter(**p) for p in parameters])


def write_spec(tmp_path: Path, body: str, name: str = "sweep.toml") -> Path:
    """A sweep file in tmp_path over the West Kent scenario and contract (absolute paths) plus ``body``."""
    path = tmp_path / name
    path.write_text(f'name = "t"\nscenario = "{WEST_KENT.as_posix()}"\ncontract = "{WEST_KENT_PBR.as_posix()}"\n'
                    f'{body}\n', encoding="utf-8")
    return path


def sweep_error(path: Path) -> str:
    with pytest.raises(SweepError) as e:
        load_sweep(path)
    return str(e.value)


@pytest.fixture(scope="module")
def west_kent_files():
    return load_scenario(WEST_KENT), load_contract(WEST_KENT_PBR)


# --- Sobol' indices of the Ishigami function -------------------------------------------------------------------


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_truth(a: float = 7.0, b: float = 0.1) -> tuple[list[float], list[float]]:
    """Analytical first-order and total indices (Ishigami and Homma 1990; Sobol' and Levitan 1999)."""
    v1 = 0.5 * (1 + b * math.pi ** 4 / 5) ** 2
    v2 = a ** 2 / 8
    v13 = b ** 2 * math.pi ** 8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return [v1 / v, v2 / v, 0.0], [(v1 + v13) / v, v2 / v, v13 / v]


def test_ishigami_truth_is_the_textbook_values():
    s1, st = ishigami_truth()
    assert s1 == pytest.approx([0.314, 0.442, 0.0], abs=5e-4)
    assert st == pytest.approx([0.558, 0.442, 0.244], abs=5e-4)


def test_sobol_recovers_ishigami_indices():
    box = {"low": -math.pi, "high": math.pi}
    spec = spec_of("sobol", [{"path": "dummy.x1", **box}, {"path": "dummy.x2", **box}, {"path": "dummy.x3", **box}],
                   samples=1024, seed=7)
    points = design_points(spec)
    assert len(points) == 1024 * (3 + 2)
    assert list(points.index) == list(range(len(points)))
    y = pd.Series(ishigami(points.to_numpy()), index=points.index)
    indices = sobol_indices(spec, points, y)
    assert list(indices.columns) == ["parameter", "S1", "S1_conf", "ST", "ST_conf"]
    assert list(indices["parameter"]) == ["dummy.x1", "dummy.x2", "dummy.x3"]
    s1, st = ishigami_truth()
    assert indices["S1"].to_numpy() == pytest.approx(s1, abs=0.05)
    assert indices["ST"].to_numpy() == pytest.approx(st, abs=0.05)
    assert (indices[["S1_conf", "ST_conf"]] > 0).all().all()
    # the SALib problem dict alone works as well as the spec
    again = sobol_indices(points.attrs["problem"], points, y)
    pd.testing.assert_frame_equal(again, indices)


def test_sobol_refuses_missing_or_misshapen_outputs():
    spec = spec_of("sobol", [{"path": "a", "low": 0, "high": 1}, {"path": "b", "low": 0, "high": 1}], samples=8)
    points = design_points(spec)
    y = pd.Series(points.sum(axis=1))
    with pytest.raises(ValueError, match="no output for 1 points"):
        sobol_indices(spec, points, y.drop(index=5))
    with pytest.raises(ValueError, match="outputs for"):
        sobol_indices(spec, points, y.to_numpy()[:-1])


# --- Morris ------------------------------------------------------------------------------------------------------


def test_morris_ranks_an_inert_parameter_last():
    spec = spec_of("morris", [{"path": "a", "low": 0, "high": 1}, {"path": "inert", "low": -5, "high": 5},
                              {"path": "b", "low": 10, "high": 20}], samples=20, seed=3)
    points = design_points(spec)
    assert len(points) == 20 * (3 + 1)
    x = points.to_numpy()
    y = 4 * x[:, 0] + ((x[:, 2] - 10) / 10) ** 2 + 0 * x[:, 1]
    indices = morris_indices(spec, points, y)
    assert list(indices.columns[:4]) == ["parameter", "mu_star", "mu_star_conf", "sigma"]
    ranked = indices.sort_values("mu_star", ascending=False)["parameter"].tolist()
    assert ranked == ["a", "b", "inert"]
    inert = indices.set_index("parameter").loc["inert"]
    assert inert["mu_star"] == pytest.approx(0.0, abs=1e-9)
    assert inert["sigma"] == pytest.approx(0.0, abs=1e-9)
    # a linear effect has no spread; the effect is per unit of the range: 4 x (full range)
    assert indices.set_index("parameter").loc["a", "sigma"] == pytest.approx(0.0, abs=1e-9)
    assert indices.set_index("parameter").loc["a", "mu_star"] == pytest.approx(4.0)


# --- designs ----------------------------------------------------------------------------------------------------


def test_grid_has_every_combination():
    spec = spec_of("grid", [{"path": "capacity.rehab_places", "low": 6, "high": 18, "levels": 3, "integer": True},
                            {"path": "treatment.declined_share", "values": [0.05, 0.07, 0.1, 0.2]}])
    points = design_points(spec)
    assert len(points) == spec.expected_points() == 3 * 4
    assert points.index.name == "point" and list(points.index) == list(range(12))
    assert sorted(set(points["capacity.rehab_places"])) == [6, 12, 18]
    assert sorted(set(points["treatment.declined_share"])) == [0.05, 0.07, 0.1, 0.2]
    pairs = set(map(tuple, points.to_numpy().tolist()))
    assert len(pairs) == 12  # every combination once
    assert points.iloc[0].tolist() == [6, 0.05] and points.iloc[1].tolist() == [6, 0.07]  # last varies fastest


def test_grid_levels_round_for_integers():
    spec = spec_of("grid", [{"path": "capacity.recovery_workers", "low": 24, "high": 40, "levels": 4,
                             "integer": True}])
    points = design_points(spec)
    assert points["capacity.recovery_workers"].tolist() == pytest.approx([24, 29.333333, 34.666667, 40])
    assert applied_points(spec, points)["capacity.recovery_workers"].tolist() == [24, 29, 35, 40]


def test_latin_hypercube_has_one_sample_per_stratum():
    n = 50
    spec = spec_of("lhs", [{"path": "a", "low": 0, "high": 1}, {"path": "b", "low": 100, "high": 300},
                           {"path": "c", "low": -2, "high": -1}], samples=n, seed=11)
    points = design_points(spec)
    assert len(points) == n
    for p in spec.parameters:
        u = (points[p.path].to_numpy() - p.low) / (p.high - p.low)
        assert ((u >= 0) & (u <= 1)).all()
        assert sorted(np.floor(u * n).astype(int)) == list(range(n)), p.path  # each stratum exactly once


def test_integer_parameters_cover_each_whole_number_evenly():
    spec = spec_of("lhs", [{"path": "capacity.rehab_places", "low": 1, "high": 4, "integer": True}], samples=400)
    applied = applied_points(spec, design_points(spec))["capacity.rehab_places"]
    assert applied.value_counts().sort_index().to_dict() == {1: 100, 2: 100, 3: 100, 4: 100}


@pytest.mark.parametrize("design,samples", [("grid", None), ("lhs", 20), ("sobol", 16), ("morris", 6)])
def test_same_seed_same_points(design, samples):
    params = [{"path": "a", "low": 0, "high": 1, "levels": 3}, {"path": "b", "low": 5, "high": 9, "levels": 2}]
    if design != "grid":
        params = [{k: v for k, v in p.items() if k != "levels"} for p in params]
    spec = spec_of(design, params, samples=samples, seed=5)
    first, second = design_points(spec), design_points(spec)
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == spec.expected_points()
    if design != "grid":
        assert not design_points(spec, seed=6).equals(first)
        pd.testing.assert_frame_equal(design_points(spec, seed=5), first)


def test_design_rules_are_checked_for_specs_built_in_code():
    with pytest.raises(SweepError, match=r"samples = 10: Sobol' sequences are balanced only for a power of 2"):
        design_points(spec_of("sobol", [{"path": "a", "low": 0, "high": 1}], samples=10))
    with pytest.raises(SweepError, match=r"parameters\[0\] = .a.: a grid needs levels"):
        design_points(spec_of("grid", [{"path": "a", "low": 0, "high": 1}]))
    with pytest.raises(SweepError, match=r"parameters\[0\].values .*values are for grid designs"):
        design_points(spec_of("lhs", [{"path": "a", "values": [1, 2]}], samples=4))


# --- applying a point -----------------------------------------------------------------------------------------


def test_point_scenario_applies_and_rounds(west_kent_files):
    scenario, contract = west_kent_files
    spec = spec_of("lhs", [{"path": "capacity.recovery_workers", "low": 24, "high": 40, "integer": True},
                           {"path": "capacity.rehab_places", "low": 6, "high": 18, "integer": True},
                           {"path": "treatment.drop_out_rate_per_year.by_group.opiate", "low": 0.12, "high": 0.25},
                           {"path": "contract.offending.pot", "low": 1e5, "high": 3e5}], samples=4)
    row = {"capacity.recovery_workers": 29.4, "capacity.rehab_places": 9.5,
           "treatment.drop_out_rate_per_year.by_group.opiate": 0.2, "contract.offending.pot": 123_456.0}
    s, c = point_scenario(scenario, contract, spec, row)
    assert s.capacity.recovery_workers == 29 and s.capacity.rehab_places == 10
    assert isinstance(s.capacity.rehab_places, int)
    assert s.treatment.drop_out_rate_per_year.by_group["opiate"].value == 0.2
    assert c.offending.pot == 123_456.0
    # everything else unchanged, and the bases untouched
    assert s.treatment.drop_out_rate_per_year.by_group["alcohol"].value == \
        scenario.treatment.drop_out_rate_per_year.by_group["alcohol"].value
    assert s.capacity.assessors == scenario.capacity.assessors
    assert c.annual_value == contract.annual_value and contract.offending.pot == 200_000
    assert scenario.capacity.recovery_workers == load_scenario(SCENARIOS / "west_kent.toml").capacity.recovery_workers
    # a design row (a pandas Series) works the same
    s2, _ = point_scenario(scenario, contract, spec, pd.Series(row))
    assert s2 == s


def test_a_parameter_with_overrides_keeps_them(west_kent_files):
    scenario, contract = west_kent_files
    spec = spec_of("lhs", [{"path": "treatment.drop_out_rate_per_year", "low": 0.3, "high": 0.6}], samples=2)
    s, _ = point_scenario(scenario, contract, spec, {"treatment.drop_out_rate_per_year": 0.4})
    rate = s.treatment.drop_out_rate_per_year
    assert rate.value == 0.4
    assert rate.by_group == scenario.treatment.drop_out_rate_per_year.by_group  # opiate's own rate etc. kept


def test_changes_come_first_and_reach_scenario_and_contract(west_kent_files):
    scenario, contract = west_kent_files
    spec = SweepSpec(name="t", scenario="unused.toml", design="grid",
                     changes={"horizon": {"years": 2, "warmup_years": 3}, "contract.extension_years": 0,
                              "contract.pbr_share.by_year": [0.25, 0.37]},
                     parameters=[Parameter(path="horizon.warmup_years", values=[2, 4])])
    assert set(spec.changes) == {"horizon.years", "horizon.warmup_years", "contract.extension_years",
                                 "contract.pbr_share.by_year"}
    s, c = point_scenario(scenario, contract, spec, {"horizon.warmup_years": 4})
    assert s.horizon.years == 2 and s.horizon.warmup_years == 4  # the point wins over the changes
    assert c.years == 2 and c.pbr_share.by_year == [0.25, 0.37]
    check_sweep(spec, scenario, contract)
    base_scenario, base_contract = spec.base()
    assert base_scenario.horizon.warmup_years == 3 and base_contract.years == 2


# --- spec files and their errors --------------------------------------------------------------------------


def test_example_spec_loads():
    spec = load_sweep(EXAMPLE)
    assert spec.design in ("sobol", "morris")
    assert spec.expected_points() >= 200 and spec.replications >= 5
    assert "contract.offending.pot" in spec.paths
    points = design_points(spec)
    assert len(points) == spec.expected_points()
    scenario, contract = spec.base()
    # the shipped screening runs the warm-up its system needs to settle, so none of its runs warns
    assert scenario.horizon.warmup_years >= scenario.horizon.settled_after_years and contract is not None
    # every point applies cleanly
    for _, row in points.iloc[::25].iterrows():
        s, c = point_scenario(scenario, contract, spec, row)
        assert 24 <= s.capacity.recovery_workers <= 40
        assert 100_000 <= c.offending.pot <= 300_000


def test_unknown_key(tmp_path):
    msg = sweep_error(write_spec(tmp_path, 'design = "lhs"\nsamples = 4\nreplicatons = 3\n'
                                           '[[parameters]]\npath = "capacity.rehab_places"\nlow = 1\nhigh = 2'))
    assert "sweep.toml: replicatons = 3: unknown key (did you mean 'replications'?)" in msg


def test_unknown_key_in_a_parameter(tmp_path):
    msg = sweep_error(write_spec(tmp_path, 'design = "lhs"\nsamples = 4\n'
                                           '[[parameters]]\npath = "capacity.rehab_places"\nlow = 1\nhigh = 2\n'
                                           'integr = true'))
    assert "parameters[0].integr = True: unknown key (did you mean 'integer'?)" in msg


def test_low_above_high(tmp_path):
    path = write_spec(tmp_path, 'design = "lhs"\nsamples = 4\n'
                                '[[parameters]]\npath = "capacity.rehab_places"\nlow = 20\nhigh = 5')
    msg = sweep_error(path)
    assert f"{path}: parameters[0].high = 5: high must be above low (20)" in msg


def test_a_path_that_does_not_exist(tmp_path):
    path = write_spec(tmp_path, 'design = "lhs"\nsamples = 4\n'
                                '[[parameters]]\npath = "capacity.rehab_placez"\nlow = 6\nhigh = 18\n'
                                '[[parameters]]\npath = "contract.offending.pott"\nlow = 1\nhigh = 2\n'
                                '[[parameters]]\npath = "capacity.rehab_places"\nlow = 6\nhigh = 18.5')
    msg = sweep_error(path)
    assert (f"{path}: parameters[0].path = 'capacity.rehab_placez': unknown key (did you mean 'rehab_places'?) "
            f"(in the scenario, with low = 6.0)") in msg
    assert f"{path}: parameters[1].path = 'contract.offending.pott': unknown key (did you mean 'pot'?)" in msg
    assert "in the contract" in msg
    assert "parameters[2].path = 'capacity.rehab_places': Input should be a valid integer" in msg  # 18.5
    assert msg.count("rehab_placez") == 1  # reported once, not once for low and once for high


def test_a_path_naming_a_table_or_list(tmp_path):
    path = write_spec(tmp_path, 'design = "lhs"\nsamples = 4\n'
                                '[[parameters]]\npath = "after_exit.relapse_years"\nlow = 6\nhigh = 13\n'
                                '[[parameters]]\npath = "contract.pbr_share.by_year"\nlow = 0.1\nhigh = 0.5')
    msg = sweep_error(path)
    assert "parameters[0].path = 'after_exit.relapse_years': a table, not a number" in msg
    assert "parameters[1].path = 'contract.pbr_share.by_year': a list, not a number" in msg


def test_a_missing_scenario_file(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('name = "t"\nscenario = "nowhere.toml"\ndesign = "lhs"\nsamples = 4\n'
                    '[[parameters]]\npath = "capacity.rehab_places"\nlow = 1\nhigh = 2\n', encoding="utf-8")
    msg = sweep_error(path)
    assert f"{path}: scenario = 'nowhere.toml': no such file: {tmp_path / 'nowhere.toml'}" in msg


def test_a_missing_spec_file(tmp_path):
    assert "no such file" in sweep_error(tmp_path / "absent.toml")


def test_every_problem_at_once(tmp_path):
    path = write_spec(tmp_path, 'design = "sobol"\nsamples = 100\n'
                                '[changes]\n"horizon.warmup_years" = 1\n'
                                '[[parameters]]\npath = "capacity.rehab_places"\nlow = 6\nhigh = 18\nlevels = 3\n'
                                '[[parameters]]\npath = "capacity.rehab_places"\nlow = 6\nhigh = 18')
    msg = sweep_error(path)
    assert "samples = 100: Sobol' sequences are balanced only for a power of 2" in msg
    assert "parameters[0].levels = 3: levels are for grid designs" in msg
    assert "parameters[1].path = 'capacity.rehab_places': already swept by parameters[0]" in msg


def test_changes_are_checked(tmp_path):
    path = write_spec(tmp_path, 'design = "lhs"\nsamples = 4\n'
                                '[changes]\n"capacity.rehab_places" = -1\n"contract.offending.pot" = -5\n'
                                '[[parameters]]\npath = "capacity.recovery_workers"\nlow = 20\nhigh = 30')
    msg = sweep_error(path)
    assert f"{path}: changes.capacity.rehab_places = -1: Input should be greater than or equal to 0" in msg
    assert f"{path}: changes.contract.offending.pot = -5" in msg


def test_a_warmup_too_short_for_the_contract_baseline(tmp_path):
    own_year = tmp_path / "own_year.toml"  # the offending pot's baseline from the simulated year before
    own_year.write_text(WEST_KENT_PBR.read_text(encoding="utf-8").replace("baseline_offences = ", "# "),
                        encoding="utf-8")
    path = tmp_path / "sweep.toml"
    path.write_text(f'name = "t"\nscenario = "{WEST_KENT.as_posix()}"\ncontract = "{own_year.as_posix()}"\n'
                    'design = "lhs"\nsamples = 4\n[[parameters]]\npath = "horizon.warmup_years"\nlow = 1\nhigh = 4\n',
                    encoding="utf-8")
    msg = sweep_error(path)
    assert "parameters[0].path = 'horizon.warmup_years': prices or baselines from the year before the contract " \
           "(offending) need a settled year" in msg  # West Kent settles after more years than the sweep's range
    assert "(with high = 4.0)" in msg


def test_relative_paths_follow_the_spec_file(tmp_path):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "s.toml").write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "copy"\n'
                                   f'contract = "{WEST_KENT_PBR.as_posix()}"\n', encoding="utf-8")
    spec_file = folder / "sweep.toml"
    spec_file.write_text('name = "t"\nscenario = "s.toml"\ndesign = "grid"\n'
                         '[[parameters]]\npath = "contract.offending.pot"\nvalues = [1e5, 2e5]\n', encoding="utf-8")
    spec = load_sweep(spec_file)
    scenario, contract = spec.base()
    assert scenario.name == "copy"
    assert contract.name == "west_kent_pbr"  # the contract the scenario names, when the sweep names none
    pots = [(point, c.offending.pot) for point, _, c in iter_points(spec)]
    assert pots == [(0, 1e5), (1, 2e5)]


# --- from results to indices --------------------------------------------------------------------------------


def long_table() -> pd.DataFrame:
    rows = []
    for point in range(3):
        for rep in range(2):
            for period, base in (("2012-13", 10.0), ("2013-14", 20.0)):
                rows.append((point, rep, period, "all", "planned_exits", base + point + rep))
                rows.append((point, rep, period, "opiate", "planned_exits", 1000.0))
                rows.append((point, rep, period, "all", "margin", -1.0))
    return pd.DataFrame(rows, columns=["point", "replication", "period", "category", "metric", "value"])


def test_sweep_table_to_outputs():
    table = long_table()
    out = sweep_table_to_outputs(table, "planned_exits")
    assert out.index.tolist() == [0, 1, 2]
    assert out.tolist() == [15.5, 16.5, 17.5]  # mean of replications (+0.5), then of the periods (15)
    assert sweep_table_to_outputs(table, "planned_exits", period="2013-14").tolist() == [20.5, 21.5, 22.5]
    assert sweep_table_to_outputs(table, "planned_exits", category="opiate").tolist() == [1000.0] * 3
    # shuffled rows give the outputs in point order
    shuffled = table.sample(frac=1, random_state=1)
    pd.testing.assert_series_equal(sweep_table_to_outputs(shuffled, "planned_exits"), out)
    # a partly finished sweep: missing points are NaN when the point count is given
    partial = sweep_table_to_outputs(table[table["point"] != 1], "planned_exits", points=3)
    assert partial.index.tolist() == [0, 1, 2] and np.isnan(partial[1])
    with pytest.raises(KeyError, match="metrics: \\['margin', 'planned_exits'\\]"):
        sweep_table_to_outputs(table, "planned_exit")


def test_plots_return_figures():
    sobol = pd.DataFrame({"parameter": ["a", "b"], "S1": [0.5, 0.2], "S1_conf": [0.05, 0.04],
                          "ST": [0.7, 0.3], "ST_conf": [0.06, 0.05]})
    morris = pd.DataFrame({"parameter": ["a", "b"], "mu_star": [2.0, 0.1], "mu_star_conf": [0.3, 0.02],
                           "sigma": [0.5, 0.05], "mu": [2.0, -0.1]})
    for fig in (plot_sobol(sobol), plot_morris(morris)):
        assert isinstance(fig, plt.Figure)
        assert fig.axes[0].get_title()
        plt.close(fig)


# --- one tiny simulation ---------------------------------------------------------------------------------------


def test_a_point_of_the_example_simulates_and_settles():
    """A point of the example (its two-year term after the settled warm-up) runs and settles under its contract."""
    from sim import simulate
    from sim.money.settlement import settle

    spec = load_sweep(EXAMPLE)
    points = design_points(spec)
    scenario, contract = point_scenario(*spec.base(), spec, points.iloc[0])
    assert contract.offending.pot == pytest.approx(points.iloc[0]["contract.offending.pot"])
    history = simulate(scenario, seed=1)
    settlement = settle(contract, history, scenario)
    assert set(settlement.payments["contract_year"]) == {1, 2}
