"""The shipped example sweep, 200 points x 5 replications of West Kent's two-year term after its 20-year warm-up, on
two local processes (slow: ``pytest -m slow``; about six minutes on two cores, its runs sharing 285 Histories)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.experiments.executors import ProcessExecutor
from sim.experiments.sweep import analyse, design_points, load_sweep, run_sweep
from tests.conftest import SCENARIOS

pytestmark = pytest.mark.slow


def test_west_kent_contract_sensitivity_sweep(tmp_path):
    spec = load_sweep(SCENARIOS / "sweeps" / "west_kent_contract_sensitivity.toml")
    assert len(design_points(spec)) >= 200 and spec.replications >= 5
    with ProcessExecutor(2) as executor:
        points, table = run_sweep(spec, executor, store=tmp_path / "runs")
    runs = table[["point", "replication"]].drop_duplicates()
    assert len(runs) == len(points) * spec.replications
    indices = analyse(spec, points, table, "margin", "term", "contract")
    assert np.isfinite(indices["mu_star"]).all()
    # more recovery workers cost more: the staff budget is the largest lever on the provider's margin here
    top = indices.sort_values("mu_star", ascending=False).iloc[0]["parameter"]
    assert top == "capacity.recovery_workers", indices
