"""Capacities and their waiting lists: LASARS assessors, the recovery-worker caseload, detox beds, rehab places.

A capacity is a counter with a first-come-first-served queue, not a ``simpy.Resource``: a caseload of
thousands costs one integer, and a capacity can change on a date (vacancies, a new hub). When it falls below the
places in use nobody is discharged; new admissions wait until use drops below the new capacity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import simpy


class Capacity:
    """Places of one kind with a FIFO waiting list that clients may leave."""

    def __init__(self, env: simpy.Environment, name: str, capacity: int):
        if capacity < 0:
            raise ValueError(f"{name}: capacity must be >= 0, got {capacity}")
        self.env, self.name, self.capacity = env, name, capacity
        self.in_use = 0
        self.queue: deque[simpy.Event] = deque()

    def request(self) -> simpy.Event | None:
        """None if the requester takes a place at once (no event: most requests, and an event nobody waits on
        would still cost a turn of the event loop); else an event that succeeds when they hold a place."""
        if not self.queue and self.in_use < self.capacity:
            self.in_use += 1
            return None
        ev = self.env.event()
        self.queue.append(ev)
        return ev

    def release(self) -> None:
        self.in_use -= 1
        self._admit()

    def leave_queue(self, ev: simpy.Event) -> None:
        """The requester gives up waiting (reneges); no place is held."""
        self.queue.remove(ev)

    def set_capacity(self, capacity: int) -> None:
        self.capacity = capacity
        self._admit()

    def _admit(self) -> None:
        while self.queue and self.in_use < self.capacity:
            self.in_use += 1
            self.queue.popleft().succeed()


# The places of the system, by the name of their ``[capacity]`` value (and of their rows in History.capacity).
# A new kind of place is one name here, its key in sim.config.scenario's Capacity, and the stage that waits for it.
PLACES = ("assessors", "caseload", "inpatient_detox_beds", "rehab_places")


class Places:
    """Every capacity of a run, made from a scenario's ``[capacity]`` and changed with it on dated changes."""

    def __init__(self, env: simpy.Environment, capacity):
        self.by_name = {name: Capacity(env, name, getattr(capacity, name)) for name in PLACES}

    def __getitem__(self, name: str) -> Capacity:
        return self.by_name[name]

    def set(self, capacity) -> None:
        """The capacities a dated change sets (places already in use are kept, see :meth:`Capacity.set_capacity`)."""
        for name, place in self.by_name.items():
            place.set_capacity(getattr(capacity, name))

    @staticmethod
    def levels(capacity) -> Iterator[tuple[str, int]]:
        """(name, places) of each capacity in a ``[capacity]`` section, for the History."""
        return ((name, getattr(capacity, name)) for name in PLACES)
