"""Nothing deleted, nothing half: what pbrsim writes goes only where it may, is checked before anything runs,
and appears whole; a misused command line is refused in one line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sim.engine.history
import sim.engine.system
from sim import simulate
from sim.cli import main
from sim.core.folders import MANIFEST, OutputError, OutputFolder, is_results_folder
from tests.builders import CONTRACT_BLIND, small_scenario

ROOT = Path(__file__).resolve().parents[2]
WEST_KENT = ROOT / "scenarios" / "west_kent.toml"
BLOCK = ROOT / "scenarios" / "contracts" / "block.toml"


def _scenario(folder: Path, name: str = "tiny", extra: str = "") -> Path:
    path = folder / f"scenario_{abs(hash(name)) % 10_000}.toml"
    path.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = {json.dumps(name)}\n'
                    f"[horizon]\nwarmup_years = 2\nyears = 1\n{CONTRACT_BLIND}{extra}")
    return path


@pytest.fixture
def nothing_runs(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a simulation started")

    monkeypatch.setattr(sim.engine.system.TreatmentSystem, "__init__", refuse)  # every run starts here


def _exit(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# --- names that would be paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "", "..", "."])
def test_a_scenario_name_that_is_a_path_deletes_nothing(name, tmp_path, monkeypatch, capsys, nothing_runs):
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    victims = [work / "x", work / "results", Path("/tmp/x") if name == "/tmp/x" else tmp_path / "x"]
    for victim in victims:
        victim.mkdir(exist_ok=True)
        (victim / "marker").write_text("keep me")
    monkeypatch.chdir(work)
    try:
        for command in (["run"], ["compare", "--contracts", str(BLOCK)], ["replicate"], ["audit-contract"]):
            code, err = _exit([command[0], str(_scenario(tmp_path, name)), *command[1:]], capsys)
            assert code == 2, err
            assert "name" in err and repr(name) in err
        for victim in victims:
            assert (victim / "marker").read_text() == "keep me"
    finally:
        if name == "/tmp/x":
            (Path("/tmp/x") / "marker").unlink(missing_ok=True)


def test_a_sweep_name_that_is_a_path_is_refused(tmp_path, capsys, nothing_runs):
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'name = "../../x"\nscenario = "{WEST_KENT.as_posix()}"\ndesign = "lhs"\nsamples = 2\n'
                    '[[parameters]]\npath = "capacity.rehab_places"\nlow = 10\nhigh = 20\n')
    code, err = _exit(["sweep", str(spec)], capsys)
    assert code == 2 and "name = '../../x'" in err


# --- --out --------------------------------------------------------------------------------------------------------


def test_out_at_an_unrelated_folder_or_a_file_is_refused_before_simulating(tmp_path, capsys, nothing_runs):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("notes")
    scenario = _scenario(tmp_path)
    for out, says in ((folder, "not a pbrsim results folder"), (a_file, "is a file"), (Path("/"), "root"),
                      (Path("/proc/pbrsim/x"), "cannot"), (Path.cwd(), "current folder")):
        for argv in (["run", str(scenario)], ["compare", str(scenario), "--contracts", str(BLOCK)],
                     ["replicate", str(scenario)]):
            code, err = _exit([*argv, "--out", str(out)], capsys)
            assert code == 2 and says in err and (str(out) in err or str(out.parent) in err), err
    assert (folder / "chapter1.tex").read_text() == "years of work"
    assert a_file.read_text() == "notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder.name, a_file.name, scenario.name])


def test_a_run_replaces_its_own_results_keeps_other_commands_and_cleans_a_killed_write(tmp_path, capsys):
    out = tmp_path / "results" / "tiny"
    scenario = _scenario(tmp_path)
    assert main(["run", str(scenario), "--out", str(out), "--no-plots", "--formats", "csv"]) == 0
    first = json.loads((out / MANIFEST).read_text())
    assert first["kind"] == "run" and first["command"] is None or isinstance(first["command"], list)
    assert main(["compare", str(scenario), "--contracts", str(BLOCK), "--replications", "1", "--no-plots",
                 "--out", str(out / "compare")]) == 0
    # what a write killed by SIGKILL leaves: a half-built temporary sibling
    stale = out.parent / ".tiny.pbrsim-tmp-dead"
    (stale / "tables").mkdir(parents=True)
    (out / "mine.txt").write_text("a file pbrsim did not write, inside a results folder")
    assert main(["run", str(scenario), "--out", str(out), "--no-plots", "--formats", "csv", "--seed", "4"]) == 0
    assert not stale.exists()
    assert (out / "compare" / "summary.csv").is_file(), "the comparison was carried over"
    assert json.loads((out / "run.json").read_text())["seed"] == 4
    assert not (out / "mine.txt").exists()  # a results folder is replaced whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


def test_a_folder_caught_between_the_two_renames_is_put_back(tmp_path):
    target = tmp_path / "west_kent"
    old = tmp_path / ".west_kent.pbrsim-old"
    old.mkdir()
    (old / MANIFEST).write_text("{}")
    (old / "summary.txt").write_text("the previous run")
    with OutputFolder(target, "run"):
        pass
    assert (target / "summary.txt").read_text() == "the previous run" and not old.exists()


def test_a_second_writer_of_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    with OutputFolder(tmp_path / "x", "run"):
        with pytest.raises(OutputError, match="another pbrsim is writing"):
            OutputFolder(tmp_path / "x", "run")
    with OutputFolder(tmp_path / "x", "run"):  # free again, and no lock file left after
        pass
    assert list(tmp_path.iterdir()) == []


def test_two_runs_into_the_same_out_at_once_leave_one_whole_run(tmp_path):
    out = tmp_path / "out"
    scenario = _scenario(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "sim.cli", "run", str(scenario), "--out", str(out), "--no-plots"]
    procs = [subprocess.Popen([*command, "--seed", str(seed)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for code, err in results:
        assert code == 0 or (code == 2 and "another pbrsim is writing" in err), err
        assert "Traceback" not in err
    assert any(code == 0 for code, _ in results)
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] in (1, 2) and is_results_folder(out)
    for table in ("clients", "episodes", "spells", "events", "reviews", "capacity"):
        assert (out / "tables" / f"{table}.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", scenario.name])


# --- the command line, misused --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, says", [
    (["run", "S", "--seed", "-1"], "--seed"),
    (["run", "S", "--years", "1e9"], "--years"),
    (["run", "S", "--years", "0"], "--years"),
    (["run", "S", "--formats", "xlsx"], "--formats"),
    (["replicate", "S", "-n", "0"], "--replications"),
    (["replicate", "S", "--workers", "0"], "--workers"),
    (["replicate", "S", "--runs-per-draw", "0"], "--runs-per-draw"),
    (["compare", "S", "--contracts", str(BLOCK), "--replications", "0"], "--replications"),
    (["audit-contract", "S", "-n", "0"], "--replications"),
    (["calibrate", "S", "T", "--seeds", "0"], "--seeds"),
    (["app", "--port", "99999"], "--port"),
    (["run"], "scenario"),
])
def test_a_misused_command_line_is_one_line_and_exit_2(argv, says, tmp_path, capsys, nothing_runs):
    argv = [str(_scenario(tmp_path)) if a == "S" else a for a in argv]
    code, err = _exit(argv, capsys)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_a_variance_split_that_cannot_be_made_is_refused_before_running(tmp_path, capsys, nothing_runs):
    uncertain = _scenario(tmp_path, "u", '[uncertainty]\n"capacity.recovery_workers" = '
                                       '{ dist = "triangular", low = 24, mode = 30, high = 36 }\n')
    code, err = _exit(["replicate", str(uncertain), "-n", "3", "--runs-per-draw", "2", "--out",
                       str(tmp_path / "r")], capsys)
    assert code == 2 and "--runs-per-draw 2" in err and "at least 2" in err


def test_missing_files_and_folders_are_one_line(tmp_path, capsys):
    for argv in (["run", str(tmp_path / "nowhere.toml")], ["summarise", str(tmp_path / "nowhere")],
                 ["list", str(tmp_path / "nowhere")], ["validate", str(tmp_path)]):
        code, err = _exit(argv, capsys)
        assert code == 2 and "nowhere" in err or str(tmp_path) in err, err


def test_an_internal_error_is_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sim.engine.system, "simulate", broken)
    code, err = _exit(["run", str(_scenario(tmp_path)), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "internal error: ZeroDivisionError: a bug" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["run", str(_scenario(tmp_path)), "--out", str(tmp_path / "o"), "--debug"])
    assert not (tmp_path / "o").exists()


def test_a_run_that_outgrows_the_machine_stops_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(sim.engine.history, "MAX_EPISODES", 300)
    scenario = small_scenario(years=1, warmup_years=1)
    with pytest.raises(sim.engine.history.RunTooLarge, match="300 referrals"):
        simulate(scenario, 1)


def test_a_file_not_in_utf8_is_listed_as_invalid_by_pbrsim_list_and_the_app(tmp_path, capsys):
    from sim.webapp.design import sites

    (tmp_path / "good.toml").write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "good"\n')
    (tmp_path / "windows.toml").write_bytes(f'extends = "{WEST_KENT.as_posix()}"\n# \xa34m\n'.encode("cp1252"))
    assert main(["list", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "good.toml" in printed and "windows.toml" in printed and "INVALID: not UTF-8 text" in printed
    found, skipped = sites(tmp_path)
    assert [s.name for s in found] == ["good"]
    assert len(skipped) == 1 and "windows.toml" in skipped[0] and "not UTF-8" in skipped[0]
