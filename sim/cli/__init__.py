"""The ``pbrsim`` command line: ``run``, ``compare``, ``optimise``, ``report``, ``replicate``, ``sweep``, ``summarise``, ``calibrate``,
``report-validation``, ``validate``, ``list``, ``app``, ``audit-contract``, ``behaviour-sweep``.

The commands live in one module per family (``sim.cli.run``, ``experiments``, ``calibration``, ``app``,
``provider``), each with ``add_commands(sub)``; what they share is in ``sim.cli.common``. Here: ``main``, its
top-level flags (``--version``, ``--verbose``, ``--quiet``, ``--debug``) and its error handling."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from sim.cli import app, calibration, experiments, provider, run
from sim.cli.common import Parser, log
from sim.core.errors import UnsettledWarmupWarning, UserError
from sim.core.version import __version__
from sim.experiments.signals import exit_code, interrupt_on_signals, interrupted_message

FAMILIES = (run, experiments, calibration, app, provider)


class StderrHandler(logging.StreamHandler):
    """A handler writing plain one-line messages to whatever ``sys.stderr`` is when a record comes."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler sets it; the stream is always sys.stderr
        pass


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """The ``pbrsim`` logger: INFO on stderr as plain lines; DEBUG with ``--verbose``, WARNING with ``--quiet``."""
    for handler in [h for h in log.handlers if isinstance(h, StderrHandler)]:
        log.removeHandler(handler)
    log.addHandler(StderrHandler())
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def build_parser() -> Parser:
    parser = Parser(prog="pbrsim", description="Simulate drug and alcohol treatment systems "
                                     "and the payment-by-results contracts that pay for them.")
    parser.add_argument("--version", action="version", version=f"pbrsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        family.add_commands(sub)

    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="show debugging messages")
    loudness.add_argument("-q", "--quiet", action="store_true", help="show only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (a test's stand-in)
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """pbrsim's own warnings as one plain line on the log; others as Python shows them."""
    if issubclass(category, UnsettledWarmupWarning):
        log.warning(f"warning: {message}")
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    warnings.showwarning = _show_warning
    debug = args.debug or bool(os.environ.get("PBRSIM_DEBUG"))
    try:
        with interrupt_on_signals():  # SIGTERM and SIGHUP: as Ctrl-C
            return args.func(args)
    except UserError as e:
        if debug:
            raise
        print(f"pbrsim {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(interrupted_message(e, args.command), file=sys.stderr)
        return exit_code(e)
    except BrokenPipeError:  # the reader went away (``pbrsim list | head``): not an error; files are written
        _silence_stdout()
        return 128 + 13  # as a shell reports SIGPIPE
    except Exception as e:  # a bug, not the user's doing: one line, and the way to the traceback
        if debug:
            raise
        print(f"pbrsim {args.command}: internal error: {type(e).__name__}: {str(e)[:500]}\n  this is a bug in "
              f"pbrsim; rerun with --debug for the traceback, and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
