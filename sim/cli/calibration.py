"""``pbrsim calibrate``, ``pbrsim report-validation`` and ``pbrsim warmup``: fitting a scenario to target
figures, the validation report, and the warm-up a scenario needs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from sim.cli.common import (MAX_REPLICATIONS, RESULTS, add_executor_options, add_replications_option,
                            executor_from_args, log, output_file, replications, seed, whole_number, wide, workers,
                            write_csv)
from sim.config.base import plain_name
from sim.config.scenario import load_scenario
from sim.core.errors import UserError
from sim.core.folders import OutputFolder


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
        table = check(scenario, targets, args.replications, args.seed, args.workers)
        print_fit(table, f"{scenario.name} against {args.targets} ({args.replications} replications)")
        write_csv(table_path, table)
        print(f"\nfit table written to {table_path}")
        return 0 if table.loc[table["role"] == "calibration", "within"].all() else 1

    def show(row: dict) -> None:
        log.info(f"  evaluation {row['evaluation']:3d}: cost {row['cost']:10.4f}, {row['at_aim']}/{row['targets']} "
                 "targets at their aim")

    start_from = load_scenario(args.start) if args.start else None
    result = calibrate(scenario, targets, args.params, args.replications, args.seed, args.workers, args.method,
                       args.max_evaluations, args.check_seeds, progress=show, start_from=start_from)
    out = Path(args.out) if args.out else RESULTS / "calibration" / name / f"{name}.toml"
    command = "pbrsim " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["calibrate"] else ""
    write_calibrated(result, out, args.scenario, name=name, description=args.description, command=command,
                     start_path=args.start)
    print_fit(result.table, f"{name}: fit after {len(result.evaluations)} evaluations ({result.message})")
    with wide():
        print("\n" + result.values().to_string(index=False))
    write_csv(table_path, result.table)
    if result.check_table is not None:
        print_fit(result.check_table, f"on {args.check_seeds} fresh replications")
        write_csv(table_path.with_name(table_path.stem + "_check.csv"), result.check_table)
    print(f"\ncalibrated scenario written to {out}; fit table to {table_path}")
    return 0 if result.within else 1


def print_fit(table, title: str) -> None:
    """A fit table (target, figure, tolerance, simulated with its interval, within) and its sources."""
    shown = table.assign(within=table["within"].map({True: "yes", False: "NO"}))
    with wide():
        print(f"{title}:\n")
        print(shown[["target", "role", "figure", "tolerance", "simulated", "ci_low", "ci_high", "within"]]
              .to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        sources = "\n".join(f"  {t}: {s}" for t, s in zip(table["target"], table["source"]))
        print(f"\nsources:\n{sources}")


def cmd_report_validation(args) -> int:
    from sim.experiments.validation import validation_report

    with OutputFolder(args.out, "validation") as out:
        report = validation_report(args.scenarios or None, args.targets or None, replications=args.replications,
                                   queue_replications=args.queue_seeds, workers=args.workers, out=out,
                                   progress=log.info)
    print(report.summary_text())
    print(f"\nreport written to {out.path}/ (validation.html, validation.md)")
    return 0


def cmd_warmup(args) -> int:
    """The MSER-5 warm-up diagnostic of a scenario; exit code 1 when its own warm-up is shorter than needed or
    some series has not settled."""
    from sim.experiments.warmup import warmup_diagnostic

    scenario = load_scenario(args.scenario)
    table_path = output_file(Path(args.table) if args.table else RESULTS / "warmup" / scenario.name / "warmup.csv")
    with executor_from_args(args) as executor:
        result = warmup_diagnostic(scenario, args.replications, args.years, args.seed, executor)
    own = scenario.horizon.warmup_years
    with wide():
        print(result.text(own))
    write_csv(table_path, result.table)
    print(f"\ntable written to {table_path}")
    return 0 if result.needed_years is not None and own >= result.needed_years else 1


def add_commands(sub) -> None:
    """Register ``calibrate``, ``report-validation`` and ``warmup``."""
    cal = sub.add_parser("calibrate", help="fit scenario parameters to target figures (common random numbers)")
    cal.add_argument("scenario", help="scenario file (TOML)")
    cal.add_argument("targets", help="target file (TOML, scenarios/targets/)")
    cal.add_argument("--params", nargs="+", default=[], metavar="PATH[+PATH][=LOW:HIGH]",
                     help="key paths to fit ('+' joins paths moved by one factor); none: report the fit only")
    add_replications_option(cal, 2, "replications per evaluation (default 2)", old_spelling="--seeds")
    cal.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    cal.add_argument("--workers", type=workers, default=1, help="processes running replications (default 1)")
    cal.add_argument("--method", choices=("least_squares", "nelder_mead"), default="least_squares")
    cal.add_argument("--max-evaluations", type=whole_number(1, 100_000, "evaluations"), default=60, help="evaluation budget (default 60)")
    cal.add_argument("--check-seeds", type=whole_number(0, MAX_REPLICATIONS, "check seeds"), default=0, help="also report the fit on this many fresh "
                                                                 "replications")
    cal.add_argument("--start", default=None, metavar="SCENARIO",
                     help="take the starting values of the fitted paths from this scenario (an earlier fit) "
                          "instead of the input's; bounds are relative to them")
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
    add_replications_option(rv, 4, "replications per scenario (default 4)", old_spelling="--seeds")
    rv.add_argument("--queue-seeds", type=replications, default=8, help="replications of the Erlang C check (default 8)")
    rv.add_argument("--workers", type=workers, default=1, help="processes running replications (default 1)")
    rv.add_argument("--out", default="results/validation", help="output directory (default results/validation)")
    rv.set_defaults(func=cmd_report_validation)

    wu = sub.add_parser("warmup", help="the warm-up a scenario needs (MSER-5 on the quarterly measures contracts "
                                       "price, from an empty system)")
    wu.add_argument("scenario", help="scenario file (TOML)")
    wu.add_argument("--years", type=whole_number(8, 50, "years"), default=50,
                    help="years simulated from an empty system (default 50; the cut is looked for in the first half)")
    add_replications_option(wu, 8, "replications averaged (default 8)")
    wu.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    wu.add_argument("--table", default=None, help="table CSV (default: results/warmup/<name>/warmup.csv)")
    add_executor_options(wu)
    wu.set_defaults(func=cmd_warmup)
