"""Running the experiments (``experiments/``, imported as ``maso_experiments``) from the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maso.cli import load_experiments


def experiments() -> Any:
    """The ``maso_experiments`` package of this checkout."""
    return load_experiments()


def run_quick(name: str, out: Path, **options: Any) -> dict[str, Any]:
    """Run experiment ``name`` with ``--quick`` settings (and ``options``) into ``out``; check the run folder's
    files and return ``results.json`` as read back from disk."""
    exps = load_experiments()
    exps.run(name, str(out), quick=True, device="cpu", seed=0, options=options, progress=False)
    record = json.loads((Path(out) / "results.json").read_text())
    report = (Path(out) / "report.md").read_text()
    assert record["experiment"] == name and record["quick"] is True
    assert "## What the article says" in report and "| the article | this run | verdict |" in report
    for fig in record["figures"]:
        png = Path(out) / fig["file"]
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
        assert fig["file"] in report
    return record
