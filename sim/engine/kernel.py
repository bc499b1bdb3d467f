"""The only module that touches SimPy's internals: every other module uses SimPy's public API.

pbrsim runs one SimPy process per client, millions of events per run; two things here make that cheap:

* :class:`ClientProcess`, a ``simpy.Process`` without its start and end events, that waits until a day by
  putting itself in the event queue as that day's event (``env._queue``, ``env._eid``, ``env._active_proc``,
  ``event._value``: SimPy 4's internals, hence ``simpy>=4.1,<5`` in pyproject.toml), and waits for a place
  with patience (an event, or a day if that comes first) without the ``Timeout`` and ``Condition`` that
  ``req | env.timeout(...)`` costs;
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


class _Alarm:
    """The day a client waiting for a place gives up: an entry of SimPy's queue that can be called off (its
    callbacks emptied) when the place comes first."""

    __slots__ = ("callbacks", "_ok", "_value")

    def __init__(self, callbacks: list):
        self.callbacks, self._ok, self._value = callbacks, True, None


class _Sent:
    """What a process waking from a wait with patience is sent, in the place of an event's value."""

    __slots__ = ("_value",)

    def __init__(self, value: bool):
        self._value = value


_ADMITTED, _GAVE_UP = _Sent(True), _Sent(False)


class ClientProcess(simpy.Process):
    """A client's life as a SimPy process, started at once by the arrival event that brings the client in, and never
    waited on: unlike ``simpy.Process`` it takes no start event and no end event (two of the nine events a
    referral would otherwise cost). The generator yields one of:

    * an event that will succeed (it is sent the event's value);
    * a day (a float, see :meth:`TreatmentSystem.hold`), to wait until it: the process puts itself in SimPy's
      queue as that day's event, where a ``Timeout`` would cost an object and two calls more;
    * ``(event, day)``, to wait for the event but no later than the day (a place on a waiting list, with the
      client's patience): it is sent True if the event has succeeded by then, else False, and nothing of the
      other wait is left to wake it.

    An exception in the generator propagates out of ``env.run`` at once, with its traceback."""

    def __init__(self, env: simpy.Environment, generator):
        self.env = env
        self.callbacks = None
        self._generator = generator
        self._value = None  # what the generator is sent when the process wakes itself
        self._ok = True  # SimPy checks this of every event it processes
        self._patience = None  # (event, alarm) while waiting for one with patience
        self._resume(self)

    def _resume(self, event) -> None:
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
            if type(target) is tuple:
                if self._wait_with_patience(*target):
                    break
                value = True
                continue
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

    def _wait_with_patience(self, event: simpy.Event, day: float) -> bool:
        """Wait for ``event`` or until ``day``, whichever comes first. False if there is nothing to wait for (the
        event has been processed already: the generator is then sent True at once)."""
        if event.callbacks is None:
            return False
        alarm = _Alarm([self._patience_ended])
        heapq.heappush(self.env._queue, (day, NORMAL, next(self.env._eid), alarm))
        event.callbacks.append(self._patience_ended)
        self._patience = (event, alarm)
        return True

    def _patience_ended(self, woken_by) -> None:
        """The awaited event or the alarm came first: the other wait is called off, and the process resumes,
        sent whether the event succeeded. At the alarm the event may have succeeded already, its callbacks not
        yet run (a place granted at that very moment): the place is taken."""
        event, alarm = self._patience
        self._patience = None
        if woken_by is alarm:
            event.callbacks.remove(self._patience_ended)
            self._resume(_ADMITTED if event.triggered else _GAVE_UP)
        else:
            alarm.callbacks = []  # still in the queue: it wakes nobody
            self._resume(_ADMITTED)


def events_scheduled(env: simpy.Environment) -> int | None:
    """How many events SimPy scheduled in ``env`` (its private counter; None if a SimPy version has none)."""
    counter = getattr(env, "_eid", None)
    return next(counter) if counter is not None else None
