"""The shipped site scenarios: each extends the common base, names its contract and its targets, and is within
tolerance of its own calibration targets."""

from __future__ import annotations

import tomllib

import pytest

from sim import load_scenario
from sim.config.contract import load_contract
from sim.config.targets import load_targets
from sim.experiments.calibrate import check
from sim.money.settlement import check as check_contract

from tests.conftest import SCENARIOS

SITES = ["west_kent", "essex", "east_sussex_star", "herefordshire"]
NEW_SITES = SITES[1:]


def _raw(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("site", NEW_SITES)
def test_new_sites_extend_west_kent_through_their_uncalibrated_description(site):
    calibrated = _raw(SCENARIOS / f"{site}.toml")
    assert calibrated["extends"] == f"sites/{site}.toml"
    assert calibrated["name"] == site
    prior = _raw(SCENARIOS / "sites" / f"{site}.toml")
    assert prior["extends"] == "../west_kent.toml"
    # the calibrated file sets only what was fitted, each line saying so
    text = (SCENARIOS / f"{site}.toml").read_text()
    assert "Calibrated by `pbrsim calibrate`" in text and f"targets/{site}.toml" in text
    fitted = [line for line in text.splitlines() if line and not line.startswith("#")
              and not line.startswith(("extends", "name", "description"))]
    assert fitted and all("[D] fitted" in line for line in fitted)


@pytest.mark.parametrize("site", SITES)
def test_sites_name_their_targets_and_a_contract_that_fits_them(site):
    scenario = load_scenario(SCENARIOS / f"{site}.toml")
    targets = load_targets(SCENARIOS / "targets" / f"{site}.toml")
    assert targets.scenario_path().resolve() == (SCENARIOS / f"{site}.toml").resolve()
    assert any(t.role == "calibration" for t in targets.target)
    contract = load_contract(scenario.contract_path())
    check_contract(contract, scenario)


def test_herefordshire_is_within_tolerance_on_two_replications():
    """The fast version of the slow check below: the cheapest site on the replications it was fitted on."""
    scenario = load_scenario(SCENARIOS / "herefordshire.toml")
    table = check(scenario, load_targets(SCENARIOS / "targets" / "herefordshire.toml"), replications=2)
    fitted = table[table["role"] == "calibration"]
    assert fitted["within"].all(), table[["target", "figure", "tolerance", "simulated", "within"]]


@pytest.mark.slow
@pytest.mark.parametrize("site", SITES)
def test_every_site_is_within_tolerance_on_its_own_targets(site):
    scenario = load_scenario(SCENARIOS / f"{site}.toml")
    table = check(scenario, load_targets(SCENARIOS / "targets" / f"{site}.toml"), replications=6, workers=2)
    print(f"\n{site}:\n" + table[["target", "role", "figure", "tolerance", "simulated", "ci_low", "ci_high",
                                 "within"]].to_string(index=False))
    fitted = table[table["role"] == "calibration"]
    assert fitted["within"].all()
