"""Output folders: checked before anything runs, locked while pbrsim writes them, and replaced whole.

pbrsim replaces a folder only when it is a pbrsim results folder: one that carries the manifest pbrsim writes
(``manifest.json``), or the files an earlier version wrote (``LEGACY_MARKERS``), or nothing at all. Anything else
at an output path is refused before a simulation starts, and so is a file, the root of the file system, or a
place that cannot be written. While a command runs it holds a lock beside the folder (``.NAME.lock``, removed at the
end), so a second pbrsim writing the same folder at the same time is refused; holding it, it removes what an earlier, killed write
left (``.NAME.pbrsim-tmp-*``) and puts back a folder that a kill caught between the two renames of a swap.

A folder is built in a temporary sibling and swapped in with two renames: readers see the old folder or the new
one, never a half. The sub-folders that other commands wrote inside it (``compare/``, ``replications/``, an
audit) are carried over into the new folder rather than deleted.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable

from sim.core.errors import UserError

MANIFEST = "manifest.json"
# what an earlier pbrsim left in its folders, before manifests: a run, a store, a comparison, a validation report
LEGACY_MARKERS = ("run.json", "meta.json", "runs/meta.json", "fingerprints.csv", "validation.md")
_TMP = ".pbrsim-tmp-"
_OLD = ".pbrsim-old"


class OutputError(UserError):
    """An output path pbrsim will not write: it names the path and what to change."""


def is_results_folder(path: Path) -> bool:
    """Whether ``path`` is a folder pbrsim wrote: its manifest or an earlier version's files, or nothing but
    other results folders (``results/west_kent`` after a ``pbrsim compare`` alone) and pbrsim's lock files."""
    path = Path(path)
    if not path.is_dir():
        return False
    if any((path / m).is_file() for m in (MANIFEST, *LEGACY_MARKERS)):
        return True
    children = list(path.iterdir())
    return bool(children) and all(_ours(child) for child in children)


def _ours(child: Path) -> bool:
    if child.name.startswith(".") and child.name.endswith(".lock") and child.is_file():
        return True
    if child.name.startswith(".") and (_TMP in child.name or child.name.endswith(_OLD)) and child.is_dir():
        return True
    return is_results_folder(child)


def manifest(kind: str, started: str | None = None, **about) -> dict:
    """What a results folder says about how it was made: the command, when it started and ended, the code
    (pbrsim, its git revision, the packages), the machine, and what the command described (``about``: its
    inputs and their hashes, seeds, replications; :meth:`OutputFolder.describe`)."""
    from sim.core import provenance

    code = provenance.code()
    return {"pbrsim": code["pbrsim"], "kind": kind, "command": ["pbrsim", *sys.argv[1:]] if _from_cli() else None,
            "started": started, "written": now(), "git": code["git"], "python": code["python"],
            "packages": code["packages"], "machine": provenance.machine(), **about}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _from_cli() -> bool:
    return Path(sys.argv[0]).name in ("pbrsim", "cli.py", "__main__.py")


class OutputFolder:
    """A results folder that pbrsim will write: checked and locked when made, before anything runs.

    ``replace=True`` (runs, comparisons, audits, reports): :meth:`replace` builds the folder anew and swaps it
    in. ``replace=False`` (replications and sweeps, which keep a store inside and resume): the folder is kept and
    written into, after the same checks. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, kind: str, replace: bool = True):
        self.path = Path(path)
        self.kind = kind
        self.started = now()
        self.about: dict = {}
        self._replace = replace
        self._lock: int | None = None
        self._lock_path: Path | None = None
        _check(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create the folder {self.path.parent}: {e.strerror or e}") from None
        self._take_lock()
        try:
            self._tidy()
            if not replace:
                self._open_in_place()
        except BaseException:
            self.close()
            raise

    # the checks

    def _take_lock(self) -> None:
        lock = self.path.parent / f".{self.path.name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"cannot write in {self.path.parent}: {e.strerror or e}; choose another --out") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(lock).st_ino:  # its holder finished and removed it meanwhile
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            raise OutputError(f"another pbrsim is writing {self.path} now: wait for it to finish, or choose "
                              f"another --out") from None
        self._lock, self._lock_path = fd, lock

    def _tidy(self) -> None:
        """Remove what a killed write left beside the folder; put back a folder caught between two renames."""
        old = self._old()
        if old.is_dir():
            if not self.path.exists():
                old.rename(self.path)
            else:  # killed after the swap: the new folder is whole; keep what other commands wrote in the old
                _carry_over(old, self.path)
                shutil.rmtree(old, ignore_errors=True)
        for stale in self.path.parent.glob(f".{self.path.name}{_TMP}*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)

    def _open_in_place(self) -> None:
        try:
            self.path.mkdir(exist_ok=True)
            self._write_manifest(self.path)  # the latest command to write into it; its store keeps the runs
        except OSError as e:
            raise OutputError(f"cannot write in {self.path}: {e.strerror or e}; choose another --out") from None

    def _old(self) -> Path:
        return self.path.parent / f".{self.path.name}{_OLD}"

    # writing

    def describe(self, **about) -> OutputFolder:
        """Add to what the manifest says (inputs, seeds, replications): call before the folder is written."""
        self.about.update(about)
        if not self._replace and self._lock is not None:
            self._write_manifest(self.path)
        return self

    def _write_manifest(self, folder: Path) -> None:
        _write_json(folder / MANIFEST, manifest(self.kind, started=self.started, **self.about))

    def replace(self, build: Callable[[Path], None], **about) -> Path:
        """Call ``build(tmp)`` to fill a temporary sibling, add the manifest and what other commands wrote in the
        old folder, then swap it in whole. ``about`` goes into the manifest."""
        if self._lock is None:
            raise RuntimeError(f"the output folder {self.path} is closed")
        # the name first, the folder inside the try: a signal that lands just after the folder is made still
        # removes it (mkdtemp could be interrupted between making it and returning its name)
        tmp = self.path.parent / f".{self.path.name}{_TMP}{secrets.token_hex(6)}"
        try:
            tmp.mkdir(mode=0o755)
            build(tmp)
            self.about.update(about)
            self._write_manifest(tmp)
            old = None
            if self.path.exists():
                old = self._old()
                self.path.rename(old)
            tmp.rename(self.path)
            if old is not None:
                _carry_over(old, self.path)
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.path

    def close(self) -> None:
        if self._lock is not None:
            if not self._replace and self.path.is_dir():  # written in place: the manifest says when it ended
                try:
                    self._write_manifest(self.path)
                except OSError:
                    pass
            self._lock_path.unlink(missing_ok=True)  # removed while held: a newcomer sees the new file or none
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check(path: Path) -> None:
    resolved = path.expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise OutputError(f"{path} is the root of the file system: choose a folder for the results with --out")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder: pbrsim writes a folder of results there; choose "
                          f"another --out")
    if Path.cwd().resolve().is_relative_to(resolved):
        raise OutputError(f"{path} holds the current folder: choose a folder for the results with --out")
    if path.is_dir() and not is_results_folder(path) and any(path.iterdir()):
        raise OutputError(f"{path} exists and is not a pbrsim results folder (it has no {MANIFEST}); pbrsim "
                          f"would replace it: choose another --out, or empty it first")


def _carry_over(old: Path, new: Path) -> None:
    """Move the results folders other commands wrote inside ``old`` (and that the new build has not) to ``new``."""
    for child in old.iterdir():
        if child.is_dir() and not (new / child.name).exists() and is_results_folder(child):
            child.rename(new / child.name)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)  # whole or not at all
