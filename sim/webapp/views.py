"""Figures (plotly) and tables for the page, from the tidy tables of :mod:`sim.webapp.runs`. Plain functions:
no Streamlit, so ordinary tests cover them. Money in pounds; shares as fractions unless a name says percent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sim.analysis.delivered import OBSERVABLE_TERM
from sim.experiments.compare import Comparison
from sim.experiments.cost_effectiveness import OUTCOME_UNITS
from sim.experiments.statistics import chance_text, ratio_of_means
from sim.money.settlement import METRICS
from sim.webapp.runs import GAMING, GAMING_COUNTS, OUTCOME_MEASURES, Activity, Settled, mean_ci, summarise

MEASURE_LABELS = {
    "in_treatment": "people in treatment", "treatment_starts": "treatment starts", "planned_exits": "planned exits",
    "successful_completions": "successful completions (share of those in treatment)",
    "planned_share_of_exits": "planned share of exits", "re_presentations": "re-presentations", "deaths": "deaths",
}
METRIC_LABELS = {**METRICS, "probability_of_loss": "probability the provider makes a loss over the term"}
SPEND_PER_RECOVERY = "Commissioner spend per sustained recovery (years with their 6-month follow-up closed)"
COLOURS = ["#1f5f8b", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d96a3", "#6a4c93", "#ff924c", "#2e4057",
           "#b5838d", "#52b788", "#7f5539", "#adb5bd"]


def money(x: float) -> str:
    """Pounds for people: £1.23m, £456k, £789."""
    if x is None or not np.isfinite(x):
        return "–"
    sign = "−" if x <= -0.5 else ""
    x = abs(x)
    if x >= 1e6:
        return f"{sign}£{x / 1e6:,.2f}m"
    if x >= 1e4:
        return f"{sign}£{x / 1e3:,.0f}k"
    return f"{sign}£{x:,.0f}"


def pounds_and_pence(x: float) -> str:
    return f"{'−' if x <= -0.005 else ''}£{abs(x):,.2f}"


def with_ci(mean: float, lo: float, hi: float, fmt=money) -> str:
    if not np.isfinite(mean):
        return "–"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return fmt(mean)
    return f"{fmt(mean)} ({fmt(lo)} to {fmt(hi)})"


def _band(fig: go.Figure, x, lo, hi, colour: str, name: str, showlegend: bool = False) -> None:
    """A shaded 95% band between two lines."""
    x = list(x)
    fig.add_trace(go.Scatter(x=x + x[::-1], y=list(hi) + list(lo)[::-1], fill="toself", fillcolor=colour,
                             opacity=0.2, mode="lines", line={"width": 0}, hoverinfo="skip", name=f"{name} (95% CI)",
                             showlegend=showlegend))


def _layout(fig: go.Figure, title: str, y: str, x: str = "", categories: bool = True) -> go.Figure:
    if categories:  # "2012-13" is a financial year, not December 2012
        fig.update_xaxes(type="category")
    fig.update_layout(title=title, yaxis_title=y, xaxis_title=x, template="plotly_white", height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    if y == "pounds":  # "£4,000,000", never "4M"
        fig.update_yaxes(tickprefix="£", tickformat=",.0f", title_text="£")
    return fig


# --- Results -------------------------------------------------------------------------------------------------


def headline(settled: Settled) -> dict[str, str]:
    """The page's headline figures over the term: means with 95% CIs across replications; spend per outcome as
    total spend over total outcomes with a bootstrap CI (not a mean of per-replication ratios); the chance of a
    loss as a count of replications, said with its resolution."""
    t = settled.term
    c = settled.commissioner
    observed = c[c["observed"].astype(bool)]
    losses = chance_text(int((t["margin"] < 0).sum()), len(t))
    out = {
        "Provider income": with_ci(*mean_ci(t["income"])),
        "Provider margin": with_ci(*mean_ci(t["margin"])),
        "Chance of a loss over the term": f"{losses} replications",
        "Working capital needed": with_ci(*mean_ci(t["working_capital_needed"])),
        "Commissioner spend (payments and assessments)": with_ci(*mean_ci(t["spend"])),
        "Commissioner spend per planned exit": with_ci(*ratio_of_means(t["spend"], t["planned_exits"])[:3]),
        # over the years whose 6-month follow-up has closed, as on Compare (sim.analysis.delivered)
        SPEND_PER_RECOVERY: with_ci(*ratio_of_means(*(t[k] for k in OBSERVABLE_TERM))[:3]),
        "Commissioner spend without assessments": with_ci(*mean_ci(t["spend"] - t["assessments"])),
        "Assessments (LASARS)": with_ci(*mean_ci(t["assessments"])),
    }
    if "community_savings_per_pound" in c.columns:
        saved = observed.groupby("replication")[["community_savings", "spend"]].sum(min_count=1)
        out["Community savings per £ spent"] = with_ci(*ratio_of_means(saved["community_savings"],
                                                                       saved["spend"])[:3], fmt=pounds_and_pence)
    return out


def headline_table(settled: Settled) -> pd.DataFrame:
    h = headline(settled)
    return pd.DataFrame({"over the term": list(h.values())}, index=pd.Index(list(h), name="figure"))


def outcomes_figure(act: Activity, metrics=("planned_exits", "treatment_starts", "in_treatment")) -> go.Figure:
    """Yearly measures (financial years): the mean over replications with a 95% band."""
    s = summarise(act.measures, "period", list(metrics), lower=0.0)  # counts and shares: never below 0
    fig = go.Figure()
    for i, m in enumerate(metrics):
        d = s[s["metric"] == m]
        colour = COLOURS[i % len(COLOURS)]
        if d["ci_low"].notna().any():
            _band(fig, d["period"], d["ci_low"], d["ci_high"], colour, MEASURE_LABELS.get(m, m))
        fig.add_trace(go.Scatter(x=d["period"], y=d["mean"], mode="lines+markers", name=MEASURE_LABELS.get(m, m),
                                 line={"color": colour}))
    return _layout(fig, "Outcomes per year (mean, 95% band over replications)", "people", "financial year")


def outcomes_table(act: Activity, metrics=OUTCOME_MEASURES) -> pd.DataFrame:
    """Per financial year: each measure's mean (95% CI)."""
    s = summarise(act.measures, "period", list(metrics), lower=0.0)  # counts and shares: never below 0
    fmt = {m: (lambda v: f"{v:.1%}") if m in ("successful_completions", "planned_share_of_exits")
           else (lambda v: f"{v:,.0f}") for m in metrics}
    s["value"] = [with_ci(r.mean, r.ci_low, r.ci_high, fmt=fmt[r.metric]) for r in s.itertuples()]
    table = s.pivot(index="period", columns="metric", values="value")
    table = table[[m for m in metrics if m in table.columns]]
    return table.rename(columns=MEASURE_LABELS).rename_axis(index="financial year", columns=None)


def paid_outcomes_table(settled: Settled) -> pd.DataFrame:
    """Outcomes paid for per contract year (mean number over replications) and the mean price paid by band."""
    p = settled.paid
    if p.empty:
        return pd.DataFrame()
    reps = settled.term["replication"].nunique()
    counts = p.groupby(["component", "contract_year"])["outcomes"].sum().div(reps).unstack("contract_year")
    counts.columns = [f"year {y}" for y in counts.columns]
    return counts.round(1).rename_axis("outcome")


def tariffs_table(settled: Settled) -> pd.DataFrame:
    """Average pounds paid per outcome, by outcome and band (after caps): the tariff by band in effect."""
    p = settled.paid
    if p.empty:
        return pd.DataFrame()
    g = p.groupby(["component", "band"])[["amount", "outcomes"]].sum()
    price = (g["amount"] / g["outcomes"].where(g["outcomes"] > 0)).unstack("band")
    order = [b for b in ("critical", "substantial", "moderate", "low", "no_need") if b in price.columns]
    return price[order].round(0).rename_axis("outcome")


def offending_figure(act: Activity, settled: Settled | None = None) -> go.Figure:
    """Recorded offences per cohort member per financial year against the baseline year (the year before the
    contract), mean and 95% band; the contract's fixed baseline if it sets one."""
    o = act.offending
    start = o[~o["contract"].astype(bool)]["period"].iloc[-1] if (~o["contract"].astype(bool)).any() else None
    shown = o[o["contract"].astype(bool) | (o["period"] == start)]
    s = summarise(shown, "period", ["offences_per_member"], lower=0.0)
    fig = go.Figure()
    if s["ci_low"].notna().any():
        _band(fig, s["period"], s["ci_low"], s["ci_high"], COLOURS[1], "offences per member")
    fig.add_trace(go.Scatter(x=s["period"], y=s["mean"], mode="lines+markers", name="recorded offences per "
                             "cohort member", line={"color": COLOURS[1]}))
    if start is not None:
        base = s.loc[s["period"] == start, "mean"]
        if len(base):
            fig.add_hline(y=float(base.iloc[0]), line_dash="dash", line_color="#555",
                          annotation_text=f"baseline ({start})", annotation_position="top left")
    if settled is not None and not settled.offending.empty:
        reductions = settled.offending.groupby("contract_year")["fraction_paid"].mean()
        fig.update_layout(annotations=list(fig.layout.annotations) + [dict(
            xref="paper", yref="paper", x=1, y=1.12, showarrow=False, xanchor="right",
            text="share of the offending pot paid: " + ", ".join(
                f"year {y} {reductions[y]:.0%}" for y in reductions.index if np.isfinite(reductions[y])))])
    return _layout(fig, "Offending against baseline", "recorded offences per cohort member", "financial year")


def income_figure(settled: Settled) -> go.Figure:
    """Provider income by component per contract year (mean over replications, stacked) and delivery cost."""
    inc = settled.income
    reps = settled.term["replication"].nunique()
    mean = inc.groupby(["contract_year", "component"], sort=False)["amount"].sum().div(reps).reset_index()
    fig = go.Figure()
    for i, comp in enumerate(mean["component"].unique()):
        d = mean[mean["component"] == comp]
        fig.add_trace(go.Bar(x=[f"year {y}" for y in d["contract_year"]], y=d["amount"], name=comp,
                             marker_color=COLOURS[i % len(COLOURS)]))
    cost = summarise(settled.by_year, "contract_year", ["cost"])
    fig.add_trace(go.Scatter(x=[f"year {y}" for y in cost["contract_year"]], y=cost["mean"], mode="lines+markers",
                             name="delivery cost", line={"color": "black", "dash": "dot"}))
    fig.update_layout(barmode="relative")
    return _layout(fig, "Provider income by component per contract year (mean)", "pounds", "contract year")


def income_table(settled: Settled) -> pd.DataFrame:
    """Mean income per component and contract year, with the cost and margin (pounds)."""
    reps = settled.term["replication"].nunique()
    table = settled.income.groupby(["component", "contract_year"], sort=False)["amount"].sum().div(reps).unstack()
    prov = settled.by_year.groupby("contract_year")[["income", "cost", "margin"]].mean().T
    table = pd.concat([table, prov])
    table.columns = [f"year {y}" for y in table.columns]
    return table.map(money).rename_axis("pounds (mean)")


def cash_figure(settled: Settled) -> go.Figure:
    """The provider's cumulative cash month by month: mean and the 5th to 95th percentile over replications."""
    c = settled.cash
    g = c.groupby("period")["cumulative_cash"]
    q = pd.DataFrame({"mean": g.mean(), "p5": g.quantile(0.05), "p95": g.quantile(0.95)}).sort_index()
    fig = go.Figure()
    _band(fig, q.index, q["p5"], q["p95"], COLOURS[0], "cumulative cash")
    fig.add_trace(go.Scatter(x=list(q.index), y=q["mean"], mode="lines", name="cumulative cash (mean)",
                             line={"color": COLOURS[0]}))
    fig.add_hline(y=0, line_color="#999")
    losses = chance_text(int((settled.term["margin"] < 0).sum()), len(settled.term))
    return _layout(fig, f"Provider's cumulative cash (5–95% band); a loss over the term in {losses} replications",
                   "pounds", "month", categories=False)


def commissioner_table(settled: Settled) -> pd.DataFrame:
    """Per contract year: spend, spend per planned exit and per sustained recovery, community savings per pound
    (mean and 95% CI over replications)."""
    cols = ["spend", "payments", "assessments", "planned_exits", "sustained_recoveries", "spend_per_planned_exit",
            "spend_per_sustained_recovery", "community_savings_per_pound"]
    s = summarise(settled.commissioner, "contract_year", cols)
    fmts = {"planned_exits": lambda v: f"{v:,.0f}", "sustained_recoveries": lambda v: f"{v:,.0f}",
            "community_savings_per_pound": pounds_and_pence}
    s["value"] = [with_ci(r.mean, r.ci_low, r.ci_high, fmt=fmts.get(r.metric, money)) for r in s.itertuples()]
    table = s.pivot(index="contract_year", columns="metric", values="value")
    table = table[[c for c in cols if c in table.columns]]
    table.index = [f"year {y}" for y in table.index]
    labels = {"spend": "spend (payments and assessments)", "payments": "payments to providers",
              "assessments": "assessments (LASARS)",
              "sustained_recoveries": "sustained recoveries (12 months; – until the year's window has closed)"}
    return table.rename(columns=lambda c: labels.get(c, c.replace("_", " "))).rename_axis("contract year")


# --- Compare -------------------------------------------------------------------------------------------------

SHOWN = {"income": "income", "margin": "margin", "working_capital_needed": "working capital needed",
         "spend": "spend (payments and assessments)", "assessments": "of which assessments",
         "spend_per_planned_exit": "spend per planned exit",
         "spend_per_sustained_recovery": "spend per sustained recovery (years with follow-up closed)",
         "community_savings": "community savings"}


def comparison_table(comp: Comparison) -> pd.DataFrame:
    """Per design: term totals, mean (95% CI), and the chance of a loss over the term (a count of replications,
    with its resolution) — formatted for the page."""
    s = comp.summary()
    out = pd.DataFrame(index=s.index)
    out["chance of a loss"] = s["losses"]
    for m, label in SHOWN.items():
        if m in s.columns:
            out[label] = [with_ci(v, lo, hi) if np.isfinite(lo) else money(v)
                          for v, lo, hi in zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"])]
    return out.rename_axis("design")


OUTCOMES_SHOWN = {"starts": "treatment starts", "in_treatment": "people in treatment (a year)",
                  "mean_wait_days": "mean wait (days)", "waited_over_3_weeks": "waited over 3 weeks",
                  "planned_exits": "planned exits",
                  "sustained_recoveries": "sustained recoveries (no referral within 6 months)",
                  "recorded_offences": "recorded offences", "deaths": "deaths"}


def _count(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def comparison_outcomes_table(comp: Comparison) -> pd.DataFrame:
    """Per design: what it buys over the term (people in treatment and waits: the mean of the years), mean
    (95% CI) across replications."""
    s = comp.summary()
    out = pd.DataFrame(index=s.index)
    for m, label in OUTCOMES_SHOWN.items():
        if m not in s.columns:
            continue
        share = m == "waited_over_3_weeks"
        fmt = (lambda v: "–" if not np.isfinite(v) else f"{v:.1%}") if share else _count
        out[label] = [with_ci(v, lo, hi, fmt=fmt) for v, lo, hi in zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"])]
    return out.rename_axis("design")


def outcome_differences_table(comp: Comparison) -> pd.DataFrame:
    """Paired differences in what each design buys against the first, replication by replication (95% CI)."""
    d = comp.paired_differences()
    if d.empty:
        return pd.DataFrame()
    d = d[d["metric"].isin(OUTCOMES_SHOWN)].copy()
    fmt = {m: ((lambda v: "–" if not np.isfinite(v) else f"{100 * v:+.1f} points") if m == "waited_over_3_weeks"
               else (lambda v: "–" if not np.isfinite(v) else f"{v:+,.1f}")) for m in OUTCOMES_SHOWN}
    d["difference"] = [with_ci(r.mean_difference, r.ci_low, r.ci_high, fmt=fmt[r.metric]) for r in d.itertuples()]
    table = d.pivot(index="contract", columns="metric", values="difference")
    table = table[[m for m in OUTCOMES_SHOWN if m in table.columns]].rename(columns=OUTCOMES_SHOWN)
    return table.reindex(comp.contracts[1:]).rename_axis(f"design minus {comp.contracts[0]}")


def differences_table(comp: Comparison) -> pd.DataFrame:
    """Paired differences of each design minus the first, replication by replication: mean (95% CI)."""
    d = comp.paired_differences()
    if d.empty:
        return pd.DataFrame()
    d = d[d["metric"].isin(SHOWN)]
    d["difference"] = [with_ci(r.mean_difference, r.ci_low, r.ci_high) for r in d.itertuples()]
    table = d.pivot(index="contract", columns="metric", values="difference")
    table = table[[m for m in SHOWN if m in table.columns]].rename(columns=SHOWN)
    ref = comp.contracts[0]
    return table.reindex(comp.contracts[1:]).rename_axis(f"design minus {ref}")


def differences_figure(comp: Comparison, metric: str = "margin") -> go.Figure:
    """Paired differences of one term total against the first design, with 95% CIs."""
    d = comp.paired_differences()
    d = d[d["metric"] == metric].round(2)  # whole pence: no floating-point dust on identical designs
    fig = go.Figure(go.Bar(
        x=d["contract"], y=d["mean_difference"], marker_color=COLOURS[0],
        error_y={"type": "data", "symmetric": False, "array": (d["ci_high"] - d["mean_difference"]).fillna(0),
                 "arrayminus": (d["mean_difference"] - d["ci_low"]).fillna(0)}))
    return _layout(fig, f"{METRIC_LABELS.get(metric, metric)}: each design minus {comp.contracts[0]} "
                        f"(paired, 95% CI)", "pounds", "")


def spend_per_exit_figure(comp: Comparison) -> go.Figure:
    """Commissioner spend per planned exit by design: total spend over total planned exits, with its bootstrap
    95% CI."""
    s = comp.summary()
    m = "spend_per_planned_exit"
    fig = go.Figure(go.Bar(x=list(s.index), y=s[m], marker_color=COLOURS[3],
                           error_y={"type": "data", "symmetric": False, "array": (s[f"{m}_ci_high"] - s[m]).fillna(0),
                                    "arrayminus": (s[m] - s[f"{m}_ci_low"]).fillna(0)}))
    return _layout(fig, "Commissioner spend per planned exit over the term", "pounds", "")


def gaming_table(per_design: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per indicator (rows) and design (columns), the gaming indicators of :func:`sim.webapp.runs.gaming` over
    the term: mean (95% CI) across replications; shares in percent."""
    counts = {label for (metric, _), label in GAMING.items() if metric in GAMING_COUNTS}

    def fmt(label):
        if label in counts:
            return lambda v: "–" if not np.isfinite(v) else f"{v:.2f}"
        return lambda v: "–" if not np.isfinite(v) else f"{v:.1%}"

    out = pd.DataFrame({label: [with_ci(*mean_ci(frame[label], lower=0.0), fmt=fmt(label))
                                for frame in per_design.values()] for label in GAMING.values()},
                       index=pd.Index(list(per_design), name="design"))
    return out.T.rename_axis("over the term")


# --- cost-effectiveness and the value of information (sim.experiments.cost_effectiveness) ----------------------


def _signed(x: float, fmt=money) -> str:
    return "–" if not np.isfinite(x) else ("+" if x > 0 else "") + fmt(x)


EXTRA_OUTCOME = {"sustained_recoveries": "extra sustained recoveries", "planned_exits": "extra planned exits",
                 "offences_averted": "offences averted"}


def incremental_table(ce) -> pd.DataFrame:
    """Each design against the reference: extra spend and extra outcome (paired, 95% CI) and the ICER or the
    verdict that stands in for it."""
    unit = OUTCOME_UNITS[ce.outcome]
    extra = EXTRA_OUTCOME[ce.outcome]
    rows = {}
    for r in ce.incremental.itertuples():
        rows[r.contract] = {
            "extra spend": with_ci(r.extra_spend, r.extra_spend_ci_low, r.extra_spend_ci_high, fmt=_signed),
            extra: with_ci(r.extra_outcome, r.extra_outcome_ci_low, r.extra_outcome_ci_high,
                           fmt=lambda v: _signed(v, lambda x: f"{x:,.1f}")),
            f"£ per extra {unit} (ICER)": money(r.icer) if np.isfinite(r.icer) else r.verdict,
        }
    versus = ce.incremental["versus"].iloc[0] if len(ce.incremental) else ""
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"design against {versus}")


def net_benefit_view(ce) -> pd.DataFrame:
    """Per design at the willingness to pay: the mean net monetary benefit, the incremental NMB against the
    reference (95% CI) and the chance it is the best design (a count of replications)."""
    t = ce.net_benefit
    out = pd.DataFrame(index=pd.Index(t["contract"], name="design"))
    out["net monetary benefit"] = [money(v) for v in t["net_benefit"]]
    out["against the reference"] = [with_ci(m, lo, hi, fmt=_signed) for m, lo, hi in
                                    zip(t["incremental_net_benefit"], t["inb_ci_low"], t["inb_ci_high"])]
    out["best in"] = [f"{b} replications" for b in t["best_in"]]
    return out


def acceptability_figure(ce) -> go.Figure:
    """The cost-effectiveness acceptability curves: per willingness to pay, the share of replications in which each
    design has the highest net monetary benefit; the asked-for value marked."""
    a = ce.acceptability
    fig = go.Figure()
    for i, (name, d) in enumerate(a.groupby("contract", sort=False)):
        fig.add_trace(go.Scatter(x=d["wtp"], y=d["probability_best"], mode="lines", name=name,
                                 line={"color": COLOURS[i % len(COLOURS)]}))
    for lam in ce.wtp:
        fig.add_vline(x=float(lam), line_dash="dot", line_color="#444")
    fig = _layout(fig, f"Chance each design is best, by willingness to pay per {OUTCOME_UNITS[ce.outcome]}",
                  "share of replications", f"willingness to pay (£ per {OUTCOME_UNITS[ce.outcome]})",
                  categories=False)
    fig.update_xaxes(tickprefix="£", tickformat=",.0f")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def value_of_information_text(ce, uncertain: bool) -> str:
    """The EVPI at the asked-for willingness to pay, in words, with what it counts."""
    v = ce.value_of_information
    row = v[v["asked"]].iloc[0]
    what = ("each replication carries its own draw of the scenario's uncertain values, so this counts the "
            "noise of single runs as well" if uncertain else
            "the scenario has no [uncertainty], so this is the value of knowing how the clients' histories turn "
            "out, not of research: read it as an upper bound")
    return (f"Expected value of perfect information at {money(row['wtp'])} per {OUTCOME_UNITS[ce.outcome]}: "
            f"{money(row['evpi'])} over the term ({money(row['evpi_per_year'])} a year) — the most it is worth "
            f"paying to remove the uncertainty before choosing; {what}. pbrsim compare --wtp on a scenario with "
            f"[uncertainty] and --runs-per-draw separates the two and adds the partial values (EVPPI).")
