"""``pbrsim compare``, ``replicate``, ``sweep`` and ``summarise``: experiments over many runs."""

from __future__ import annotations

from pathlib import Path

from sim.cli.common import (MAX_REPLICATIONS, add_executor_options, add_provider_option, add_replications_option,
                            contract_from_choice, executor_from_args, log, output_folder, replication_bar, scenario_from_args, seed,
                            whole_number, wide, write_csv, years)
from sim.core.errors import UserError


def cmd_compare(args) -> int:
    from sim.config.contract import load_contract
    from sim.experiments.compare import compare
    from sim.report.output import write_comparison

    scenario = scenario_from_args(args)
    from sim.money.settlement import check

    contracts = [load_contract(path) for path in args.contracts]
    for contract in contracts:
        check(contract, scenario)
    bar = replication_bar(args.replications)
    with output_folder(args, "compare", scenario.name, "compare", scenario=scenario, contracts=contracts) as out:
        with bar, executor_from_args(args) as executor:
            result = compare(scenario, contracts, args.replications, args.seed,
                             progress=lambda n: bar.update(n - bar.n), executor=executor)
        write_comparison(result, out, with_plots=not args.no_plots)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        summary = result.summary()
        shown = ["probability_of_loss", "margin_p5", "income", "margin", "margin_ci", "working_capital_needed",
                 "spend", "spend_per_planned_exit", "spend_per_planned_exit_ci", "community_savings"]
        same = ("the same referrals, the provider responding to each contract" if scenario.behaviour.mode != "off"
                else "the same simulated clients under each contract")
        print(f"{args.replications} replications of {scenario.name}, {same} (term totals over the observed "
              f"contract years; £; ci = 95% half-width):\n")
        table = summary[shown].round(0).astype(object)
        # a share of replications, as counts (rounded to pounds it would read 0 or 1)
        table["probability_of_loss"] = [f"{round(p * n)} of {n}" for p, n in
                                        zip(summary["probability_of_loss"], summary["replications"])]
        print(table.rename(columns={"probability_of_loss": "losses_over_term"}).to_string())
        lottery = result.offending_lottery()
        if len(lottery):
            print("\nThe offending pot per contract year (share of replications paying nothing and in full):\n")
            print(lottery.round(2).to_string(index=False))
        from sim.analysis.delivered import DELIVERED

        print("\nWhat each design buys (term totals; in treatment, waits: mean of the years):\n")
        print(summary[["planned_exits", *DELIVERED]].round(3).to_string())
        if len(contracts) > 1:
            print(f"\nPaired differences against {contracts[0].name}:\n")
            diffs = result.paired_differences()
            print(diffs[diffs["metric"].isin(["margin", "spend", "spend_per_planned_exit"])].round(0).to_string(
                index=False))
            if result.outcomes_identical():
                print("\nThe provider is contract-blind (behaviour off): every design saw the same clients, so every "
                      "outcome is identical by construction and only the money differs.")
            else:
                print("\nOutcomes, the provider responding to each design (95% CI):\n")
                shown = diffs[diffs["metric"].isin(["planned_exits", *DELIVERED])]
                print(shown.round(3).to_string(index=False))
    print(f"\nresults written to {out.path}/")
    return 0


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
    with output_folder(args, "replications", scenario.name, "replications", replace=False,
                       scenario=scenario, contract=contract) as folder:
        out = folder.path
        with executor_from_args(args) as executor, progress_bar(args.replications, "replications") as bar:
            result = replicate(scenario, args.replications, args.seed, contract, executor, store=out / "runs",
                               progress=bar, runs_per_draw=args.runs_per_draw)
    summary = result.summary()
    write_csv(out / "summary.csv", summary)
    shown = summary[(summary["category"].astype(str).isin(["all", "contract"]))
                    & (summary["period"].astype(str).isin(["term"]) | (summary["category"].astype(str) == "all"))]
    print(f"{result.n} replications of {scenario.name} (95% confidence intervals):\n")
    with wide():
        print(shown.round(3).to_string(index=False))
    metrics = [m for m in ("successful_completions", "in_treatment", "margin", "spend")
               if m in set(result.table["metric"].astype(str))]
    if result.n >= 3 and metrics:
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

    smr = sub.add_parser("summarise", help="summarise the finished runs of a replicate or sweep folder")
    smr.add_argument("folder")
    smr.set_defaults(func=cmd_summarise)
