"""The pilot evaluation in silico (issue 19): hand-computed odds ratios and intervals, the arms' declared
differences and nothing else, and the command that writes it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.analysis.evaluation import PILOT_MEASURES, pilot_measures
from sim.cli import main
from sim.config.contract import load_contract
from sim.experiments.pilot import EVALUATION_COLUMNS, JOURNEYS, _log_ratio, evaluate_pilot, evaluation_table
from tests.builders import CONTRACT_BLIND, small_scenario
from tests.conftest import SCENARIOS

BLOCK = load_contract(SCENARIOS / "contracts" / "block.toml")
PBR = load_contract(SCENARIOS / "contracts" / "west_kent_pbr.toml")


def test_log_odds_and_rate_ratios_by_hand():
    assert _log_ratio(10, 100, 5, 100, "share") == pytest.approx(math.log((10 / 90) / (5 / 95)))
    assert _log_ratio(10, 100, 5, 200, "rate") == pytest.approx(math.log(0.1 / 0.025))
    # a zero cell adds a half to every cell (Haldane); identical arms stay exactly 0
    assert _log_ratio(0, 100, 5, 100, "share") == pytest.approx(math.log((0.5 / 100.5) / (5.5 / 95.5)))
    assert _log_ratio(0, 50, 0, 50, "share") == 0.0 and _log_ratio(7, 50, 7, 50, "rate") == 0.0


def _counts(rows):
    return pd.DataFrame(rows, columns=["replication", "arm", "measure", "events", "population"])


def test_evaluation_table_pools_counts_and_takes_the_interval_from_the_paired_replications():
    rows = []
    pilot = [(8, 100), (12, 100), (9, 100)]
    cf = [(10, 100), (15, 100), (10, 100)]
    for name in [*PILOT_MEASURES, "people_in_treatment"]:
        for r in range(3):
            rows += [(r, "pilot", name, *pilot[r]), (r, "counterfactual", name, *cf[r])]
    table = evaluation_table(_counts(rows)).set_index("measure")
    assert list(table.reset_index().columns) == EVALUATION_COLUMNS
    row = table.loc["completion"]
    assert row.counterfactual_rate == pytest.approx(35 / 300) and row.pilot_rate == pytest.approx(29 / 300)
    pooled = math.log((29 / 271) / (35 / 265))
    assert row.odds_ratio == pytest.approx(math.exp(pooled))
    per = [math.log((p / (100 - p)) / (c / (100 - c))) for (p, _), (c, _) in zip(pilot, cf)]
    half = stats.t.ppf(0.975, 2) * np.std(per, ddof=1) / math.sqrt(3)
    assert (row.ci_low, row.ci_high) == pytest.approx((math.exp(pooled - half), math.exp(pooled + half)))
    assert row.replications == 3 and row.statistic == "odds ratio"
    assert table.loc["acquisitive_crime", "odds_ratio"] == pytest.approx((29 / 300) / (35 / 300))  # rate ratio
    # journeys: each arm's % change against the year before (events / population - 1), pilot minus counterfactual
    journeys = table.loc[JOURNEYS]
    diffs = [100 * (p / 100 - c / 100) for (p, _), (c, _) in zip(pilot, cf)]
    assert journeys.odds_ratio == pytest.approx(np.mean(diffs))
    assert journeys.statistic.startswith("difference")


@pytest.fixture(scope="module")
def small_pilot():
    """The small scenario (3 reported years: two and the follow-up) as pilot, its declared counterfactual."""
    pilot = small_scenario(years=3, warmup_years=2)
    counterfactual = pilot.with_changes({"assessment.attends_treatment": 0.95,
                                         "assessment.booking_delay_days.mean": 3.0,
                                         "treatment.start_delay_days.mean": 4.0})
    return pilot, counterfactual


def _flat(table: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in table.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_the_shipped_counterfactual_differs_from_west_kent_only_in_what_its_header_declares():
    """Its header: the provider assesses (booking, start delay and hand-off) and block payment; nothing else, so
    a change to west_kent.toml that the counterfactual overrides by accident (a delay's shape) is caught."""
    from sim.config.scenario import load_scenario

    pilot = _flat(load_scenario(SCENARIOS / "west_kent.toml").raw())
    counterfactual = _flat(load_scenario(SCENARIOS / "west_kent_counterfactual.toml").raw())
    differ = {k for k in pilot.keys() | counterfactual.keys() if pilot.get(k) != counterfactual.get(k)}
    assert differ == {"name", "description", "contract", "assessment.attends_treatment",
                      "assessment.booking_delay_days.mean", "treatment.start_delay_days.mean"}


def test_a_contract_blind_pilot_differs_from_the_counterfactual_only_where_it_declares(small_pilot):
    pilot, counterfactual = small_pilot
    ev = evaluate_pilot(pilot, PBR, counterfactual, BLOCK, 2, seed=5)
    payment = ev.table("payment (provider response)")
    assert (payment.loc[payment["measure"] != JOURNEYS, "odds_ratio"] == 1.0).all()  # the same History
    assert (payment.loc[payment["measure"] == JOURNEYS, "odds_ratio"] == 0.0).all()
    # the same system under another name: no difference at all
    same = evaluate_pilot(pilot, PBR, pilot.with_changes({"name": "counterfactual"}), BLOCK, 2, seed=5)
    assert (same.table().loc[lambda t: t["measure"] != JOURNEYS, "odds_ratio"] == 1.0).all()
    # the declared difference moves what it should: fewer assessed clients start treatment with LASARS' hand-off
    system = ev.table("system design (LASARS)").set_index("measure")
    assert system.loc["initiation", "odds_ratio"] < 1.0
    counts = ev.counts.pivot_table(index=["replication", "measure"], columns="arm", values="events")
    assert (counts.xs("initiation", level="measure")["counterfactual"]
            > counts.xs("initiation", level="measure")["lasars_block"]).all()


def test_measures_count_drug_clients_in_their_windows(small_pilot):
    from sim import simulate

    pilot, _ = small_pilot
    h = simulate(pilot, seed=3)
    m = pilot_measures(h, pilot).set_index("measure")
    assert set(m.index) == {*PILOT_MEASURES, "people_in_treatment"}
    shares = m.drop(index=["acquisitive_crime", "people_in_treatment"])
    assert (m["events"] >= 0).all() and (shares["events"] <= shares["population"]).all()
    assert (shares["events"] > 0).all(), shares  # every measure happens in two years of West Kent
    alcohol = pilot_measures(h, pilot, groups=("alcohol",)).set_index("measure")
    everyone = pilot_measures(h, pilot, groups=("opiate", "non_opiate", "non_opiate_alcohol", "alcohol"))
    everyone = everyone.set_index("measure")
    for name in ("initiation", "waited_over_3_weeks", "completion", "mortality"):  # counts over distinct people
        assert everyone.loc[name, "population"] == m.loc[name, "population"] + alcohol.loc[name, "population"]
    with pytest.raises(ValueError, match="two contract years and 6 months"):
        pilot_measures(simulate(small_scenario(years=2), seed=3), pilot)


def test_evaluate_pilot_command_writes_the_table(tmp_path, capsys):
    short = '[horizon]\nwarmup_years = 2\nyears = 3\n' + CONTRACT_BLIND  # the arms' tables, quickly
    (tmp_path / "cf.toml").write_text(f'extends = "{(SCENARIOS / "west_kent_counterfactual.toml").as_posix()}"\n'
                                      f'contract = "{(SCENARIOS / "contracts" / "block.toml").as_posix()}"\n' + short)
    scenario = tmp_path / "pilot.toml"
    scenario.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "pilot"\n'
                        f'contract = "{(SCENARIOS / "contracts" / "west_kent_pbr.toml").as_posix()}"\n'
                        'counterfactual = "cf.toml"\n' + short)
    out = tmp_path / "out"
    assert main(["evaluate-pilot", str(scenario), "-n", "2", "--years", "3", "--out", str(out), "--no-plots"]) == 0
    table = pd.read_csv(out / "evaluation.csv")
    assert list(table.columns) == EVALUATION_COLUMNS
    assert list(table["measure"]) == [*PILOT_MEASURES, JOURNEYS]
    assert (table["replications"] == 2).all()
    assert "contract-blind" in (out / "evaluation.md").read_text()
    assert "successful_completion_y1" in capsys.readouterr().out


def test_a_missing_counterfactual_is_refused_naming_the_file_and_key(tmp_path, capsys):
    scenario = tmp_path / "pilot.toml"
    scenario.write_text(f'extends = "{(SCENARIOS / "west_kent.toml").as_posix()}"\nname = "pilot"\n'
                        'counterfactual = "nowhere.toml"\n')
    for command in (["validate", str(scenario)], ["evaluate-pilot", str(scenario), "-n", "2",
                                                  "--out", str(tmp_path / "out")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "nowhere.toml: no such file" in err and f"{scenario}: counterfactual = 'nowhere.toml'" in err
    assert not (tmp_path / "out").exists()
