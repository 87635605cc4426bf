"""The import graph of the ``maso`` package, with the numbers that say how well it is layered.

Reads the source with :mod:`ast` (nothing is imported), so it runs on any checkout::

    python scripts/import_graph.py                 # markdown report of ./maso
    python scripts/import_graph.py --root /tmp/wt  # another checkout
    python scripts/import_graph.py --dot maso.dot  # also a Graphviz file (dot -Tsvg maso.dot > maso.svg)

The report gives each module's size, its imports of other maso modules (eager ones at module level, lazy ones
inside functions), the import cycles among modules (eager and lazy edges together: a lazy edge still couples the
two files), and the *back doors*: attribute accesses ``x._name`` in one module where ``_name`` is a private
member defined by a class of another module (``self._name`` and ``cls._name`` are a module's own business and
are not counted).
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter, defaultdict
from pathlib import Path

import networkx as nx


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan(root: Path) -> tuple[dict[str, int], dict[tuple[str, str], str], dict[str, set[str]], Counter]:
    """Sizes, edges ``(importer, imported) -> "eager" | "lazy"``, private members per module, back doors."""
    files = sorted((root / "maso").rglob("*.py"))
    modules = {module_name(root, f): f for f in files}
    sizes = {m: len(f.read_text().splitlines()) for m, f in modules.items()}
    trees = {m: ast.parse(f.read_text()) for m, f in modules.items()}
    edges: dict[tuple[str, str], str] = {}
    privates: dict[str, set[str]] = defaultdict(set)

    def target(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for m, tree in trees.items():
        is_package = modules[m].name == "__init__.py"
        top_level = set(map(id, tree.body))
        typing_only = {id(n) for block in tree.body if isinstance(block, ast.If) and "TYPE_CHECKING" in
                       ast.unparse(block.test) for n in ast.walk(block)}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(m, is_package, node)
                names = [f"{base}.{a.name}" for a in node.names]
            if isinstance(node, ast.ClassDef):
                for item in ast.walk(node):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        if item.name.startswith("_") and not item.name.startswith("__"):
                            privates[m].add(item.name)
                    elif (isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name)
                          and item.value.id == "self" and isinstance(item.ctx, ast.Store)
                          and item.attr.startswith("_") and not item.attr.startswith("__")):
                        privates[m].add(item.attr)
            for name in names:
                t = target(name)
                if t is None or t == m or not t.startswith("maso"):
                    continue
                kind = "typing" if id(node) in typing_only else "eager" if id(node) in top_level else "lazy"
                rank = {"typing": 0, "lazy": 1, "eager": 2}
                if rank[kind] > rank[edges.get((m, t), "typing")] or (m, t) not in edges:
                    edges[(m, t)] = kind

    owner: dict[str, set[str]] = defaultdict(set)
    for m, names in privates.items():
        for n in names:
            owner[n].add(m)
    back_doors: Counter = Counter()
    for m, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in owner and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                others = owner[node.attr] - {m}
                if others and m not in owner[node.attr]:
                    back_doors[(m, node.attr, min(others))] += 1
    return sizes, edges, privates, back_doors


def report(root: Path) -> tuple[str, nx.DiGraph]:
    sizes, edges, _, back_doors = scan(root)
    g = nx.DiGraph()
    g.add_nodes_from(sizes)
    for (a, b), kind in edges.items():
        g.add_edge(a, b, kind=kind)
    # A package's __init__ re-exporting its own modules is not a cycle worth reporting, and imports made only for
    # the type checker are not imports at run time.
    def cycles_of(kinds: set[str]) -> list[list[str]]:
        h = nx.DiGraph()
        h.add_edges_from((a, b) for (a, b), k in edges.items()
                         if k in kinds and not (b.startswith(a + ".") or a == "maso"))
        return sorted((c for c in nx.simple_cycles(h) if len(c) > 1), key=len)

    eager_cycles = cycles_of({"eager"})
    lazy_cycles = [c for c in cycles_of({"eager", "lazy"}) if c not in eager_cycles]
    count = Counter(edges.values())
    lines = [f"# Import graph of `maso` ({root})", "",
             (f"{len(sizes)} modules, {sum(sizes.values()):,} lines; {len(edges)} import edges "
              f"({count['eager']} at import time, {count['lazy']} inside functions, {count['typing']} for the type "
              f"checker only); {len(eager_cycles)} import cycles at import time and {len(lazy_cycles)} more through "
              f"imports inside functions; {sum(back_doors.values())} back-door accesses to other modules' private "
              "members."), "",
             "| module | lines | imports (inside functions in brackets) |", "|---|---:|---|"]
    for m in sorted(sizes):
        eager = sorted(b for (a, b), k in edges.items() if a == m and k == "eager")
        lazy = sorted(b for (a, b), k in edges.items() if a == m and k == "lazy")
        deps = ", ".join(eager) + (f" [{', '.join(lazy)}]" if lazy else "")
        lines.append(f"| {m} | {sizes[m]} | {deps} |")
    lines += ["", "## Import cycles at import time", ""]
    lines += [f"- {' -> '.join(c + [c[0]])}" for c in eager_cycles] or ["none"]
    lines += ["", "## Cycles through imports inside functions", ""]
    lines += [f"- {' -> '.join(c + [c[0]])}" for c in lazy_cycles] or ["none"]
    lines += ["", "## Back doors (module: private member of another module's class, count)", ""]
    by_module: dict[str, list[str]] = defaultdict(list)
    for (m, attr, other), n in sorted(back_doors.items()):
        by_module[m].append(f"{attr} ({other}) x{n}")
    lines += [f"- {m}: {', '.join(v)}" for m, v in sorted(by_module.items())] or ["none"]
    return "\n".join(lines) + "\n", g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="checkout that holds maso/ (default: this one)")
    parser.add_argument("--dot", type=Path, help="also write the graph in Graphviz format here")
    args = parser.parse_args()
    text, g = report(args.root)
    print(text)
    if args.dot:
        out = ["digraph maso {", "  rankdir=LR; node [shape=box, fontsize=10];"]
        style = {"eager": "", "lazy": " [style=dashed]", "typing": " [style=dotted]"}
        out += [f'  "{a}" -> "{b}"{style[d["kind"]]};' for a, b, d in g.edges(data=True)]
        args.dot.write_text("\n".join(out + ["}"]) + "\n")


if __name__ == "__main__":
    main()
