"""The documentation runs and renders.

* Every ```python block of every page under docs/ (found by glob, so new pages are covered) and of README.md is
  executed, page by page and in order, in one namespace per page, so a stale example (a changed signature, a
  wrong shape, a failing assert, a number the prose quotes) fails the suite with the page and line of the block.
  A block is left out only with an explicit marker right before it that gives a reason:
  ``<!-- docs-test: skip (needs a GPU) -->``; each such block shows up as a skipped test with that reason, and a
  marker without a reason, or one that is not followed by a python block, fails.
* ``mkdocs build --strict`` succeeds (an unresolved cross-reference is a warning, so it fails), the built pages
  load no script, style sheet or font from another site (the maths renderer is bundled), no Sphinx role
  (``:class:`...```) is left in the rendered API docs, and every API object has a heading with its signature.
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# A fenced block opens with ``` (or more backticks) and a language; it may be indented (inside a list item or
# an admonition) and may carry attributes after the language ("```python title=...").
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$", re.MULTILINE)
_MARKER = re.compile(r"<!--\s*docs-test:(?P<body>.*?)-->", re.DOTALL)
_SKIP = re.compile(r"^\s*skip\s*\((?P<reason>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # line of the first code line (1-based)
    code: str
    skip: str | None  # the reason given by a skip marker, or None


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _parse(page: Path) -> tuple[list[Block], list[str]]:
    """The python blocks of a page, and the problems with its docs-test markers."""
    text = page.read_text(encoding="utf-8")
    name = _name(page)
    blocks: list[Block] = []
    # (offset of the opening line, offset after the closing one, index in `blocks` or None if not python)
    fences: list[tuple[int, int, int | None]] = []
    pos = 0
    while (m := _FENCE.search(text, pos)) is not None:
        indent, ticks, lang = m.group("indent"), m.group("ticks"), m.group("lang").lower()
        # the closing fence: the same indentation (or less) and at least as many backticks, nothing else
        close = re.compile(rf"^[ \t]{{0,{len(indent)}}}`{{{len(ticks)},}}[ \t]*$", re.MULTILINE)
        c = close.search(text, m.end() + 1)
        if c is None:  # an unclosed fence runs to the end of the page, as in CommonMark
            body, end = text[m.end() + 1:], len(text)
        else:
            body, end = text[m.end() + 1:c.start()], c.end()
        if lang in ("python", "py"):
            fences.append((m.start(), end, len(blocks)))
            line = text.count("\n", 0, m.start()) + 2
            blocks.append(Block(name, line, textwrap.dedent(body), None))
        else:
            fences.append((m.start(), end, None))
        pos = end
    problems: list[str] = []
    for mk in _MARKER.finditer(text):
        line = text.count("\n", 0, mk.start()) + 1
        if any(start <= mk.start() < end for start, end, _ in fences):
            continue  # a marker quoted inside a code block (this syntax explained on a page) is not a marker
        s = _SKIP.match(mk.group("body"))
        if s is None or not s.group("reason").strip():
            problems.append(f"{name}:{line}: a docs-test marker must read '<!-- docs-test: skip (reason) -->', "
                            f"with a reason; got {mk.group(0)!r}")
            continue
        # it applies to the block that follows it, with only blank lines between
        nxt = next((f for f in fences if f[0] >= mk.end()), None)
        if nxt is None or nxt[2] is None or text[mk.end():nxt[0]].strip():
            problems.append(f"{name}:{line}: a docs-test skip marker must come right before a ```python block")
            continue
        b = blocks[nxt[2]]
        blocks[nxt[2]] = Block(b.page, b.line, b.code, " ".join(s.group("reason").split()))
    return blocks, problems


_PARSED = {_name(p): _parse(p) for p in _pages()}
_RUN = sorted(name for name, (blocks, _) in _PARSED.items() if any(b.skip is None for b in blocks))
_SKIPPED = [b for blocks, _ in _PARSED.values() for b in blocks if b.skip is not None]


def test_docs_have_runnable_blocks():
    # the glob finds the pages (a moved docs/ folder would silently test nothing)
    assert "README.md" in _RUN and "docs/index.md" in _RUN, _RUN


@pytest.mark.parametrize("page", sorted(_PARSED))
def test_docs_test_markers_are_valid(page):
    problems = _PARSED[page][1]
    assert not problems, "\n".join(problems)


if _SKIPPED:  # (an empty parametrisation would itself show up as a skip)

    @pytest.mark.parametrize("block", _SKIPPED, ids=[f"{b.page}:{b.line}" for b in _SKIPPED])
    def test_skipped_block(block):
        """Each block left out is listed (``pytest -rs`` shows it) with the reason its marker gives."""
        pytest.skip(f"{block.page}:{block.line}: {block.skip}")


def test_marker_parsing(tmp_path, monkeypatch):
    # the parser on a page written here: which blocks it finds, which it skips, which markers it refuses
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent("""\
        # A page
        ```python
        a = 1
        ```
        <!-- docs-test: skip (needs a GPU (any CUDA device)) -->

        ```python
        b = 2
        ```
        <!-- docs-test: skip -->
        ```py
        c = 3
        ```
        <!-- docs-test: skip (a reason) -->
        Some prose in between.

        ```python
        d = 4
        ```
        ````markdown
        <!-- docs-test: skip (quoted in an example, not a marker) -->
        ```python
        not run
        ```
        ````
        * a list item with a block:

            ```python
            e = 5
            ```
        <!-- docs-test: skip (before a shell block) -->
        ```bash
        ls
        ```
        """))
    blocks, problems = _parse(page)
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (3, "a = 1\n", None), (8, "b = 2\n", "needs a GPU (any CUDA device)"), (12, "c = 3\n", None),
        (18, "d = 4\n", None), (29, "e = 5\n", None)]
    assert len(problems) == 3, problems
    assert "page.md:10:" in problems[0] and "with a reason" in problems[0]
    assert "page.md:14:" in problems[1] and "right before" in problems[1]
    assert "page.md:31:" in problems[2] and "right before" in problems[2]


# Pages whose python blocks read what a shell command shown earlier on the page wrote: the test runs that command
# first (it must appear verbatim on the page, so the two cannot drift apart).
_SETUP = {
    # the quick sampler: GPT-2's architecture with random weights on the bundled Wikipedia text, ~30 s offline
    "docs/experiments/sampling.md": "maso experiment sample --quick --out runs/sample",
}


@pytest.mark.parametrize("page", _RUN)
def test_every_code_block_runs(page, tmp_path, monkeypatch):
    blocks = [b for b in _PARSED[page][0] if b.skip is None]
    # files a page writes (slice.png...) land in a temporary folder; the repository root stays importable
    monkeypatch.chdir(tmp_path)
    if page in _SETUP:
        command = _SETUP[page]
        assert command in (ROOT / page).read_text(encoding="utf-8"), f"{page} no longer shows `{command}`"
        proc = subprocess.run([sys.executable, "-m", "maso", *command.split()[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"`{command}` (setup of {page}) failed:\n{proc.stderr[-4000:]}"
    monkeypatch.syspath_prepend(str(ROOT))
    import matplotlib

    matplotlib.use("Agg")  # no window; a page may plot
    import matplotlib.pyplot as plt

    # a module of its own, so that classes defined on the page can be pickled (torch.save of a model)
    module = types.ModuleType("maso_docs_page")
    sys.modules[module.__name__] = module
    try:
        for b in blocks:
            try:
                exec(compile(b.code, f"{b.page}:{b.line}", "exec"), module.__dict__)
            except Exception as e:
                raise AssertionError(f"the block at {b.page}:{b.line} fails: {type(e).__name__}: {e}") from e
    finally:
        del sys.modules[module.__name__]
        plt.close("all")


# --- the built site ----------------------------------------------------------------------------------------


class _Assets(html.parser.HTMLParser):
    """Collects the URLs a page loads (scripts, style sheets, fonts, images, frames) and its API headings."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.headings: list[str] = []  # ids of mkdocstrings object headings
        self.signatures = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").split()
            if {"stylesheet", "preload", "modulepreload", "preconnect", "dns-prefetch", "prefetch"} & set(rel):
                self.loads.append(a["href"])
        classes = (a.get("class") or "").split()
        if tag in ("h2", "h3", "h4") and "doc-heading" in classes and a.get("id"):
            self.headings.append(a["id"])
        if "doc-signature" in classes:
            self.signatures += 1


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for mod in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return out, proc.stderr


def test_mkdocs_build_strict(site):
    _, log = site
    # strict mode already fails on these; this names them should a plugin only log them
    assert not re.search(r"^(WARNING|ERROR)", log, re.MULTILINE), log[-4000:]


def test_site_loads_nothing_from_other_sites(site):
    out, _ = site
    pages = sorted(out.rglob("*.html"))
    assert pages
    remote = []
    for p in pages:
        parser = _Assets()
        parser.feed(p.read_text(encoding="utf-8"))
        remote += [f"{p.relative_to(out)}: {u}" for u in parser.loads if re.match(r"^(https?:)?//", u)]
    for css in out.rglob("*.css"):  # fonts and images of style sheets
        remote += [f"{css.relative_to(out)}: {u}" for u in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)",
                                                                       css.read_text(encoding="utf-8"))]
    assert not remote, "the docs load from other sites (they must render offline):\n" + "\n".join(remote)


def test_maths_renderer_is_bundled(site):
    out, _ = site
    page = (out / "concepts" / "maso" / "index.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in page  # the page has maths for the renderer to typeset
    parser = _Assets()
    parser.feed(page)
    scripts = [u for u in parser.loads if "katex" in u]
    assert any(u.endswith("katex.min.js") for u in scripts) and any(u.endswith("katex.min.css") for u in scripts)
    for u in scripts:  # relative links that resolve to files of the built site
        assert (out / "concepts" / "maso" / u).resolve().is_file(), u
    css = out / "javascripts" / "katex" / "katex.min.css"
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css.read_text(encoding="utf-8")))
    assert fonts and all((css.parent / f).is_file() for f in fonts), fonts


def test_api_pages_have_headings_signatures_and_links(site):
    out, _ = site
    api = sorted((out / "api").glob("*/index.html"))
    assert api
    for p in api:
        text = p.read_text(encoding="utf-8")
        parser = _Assets()
        parser.feed(text)
        assert parser.headings, f"{p.relative_to(out)}: no object headings"
        assert parser.signatures, f"{p.relative_to(out)}: no signatures"
        # Sphinx roles are not mkdocstrings syntax: they would show literally
        roles = re.findall(r":(?:class|meth|func|attr|mod|exc|obj|data):`?[\w.~]*", text)
        assert not roles, f"{p.relative_to(out)}: Sphinx roles left in the docstrings: {sorted(set(roles))}"
        # an autorefs reference that did not resolve is left as a literal [text][identifier]
        left = re.findall(r"\[<code>[^<]*</code>\]\[[\w.]*\]", text)
        assert not left, f"{p.relative_to(out)}: unresolved cross-references: {left}"
    network = (out / "api" / "core" / "index.html").read_text(encoding="utf-8")
    for obj in ("maso.Network", "maso.Network.codes", "maso.Network.affine_at", "maso.Network.region_at"):
        assert f'id="{obj}"' in network, obj
    # cross-references became links to the objects' headings
    assert re.search(r'<a [^>]*href="[^"]*#maso\.', network)
