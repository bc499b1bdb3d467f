"""Signals: SIGTERM and SIGHUP are handled like Ctrl-C, and no process outlives the command that started it.

* :func:`interrupt_on_signals` (the ``pbrsim`` command line): SIGTERM and SIGHUP raise :class:`Interrupted`, a
  ``KeyboardInterrupt``, in the main thread, so every ``finally`` and context manager runs as on Ctrl-C: an
  executor ends its worker processes or its Dask cluster, a directory being written is removed, the previous
  results stay as they were. Exit codes: 128 + the signal's number (130 Ctrl-C/SIGINT, 143 SIGTERM, 129
  SIGHUP), as a shell reports a command killed by that signal (:func:`exit_code`).
* :func:`worker_initializer` (``ProcessExecutor``'s workers): a worker ignores SIGINT and SIGHUP (Ctrl-C at a
  terminal signals the whole process group; the leader alone decides, and ends its workers), and ends itself as
  soon as the leader's process has ended, however it ended (SIGKILL included), through a watchdog thread on a
  pidfd of the leader (Linux; elsewhere a poll once a second). The forkserver then exits on its own: it ends
  when every process holding its "alive" pipe has.
* :func:`stop_processes`: terminate, wait a little, kill.
* :func:`interrupted_message`: what the command line says when interrupted. An experiment interrupted while it
  ran with a result store says how many finished runs the store keeps (:func:`note_kept` attaches them to the
  exception), and that a rerun resumes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from sim.core.errors import UnsettledWarmupWarning

HANDLED = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) raised as a ``KeyboardInterrupt`` in the main thread."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupt_on_signals(signals: Iterable[int] = HANDLED) -> Iterator[None]:
    """While inside: the ``signals`` raise :class:`Interrupted` in the main thread (outside the main thread,
    where Python cannot install handlers, nothing changes). The previous handlers come back on leaving."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for s in signals:
            previous[s] = signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


def note_kept(interrupt: BaseException, store) -> None:
    """Attach to an interrupt the store whose finished runs survive it (read by :func:`interrupted_message`)."""
    if getattr(interrupt, "kept", None) is None:
        try:
            interrupt.kept = (Path(store.directory), len(store.done()))
        except Exception:  # never hide the interrupt
            pass


def interrupted_message(interrupt: BaseException, command: str | None = None) -> str:
    """What the command line says on an interrupt."""
    head = f"interrupted ({interrupt.args[0]})" if isinstance(interrupt, Interrupted) else "interrupted"
    kept = getattr(interrupt, "kept", None)
    if kept is not None:
        directory, n = kept
        runs = f"{n} finished run{'s' if n != 1 else ''}"
        return f"{head}: {runs} kept in {directory}; rerun the same command to resume from them"
    if command == "app":
        return f"{head}: the web app was stopped"
    return f"{head}: nothing was written; previous results are untouched"


# --- processes -------------------------------------------------------------------------------------------------


def stop_processes(processes: Iterable, timeout: float = 5.0) -> None:
    """End ``multiprocessing`` processes (or ``subprocess.Popen``\\ s): SIGTERM, up to ``timeout`` seconds for them
    to exit, then SIGKILL."""
    processes = list(processes)
    for p in processes:
        with contextlib.suppress(Exception):
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in processes:
        with contextlib.suppress(Exception):
            if hasattr(p, "join"):
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    p.join(1.0)
            else:
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except Exception:
                    p.kill()
                    p.wait(1.0)


def worker_initializer(leader: int) -> None:
    """In a worker process: ignore SIGINT and SIGHUP, and end when the process ``leader`` has ended. An unsettled
    warm-up is not reported here: the experiment in the leader reports it once (``unsettled_reported``)."""
    warnings.simplefilter("ignore", UnsettledWarmupWarning)
    for s in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if s is not None:
            signal.signal(s, signal.SIG_IGN)
    watch_leader(leader)


def watch_leader(leader: int) -> None:
    """Start a daemon thread that ends this process (``os._exit``) once the process ``leader`` has ended."""
    wait = _leader_waiter(leader)
    if wait is None:  # already gone
        os._exit(1)

    def watch() -> None:
        wait()
        os._exit(1)

    threading.Thread(target=watch, name="pbrsim-watch-leader", daemon=True).start()


def _leader_waiter(leader: int):
    """A function returning once ``leader`` has ended, or None if it has ended already."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(leader)
        except ProcessLookupError:
            return None
        except OSError:
            fd = None
        if fd is not None:
            import select

            def wait_pidfd() -> None:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while not poller.poll():  # readable once the process has exited (even before it is reaped)
                    pass

            return wait_pidfd
    if not _alive(leader):
        return None

    def wait_poll() -> None:
        while _alive(leader):
            time.sleep(1.0)

    return wait_poll


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


__all__ = ["Interrupted", "interrupt_on_signals", "exit_code", "note_kept", "interrupted_message",
           "stop_processes", "worker_initializer", "watch_leader"]
