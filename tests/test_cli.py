"""The command line as a user runs it: run, validate, list; bad input; outputs whole or not at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
WEST_KENT = ROOT / "scenarios" / "west_kent.toml"


def _tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "tiny"\n'
                    "[horizon]\nwarmup_years = 1\nyears = 1\n")
    return path


def test_run_writes_tables_measures_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(_tiny(tmp_path)), "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "scenario tiny" in printed and "opiate" in printed
    for table in ("clients", "episodes", "spells", "events", "reviews", "capacity"):
        assert (out / "tables" / f"{table}.parquet").is_file()
        assert (out / "tables" / f"{table}.csv").is_file()
    clients = pd.read_parquet(out / "tables" / "clients.parquet")
    assert len(clients) == len(pd.read_csv(out / "tables" / "clients.csv")) > 100
    years = pd.read_csv(out / "measures_year.csv")
    assert set(years["breakdown"]) == {"all", "band", "group"}
    assert (out / "summary.txt").read_text().startswith("pbrsim")
    for plot in ("caseload_by_group", "waiting_list", "exits_by_type", "completions_by_group"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 10_000
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["scenario"] == "tiny"
    assert not list(tmp_path.glob(".out.*")), "no temporary directory is left behind"


def test_run_years_option_and_same_seed_same_tables(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["run", str(_tiny(tmp_path)), "--seed", "1", "--years", "0.5", "--out", str(out),
                     "--no-plots", "--formats", "parquet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(a / "tables" / "spells.parquet"),
                                  pd.read_parquet(b / "tables" / "spells.parquet"))
    assert not (a / "plots").exists() and not list((a / "tables").glob("*.csv"))
    assert len(pd.read_csv(a / "measures_quarter.csv").query("breakdown == 'all'")) == 2


def test_bad_scenario_is_refused_before_anything_runs(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{WEST_KENT.as_posix()}"\n[capacity]\nrehab_places = -3\n')
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "capacity.rehab_places" in err and "-3" in err
    assert not out.exists()


def test_validate_and_list(tmp_path, capsys):
    assert main(["validate", str(WEST_KENT)]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{WEST_KENT.as_posix()}"\n[assessment]\nattends_treatment = 1.5\n')
    assert main(["validate", str(bad)]) == 2
    assert "assessment.attends_treatment = 1.5" in capsys.readouterr().err
    assert main(["list", str(ROOT / "scenarios")]) == 0
    assert "west_kent.toml" in capsys.readouterr().out


def test_interrupted_run_leaves_previous_results_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert main(["run", str(_tiny(tmp_path)), "--seed", "1", "--out", str(out), "--no-plots"]) == 0
    before = (out / "summary.txt").read_text()

    import sim.output

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim.output.measures, "summary", broken)
    assert main(["run", str(_tiny(tmp_path)), "--seed", "2", "--out", str(out), "--no-plots"]) == 130
    assert (out / "summary.txt").read_text() == before
    assert (out / "tables" / "spells.parquet").is_file()


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_console_script_help(args):
    done = subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)
    assert done.returncode == 0 and "usage" in done.stdout
