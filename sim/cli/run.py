"""``pbrsim run``, ``pbrsim validate`` and ``pbrsim list``: one scenario run, and checking and listing files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sim.cli.common import (FORMATS, add_provider_option, contract_from_choice, day_progress_bar, formats, log,
                            output_folder, scenario_contract, scenario_counterfactual, scenario_from_args, seed, years)
from sim.config.base import ConfigError
from sim.config.scenario import load_scenario
from sim.core.errors import UserError


def cmd_run(args) -> int:
    from sim.engine.system import simulate
    from sim.experiments.provider_runs import simulate_with_provider
    from sim.money.settlement import check
    from sim.report.output import contract_text, summary_text, write_run

    scenario = scenario_from_args(args)
    contract = contract_from_choice(scenario, args.contract)
    if contract is not None:
        check(contract, scenario)
    seed = scenario.seed if args.seed is None else args.seed
    with output_folder(args, "run", scenario.name, scenario=scenario, contract=contract) as out:
        bar, update = day_progress_bar(scenario)
        start = time.perf_counter()
        run = None
        with bar:
            if contract is None:
                history, settlement = simulate(scenario, seed, progress=update), None
            else:  # the provider responding as the scenario's [behaviour] says, its cash response (M7) included
                run = simulate_with_provider(scenario, contract, seed, progress=update)
                history, settlement = run.history, run.settlement
        wall = time.perf_counter() - start
        write_run(history, scenario, out, formats=args.formats, with_plots=not args.no_plots, wall_seconds=wall,
                  settlement=settlement)
    print(summary_text(history, scenario, wall) + (contract_text(settlement) if settlement is not None else ""))
    print(provider_line(scenario, contract))
    if run is not None and not run.converged:
        print(f"the cash response had not settled after {run.iterations} runs: the capacity cuts shown are the last "
              "run's, whose cash implied others")
    print(f"results written to {out.path}/")
    return 0


def provider_line(scenario, contract) -> str:
    """One line saying how the provider behaved: contract-blind, or responding to the contract."""
    from sim.experiments.providers import at_risk

    mode = scenario.behaviour.mode
    if contract is None:
        return "no contract: the provider delivers the service as specified"
    if mode != "off" and not at_risk(contract):
        return (f"nothing at risk under {contract.name}: the provider (behaviour {mode}) delivers the service as "
                "specified, the contract-blind run")
    if mode == "off":
        return ("provider contract-blind (behaviour off): it delivers the same service under every contract, so "
                "only the payments depend on the contract; --provider calibrated lets it respond")
    return (f"provider responding to {contract.name} (behaviour {mode}"
            + (": fitted to the national pilot evaluation" if mode == "calibrated" else "")
            + "); --provider off for the contract-blind run")


def cmd_validate(args) -> int:
    """Check files without running them, with the checks ``pbrsim run`` (and ``compare``, ``sweep``,
    ``calibrate``) make before anything runs: a scenario with the contract it names, a contract, a sweep spec
    with its scenario, contract and points, a target file. The kind is told by the keys at the top."""
    failed = 0
    for path in args.scenarios:
        try:
            print(f"ok: {path} ({check_file(Path(path))})")
        except UserError as e:
            print(f"pbrsim validate: {e}", file=sys.stderr)  # the result for this file, not a diagnostic
            failed += 1
    return 2 if failed else 0


def file_kind(path: Path) -> str:
    """``scenario``, ``contract``, ``sweep``, ``optimise`` or ``targets``, from the keys at the top of the file (after
    ``extends``); the file is read with the scenario's checks (UTF-8, TOML, depth) when it cannot be read."""
    from sim.config.base import read_with_extends

    raw, _ = read_with_extends(path, ConfigError)
    if "target" in raw:
        return "targets"
    if "objective" in raw or "constraints" in raw or "trials" in raw:
        return "optimise"
    if "design" in raw or "parameters" in raw:
        return "sweep"
    if "annual_value" in raw or "pbr_share" in raw or "outcomes" in raw:
        return "contract"
    return "scenario"


def check_file(path: Path) -> str:
    """Load and check a file of any kind as the commands that run it would; a line saying what it is."""
    kind = file_kind(path)
    if kind == "contract":
        from sim.config.contract import load_contract

        c = load_contract(path)
        return f"contract {c.name}; {c.term_years} years"
    if kind == "sweep":
        from sim.experiments.sweep import check_sweep, design_points, load_sweep

        spec = load_sweep(path)
        check_sweep(spec)
        return f"sweep {spec.name}; {len(design_points(spec))} points x {spec.replications} replications"
    if kind == "optimise":
        from sim.experiments.optimise import load_optimise

        spec = load_optimise(path)
        return (f"optimisation {spec.name}; {len(spec.parameters)} parameters, {spec.trials} trials x "
                f"{spec.replications} replications, objective {spec.objective}, provider {spec.provider}")
    if kind == "targets":
        from sim.config.targets import load_targets

        t = load_targets(path)
        return f"targets {t.name}; {len(t.target)} figures"
    from sim.money.settlement import check

    sc = load_scenario(path)
    contract = scenario_contract(sc)
    if contract is not None:
        check(contract, sc)
    scenario_counterfactual(sc)  # a file it names must be there and valid
    changes = len(sc.epochs()) - 1
    return (f"{sc.name}; {sc.horizon.contract_start} to {sc.horizon.end_date}; {changes} dated "
            f"change{'s' if changes != 1 else ''}" + (f"; contract {contract.name}" if contract else ""))


def cmd_list(args) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of scenarios")
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        log.warning(f"no scenarios in {folder}/")
        return 1
    for path in paths:
        try:
            sc = load_scenario(path)
            print(f"{path.name:32s} {sc.description}")
        except ConfigError as e:
            print(f"{path.name:32s} INVALID: {e.problems[0][3]}")
    return 0


def add_commands(sub) -> None:
    """Register ``run``, ``validate`` and ``list``."""
    run = sub.add_parser("run", help="simulate a scenario and write tables, measures, a summary and plots")
    run.add_argument("scenario", help="scenario file (TOML)")
    run.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    run.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    add_provider_option(run)
    run.add_argument("--out", default=None, help="output directory (default: results/<scenario name>)")
    run.add_argument("--formats", type=formats, default=FORMATS, help="table formats: parquet, csv or both")
    run.add_argument("--no-plots", action="store_true", help="skip the plots")
    run.add_argument("--contract", default=None,
                     help="settle under this contract file instead of the scenario's own ('none': no contract)")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+")
    val.set_defaults(func=cmd_validate)

    lst = sub.add_parser("list", help="list the scenarios in a folder")
    lst.add_argument("folder", nargs="?", default="scenarios")
    lst.set_defaults(func=cmd_list)
