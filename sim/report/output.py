"""Writing a run's results: tables, period measures, a text summary and plots, into one directory that appears
whole or not at all (an interrupted run leaves the previous results as they were)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib.pyplot as plt

from sim.analysis import measures
from sim.config.scenario import Scenario
from sim.core.version import __version__
from sim.engine.history import History, replace_directory
from sim.money import settlement as settlement_module
from sim.report import plots


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


def contract_text(settlement) -> str:
    """The income projection in words and tables, for the summary."""
    c = settlement.contract
    provider = settlement_module.provider_by_year(settlement)
    commissioner = settlement_module.commissioner_by_year(settlement)
    shares = ", ".join(f"{100 * c.share(k):.0f}%" for k in settlement.years["contract_year"])
    lines = ["", f"Contract {c.name}: {c.description}",
             f"£{c.annual_value:,.0f} a year; share paid on outcomes by contract year: {shares}", "",
             "Provider, per contract year (£ thousand):", ""]
    cols = [col for col in provider.columns if col not in ("observed",)]
    lines.append((provider[cols] / 1e3).round(1).T.to_string())
    lines += ["", "Commissioner, per contract year:", ""]
    lines.append(commissioner.drop(columns=["observed"]).round(2).T.to_string())
    investor = settlement_module.investor_view(settlement)
    if investor is not None:
        lines += ["", "Investor:", "", investor.round(4).T.to_string()]
    return "\n".join(lines) + "\n"


def write_run(history: History, scenario: Scenario, out: Path, formats=("parquet", "csv"),
              with_plots: bool = True, wall_seconds: float | None = None, settlement=None) -> Path:
    """Write everything about one run under ``out`` (and its settlement under a contract, if given)."""
    quarterly = measures.all_breakdowns(history, "quarter")
    yearly = measures.all_breakdowns(history, "year")
    text = summary_text(history, scenario, wall_seconds)
    if settlement is not None:
        text += contract_text(settlement)

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
        if settlement is not None:
            write_settlement(settlement, tmp / "contract", with_plots)

    return replace_directory(out, build, "run")


def write_settlement(settlement, folder: Path, with_plots: bool = True) -> None:
    """The contract's tables (payments, income, provider and commissioner views, cash, offending) and plots."""
    folder.mkdir(parents=True, exist_ok=True)
    st = settlement_module
    settlement.payments.to_csv(folder / "payments.csv", index=False)
    settlement.income_by_year().to_csv(folder / "income_by_year.csv")
    st.provider_by_year(settlement).to_csv(folder / "provider_by_year.csv")
    st.commissioner_by_year(settlement).to_csv(folder / "commissioner_by_year.csv")
    cash = st.monthly_cash(settlement)
    cash.to_csv(folder / "cash_monthly.csv", index=False)
    if len(settlement.offending):
        settlement.offending.to_csv(folder / "offending_by_year.csv", index=False)
    investor = st.investor_view(settlement)
    if investor is not None:
        investor.to_csv(folder / "investor.csv", index=False)
    (folder / "contract.json").write_text(settlement.contract.model_dump_json(indent=2))
    if with_plots:
        figures = [("income_by_component", plots.income_by_component(settlement.income_by_year())),
                   ("cumulative_cash", plots.cumulative_cash(cash))]
        if len(settlement.offending):
            figures.append(("offending_against_baseline", plots.offending_against_baseline(settlement.offending)))
        for name, fig in figures:
            fig.savefig(folder / f"{name}.png", dpi=110)
            plt.close(fig)


def write_comparison(comparison, folder: Path, with_plots: bool = True, economics=None, scenario=None,
                     contracts=()) -> None:
    """A paired comparison's tables and plots (and, with ``economics``: a
    :class:`sim.experiments.cost_effectiveness.CostEffectiveness`, its tables and plots; with ``scenario`` and
    ``contracts``, each as run, as JSON under ``inputs/`` for ``pbrsim report``), in a folder that appears whole or
    not at all."""

    def build(tmp: Path) -> None:
        if scenario is not None:
            (tmp / "inputs").mkdir()
            (tmp / "inputs" / "scenario.json").write_text(scenario.model_dump_json(indent=2))
            for c in contracts:
                (tmp / "inputs" / f"contract_{c.name}.json").write_text(c.model_dump_json(indent=2))
        comparison.summary().to_csv(tmp / "summary.csv")
        comparison.paired_differences().to_csv(tmp / "paired_differences.csv", index=False)
        comparison.offending_lottery().to_csv(tmp / "offending.csv", index=False)
        comparison.by_year.to_csv(tmp / "by_year.csv", index=False)
        comparison.term.to_csv(tmp / "term.csv", index=False)
        comparison.fingerprints.to_csv(tmp / "fingerprints.csv", index=False)
        if comparison.parameters is not None:  # the parameter draw of every replication (PSA)
            comparison.parameters.to_csv(tmp / "parameters.csv", index=False)
        if with_plots:
            for name, fig in (("cost_per_outcome", plots.cost_per_outcome(comparison.summary())),
                              ("paired_margin", plots.paired_differences(comparison.paired_differences(), "margin")),
                              ("paired_spend", plots.paired_differences(comparison.paired_differences(), "spend"))):
                fig.savefig(tmp / f"{name}.png", dpi=110)
                plt.close(fig)
        if economics is not None:
            write_economics(comparison, economics, tmp, with_plots)

    replace_directory(folder, build, "compare")


def write_convergence(table, needed, folder: Path) -> None:
    """convergence.csv and convergence.png: each output's relative CI half-width replication by replication."""
    from sim.engine.history import write_atomic

    write_atomic(Path(folder) / "convergence.csv", lambda p: table.to_csv(p, index=False))
    fig = plots.convergence(table, needed.relative_half_width)
    write_atomic(Path(folder) / "convergence.png", lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write_economics(comparison, ce, folder: Path, with_plots: bool) -> None:
    """cost_effectiveness.csv (incremental analysis), net_benefit.csv, acceptability.csv,
    value_of_information.csv (EVPI over the willingness to pay), evppi.csv, and their plots."""
    from sim.experiments.cost_effectiveness import OUTCOME_UNITS

    ce.incremental.to_csv(folder / "cost_effectiveness.csv", index=False)
    ce.net_benefit.to_csv(folder / "net_benefit.csv", index=False)
    ce.acceptability.to_csv(folder / "acceptability.csv", index=False)
    ce.value_of_information.to_csv(folder / "value_of_information.csv", index=False)
    ce.evppi.to_csv(folder / "evppi.csv", index=False)
    if not with_plots:
        return
    unit = OUTCOME_UNITS[ce.outcome]
    figures = [("acceptability", plots.acceptability_curves(ce.acceptability, unit)),
               ("value_of_information", plots.value_of_information(ce.value_of_information, unit))]
    if len(comparison.contracts) > 1:
        figures.append(("cost_effectiveness_plane", plots.cost_effectiveness_plane(
            comparison.term, comparison.contracts, ce.outcome, ce.wtp, unit)))
    if ce.evppi["evppi"].notna().any():
        figures.append(("evppi", plots.partial_value_of_information(ce.evppi)))
    for name, fig in figures:
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)


def _seed_repr(seed) -> object:
    if hasattr(seed, "entropy"):
        if not seed.spawn_key:
            return seed.entropy
        return {"entropy": seed.entropy, "spawn_key": list(seed.spawn_key)}
    return seed


def write_sweep(spec, points, table, out: Path, metrics: list[str]) -> dict:
    """A sweep's design, results and, for Sobol and Morris designs, the sensitivity indices of each metric
    (term totals for contract metrics, the mean over years otherwise) with their plots."""
    from sim.engine.history import write_atomic
    from sim.experiments import sweep as sweep_module

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "points.csv", lambda p: sweep_module.applied_points(spec, points).to_csv(p))
    write_atomic(out / "results.parquet", lambda p: table.to_parquet(p, index=False))
    written = {}
    known = set(table["metric"].astype(str))
    for metric in metrics:
        if metric not in known:
            continue
        contract_metric = ((table["metric"] == metric) & (table["category"] == "contract")).any()
        period, category = ("term", "contract") if contract_metric else (None, "all")
        indices = sweep_module.analyse(spec, points, table, metric, period, category)
        if indices is None:
            continue
        write_atomic(out / f"indices_{metric}.csv", lambda p, i=indices: i.to_csv(p, index=False))
        fig = (sweep_module.plot_sobol if spec.design == "sobol" else sweep_module.plot_morris)(
            indices, title=f"{spec.design.title()} sensitivity of {metric}")
        write_atomic(out / f"indices_{metric}.png", lambda p, f=fig: f.savefig(p, dpi=110, format="png"))
        plt.close(fig)
        written[metric] = indices
    return written


def write_optimisation(result, folder: Path, with_plots: bool = True) -> None:
    """What ``pbrsim optimise`` writes beside its store: ``trials.csv`` (every candidate judged), ``finalists.csv``
    (the best, judged again on fresh replications), ``best_contract.toml`` (the winning design, a contract file to
    compare, audit or tender) and ``optimisation.png``; each file whole or not at all."""
    import tomli_w

    from sim.engine.history import write_atomic

    folder = Path(folder)
    write_atomic(folder / "trials.csv", lambda p: result.trials.to_csv(p, index=False))
    write_atomic(folder / "finalists.csv", lambda p: result.finalists.to_csv(p, index=False))
    if result.contract is not None:
        spec = result.spec
        raw = result.contract.raw()
        raw["description"] = (f"Found by pbrsim optimise ({spec.name}): trial {result.winner}, the best of "
                              f"{len(result.finalists)} finalists judged again on {spec.re_evaluate.replications} "
                              f"fresh replications; objective {spec.objective}")
        header = (f"# The winning design of pbrsim optimise {spec._source} (objective {spec.objective}, provider "
                  f"{spec.provider}).\n# The searched values ({', '.join(p.path for p in spec.parameters)}) are "
                  f"the search's [E] estimates of the best design;\n# every other value is copied from "
                  f"{spec.contract}, whose comments give its sources.\n")
        text = header + tomli_w.dumps(plain_toml(raw))
        write_atomic(folder / "best_contract.toml", lambda p: Path(p).write_text(text))
    if with_plots and len(result.trials):
        fig = plots.optimisation(result.trials, result.spec.objective)
        write_atomic(folder / "optimisation.png", lambda p: fig.savefig(p, dpi=110, format="png"))
        plt.close(fig)


def plain_toml(value):
    """A scenario's or contract's raw form as TOML can hold it: tuples as lists, no None (dates kept)."""
    if isinstance(value, dict):
        return {k: plain_toml(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain_toml(v) for v in value]
    return value
