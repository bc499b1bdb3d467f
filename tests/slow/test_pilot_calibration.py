"""Issue 19: the calibrated provider reproduces the national pilot evaluation's two year-1 findings (slow:
``pytest -m slow``).

West Kent's pilot (LASARS, its PbR contract, the provider's ``calibrated`` profile) against its counterfactual (the
provider assessing at intake, block), 20 paired replications, as ``pbrsim calibrate`` and ``pbrsim evaluate-pilot``
run them: the odds ratios of successful completion and of declining to continue in the first contract year lie
inside the published 95% intervals (Mason et al. 2015: 0.859, 0.788-0.937; 2.934, 2.094-4.113). The fitted values
are the profile's defaults in ``sim/config/behaviour.py``; the scenario sets none of them.
"""

from __future__ import annotations

import pytest

from sim import load_scenario
from sim.config.targets import load_targets
from sim.experiments.calibrate import check, current_value
from tests.conftest import SCENARIOS

pytestmark = pytest.mark.slow
FITTED = ("behaviour.discharge_timing.caution.calibrated", "behaviour.discharge_timing.held_decline_per_week.calibrated")


def test_the_calibrated_provider_reproduces_both_year_one_odds_ratios():
    targets = load_targets(SCENARIOS / "targets" / "pilot_evaluation.toml")
    scenario = load_scenario(targets.scenario_path())
    assert scenario.behaviour.mode == "calibrated"
    assert "behaviour" not in scenario.raw() or "discharge_timing" not in scenario.raw()["behaviour"]
    assert all(current_value(scenario, p) > 0 for p in FITTED)
    table = check(scenario, targets, replications=20, workers=2)
    assert len(table) == 2
    assert table["within"].all(), table[["target", "figure", "simulated", "ci_low", "ci_high"]].to_string()
