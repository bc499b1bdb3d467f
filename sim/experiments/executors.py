"""Executors: where runs run. :class:`SerialExecutor` (this process, one after another), :class:`ProcessExecutor`
(local worker processes) and :class:`DaskExecutor` (a local or remote Dask cluster) share one interface,
``executor.map(function, items, progress=None)``, yielding results as they finish (the caller orders them);
:func:`make_executor` picks one by name for the command line. A killed or interrupted run stops its workers
(:mod:`sim.experiments.signals`). Progress bars: :func:`progress_bar`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from itertools import islice
from pathlib import Path
from typing import Any

from sim.core.errors import UnsettledWarmupWarning, UserError
from sim.experiments.signals import stop_processes, worker_initializer

# --- executors -------------------------------------------------------------------------------------------------


def _in_flight(workers: int) -> int:
    """Runs submitted at once: enough to keep every worker busy, few enough to keep memory flat."""
    return max(2, 2 * workers)


class SerialExecutor:
    """Runs one after another in this process."""

    name = "serial"
    workers = 1

    def map(self, function: Callable, specs: Iterable, progress: Callable[[int], Any] | None = None) -> Iterator:
        for done, spec in enumerate(specs, 1):
            result = function(spec)
            if progress is not None:
                progress(done)
            yield result

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

class ProcessExecutor(SerialExecutor):
    """Local worker processes (``concurrent.futures.ProcessPoolExecutor``).

    Workers start with ``forkserver`` where available (``spawn`` elsewhere), never by forking this process (which
    may hold threads: progress bars, a Dask client), and import :mod:`sim.experiments.core` once each. They ignore
    SIGINT and SIGHUP (Ctrl-C at a terminal signals the whole process group: this process decides) and end as
    soon as this process ends, however it ends (:func:`sim.experiments.signals.worker_initializer`); the forkserver follows
    them. On an interrupt, :meth:`close` ends the workers at once instead of waiting for their runs."""

    name = "processes"

    def __init__(self, workers: int | None = None, start_method: str | None = None):
        self.workers = int(workers or os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        methods = multiprocessing.get_all_start_methods()
        self.start_method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context(self.start_method)
            if self.start_method == "forkserver":
                context.set_forkserver_preload(["sim.experiments.core"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=worker_initializer,
                                             initargs=(os.getpid(),))
        return self._pool

    def map(self, function, specs, progress=None):
        pool = self._get_pool()
        todo = iter(specs)
        pending = {pool.submit(function, s) for s in islice(todo, _in_flight(self.workers))}
        done, failure = 0, None
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        result = future.result()
                    except Exception as e:  # let the runs under way finish (a store keeps them), then raise
                        if failure is None:
                            failure = e
                            for f in pending:
                                f.cancel()
                        continue
                    if failure is None:
                        pending |= {pool.submit(function, s) for s in islice(todo, 1)}
                    done += 1
                    if progress is not None:
                        progress(done)
                    yield result
                pending = {f for f in pending if not f.cancelled()}
            if failure is not None:
                raise failure
        finally:
            for future in pending:
                future.cancel()

    def close(self, interrupted: bool | None = None) -> None:
        """Shut the workers down. Interrupted (``interrupted=True``, or by default while a ``KeyboardInterrupt``
        or another exception that is not an ``Exception`` propagates): end them now, losing the runs under way
        (a store keeps those that finished); otherwise let them finish what they run."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if interrupted is None:
            error = sys.exc_info()[1]
            interrupted = error is not None and not isinstance(error, Exception)
        if not interrupted:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        # read before shutdown, which forgets it: an unjoined manager thread races the interpreter's exit hook
        # (which writes to the manager's wake-up pipe as the manager closes it: "Bad file descriptor")
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        stop_processes(processes)
        if manager is not None:  # it notices the ended workers, closes its pipe and exits
            manager.join(5.0)

    def __exit__(self, kind, value, traceback) -> None:
        self.close(interrupted=kind is not None and not issubclass(kind, Exception))


def _run_pickled(payload: bytes):
    """Dask task: the function and spec travel as one opaque pickle, so Dask never inspects scenario data."""
    function, spec = pickle.loads(payload)
    with warnings.catch_warnings():  # reported once by the experiment that submitted it
        warnings.simplefilter("ignore", UnsettledWarmupWarning)
        return function(spec)


def _ensure_importable(root: str) -> bool:
    """On a worker: make the ``sim`` package importable (a shared filesystem); True if it is."""
    import importlib

    try:
        importlib.import_module("sim.experiments.core")
        return True
    except ImportError:
        if root not in sys.path:
            sys.path.insert(0, root)
        importlib.invalidate_caches()
        importlib.import_module("sim.experiments.core")
        return True


_DASK_LOGGERS = ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker",
                 "distributed.core", "distributed.comm", "distributed.batched", "distributed.client",
                 "distributed.http.proxy", "distributed.utils_perf", "bokeh", "tornado")


# A local cluster has no dashboard, so the monitors that feed it serve nobody; the worker's statistical profiler
# (every 10 ms) and event-loop tick (every 20 ms) interrupt the run and made it about 8% slower
_LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                        "distributed.admin.system-monitor.interval": "5s",
                        "distributed.worker.memory.monitor-interval": "1s"}


class DaskExecutor(SerialExecutor):
    """dask.distributed: a ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core), or
    the existing cluster at ``scheduler`` (an address such as ``tcp://10.0.0.5:8786``).

    The cluster and client this executor opens are closed by :meth:`close` (or on leaving a ``with`` block); an
    existing cluster is left running. Dask's log messages below ERROR are silenced while it runs. Workers must be
    able to import ``sim``: a LocalCluster shares this machine's files; on a remote cluster the package's folder
    is added to the workers' ``sys.path`` if it is not installed there (a shared filesystem), else install it."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, threads_per_worker: int = 1,
                 quiet: bool = True):
        import dask
        from distributed import Client, LocalCluster

        self._levels = {}
        if quiet:
            for name in _DASK_LOGGERS:
                logger = logging.getLogger(name)
                self._levels[name] = logger.level
                logger.setLevel(logging.ERROR)
        self.cluster = None
        try:
            if scheduler:
                try:
                    self.client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
                except (OSError, TimeoutError, ValueError) as e:
                    raise UserError(f"cannot reach the Dask scheduler at {scheduler!r} within "
                                    f"{SCHEDULER_TIMEOUT} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                                    f"check --scheduler") from None
            else:
                with dask.config.set(_LOCAL_WORKER_CONFIG):
                    self.cluster = LocalCluster(n_workers=int(workers or os.cpu_count() or 1),
                                                threads_per_worker=threads_per_worker, processes=True,
                                                dashboard_address=None,
                                                silence_logs=logging.ERROR if quiet else logging.WARNING)
                self.client = Client(self.cluster)
            root = str(Path(__file__).resolve().parents[1])
            self.client.run(_ensure_importable, root)
        except BaseException:
            self._close_quietly()
            raise

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def map(self, function, specs, progress=None):
        import cloudpickle  # a dependency of distributed: lambdas and local functions travel too
        from distributed import as_completed

        def submit(spec):
            return self.client.submit(_run_pickled, cloudpickle.dumps((function, spec)), pure=False,
                                      key=f"run-{spec.point}-{spec.replication}-{os.urandom(6).hex()}"
                                      if hasattr(spec, "point") and hasattr(spec, "replication") else None)

        todo = iter(specs)
        running = as_completed([submit(s) for s in islice(todo, _in_flight(self.workers))])
        done, failure = 0, None
        try:
            for future in running:
                try:
                    result = future.result()
                except Exception as e:  # let the runs under way finish (a store keeps them), then raise
                    failure = failure or e
                    continue
                finally:
                    future.release()
                if failure is None:
                    for s in islice(todo, 1):
                        running.add(submit(s))
                done += 1
                if progress is not None:
                    progress(done)
                yield result
            if failure is not None:
                raise failure
        finally:
            pending = list(running.futures)
            if pending:
                self.client.cancel(pending)
            running.clear()

    def _close_quietly(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def close(self) -> None:
        try:
            self._close_quietly()
        finally:
            for name, level in self._levels.items():
                logging.getLogger(name).setLevel(level)
            self._levels = {}


LOG = logging.getLogger("pbrsim")
EXECUTORS = ("serial", "processes", "dask")
SCHEDULER_TIMEOUT = "10s"  # how long to try to reach a Dask scheduler given by address


def make_executor(name: str = "serial", workers: int | None = None, scheduler: str | None = None):
    """An executor by name, for the command line: ``serial``, ``processes`` or ``dask``."""
    if scheduler and name != "dask":
        raise UserError(f"--scheduler needs the dask executor (--executor dask), not {name!r}")
    if workers is not None and workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "dask":
        return DaskExecutor(workers, scheduler)
    raise ValueError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")


# --- progress --------------------------------------------------------------------------------------------------


class ProgressBar:
    """A tqdm bar with an ETA, fed the number of finished runs: ``progress(done)``. Shown on a terminal (stderr)
    or when ``show=True``; otherwise silent. Use as a context manager, or call :meth:`close`."""

    def __init__(self, total: int, desc: str | None = None, show: bool | None = None, file=None):
        from tqdm import tqdm

        file = file or sys.stderr
        if show is None:
            show = hasattr(file, "isatty") and file.isatty()
        self.bar = tqdm(total=total, desc=desc, unit="run", file=file, disable=not show, dynamic_ncols=True,
                        smoothing=0.1)
        self._n = 0

    def __call__(self, done: int) -> None:
        if done > self._n:
            self.bar.update(done - self._n)
            self._n = done

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str | None = None, show: bool | None = None) -> ProgressBar:
    return ProgressBar(total, desc, show)
