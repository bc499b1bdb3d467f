"""The one kind of error a user can cause and fix: the command line prints it in a line or two, names what to
change, and exits with code 2 (``--debug`` shows the traceback)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class UserError(ValueError):
    """A problem with what the user gave: a file, a value, a folder, an option. Its message names what to change."""


class UnsettledWarmupWarning(UserWarning):
    """A run whose warm-up is shorter than its scenario says the system needs (``horizon.settled_after_years``):
    the stock of clients at contract start has not settled, so trends, prices from the year before and money are
    biased."""


@contextmanager
def unsettled_reported(scenarios: Iterable, stacklevel: int = 3) -> Iterator[None]:
    """For an experiment of many runs: warn once for each distinct unsettled warm-up among ``scenarios`` (the
    experiment's points, as :class:`sim.config.scenario.Scenario`), then run the block with the runs' own
    warnings silenced, since each run would repeat it. Worker processes never report it (their parent does:
    :func:`sim.experiments.signals.worker_initializer`)."""
    found = Counter(s.horizon.unsettled(s.name) for s in scenarios)
    total = sum(found.values())
    for message, n in found.items():
        if message:
            share = f" ({n} of {total} points)" if n < total else ""
            warnings.warn(message + share, UnsettledWarmupWarning, stacklevel=stacklevel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsettledWarmupWarning)
        yield
