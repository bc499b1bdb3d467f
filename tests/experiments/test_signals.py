"""Real signals sent to ``pbrsim`` subprocesses (issue 15): nothing lost, nothing deleted, nothing left running.

* ``pbrsim run``: SIGTERM and SIGKILL while it simulates and while it writes leave the previous results exactly as
  they were, and after the next run no half-written folder is left beside the target.
* ``pbrsim sweep --executor processes``: after SIGTERM or SIGKILL of the leader, or SIGINT to the whole process
  group (Ctrl-C at a terminal), no process of the run's group survives (worker processes, forkserver, resource
  tracker), and a rerun resumes to the table of an uninterrupted run without recomputing the kept runs.
* ``pbrsim app``: after SIGTERM or SIGKILL the Streamlit server is gone and its port closed.

Each command runs in a session of its own (``start_new_session``), so its process group is its own too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from tests.builders import CONTRACT_BLIND
from sim.experiments.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
WEST_KENT = ROOT / "scenarios" / "west_kent.toml"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
PYTHON = sys.executable


def _pbrsim(args: list[str], cwd: Path) -> subprocess.Popen:
    """``pbrsim ARGS`` in a session of its own, its output to files (a process left behind would hold a pipe
    open); :func:`_finish` waits for it."""
    n = len(list(cwd.glob("pbrsim-*.err")))
    out, err = cwd / f"pbrsim-{n}.out", cwd / f"pbrsim-{n}.err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([PYTHON, "-m", "sim.cli", *map(str, args)], cwd=cwd, env=ENV,
                                start_new_session=True, stdout=o, stderr=e)
    proc.err_path = err
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for the leader to exit; its stderr."""
    proc.wait(timeout)
    return proc.err_path.read_text()


def _states(entry: Path) -> tuple[int, set[str]]:
    """A process's group and the states of all its threads: a multi-threaded process whose leader thread has
    exited shows ``Z`` in its own ``stat`` while other threads still hold its files (a listening socket)."""
    pgrp = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
    states = set()
    for task in (entry / "task").iterdir():
        try:
            states.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
    return pgrp, states


def _group(pgid: int) -> list[tuple[int, str]]:
    """Live processes of process group ``pgid`` (any thread not a zombie): (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pgrp, states = _states(entry)
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pgrp == pgid and states - {"Z", "X"}:
            found.append((int(entry.name), cmdline[:160]))
    return found


def _group_ends(pgid: int, timeout: float = 15.0) -> list[tuple[int, str]]:
    """Wait up to ``timeout`` for group ``pgid`` to be empty; what is left."""
    deadline = time.monotonic() + timeout
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _kill_group(pgid: int) -> None:  # so a failing test leaves nothing behind either
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_for(condition, timeout: float, proc: subprocess.Popen | None = None, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(condition())
        time.sleep(poll)
    return False


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- pbrsim run ------------------------------------------------------------------------------------------------


def _scenario(tmp_path: Path) -> Path:
    """West Kent (its name kept: the output folder is ``west_kent``) with a 2-year warm-up."""
    path = tmp_path / "small.toml"
    path.write_text(f'extends = "{WEST_KENT.as_posix()}"\n[horizon]\nwarmup_years = 2\nyears = 1\n' + CONTRACT_BLIND)
    return path


def _temp_folders(out: Path) -> list[Path]:
    """A write's temporary folders beside ``out`` (not its lock file, held from the start of the run)."""
    return sorted(p for p in out.parent.glob(f".{out.name}.*") if p.is_dir())


def _previous_run(tmp_path: Path) -> tuple[Path, Path, dict]:
    scenario, out = _scenario(tmp_path), tmp_path / "west_kent"
    assert main(["run", str(scenario), "--seed", "1", "--out", str(out), "--no-plots"]) == 0
    before = _snapshot(out)
    assert "summary.txt" in before and "tables/spells.parquet" in before
    return scenario, out, before


def _signal_run(out: Path, tmp_path: Path, signum: int, when: str | float):
    """Start ``pbrsim run`` of West Kent as shipped over 3 years (about a second of simulation after about two
    of imports, then about two of writing, with plots) and send ``signum`` when it writes (``"writing"``: once its
    temporary folder beside ``out`` exists) or after ``when`` seconds. Returns (exit code, stderr, whether the
    signal was sent before the run ended, whether it was sent before the run began to write)."""
    proc = _pbrsim(["run", WEST_KENT, "--seed", "2", "--years", "3", "--out", out], tmp_path)
    try:
        if when == "writing":
            reached = _wait_for(lambda: bool(_temp_folders(out)), 60, proc, poll=0.005)
        else:
            reached = not _wait_for(lambda: proc.poll() is not None, float(when), poll=0.01)
        sent = reached and proc.poll() is None
        before_writing = not _temp_folders(out)
        if sent:
            os.kill(proc.pid, signum)
        err = _finish(proc)
        assert not _group_ends(proc.pid), "processes of the run survive it"
        return proc.returncode, err, sent, before_writing
    finally:
        _kill_group(proc.pid)


@pytest.mark.parametrize("when", [
    pytest.param(1.0, id="starting"),
    pytest.param(2.3, id="simulating"),
    pytest.param("writing", id="writing"),
    pytest.param(3.0, id="later", marks=pytest.mark.slow),
    pytest.param(0.3, id="importing", marks=pytest.mark.slow),
])
def test_sigterm_of_a_run_leaves_the_previous_results_as_they_were(tmp_path, when):
    scenario, out, before = _previous_run(tmp_path)
    code, err, sent, before_writing = _signal_run(out, tmp_path, signal.SIGTERM, when)
    if when == "writing":
        assert sent and not before_writing, "the run ended before it wrote"
    if sent and code == -signal.SIGTERM:  # still importing pbrsim's libraries (how long depends on the machine):
        assert when != "writing", err      # no handler yet, so nothing can have been written
        assert _snapshot(out) == before
    elif sent and code != 0:  # the run may have finished just as the signal came
        assert code == 128 + signal.SIGTERM, err
        assert "interrupted (SIGTERM)" in err and "previous results are untouched" in err, err
        assert "Traceback" not in err, err
        assert _snapshot(out) == before
    else:
        assert code == 0, err
    assert not _temp_folders(out), "a temporary folder was left beside the results"


@pytest.mark.parametrize("when", [
    pytest.param("writing", id="writing"),
    pytest.param(2.3, id="simulating"),
])
def test_sigkill_of_a_run_leaves_the_previous_results_and_the_next_run_no_half_folder(tmp_path, when):
    scenario, out, before = _previous_run(tmp_path)
    code, err, sent, before_writing = _signal_run(out, tmp_path, signal.SIGKILL, when)
    if when == "writing":
        assert sent and not before_writing, "the run ended before it wrote"
    else:
        assert sent and before_writing, "the signal came too late: the run was writing"
    if sent and code != 0:
        assert code == -signal.SIGKILL
        assert _snapshot(out) == before  # a stale temporary folder may be left beside it, until the next run
    assert main(["run", str(scenario), "--seed", "3", "--out", str(out), "--no-plots"]) == 0
    assert (out / "summary.txt").is_file()
    assert not _temp_folders(out), "the next run left the killed run's temporary folder"


# --- pbrsim sweep --executor processes ---------------------------------------------------------------------------


def _sweep_spec(tmp_path: Path) -> Path:
    """A Morris sweep of 6 points x 2 replications of a 1-year West Kent: 12 runs of about a second each."""
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'name = "tiny"\nscenario = "{WEST_KENT.as_posix()}"\ndesign = "morris"\nsamples = 2\n'
                    'replications = 2\nseed = 3\n[changes]\n"horizon.warmup_years" = 2\n"horizon.years" = 1\n'
                    '"behaviour.mode" = "off"\n"contract.extension_years" = 0\n"contract.term_years" = 1\n'
                    '"contract.pbr_share.by_year" = [0.25]\n'
                    '[[parameters]]\npath = "capacity.recovery_workers"\nlow = 8\nhigh = 16\ninteger = true\n'
                    '[[parameters]]\npath = "treatment.drop_out_rate_per_year.by_group.opiate"\nlow = 0.1\n'
                    'high = 0.3\n')
    return spec


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "SIGINT to the group"])
def test_a_signalled_sweep_leaves_no_process_and_resumes_to_the_same_table(tmp_path, how):
    spec, out = _sweep_spec(tmp_path), tmp_path / "sweep"
    args = ["sweep", spec, "--executor", "processes", "--workers", "2", "--out", out]
    proc = _pbrsim(args, tmp_path)
    try:
        assert _wait_for(lambda: any((out / "runs").rglob("*.parquet")), 120, proc), _finish(proc)
        assert proc.poll() is None, "the sweep finished before it could be signalled"
        assert len(_group(proc.pid)) >= 3  # the leader, its forkserver and workers (and resource tracker)
        if how == "SIGINT to the group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, getattr(signal, how))
        err = _finish(proc)
        left = _group_ends(proc.pid)
        assert not left, f"left running after {how}: {left}"
    finally:
        _kill_group(proc.pid)
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        expected = signal.SIGTERM if how == "SIGTERM" else signal.SIGINT
        assert proc.returncode == 128 + expected, err
        assert "Traceback" not in err, err
        assert "finished run" in err and "rerun the same command to resume" in err and str(out / "runs") in err
    # the finished parts (a part whose checksum line the kill cut off is damaged, and is rightly run again)
    store = ResultStore(out / "runs")
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (store.path(*key) for key in store.done())}
    assert kept

    resumed = _pbrsim(args, tmp_path)
    try:
        err = _finish(resumed, 300)
        assert resumed.returncode == 0, err
        assert not _group_ends(resumed.pid), "a finished sweep left processes running"
    finally:
        _kill_group(resumed.pid)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in kept} == kept  # kept runs were not run again

    reference = tmp_path / "uninterrupted"
    assert main(["sweep", str(spec), "--out", str(reference)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"),
                                  pd.read_parquet(reference / "results.parquet"))


# --- pbrsim app --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signalled_app_closes_its_port_and_leaves_no_process(tmp_path, signum):
    pytest.importorskip("streamlit")
    port = _free_port()
    proc = _pbrsim(["app", "--port", port], tmp_path)
    try:
        assert _wait_for(lambda: _answers(port), 90, proc, poll=0.2), _finish(proc)
        os.kill(proc.pid, signum)
        err = _finish(proc)
        left = _group_ends(proc.pid, 20)
        assert not left, f"left running: {left}"
        # the kernel closes the socket as the last thread exits; a server that kept it would still answer
        assert _wait_for(lambda: not _answers(port), 5), "the port still answers"
    finally:
        _kill_group(proc.pid)
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "Traceback" not in err, err
