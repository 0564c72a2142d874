"""Where modules meet: the internal import graph of ``src/obliviate``, read with ``ast``.

Every ``import`` / ``from ... import`` counts, at module level and inside functions
(relative imports resolved; an ``if __name__ == "__main__":`` block is skipped: it runs
only when the file is a script, never on import). The checks:

- no cycle between modules, and none between the top-level parts of the package
  (``obliviate.icul`` <-> ``obliviate.methods``, ``obliviate.io`` <-> ...): the layers are
  cli -> workflows -> methods -> (whp, icul, dememorize, attacks, eval) ->
  (models, train, data, world) -> core (errors, io, config, tokenizer, ...);
- no module imports another module's private name (``from obliviate.x import _y``);
- only ``obliviate.cli`` imports typer (or Click).

Each failure prints every offending import with its file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "obliviate"
CLI_ONLY = ("typer", "click")


@dataclass(frozen=True)
class Import:
    importer: str      # module doing the import
    target: str        # obliviate module imported (the longest existing module prefix)
    names: tuple       # names taken with ``from target import ...`` (empty for ``import x``)
    line: int

    def where(self, modules: dict[str, Path]) -> str:
        return f"{modules[self.importer].relative_to(SRC.parent)}:{self.line}"


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _known(name: str) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of the package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _main_block_nodes(tree: ast.Module) -> set[int]:
    """ids of every node under ``if __name__ == "__main__":`` at module level."""
    skipped: set[int] = set()
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def _parse(module: str, source: str | None = None) -> tuple[list[Import], list[tuple[str, int]]]:
    """(imports of package modules, external imports as (top-level name, line)) of ``module``
    (its file, or ``source`` as its text)."""
    if source is None:
        source = MODULES[module].read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(MODULES[module]))
    skipped = _main_block_nodes(tree)
    package = module if _is_package(module) else module.rpartition(".")[0]
    internal: list[Import] = []
    external: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name)
                if target is not None:
                    internal.append(Import(module, target, (), node.lineno))
                elif alias.name.split(".")[0] != PACKAGE:
                    external.append((alias.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                external.append((base.split(".")[0], node.lineno))
                continue
            plain: list[str] = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:   # ``from obliviate.cli import world``: the module itself
                    internal.append(Import(module, submodule, (), node.lineno))
                else:
                    plain.append(alias.name)
            target = _known(base)
            if plain and target is not None:
                internal.append(Import(module, target, tuple(plain), node.lineno))
    return internal, external


IMPORTS: dict[str, list[Import]] = {}
EXTERNAL: dict[str, list[tuple[str, int]]] = {}
for _name in MODULES:
    IMPORTS[_name], EXTERNAL[_name] = _parse(_name)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components (Tarjan) that hold a cycle: more than one node,
    or a node importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:   # recursive: the package's depth is far below the limit
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(components)


def _one_cycle(component: list[str], edges: dict[str, set[str]], start: str | None = None) -> list[str]:
    """A shortest cycle through ``start`` (default: the component's first node), breadth-first inside it."""
    members = set(component)
    start = component[0] if start is None else start
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(edges.get(node, ()) & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    return component + [component[0]]


def _describe(cycle: list[str], witnesses: dict[tuple[str, str], list[Import]]) -> str:
    lines = ["  " + " -> ".join(cycle)]
    for source, target in zip(cycle, cycle[1:]):
        for item in witnesses[(source, target)][:3]:
            names = f" ({', '.join(item.names)})" if item.names else ""
            lines.append(f"      {item.where(MODULES)}: {item.importer} imports {item.target}{names}")
    return "\n".join(lines)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_import_cycle_between_modules():
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    witnesses: dict[tuple[str, str], list[Import]] = {}
    for name, imports in IMPORTS.items():
        for item in imports:
            if item.target == name:
                continue   # ``from obliviate.x import y`` inside obliviate/x/__init__.py
            edges[name].add(item.target)
            witnesses.setdefault((name, item.target), []).append(item)
    components = _cycles(edges)
    report = []
    for component in components:
        report.append(f"{len(component)} modules: {', '.join(component)}")
        covered: set[str] = set()
        for node in component:   # shortest cycles until every module of the component is in one
            if node not in covered:
                cycle = _one_cycle(component, edges, node)
                covered.update(cycle)
                report.append(_describe(cycle, witnesses))
    assert not components, f"{len(components)} import cycle(s) between modules:\n" + "\n".join(report)


def test_no_import_cycle_between_top_level_packages():
    edges: dict[str, set[str]] = {}
    witnesses: dict[tuple[str, str], list[Import]] = {}
    for name, imports in IMPORTS.items():
        for item in imports:
            source, target = _top(name), _top(item.target)
            if source == target or PACKAGE in (source, target):   # inside one part; obliviate/__init__.py
                continue
            edges.setdefault(source, set()).add(target)
            edges.setdefault(target, set())
            witnesses.setdefault((source, target), []).append(item)
    components = _cycles(edges)
    report = []
    for component in components:
        members = set(component)
        pairs = sorted((a, b) for a in component for b in edges[a] & members if b in edges and a in edges[b])
        text = [f"{', '.join(component)}"]
        text += [_describe([a, b, a], witnesses) for a, b in pairs if a < b]   # the two-way pairs, explicitly
        if not pairs:
            text.append(_describe(_one_cycle(component, edges), witnesses))
        report.append("\n".join(text))
    assert not components, (f"{len(components)} import cycle(s) between parts of {PACKAGE}:\n"
                            + "\n".join(report))


def test_no_module_imports_a_private_name_of_another():
    offenders = []
    for name, imports in IMPORTS.items():
        for item in imports:
            if item.target == name:
                continue
            private = [n for n in item.names if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
            if private:
                offenders.append(f"  {item.where(MODULES)}: {name} imports {', '.join(private)} from {item.target}")
            if not item.names:   # ``import obliviate.x._y`` / ``from obliviate.x import _y`` (a private module)
                leaf = item.target.rpartition(".")[2]
                parent = item.target.rpartition(".")[0]
                if leaf.startswith("_") and not leaf.startswith("__") and not name.startswith(parent + "."):
                    offenders.append(f"  {item.where(MODULES)}: {name} imports the private module {item.target}")
    assert not offenders, "private names imported from another module:\n" + "\n".join(offenders)


def test_only_the_command_line_imports_typer():
    offenders = [f"  {MODULES[name].relative_to(SRC.parent)}:{line}: {name} imports {top}"
                 for name, external in EXTERNAL.items() if not (name == f"{PACKAGE}.cli" or
                                                               name.startswith(f"{PACKAGE}.cli."))
                 for top, line in external if top in CLI_ONLY]
    assert not offenders, "modules outside obliviate.cli import the CLI framework:\n" + "\n".join(offenders)


def test_the_graph_sees_every_kind_of_import():
    """The reader itself: function-level and relative imports are edges; __main__ blocks are not."""
    # function-level: the unlearn command imports its workflow inside the function
    assert any(item.target == "obliviate.workflows.unlearn" for item in IMPORTS["obliviate.cli.unlearn"])
    assert {"obliviate.cli.world", "obliviate.cli.app"} <= {item.target for item in IMPORTS["obliviate.cli"]}
    source = ("from . import truth_ratio\nfrom ..scoring import score_continuations as s\n"
              "def f():\n    from ...world.loader import _required_files\n    import typer\n")
    internal, external = _parse("obliviate.eval.metrics.qa", source)
    assert [(i.target, i.names, i.line) for i in internal] == [
        ("obliviate.eval.metrics.truth_ratio", (), 1), ("obliviate.eval.scoring", ("score_continuations",), 2),
        ("obliviate.world.loader", ("_required_files",), 4)]
    assert external == [("typer", 5)]
    # a __main__ block runs only as a script: importing the module does not import what it imports
    script = 'import os\nif __name__ == "__main__":\n    from obliviate.cli import main\n    main()\n'
    assert _parse("obliviate.workflows.unlearn", script)[0] == []


def test_cycles_are_found_and_spelled_out():
    """The cycle finder on a made-up graph: a -> b -> c -> a, d -> d, e -> a (no cycle through e)."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"], ["d"]]
    assert _one_cycle(["a", "b", "c"], edges) == ["a", "b", "c", "a"]
    assert _one_cycle(["d"], edges) == ["d", "d"]
    assert _cycles({"a": {"b"}, "b": set()}) == []
