"""The code on the docs pages runs: each page's ```python blocks are executed in order, in one namespace, so a
stale example (a changed signature, a wrong shape, a failing assert) fails the suite."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["real-models.md"]  # pages whose every block runs offline in seconds


def _blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text()
    out = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        out.append((text[:m.start()].count("\n") + 2, m.group(1)))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_runs(page, capsys):
    blocks = _blocks(DOCS / page)
    assert blocks, f"{page} has no python blocks"
    # a module of its own, so that classes defined on the page can be pickled (torch.save of a model)
    module = types.ModuleType("maso_docs_page")
    sys.modules[module.__name__] = module
    try:
        for line, code in blocks:
            try:
                exec(compile(code, f"{page}:{line}", "exec"), module.__dict__)
            except Exception as e:
                raise AssertionError(f"the block at {page}:{line} fails: {type(e).__name__}: {e}") from e
    finally:
        del sys.modules[module.__name__]
