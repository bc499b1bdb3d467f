"""The only module that touches SimPy's internals: every other module uses SimPy's public API.

pbrsim runs one SimPy process per client, millions of events per run; two things here make that cheap:

* :class:`ClientProcess`, a ``simpy.Process`` without its start and end events, that waits until a day by
  putting itself in the event queue as that day's event (``env._queue``, ``env._eid``, ``env._active_proc``,
  ``event._value``: SimPy 4's internals, hence ``simpy>=4.1,<5`` in pyproject.toml);
* :func:`cyclic_gc_paused`, Python's cyclic collector off while a run allocates its short-lived objects.

:func:`events_scheduled` reads SimPy's event counter for the run's metadata.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import os
import threading

import simpy
from simpy.events import NORMAL

_gc_lock = threading.Lock()
_gc_pauses = 0  # runs in progress in this process (threads of a Dask worker) that paused the collector
_gc_was_enabled = False


@contextlib.contextmanager
def cyclic_gc_paused():
    """Python's cyclic garbage collector off for the duration. A run allocates millions of short-lived objects and
    frees them by reference counting: the collector's passes over them cost about 8% of a run and find nothing
    (a handful of objects with provider behaviour). Restored when the last concurrent run ends."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _after_fork_in_child() -> None:
    """A child forked during a run runs none of its parent's runs: it starts with nothing paused."""
    global _gc_pauses, _gc_lock
    _gc_lock = threading.Lock()
    if _gc_pauses:
        _gc_pauses = 0
        if _gc_was_enabled:
            gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ClientProcess(simpy.Process):
    """A client's life as a SimPy process, started at once by the arrival event that brings the client in, and never
    waited on: unlike ``simpy.Process`` it takes no start event and no end event (two of the nine events a
    referral would otherwise cost). The generator yields either an event that will succeed or, to wait until a
    day, the day itself (a float, see :meth:`TreatmentSystem.hold`): then the process puts itself in SimPy's
    queue as that day's event, where a ``Timeout`` would cost an object and two calls more. An exception in the
    generator propagates out of ``env.run`` at once, with its traceback."""

    def __init__(self, env: simpy.Environment, generator):
        self.env = env
        self.callbacks = None
        self._generator = generator
        self._value = None  # what the generator is sent when the process wakes itself
        self._ok = True  # SimPy checks this of every event it processes
        self._resume(self)

    def _resume(self, event: simpy.Event) -> None:
        env = self.env
        env._active_proc = self
        send = self._generator.send
        value = event._value
        while True:
            try:
                target = send(value)
            except StopIteration:
                break
            if isinstance(target, float):  # wake on that day: the same queue entry env.timeout would make
                self.callbacks = [self._resume]
                heapq.heappush(env._queue, (target, NORMAL, next(env._eid), self))
                break
            try:
                callbacks = target.callbacks
            except AttributeError:
                raise TypeError(f"a client's process yielded {target!r}: yield an event, or a day (a float) to "
                                "wait until it") from None
            if callbacks is not None:
                callbacks.append(self._resume)
                break
            value = target._value
        env._active_proc = None


def events_scheduled(env: simpy.Environment) -> int | None:
    """How many events SimPy scheduled in ``env`` (its private counter; None if a SimPy version has none)."""
    counter = getattr(env, "_eid", None)
    return next(counter) if counter is not None else None
