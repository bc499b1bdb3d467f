"""Configuration files: TOML with ``extends``, frozen pydantic sections, and errors that name the file, the key
path and the value. Shared by scenarios (:mod:`sim.config.scenario`) and contracts (:mod:`sim.config.contract`)."""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from sim.core.errors import UserError

M = TypeVar("M", bound=BaseModel)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def plain_name(name: str) -> str:
    """A name that is also a folder name under ``results/``: letters, digits, '-', '_' and '.', not starting
    with '.', at most 100 characters (so that no name can point anywhere else)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError("a name must be 1-100 letters, digits, '-', '_' or '.', not starting with '.' (it names "
                         "the results folder)")
    return name


PlainName = Annotated[str, AfterValidator(plain_name)]


class ConfigError(UserError):
    """Problems found in a configuration file, each as (file, key path, value, message).

    ``via`` is the chain of files and keys that led to the file (a scenario's ``contract``, a sweep's
    ``scenario``, an ``extends``), outermost first, as (file, key, value)."""

    what = "configuration"
    shown = 20  # problems listed in full; the rest are counted (200,000 unknown keys must not print 19 MB)

    def __init__(self, problems: list[tuple[str, str, Any, str]], via: tuple[tuple[str, str, Any], ...] = ()):
        self.problems = problems
        self.via = tuple(via)
        lines = [f"{f}: {k} = {show(v)}: {m}" if k else f"{f}: {m}" for f, k, v, m in problems[: self.shown]]
        rest = problems[self.shown:]
        if rest:
            unknown = sum(1 for *_, m in rest if str(m).startswith("unknown key"))
            lines.append(f"... and {len(rest):,} more problem{'s' if len(rest) != 1 else ''}"
                         + (f" ({unknown:,} of them unknown keys)" if unknown else ""))
        reached = "".join(f"\n  reached from {f}: {k} = {show(v)}" for f, k, v in self.via)
        super().__init__(f"invalid {self.what}\n  " + "\n  ".join(lines) + reached)

    def reached_from(self, file: str, key: str, value: Any) -> ConfigError:
        """The same problems, as reached from ``file``'s ``key = value`` (a contract a scenario names...)."""
        error = type(self)(self.problems, ((str(file), key, value), *self.via))
        return error


def show(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to 120 characters."""
    text = repr(value) if not isinstance(value, (dt.date, dict)) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


MAX_DEPTH = 32  # tables and arrays nested deeper than this are refused (the schemas nest about 6 deep)
MAX_BYTES = 10_000_000  # a configuration file larger than this is refused (the shipped ones are under 40 kB)


class Section(BaseModel):
    """A frozen, strictly validated part of a configuration: unknown keys and non-finite numbers are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __eq__(self, other: object) -> bool:  # fields only: caches and provenance do not count
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__


def read_toml(path: Path, referrer: tuple[str, str] | None, error: type[ConfigError]) -> dict[str, Any]:
    """A TOML file as a dict: UTF-8 (a byte-order mark is allowed), at most ``MAX_BYTES`` and ``MAX_DEPTH``
    deep; anything else is refused naming the file (and the byte offset or key path)."""
    if not path.is_file():
        if referrer:
            raise error([(referrer[0], "extends", referrer[1], f"no such file: {path}")])
        raise error([(str(path), "", None, "no such file" if not path.exists() else "not a file")])
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise error([(str(path), "", None, f"{size:,} bytes: larger than the {MAX_BYTES:,} a configuration "
                                               f"file may be")])
        data = path.read_bytes()
    except OSError as e:
        raise error([(str(path), "", None, f"cannot be read: {e.strerror or e}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        hint = (" (it looks like UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                else " (save it as UTF-8)")
        raise error([(str(path), "", None, f"not UTF-8 text: byte {e.start} is 0x{data[e.start]:02x}{hint}")]) \
            from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error([(str(path), "", None, f"not valid TOML: {e}")]) from None
    except RecursionError:
        raise error([(str(path), "", None, f"nested too deeply (more than {MAX_DEPTH} levels)")]) from None
    deep = _too_deep(parsed, ())
    if deep is not None:
        raise error([(str(path), ".".join(deep), None, f"nested too deeply (more than {MAX_DEPTH} levels)")])
    return parsed


def _too_deep(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The key path at which ``value`` goes deeper than ``MAX_DEPTH``, or None."""
    if len(path) > MAX_DEPTH:
        return path[:MAX_DEPTH + 1]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        if isinstance(child, (dict, list)):
            found = _too_deep(child, (*path, str(key) if isinstance(key, str) else f"[{key}]"))
            if found is not None:
                return found
    return None


def read_with_extends(path: Path, error: type[ConfigError], seen: tuple[Path, ...] = (),
                      referrer=None) -> tuple[dict, dict]:
    """The file merged over the files it extends (without the ``extends`` key), and where each key came from
    (key path -> file)."""
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(p.name for p in (*seen, resolved))
        raise error([(referrer[0], "extends", referrer[1], f"circular extends: {chain}")])
    data = read_toml(path, referrer, error)
    provenance = {(k,): str(path) for k in data}
    _record_leaves(data, (), str(path), provenance)
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        return data, provenance
    if not isinstance(parent_ref, str):
        raise error([(str(path), "extends", parent_ref, "must be a file name (string)")])
    parent_path = path.parent / parent_ref
    try:
        parent, parent_prov = read_with_extends(parent_path, error, (*seen, resolved), (str(path), parent_ref))
    except ConfigError as e:
        if e.problems and e.problems[0][0] == str(path):  # already about this file's own extends key
            raise
        raise e.reached_from(str(path), "extends", parent_ref) from None
    merged = merge(parent, data)
    parent_prov.update(provenance)
    return merged, parent_prov


def _record_leaves(data: dict, prefix: tuple, source: str, out: dict) -> None:
    for k, v in data.items():
        out[(*prefix, k)] = source
        if isinstance(v, dict):
            _record_leaves(v, (*prefix, k), source, out)


def merge(base: dict, override: dict) -> dict:
    """Tables merge key by key, the override winning; arrays, a table naming a new ``dist`` and a table of
    shares (``p``) replace the parent's whole; a parent's bare number stays the base of a refining table."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        parent = out.get(k)
        if isinstance(v, dict) and _is_number(parent) and "dist" not in v and "value" not in v:
            out[k] = {"value": parent, **copy.deepcopy(v)}
        elif isinstance(v, dict) and isinstance(parent, dict) and "dist" not in v and k != "p":
            out[k] = merge(parent, v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_INTERNAL_LOC = {"[key]"}


def validated(raw: dict, model: type[M], error: type[ConfigError], source: str, provenance: dict | None = None) -> M:
    """``raw`` validated as ``model``; else ``error`` with every problem at once, naming the file (from
    ``provenance``, or ``source``), the key path and the value."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise error(problems(e, model, source, provenance or {})) from None


def problems(e: ValidationError, root: type[BaseModel], source: str, provenance: dict) -> list:
    """A pydantic error as (file, key path, value, message) rows, in the user's words."""
    rows = []
    for err in e.errors():
        path = tuple(p for p in err["loc"] if p not in _INTERNAL_LOC and not str(p).startswith("function-"))
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(path[-1]), known_keys(root, path[:-1]), n=1)
            msg = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
        elif err["type"] == "missing":
            msg, value = "required key is missing", None
        elif err["type"] == "literal_error" and "[key]" in err["loc"]:
            msg = f"unknown key; {err['msg'][0].lower()}{err['msg'][1:]}"
        if isinstance(value, dict) and set(value) == {"value"}:
            value = value["value"]  # a bare number, shown as written
        rows.append((source_of(path, provenance, source), key, value, msg))
    return rows


def source_of(path: tuple, provenance: dict, default: str) -> str:
    for n in range(len(path), 0, -1):
        if path[:n] in provenance:
            return provenance[path[:n]]
    return default


def known_keys(root: type[BaseModel], path: tuple) -> list[str]:
    """Field names valid at a key path of a schema (for 'did you mean')."""
    model: Any = root
    for part in path:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            ann = fields[part].annotation
            args = getattr(ann, "__args__", ())
            inner = [a for a in args if hasattr(a, "model_fields")]
            inner += [b for a in args for b in getattr(a, "__args__", ()) if hasattr(b, "model_fields")]
            model = inner[0] if inner else ann
    return list(getattr(model, "model_fields", {}))


def set_path(raw: dict, parts: list[str], value: Any, must_exist: bool, scale: bool = False) -> None:
    """Replace (or, with ``scale``, multiply) the value at a dotted key path of a raw configuration."""
    node = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):  # an element of a list by its index: pbr_share.by_year.0
            if not (part.isdigit() and int(part) < len(node)):
                raise KeyError(".".join(parts[: i + 1]))
            node = node[int(part)]
            continue
        nxt = node.get(part) if isinstance(node, dict) else None
        if _is_number(nxt) and parts[i + 1] in ("value", "by_group", "by_band"):
            nxt = {"value": nxt}  # refine a bare number
            node[part] = nxt
        if not isinstance(nxt, (dict, list)):
            if must_exist:
                raise KeyError(".".join(parts[: i + 1]))
            nxt = {}
            node[part] = nxt
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if not (last.isdigit() and int(last) < len(node)):
            raise KeyError(".".join(parts))
        index = int(last)
        if scale:
            if not _is_number(node[index]):
                raise KeyError(".".join(parts))
            node[index] = node[index] * value
        else:
            node[index] = value
        return
    if scale:
        current = node.get(last)
        if isinstance(current, dict) and "value" in current:
            node, last, current = current, "value", current["value"]
        if not _is_number(current):
            raise KeyError(".".join(parts))
        node[last] = current * value
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = value


def has_number(model: Any, path: str) -> bool:
    """Whether the validated ``model`` holds a number (not a flag) at the dotted key ``path``."""
    node = model.model_dump(mode="python")
    for key in path.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
            continue
        if not isinstance(node, dict) or node.get(key) is None:
            return False
        node = node[key]
    return isinstance(node, (int, float)) and not isinstance(node, bool)
