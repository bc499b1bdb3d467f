"""The contract audit written out: a Markdown report, its plots (mechanism strengths, paired effects, the equity
gap, the cash path) and the tables, in one results folder (:func:`write_audit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import STRUCTURED_BANDS
from sim.experiments.audit import STRENGTH_SHARES, Audit
from sim.provider.features import percent
from sim.provider.outputs import METRICS, TERM

if TYPE_CHECKING:
    pass



# --- the report -------------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return ""
    a = abs(x)
    if a >= 1e4:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}" if a >= 0.001 or a == 0 else f"{x:.2e}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table (strings as they are, numbers by :func:`_fmt`)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        cells = [_fmt(v) if isinstance(v, (float, np.floating)) else str(v).replace("|", "/") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_ci(m: float, lo: float, hi: float) -> str:
    if not np.isfinite(m):
        return ""
    return _fmt(m) + (f" ({_fmt(lo)} to {_fmt(hi)})" if np.isfinite(lo) else "")


def _significant(row) -> bool:
    return np.isfinite(row["ci_low"]) and (row["ci_low"] > 0 or row["ci_high"] < 0)


def audit_report(audit: Audit) -> str:
    """The Markdown report of an audit."""
    c = audit.contract
    on_modes = [m for m in audit.modes if m != "off"]
    summary = audit.mechanism_summary()
    lines = [f"# What `{c.name}` invites: {audit.scenario}", "",
             f"{c.description}".strip(), "",
             f"{audit.replications} replication(s) from seed {audit.seed}, behaviour "
             f"{', '.join(audit.modes)} on common random numbers: every mode sees the same referrals until the "
             f"provider acts, and the provider's beliefs come from one contract-blind pilot run. Differences are paired "
             f"(mode minus off, replication by replication) with 95% confidence intervals; with one replication "
             f"there are no intervals. Bands are need bands (the independent assessment's), over the contract term "
             f"unless said. Every mechanism parameter is an estimate [E] (../shared/reference/provider-behaviour.md):"
             f" the evidence supports the direction of each response far better than its size.", ""]
    lines += ["## In brief", ""]
    for mode in on_modes:
        on = audit.switched_on(mode)
        s = audit.strengths[audit.strengths["mode"] == mode].mean(numeric_only=True)
        lines.append(f"* **{mode}**: gaming pressure {s['mean_pressure']:.3f} on average "
                     f"({percent(s['share_at_risk'])} of income at risk at the margin); mechanisms on: "
                     + (", ".join(f"{m.replace('_', ' ')} {percent(s[m])}" for m in on) or "none measurably") + ".")
        eff = audit.key_effects()
        eff = eff[(eff["mode"] == mode)]
        moved = eff[eff.apply(_significant, axis=1)] if audit.replications > 1 else eff[eff["difference"] != 0]
        moved = moved.reindex(moved["relative"].abs().sort_values(ascending=False).index).head(6)
        if len(moved):
            lines.append("  Largest paired changes: " + "; ".join(
                f"{r.metric.replace('_', ' ')} ({r.band}) {_fmt(r.off)} -> {_fmt(r.on)}" for r in moved.itertuples())
                + ".")
    if audit.tariff is not None:
        t = audit.tariff
        lines.append(f"* **Margin-neutral tariff check**: the design's band weights are {t.distance:.0%} from the "
                     f"margin-neutral weights and {t.steepness:.2f} times as steep (1 = neutral); they invite "
                     f"{t.invites}. {'Feasible' if t.feasible else 'Not feasible with outcome weights alone'}: "
                     + ("band weights alone can equalise margins." if t.feasible else
                        "a block or cost element for the high-need bands is needed."))
    lines += ["", "## Which mechanisms switch on, and how strongly", ""]
    table = summary.pivot_table(index=["measure", "description"], columns="mode", values="mean", sort=False)
    show = []
    for (measure, description), r in table.iterrows():
        cells = {"measure": measure, "what": description}
        for mode in audit.modes:
            row = summary[(summary["measure"] == measure) & (summary["mode"] == mode)].iloc[0]
            cells[mode] = _with_ci(row["mean"], row["ci_low"], row["ci_high"])
        show.append(cells)
    lines += [markdown_table(pd.DataFrame(show)), ""]
    lines += ["## What they do to the outputs (paired differences against behaviour off, over the term)", ""]
    eff = audit.key_effects()
    show = []
    for (metric, band), d in eff.groupby(["metric", "band"], sort=False):
        cells = {"output": metric, "band": band, "off": float(d["off"].iloc[0])}
        for mode in on_modes:
            r = d[d["mode"] == mode]
            cells[f"{mode} - off"] = _with_ci(*(r[["difference", "ci_low", "ci_high"]].iloc[0])) if len(r) else ""
        show.append(cells)
    lines += [markdown_table(pd.DataFrame(show)), "",
              "Every output, per contract year and band: `effects.csv`; definitions: `outputs_defined.csv`.", ""]
    lines += ["## The contract features responsible", "",
              "Which features of the design raise or damp which mechanism (provider-behaviour.md §3.10), with what "
              "was measured in the base mode.", "", markdown_table(audit.features), ""]
    if audit.tariff is not None:
        t = audit.tariff.table.reset_index()
        lines += ["## Margin-neutral tariff check", "",
                  "Band weights under which no band is more profitable to take on than another (w*_b U_b + F_b - s "
                  "c_b equal across bands, with the design's outcome money), from the behaviour-off run of "
                  "replication 0. Neutral levels do not remove parking (which follows the return to effort) nor "
                  "creaming within a band.", "",
                  markdown_table(t[["band", "starters", "unit_value", "cost", "design_weight", "neutral_weight",
                               "design_margin", "neutral_margin"]]), "",
                  f"Distance from neutral {audit.tariff.distance:.1%} (starter-weighted |w - w*| / w); margin spread "
                  f"{audit.tariff.margin_spread:.2f} R-bar; steepness {audit.tariff.steepness:.2f}.", ""]
    not_converged = audit.strengths[(audit.strengths["mode"] != "off") & (audit.strengths["converged"] < 1)]
    lines += ["## Notes", "",
              "* True outcomes leave out outcomes evidenced by a misrecorded TOP review; band drift counts as "
              "overpayment (`drift_overpayment`). Whether an outcome would have happened anyway is answered client "
              "by client against the behaviour-off run of the same seed: `outcomes_anyway`, `additional_outcomes`, "
              "`lost_outcomes` (held discharges: `held_outcomes`).",
              "* M5 gatekeeping acts through start delays (waits) and reserved places; the History records its "
              "effect, not each decision.",
              "* M7 runs as a fixed point outside the simulation: run, settle, cash response, capacity cuts and "
              "intake freezes, run again" + (f"; {len(not_converged)} run(s) had not converged after their "
                                             f"iterations." if len(not_converged) else "; every run converged."),
              ""]
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------------------------------


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported when a plot is drawn, not before)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MODE_COLOURS = {"off": "tab:grey", "base": "tab:blue", "calibrated": "tab:green", "stress": "tab:red"}


def plot_mechanisms(audit: Audit):
    """How strongly each mechanism acted, by mode (means with 95% CIs)."""
    plt = pyplot()
    summary = audit.mechanism_summary()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(STRENGTH_SHARES)
    x = np.arange(len(names))
    modes = [m for m in audit.modes if m != "off"]
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        d = summary[(summary["mode"] == mode)].set_index("measure").reindex(names)
        err = np.vstack([d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]])
        ax.bar(x + (i - (len(modes) - 1) / 2) * width, 100 * d["mean"], width,
               yerr=None if np.isnan(err).all() else 100 * np.nan_to_num(err), capsize=3,
               color=MODE_COLOURS.get(mode), label=mode)
    ax.set_xticks(list(x), [n.replace("_", " ") for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("% of the clients, reviews or exits concerned")
    ax.set_title(f"Mechanisms switched on under {audit.contract.name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_effects(audit: Audit):
    """Paired differences against behaviour off of the key outputs, relative to off (%), with 95% CIs."""
    plt = pyplot()
    eff = audit.key_effects()
    keys = list(dict.fromkeys(zip(eff["metric"], eff["band"])))
    labels = [f"{m.replace('_', ' ')} ({b})" for m, b in keys]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(labels) + 1.5))
    y = np.arange(len(labels))
    modes = [m for m in audit.modes if m != "off"]
    for i, mode in enumerate(modes):
        d = eff[eff["mode"] == mode].set_index(["metric", "band"]).reindex(keys)
        scale = 100 / d["off"].abs().where(d["off"].abs() > 0)
        rel, lo, hi = d["difference"] * scale, d["ci_low"] * scale, d["ci_high"] * scale
        ax.errorbar(rel, y + (i - (len(modes) - 1) / 2) * 0.3,
                    xerr=np.vstack([np.nan_to_num(rel - lo), np.nan_to_num(hi - rel)]), fmt="o", capsize=2,
                    color=MODE_COLOURS.get(mode), label=mode)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("change against behaviour off (% of the off value; gaps: of |off|)")
    ax.set_title("What the provider's response does (paired, over the term)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_equity(audit: Audit):
    """By need band, over the term: share of referrals starting and completions per referral, by mode."""
    plt = pyplot()
    out = audit.outputs[(audit.outputs["period"] == TERM) & audit.outputs["band"].isin(STRUCTURED_BANDS)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(STRUCTURED_BANDS))
    width = 0.8 / len(audit.modes)
    for ax, metric in zip(axes, ("share_starting", "completions_per_referral")):
        for i, mode in enumerate(audit.modes):
            d = out[(out["metric"] == metric) & (out["mode"] == mode)].groupby("band")["value"].mean()
            ax.bar(x + (i - (len(audit.modes) - 1) / 2) * width, d.reindex(STRUCTURED_BANDS), width,
                   color=MODE_COLOURS.get(mode), label=mode)
        ax.set_xticks(list(x), [b.title() for b in STRUCTURED_BANDS])
        ax.set_title(metric.replace("_", " "))
    axes[0].legend(fontsize=8)
    fig.suptitle("Equity by need band")
    fig.tight_layout()
    return fig


def plot_cash(audit: Audit):
    """The provider's reserve and capacity multiplier month by month (replication 0), by mode."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    if audit.cash is not None:
        for mode, d in audit.cash.groupby("mode", sort=False):
            top.plot(d["start"] / 365.25, d["reserve"] / 1e6, color=MODE_COLOURS.get(mode), label=mode)
            bottom.step(d["start"] / 365.25, d["capacity_multiplier"], where="post", color=MODE_COLOURS.get(mode))
    top.axhline(0, color="grey", lw=0.8)
    top.set_ylabel("reserve (£m)")
    top.legend(fontsize=8)
    bottom.set_ylabel("capacity multiplier")
    bottom.set_xlabel("years from the contract start")
    top.set_title("Provider cash (M7), replication 0")
    fig.tight_layout()
    return fig


def write_audit(audit: Audit, out: str | Path, with_plots: bool = True) -> Path:
    """Write an audit's tables (CSV), report (``report.md``) and plots under ``out``, whole or not at all."""
    from sim.engine.history import replace_directory

    def build(tmp: Path) -> None:
        audit.strengths.to_csv(tmp / "mechanisms.csv", index=False)
        audit.mechanism_summary().to_csv(tmp / "mechanism_summary.csv", index=False)
        audit.outputs.to_csv(tmp / "outputs.csv", index=False)
        pd.DataFrame(list(METRICS.items()), columns=["metric", "definition"]).to_csv(tmp / "outputs_defined.csv",
                                                                                   index=False)
        audit.effects.to_csv(tmp / "effects.csv", index=False)
        audit.key_effects().to_csv(tmp / "key_effects.csv", index=False)
        audit.features.to_csv(tmp / "features.csv", index=False)
        audit.provider.schedule.to_csv(tmp / "price_schedule.csv", index=False)
        if audit.tariff is not None:
            audit.tariff.table.to_csv(tmp / "tariff_check.csv")
        if audit.cash is not None:
            audit.cash.to_csv(tmp / "cash.csv", index=False)
        (tmp / "report.md").write_text(audit_report(audit))
        if with_plots:
            plt = pyplot()
            (tmp / "plots").mkdir()
            for name, draw in (("mechanisms", plot_mechanisms), ("effects", plot_effects),
                               ("equity", plot_equity), ("cash", plot_cash)):
                fig = draw(audit)
                fig.savefig(tmp / "plots" / f"{name}.png", dpi=110)
                plt.close(fig)

    return replace_directory(out, build, "audit")
