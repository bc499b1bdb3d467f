"""The ``pbrsim`` command line: ``run``, ``compare``, ``replicate``, ``sweep``, ``summarise``, ``calibrate``,
``report-validation``, ``validate``, ``list``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sim.config.base import ConfigError, plain_name
from sim.config.scenario import MAX_YEARS, ScenarioError, load_scenario
from sim.core.errors import UserError
from sim.core.folders import OutputError, OutputFolder
from sim.experiments.signals import exit_code, interrupt_on_signals, interrupted_message

RESULTS = Path("results")
MAX_REPLICATIONS = 10_000
MAX_WORKERS = 256


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what to change) and exit code 2, not the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole_number(low: int, high: int, what: str = "a number"):
    """An argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low:,} to {high:,}, got {value:,}")
        return value
    return parse


def years(text: str) -> float:
    """An argparse type: reported years, more than 0 and at most ``MAX_YEARS``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"years must be a number, got {text!r}") from None
    if not 0 < value <= MAX_YEARS:
        raise argparse.ArgumentTypeError(f"years must be more than 0 and at most {MAX_YEARS}, got {text}")
    return value


FORMATS = ("parquet", "csv")


def formats(text: str) -> tuple[str, ...]:
    """An argparse type: table formats, comma-separated, from ``FORMATS``."""
    chosen = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"formats are {' and '.join(FORMATS)} (comma-separated), got {text!r}")
    return chosen


seed = whole_number(0, 2**63 - 1, "a seed")
replications = whole_number(1, MAX_REPLICATIONS, "replications")
workers = whole_number(1, MAX_WORKERS, "workers")


def output_folder(args, kind: str, *default: str, replace: bool = True) -> OutputFolder:
    """The folder a command writes (``--out``, or ``results/...``), checked and locked before anything runs."""
    return OutputFolder(Path(args.out) if args.out else RESULTS.joinpath(*default), kind, replace=replace)


def output_file(path: Path) -> Path:
    """A file a command will write, checked before anything runs: not a folder, in a folder that can be made."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder: give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {path.parent}: {e.strerror or e}") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write in {path.parent}")
    return path


def _progress_bar(scenario):
    """A progress bar over simulated time, shown only when the run takes more than a second."""
    from tqdm import tqdm

    h = scenario.horizon
    bar = tqdm(total=round(h.end_day - h.start_day), unit="day", delay=1.0, desc=scenario.name,
               file=sys.stderr, leave=False, disable=not sys.stderr.isatty())
    last = [h.start_day]

    def update(t: float) -> None:
        bar.update(round(t - last[0]))
        last[0] = t

    return bar, update


def _scenario(args):
    scenario = load_scenario(args.scenario)
    if args.years is not None:
        scenario = scenario.with_changes({"horizon.years": args.years, "horizon.end": None})
    return scenario


def _contract(scenario, choice: str | None):
    """The contract to settle under: ``--contract FILE``, ``--contract none``, or the scenario's own."""
    from sim.config.contract import load_contract

    if choice is not None:
        return None if choice.lower() == "none" else load_contract(choice)
    return scenario_contract(scenario)


def scenario_contract(scenario):
    """The contract the scenario names (None if it names none); a bad contract file's errors say which
    scenario named it."""
    from sim.config.base import source_of
    from sim.config.contract import load_contract

    path = scenario.contract_path()
    if path is None:
        return None
    try:
        return load_contract(path)
    except ConfigError as e:
        named_in = source_of(("contract",), scenario._provenance, scenario._source)
        raise e.reached_from(named_in, "contract", scenario.contract) from None


def cmd_run(args) -> int:
    from sim.engine.system import simulate
    from sim.experiments.providers import provider_model
    from sim.money.settlement import check, settle
    from sim.report.output import contract_text, summary_text, write_run

    scenario = _scenario(args)
    contract = _contract(scenario, args.contract)
    if contract is not None:
        check(contract, scenario)
    seed = scenario.seed if args.seed is None else args.seed
    with output_folder(args, "run", scenario.name) as out:
        provider = provider_model(scenario, contract)  # None unless the scenario's behaviour mode is on
        bar, update = _progress_bar(scenario)
        start = time.perf_counter()
        with bar:
            history = simulate(scenario, seed, progress=update, provider=provider)
        wall = time.perf_counter() - start
        settlement = settle(contract, history, scenario) if contract is not None else None
        write_run(history, scenario, out, formats=args.formats, with_plots=not args.no_plots, wall_seconds=wall,
                  settlement=settlement)
    print(summary_text(history, scenario, wall) + (contract_text(settlement) if settlement is not None else ""))
    print(f"results written to {out.path}/")
    return 0


def cmd_compare(args) -> int:
    from tqdm import tqdm

    from sim.config.contract import load_contract
    from sim.experiments.compare import compare
    from sim.report.output import write_comparison

    scenario = _scenario(args)
    from sim.money.settlement import check

    contracts = [load_contract(path) for path in args.contracts]
    for contract in contracts:
        check(contract, scenario)
    bar = tqdm(total=args.replications, unit="replication", delay=1.0, file=sys.stderr, leave=False,
               disable=not sys.stderr.isatty())
    with output_folder(args, "compare", scenario.name, "compare") as out:
        with bar, _executor(args) as executor:
            result = compare(scenario, contracts, args.replications, args.seed,
                             progress=lambda n: bar.update(n - bar.n), executor=executor)
        write_comparison(result, out, with_plots=not args.no_plots)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        summary = result.summary()
        shown = ["probability_of_loss", "income", "margin", "margin_ci", "working_capital_needed", "spend",
                 "spend_per_planned_exit", "spend_per_planned_exit_ci"]
        same = ("the same referrals, the provider responding to each contract" if scenario.behaviour.mode != "off"
                else "the same simulated clients under each contract")
        print(f"{args.replications} replications of {scenario.name}, {same} (term totals over the observed "
              f"contract years; £; ci = 95% half-width):\n")
        print(summary[shown].round(0).to_string())
        if len(contracts) > 1:
            print(f"\nPaired differences against {contracts[0].name}:\n")
            diffs = result.paired_differences()
            print(diffs[diffs["metric"].isin(["margin", "spend", "spend_per_planned_exit"])].round(0).to_string(
                index=False))
    print(f"\nresults written to {out.path}/")
    return 0


def _executor(args):
    from sim.experiments.executors import make_executor

    return make_executor(args.executor, args.workers, args.scheduler)


def _add_executor_options(p) -> None:
    p.add_argument("--executor", choices=("serial", "processes", "dask"), default="serial",
                   help="where runs execute; results are identical whichever is used")
    p.add_argument("--workers", type=workers, default=None, help="worker processes (default: the cores)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (with --executor dask)")


def cmd_replicate(args) -> int:
    from sim.experiments.core import parameter_and_stochastic_variance, replicate, replications_needed
    from sim.experiments.executors import progress_bar
    from sim.money.settlement import check

    scenario = _scenario(args)
    contract = _contract(scenario, args.contract)
    if contract is not None:
        check(contract, scenario)
    if scenario.uncertainty and args.runs_per_draw > 1 and args.replications // args.runs_per_draw < 2:
        raise UserError(f"--runs-per-draw {args.runs_per_draw} with -n {args.replications} gives "
                        f"{args.replications // args.runs_per_draw} parameter draw(s): the variance split needs at "
                        f"least 2 (raise -n to {2 * args.runs_per_draw} or more)")
    with output_folder(args, "replications", scenario.name, "replications", replace=False) as folder:
        out = folder.path
        with _executor(args) as executor, progress_bar(args.replications, "replications") as bar:
            result = replicate(scenario, args.replications, args.seed, contract, executor, store=out / "runs",
                               progress=bar, runs_per_draw=args.runs_per_draw)
    summary = result.summary()
    _write_csv(out / "summary.csv", summary)
    shown = summary[(summary["category"].astype(str).isin(["all", "contract"]))
                    & (summary["period"].astype(str).isin(["term"]) | (summary["category"].astype(str) == "all"))]
    print(f"{result.n} replications of {scenario.name} (95% confidence intervals):\n")
    with _wide():
        print(shown.round(3).to_string(index=False))
    metrics = [m for m in ("successful_completions", "in_treatment", "margin", "spend")
               if m in set(result.table["metric"].astype(str))]
    if result.n >= 3 and metrics:
        needed = replications_needed(result.table[result.table["category"].astype(str).isin(["all", "contract"])],
                                     metrics)
        _write_csv(out / "replications_needed.csv", needed.table)
        print(f"\n{needed}")
    if scenario.uncertainty and args.runs_per_draw > 1:
        split = parameter_and_stochastic_variance(result.table)
        _write_csv(out / "variance_split.csv", split)
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
    with output_folder(args, "sweep", "sweeps", spec.name, replace=False) as folder:
        out = folder.path
        with _executor(args) as executor, progress_bar(total, spec.name) as bar:
            points, table = run_sweep(spec, executor, store=out / "runs", progress=bar)
        written = write_sweep(spec, points, table, out, args.metric)
    print(f"{spec.name}: {len(points)} points x {spec.replications} replications ({spec.design} design)")
    for name, frame in written.items():
        print(f"\nSensitivity of {name}:\n")
        with _wide():
            print(frame.round(4).to_string(index=False))
    print(f"\nresults written to {out}/")
    return 0


def cmd_summarise(args) -> int:
    from sim.experiments.core import summarise
    from sim.experiments.store import ResultStore

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: give a replicate or sweep results folder")
    store = ResultStore(folder / "runs" if (folder / "runs").is_dir() else folder)
    table = store.load()
    if table.empty:
        print(f"no finished runs in {store.directory}", file=sys.stderr)
        return 1
    meta = store.meta() or {}
    experiment = meta.get("experiment") or {}
    kind = experiment.get("kind", "experiment")
    summary = summarise(table)
    _write_csv(folder / "summary.csv", summary)
    runs = table[["point", "replication"]].drop_duplicates()
    print(f"{kind}: {len(runs)} finished runs over {runs['point'].nunique()} points; summary.csv written")
    with _wide():
        print(summary[summary["category"].astype(str).isin(["all", "contract"])].head(40).round(3).to_string(
            index=False))
    return 0


def _write_csv(path: Path, frame) -> None:
    from sim.engine.history import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: frame.to_csv(p, index=False))


def _wide():
    import pandas as pd

    return pd.option_context("display.width", 220, "display.max_columns", 40, "display.max_rows", 200)


def cmd_calibrate(args) -> int:
    from sim.config.targets import load_targets
    from sim.experiments.calibrate import calibrate, check, write_calibrated

    scenario = load_scenario(args.scenario)
    targets = load_targets(args.targets)
    name = args.name or scenario.name
    try:
        plain_name(name)
    except ValueError as e:
        raise UserError(f"--name {name!r}: {e}") from None
    table_path = output_file(Path(args.table) if args.table else RESULTS / "calibration" / name / "fit.csv")
    if args.params:
        output_file(Path(args.out) if args.out else RESULTS / "calibration" / name / f"{name}.toml")
    if not args.params:
        table = check(scenario, targets, args.seeds, args.seed, args.workers)
        _print_fit(table, f"{scenario.name} against {args.targets} ({args.seeds} replications)")
        _write_csv(table_path, table)
        print(f"\nfit table written to {table_path}")
        return 0 if table.loc[table["role"] == "calibration", "within"].all() else 1

    def show(row: dict) -> None:
        print(f"  evaluation {row['evaluation']:3d}: cost {row['cost']:10.4f}, {row['at_aim']}/{row['targets']} "
              "targets at their aim", file=sys.stderr)

    result = calibrate(scenario, targets, args.params, args.seeds, args.seed, args.workers, args.method,
                       args.max_evaluations, args.check_seeds, progress=show)
    out = Path(args.out) if args.out else RESULTS / "calibration" / name / f"{name}.toml"
    command = "pbrsim " + " ".join(_quote_arg(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["calibrate"] else ""
    write_calibrated(result, out, args.scenario, name=name, description=args.description, command=command)
    _print_fit(result.table, f"{name}: fit after {len(result.evaluations)} evaluations ({result.message})")
    with _wide():
        print("\n" + result.values().to_string(index=False))
    _write_csv(table_path, result.table)
    if result.check_table is not None:
        _print_fit(result.check_table, f"on {args.check_seeds} fresh replications")
        _write_csv(table_path.with_name(table_path.stem + "_check.csv"), result.check_table)
    print(f"\ncalibrated scenario written to {out}; fit table to {table_path}")
    return 0 if result.within else 1


def _quote_arg(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _print_fit(table, title: str) -> None:
    shown = table.assign(within=table["within"].map({True: "yes", False: "NO"}))
    with _wide():
        print(f"{title}:\n")
        print(shown[["target", "role", "figure", "tolerance", "simulated", "ci_low", "ci_high", "within"]]
              .to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        sources = "\n".join(f"  {t}: {s}" for t, s in zip(table["target"], table["source"]))
        print(f"\nsources:\n{sources}")


def cmd_report_validation(args) -> int:
    from sim.experiments.validation import validation_report

    with OutputFolder(args.out, "validation") as out:
        report = validation_report(args.scenarios or None, args.targets or None, replications=args.seeds,
                                   queue_replications=args.queue_seeds, workers=args.workers, out=out,
                                   progress=lambda text: print(text, file=sys.stderr))
    print(report.summary_text())
    print(f"\nreport written to {out.path}/ (validation.html, validation.md)")
    return 0


def cmd_app(args) -> int:
    from sim.webapp import launch  # Streamlit is an extra: imported only for this command

    return launch(port=args.port, scenarios=args.scenarios)


def cmd_validate(args) -> int:
    """Check files without running them, with the checks ``pbrsim run`` (and ``compare``, ``sweep``,
    ``calibrate``) make before anything runs: a scenario with the contract it names, a contract, a sweep spec
    with its scenario, contract and points, a target file. The kind is told by the keys at the top."""
    failed = 0
    for path in args.scenarios:
        try:
            print(f"ok: {path} ({check_file(Path(path))})")
        except UserError as e:
            print(f"pbrsim validate: {e}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def file_kind(path: Path) -> str:
    """``scenario``, ``contract``, ``sweep`` or ``targets``, from the keys at the top of the file (after
    ``extends``); the file is read with the scenario's checks (UTF-8, TOML, depth) when it cannot be read."""
    from sim.config.base import read_with_extends

    raw, _ = read_with_extends(path, ConfigError)
    if "target" in raw:
        return "targets"
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
    if kind == "targets":
        from sim.config.targets import load_targets

        t = load_targets(path)
        return f"targets {t.name}; {len(t.target)} figures"
    from sim.money.settlement import check

    sc = load_scenario(path)
    contract = scenario_contract(sc)
    if contract is not None:
        check(contract, sc)
    changes = len(sc.epochs()) - 1
    return (f"{sc.name}; {sc.horizon.contract_start} to {sc.horizon.end_date}; {changes} dated "
            f"change{'s' if changes != 1 else ''}" + (f"; contract {contract.name}" if contract else ""))


def cmd_list(args) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of scenarios")
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        print(f"no scenarios in {folder}/", file=sys.stderr)
        return 1
    for path in paths:
        try:
            sc = load_scenario(path)
            print(f"{path.name:32s} {sc.description}")
        except ConfigError as e:
            print(f"{path.name:32s} INVALID: {e.problems[0][3]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="pbrsim", description="Simulate drug and alcohol treatment systems "
                                     "and the payment-by-results contracts that pay for them.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario and write tables, measures, a summary and plots")
    run.add_argument("scenario", help="scenario file (TOML)")
    run.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    run.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    run.add_argument("--out", default=None, help="output directory (default: results/<scenario name>)")
    run.add_argument("--formats", type=formats, default=FORMATS, help="table formats: parquet, csv or both")
    run.add_argument("--no-plots", action="store_true", help="skip the plots")
    run.add_argument("--contract", default=None,
                     help="settle under this contract file instead of the scenario's own ('none': no contract)")
    run.set_defaults(func=cmd_run)

    cmp = sub.add_parser("compare", help="settle the same simulated histories under several contracts")
    cmp.add_argument("scenario", help="scenario file (TOML)")
    cmp.add_argument("--contracts", nargs="+", required=True, help="contract files; the first is the reference")
    cmp.add_argument("--replications", type=replications, default=20, help="simulated histories (default 20)")
    cmp.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    cmp.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    cmp.add_argument("--out", default=None, help="output directory (default: results/<scenario>/compare)")
    cmp.add_argument("--no-plots", action="store_true", help="skip the plots")
    _add_executor_options(cmp)
    cmp.set_defaults(func=cmd_compare)

    rep = sub.add_parser("replicate", help="replications with confidence intervals (and parameter uncertainty)")
    rep.add_argument("scenario", help="scenario file (TOML)")
    rep.add_argument("-n", "--replications", type=replications, default=20, help="replications (default 20)")
    rep.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    rep.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    rep.add_argument("--contract", default=None, help="contract file ('none': no contract; default: the "
                                                      "scenario's)")
    rep.add_argument("--runs-per-draw", type=whole_number(1, MAX_REPLICATIONS, "runs per draw"), default=1,
                     help="with [uncertainty]: runs per parameter draw (2 or more splits the variance)")
    rep.add_argument("--out", default=None, help="output directory (default: results/<scenario>/replications)")
    _add_executor_options(rep)
    rep.set_defaults(func=cmd_replicate)

    swp = sub.add_parser("sweep", help="run a sweep spec (grid, Latin hypercube, Sobol, Morris)")
    swp.add_argument("spec", help="sweep spec file (TOML)")
    swp.add_argument("--out", default=None, help="output directory (default: results/sweeps/<name>)")
    swp.add_argument("--metric", nargs="+", default=["margin", "spend", "successful_completions"],
                     help="results to compute sensitivity indices for")
    _add_executor_options(swp)
    swp.set_defaults(func=cmd_sweep)

    smr = sub.add_parser("summarise", help="summarise the finished runs of a replicate or sweep folder")
    smr.add_argument("folder")
    smr.set_defaults(func=cmd_summarise)

    cal = sub.add_parser("calibrate", help="fit scenario parameters to target figures (common random numbers)")
    cal.add_argument("scenario", help="scenario file (TOML)")
    cal.add_argument("targets", help="target file (TOML, scenarios/targets/)")
    cal.add_argument("--params", nargs="+", default=[], metavar="PATH[+PATH][=LOW:HIGH]",
                     help="key paths to fit ('+' joins paths moved by one factor); none: report the fit only")
    cal.add_argument("--seeds", type=replications, default=2, help="replications per evaluation (default 2)")
    cal.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    cal.add_argument("--workers", type=workers, default=1, help="processes running replications (default 1)")
    cal.add_argument("--method", choices=("least_squares", "nelder_mead"), default="least_squares")
    cal.add_argument("--max-evaluations", type=whole_number(1, 100_000, "evaluations"), default=60, help="evaluation budget (default 60)")
    cal.add_argument("--check-seeds", type=whole_number(0, MAX_REPLICATIONS, "check seeds"), default=0, help="also report the fit on this many fresh "
                                                                 "replications")
    cal.add_argument("--name", default=None, help="name of the calibrated scenario (default: the input's)")
    cal.add_argument("--description", default=None, help="its description (default: the input's + '(calibrated)')")
    cal.add_argument("--out", default=None, help="calibrated scenario file (default: "
                                                 "results/calibration/<name>/<name>.toml)")
    cal.add_argument("--table", default=None, help="fit table CSV (default: results/calibration/<name>/fit.csv)")
    cal.set_defaults(func=cmd_calibrate)

    rv = sub.add_parser("report-validation", help="every target against the simulation, and queueing checks")
    rv.add_argument("scenarios", nargs="*", help="scenario files (default: every scenario a target file names)")
    rv.add_argument("--targets", nargs="+", default=[], help="target files (default: scenarios/targets/*.toml "
                                                             "naming each scenario)")
    rv.add_argument("--seeds", type=replications, default=4, help="replications per scenario (default 4)")
    rv.add_argument("--queue-seeds", type=replications, default=8, help="replications of the Erlang C check (default 8)")
    rv.add_argument("--workers", type=workers, default=1, help="processes running replications (default 1)")
    rv.add_argument("--out", default="results/validation", help="output directory (default results/validation)")
    rv.set_defaults(func=cmd_report_validation)

    app = sub.add_parser("app", help="the commissioners' web app on http://127.0.0.1 (needs: pip install -e '.[app]')",
                         description="Start the commissioners' web app on http://127.0.0.1 (loopback only, no "
                                     "telemetry). Needs the app extra: pip install -e '.[app]'.")
    app.add_argument("--port", type=whole_number(1, 65535, "the port"), help="port (default: the first free one from 8501)")
    app.add_argument("--scenarios", help="folder of site scenarios to offer (default: the shipped ones)")
    app.set_defaults(func=cmd_app)

    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+")
    val.set_defaults(func=cmd_validate)

    lst = sub.add_parser("list", help="list the scenarios in a folder")
    lst.add_argument("folder", nargs="?", default="scenarios")
    lst.set_defaults(func=cmd_list)

    from sim.cli.provider import add_commands  # audit-contract and behaviour-sweep (provider behaviour, issue 7)

    add_commands(sub)

    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")

    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("PBRSIM_DEBUG"))
    try:
        with interrupt_on_signals():  # SIGTERM and SIGHUP: as Ctrl-C
            return args.func(args)
    except UserError as e:
        if debug:
            raise
        print(f"pbrsim {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(interrupted_message(e, args.command), file=sys.stderr)
        return exit_code(e)
    except Exception as e:  # a bug, not the user's doing: one line, and the way to the traceback
        if debug:
            raise
        print(f"pbrsim {args.command}: internal error: {type(e).__name__}: {str(e)[:500]}\n  this is a bug in "
              f"pbrsim; rerun with --debug for the traceback, and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
