"""The ``pbrsim`` command line: ``run``, ``validate``, ``list``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .scenario import ScenarioError, load_scenario


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


def cmd_run(args) -> int:
    from .output import summary_text, write_run
    from .pathway import simulate

    scenario = load_scenario(args.scenario)
    if args.years is not None:
        scenario = scenario.with_changes({"horizon.years": args.years, "horizon.end": None})
    seed = scenario.seed if args.seed is None else args.seed
    bar, update = _progress_bar(scenario)
    start = time.perf_counter()
    with bar:
        history = simulate(scenario, seed, progress=update)
    wall = time.perf_counter() - start
    out = Path(args.out) if args.out else Path("results") / scenario.name
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    write_run(history, scenario, out, formats=formats, with_plots=not args.no_plots, wall_seconds=wall)
    print(summary_text(history, scenario, wall))
    print(f"results written to {out}/")
    return 0


def cmd_validate(args) -> int:
    failed = 0
    for path in args.scenarios:
        try:
            sc = load_scenario(path)
        except ScenarioError as e:
            print(e, file=sys.stderr)
            failed += 1
            continue
        changes = len(sc.epochs()) - 1
        print(f"ok: {path} ({sc.name}; {sc.horizon.contract_start} to {sc.horizon.end_date}; "
              f"{changes} dated change{'s' if changes != 1 else ''})")
    return 2 if failed else 0


def cmd_list(args) -> int:
    folder = Path(args.folder)
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        print(f"no scenarios in {folder}/", file=sys.stderr)
        return 1
    for path in paths:
        try:
            sc = load_scenario(path)
            print(f"{path.name:32s} {sc.description}")
        except ScenarioError as e:
            print(f"{path.name:32s} INVALID: {e.problems[0][3]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pbrsim", description="Simulate drug and alcohol treatment systems "
                                     "and the payment-by-results contracts that pay for them.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario and write tables, measures, a summary and plots")
    run.add_argument("scenario", help="scenario file (TOML)")
    run.add_argument("--seed", type=int, default=None, help="root seed (default: the scenario's)")
    run.add_argument("--years", type=float, default=None, help="reported years after the contract start")
    run.add_argument("--out", default=None, help="output directory (default: results/<scenario name>)")
    run.add_argument("--formats", default="parquet,csv", help="table formats: parquet, csv or both")
    run.add_argument("--no-plots", action="store_true", help="skip the plots")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+")
    val.set_defaults(func=cmd_validate)

    lst = sub.add_parser("list", help="list the scenarios in a folder")
    lst.add_argument("folder", nargs="?", default="scenarios")
    lst.set_defaults(func=cmd_list)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
