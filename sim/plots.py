"""Plots of the period measures (matplotlib, Agg backend): each function takes measure tables, returns a Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .vocabulary import GROUP_LABELS  # noqa: E402

EXIT_COLUMNS = {"planned_exits": "Planned (free of dependence)", "dropped_out": "Dropped out",
                "declined": "Declined", "transferred": "Transferred", "custody": "Custody",
                "died_in_treatment": "Died"}


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
