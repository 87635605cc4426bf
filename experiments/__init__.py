"""maso's experiments: the polytope lens (Black, Sharkey et al. 2022) replayed with exact tools.

Studies built on maso's public API only. They live in the source checkout (``experiments/``), not in the
installed package, and are imported under the name ``maso_experiments`` (so that no other package called
``experiments`` is shadowed): ``maso experiment --list`` and ``maso experiment NAME --out DIR`` load them from
the checkout maso was installed from (``pip install -e ".[experiments]"``).

Each experiment module defines ``NAME``, ``TITLE`` (one line), ``CLAIM`` (what the article says, quoted or
paraphrased with its source), ``OPTIONS`` (defaults and their ``--quick`` values) and ``run(ctx)``, which fills
``ctx.results`` and writes figures through ``ctx``; :func:`run` wraps it into a run folder with
``results.json`` and ``report.md``.
"""

from __future__ import annotations

import importlib
from typing import Any


class ExperimentError(ValueError):
    """A user mistake or a missing package, found by an experiment: the message says what and how to fix it
    (``maso experiment`` prints it in one line and exits with code 2)."""


#: Experiment modules, in the order ``--list`` prints them.
MODULES = ("e1_clusters", "e2_directions", "e3_between", "e4_scaling", "e5_slice", "sample")


def experiments() -> dict[str, Any]:
    """``{name: module}`` of every experiment, in order (modules load their heavy dependencies lazily)."""
    out = {}
    for mod in MODULES:
        m = importlib.import_module(f"{__name__}.{mod}")
        out[m.NAME] = m
    return out


def module(name: str) -> Any:
    """The module of experiment ``name`` (imports only that one)."""
    if name not in MODULES:
        raise ExperimentError(f"no experiment {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(f"{__name__}.{name}")  # NAME == module name: a broken module stays alone


def run(name: str, out: str, *, quick: bool = False, device: str = "cpu", seed: int = 0,
        options: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run experiment ``name`` into the folder ``out``; returns its results (also in ``out/results.json``)."""
    from maso_experiments._run import Context

    ctx = Context(module(name), out, quick=quick, device=device, seed=seed, options=options or {}, progress=progress)
    return ctx.execute()
