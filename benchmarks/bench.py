"""The benchmark suite of issues 5 and 17: the cost of the engine in units of bare SimPy and where it goes,
scaling, the cost of a provider responding to its contract, parallel speed-up and aggregate-mode memory, in one
command.

    python benchmarks/bench.py [--rounds 5] [--quick] [--json FILE]

What it measures (every timing is interleaved over ``--rounds`` rounds and reported as median and range; the
machine is noisy, so differences under 15% are noise):

* **B** -- seconds per event of a bare SimPy 4 loop of timeouts, measured in this process in every round. The
  model's cost is reported in B per referral, so figures from different machines compare.
* **West Kent x1** -- ``scenarios/west_kent.toml`` with ``horizon.years = 10`` (plus its 10-year warm-up),
  seed 1: wall time of ``simulate``, referrals (rows of ``history.episodes``, warm-up included), SimPy events per
  referral (``history.meta["simpy_events"]``), **B per referral** (wall / referrals / B of the same round),
  simulated client-years per second (sum of spell durations, warm-up included, / wall). Peak memory per referral
  (tracemalloc peak during ``simulate``, full History, KiB per referral) is measured once, in a separate run,
  because tracemalloc slows the model several-fold and the figure does not depend on the machine's load.
* **breakdown** (one more x1 run, measured once) -- where a referral's B go: *planning* (``sim.engine.plans``:
  drawing and computing episode plans and attributes in batches), *SimPy* (estimated as the run's SimPy events x
  B: the scheduler's share), *recording* (the Recorder's calls during the run: spells, events, new clients and
  episodes), *after-run* (TOP reviews written and the History built, ``Recorder.finish``), and the rest (the
  stage generators' own code, the capacities, arrivals). Planning, recording and after-run are timed with
  wrappers around those functions; what a wrapper costs a call is measured on a no-op and taken out again (from
  the parts and from the wall time).
* **provider responding** -- the x1 run with ``behaviour.mode = "base"`` under
  ``scenarios/contracts/west_kent_pbr.toml`` (the provider model built once from a contract-blind pilot, outside
  the timing), against the same run contract-blind, interleaved over the rounds: time ratio, responding / blind.
* **scaling** -- arrivals (``population.arrivals_per_year.*``) and all capacities (``capacity.assessors``,
  ``recovery_workers``, ``inpatient_detox_beds``, ``rehab_places``) x4: B per referral at x4 / at x1, per round.
* **parallel speed-up** -- 32 replications (``sim.experiments.core.replicate``, aggregate mode) of a shorter run
  (``horizon.years = 4``, ``horizon.warmup_years = 2``; printed in the output): serial against
  ``ProcessExecutor(2)`` and ``DaskExecutor(2)``, in rotating order. *warm*: executor already started (steady
  throughput, what a long sweep sees); *end-to-end*: including starting and closing the workers (what
  ``pbrsim replicate -n 32`` sees). Also checks that the three tables are identical.
* **100 ten-year runs** (measured once) -- ``replicate`` of the x1 run (10 reported years after the 10-year
  warm-up), 100 replications on ``ProcessExecutor(2)``, end to end (starting and closing the workers included):
  the issue's "100 ten-year runs under a minute", and a 1,000-run sweep of such runs projected from it.
* **aggregate mode memory** (measured once) -- a 100-run ``replicate(..., aggregate=True)`` on 2 worker processes:
  the parent's tracemalloc peak, how much it keeps per finished run, and the result table's size (against the
  size of one full History, to show Histories are not held); then 20 runs at 2 and at 8 reported years: the
  parent's peak and the workers' peak RSS (``ru_maxrss``), to see whether memory grows with the horizon.

``--quick`` is a smoke test (2 rounds, short horizons, few runs): its figures are not comparable to the targets.
``--json FILE`` writes every figure (and the per-round values, the machine and the configuration); see
``benchmarks/README.md``. ``benchmarks/compare.py`` re-measures the per-referral figures against
``benchmarks/baseline.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "west_kent.toml"
KIB, MIB = 1024.0, 1024.0 ** 2
NOISE = 0.15  # differences under 15% are noise on this kind of machine

# The targets of issue 17 (the parallel speed-ups: issue 5): (figure, comparison, value).
TARGETS = {
    "hundred_runs_s": ("<=", 60.0),
    "thousand_runs_min": ("<=", 5.0),
    "b_per_referral": ("<=", 40.0),
    "b_per_referral_stretch": ("<=", 20.0),
    "events_per_referral": ("<=", 6.0),
    "peak_kib_per_referral": ("<=", 1.5),
    "scale_x4_cost_ratio": ("<=", 1.2),
    "responding_cost_ratio": ("<=", 1.5),
    "speedup_processes": (">=", 1.8),
    "speedup_dask": (">=", 1.6),
}


# --- small helpers ---------------------------------------------------------------------------------------------


def stat(values: list[float]) -> dict:
    """Median and range of a list of per-round values."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def verdict(value: float, target: tuple[str, float], noisy: bool = True) -> str:
    """"met" or "NOT met"; for a timing (``noisy``), "(within noise)" when within 15% of the target."""
    op, bound = target
    met = value <= bound if op == "<=" else value >= bound
    near = noisy and bool(bound) and abs(value / bound - 1.0) < NOISE
    return ("met" if met else "NOT met") + (" (within noise)" if near else "")


def machine() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / MIB, 1)  # kB -> GiB
                break
    except OSError:
        pass
    import dask
    import distributed
    import numpy
    import pandas

    return {
        "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
        "cpu_model": model, "cpu_count": os.cpu_count(), "memory_gib": mem,
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "simpy": simpy.__version__, "numpy": numpy.__version__, "pandas": pandas.__version__,
        "dask": dask.__version__, "distributed": distributed.__version__,
    }


def git_state() -> dict | None:
    """The commit measured, and whether ``sim/`` differs from it (uncommitted engine changes)."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sim"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "sim_modified": bool(dirty)}


@contextlib.contextmanager
def checkout(revision: str):
    """Another git revision of this repository, checked out into a temporary worktree for the duration."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkout"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), revision], check=True, cwd=ROOT)
        try:
            yield path
        finally:  # not checked: a failure here must not hide the one that brought us here
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT)


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def say(*parts, **kw) -> None:
    print(*parts, **kw, flush=True)


class OtherLoad:
    """CPU used by processes outside this benchmark's process tree while a measurement runs, in cores (0: the
    machine was otherwise quiet; 1: another process kept one core busy). Linux only (``/proc``); None elsewhere.

    Busy CPU time from ``/proc/stat`` minus the CPU time of this process and its live descendants (including
    what they reaped: worker processes, the forkserver, Dask nannies)."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._sample()
        self.t0 = time.perf_counter()

    @staticmethod
    def _busy() -> int:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return user + nice + system + irq + softirq + steal  # guest time is already in user

    @staticmethod
    def _own() -> int:
        parent, ticks = {}, {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                text = (d / "stat").read_text()
            except OSError:
                continue
            rest = text.rsplit(")", 1)[1].split()  # fields after the command name
            pid = int(d.name)
            parent[pid] = int(rest[1])
            ticks[pid] = sum(int(x) for x in rest[11:15])  # utime, stime, cutime, cstime
        me = os.getpid()
        mine, frontier = {me}, [me]
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            nxt = []
            for pid in frontier:
                for child in children.get(pid, ()):
                    if child not in mine:
                        mine.add(child)
                        nxt.append(child)
            frontier = nxt
        return sum(ticks.get(pid, 0) for pid in mine)

    def _sample(self) -> tuple[int, int] | None:
        try:
            return self._busy(), self._own()
        except (OSError, ValueError, IndexError):
            return None

    def cores(self) -> float | None:
        end = self._sample()
        wall = time.perf_counter() - self.t0
        if self.start is None or end is None or wall <= 0:
            return None
        other = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, other / self.tick / wall)


# --- B: bare SimPy ---------------------------------------------------------------------------------------------


def bare_simpy(n_events: int = 500_000) -> float:
    """Seconds per event of a bare SimPy timeout loop (one process yielding ``n_events`` timeouts)."""
    env = simpy.Environment()

    def loop():
        for _ in range(n_events):
            yield env.timeout(1.0)

    env.process(loop())
    gc.collect()
    t = time.perf_counter()
    env.run()
    return (time.perf_counter() - t) / n_events


# --- scenarios -------------------------------------------------------------------------------------------------


def base_scenario():
    from sim import load_scenario

    return load_scenario(SCENARIO)


def scaled_changes(scenario, factor: float) -> dict:
    """Arrivals and every capacity multiplied by ``factor`` (the scaling experiment of issue 5)."""
    raw = scenario.raw()
    arrivals = raw["population"]["arrivals_per_year"]
    if not isinstance(arrivals, dict) or not all(isinstance(v, (int, float)) for v in arrivals.values()):
        raise SystemExit(f"scaling expects population.arrivals_per_year as numbers per group, got {arrivals!r}")
    cap = raw["capacity"]
    changes = {f"population.arrivals_per_year.{g}": v * factor for g, v in arrivals.items()}
    changes.update({
        "capacity.assessors": int(round(cap["assessors"] * factor)),
        "capacity.recovery_workers": cap["recovery_workers"] * factor,
        "capacity.inpatient_detox_beds": int(round(cap["inpatient_detox_beds"] * factor)),
        "capacity.rehab_places": int(round(cap["rehab_places"] * factor)),
    })
    return changes


# --- one model run ---------------------------------------------------------------------------------------------


def timed_run(scenario, seed: int = 1) -> dict:
    """Wall time of ``simulate`` and the counts of its History."""
    from sim import simulate
    from sim.core.calendar import DAYS_PER_YEAR

    gc.collect()
    t = time.perf_counter()
    h = simulate(scenario, seed=seed)
    wall = time.perf_counter() - t
    referrals = len(h.episodes)
    events = h.meta.get("simpy_events")
    client_years = float((h.spells["end"] - h.spells["start"]).sum()) / DAYS_PER_YEAR
    return {"wall_s": wall, "referrals": referrals, "simpy_events": None if events is None else int(events),
            "client_years": client_years}


def history_bytes(h) -> int:
    """Deep size of the History's tables (pandas ``memory_usage(deep=True)``)."""
    from sim.engine.history import TABLES

    return int(sum(getattr(h, t).memory_usage(deep=True).sum() for t in TABLES))


def memory_run(scenario, seed: int = 1) -> dict:
    """tracemalloc peak during ``simulate`` (full History), and the size of the History it returns."""
    from sim import simulate

    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    h = simulate(scenario, seed=seed)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    referrals = len(h.episodes)
    size = history_bytes(h)
    return {"peak_bytes": peak, "referrals": referrals, "peak_kib_per_referral": peak / KIB / referrals,
            "history_bytes": size, "history_kib_per_referral": size / KIB / referrals}


def breakdown_run(scenario, b: float, seed: int = 1) -> dict:
    """One run with timers around planning, the Recorder's calls and the after-run (see the module docstring);
    seconds and B per referral by part, SimPy estimated as events x ``b``."""
    from sim import simulate
    from sim.engine import history, plans, system

    spent = {"planning": 0.0, "recording": 0.0, "after_run": 0.0}
    calls = dict.fromkeys(spent, 0)
    patched = []

    def wrap(original, part):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - t
                calls[part] += 1
        return wrapper

    def timed(owner, name, part):
        original = getattr(owner, name)
        patched.append((owner, name, original))
        setattr(owner, name, wrap(original, part))

    # what a timer costs a call (inside its part, and outside it), to take it out again
    def noop():
        return None
    wrapped, n = wrap(noop, "planning"), 200_000
    t = time.perf_counter()
    for _ in range(n):
        noop()
    bare = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(n):
        wrapped()
    per_call = max((time.perf_counter() - t - bare) / n, 0.0)
    inside = spent["planning"] / n
    spent["planning"], calls["planning"] = 0.0, 0

    for name in ("draws", "attributes", "plan"):
        timed(plans.Planner, name, "planning")
    for name in ("new_client", "new_episode", "state", "event", "add_event"):
        timed(history.Recorder, name, "recording")
    timed(history.Recorder, "finish", "after_run")
    timed(system.TreatmentSystem, "_write_reviews", "after_run")
    try:
        gc.collect()
        t = time.perf_counter()
        h = simulate(scenario, seed=seed)
        wall = time.perf_counter() - t
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
    referrals = len(h.episodes)
    overhead = sum(calls.values()) * per_call
    for part in calls:
        spent[part] = max(spent[part] - calls[part] * inside, 0.0)
    wall -= overhead
    spent["simpy_estimate"] = int(h.meta["simpy_events"]) * b
    spent["stages_and_rest"] = wall - sum(spent.values())
    return {"wall_s": wall, "referrals": referrals, "B_s": b, "parts_s": spent, "timed_calls": calls,
            "timer_overhead_s": overhead, "parts_b_per_referral": {k: v / referrals / b for k, v in spent.items()},
            "b_per_referral": wall / referrals / b}


def measure_responding(rounds: int, years: float, warmup: float | None, log=say) -> dict:
    """The x1 run with the provider responding to the West Kent PbR contract (behaviour base) against the same run
    contract-blind, interleaved; the provider model is built before the timing."""
    from sim import simulate
    from sim.config.contract import load_contract
    from sim.experiments.providers import provider_model

    changes = {"horizon.years": years, "behaviour.mode": "base"}
    if warmup is not None:
        changes["horizon.warmup_years"] = warmup
    scenario = base_scenario().with_changes(changes)
    contract = load_contract(ROOT / "scenarios" / "contracts" / "west_kent_pbr.toml")
    model = provider_model(scenario, contract, 1)
    rows = []
    for r in range(rounds):
        gc.collect()
        t = time.perf_counter()
        blind = simulate(scenario, seed=1)
        t_blind = time.perf_counter() - t
        gc.collect()
        t = time.perf_counter()
        responding = simulate(scenario, seed=1, provider=model)
        t_responding = time.perf_counter() - t
        rows.append({"blind_s": t_blind, "responding_s": t_responding, "ratio": t_responding / t_blind,
                     "referrals_blind": len(blind.episodes), "referrals_responding": len(responding.episodes)})
        log(f"  round {r + 1}/{rounds}: blind {t_blind:.2f} s, responding {t_responding:.2f} s "
            f"(ratio {rows[-1]['ratio']:.2f})")
    return {"rounds": rows, "changes": changes, "ratio": stat([x["ratio"] for x in rows]),
            "blind_s": stat([x["blind_s"] for x in rows]), "responding_s": stat([x["responding_s"] for x in rows])}


# --- the single-process measurement (x1, and x4 if asked), interleaved over rounds --------------------------------


def measure_model(rounds: int, years: float, warmup: float | None = None, scale: float | None = 4.0,
                  b_events: int = 500_000, log=say) -> dict:
    """Per round: B, West Kent x1, B, West Kent x``scale``. Returns per-round rows and summary figures."""
    sc0 = base_scenario()
    changes = {"horizon.years": years}
    if warmup is not None:
        changes["horizon.warmup_years"] = warmup
    x1 = sc0.with_changes(changes)
    xs = sc0.with_changes({**changes, **scaled_changes(sc0, scale)}) if scale else None
    rows = []
    for r in range(rounds):
        meter = OtherLoad()
        b1 = bare_simpy(b_events)
        one = timed_run(x1)
        row = {"round": r, "B_s": [b1], "x1": one}
        if xs is not None:
            b2 = bare_simpy(b_events)
            row["B_s"].append(b2)
            row["x4"] = timed_run(xs)
        b = statistics.fmean(row["B_s"])
        row["B_round_s"] = b
        one["b_per_referral"] = one["wall_s"] / one["referrals"] / b
        if xs is not None:
            four = row["x4"]
            four["b_per_referral"] = four["wall_s"] / four["referrals"] / b
            row["x4_cost_ratio"] = four["b_per_referral"] / one["b_per_referral"]
        row["other_load_cores"] = meter.cores()
        rows.append(row)
        log(f"  round {r + 1}/{rounds}: other load {_cores(row['other_load_cores'])}; B {b * 1e6:.3f} us; "
            f"x1 {one['wall_s']:.2f} s = {one['b_per_referral']:.1f} B/referral"
            + (f"; x{scale:g} {row['x4']['wall_s']:.2f} s = {row['x4']['b_per_referral']:.1f} B/referral "
               f"(ratio {row['x4_cost_ratio']:.2f})" if xs is not None else ""))
    return summarise_model(rows, scale)


BUSY = 0.25  # other processes using more than this many cores make the timings unreliable


def busy_warning(load: dict | None) -> str | None:
    if load and load["max"] > BUSY:
        return (f"  WARNING: other processes used up to {load['max']:.2f} cores during these measurements: the "
                "timings (and speed-ups) are unreliable; rerun on a quiet machine")
    return None


def _cores(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f} cores"


def other_load(rows: list[dict]) -> dict | None:
    values = [row["other_load_cores"] for row in rows if row.get("other_load_cores") is not None]
    return stat(values) if values else None


def summarise_model(rows: list[dict], scale: float | None) -> dict:
    def check_same(key: str, which: str) -> int | None:
        values = {row[which][key] for row in rows}
        if len(values) != 1:  # the same scenario and seed must give the same run
            raise SystemExit(f"{which}: {key} differs between rounds: {sorted(values)}")
        return values.pop()

    out = {"B_us": stat([row["B_round_s"] * 1e6 for row in rows]),
           "B_events_per_s": stat([1.0 / row["B_round_s"] for row in rows])}
    for which in ["x1"] + (["x4"] if scale else []):
        referrals = check_same("referrals", which)
        events = check_same("simpy_events", which)
        client_years = rows[0][which]["client_years"]
        walls = [row[which]["wall_s"] for row in rows]
        out[which] = {
            "wall_s": stat(walls),
            "referrals": referrals,
            "simpy_events": events,
            "events_per_referral": None if events is None else events / referrals,
            "b_per_referral": stat([row[which]["b_per_referral"] for row in rows]),
            "us_per_referral": stat([w / referrals * 1e6 for w in walls]),
            "client_years": client_years,
            "client_years_per_s": stat([client_years / w for w in walls]),
        }
    if scale:
        out["scale"] = scale
        out["x4_cost_ratio"] = stat([row["x4_cost_ratio"] for row in rows])
    out["other_load_cores"] = other_load(rows)
    out["rounds"] = rows
    return out


# --- parallel speed-up -----------------------------------------------------------------------------------------


def _worker_maxrss(_=None) -> tuple[int, int]:
    """(pid, peak RSS in KiB) of the worker process that runs it."""
    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measured_run(spec):
    """``run_one`` in aggregate mode, plus the worker's pid and peak RSS (KiB) after the run; run_specs files the
    second element under ``histories`` (it holds no History)."""
    from sim.experiments.core import run_one

    table = run_one(spec)
    return table, _worker_maxrss()


def _importable():
    """This module under its own name (not ``__main__``), so worker processes can unpickle its functions."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import bench

    return bench


def make(name: str, workers: int):
    from sim.experiments.executors import DaskExecutor, ProcessExecutor, SerialExecutor

    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "one_process":  # the serial reference run the way the workers run (same per-run overheads)
        return ProcessExecutor(1)
    if name == "dask":
        return DaskExecutor(workers)
    raise ValueError(name)


def timed_replicate(name: str, scenario, n: int, workers: int, seed: int = 1):
    """(setup, work, close) seconds of ``replicate(scenario, n)`` on a fresh executor, and the table."""
    from sim.experiments.core import replicate

    gc.collect()
    t0 = time.perf_counter()
    ex = make(name, workers)
    if name != "serial":  # start every worker (and its imports) before timing the work
        list(ex.map(abs, range(2 * workers)))
    t1 = time.perf_counter()
    try:
        reps = replicate(scenario, n, seed=seed, executor=ex)
        t2 = time.perf_counter()
    finally:
        ex.close()
    t3 = time.perf_counter()
    stop_forkserver()
    return {"setup_s": t1 - t0, "work_s": t2 - t1, "close_s": t3 - t2, "total_s": t3 - t0}, reps.table


def stop_forkserver() -> None:
    """Stop this process's multiprocessing forkserver (our own child), so that the next ProcessExecutor starts
    as in a fresh process: the forkserver, with ``sim.experiments.core`` preloaded, is part of its start-up cost.
    Uses a private method of the standard library; does nothing where it is absent."""
    try:
        from multiprocessing import forkserver

        stop = getattr(forkserver._forkserver, "_stop", None)
        if stop is not None:
            stop()
    except Exception:  # noqa: BLE001 - only a measurement nicety
        pass


def measure_parallel(rounds: int, n: int, years: float, warmup: float | None, workers: int = 2,
                     log=say) -> dict:
    import pandas as pd

    changes = {"horizon.years": years}
    if warmup is not None:
        changes["horizon.warmup_years"] = warmup
    sc = base_scenario().with_changes(changes)
    names = ["serial", "processes", "dask", "one_process"]
    rows, identical = [], True
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        row, tables = {"round": r, "order": order}, {}
        meter = OtherLoad()
        for name in order:
            row[name], tables[name] = timed_replicate(name, sc, n, workers)
        row["other_load_cores"] = meter.cores()
        for name in ("processes", "dask", "one_process"):
            try:
                pd.testing.assert_frame_equal(tables["serial"], tables[name])
            except AssertionError:
                identical = False
            if name != "one_process":
                row[f"speedup_{name}_warm"] = row["serial"]["work_s"] / row[name]["work_s"]
                row[f"speedup_{name}_end_to_end"] = row["serial"]["total_s"] / row[name]["total_s"]
        row["speedup_processes_over_one_process"] = row["one_process"]["work_s"] / row["processes"]["work_s"]
        row["one_process_over_serial"] = row["one_process"]["work_s"] / row["serial"]["work_s"]
        rows.append(row)
        log(f"  round {r + 1}/{rounds}: other load {_cores(row['other_load_cores'])}; serial "
            f"{row['serial']['work_s']:.1f} s; processes "
            f"{row['processes']['work_s']:.1f} s (+{row['processes']['setup_s'] + row['processes']['close_s']:.1f}"
            f" s start/close); dask {row['dask']['work_s']:.1f} s (+"
            f"{row['dask']['setup_s'] + row['dask']['close_s']:.1f} s) -> speed-up warm "
            f"{row['speedup_processes_warm']:.2f} / {row['speedup_dask_warm']:.2f}, end-to-end "
            f"{row['speedup_processes_end_to_end']:.2f} / {row['speedup_dask_end_to_end']:.2f}; one worker "
            f"process {row['one_process']['work_s']:.1f} s")
    out = {"replications": n, "workers": workers, "changes": changes, "tables_identical": identical}
    for name in names:
        out[name] = {k: stat([row[name][k] for row in rows]) for k in ("setup_s", "work_s", "close_s", "total_s")}
    for name in ("processes", "dask"):
        for kind in ("warm", "end_to_end"):
            out[f"speedup_{name}_{kind}"] = stat([row[f"speedup_{name}_{kind}"] for row in rows])
    for key in ("speedup_processes_over_one_process", "one_process_over_serial"):
        out[key] = stat([row[key] for row in rows])
    out["other_load_cores"] = other_load(rows)
    out["rounds"] = rows
    return out


# --- 100 ten-year runs -----------------------------------------------------------------------------------------


def measure_hundred(n: int, years: float, warmup: float | None, workers: int = 2) -> dict:
    """``n`` replications of the x1 run on ``workers`` processes, end to end, once."""
    changes = {"horizon.years": years, **({} if warmup is None else {"horizon.warmup_years": warmup})}
    load = OtherLoad()
    times, table = timed_replicate("processes", base_scenario().with_changes(changes), n, workers)
    return {"runs": n, "workers": workers, "changes": changes, "other_load_cores": load.cores(), **times,
            "rows": len(table)}


# --- aggregate mode memory -------------------------------------------------------------------------------------


def aggregate_experiment(scenario, n: int, workers: int = 2, seed: int = 1) -> dict:
    """``n`` aggregate-mode replications on ``workers`` processes, with tracemalloc on the parent only (the parent
    simulates nothing, so tracing costs little): the parent's peak and what it keeps after each finished run, the
    table's size, and the workers' peak RSS."""
    from sim.experiments.core import RunSpec, run_specs, scenario_raw

    bench = _importable()
    ex = make("processes", workers)
    before = dict(ex.map(bench._worker_maxrss, range(2 * workers)))  # start the workers: RSS after imports
    raw = scenario_raw(scenario)
    specs = [RunSpec(0, r, raw, None, seed, True) for r in range(n)]
    kept: list[int] = []
    infos: dict = {}
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    try:
        table = run_specs(specs, ex, progress=lambda done: kept.append(tracemalloc.get_traced_memory()[0] - base),
                          function=bench._measured_run, histories=infos)
        wall = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] - base
        after = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
        ex.close()
        stop_forkserver()
    worker_peak = {}
    for pid, rss in infos.values():
        worker_peak[pid] = max(worker_peak.get(pid, 0), rss)
    first = min(10, n) - 1  # the slope from the 10th finished run on (the first few include one-off costs)
    per_run = (kept[-1] - kept[first]) / (n - 1 - first) if n - 1 > first else float("nan")
    table_bytes = int(table.memory_usage(deep=True).sum())
    return {
        "runs": n, "workers": workers, "wall_s": wall,
        "parent_peak_bytes": peak, "parent_kept_bytes": after, "parent_kept_per_run_bytes": per_run,
        "table_rows": len(table), "table_bytes": table_bytes, "table_bytes_per_run": table_bytes / n,
        "worker_rss_after_imports_kib": max(before.values()),
        "worker_peak_rss_kib": max(worker_peak.values()),
        "worker_peak_rss_growth_kib": max(worker_peak.values()) - max(before.values()),
    }


def measure_aggregate(n: int, years: float, warmup: float | None, horizon_runs: int,
                      horizon_years: tuple[float, float], log=say) -> dict:
    from sim import simulate

    sc0 = base_scenario()

    def variant(y):
        changes = {"horizon.years": y}
        if warmup is not None:
            changes["horizon.warmup_years"] = warmup
        return sc0.with_changes(changes), changes

    sc, changes = variant(years)
    one = history_bytes(simulate(sc, seed=1))  # the size of one full History of this run, for comparison
    big = aggregate_experiment(sc, n)
    big.update({"changes": changes, "history_bytes_one_run": one,
                "histories_bytes_if_kept": one * n})
    log(f"  {n} runs ({changes}): parent peak {big['parent_peak_bytes'] / MIB:.2f} MiB, keeps "
        f"{big['parent_kept_per_run_bytes'] / KIB:.1f} KiB per run; table {big['table_rows']:,} rows, "
        f"{big['table_bytes'] / MIB:.2f} MiB; one History {one / MIB:.1f} MiB (x{n} = "
        f"{one * n / MIB:,.0f} MiB)")
    by_horizon = {}
    for y in horizon_years:
        s, ch = variant(y)
        res = aggregate_experiment(s, horizon_runs)
        res["changes"] = ch
        by_horizon[f"{y:g}"] = res
        log(f"  {horizon_runs} runs at {y:g} reported years: parent peak {res['parent_peak_bytes'] / MIB:.2f} MiB, "
            f"table {res['table_bytes'] / KIB:,.0f} KiB; worker peak RSS growth "
            f"{res['worker_peak_rss_growth_kib'] / KIB:.0f} MiB")
    lo, hi = (by_horizon[f"{y:g}"] for y in horizon_years)
    growth = {
        "years": list(horizon_years),
        "parent_peak_ratio": hi["parent_peak_bytes"] / lo["parent_peak_bytes"],
        "table_ratio": hi["table_bytes"] / lo["table_bytes"],
        "worker_peak_rss_growth_ratio": (hi["worker_peak_rss_growth_kib"] / lo["worker_peak_rss_growth_kib"]
                                         if lo["worker_peak_rss_growth_kib"] > 0 else float("nan")),
    }
    return {"hundred": big, "by_horizon": by_horizon, "growth": growth}


# --- the report ------------------------------------------------------------------------------------------------


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def line(label: str, value: str, target: str = "", status: str = "") -> str:
    return f"  {label:<50} {value:<28} {target:<18} {status}".rstrip()


def report(res: dict) -> list[str]:
    out = []
    m = res["model"]
    x1 = m["x1"]
    mem = res.get("memory")
    cfg = res["config"]
    out.append("")
    out.append(f"West Kent x1: horizon.years = {cfg['years']:g}"
               + (f", warmup_years = {cfg['warmup']:g}" if cfg["warmup"] is not None else " (+ 10-year warm-up)")
               + f", seed 1; median (range) over {cfg['rounds']} rounds")
    out.append(line("figure", "measured", "target", "verdict"))
    if m.get("other_load_cores"):
        out.append(line("other processes' load, cores", fmt(m["other_load_cores"])))
        if busy_warning(m["other_load_cores"]):
            out.append(busy_warning(m["other_load_cores"]))
    out.append(line("B (bare SimPy event), us", fmt(m["B_us"], 3)))
    out.append(line("bare SimPy events/s", f"{m['B_events_per_s']['median']:,.0f}"))
    out.append(line("wall time, s", fmt(x1["wall_s"])))
    out.append(line("referrals (episodes, warm-up included)", f"{x1['referrals']:,}"))
    if x1["events_per_referral"] is not None:
        out.append(line("SimPy events per referral", f"{x1['events_per_referral']:.2f}", "<= 6",
                        verdict(x1["events_per_referral"], TARGETS["events_per_referral"], noisy=False)))
    b = x1["b_per_referral"]
    out.append(line("B per referral", fmt(b, 1), "<= 40 (stretch 20)",
                    verdict(b["median"], TARGETS["b_per_referral"]) + "; stretch "
                    + verdict(b["median"], TARGETS["b_per_referral_stretch"])))
    out.append(line("us per referral", fmt(x1["us_per_referral"], 1)))
    if mem:
        out.append(line("peak memory per referral, KiB (tracemalloc)", f"{mem['peak_kib_per_referral']:.2f}",
                        "<= 1.5", verdict(mem["peak_kib_per_referral"], TARGETS["peak_kib_per_referral"], noisy=False)))
        out.append(line("  of which History tables, KiB per referral", f"{mem['history_kib_per_referral']:.2f}"))
    out.append(line("simulated client-years per second", fmt(x1["client_years_per_s"], 0)))
    bd = res.get("breakdown")
    if bd:
        out.append("")
        out.append(f"Where a referral's B go (one more x1 run: {bd['b_per_referral']:.1f} B per referral, "
                   f"B {bd['B_s'] * 1e6:.3f} us; the timers' {bd['timer_overhead_s']:.2f} s taken out)")
        labels = {"planning": "planning (sim.engine.plans)", "simpy_estimate": "SimPy (events x B, estimated)",
                  "recording": "recording (the Recorder's calls during the run)",
                  "after_run": "after-run (reviews, History built)",
                  "stages_and_rest": "stage generators and the rest"}
        for key, label in labels.items():
            v = bd["parts_b_per_referral"][key]
            out.append(line(label, f"{v:.1f} B ({v / bd['b_per_referral']:.0%})"))
    rp = res.get("responding")
    if rp:
        out.append("")
        out.append(f"Provider responding (behaviour base, West Kent PbR contract) against contract-blind, "
                   f"{len(rp['rounds'])} rounds")
        out.append(line("blind / responding wall time, s", f"{fmt(rp['blind_s'])} / {fmt(rp['responding_s'])}"))
        out.append(line("responding / blind", fmt(rp["ratio"]), "<= 1.5",
                        verdict(rp["ratio"]["median"], TARGETS["responding_cost_ratio"])))
    if "x4" in m:
        x4 = m["x4"]
        out.append("")
        out.append(f"Scaling: arrivals and capacities x{m['scale']:g} (same horizon)")
        out.append(line("x4 wall time, s", fmt(x4["wall_s"])))
        out.append(line("x4 referrals", f"{x4['referrals']:,}"))
        if x4["events_per_referral"] is not None:
            out.append(line("x4 SimPy events per referral", f"{x4['events_per_referral']:.2f}"))
        out.append(line("x4 B per referral", fmt(x4["b_per_referral"], 1)))
        out.append(line("cost per referral x4 / x1", fmt(m["x4_cost_ratio"]), "<= 1.2",
                        verdict(m["x4_cost_ratio"]["median"], TARGETS["scale_x4_cost_ratio"])))
    p = res.get("parallel")
    if p:
        out.append("")
        out.append(f"Parallel: {p['replications']} replications, {p['changes']} (shorter than above), "
                   f"{p['workers']} workers; {len(p['rounds'])} rounds")
        if p.get("other_load_cores"):
            out.append(line("other processes' load, cores", fmt(p["other_load_cores"])))
            if busy_warning(p["other_load_cores"]):
                out.append(busy_warning(p["other_load_cores"]))
        out.append(line("serial, s", fmt(p["serial"]["work_s"], 1)))
        for name, key in (("processes", "speedup_processes"), ("dask", "speedup_dask")):
            out.append(line(f"{name}: work / start+close, s",
                            f"{p[name]['work_s']['median']:.1f} / "
                            f"{p[name]['setup_s']['median'] + p[name]['close_s']['median']:.1f}"))
            w, e = p[f"{key}_warm"], p[f"{key}_end_to_end"]
            tgt = TARGETS[key]
            out.append(line(f"{name} speed-up, workers started", fmt(w), f">= {tgt[1]}", verdict(w["median"], tgt)))
            out.append(line(f"{name} speed-up, end to end", fmt(e), f">= {tgt[1]}", verdict(e["median"], tgt)))
        out.append(line("one worker process / serial, time", fmt(p["one_process_over_serial"])))
        out.append(line("processes speed-up over one worker process", fmt(p["speedup_processes_over_one_process"])))
        out.append(line("tables identical across executors", "yes" if p["tables_identical"] else "NO"))
    a = res.get("aggregate")
    hundred = res.get("hundred")
    if hundred:
        out.append("")
        out.append(f"{hundred['runs']} runs of the x1 run ({hundred['changes']}), 2 worker processes, end to end "
                   f"(measured once)")
        out.append(line("other processes' load", _cores(hundred["other_load_cores"])))
        out.append(line("wall time, s", f"{hundred['total_s']:.1f}", "under 60",
                        verdict(hundred["total_s"], TARGETS["hundred_runs_s"])))
        thousand = hundred["total_s"] * 1000 / hundred["runs"] / 60
        out.append(line("a 1,000-run sweep of such runs (projected), minutes", f"{thousand:.1f}", "under 5",
                        verdict(thousand, TARGETS["thousand_runs_min"])))
    if a:
        h = a["hundred"]
        out.append("")
        out.append(f"Aggregate mode: {h['runs']} runs on {h['workers']} processes, {h['changes']} (measured once)")
        out.append(line("parent peak (tracemalloc), MiB", f"{h['parent_peak_bytes'] / MIB:.2f}"))
        out.append(line("parent keeps per finished run, KiB", f"{h['parent_kept_per_run_bytes'] / KIB:.1f}"))
        out.append(line("result table", f"{h['table_rows']:,} rows, {h['table_bytes'] / MIB:.2f} MiB"))
        out.append(line("one full History of such a run, MiB", f"{h['history_bytes_one_run'] / MIB:.2f}"
                        f" (x{h['runs']} = {h['histories_bytes_if_kept'] / MIB:,.0f})"))
        kept_share = h["parent_kept_per_run_bytes"] / h["history_bytes_one_run"]
        out.append(line("parent holds Histories?", f"no (keeps {kept_share:.1%} of one per run)"
                        if kept_share < 0.1 else f"POSSIBLY (keeps {kept_share:.0%} of one per run)"))
        out.append(line("worker peak RSS (after imports), MiB",
                        f"{h['worker_peak_rss_kib'] / KIB:.0f} ({h['worker_rss_after_imports_kib'] / KIB:.0f})"))
        g = a["growth"]
        lo, hi = (a["by_horizon"][f"{y:g}"] for y in g["years"])
        out.append(f"  {lo['runs']} runs at {g['years'][0]:g} against {g['years'][1]:g} reported years "
                   f"(warm-up as above):")
        ratio = g["worker_peak_rss_growth_ratio"]
        out.append(line("  a run's memory: worker peak RSS over imports, MiB",
                        f"{lo['worker_peak_rss_growth_kib'] / KIB:.0f} -> "
                        f"{hi['worker_peak_rss_growth_kib'] / KIB:.0f} (x{ratio:.2f})", "no growth",
                        "met" if ratio < 1 + NOISE else "NOT met"))
        out.append(line("  parent peak (tracemalloc), MiB", f"{lo['parent_peak_bytes'] / MIB:.2f} -> "
                        f"{hi['parent_peak_bytes'] / MIB:.2f} (x{g['parent_peak_ratio']:.2f})"))
        out.append(line("  result table, KiB (a row per metric and year)",
                        f"{lo['table_bytes'] / KIB:,.0f} -> {hi['table_bytes'] / KIB:,.0f} (x{g['table_ratio']:.2f})"))
    return out


# --- main ------------------------------------------------------------------------------------------------------


def config(args) -> dict:
    if args.quick:
        return {"rounds": args.rounds or 2, "years": 2, "warmup": 2, "scale": 4.0, "b_events": 200_000,
                "par_rounds": args.parallel_rounds or 1, "par_n": 8, "par_years": 1, "par_warmup": 1,
                "agg_n": 20, "agg_years": 1, "agg_warmup": 1, "hor_runs": 4, "hor_years": (1, 4), "hundred_n": 8}
    return {"rounds": args.rounds or 5, "years": 10, "warmup": None, "scale": 4.0, "b_events": 500_000,
            "par_rounds": args.parallel_rounds or args.rounds or 5, "par_n": 32, "par_years": 4, "par_warmup": 2,
            "agg_n": 100, "agg_years": 2, "agg_warmup": 2, "hor_runs": 20, "hor_years": (2, 8), "hundred_n": 100}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick: 2)")
    parser.add_argument("--parallel-rounds", type=int, default=None, help="rounds of the parallel measurement "
                        "(default: --rounds)")
    parser.add_argument("--quick", action="store_true", help="smoke test: fewer rounds, short horizons, few runs")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    parser.add_argument("--skip", nargs="*", default=[], choices=["scaling", "memory", "breakdown", "responding",
                                                                  "parallel", "hundred", "aggregate"],
                        help="leave parts out")
    args = parser.parse_args(argv)
    cfg = config(args)
    if cfg["rounds"] < 1 or cfg["par_rounds"] < 1:
        parser.error("rounds must be at least 1")
    started = time.perf_counter()
    mach = machine()
    res = {"schema": 1, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": mach, "git": git_state(),
           "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
           "loadavg_start": loadavg(), "quick": args.quick}
    say(f"machine: {mach['cpu_model'] or mach['processor']}, {mach['cpu_count']} CPUs, {mach['platform']}; "
        f"Python {mach['python']}, simpy {mach['simpy']}; load average {res['loadavg_start']}")
    if args.quick:
        say("QUICK smoke test: short horizons and few runs; the figures are not comparable with the targets")

    say(f"\nWest Kent x1{'' if 'scaling' in args.skip else ' and x4'}, {cfg['rounds']} interleaved rounds:")
    res["model"] = measure_model(cfg["rounds"], cfg["years"], cfg["warmup"],
                                 None if "scaling" in args.skip else cfg["scale"], cfg["b_events"])
    if "memory" not in args.skip:
        say("peak memory of one x1 run (tracemalloc; slow):")
        res["memory"] = memory_run(base_scenario().with_changes(
            {"horizon.years": cfg["years"], **({} if cfg["warmup"] is None else
                                                {"horizon.warmup_years": cfg["warmup"]})}))
        say(f"  peak {res['memory']['peak_bytes'] / MIB:.1f} MiB = {res['memory']['peak_kib_per_referral']:.2f} "
            f"KiB per referral")
    x1 = base_scenario().with_changes({"horizon.years": cfg["years"], **(
        {} if cfg["warmup"] is None else {"horizon.warmup_years": cfg["warmup"]})})
    if "breakdown" not in args.skip:
        say("where the time goes, one x1 run with timers:")
        res["breakdown"] = breakdown_run(x1, bare_simpy(cfg["b_events"]))
        say("  " + ", ".join(f"{k} {v:.1f} B" for k, v in res["breakdown"]["parts_b_per_referral"].items()))
    if "responding" not in args.skip:
        say(f"\nprovider responding against contract-blind, {cfg['rounds']} interleaved rounds:")
        res["responding"] = measure_responding(cfg["rounds"], cfg["years"], cfg["warmup"])
    if "parallel" not in args.skip:
        say(f"\nparallel speed-up, {cfg['par_rounds']} rounds of {cfg['par_n']} replications "
            f"(horizon.years = {cfg['par_years']}, warmup_years = {cfg['par_warmup']}):")
        res["parallel"] = measure_parallel(cfg["par_rounds"], cfg["par_n"], cfg["par_years"], cfg["par_warmup"])
    if "hundred" not in args.skip:
        say(f"\n{cfg['hundred_n']} runs of the x1 run on 2 worker processes, end to end (once):")
        res["hundred"] = measure_hundred(cfg["hundred_n"], cfg["years"], cfg["warmup"])
        say(f"  {res['hundred']['total_s']:.1f} s (other load {_cores(res['hundred']['other_load_cores'])})")
    if "aggregate" not in args.skip:
        say("\naggregate mode memory (once):")
        res["aggregate"] = measure_aggregate(cfg["agg_n"], cfg["agg_years"], cfg["agg_warmup"], cfg["hor_runs"],
                                             cfg["hor_years"])
    res["loadavg_end"] = loadavg()
    res["total_wall_s"] = time.perf_counter() - started
    res["targets"] = {k: {"op": op, "value": v} for k, (op, v) in TARGETS.items()}
    res["summary"] = summary(res)
    for text in report(res):
        say(text)
    say(f"\n(total {res['total_wall_s'] / 60:.1f} min; load average at the end {res['loadavg_end']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=float) + "\n")
        say(f"figures written to {args.json}")
    return 0


def summary(res: dict) -> dict:
    """The headline figures (medians), flat, as compare.py reads them."""
    m = res["model"]
    s = {"B_us": m["B_us"]["median"], "wall_s": m["x1"]["wall_s"]["median"], "referrals": m["x1"]["referrals"],
         "events_per_referral": m["x1"]["events_per_referral"], "b_per_referral": m["x1"]["b_per_referral"]["median"],
         "us_per_referral": m["x1"]["us_per_referral"]["median"],
         "client_years_per_s": m["x1"]["client_years_per_s"]["median"]}
    if "memory" in res:
        s["peak_kib_per_referral"] = res["memory"]["peak_kib_per_referral"]
    if "x4_cost_ratio" in m:
        s["scale_x4_cost_ratio"] = m["x4_cost_ratio"]["median"]
    if "parallel" in res:
        for k in ("speedup_processes_warm", "speedup_processes_end_to_end", "speedup_dask_warm",
                  "speedup_dask_end_to_end", "speedup_processes_over_one_process"):
            s[k] = res["parallel"][k]["median"]
    if "hundred" in res:
        s["hundred_runs_s"] = res["hundred"]["total_s"]
        s["thousand_runs_min"] = res["hundred"]["total_s"] * 1000 / res["hundred"]["runs"] / 60
    if "breakdown" in res:
        for k, v in res["breakdown"]["parts_b_per_referral"].items():
            s[f"breakdown_{k}_b_per_referral"] = v
    if "responding" in res:
        s["responding_cost_ratio"] = res["responding"]["ratio"]["median"]
    if "aggregate" in res:
        s["aggregate_parent_peak_mib"] = res["aggregate"]["hundred"]["parent_peak_bytes"] / MIB
        s["aggregate_parent_peak_ratio_8y_2y"] = res["aggregate"]["growth"]["parent_peak_ratio"]
        s["aggregate_worker_rss_growth_ratio_8y_2y"] = res["aggregate"]["growth"]["worker_peak_rss_growth_ratio"]
    return s


if __name__ == "__main__":
    sys.exit(main())
