"""Plots of the period measures (matplotlib, Agg backend): each function takes measure tables, returns a Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sim.core.vocabulary import GROUP_LABELS  # noqa: E402

EXIT_COLUMNS = {"planned_exits": "Planned (free of dependence)", "dropped_out": "Dropped out",
                "declined": "Declined", "withdrawn": "Withdrawn / moved away", "transferred": "Transferred",
                "custody": "Custody", "died_in_treatment": "Died"}


def caseload_by_group(by_group: pd.DataFrame, title: str = "") -> plt.Figure:
    """People in structured treatment each quarter, stacked by substance group."""
    wide = by_group.pivot(index="period", columns="category", values="in_treatment").fillna(0)
    wide = wide[[g for g in GROUP_LABELS if g in wide.columns]].rename(columns=GROUP_LABELS)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    wide.plot.bar(stacked=True, ax=ax, width=0.85)
    ax.set_ylabel("people in treatment in the quarter")
    ax.set_xlabel("")
    ax.set_title(title or "Caseload by substance group")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def waiting_list(overall: pd.DataFrame, title: str = "") -> plt.Figure:
    """Average waiting list for a caseload place, and the share starting within three weeks of referral."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = range(len(overall))
    ax.bar(x, overall["waiting_mean"], color="tab:orange", label="waiting for a caseload place (mean)")
    ax.set_ylabel("people waiting (time average)")
    ax.set_xticks(list(x), overall["period"], rotation=90)
    ax2 = ax.twinx()
    ax2.plot(list(x), 100 * overall["started_within_3_weeks"], color="tab:blue", marker="o",
             label="started within 3 weeks (%)")
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("% of starts within 3 weeks of referral")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="lower right", fontsize=8)
    ax.set_title(title or "Waiting list and waits")
    fig.tight_layout()
    return fig


def exits_by_type(overall: pd.DataFrame, title: str = "") -> plt.Figure:
    """Treatment exits each quarter, stacked by reason."""
    wide = overall.set_index("period")[list(EXIT_COLUMNS)].rename(columns=EXIT_COLUMNS)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    wide.plot.bar(stacked=True, ax=ax, width=0.85)
    ax.set_ylabel("exits in the quarter")
    ax.set_xlabel("")
    ax.set_title(title or "Exits from structured treatment by reason")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def completions_by_group(by_group_year: pd.DataFrame, title: str = "") -> plt.Figure:
    """Successful completions as a share of all in treatment, per financial year and group (NDTMS measure)."""
    wide = by_group_year.pivot(index="period", columns="category", values="successful_completions")
    wide = wide[[g for g in GROUP_LABELS if g in wide.columns]].rename(columns=GROUP_LABELS) * 100
    fig, ax = plt.subplots(figsize=(9, 4.5))
    wide.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("% of people in treatment completing")
    ax.set_xlabel("financial year")
    ax.set_title(title or "Successful completions as a share of all in treatment")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- contracts ---------------------------------------------------------------------------------------------------


def income_by_component(income: pd.DataFrame, title: str = "") -> plt.Figure:
    """Provider income per contract year, stacked by component (pounds, shown in thousands)."""
    parts = income.drop(columns=["total"], errors="ignore")
    parts = parts.loc[:, (parts != 0).any()] / 1e3
    fig, ax = plt.subplots(figsize=(9, 4.5))
    parts.plot.bar(stacked=True, ax=ax, width=0.8)
    ax.set_xlabel("contract year")
    ax.set_ylabel("income (£ thousand)")
    ax.set_title(title or "Provider income by component")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def cumulative_cash(cash: pd.DataFrame, title: str = "") -> plt.Figure:
    """The provider's cumulative cash position month by month: income received less delivery cost."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(range(len(cash)), cash["cumulative_cash"] / 1e3, marker=".")
    ax.axhline(0, color="grey", lw=0.8)
    ticks = list(range(0, len(cash), 6))
    ax.set_xticks(ticks, cash["period"].iloc[ticks], rotation=90)
    ax.set_ylabel("cumulative cash (£ thousand)")
    ax.set_title(title or "Provider cash position (payment lags included)")
    fig.tight_layout()
    return fig


def offending_against_baseline(offending: pd.DataFrame, title: str = "") -> plt.Figure:
    """The offending measure per contract year against its baseline, and the share of the pot it earns."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = offending["contract_year"].astype(str)
    ax.bar(x, offending["measure"], color="tab:purple", label="offending measure")
    ax.axhline(offending["baseline"].iloc[0], color="black", ls="--", label="baseline")
    ax.set_xlabel("contract year")
    ax.set_ylabel(offending["unit"].iloc[0] if "unit" in offending else "recorded offences")
    ax2 = ax.twinx()
    ax2.plot(x, 100 * offending["fraction_paid"], color="tab:green", marker="o", label="share of pot paid (%)")
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("% of the offending pot paid")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="lower right", fontsize=8)
    ax.set_title(title or "Offending against baseline (Home Office cohort model)")
    fig.tight_layout()
    return fig


def cost_per_outcome(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Commissioner spend per planned exit under each contract (total spend over total planned exits), with its
    bootstrap 95% confidence interval."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    m = "spend_per_planned_exit"
    ci = [(summary[m] - summary[f"{m}_ci_low"]).fillna(0), (summary[f"{m}_ci_high"] - summary[m]).fillna(0)]
    ax.bar(summary.index, summary[m], yerr=ci, capsize=4, color="tab:blue")
    ax.set_ylabel("spend per planned exit (£)")
    ax.set_title(title or "Commissioner cost per planned exit, by contract")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def paired_differences(diffs: pd.DataFrame, metric: str = "margin", title: str = "") -> plt.Figure:
    """Paired differences against the first contract, with 95% confidence intervals (pounds, in thousands)."""
    d = diffs[diffs["metric"] == metric]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    y = range(len(d))
    ax.errorbar(d["mean_difference"] / 1e3, list(y), xerr=(d["ci_high"] - d["mean_difference"]).fillna(0) / 1e3,
                fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(list(y), d["contract"])
    ref = d["versus"].iloc[0] if len(d) else ""
    ax.set_xlabel(f"{metric} over the term minus {ref} (£ thousand)")
    ax.set_title(title or f"Paired differences in {metric} against {ref}")
    fig.tight_layout()
    return fig


# --- cost-effectiveness and the value of information (sim.experiments.cost_effectiveness) ----------------------------

def _pounds(ax, axis: str = "y") -> None:
    """Tick labels in pounds with thousands separators (never '4M')."""
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda v, _: f"£{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def cost_effectiveness_plane(term: pd.DataFrame, contracts: list[str], outcome: str, wtp, unit: str,
                             title: str = "") -> plt.Figure:
    """Each design against the first, one point per replication: extra outcome (x) and extra spend (y), with the
    mean marked and a line for each willingness to pay (designs below a line are cost-effective at it)."""
    import numpy as np

    from sim.experiments.cost_effectiveness import effects

    e = effects(term, outcome)
    spend = e.pivot(index="replication", columns="contract", values="spend")
    effect = e.pivot(index="replication", columns="contract", values="effect")
    ref = contracts[0]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, name in enumerate(contracts[1:]):
        colour = f"C{i}"
        dx, dy = effect[name] - effect[ref], spend[name] - spend[ref]
        ax.scatter(dx, dy, s=14, alpha=0.5, color=colour, label=name)
        ax.scatter([dx.mean()], [dy.mean()], s=90, marker="D", color=colour, edgecolor="black")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    xmax = max(float(np.nanmax(np.abs(ax.get_xlim()))), 1.0)
    xs = np.array([-xmax, xmax])
    for lam in np.atleast_1d(wtp):
        ax.plot(xs, lam * xs, ls="--", lw=0.8, color="black")
        ax.annotate(f"£{lam:,.0f} per {unit}", (xs[1], lam * xs[1]), fontsize=7, ha="right", va="bottom")
    ax.set_xlim(-xmax, xmax)
    ax.set_xlabel(f"extra {unit}s over the term against {ref}")
    ax.set_ylabel(f"extra commissioner spend against {ref}")
    _pounds(ax)
    ax.set_title(title or "Cost-effectiveness plane (each point a replication; diamonds the means)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def acceptability_curves(acceptability: pd.DataFrame, unit: str, title: str = "") -> plt.Figure:
    """The chance each design has the highest net benefit, over the willingness to pay; the frontier (the design
    with the highest expected net benefit) drawn thick."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, d) in enumerate(acceptability.groupby("contract", sort=False)):
        ax.plot(d["wtp"], d["probability_best"], color=f"C{i}", label=name)
        on = d["probability_best"].where(d["on_frontier"])
        ax.plot(d["wtp"], on, color=f"C{i}", lw=4, alpha=0.6)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"willingness to pay per {unit}")
    _pounds(ax, "x")
    ax.set_ylabel("chance of the highest net benefit")
    ax.set_title(title or "Acceptability curves (thick: the design with the highest expected net benefit)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def value_of_information(voi: pd.DataFrame, unit: str, title: str = "") -> plt.Figure:
    """The expected value of perfect information on the choice of design, per contract year, over the
    willingness to pay."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(voi["wtp"], voi["evpi_per_year"], color="C3")
    ax.set_xlabel(f"willingness to pay per {unit}")
    _pounds(ax, "x")
    ax.set_ylabel("EVPI per contract year")
    _pounds(ax)
    ax.set_title(title or "Expected value of perfect information on the choice of design")
    fig.tight_layout()
    return fig


def partial_value_of_information(evppi: pd.DataFrame, title: str = "") -> plt.Figure:
    """EVPPI per contract year of each parameter and group, at each willingness to pay asked for."""
    wide = evppi.pivot_table(index="group", columns="wtp", values="evppi_per_year", sort=False)
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(wide) + 1.8))
    wide.rename(columns=lambda w: f"£{w:,.0f}").plot.barh(ax=ax, width=0.8)
    ax.set_xlabel("EVPPI per contract year")
    _pounds(ax, "x")
    ax.set_ylabel("")
    ax.legend(title="willingness to pay", fontsize=8)
    ax.set_title(title or "Partial value of information (regression method, Strong et al. 2014)")
    fig.tight_layout()
    return fig


def convergence(table: pd.DataFrame, target: float, title: str = "") -> plt.Figure:
    """Relative 95% CI half-width of each output against the number of replications, with the target line."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for (period, category, metric), d in table.groupby(["period", "category", "metric"], sort=False):
        ax.plot(d["replications"], d["relative_half_width"], lw=0.9, alpha=0.8, label=f"{metric} ({category}, {period})")
    ax.axhline(target, color="black", ls="--", lw=1, label=f"target {target:.0%}")
    ax.set_yscale("log")
    ax.set_xlabel("replications")
    ax.set_ylabel("95% CI half-width / |mean|")
    ax.set_title(title or "How the confidence intervals narrow with replications")
    if table.groupby(["period", "category", "metric"]).ngroups <= 12:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def optimisation(trials: pd.DataFrame, objective: str, title: str = "") -> plt.Figure:
    """The objective of every candidate in trial order (feasible filled, infeasible hollow) and the best feasible
    so far."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ok = trials["feasible"].astype(bool)
    ax.scatter(trials.loc[ok, "trial"], trials.loc[ok, "objective"], s=18, color="tab:blue", label="feasible")
    ax.scatter(trials.loc[~ok, "trial"], trials.loc[~ok, "objective"], s=18, facecolors="none",
               edgecolors="tab:red", label="breaks a constraint")
    best = trials["objective"].where(ok).cummax()
    ax.step(trials["trial"], best, where="post", color="black", lw=1, label="best feasible so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective.replace("_", " "))
    ax.set_title(title or "The search for the best design")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
