"""``pbrsim audit-contract``, ``pbrsim behaviour-sweep`` and ``pbrsim evaluate-pilot``: the provider-behaviour
commands.
"""

from __future__ import annotations

from sim.cli.common import (add_executor_options, add_provider_option, add_replications_option, executor_from_args,
                            output_folder, replication_bar, scenario_contract, scenario_counterfactual, scenario_from_args, seed,
                            whole_number, wide, workers, years)
from sim.config.contract import load_contract
from sim.core.errors import UserError
from sim.experiments.audit import audit_contract
from sim.experiments.behaviour_sweep import load_behaviour_sweep, run_behaviour_sweep
from sim.report.audit import audit_report, write_audit
from sim.report.behaviour_sweep import write_behaviour_sweep


def cmd_audit_contract(args) -> int:
    scenario = scenario_from_args(args)
    path = args.contract or scenario.contract_path()
    if path is None:
        raise UserError(f"scenario {scenario.name} names no contract: give one (pbrsim audit-contract SCENARIO "
                        f"CONTRACT)")
    contract = load_contract(path) if args.contract else scenario_contract(scenario)
    bar = replication_bar(args.replications)
    with output_folder(args, "audit", scenario.name, f"audit_{contract.name}", scenario=scenario,
                       contract=contract) as folder, bar:
        out = folder.path
        audit = audit_contract(scenario, contract, args.replications, args.seed, iterations=args.iterations,
                               workers=args.workers, progress=lambda n: bar.update(n - bar.n))
        write_audit(audit, folder, with_plots=not args.no_plots)
    report = audit_report(audit)
    brief = report.split("## In brief", 1)[1].split("\n## ", 1)[0].strip()
    print(f"{contract.name} on {scenario.name}: {args.replications} replication(s), behaviour off, base and stress "
          f"on common random numbers\n\n{brief}\n")
    summary = audit.mechanism_summary()
    table = summary.pivot_table(index="measure", columns="mode", values="mean", sort=False)
    print(table.reindex(columns=list(audit.modes)).round(4).to_string())
    print(f"\nreport, tables and plots written to {out}/ (report.md)")
    return 0


def cmd_evaluate_pilot(args) -> int:
    from sim.config.scenario import load_scenario
    from sim.experiments.pilot import evaluate_pilot
    from sim.report.pilot import write_pilot_evaluation

    scenario = scenario_from_args(args)
    path = args.contract or scenario.contract_path()
    if path is None:
        raise UserError(f"scenario {scenario.name} names no contract: give the pilot's (--contract FILE)")
    contract = load_contract(path) if args.contract else scenario_contract(scenario)
    counterfactual = load_scenario(args.counterfactual) if args.counterfactual else scenario_counterfactual(scenario)
    if counterfactual is None:
        raise UserError(f"scenario {scenario.name} names no counterfactual: give one (--counterfactual FILE), "
                        "e.g. scenarios/west_kent_counterfactual.toml")
    cf_path = args.counterfactual or scenario.counterfactual_path()
    if args.years is not None:
        counterfactual = counterfactual.with_changes({"horizon.years": args.years, "horizon.end": None})
    cf_contract = scenario_contract(counterfactual)
    if cf_contract is None:
        raise UserError(f"counterfactual scenario {cf_path} names no contract (the areas outside the pilot paid "
                        "by block: contract = \"contracts/block.toml\")")
    bar = replication_bar(args.replications)
    with output_folder(args, "pilot-evaluation", scenario.name, "evaluate_pilot", scenario=scenario,
                       contract=contract, counterfactual=counterfactual, counterfactual_contract=cf_contract) as folder, \
            executor_from_args(args) as executor, bar:
        evaluation = evaluate_pilot(scenario, contract, counterfactual, cf_contract, args.replications, args.seed,
                                    executor, progress=lambda n: bar.update(n - bar.n))
        write_pilot_evaluation(evaluation, folder, with_plots=not args.no_plots)
    table = evaluation.table()
    print(f"{scenario.name} under {contract.name} (behaviour {scenario.behaviour.mode}) against "
          f"{counterfactual.name} under {cf_contract.name}: {args.replications} paired replications\n")
    with wide():
        print(table.drop(columns=["population"]).round(4).to_string(index=False))
    print(f"\nreport, tables and forest plot written to {folder.path}/ (evaluation.md)")
    return 0


def cmd_behaviour_sweep(args) -> int:
    from sim.experiments.executors import progress_bar
    from sim.experiments.sweep import design_points

    spec = load_behaviour_sweep(args.spec)
    total = len(design_points(spec)) * spec.replications
    with output_folder(args, "behaviour-sweep", "sweeps", spec.name, replace=False, spec=spec) as folder:
        out = folder.path
        with executor_from_args(args) as executor, progress_bar(total, spec.name) as bar:
            points, table = run_behaviour_sweep(spec, executor, store=out / "runs", progress=bar)
        summary = write_behaviour_sweep(spec, points, table, out, with_plots=not args.no_plots)
    print(f"{spec.name}: {len(points)} points x {spec.replications} replications, behaviour on\n")
    with wide():
        print(summary.round(4).to_string())
    print(f"\nresults written to {out}/ (finished runs are kept in {out / 'runs'}: a rerun resumes)")
    return 0


def add_commands(sub) -> None:
    """Register ``audit-contract``, ``evaluate-pilot`` and ``behaviour-sweep`` on the ``pbrsim`` sub-command
    parser."""
    audit = sub.add_parser("audit-contract", help="what a contract design invites: behaviour off, base and stress "
                                                  "on common random numbers, with a Markdown report")
    audit.add_argument("scenario", help="scenario file (TOML); its [behaviour] block sets the provider")
    audit.add_argument("contract", nargs="?", default=None, help="contract file (default: the scenario's)")
    add_replications_option(audit, 5, "replications (default 5)")
    audit.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    audit.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    audit.add_argument("--iterations", type=whole_number(1, 100, "iterations"), default=3, help="most runs of the M7 cash fixed point (default 3)")
    audit.add_argument("--workers", type=workers, default=1, help="processes running replications (default 1)")
    audit.add_argument("--out", default=None, help="output directory (default: results/<scenario>/audit_<contract>)")
    audit.add_argument("--no-plots", action="store_true", help="skip the plots")
    audit.set_defaults(func=cmd_audit_contract)

    pilot = sub.add_parser("evaluate-pilot", help="the national PbR pilot evaluation redone in silico: the pilot "
                                                  "against its counterfactual on paired replications")
    pilot.add_argument("scenario", help="the pilot's scenario file (TOML); its [behaviour] block sets the provider")
    pilot.add_argument("--contract", default=None, help="the pilot's contract (default: the scenario's)")
    pilot.add_argument("--counterfactual", default=None, help="scenario file of the system outside the pilot, "
                                                              "with its contract (default: the scenario's "
                                                              "`counterfactual`)")
    add_replications_option(pilot, 20, "paired replications (default 20)")
    pilot.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    pilot.add_argument("--years", type=years, default=None, help="reported years after the contract start (at "
                                                                 "least 2.5: two years and the 6-month follow-up)")
    add_provider_option(pilot)
    pilot.add_argument("--out", default=None, help="output directory (default: results/<scenario>/evaluate_pilot)")
    pilot.add_argument("--no-plots", action="store_true", help="skip the forest plot")
    add_executor_options(pilot)
    pilot.set_defaults(func=cmd_evaluate_pilot)

    sweep = sub.add_parser("behaviour-sweep", help="a sweep spec run with the provider responding (contract "
                                                   "features, derived band-weight steepness)")
    sweep.add_argument("spec", help="sweep spec file (TOML)")
    sweep.add_argument("--out", default=None, help="output directory (default: results/sweeps/<name>)")
    sweep.add_argument("--no-plots", action="store_true", help="skip the plots")
    add_executor_options(sweep)
    sweep.set_defaults(func=cmd_behaviour_sweep)
