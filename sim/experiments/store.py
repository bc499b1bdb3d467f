"""A result store on disk: one Parquet part per finished run, written atomically, so experiments resume.

Layout of a store folder::

    meta.json                          the experiment's spec and a digest of each point's inputs
    parts.jsonl                        one line per finished part: its key, SHA-256 and number of rows
    point=<p>/replication=<r>.parquet  the tidy long table of one run (columns ``COLUMNS``)

A part counts as finished only if its bytes match the checksum recorded for it in ``parts.jsonl`` (appended,
with an ``fsync``, after the part is in place): a part that is truncated, empty, garbage, edited, or written
without its line (a kill between the two) is *damaged*; :meth:`ResultStore.done` and :meth:`ResultStore.load`
never count or read it, and :meth:`ResultStore.discard_damaged` (called by :func:`sim.experiments.core.run_specs` before
it runs anything, which then says so on one line) removes it so that the run is done again. A store written
before checksums (parts but no ``parts.jsonl``) has each part that reads as a whole table of its own run adopted
once, its checksum recorded.

Every file is written to a temporary file in the same folder (a name starting with ``.``) and renamed over its
target with ``os.replace``, after an ``fsync``: a run killed at any moment leaves either a whole part or none,
never a corrupt one. Temporary files of a killed run are ignored by :meth:`ResultStore.done` and
:meth:`ResultStore.load` and removed by :meth:`ResultStore.clean` (which :func:`sim.experiments.core.run_specs` calls
before it starts). Only one process writes to a store at a time: workers return tables, the process running the
experiment writes them.

Resuming: :func:`sim.experiments.core.run_specs` skips the (point, replication) keys already in the store. Before it
runs anything it checks the store's ``meta.json``: the experiment spec given (if any) must equal the one stored,
and every point already there must have been run with the same scenario, contract, seed and mode (compared by
digest); otherwise it refuses with :class:`StoreMismatch` rather than mix results of different experiments. New
points and replications may be added to a store (more replications of the same experiment, say).

A partly finished store can be loaded and summarised at any time: ``ResultStore(folder).load()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pandas.api.types import union_categoricals

from sim.core.errors import UserError
from sim.core.provenance import canonical_json, digest  # noqa: F401  (the store's keys; re-exported)
from sim.engine.history import write_atomic

COLUMNS = ["point", "replication", "period", "category", "metric", "value"]
KEY_COLUMNS = ["point", "replication", "period", "category", "metric"]  # unique per row; the sort order
LABEL_COLUMNS = ["period", "category", "metric"]
SCHEMA = pa.schema([("point", pa.int64()), ("replication", pa.int64()), ("period", pa.string()),
                    ("category", pa.string()), ("metric", pa.string()), ("value", pa.float64())])
META = "meta.json"
PARTS = "parts.jsonl"
FORMAT = 1

_PART = re.compile(r"^replication=(-?\d+)\.parquet$")
_POINT = re.compile(r"^point=(-?\d+)$")


class StoreMismatch(UserError):
    """A store holds results of a different experiment than the one being run into it."""


# --- the tidy long table ---------------------------------------------------------------------------------------


def empty_table() -> pd.DataFrame:
    """A table with no rows and the right columns and types."""
    return tidy(pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS}))


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """The canonical form of a results table: columns ``COLUMNS``; ``point`` and ``replication`` int64;
    ``period``, ``category`` and ``metric`` categorical (categories: the values present, in sorted order, as
    Python strings), which keeps a 10,000-run table to a few hundred MB; ``value`` float64; rows sorted by
    ``KEY_COLUMNS``.

    Tables that hold the same rows are identical after ``tidy``, whatever order they were assembled in."""
    return _assemble(table["point"].to_numpy(dtype=np.int64), table["replication"].to_numpy(dtype=np.int64),
                     {c: _categorical(table[c]) for c in LABEL_COLUMNS}, table["value"].to_numpy(dtype=np.float64))


def concat(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Tidy tables stacked and tidied, without turning their labels into Python objects on the way."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_table()
    arrays = {c: np.concatenate([t[c].to_numpy(dtype=d) for t in tables])
              for c, d in (("point", np.int64), ("replication", np.int64), ("value", np.float64))}
    labels = {c: union_categoricals([_categorical(t[c]) for t in tables]) for c in LABEL_COLUMNS}
    del tables
    return _assemble(arrays.pop("point"), arrays.pop("replication"), labels, arrays.pop("value"))


def _assemble(point: np.ndarray, replication: np.ndarray, labels: dict[str, pd.Categorical],
              value: np.ndarray) -> pd.DataFrame:
    """Sort categories and rows; one column at a time, so that a table of millions of rows is copied once."""
    labels = {c: _sorted_categorical(labels.pop(c)) for c in LABEL_COLUMNS}
    # np.lexsort on the integer codes (the last key is the primary one)
    order = np.lexsort([labels[c].codes for c in reversed(LABEL_COLUMNS)] + [replication, point])
    if np.any(order != np.arange(len(order))):
        point = point[order]
        replication = replication[order]
        value = value[order]
        for c in LABEL_COLUMNS:
            labels[c] = pd.Categorical.from_codes(labels[c].codes[order], dtype=labels[c].dtype)
    del order
    return pd.DataFrame({"point": point, "replication": replication, **labels, "value": value}, copy=False)


def _categorical(column: pd.Series) -> pd.Categorical:
    """A column as a Categorical whose categories are an object Index (the same type whatever pandas' string
    default)."""
    values = column.array if isinstance(column.dtype, pd.CategoricalDtype) else pd.Categorical(column)
    if values.categories.dtype != object:
        values = pd.Categorical.from_codes(values.codes, categories=pd.Index(values.categories.tolist(),
                                                                             dtype=object))
    return values


def _sorted_categorical(values: pd.Categorical) -> pd.Categorical:
    values = values.remove_unused_categories()
    names = values.categories.tolist()
    if not names:
        return values
    order = sorted(range(len(names)), key=names.__getitem__)
    codes = values.codes
    remap = np.empty(len(names), dtype=codes.dtype)
    remap[order] = np.arange(len(names))
    if (codes < 0).any():
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(codes.dtype)
    else:
        codes = remap[codes]
    return pd.Categorical.from_codes(codes, categories=pd.Index([names[i] for i in order], dtype=object))



def _differences(old: Any, new: Any, path: str = "", limit: int = 8) -> list[str]:
    """Where two JSON-like values differ, as 'key.path: old -> new' lines (at most ``limit``)."""
    out: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"{sub}: (absent) -> {_short(new[key])}")
            elif key not in new:
                out.append(f"{sub}: {_short(old[key])} -> (absent)")
            else:
                out += _differences(old[key], new[key], sub, limit - len(out))
            if len(out) >= limit:
                break
    elif canonical_json(old) != canonical_json(new):
        out.append(f"{path or '(whole)'}: {_short(old)} -> {_short(new)}")
    return out[:limit]


def _short(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- the store -------------------------------------------------------------------------------------------------


class ResultStore:
    """A folder of Parquet parts, one per finished run (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.directory)!r})"

    # parts

    def path(self, point: int, replication: int) -> Path:
        return self.directory / f"point={int(point)}" / f"replication={int(replication)}.parquet"

    def has(self, point: int, replication: int) -> bool:
        return self.path(point, replication).is_file()

    def _parts(self) -> dict[tuple[int, int], Path]:
        found = {}
        with os.scandir(self.directory) as points:
            for entry in points:
                m = _POINT.match(entry.name)
                if not m or not entry.is_dir():
                    continue
                with os.scandir(entry.path) as parts:
                    for part in parts:
                        r = _PART.match(part.name)
                        if r and part.is_file():
                            found[(int(m.group(1)), int(r.group(1)))] = Path(part.path)
        return found

    def done(self) -> set[tuple[int, int]]:
        """The (point, replication) keys of the finished runs: parts that match their recorded checksum."""
        return set(self._checked()[0])

    def damaged(self) -> dict[tuple[int, int], str]:
        """Parts on disk that do not count as finished, with why (unreadable, changed, no checksum)."""
        return self._checked()[1]

    def discard_damaged(self) -> dict[tuple[int, int], str]:
        """Remove the damaged parts (so that their runs are done again); return them with why."""
        damaged = self.damaged()
        for key in damaged:
            self.path(*key).unlink(missing_ok=True)
        return damaged

    def _checked(self) -> tuple[dict[tuple[int, int], Path], dict[tuple[int, int], str]]:
        parts = self._parts()
        recorded = self._recorded()
        if recorded is None:  # a store from before checksums: adopt each part that reads as its own run
            recorded = {}
            for key, path in sorted(parts.items()):
                if _whole_part(path, key):
                    recorded[key] = self._record(key, path)
        good, damaged = {}, {}
        for key, path in parts.items():
            entry = recorded.get(key)
            if entry is None:
                damaged[key] = "no checksum recorded (written when the run was killed?)"
            elif _sha256(path) != entry["sha256"]:
                damaged[key] = "its bytes do not match the checksum recorded (truncated, damaged or edited)"
            else:
                good[key] = path
        return good, damaged

    def _recorded(self) -> dict[tuple[int, int], dict] | None:
        """The checksums in ``parts.jsonl`` (the last line for a key wins; a torn last line is ignored), or None
        if the store has no such file."""
        path = self.directory / PARTS
        if not path.is_file():
            return None
        out = {}
        with path.open("rb") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    out[(int(entry["point"]), int(entry["replication"]))] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill, or not ours
        return out

    def _record(self, key: tuple[int, int], path: Path, rows: int | None = None) -> dict:
        entry = {"point": int(key[0]), "replication": int(key[1]), "sha256": _sha256(path), "rows": rows}
        with (self.directory / PARTS).open("ab") as f:
            f.write((json.dumps(entry, separators=(",", ":")) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        return entry

    def write(self, key: tuple[int, int], table: pd.DataFrame) -> None:
        """Write one run's table as its part, atomically. The table's rows must all carry ``key``."""
        point, replication = (int(k) for k in key)
        if len(table) and not ((table["point"] == point).all() and (table["replication"] == replication).all()):
            raise ValueError(f"the table written as part {key} holds rows of other runs")
        target = self.path(point, replication)
        target.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({
            "point": np.full(len(table), point, dtype=np.int64),
            "replication": np.full(len(table), replication, dtype=np.int64),
            **{c: table[c].astype(object).to_numpy() for c in LABEL_COLUMNS},
            "value": table["value"].to_numpy(dtype=np.float64),
        })
        arrow = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)

        def write(tmp: str) -> None:
            pq.write_table(arrow, tmp)
            _fsync(tmp)

        if not (self.directory / PARTS).is_file() and self._parts():
            self._checked()  # a store from before checksums: record its parts first
        write_atomic(target, write)
        self._record((point, replication), target, len(frame))

    def load(self, keys: Iterable[tuple[int, int]] | None = None) -> pd.DataFrame:
        """The tables of the finished runs (those of ``keys`` only, if given), concatenated and sorted by
        (point, replication, period, category, metric); an empty table if there are none."""
        parts = self._checked()[0]
        if keys is not None:
            wanted = {(int(p), int(r)) for p, r in keys}
            parts = {k: v for k, v in parts.items() if k in wanted}
        if not parts:
            return empty_table()
        files = [str(parts[k]) for k in sorted(parts)]
        try:
            arrow = pads.dataset(files, schema=SCHEMA, format="parquet").to_table()
        except (pa.ArrowInvalid, OSError) as e:  # a part not written by this store (they are written whole)
            raise OSError(f"cannot read the result store {self.directory}: {e}") from e
        for c in LABEL_COLUMNS:  # labels stay compact: never one Python string per row
            arrow = arrow.set_column(arrow.schema.get_field_index(c), c, arrow.column(c).dictionary_encode())
        return tidy(arrow.to_pandas())

    def clean(self) -> list[Path]:
        """Remove temporary files left by a killed run (never a finished part); return what was removed."""
        removed = []
        for folder in [self.directory, *(p for p in self.directory.iterdir() if _POINT.match(p.name))]:
            if not folder.is_dir():
                continue
            for f in folder.iterdir():
                if f.name.startswith(".") and f.name.endswith(".part") and f.is_file():
                    f.unlink(missing_ok=True)
                    removed.append(f)
        return removed

    # the experiment's spec

    def meta(self) -> dict | None:
        """The contents of ``meta.json``, or None if there is none yet."""
        path = self.directory / META
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise StoreMismatch(f"{path} cannot be read ({type(e).__name__}: {str(e)[:120]}): it is not a store's "
                                f"{META}; use another folder, or delete this one to start again") from None
        if not isinstance(meta, dict):
            raise StoreMismatch(f"{path} is not a store's {META}; use another folder, or delete this one to start "
                                f"again")
        return meta

    def write_meta(self, meta: dict) -> None:
        text = json.dumps(meta, indent=1, sort_keys=True, default=str)

        def write(tmp: str) -> None:
            Path(tmp).write_text(text)
            _fsync(tmp)

        write_atomic(self.directory / META, write)

    def begin(self, experiment: dict | None = None, points: dict[int, str] | None = None) -> None:
        """Check that this store holds results of the same experiment, then record it.

        ``experiment`` is the spec of the experiment (JSON-like; None: not checked); ``points`` maps each point
        to a digest of its inputs (scenario, contract, seed, mode). Refuses with :class:`StoreMismatch` if the
        stored spec differs from ``experiment``, or a point already stored was made from different inputs.
        """
        points = {int(p): d for p, d in (points or {}).items()}
        stored = self.meta()
        if stored is None:
            if self.done():
                raise StoreMismatch(f"{self.directory} holds results but no {META}: they cannot be checked "
                                    f"against this experiment; use another folder")
            self.write_meta({"format": FORMAT, "experiment": experiment,
                             "points": {str(p): d for p, d in sorted(points.items())}})
            return
        if stored.get("format") != FORMAT:
            raise StoreMismatch(f"{self.directory}: {META} has format {stored.get('format')!r}, expected {FORMAT}")
        old_experiment = stored.get("experiment")
        if experiment is not None and old_experiment is not None and \
                canonical_json(old_experiment) != canonical_json(json.loads(canonical_json(experiment))):
            lines = _differences(old_experiment, json.loads(canonical_json(experiment)))
            raise StoreMismatch(
                f"{self.directory} holds results of a different experiment; refusing to mix them "
                f"(use another folder, or delete this one to start again). Differences (stored -> now):\n  "
                + "\n  ".join(lines))
        old_points = {int(p): d for p, d in stored.get("points", {}).items()}
        changed = sorted(p for p in points if p in old_points and old_points[p] != points[p])
        if changed:
            shown = ", ".join(str(p) for p in changed[:10]) + (" ..." if len(changed) > 10 else "")
            raise StoreMismatch(
                f"{self.directory}: point(s) {shown} were run with a different scenario, contract, seed or mode "
                f"than now; refusing to mix them (use another folder, or delete this one to start again)")
        new = {p: d for p, d in points.items() if p not in old_points}
        if new or (old_experiment is None and experiment is not None):
            merged = {**old_points, **new}
            self.write_meta({"format": FORMAT,
                             "experiment": old_experiment if old_experiment is not None else experiment,
                             "points": {str(p): d for p, d in sorted(merged.items())}})


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _whole_part(path: Path, key: tuple[int, int]) -> bool:
    """Whether a part reads as a table of the store's schema holding rows of its own run only."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        return False
    if table.schema.names != SCHEMA.names:
        return False
    if table.num_rows == 0:
        return True
    points, replications = table.column("point").to_numpy(), table.column("replication").to_numpy()
    return bool((points == key[0]).all() and (replications == key[1]).all())


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
