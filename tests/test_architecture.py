"""The structure of the package, checked: layers of dependency, no import cycles, no back doors, a small top level.

The import graph comes from the source (``scripts/import_graph.py``, which uses ``ast``), so these tests see
imports inside functions too; imports made only for the type checker are left out.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import maso

ROOT = Path(__file__).resolve().parents[1]

#: From the bottom up (see docs/architecture.md): a module imports only from its own layer and those below.
LAYERS = [
    {"errors"},
    {"_validation", "_gates", "_random", "_version", "kernels", "_lp", "bounds", "plotting"},
    {"layers", "nn"},
    {"core"},
    {"soft", "exact", "regions"},
    {"slices"},
    {"measures", "torch"},
    {"maso", "cli", "_cli_models", "__main__"},
]


def _graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.scan(ROOT)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "maso"


def test_every_module_has_a_layer():
    _, (sizes, _, _, _) = _graph()
    known = set().union(*LAYERS)
    assert {_top(m) for m in sizes} <= known, {_top(m) for m in sizes} - known


def test_no_module_imports_from_a_higher_layer():
    _, (_, edges, _, _) = _graph()
    level = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    upward = [(a, b, kind) for (a, b), kind in edges.items()
              if kind != "typing" and level[_top(b)] > level[_top(a)]]
    assert not upward, upward


def test_no_import_cycles_even_through_imports_inside_functions():
    import networkx as nx

    _, (_, edges, _, _) = _graph()
    g = nx.DiGraph((a, b) for (a, b), kind in edges.items()
                   if kind != "typing" and not (b.startswith(a + ".") or a == "maso"))
    assert not [c for c in nx.simple_cycles(g) if len(c) > 1]


def test_no_module_reaches_into_another_modules_private_members():
    _, (_, _, _, back_doors) = _graph()
    assert not back_doors, dict(back_doors)


def test_the_graph_scanner_sees_what_it_should():
    # the checks above pass trivially if the scanner is blind: it must find known edges, kinds and back doors
    _, (_, edges, privates, _) = _graph()
    assert edges[("maso.core.network", "maso.core._program")] == "eager"
    assert edges[("maso.slices._slice", "maso.plotting")] == "lazy"
    assert edges[("maso.plotting", "maso.slices._paths")] == "typing"
    assert "_walk" not in privates["maso.core._program"]  # a module-level function, not a class member
    assert "_program" in privates["maso.core.network"]


def test_back_door_detection_on_a_planted_access(tmp_path):
    module, _ = _graph()
    (tmp_path / "maso").mkdir()
    (tmp_path / "maso" / "__init__.py").write_text("")
    (tmp_path / "maso" / "a.py").write_text("class A:\n    def __init__(self):\n        self._secret = 1\n")
    (tmp_path / "maso" / "b.py").write_text("from maso.a import A\n\ndef peek(a):\n    return a._secret\n")
    _, edges, _, back_doors = module.scan(tmp_path)
    assert edges[("maso.b", "maso.a")] == "eager"
    assert dict(back_doors) == {("maso.b", "_secret", "maso.a"): 1}


def test_top_level_is_small_and_every_name_resolves():
    assert len(maso.__all__) <= 25
    for name in maso.__all__:
        assert getattr(maso, name) is not None
    # a star import must not shadow torch or torch.nn in the user's namespace
    namespace: dict = {}
    exec("import torch\nfrom torch import nn\nfrom maso import *", namespace)
    assert namespace["torch"].__name__ == "torch" and namespace["nn"].__name__ == "torch.nn"


@pytest.mark.parametrize(("name", "home"), [("RegionSet", "maso.regions"), ("SliceRegions", "maso.slices"),
                                            ("ShapeError", "maso.errors"), ("Affine", "maso.core"),
                                            ("MASOLayer", "maso.layers"), ("SUPPORTED", "maso.torch")])
def test_a_name_that_moved_says_where_it_went(name, home):
    with pytest.raises(AttributeError, match=rf"maso\.{name} is {home}\.{name}"):
        getattr(maso, name)
    assert getattr(importlib.import_module(home), name) is not None


def test_importing_maso_loads_neither_sympy_nor_numba_nor_matplotlib():
    code = ("import sys, maso; bad = [m for m in ('sympy', 'numba', 'matplotlib') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
