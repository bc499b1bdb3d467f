"""The package's layers, read from the source (AST), over module-level and function-level imports alike.

pbrsim's folders are its data flow: ``core`` (vocabulary, calendar, randomness, distributions, errors, folders)
-> ``config`` (the schemas) -> ``engine`` (the SimPy system and the History) -> ``analysis`` (measures, costs,
offending) -> ``money`` (settlement) -> ``provider`` (the provider's response) -> ``experiments`` (replications,
sweeps, calibration) -> ``report`` -> ``webapp`` -> ``cli`` (the command line, which also launches the web app). A module imports only from its own layer or below;
within a layer nothing imports in a circle; no module imports another module's private name. ``sim/__init__.py``
is the public facade and may import from any layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sim"
LAYERS = ("core", "config", "engine", "analysis", "money", "provider", "experiments", "report", "webapp", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every import in the file, at any depth; relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [a.name for a in node.names], node.lineno))
    return found


def _graph() -> dict[str, list[tuple[str, list[str], int]]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = []
        for target, names, line in _imports(path):
            if not (target == "sim" or target.startswith("sim.")):
                continue
            if target in modules or target == "sim":
                # ``from sim.x import y``: y may itself be a module of the package
                sub = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
                edges += [(s, [], line) for s in sub] or [(target, names, line)]
                if sub and len(sub) < len(names):
                    edges.append((target, [n for n in names if f"{target}.{n}" not in modules], line))
            else:
                edges.append((target, names, line))
        graph[name] = edges
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


GRAPH = _graph()


def test_every_module_is_in_a_layer():
    loose = sorted(m for m in GRAPH if m != "sim" and _layer(m) is None)
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, edges in GRAPH.items():
        if module == "sim":
            continue
        for target, _, line in edges:
            if target == "sim":
                upward.append(f"{module}:{line} imports the facade sim (import from the module that defines it)")
            elif _layer(target) is not None and _layer(target) > _layer(module):
                upward.append(f"{module}:{line} imports {target} ({LAYERS[_layer(target)]} is above "
                              f"{LAYERS[_layer(module)]})")
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    edges = {m: {t for t, _, _ in e if t in GRAPH and t != m and t != "sim"} for m, e in GRAPH.items()}
    edges["sim"] = set()
    seen: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges[node]):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in seen:
                visit(nxt, path + [node])
        seen[node] = 2

    for module in sorted(edges):
        if module not in seen:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_is_imported_from_another_module():
    private = [f"{module}:{line} imports {target}.{n}" for module, edges in GRAPH.items()
               for target, names, line in edges for n in names if n.startswith("_") and not n.startswith("__")]
    assert not private, "\n".join(private)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_is_a_package_with_a_docstring(layer):
    init = PACKAGE / layer / "__init__.py"
    assert init.is_file(), f"sim/{layer} is not a package"
    assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"sim/{layer}/__init__.py says nothing"
