"""The README's set-up commands: the two fenced bash blocks that open it are the demo and the test-suite set-ups,
the second is what CI runs verbatim, and (slow) the first works in a fresh copy of the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = 'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e . && .venv/bin/maso demo'
SUITE = ('python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e ".[test,experiments]" '
         '&& .venv/bin/python -m pytest')


def _bash_blocks(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)]


def test_readme_opens_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    blocks = _bash_blocks(text)
    assert blocks[:2] == [DEMO, SUITE], "the README's first two bash blocks must be the two set-up commands"
    # nothing but the title, the figure and prose comes before them
    head = text[:text.index("```bash")]
    assert "```" not in head
    figure = re.search(r"!\[[^\]]*\]\(([^)]+)\)", head)
    assert figure and (ROOT / figure.group(1)).is_file(), "the README's opening figure must exist"


def test_ci_runs_the_readme_test_command_verbatim():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert SUITE in [line.strip() for line in lines], ".ci/run must run the README's second command verbatim"


@pytest.mark.slow
def test_demo_command_in_a_fresh_copy(tmp_path):
    """The first README command, verbatim, in a copy of the tracked files (a fresh venv: pip installs torch
    and maso's dependencies, a few minutes)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():  # a tracked file deleted in the working tree is left out
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # the system python3, not this checkout's virtual environment (if it is activated)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT / ".venv")))
    start = time.perf_counter()
    r = subprocess.run(["bash", "-c", DEMO], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1800,
                       check=False)
    seconds = time.perf_counter() - start
    assert r.returncode == 0, f"exit {r.returncode} after {seconds:.0f} s:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    last = [line for line in r.stdout.splitlines() if line.strip()][-1]
    assert last.strip() == "all checks passed: True", r.stdout[-2000:]
