"""A behaviour sweep written out: its summary table, sensitivity indices and plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sim.experiments.statistics import mean_ci
from sim.experiments.behaviour_sweep import (
    BEHAVIOUR_CATEGORY,
    PBR_SHARE_PATH,
    STEEPNESS_PATH,
    SWEEP_INDEX_METRICS,
    SWEEP_MECHANISMS,
    behaviour_sweep_summary,
)
from sim.provider.outputs import TERM
from sim.report.audit import pyplot

if TYPE_CHECKING:
    pass



def plot_behaviour_sweep(spec, points: pd.DataFrame, table: pd.DataFrame, parameter: str | None = None,
                         title: str = ""):
    """The mechanism strengths and the total distortion (term, mean over replications, with 95% CIs) against
    one swept ``parameter`` (default the first): the U-shape of total distortion as band weights go from flat to
    steep shows here. Points of other parameters are averaged within each value."""
    from sim.experiments.sweep import applied_points

    plt = pyplot()
    parameter = parameter or spec.parameters[0].path
    x = applied_points(spec, points)[parameter].astype(float)
    term = table[(table["period"].astype(str) == TERM) & (table["category"] == BEHAVIOUR_CATEGORY)]
    term = term.assign(x=term["point"].map(x))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for metric in (*SWEEP_MECHANISMS, "distortion"):
        d = term[term["metric"] == metric]
        if d.empty:
            continue
        g = d.groupby("x")["value"]
        cis = [(v, mean_ci(grp)) for v, grp in g]
        stats_ = pd.DataFrame([(v, s.mean, s.ci_low, s.ci_high) for v, s in cis], columns=["x", "mean", "lo", "hi"])
        style = {"color": "black", "lw": 2.2} if metric == "distortion" else {"lw": 1.2}
        line, = ax.plot(stats_["x"], 100 * stats_["mean"], marker="o", label=metric.replace("_", " "), **style)
        if stats_["lo"].notna().any():
            ax.fill_between(stats_["x"], 100 * stats_["lo"], 100 * stats_["hi"], alpha=0.12, color=line.get_color())
    hint = {STEEPNESS_PATH: " (log of the Critical / Low weight; 0 = flat)", PBR_SHARE_PATH: " (every year)"}
    ax.set_xlabel(parameter + hint.get(parameter, ""))
    ax.set_ylabel("% of the clients, reviews or exits concerned")
    ax.set_title(title or f"{spec.name}: provider responses against {parameter}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def write_behaviour_sweep(spec, points: pd.DataFrame, table: pd.DataFrame, out: str | Path,
                          with_plots: bool = True) -> pd.DataFrame:
    """A behaviour sweep's design (``points.csv``), results (``results.parquet``), per-point summary
    (``summary.csv``), a plot per swept parameter (``distortion_<parameter>.png``) and, for Morris and Sobol'
    designs, the sensitivity indices of the metrics in :data:`SWEEP_INDEX_METRICS` (``indices_<metric>.csv`` and
    ``.png``). The run store (``runs/``) is left as it is."""
    from sim.engine.history import write_atomic
    from sim.experiments.sweep import applied_points

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = behaviour_sweep_summary(spec, points, table)
    write_atomic(out / "points.csv", lambda p: applied_points(spec, points).to_csv(p))
    write_atomic(out / "results.parquet", lambda p: table.to_parquet(p, index=False))
    write_atomic(out / "summary.csv", lambda p: summary.to_csv(p))
    plt = pyplot()
    if with_plots:
        for p in spec.parameters:
            fig = plot_behaviour_sweep(spec, points, table, p.path)
            name = p.path.replace("contract.", "").replace(".", "_")
            write_atomic(out / f"distortion_{name}.png", lambda f, fig=fig: fig.savefig(f, dpi=110, format="png"))
            plt.close(fig)
    if spec.design in ("morris", "sobol"):
        from sim.experiments import sweep as sweep_module

        for metric, category in SWEEP_INDEX_METRICS:
            indices = sweep_module.analyse(spec, points, table, metric, TERM, category)
            write_atomic(out / f"indices_{metric}.csv", lambda f, i=indices: i.to_csv(f, index=False))
            if with_plots:
                draw = sweep_module.plot_sobol if spec.design == "sobol" else sweep_module.plot_morris
                fig = draw(indices, title=f"{spec.design.title()} sensitivity of {metric} ({category})")
                write_atomic(out / f"indices_{metric}.png", lambda f, fig=fig: fig.savefig(f, dpi=110, format="png"))
                plt.close(fig)
    return summary
