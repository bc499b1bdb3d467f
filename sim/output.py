"""Writing a run's results: tables, period measures, a text summary and plots, into one directory that appears
whole or not at all (an interrupted run leaves the previous results as they were)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from . import __version__, measures, plots
from .history import History, replace_directory
from .scenario import Scenario


def summary_text(history: History, scenario: Scenario, wall_seconds: float | None = None) -> str:
    s = measures.summary(history)
    h = scenario.horizon
    lines = [
        f"pbrsim {__version__} — scenario {scenario.name}: {scenario.description}",
        f"seed {_seed_repr(history.seed)}; "
        f"reported {h.contract_start} to {h.end_date} (warm-up {h.warmup_years:g} years, not reported)",
        f"clients simulated {len(history.clients):,} ({int(history.clients['stock'].sum()):,} referred before the "
        f"contract start); episodes {len(history.episodes):,}",
    ]
    if wall_seconds is not None:
        lines.append(f"wall time {wall_seconds:.1f} s")
    lines += ["", "Per financial year, averaged over the horizon (successful completions: planned exits as a share "
              "of all in treatment, the NDTMS measure):", ""]
    table = s.rename(columns={
        "in_treatment_per_year": "in treatment", "treatment_starts_per_year": "starts",
        "successful_completions": "completions %", "planned_share_of_exits": "planned % of exits",
        "started_within_3_weeks": "start <= 3 wks %", "deaths_per_year": "deaths"})
    for col in ("completions %", "planned % of exits", "start <= 3 wks %"):
        table[col] = 100 * table[col]
    lines.append(table.round(1).to_string())
    return "\n".join(lines) + "\n"


def write_run(history: History, scenario: Scenario, out: Path, formats=("parquet", "csv"),
              with_plots: bool = True, wall_seconds: float | None = None) -> Path:
    """Write everything about one run under ``out``; returns ``out``."""
    quarterly = measures.all_breakdowns(history, "quarter")
    yearly = measures.all_breakdowns(history, "year")
    text = summary_text(history, scenario, wall_seconds)

    def build(tmp: Path) -> None:
        history.write(tmp / "tables", formats)
        quarterly.to_csv(tmp / "measures_quarter.csv", index=False)
        yearly.to_csv(tmp / "measures_year.csv", index=False)
        (tmp / "summary.txt").write_text(text)
        (tmp / "scenario.json").write_text(scenario.model_dump_json(indent=2))
        (tmp / "run.json").write_text(json.dumps({
            "pbrsim": __version__, "scenario": scenario.name, "seed": _seed_repr(history.seed),
            "wall_seconds": wall_seconds, "python": platform.python_version(), "machine": platform.machine(),
            "simpy_events": history.meta.get("simpy_events"),
        }, indent=2, default=str))
        if with_plots:
            (tmp / "plots").mkdir()
            q_all = quarterly[quarterly["breakdown"] == "all"]
            q_group = quarterly[quarterly["breakdown"] == "group"]
            y_group = yearly[yearly["breakdown"] == "group"]
            for name, fig in (("caseload_by_group", plots.caseload_by_group(q_group)),
                              ("waiting_list", plots.waiting_list(q_all)),
                              ("exits_by_type", plots.exits_by_type(q_all)),
                              ("completions_by_group", plots.completions_by_group(y_group))):
                fig.savefig(tmp / "plots" / f"{name}.png", dpi=110)
                plt.close(fig)

    replace_directory(Path(out), build)
    return Path(out)


def _seed_repr(seed) -> object:
    if hasattr(seed, "entropy"):
        if not seed.spawn_key:
            return seed.entropy
        return {"entropy": seed.entropy, "spawn_key": list(seed.spawn_key)}
    return seed


def read_measures(out: Path, freq: str = "year") -> pd.DataFrame:
    return pd.read_csv(Path(out) / f"measures_{freq}.csv")
