"""How a result was made: the code (git revision, package versions), the machine, and the inputs as run.

Every results folder carries this in its ``manifest.json`` (:mod:`sim.core.folders`), so a figure can be traced
to the exact files, seeds and code that produced it, and re-run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

# the libraries whose versions can change a number pbrsim prints
PACKAGES = ("simpy", "numpy", "scipy", "pandas", "pydantic", "pyarrow", "matplotlib", "SALib", "dask", "distributed")
NOT_A_CHECKOUT = "not a git checkout"


@lru_cache(maxsize=1)
def code() -> dict[str, Any]:
    """The code that ran: pbrsim's version, its git revision (and whether the work tree had uncommitted changes),
    and the versions of the packages it computes with (None for one not installed)."""
    from sim.core.version import __version__

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"pbrsim": __version__, "git": git_revision(Path(__file__).resolve().parents[2]),
            "python": platform.python_version(), "packages": versions}


def git_revision(folder: Path) -> dict[str, Any] | str:
    """The commit checked out at ``folder`` and whether tracked files differ from it, or :data:`NOT_A_CHECKOUT`
    (an installed wheel, or no git on the machine)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != folder.resolve():
            return NOT_A_CHECKOUT  # pbrsim installed inside somebody else's repository
        return {"commit": git("rev-parse", "HEAD"),
                "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return NOT_A_CHECKOUT


def digest(data: Any) -> str:
    """A stable hash of JSON-like data (dates and other objects by their ``str``)."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str, separators=(",", ":"), allow_nan=True)


def machine() -> dict[str, Any]:
    """The machine it ran on."""
    return {"host": platform.node(), "platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count()}


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


WITH_CHANGES = " (with changes)"


def input_record(model: Any = None, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """One input (a validated scenario, contract or spec, or a file alone): its file and the file's sha256, and the
    hash of what was actually run (the model after command-line changes such as ``--years``, so it differs from
    one run of the file as written only when the command changed something)."""
    if path is None and model is not None:
        source = str(getattr(model, "_source", "") or "")
        path = source.removesuffix(WITH_CHANGES) if not source.startswith("<") else None
    record: dict[str, Any] = {}
    if path is not None:
        record["file"] = str(path)
        record["path"] = str(Path(path).resolve())
        record["sha256"] = file_hash(path) if Path(path).is_file() else None
    if model is not None:
        record["as_run_sha256"] = digest(model.model_dump(mode="json") if hasattr(model, "model_dump") else model)
        if str(getattr(model, "_source", "")).endswith(WITH_CHANGES):
            record["changed_by_the_command"] = True
    return record


def manifest_text(data: dict[str, Any]) -> str:
    """A results folder's manifest in a few lines: what made it, from what, with what code, where and when."""
    git = data.get("git")
    revision = git if isinstance(git, str) or git is None else \
        git["commit"][:12] + (" with uncommitted changes" if git.get("uncommitted_changes") else "")
    command = " ".join(data["command"]) if data.get("command") else "(not from the command line)"
    lines = [f"{data.get('kind', 'results')} written by pbrsim {data.get('pbrsim')} (git {revision}), "
             f"Python {data.get('python')}, on {(data.get('machine') or {}).get('host', '?')}",
             f"  command: {command}",
             f"  started {data.get('started') or '?'}, written {data.get('written') or '?'}; root seed "
             f"{data.get('seed')}, replications {data.get('replications')}"]
    for role, record in (data.get("inputs") or {}).items():
        for r in record if isinstance(record, list) else [record]:
            changed = " (changed by the command)" if r.get("changed_by_the_command") else ""
            lines.append(f"  {role}: {r.get('file', '(not a file)')} sha256 {str(r.get('sha256'))[:12]}, as run "
                         f"{str(r.get('as_run_sha256'))[:12]}{changed}")
    return "\n".join(lines)
