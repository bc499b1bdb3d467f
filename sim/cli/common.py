"""What the ``pbrsim`` commands share: the parser, argument types, output folders and files, the scenario,
contract and executor a command's options choose, and the ``pbrsim`` logger."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sim.config.base import ConfigError
from sim.config.scenario import MAX_YEARS, load_scenario
from sim.core.folders import OutputError, OutputFolder

RESULTS = Path("results")
MAX_REPLICATIONS = 10_000
MAX_WORKERS = 256

log = logging.getLogger("pbrsim")  # diagnostics (notices, progress notes) on stderr; results go to stdout


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


def add_replications_option(p, default: int, help: str, old_spelling: str | None = None) -> None:
    """``-n/--replications`` (every command spells it so); ``old_spelling``: a former name still accepted,
    not shown in the help."""
    p.add_argument("-n", "--replications", type=replications, default=default, help=help)
    if old_spelling is not None:
        p.add_argument(old_spelling, dest="replications", type=replications, default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)


def output_folder(args, kind: str, *default: str, replace: bool = True, **inputs) -> OutputFolder:
    """The folder a command writes (``--out``, or ``results/...``), checked and locked before anything runs. Its
    manifest records ``inputs`` (validated scenarios, contracts, specs, or lists of them; None is left out) with
    their hashes, and the command's root seed and replications."""
    from sim.core.provenance import input_record

    folder = OutputFolder(Path(args.out) if args.out else RESULTS.joinpath(*default), kind, replace=replace)
    records = {k: [input_record(m) for m in v] if isinstance(v, (list, tuple)) else input_record(v)
               for k, v in inputs.items() if v is not None}
    seed = getattr(args, "seed", None)
    if seed is None and getattr(inputs.get("scenario"), "seed", None) is not None:
        seed = inputs["scenario"].seed
    return folder.describe(inputs=records, seed=seed, replications=getattr(args, "replications", None))


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


def day_progress_bar(scenario):
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


def replication_bar(total: int):
    """A progress bar over replications, shown only when they take more than a second."""
    from tqdm import tqdm

    return tqdm(total=total, unit="replication", delay=1.0, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())


def scenario_from_args(args):
    """The scenario ``args.scenario`` names, with ``--years`` and ``--provider`` applied."""
    scenario = load_scenario(args.scenario)
    if args.years is not None:
        scenario = scenario.with_changes({"horizon.years": args.years, "horizon.end": None})
    if getattr(args, "provider", None) is not None:
        scenario = scenario.with_changes({"behaviour.mode": args.provider})
    return scenario


def add_provider_option(parser) -> None:
    """``--provider MODE``: the provider's behaviour for this command, in place of the scenario's."""
    from sim.config.behaviour import MODES

    parser.add_argument("--provider", choices=MODES, default=None,
                        help="how the provider responds to the contract, in place of the scenario's [behaviour] "
                             "mode: off (contract-blind: the same service under every contract), calibrated "
                             "(fitted to the national pilot evaluation), base or stress")


def contract_from_choice(scenario, choice: str | None):
    """The contract to settle under: ``--contract FILE``, ``--contract none``, or the scenario's own."""
    from sim.config.contract import load_contract

    if choice is not None:
        return None if choice.lower() == "none" else load_contract(choice)
    return scenario_contract(scenario)


def scenario_contract(scenario):
    """The contract the scenario names (None if it names none); a bad contract file's errors say which
    scenario named it."""
    from sim.config.contract import load_contract

    return _named_file(scenario, "contract", scenario.contract_path(), load_contract)


def scenario_counterfactual(scenario):
    """The counterfactual scenario the scenario names (None if it names none); a bad or missing file's errors
    say which scenario named it."""
    return _named_file(scenario, "counterfactual", scenario.counterfactual_path(), load_scenario)


def _named_file(scenario, key: str, path, load):
    """``load(path)`` of the file the scenario's ``key`` names, or None; its errors say which file named it."""
    from sim.config.base import source_of

    if path is None:
        return None
    try:
        return load(path)
    except ConfigError as e:
        named_in = source_of((key,), scenario._provenance, scenario._source)
        raise e.reached_from(named_in, key, getattr(scenario, key)) from None


def executor_from_args(args):
    """The executor ``--executor``, ``--workers`` and ``--scheduler`` choose."""
    from sim.experiments.executors import make_executor

    return make_executor(args.executor, args.workers, args.scheduler)


def add_executor_options(p) -> None:
    p.add_argument("--executor", choices=("serial", "processes", "dask"), default="serial",
                   help="where runs execute; results are identical whichever is used")
    p.add_argument("--workers", type=workers, default=None, help="worker processes (default: the cores)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (with --executor dask)")


def write_csv(path: Path, frame) -> None:
    from sim.engine.history import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: frame.to_csv(p, index=False))


def wide():
    """pandas display options for the tables the commands print."""
    import pandas as pd

    return pd.option_context("display.width", 220, "display.max_columns", 40, "display.max_rows", 200)
