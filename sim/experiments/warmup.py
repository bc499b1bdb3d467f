"""The warm-up a scenario needs: :func:`sim.analysis.warmup.mser` on replications run from an empty system."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.analysis.warmup import mser, quarterly_measures


@dataclass(frozen=True)
class WarmupDiagnostic:
    """Per series (measure, category): the MSER-5 cut in years and whether it settled; ``needed_years``: the
    largest cut, rounded up to a whole year (None when some series had not settled within the first half of
    the run)."""

    table: pd.DataFrame
    needed_years: float | None
    run_years: float
    replications: int

    def text(self, scenario_warmup: float | None = None) -> str:
        shown = self.table.assign(settled=self.table["settled"].map({True: "yes", False: "NO"}))
        lines = [f"MSER-5 warm-up diagnostic on quarterly measures, {self.replications} replications of "
                 f"{self.run_years:g} years from an empty system ('years': the cut; 'settled': inside the run's "
                 "first half; 'level': the mean after the cut, a quarter)", "", shown.to_string(index=False, float_format=lambda x: f"{x:.2f}"), ""]
        if self.needed_years is None:
            lines.append(f"some series have not settled within the first half of {self.run_years:g} years: run longer "
                         "(--years)")
        else:
            lines.append(f"warm-up needed: {self.needed_years:g} years")
            if scenario_warmup is not None:
                verdict = "enough" if scenario_warmup >= self.needed_years else "TOO SHORT"
                lines.append(f"the scenario's warm-up: {scenario_warmup:g} years ({verdict})")
        return "\n".join(lines)


def warmup_diagnostic(scenario, replications: int = 5, years: float = 40.0, seed: int | None = None,
                      executor=None, min_mean: float = 5.0) -> WarmupDiagnostic:
    """Run ``scenario`` ``replications`` times from an empty system (no warm-up, no scheduled changes kept in
    place: they apply as written) for ``years`` and find the warm-up on every quarterly series with a mean of at
    least ``min_mean`` a quarter (sparser series are noise)."""
    from sim.experiments.core import replications as run_replications
    from sim.experiments.seeds import replication_seed

    base = scenario.with_changes({"horizon.warmup_years": 0, "horizon.years": years})
    root = scenario.seed if seed is None else seed
    tables = run_replications(_quarterly, [(base.raw(), replication_seed(root, r)) for r in range(replications)],
                              executor)
    means = sum(tables) / len(tables)
    rows = []
    for (measure, category), series in means.items():
        series = series.to_numpy(dtype=float)
        if np.nanmean(series) < min_mean:
            continue
        series = np.nan_to_num(series[:-1])  # the last quarter may be cut short by the horizon
        cut = mser(series)
        rows.append({"measure": measure, "category": category, "years": cut.observations / 4,
                     "settled": cut.settled, "level": float(series[cut.observations:].mean())})
    table = pd.DataFrame(rows).sort_values(["years", "measure"], ascending=[False, True], ignore_index=True)
    needed = float(np.ceil(table["years"].max())) if table["settled"].all() else None
    return WarmupDiagnostic(table=table, needed_years=needed, run_years=years, replications=replications)


def _quarterly(task) -> pd.DataFrame:
    """One replication's quarterly measures (a task a worker process can take: the scenario as its raw dict)."""
    from sim.config.scenario import scenario_from_dict
    from sim.engine.system import simulate

    raw, seed = task
    return quarterly_measures(simulate(scenario_from_dict(raw, "warm-up diagnostic"), seed))
