"""``pbrsim compare``, ``replicate``, ``sweep`` and ``summarise``: experiments over many runs."""

from __future__ import annotations

from pathlib import Path

from sim.cli.common import (MAX_REPLICATIONS, add_executor_options, add_provider_option, add_replications_option,
                            contract_from_choice, executor_from_args, log, output_folder, replication_bar, scenario_from_args, seed,
                            whole_number, wide, write_csv, years)
from sim.core.errors import UserError


def cmd_optimise(args) -> int:
    from sim.experiments.executors import progress_bar
    from sim.experiments.optimise import OBJECTIVES, load_optimise, optimise
    from sim.report.output import write_optimisation

    spec = load_optimise(args.spec)
    scenario, contract = spec.base()
    total = spec.trials + spec.re_evaluate.best
    with output_folder(args, "optimise", "optimise", spec.name, replace=False, scenario=scenario,
                       contract=contract, spec=spec) as folder:
        out = folder.path
        folder.describe(seed=spec.seed, replications=spec.replications, provider=spec.provider)
        with executor_from_args(args) as executor, progress_bar(total, spec.name) as bar:
            result = optimise(spec, out / "runs", executor, progress=bar)
        write_optimisation(result, out, with_plots=not args.no_plots)
    t = result.trials
    print(f"{spec.name}: {len(t)} candidates judged on {spec.replications} replications each (provider "
          f"{spec.provider}); {int(t['feasible'].sum())} met the constraints; objective: {OBJECTIVES[spec.objective]}")
    shown = ["trial", *[p.path for p in spec.parameters], "objective", "annual_spend", "probability_of_loss",
             "working_capital", "feasible"]
    with wide():
        print("\nThe best candidates of the search:\n")
        print(t.sort_values(["feasible", "objective"], ascending=False)[shown].head(8).round(4).to_string(index=False))
        if len(result.finalists):
            print(f"\nThe finalists judged again on {spec.re_evaluate.replications} fresh replications:\n")
            print(result.finalists[["rank_in_search", *shown]].round(4).to_string(index=False))
    if result.winner is None:
        print("\nNo candidate met the constraints" + (" on the fresh replications" if len(result.finalists) else "")
              + ": loosen them, widen the ranges, or add trials.")
    else:
        print(f"\nThe winner: trial {result.winner}, written as {out / 'best_contract.toml'}")
    print(f"results written to {out}/ (judged candidates are kept in {out / 'runs'}: a rerun resumes)")
    return 0


def cmd_report(args) -> int:
    from sim.cli.common import output_file
    from sim.report.tender import write_report

    out = output_file(Path(args.out)) if args.out else None
    html_path, pdf_path = write_report(args.folder, out, pdf=not args.no_pdf)
    print(f"tender report written to {html_path}" + (f" and {pdf_path}" if pdf_path else
                                                      "" if args.no_pdf else
                                                      " (no PDF: install chromium for one)"))
    return 0


def relative_precision(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a relative precision is a number such as 0.05, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a relative precision is above 0 and below 1 (0.05: 5%% of the mean), "
                                         f"got {text!r}")
    return value


def nonnegative_pounds(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text.replace(",", "").replace("£", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a willingness to pay is a number of pounds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"a willingness to pay is at least 0 pounds, got {text!r}")
    return value


def cmd_compare(args) -> int:
    from sim.config.contract import load_contract
    from sim.experiments.compare import compare
    from sim.report.output import write_comparison

    scenario = scenario_from_args(args)
    from sim.money.settlement import check

    contracts = [load_contract(path) for path in args.contracts]
    for contract in contracts:
        check(contract, scenario, compared_with=contracts)
    draws = args.replications // args.runs_per_draw if scenario.uncertainty else 0
    if args.runs_per_draw > 1 and not scenario.uncertainty:
        raise UserError(f"--runs-per-draw {args.runs_per_draw}: scenario {scenario.name} has no [uncertainty], so "
                        f"there are no parameter draws to repeat")
    bar = replication_bar(args.replications)
    with output_folder(args, "compare", scenario.name, "compare", scenario=scenario, contracts=contracts) as out:
        with bar, executor_from_args(args) as executor:
            result = compare(scenario, contracts, args.replications, args.seed,
                             progress=lambda n: bar.update(n - bar.n), executor=executor,
                             runs_per_draw=args.runs_per_draw)
        economics = None
        if args.wtp:
            from sim.experiments.cost_effectiveness import analyse

            economics = analyse(result.term, result.contracts, args.outcome, args.wtp, result.observed_years(),
                                result.parameters)
        out.describe(provider=scenario.behaviour.mode, runs_per_draw=args.runs_per_draw,
                     parameter_draws=draws or None, wtp=args.wtp, outcome=args.outcome if args.wtp else None)
        write_comparison(result, out, with_plots=not args.no_plots, economics=economics, scenario=scenario,
                         contracts=contracts)
    print_comparison(result, scenario, args.replications, draws)
    if economics is not None:
        print_economics(economics, args.runs_per_draw)
    print(f"\nresults written to {out.path}/")
    return 0


def print_economics(ce, runs_per_draw: int) -> None:
    """The cost-effectiveness and value-of-information tables ``compare --wtp`` prints."""
    from sim.experiments.cost_effectiveness import OUTCOME_UNITS

    unit = OUTCOME_UNITS[ce.outcome]
    print(f"\nCost-effectiveness against {ce.incremental['versus'].iloc[0] if len(ce.incremental) else '-'} "
          f"(extra spend per extra {unit}; paired, 95% CI):\n")
    with wide():
        print(ce.incremental.drop(columns=["versus", "outcome"]).round(1).to_string(index=False))
        print(f"\nNet monetary benefit (willingness to pay per {unit} x outcomes - spend, £ over the term) and the "
              f"chance each design is best:\n")
        print(ce.net_benefit.round(0).to_string(index=False))
        asked = ce.value_of_information[ce.value_of_information["asked"]]
        print(f"\nExpected value of perfect information on the choice ({int(asked['draws'].iloc[0])} parameter draws; "
              f"£ a contract year over {ce.years} years):\n")
        print(asked[["wtp", "evpi", "evpi_per_year"]].round(0).to_string(index=False))
        if runs_per_draw == 1:
            print("(one run per draw: the EVPI also counts run-to-run noise; the 'all parameters' EVPPI below, "
                  "by regression, does not)")
        if len(ce.evppi) and ce.evppi["evppi"].notna().any():
            print("\nPartial EVPI (regression method of Strong, Oakley & Brennan 2014), £ a contract year:\n")
            print(ce.evppi.pivot_table(index="group", columns="wtp", values="evppi_per_year", sort=False,
                                       dropna=False).round(0).to_string())
        elif len(ce.evppi):
            from sim.experiments.cost_effectiveness import MIN_DRAWS_EVPPI

            print(f"\nPartial EVPI: not estimated from {int(asked['draws'].iloc[0])} draws (the regression needs "
                  f"at least {MIN_DRAWS_EVPPI})")


def print_comparison(result, scenario, replications: int, draws: int) -> None:
    """What ``pbrsim compare`` prints: money and risk per design, the offending pot, outcomes, paired differences."""
    import pandas as pd

    from sim.analysis.delivered import DELIVERED
    from sim.experiments.statistics import small_sample_warning

    def ranged(summary, m, low="ci"):
        return [f"{v:,.0f} ({lo:,.0f} to {hi:,.0f})" if pd.notna(lo) else f"{v:,.0f}"
                for v, lo, hi in zip(summary[m], summary[f"{m}_{low}_low"], summary[f"{m}_{low}_high"])]

    summary = result.summary()
    same = ("the same referrals, the provider responding to each contract" if scenario.behaviour.mode != "off"
            else "the same simulated clients under each contract")
    psa = (f"; {draws} parameter draws of its [uncertainty] shared by every design" if draws else "")
    print(f"{replications} replications of {scenario.name}, {same}{psa} (term totals over the observed contract "
          f"years, £: mean and 95% confidence interval of the mean; ui: 95% uncertainty interval of the values, "
          f"over {'draws and ' if draws else ''}replications):\n")
    table = pd.DataFrame(index=summary.index)
    table["losses over term"] = summary["losses"]
    table["margin p5"] = summary["margin_p5"].map("{:,.0f}".format)
    for m in ("income", "margin"):
        table[m] = ranged(summary, m)
    table["margin ui"] = [f"{lo:,.0f} to {hi:,.0f}" if pd.notna(lo) else "" for lo, hi in
                          zip(summary["margin_ui_low"], summary["margin_ui_high"])]
    for m in ("working_capital_needed", "spend", "spend_per_planned_exit", "community_savings"):
        table[m.replace("_", " ")] = ranged(summary, m)
    with wide():
        print(table.to_string())
    warning = small_sample_warning(replications)
    if warning:
        print(f"\nwarning: {warning}")
    lottery = result.offending_lottery()
    if len(lottery):
        print("\nThe offending pot per contract year (share of replications paying nothing and in full):\n")
        with wide():
            print(lottery.round(2).to_string(index=False))
    print("\nWhat each design buys (term totals; in treatment, waits: mean of the years):\n")
    with wide():
        print(summary[["planned_exits", *DELIVERED]].round(3).to_string())
    if len(result.contracts) < 2:
        return
    print(f"\nPaired differences against {result.contracts[0]} (mean, 95% CI of the mean, 95% uncertainty interval of the differences):\n")
    diffs = result.paired_differences()
    with wide():
        print(diffs[diffs["metric"].isin(["margin", "spend", "spend_per_planned_exit"])].round(0).to_string(
            index=False))
    if result.outcomes_identical():
        print("\nThe provider is contract-blind (behaviour off): every design saw the same clients, so every "
              "outcome is identical by construction and only the money differs.")
    else:
        print("\nOutcomes, the provider responding to each design:\n")
        with wide():
            print(diffs[diffs["metric"].isin(["planned_exits", *DELIVERED])].round(3).to_string(index=False))


def cmd_replicate(args) -> int:
    from sim.experiments.core import parameter_and_stochastic_variance, replicate, replications_needed
    from sim.experiments.executors import progress_bar
    from sim.money.settlement import check

    scenario = scenario_from_args(args)
    contract = contract_from_choice(scenario, args.contract)
    if contract is not None:
        check(contract, scenario)
    if scenario.uncertainty and args.runs_per_draw > 1 and args.replications // args.runs_per_draw < 2:
        raise UserError(f"--runs-per-draw {args.runs_per_draw} with -n {args.replications} gives "
                        f"{args.replications // args.runs_per_draw} parameter draw(s): the variance split needs at "
                        f"least 2 (raise -n to {2 * args.runs_per_draw} or more)")
    if args.precision is not None and args.max_replications < args.replications:
        raise UserError(f"--max-replications {args.max_replications} is below -n {args.replications}, the first "
                        f"round of replications")
    precise = None
    with output_folder(args, "replications", scenario.name, "replications", replace=False,
                       scenario=scenario, contract=contract) as folder:
        out = folder.path
        total = args.replications if args.precision is None else args.max_replications
        with executor_from_args(args) as executor, progress_bar(total, "replications") as bar:
            if args.precision is None:
                result = replicate(scenario, args.replications, args.seed, contract, executor, store=out / "runs",
                                   progress=bar, runs_per_draw=args.runs_per_draw)
            else:
                from sim.experiments.core import replicate_to_precision

                result, precise = replicate_to_precision(
                    scenario, args.precision, args.precision_metrics, out / "runs", args.seed, contract, executor,
                    start=args.replications, limit=args.max_replications, progress=bar,
                    runs_per_draw=args.runs_per_draw)
        if precise is not None:
            from sim.experiments.core import convergence
            from sim.report.output import write_convergence

            write_convergence(convergence(result.table, precise), precise, out)
    summary = result.summary()
    write_csv(out / "summary.csv", summary)
    shown = summary[(summary["category"].astype(str).isin(["all", "contract"]))
                    & (summary["period"].astype(str).isin(["term"]) | (summary["category"].astype(str) == "all"))]
    print(f"{result.n} replications of {scenario.name} (95% confidence intervals):\n")
    with wide():
        print(shown.round(3).to_string(index=False))
    if precise is not None:
        write_csv(out / "replications_needed.csv", precise.table)
        print(f"\n--precision {args.precision:g} after {result.n} replications: {precise}"
              + ("" if precise.enough else f" (stopped at --max-replications {args.max_replications})")
              + "; convergence.csv and convergence.png show the relative half-widths replication by replication")
    metrics = [m for m in ("successful_completions", "in_treatment", "margin", "spend")
               if m in set(result.table["metric"].astype(str))]
    if precise is None and result.n >= 3 and metrics:
        needed = replications_needed(result.table[result.table["category"].astype(str).isin(["all", "contract"])],
                                     metrics)
        write_csv(out / "replications_needed.csv", needed.table)
        print(f"\n{needed}")
    if scenario.uncertainty and args.runs_per_draw > 1:
        split = parameter_and_stochastic_variance(result.table)
        write_csv(out / "variance_split.csv", split)
        print("\nVariance of each result split into parameter and stochastic parts: variance_split.csv")
    print(f"\nresults written to {out}/ (finished runs are kept in {out / 'runs'}: a rerun resumes)")
    return 0


def cmd_sweep(args) -> int:
    from sim.experiments.executors import progress_bar
    from sim.experiments.sweep import check_sweep, design_points, load_sweep, run_sweep
    from sim.report.output import write_sweep

    spec = load_sweep(args.spec)
    check_sweep(spec)
    total = len(design_points(spec)) * spec.replications
    with output_folder(args, "sweep", "sweeps", spec.name, replace=False, spec=spec) as folder:
        out = folder.path
        with executor_from_args(args) as executor, progress_bar(total, spec.name) as bar:
            points, table = run_sweep(spec, executor, store=out / "runs", progress=bar)
        written = write_sweep(spec, points, table, out, args.metric)
    print(f"{spec.name}: {len(points)} points x {spec.replications} replications ({spec.design} design)")
    for name, frame in written.items():
        print(f"\nSensitivity of {name}:\n")
        with wide():
            print(frame.round(4).to_string(index=False))
    print(f"\nresults written to {out}/")
    return 0


def cmd_summarise(args) -> int:
    import json

    from sim.core.folders import MANIFEST
    from sim.core.provenance import manifest_text
    from sim.experiments.core import summarise
    from sim.experiments.store import ResultStore

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: give a replicate or sweep results folder")
    store = ResultStore(folder / "runs" if (folder / "runs").is_dir() else folder)
    table = store.load()
    if table.empty:
        log.warning(f"no finished runs in {store.directory}")
        return 1
    meta = store.meta() or {}
    experiment = meta.get("experiment") or {}
    kind = experiment.get("kind", "experiment")
    summary = summarise(table)
    write_csv(folder / "summary.csv", summary)
    if (folder / MANIFEST).is_file():
        print(manifest_text(json.loads((folder / MANIFEST).read_text())))
    runs = table[["point", "replication"]].drop_duplicates()
    print(f"{kind}: {len(runs)} finished runs over {runs['point'].nunique()} points; summary.csv written")
    with wide():
        print(summary[summary["category"].astype(str).isin(["all", "contract"])].head(40).round(3).to_string(
            index=False))
    return 0


def add_commands(sub) -> None:
    """Register ``compare``, ``replicate``, ``sweep`` and ``summarise``."""
    cmp = sub.add_parser("compare", help="settle the same simulated histories under several contracts")
    cmp.add_argument("scenario", help="scenario file (TOML)")
    cmp.add_argument("--contracts", nargs="+", required=True, help="contract files; the first is the reference")
    add_replications_option(cmp, 20, "simulated histories (default 20)")
    cmp.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    cmp.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    add_provider_option(cmp)
    cmp.add_argument("--runs-per-draw", type=whole_number(1, MAX_REPLICATIONS, "runs per draw"), default=1,
                     help="under the scenario's [uncertainty]: replications per parameter draw (default 1: a new "
                          "draw for every replication); every design sees the same draws")
    cmp.add_argument("--wtp", type=nonnegative_pounds, nargs="+", default=None, metavar="POUNDS",
                     help="willingness to pay per unit of --outcome (pounds; one or more): writes the "
                          "cost-effectiveness, net benefit, acceptability and value-of-information tables and plots")
    cmp.add_argument("--outcome", choices=("sustained_recoveries", "planned_exits", "offences_averted"),
                     default="sustained_recoveries", help="the outcome a --wtp is per (default sustained_recoveries)")
    cmp.add_argument("--out", default=None, help="output directory (default: results/<scenario>/compare)")
    cmp.add_argument("--no-plots", action="store_true", help="skip the plots")
    add_executor_options(cmp)
    cmp.set_defaults(func=cmd_compare)

    rep = sub.add_parser("replicate", help="replications with confidence intervals (and parameter uncertainty)")
    rep.add_argument("scenario", help="scenario file (TOML)")
    add_replications_option(rep, 20, "replications (default 20)")
    rep.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    rep.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    add_provider_option(rep)
    rep.add_argument("--contract", default=None, help="contract file ('none': no contract; default: the "
                                                      "scenario's)")
    rep.add_argument("--runs-per-draw", type=whole_number(1, MAX_REPLICATIONS, "runs per draw"), default=1,
                     help="with [uncertainty]: runs per parameter draw (2 or more splits the variance)")
    rep.add_argument("--precision", type=relative_precision, default=None, metavar="REL",
                     help="add replications until every chosen output's 95%% CI half-width is within REL of its mean "
                          "(e.g. 0.05), confirmed by a look-ahead (Hoad, Robinson & Davies 2010); -n is the first "
                          "round; writes convergence.csv and convergence.png")
    rep.add_argument("--precision-metrics", nargs="+", default=["successful_completions", "in_treatment", "margin",
                                                                 "spend"], metavar="METRIC",
                     help="the outputs --precision judges, in every year, overall and for the contract (default: "
                          "successful_completions in_treatment margin spend)")
    rep.add_argument("--max-replications", type=whole_number(1, MAX_REPLICATIONS, "replications"), default=500,
                     help="with --precision: stop here whatever the precision (default 500)")
    rep.add_argument("--out", default=None, help="output directory (default: results/<scenario>/replications)")
    add_executor_options(rep)
    rep.set_defaults(func=cmd_replicate)

    swp = sub.add_parser("sweep", help="run a sweep spec (grid, Latin hypercube, Sobol, Morris)")
    swp.add_argument("spec", help="sweep spec file (TOML)")
    swp.add_argument("--out", default=None, help="output directory (default: results/sweeps/<name>)")
    swp.add_argument("--metric", nargs="+", default=["margin", "spend", "successful_completions"],
                     help="results to compute sensitivity indices for")
    add_executor_options(swp)
    swp.set_defaults(func=cmd_sweep)

    opt = sub.add_parser("optimise", help="search a contract's parameters for the best design under constraints")
    opt.add_argument("spec", help="optimisation spec (TOML, e.g. scenarios/optimise/west_kent_share.toml)")
    opt.add_argument("--out", default=None, help="output directory (default: results/optimise/<spec name>)")
    opt.add_argument("--no-plots", action="store_true", help="skip the plot")
    add_executor_options(opt)
    opt.set_defaults(func=cmd_optimise)
    rpt = sub.add_parser("report", help="a self-contained tender report (HTML, and PDF with chromium) of a "
                                        "pbrsim compare folder")
    rpt.add_argument("folder", help="the folder pbrsim compare wrote (results/<scenario>/compare)")
    rpt.add_argument("--out", default=None, help="the HTML file (default: FOLDER/report.html)")
    rpt.add_argument("--no-pdf", action="store_true", help="skip the PDF even when chromium is installed")
    rpt.set_defaults(func=cmd_report)
    smr = sub.add_parser("summarise", help="summarise the finished runs of a replicate or sweep folder")
    smr.add_argument("folder")
    smr.set_defaults(func=cmd_summarise)
