"""The in-silico pilot evaluation written out: ``evaluation.csv`` (the pilot against its counterfactual),
``evaluation_parts.csv`` (the same split into the system-design and payment parts), ``counts.csv`` (every arm and
replication), ``evaluation.md`` and a forest plot (:func:`write_pilot_evaluation`), whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.analysis.evaluation import PILOT_MEASURES
from sim.experiments.pilot import COMPARISONS, EVALUATION_COLUMNS, JOURNEYS, PilotEvaluation
from sim.report.audit import markdown_table, pyplot

PUBLISHED_Y1 = {  # Mason et al. 2015, first year, multilevel logit (the figures a calibration may be fitted to)
    "successful_completion_y1": (0.859, 0.788, 0.937),
    "declined_y1": (2.934, 2.094, 4.113),
}


def _interval(row) -> str:
    if not (np.isfinite(row.ci_low) and np.isfinite(row.ci_high)):
        return ""
    return f"{row.ci_low:.3g}-{row.ci_high:.3g}"


def pilot_report(evaluation: PilotEvaluation) -> str:
    """``evaluation.md``: what was run, the table, the split, and the year-1 figures beside the published ones."""
    table = evaluation.table()
    blind = evaluation.behaviour == "off"
    lines = [
        "# The PbR pilot evaluation, in silico", "",
        f"Pilot: `{evaluation.scenario}` under `{evaluation.contract}`, provider behaviour `{evaluation.behaviour}`. "
        f"Counterfactual: `{evaluation.counterfactual}` under `{evaluation.counterfactual_contract}`. "
        f"{evaluation.replications} paired replications (root seed {evaluation.seed}; replication r on the same seed "
        "in every arm). Drug clients only; measures over the first contract year (`_y1`) or the first two "
        "(definitions: `sim/analysis/evaluation.py`, README). Odds ratios pool the replications' counts; their "
        "95% intervals come from the spread of the paired per-replication log odds ratios.", "",
    ]
    if blind:
        lines += ["**The provider is contract-blind** (behaviour off): the pilot differs from the counterfactual only "
                  "in its system (LASARS) and its payments, and the payment part of every measure is exactly nil by "
                  "construction.", ""]
    shown = table.assign(interval=[_interval(r) for r in table.itertuples()])
    lines += ["## Pilot against counterfactual", "",
              markdown_table(shown[["measure", "counterfactual_rate", "pilot_rate", "odds_ratio", "interval",
                               "statistic"]]), ""]
    parts = evaluation.parts()
    split = parts.pivot_table(index="measure", columns="comparison", values="odds_ratio", sort=False)
    split = split.reindex(index=list(PILOT_MEASURES) + [JOURNEYS], columns=list(COMPARISONS)).reset_index()
    lines += ["## Where the effect comes from", "",
              "The pilot effect split in two: the system-design part (the pilot's system, LASARS, under the "
              "counterfactual's contract, against the counterfactual) and the payment part (the pilot against that "
              "arm: the provider's response to the contract). Ratios multiply (differences add) across the parts.",
              "", markdown_table(split), ""]
    rows = []
    for name, (ratio, low, high) in PUBLISHED_Y1.items():
        r = table.set_index("measure").loc[name]
        within = low <= r.odds_ratio <= high
        rows.append((name, f"{ratio} ({low}-{high})", f"{r.odds_ratio:.3g} ({_interval(r)})",
                     "yes" if within else "no"))
    lines += ["## The first year beside the national evaluation", "",
              "Mason, Sutton, Whittaker et al., Addiction 2015; 110(7):1120-8: successful completion OR 0.859 "
              "(0.788-0.937), declining to continue OR 2.934 (2.094-4.113). The later measures are reported, not "
              "fitted: their published values are kept aside as an out-of-sample check.", "",
              markdown_table(pd.DataFrame(rows, columns=["measure", "published OR (95% CI)", "simulated OR (95% CI)",
                                                    "simulated within the published CI"])), ""]
    return "\n".join(lines)


def plot_forest(evaluation: PilotEvaluation):
    """Odds (rate) ratios of the pilot against the counterfactual with their 95% intervals, on a log scale."""
    plt = pyplot()
    table = evaluation.table()
    ratios = table[table["measure"] != JOURNEYS].iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(ratios) + 1.6))
    y = np.arange(len(ratios))
    low = (ratios["odds_ratio"] - ratios["ci_low"]).clip(lower=0)
    high = (ratios["ci_high"] - ratios["odds_ratio"]).clip(lower=0)
    ax.errorbar(ratios["odds_ratio"], y, xerr=[low, high], fmt="o", color="tab:blue", capsize=3,
                label="simulated (95% CI)")
    for i, name in enumerate(ratios["measure"]):
        if name in PUBLISHED_Y1:
            ratio, lo, hi = PUBLISHED_Y1[name]
            ax.errorbar([ratio], [i - 0.25], xerr=[[ratio - lo], [hi - ratio]], fmt="s", color="tab:red",
                        capsize=3, label="published (Mason et al. 2015)" if name == "successful_completion_y1" else None)
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    finite = np.r_[ratios["ci_low"], ratios["ci_high"], 0.7, 4.5]
    finite = finite[np.isfinite(finite) & (finite > 0)]
    ax.set_xlim(max(finite.min() * 0.9, 0.05), min(finite.max() * 1.1, 20))
    ax.set_yticks(y, ratios["measure"])
    ax.set_xlabel("pilot against counterfactual: odds ratio (rate ratio for acquisitive_crime), log scale")
    ax.set_title(f"{evaluation.scenario}: {evaluation.replications} paired replications, "
                 f"behaviour {evaluation.behaviour}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def write_pilot_evaluation(evaluation: PilotEvaluation, out, with_plots: bool = True) -> Path:
    """Write the evaluation's tables, report and forest plot under ``out``, whole or not at all."""
    from sim.engine.history import replace_directory

    def build(tmp: Path) -> None:
        evaluation.table()[EVALUATION_COLUMNS].to_csv(tmp / "evaluation.csv", index=False)
        evaluation.parts().to_csv(tmp / "evaluation_parts.csv", index=False)
        evaluation.counts.to_csv(tmp / "counts.csv", index=False)
        (tmp / "evaluation.md").write_text(pilot_report(evaluation))
        if with_plots:
            plt = pyplot()
            fig = plot_forest(evaluation)
            fig.savefig(tmp / "forest.png", dpi=110)
            plt.close(fig)

    return replace_directory(out, build, "pilot-evaluation")

