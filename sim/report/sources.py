"""Where each default comes from: the source tags written beside every number in a scenario or contract file.

Every number in a shipped file carries a tag in its comment: **[P]** published (the source is named), **[D]**
derived from published figures, **[E]** an estimate, **[K]** from the council papers (README, "Default parameters
and how to cite them"). TOML readers drop comments, so :func:`sourced_values` reads the file's lines: for each
``key = value`` line, its inline comment, the comment lines indented below it, the comment block just above it or,
failing those, the last block before it in its section (a note above a group of keys), following ``extends`` to the files it builds on (a key written in a later file replaces the earlier one's).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pandas as pd

TAGS = {"P": "published", "D": "derived from published figures", "E": "estimate", "K": "council papers"}
_TAG = re.compile(r"\[(P|D|E|K)\]")
_SECTION = re.compile(r"^\s*\[{1,2}\s*([^\]]+?)\s*\]{1,2}\s*(#.*)?$")
_KEY = re.compile(r'^(\s*)("[^"]+"|[A-Za-z0-9_.\-]+)\s*=\s*(.*)$')


def _split_comment(text: str) -> tuple[str, str]:
    """(value, comment) of the right-hand side of a line: the first # outside a string starts the comment."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def _lines(path: Path) -> list[dict]:
    """Each key of one file with its inline comment, the comment block just above it, and the context: the note
    that covers a group of keys (the last comment block, or tagged inline comment, before it in its table; a
    table's header note or the block above it; for a table written straight after another with no blank line
    between, the note of the one before; else the note of an earlier table with the same parent, as a block above
    ``[outcomes.a]`` covers ``[outcomes.b]``)."""
    rows, section, above, context = [], "", [], ""
    last, blank, sibling_note = None, True, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            if above:
                context = " ".join(above)
            above, last, blank = [], None, True
            continue
        if stripped.startswith("#"):
            if last is not None and len(line) - len(line.lstrip()) > 8:
                last["comment"] += " " + stripped.lstrip("# ").strip()  # a continuation of the line above's
            else:
                above.append(stripped.lstrip("#").strip())
                last = None
            continue
        m = _SECTION.match(line)
        if m and not _KEY.match(line):
            section, last = m.group(1).strip().strip('"'), None
            header = (m.group(2) or "").lstrip("#").strip()  # [section]   # [D] a note on the whole table
            own = " ".join(filter(None, [header, " ".join(above)]))
            parent = section.rsplit(".", 1)[0] if "." in section else ""
            if own and parent:
                sibling_note[parent] = own
            context = own or (sibling_note.get(parent, "") if blank else context)
            above, blank = [], False
            continue
        m = _KEY.match(line)
        if m:
            key = m.group(2).strip('"')
            value, comment = _split_comment(m.group(3))
            last = {"key": f"{section}.{key}" if section else key, "value": value, "comment": comment,
                    "above": " ".join(above), "context": context, "file": str(path)}
            rows.append(last)
            if above:
                context = " ".join(above)
            elif _TAG.search(comment):
                context = comment
            above, blank = [], False
        else:
            last = None  # inside a multi-line value
    return rows


def sourced_values(path: str | Path) -> pd.DataFrame:
    """One row per key written in ``path`` or the files it extends (the latest writing of a key wins): ``key``
    (dotted), ``value`` (as written), ``tags`` (P, D, E, K found in its comments), ``kind`` (their meanings),
    ``note`` (the comment beside the key, else the block above it) and ``file``."""
    path = Path(path)
    chain, seen = [], set()
    while path is not None and path.resolve() not in seen:
        seen.add(path.resolve())
        chain.append(path)
        with path.open("rb") as f:
            extends = tomllib.load(f).get("extends")
        path = (path.parent / extends) if isinstance(extends, str) else None
    rows: dict[str, dict] = {}
    for file in reversed(chain):  # the base first: a later file's key replaces it
        for row in _lines(file):
            if row["key"] in ("extends", "name", "description"):
                continue
            rows[row["key"]] = row
    out = []
    for row in rows.values():
        note = next((row[k] for k in ("comment", "above", "context") if _TAG.search(row[k])
                     or "estimate" in row[k].lower()), row["comment"] or row["above"] or row["context"])
        tags = sorted(set(_TAG.findall(note)))
        if not tags and "estimate" in note.lower():
            tags = ["E"]
        out.append({"key": row["key"], "value": row["value"][:80], "tags": " ".join(tags),
                    "kind": ", ".join(TAGS[t] for t in tags) or "no tag", "note": note[:300], "file": row["file"]})
    return pd.DataFrame(out, columns=["key", "value", "tags", "kind", "note", "file"])


def tag_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many values carry each tag (a value may carry several), and how many carry none."""
    counts = {t: int(table["tags"].str.split().map(lambda tags, t=t: t in tags).sum()) for t in TAGS}
    counts["none"] = int((table["tags"] == "").sum())
    return counts
