"""The result store: atomic parts, resume without recomputing, refusal to mix experiments.

The resume test kills a running experiment (a subprocess with two worker processes) once some runs have finished,
restarts it, and checks that the final table equals an uninterrupted run's and that no finished run was run
again. Helpers used by the subprocess live here too (``resume_specs``, ``counting_run``, ``resume_main``).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import load_scenario
from sim.experiments.core import RunSpec, run_one, run_specs
from sim.experiments.executors import ProcessExecutor, SerialExecutor
from sim.experiments.store import COLUMNS, ResultStore, StoreMismatch, empty_table
from tests.builders import small_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "west_kent.toml"


def _table(point: int, replication: int, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"point": point, "replication": replication, "period": "2012-13",
                         "category": ["all", "opiate", "all"][: len(values)],
                         "metric": ["b", "a", "a"][: len(values)], "value": values})


# --- parts -------------------------------------------------------------------------------------------------------


def test_write_load_has_done(tmp_path):
    store = ResultStore(tmp_path / "store")
    empty = store.load()
    assert list(empty.columns) == COLUMNS and len(empty) == 0
    pd.testing.assert_frame_equal(empty, empty_table())
    store.write((1, 0), _table(1, 0, [1.0, 2.0, np.nan]))
    store.write((0, 2), _table(0, 2, [3.0, 4.0]))
    assert store.has(1, 0) and not store.has(0, 0)
    assert store.done() == {(1, 0), (0, 2)}
    loaded = store.load()
    assert list(loaded.columns) == COLUMNS and loaded["point"].dtype == np.int64
    assert loaded[["point", "replication"]].drop_duplicates().values.tolist() == [[0, 2], [1, 0]]
    # sorted by (point, replication, period, category, metric)
    assert loaded["category"].astype(object).tolist() == ["all", "opiate", "all", "all", "opiate"]
    assert loaded["metric"].astype(object).tolist() == ["b", "a", "a", "b", "a"]
    assert loaded["value"].tolist()[:2] == [3.0, 4.0] and np.isnan(loaded["value"].iloc[2])
    assert len(store.load(keys=[(1, 0)])) == 3
    with pytest.raises(ValueError, match="other runs"):
        store.write((2, 0), _table(1, 0, [1.0]))


def test_temporary_files_are_invisible_and_cleaned(tmp_path):
    store = ResultStore(tmp_path)
    store.write((0, 0), _table(0, 0, [1.0]))
    # what a run killed in the middle of writing part (0, 1) leaves: a partial temporary file
    stale = tmp_path / "point=0" / ".replication=1.parquet.x1y2.part"
    stale.write_bytes(b"PAR1 half a file")
    assert store.done() == {(0, 0)}
    assert len(store.load()) == 1
    assert store.clean() == [stale] and not stale.exists()
    assert store.path(0, 0).exists()


def test_meta_refuses_a_different_experiment(tmp_path):
    store = ResultStore(tmp_path)
    store.begin({"kind": "sweep", "seed": 1, "design": {"n": 8}}, {0: "aaa", 1: "bbb"})
    store.begin({"kind": "sweep", "seed": 1, "design": {"n": 8}}, {1: "bbb", 2: "ccc"})  # same; a new point
    assert store.meta()["points"] == {"0": "aaa", "1": "bbb", "2": "ccc"}
    with pytest.raises(StoreMismatch, match=r"design\.n: 8 -> 9"):
        store.begin({"kind": "sweep", "seed": 1, "design": {"n": 9}}, {})
    with pytest.raises(StoreMismatch, match=r"point\(s\) 1 were run with a different"):
        store.begin(None, {1: "changed"})
    # parts without a meta.json cannot be checked
    orphan = ResultStore(tmp_path / "orphan")
    orphan.write((0, 0), _table(0, 0, [1.0]))
    with pytest.raises(StoreMismatch, match="no meta.json"):
        orphan.begin({"kind": "sweep"}, {0: "x"})
    assert not list(tmp_path.glob("**/.*.part"))  # meta.json written atomically too


def test_run_specs_refuses_changed_points(tmp_path):
    scenario = small_scenario(years=1, warmup_years=2)
    store = ResultStore(tmp_path)
    store.begin(None, {0: RunSpec(0, 0, scenario.raw(), None, 1).inputs_digest()})
    changed = scenario.with_changes({"capacity.rehab_places": 3})
    with pytest.raises(StoreMismatch, match="point"):
        run_specs([RunSpec(0, 0, changed.raw(), None, 1)], store=store)
    assert store.done() == set()


def _fake_run(fail: tuple[int, int] | None, calls: list | None, spec: RunSpec) -> pd.DataFrame:
    """A stand-in for run_one: a small table, or an error for the key ``fail``."""
    if calls is not None:
        calls.append(spec.key)
    if spec.key == fail:
        raise RuntimeError(f"run {spec.key} failed")
    return _table(spec.point, spec.replication, [float(spec.point), float(spec.replication)])


def test_a_failed_experiment_keeps_finished_runs(tmp_path):
    raw = load_scenario(SCENARIO).raw()
    specs = [RunSpec(p, r, raw, None, 1) for p in range(2) for r in range(2)]
    store = ResultStore(tmp_path)
    with pytest.raises(RuntimeError, match=r"run \(1, 0\) failed"):
        run_specs(specs, SerialExecutor(), store, function=functools.partial(_fake_run, (1, 0), None))
    assert store.done() == {(0, 0), (0, 1)}
    inodes = {k: os.stat(store.path(*k)).st_ino for k in store.done()}
    calls: list = []
    table = run_specs(specs, SerialExecutor(), store, function=functools.partial(_fake_run, None, calls))
    assert calls == [(1, 0), (1, 1)]
    assert {k: os.stat(store.path(*k)).st_ino for k in inodes} == inodes
    assert len(table) == 8
    # a smaller request from the same store gives only its own runs
    again = run_specs(specs[:1], SerialExecutor(), store, function=functools.partial(_fake_run, None, calls))
    assert calls == [(1, 0), (1, 1)] and len(again) == 2 and set(again["point"]) == {0}


# --- resume after a kill -----------------------------------------------------------------------------------------


def resume_specs() -> list[RunSpec]:
    scenario = small_scenario(years=1, warmup_years=2)
    fewer = scenario.with_changes({"capacity.recovery_workers": 18})
    return [RunSpec(p, r, s.raw(), None, 7) for p, s in enumerate([scenario, fewer]) for r in range(3)]


def counting_run(marks: str, spec: RunSpec):
    """run_one, leaving a marker file per call: how many times each run was started."""
    Path(marks, f"{spec.point}-{spec.replication}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    return run_one(spec)


def resume_main(store: str, marks: str) -> None:
    """What the killed subprocess runs: the experiment on two worker processes, into the store."""
    with ProcessExecutor(2) as executor:
        run_specs(resume_specs(), executor, store, function=functools.partial(counting_run, marks))


def _starts(marks: Path) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for f in marks.iterdir():
        p, r = (int(x) for x in f.name.split("-")[:2])
        out[(p, r)] = out.get((p, r), 0) + 1
    return out


def test_killed_experiment_resumes_without_recomputing(tmp_path):
    specs = resume_specs()
    store_dir, marks = tmp_path / "store", tmp_path / "marks"
    marks.mkdir()
    code = f"from tests.unit.test_store import resume_main; resume_main({str(store_dir)!r}, {str(marks)!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = ResultStore(store_dir)
    try:
        deadline = time.monotonic() + 120
        while len(store.done()) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the experiment ended before it was killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no runs finished within 120 s")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group: the experiment, its forkserver and workers
        proc.wait()
        proc.stderr.close()
    finished = store.done()
    assert 2 <= len(finished) < len(specs), "killed too late to test resuming"
    before = {k: (os.stat(store.path(*k)).st_ino, os.stat(store.path(*k)).st_mtime_ns) for k in finished}
    starts_before = _starts(marks)
    assert set(finished) <= set(starts_before)
    partial = store.load()  # a partly finished experiment can be read (and summarised)
    assert set(zip(partial["point"], partial["replication"])) == finished

    seen = []
    resumed = run_specs(specs, SerialExecutor(), store, progress=seen.append,
                        function=functools.partial(counting_run, str(marks)))
    assert seen[0] == len(finished) and seen[-1] == len(specs)
    starts = _starts(marks)
    for key in finished:  # no finished run was started again, nor its part rewritten
        assert starts[key] == 1, key
        assert (os.stat(store.path(*key)).st_ino, os.stat(store.path(*key)).st_mtime_ns) == before[key]
    assert set(starts) == {s.key for s in specs}
    assert not list(store_dir.glob("**/.*.part"))  # no temporary file left

    uninterrupted = run_specs(specs, SerialExecutor())
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    pd.testing.assert_frame_equal(ResultStore(store_dir).load(), uninterrupted)


# --- damaged parts -----------------------------------------------------------------------------------------------


def _damage(store: ResultStore, key: tuple[int, int], how: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = store.path(*key)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(300))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "edited":  # still a valid part of its own run, with one value changed
        table = pq.read_table(path).to_pandas()
        table.loc[0, "value"] += 1.0
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)


def test_damaged_parts_are_recomputed_on_resume_and_never_counted(tmp_path, caplog):
    raw = load_scenario(SCENARIO).raw()
    specs = [RunSpec(p, r, raw, None, 1) for p in range(2) for r in range(3)]
    run = functools.partial(_fake_run, None, None)
    uninterrupted = run_specs(specs, SerialExecutor(), function=run)
    store = ResultStore(tmp_path / "store")
    run_specs(specs, SerialExecutor(), store, function=run)
    damaged = {(0, 1): "truncated", (1, 0): "garbage", (1, 2): "edited", (0, 2): "empty"}
    for key, how in damaged.items():
        _damage(store, key, how)
    assert store.done() == {s.key for s in specs} - set(damaged)
    assert set(store.damaged()) == set(damaged)
    assert set(zip(*(store.load()[c] for c in ("point", "replication")))) == store.done()  # never read
    calls: list = []
    with caplog.at_level("WARNING", logger="pbrsim"):
        resumed = run_specs(specs, SerialExecutor(), store, function=functools.partial(_fake_run, None, calls))
    assert sorted(calls) == sorted(damaged), "exactly the damaged runs were done again"
    assert "recomputing 4 runs" in caplog.text and "point=0/replication=1" in caplog.text
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    pd.testing.assert_frame_equal(ResultStore(tmp_path / "store").load(), uninterrupted)
    assert store.damaged() == {}


def test_a_part_without_its_checksum_line_is_not_finished(tmp_path):
    store = ResultStore(tmp_path)
    store.write((0, 0), _table(0, 0, [1.0, 2.0]))
    store.write((0, 1), _table(0, 1, [3.0]))
    lines = (tmp_path / "parts.jsonl").read_text().splitlines()
    (tmp_path / "parts.jsonl").write_text(lines[0] + "\n" + lines[1][:10])  # killed while appending
    assert store.done() == {(0, 0)} and "no checksum" in store.damaged()[(0, 1)]


def test_a_store_from_before_checksums_adopts_its_whole_parts_once(tmp_path):
    store = ResultStore(tmp_path)
    for key, values in (((0, 0), [1.0]), ((0, 1), [2.0]), ((1, 0), [3.0])):
        store.write(key, _table(*key, values))
    (tmp_path / "parts.jsonl").unlink()
    _damage(store, (1, 0), "garbage")
    assert store.done() == {(0, 0), (0, 1)} and set(store.damaged()) == {(1, 0)}
    assert (tmp_path / "parts.jsonl").is_file()


def test_a_corrupt_meta_json_is_one_clear_error(tmp_path):
    store = ResultStore(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": 1, "experi')
    with pytest.raises(StoreMismatch, match="meta.json cannot be read"):
        store.meta()
    with pytest.raises(StoreMismatch, match=str(tmp_path)):
        run_specs([RunSpec(0, 0, load_scenario(SCENARIO).raw(), None, 1)], store=store,
                  function=functools.partial(_fake_run, None, None))
