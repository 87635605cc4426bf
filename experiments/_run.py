"""A run of one experiment: its folder, settings, results, figures and report.

Every run writes into its folder:

* ``results.json``: the settings used, every number the experiment measured (``ctx.results``), the comparisons
  with the article, our choices where the article is silent, the figures and the timing;
* ``report.md``: which model (trained or random, which weights), data and settings were used, the article's
  claims side by side with what this run found, and the figures;
* the PNG figures.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(v: Any) -> Any:
    """``v`` with NumPy and torch values turned into JSON types (NaN and inf become None)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, Path):
        return str(v)
    return str(v)


class Context:
    """What an experiment's ``run(ctx)`` works with.

    Attributes
    ----------
    out : Path
        The run's folder.
    quick : bool
        The small settings (a few minutes on 2 CPU cores; what the tests run).
    device : str
        Where torch computes ("cpu", "cuda").
    seed : int
    opt : dict
        The experiment's options: its defaults, or their quick values, overridden by ``options``.
    results : dict
        Every number the run measures; written to ``results.json``.
    """

    def __init__(self, module: Any, out: str | Path, *, quick: bool, device: str, seed: int,
                 options: dict[str, Any], progress: bool = True) -> None:
        self.module = module
        self.out = Path(out)
        self.quick = bool(quick)
        self.device = str(device)
        self.seed = int(seed)
        defaults = getattr(module, "OPTIONS", {})
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            from maso_experiments import ExperimentError

            raise ExperimentError(f"unknown option(s) of {module.NAME}: {', '.join(unknown)}; known: {', '.join(defaults)}")
        self.opt = {k: (v[1] if self.quick else v[0]) for k, v in defaults.items()}
        self.opt.update(options)
        self.results: dict[str, Any] = {}
        self.figures: list[tuple[str, str]] = []
        self.choices: list[str] = []
        self.comparisons: list[tuple[str, str, str]] = []
        self.setup: dict[str, Any] = {}
        self.progress = progress
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------------------------ for experiments
    def log(self, message: str) -> None:
        """A progress line on stderr, with the time since the start."""
        if self.progress:
            print(f"[{self.module.NAME} {time.perf_counter() - self._t0:7.1f} s] {message}", file=sys.stderr, flush=True)

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A generator seeded from the run's seed and ``stream`` (independent streams, no global state)."""
        return np.random.default_rng([self.seed, stream])

    def choice(self, text: str) -> None:
        """Record one of our choices where the article is silent (listed as such in the report)."""
        self.choices.append(text)

    def describe(self, **setup: Any) -> None:
        """Record what was used: model (trained or random, which weights), data, layer, sizes..."""
        self.setup.update(setup)

    def compare(self, claim: str, found: str, verdict: str) -> None:
        """One row of the report's side-by-side table: the article's claim, what this run found, and a verdict
        ("consistent", "not consistent", "not tested here: ...")."""
        self.comparisons.append((claim, found, verdict))

    def figure(self, name: str, fig: Any, caption: str) -> Path:
        """Save a matplotlib figure as ``name.png`` in the run folder (and close it)."""
        import matplotlib.pyplot as plt

        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append((path.name, caption))
        return path

    # ------------------------------------------------------------------------------------------ the run
    def execute(self) -> dict[str, Any]:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        self.out.mkdir(parents=True, exist_ok=True)
        self.log(f"starting ({'quick' if self.quick else 'full'} settings, device {self.device}, seed {self.seed})")
        self.module.run(self)
        seconds = time.perf_counter() - self._t0
        record = {
            "experiment": self.module.NAME,
            "title": self.module.TITLE,
            "quick": self.quick,
            "device": self.device,
            "seed": self.seed,
            "options": self.opt,
            "setup": self.setup,
            "results": self.results,
            "article": self.module.CLAIM,
            "comparisons": [{"claim": c, "found": f, "verdict": v} for c, f, v in self.comparisons],
            "our_choices": self.choices,
            "figures": [{"file": f, "caption": c} for f, c in self.figures],
            "seconds": seconds,
            "versions": _versions(),
        }
        (self.out / "results.json").write_text(json.dumps(jsonable(record), indent=1) + "\n")
        (self.out / "report.md").write_text(self._report(seconds))
        self.log(f"done in {seconds:.1f} s: {self.out / 'report.md'}")
        return record

    def _report(self, seconds: float) -> str:
        m = self.module
        lines = [f"# {m.TITLE}", "",
                 (f"Experiment `{m.NAME}`, {'quick' if self.quick else 'full'} settings, device `{self.device}`, "
                  f"seed {self.seed}, {seconds:.0f} s. Every number is in `results.json`."), "",
                 "## What the article says", "", m.CLAIM.strip(), "", "## What was used", ""]
        for k, v in self.setup.items():
            lines.append(f"* **{k}**: {v}")
        lines.append(f"* **options**: {', '.join(f'{k}={v}' for k, v in self.opt.items())}")
        lines += ["", "## The article and this run, side by side", "",
                  "| the article | this run | verdict |", "|---|---|---|"]
        for c, f, v in self.comparisons:
            lines.append(f"| {_cell(c)} | {_cell(f)} | {_cell(v)} |")
        if self.choices:
            lines += ["", "## Our choices where the article is silent", ""]
            lines += [f"* {c}" for c in self.choices]
        if self.figures:
            lines += ["", "## Figures", ""]
            for f, c in self.figures:
                lines += [f"![{c}]({f})", "", f"*{c}*", ""]
        return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("maso", "torch", "numpy", "sklearn", "hdbscan", "transformers"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out
