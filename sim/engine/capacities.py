"""Capacities and their waiting lists: LASARS assessors, the recovery-worker caseload, detox beds, rehab places.

A capacity is a counter with a first-come-first-served queue, not a ``simpy.Resource``: a caseload of
thousands costs one integer, and a capacity can change on a date (vacancies, a new hub). When it falls below the
places in use nobody is discharged; new admissions wait until use drops below the new capacity.
"""

from __future__ import annotations

from collections import deque

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
