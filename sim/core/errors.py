"""The one kind of error a user can cause and fix: the command line prints it in a line or two, names what to
change, and exits with code 2 (``--debug`` shows the traceback)."""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user gave: a file, a value, a folder, an option. Its message names what to change."""


class UnsettledWarmupWarning(UserWarning):
    """A run whose warm-up is shorter than its scenario says the system needs (``horizon.settled_after_years``):
    the stock of clients at contract start has not settled, so trends, prices from the year before and money are
    biased."""
