"""Activation sampling: GPT-2 (or MiniLM) MLP activations and maso's codes, streamed to disk in chunks.

A store is a folder of chunk files (``chunk-000042.npz``) and a manifest. Each chunk holds, for a block of
sequences and every sampled layer ``l``, at the kept positions only:

* ``L{l}.in``: the MLP block's input (after ``ln_2``), the layer-L activation the exact walks start from;
* ``L{l}.pre``: the pre-activation (``c_fc`` output, 3072 wide for GPT-2 small), ``L{l}.post`` the GELU output;
* ``L{l}.code``: maso's hard code (``pre > 0``), bit-packed along the units (``np.packbits``);
* ``L{l}.soft``: maso's soft code, the probability that each unit is on (the GELU's own gate ``p(pre)``), float16;
* ``seq``, ``pos``, ``token``, ``article``: where each row comes from.

The forward pass runs batched on ``device``; the codes are computed there by the maso networks of the MLP
blocks (``maso.from_torch(block, ..., batch_dims=2)``) on the kept positions only, and only those rows leave
the device. A chunk is written to a temporary name and renamed, then the manifest is rewritten (also by
rename), so a run killed at any point resumes from its last whole chunk. ``shard=(i, n)`` makes a process
take chunks ``k`` with ``k % n == i`` and keep its own manifest; :func:`merge` joins the shards' manifests
once all are done (copy the shard folders into one first when they ran on different machines).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maso_experiments import ExperimentError

NAME = "sample"
TITLE = "Activation sampling: GPT-2 MLP activations and maso's codes, streamed to disk in resumable shards"
CLAIM = """\
Sharkey (reply on the Alignment Forum): "For GPT2-small, we selected 6/1024 tokens in each sequence (evenly
spaced apart and not including the first 100 tokens), and clustered on the entire MLP hidden dimension
(4 * 768)." The article gives no sampling code, throughput or dataset size for this step."""

#: {option: (default, quick value)}
OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": ("gpt2", "gpt2"),          # gpt2 | minilm
    "weights": (None, None),            # GPT-2 weights: a hub name ("gpt2") or a local directory
    "n_layer": (12, 2),                 # GPT-2 layers built when random (trained weights bring their own)
    "layers": ("all", "all"),           # comma-separated layer indices, or all
    "seq_len": (1024, 256),
    "n_seq": (0, 12),                   # sequences to sample; 0 = all the text gives (~1,000 of 1,024 tokens)
    "batch": (8, 4),                    # sequences per forward pass (and per chunk)
    "articles": (0, 150),               # Wikipedia summaries to tokenise; 0 = all 10,033
    "shard": ("0/1", "0/1"),            # i/n: this process takes chunks k with k % n == i
    "merge": (False, False),            # only join the shard manifests in --out (after all shards ran)
}

MANIFEST = "manifest.json"
ARTICLES = "articles.json"
FORMAT = "maso-activations/1"


# ------------------------------------------------------------------------------------------------ the store
def _manifest_name(shard: tuple[int, int]) -> str:
    i, n = shard
    return MANIFEST if n == 1 else f"manifest-shard{i}of{n}.json"


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def parse_shard(text: str | Sequence[int]) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)``, checked (``0 <= i < n``)."""
    if isinstance(text, str):
        i, slash, n = text.partition("/")
        try:
            if not slash:
                raise ValueError
            shard = (int(i), int(n))
        except ValueError:
            raise ExperimentError(f"shard must be 'i/n' with integers 0 <= i < n; got {text!r}") from None
    else:
        shard = (int(text[0]), int(text[1]))
    if not 0 <= shard[0] < shard[1]:
        raise ExperimentError(f"shard must be 'i/n' with 0 <= i < n; got {shard[0]}/{shard[1]}")
    return shard


def write_store(folder: str | Path, meta: dict[str, Any], n_chunks: int, produce: Callable[[int], dict[str, np.ndarray]],
                *, shard: tuple[int, int] = (0, 1), progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write chunks ``k`` of this shard (``k % n == i``) with ``produce(k)``, skipping those already written.

    ``meta`` describes the run (model, data, settings); an existing store with other ``meta`` is refused rather
    than mixed. Returns the manifest.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _manifest_name(shard)
    manifest = {"format": FORMAT, "meta": meta, "n_chunks": n_chunks, "shard": list(shard), "chunks": {}}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("meta") != json.loads(json.dumps(meta)) or old.get("n_chunks") != n_chunks:
            raise ExperimentError(f"{folder} holds a store of another run (its manifest's settings differ); "
                             "use another folder or delete it")
        manifest["chunks"] = {k: v for k, v in old["chunks"].items() if (folder / v["file"]).is_file()}
    mine = [k for k in range(n_chunks) if k % shard[1] == shard[0]]
    todo = [k for k in mine if str(k) not in manifest["chunks"]]
    if progress and len(todo) < len(mine):
        progress(f"resuming: {len(mine) - len(todo)} of {len(mine)} chunks already on disk")
    t0 = time.perf_counter()
    for j, k in enumerate(todo):
        arrays = produce(k)
        name = f"chunk-{k:06d}.npz"
        tmp = folder / (name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, folder / name)
        manifest["chunks"][str(k)] = {"file": name, "rows": len(arrays["seq"])}
        _write_json(path, manifest)
        if progress and (j + 1) % max(1, len(todo) // 10) == 0:
            progress(f"chunk {j + 1}/{len(todo)} ({time.perf_counter() - t0:.1f} s)")
    _write_json(path, manifest)
    return manifest


def merge(folder: str | Path) -> dict[str, Any]:
    """Join the shard manifests in ``folder`` into ``manifest.json``; every chunk of the run must be there."""
    folder = Path(folder)
    parts = sorted(folder.glob("manifest-shard*of*.json"))
    if not parts:
        raise ExperimentError(f"no shard manifests (manifest-shard*of*.json) in {folder}")
    loaded = [json.loads(p.read_text()) for p in parts]
    first = loaded[0]
    n = first["shard"][1]
    if any(m["meta"] != first["meta"] or m["n_chunks"] != first["n_chunks"] or m["shard"][1] != n for m in loaded):
        raise ExperimentError(f"the shard manifests in {folder} come from different runs")
    chunks: dict[str, Any] = {}
    for m in loaded:
        chunks.update({k: v for k, v in m["chunks"].items() if (folder / v["file"]).is_file()})
    missing = [k for k in range(first["n_chunks"]) if str(k) not in chunks]
    if missing:
        shards = sorted({k % n for k in missing})
        raise ExperimentError(f"{len(missing)} chunks are missing (shards {shards} of {n} unfinished); run them, "
                         "then merge again")
    manifest = {"format": FORMAT, "meta": first["meta"], "n_chunks": first["n_chunks"], "shard": [0, 1],
                "chunks": chunks, "merged_from": [p.name for p in parts]}
    _write_json(folder / MANIFEST, manifest)
    return manifest


def load(folder: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The store's arrays (``keys``, default all), concatenated over its chunks in order."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExperimentError(f"{path} is missing: the run is unfinished, or sharded and not merged yet")
    manifest = json.loads(path.read_text())
    if len(manifest["chunks"]) != manifest["n_chunks"]:
        raise ExperimentError(f"{folder}: {len(manifest['chunks'])} of {manifest['n_chunks']} chunks written; "
                         "resume the run first")
    parts: dict[str, list[np.ndarray]] = {}
    for k in range(manifest["n_chunks"]):
        with np.load(folder / manifest["chunks"][str(k)]["file"]) as z:
            for key in (keys if keys is not None else z.files):
                parts.setdefault(key, []).append(z[key])
    return {k: np.concatenate(v) for k, v in parts.items()}


def articles(folder: str | Path) -> Any:
    """The Wikipedia articles (``data.Articles``) a store was sampled from, in the order its ``article`` indexes."""
    from maso_experiments import data

    path = Path(folder) / ARTICLES
    if not path.is_file():
        raise ExperimentError(f"{path} is missing: the store was written by an older version; sample it again")
    return data.wiki_articles(titles=json.loads(path.read_text())["titles"])


def meta(folder: str | Path) -> dict[str, Any]:
    """The run description a store was written with."""
    return json.loads((Path(folder) / MANIFEST).read_text())["meta"]


def unpack_codes(packed: np.ndarray, n_units: int) -> np.ndarray:
    """Bit-packed hard codes (rows of ``np.packbits``) as a (n, n_units) uint8 0/1 array."""
    return np.unpackbits(packed, axis=-1, count=n_units)


# --------------------------------------------------------------------------------------------- the sampler
class MLPSampler:
    """Hooks a language model's MLP blocks and turns a batch of token ids into one chunk's arrays.

    Parameters
    ----------
    lm : data.LanguageModel
    layers : the MLP blocks to sample
    positions : the kept token positions of every sequence
    device : torch device of the forward pass and the codes
    soft : also compute soft codes
    """

    def __init__(self, lm: Any, layers: Sequence[int], positions: np.ndarray, device: str = "cpu", *,
                 soft: bool = True) -> None:
        import maso

        self.lm, self.layers, self.device, self.soft = lm, list(layers), torch.device(device), soft
        self.positions = torch.as_tensor(positions, device=self.device)
        self.model = lm.model.to(self.device)
        self._got: dict[str, torch.Tensor] = {}
        self.nets: dict[int, Any] = {}
        self._maso = maso
        self._hooks: list[Any] = []
        self._recording = False

    def __enter__(self) -> MLPSampler:  # noqa: PYI034 - not subclassed
        def grab(key: str, where: str) -> Callable[..., None]:
            def hook(module: Any, inputs: Any, output: Any) -> None:
                if not self._recording:  # e.g. maso.from_torch calling the block to check its conversion
                    return
                x = inputs[0] if where == "in" else output
                self._got[key] = x[:, self.positions]  # read at call time: MiniLM keeps other positions per text
            return hook

        for l in self.layers:
            self._hooks.append(self.lm.blocks[l].register_forward_hook(grab(f"L{l}.in", "in")))
            self._hooks.append(self.lm.pre[l].register_forward_hook(grab(f"L{l}.pre", "out")))
            self._hooks.append(self.lm.blocks[l].register_forward_hook(grab(f"L{l}.out", "out")))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's forward with the hooks: the kept rows of every hooked tensor, on the device."""
        self._got.clear()
        self._recording = True
        try:
            with torch.no_grad():
                self.model(input_ids=ids.to(self.device))
        finally:
            self._recording = False
        return dict(self._got)

    def net(self, l: int, example: torch.Tensor) -> Any:
        """Layer ``l``'s MLP block as a maso network (converted once, on the first batch; checked in float64)."""
        if l not in self.nets:
            self.nets[l] = self._maso.from_torch(self.lm.blocks[l], example, batch_dims=2)
        return self.nets[l]

    def codes(self, got: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """maso's hard (and soft) codes of every sampled layer's kept rows, computed on the device."""
        out = {}
        with torch.no_grad():
            for l in self.layers:
                x = got[f"L{l}.in"]
                net = self.net(l, x)
                out[f"L{l}.code"] = net.codes(x)
                if self.soft:
                    out[f"L{l}.soft"] = net.soft_codes(x)[..., 1]
        return out

    def layer_arrays(self, got: dict[str, torch.Tensor], codes: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Every sampled layer's rows as host arrays: input, pre-activation, GELU output, packed hard code, soft code."""
        out: dict[str, np.ndarray] = {}
        for l in self.layers:
            pre = got[f"L{l}.pre"].flatten(0, -2)
            out[f"L{l}.in"] = got[f"L{l}.in"].flatten(0, -2).float().cpu().numpy()
            out[f"L{l}.pre"] = pre.float().cpu().numpy()
            out[f"L{l}.post"] = self.lm.act_fns[l](pre).float().cpu().numpy()
            code = codes[f"L{l}.code"].flatten(0, -2).cpu().numpy().astype(bool)
            out[f"L{l}.code"] = np.packbits(code, axis=-1)
            if self.soft:
                out[f"L{l}.soft"] = codes[f"L{l}.soft"].flatten(0, -2).half().cpu().numpy()
        return out

    def chunk(self, ids: np.ndarray, seq0: int, article: np.ndarray) -> dict[str, np.ndarray]:
        """One chunk's arrays for the sequences ``ids`` (global indices from ``seq0``)."""
        got = self.forward(torch.as_tensor(ids))
        codes = self.codes(got)
        S, P = len(ids), len(self.positions)
        pos = self.positions.cpu().numpy()
        arrays: dict[str, np.ndarray] = {
            "seq": np.repeat(np.arange(seq0, seq0 + S), P), "pos": np.tile(pos, S),
            "token": ids[:, pos].reshape(-1), "article": article[:, pos].reshape(-1)}
        arrays.update(self.layer_arrays(got, codes))
        return arrays


def _layers(spec: Any, n: int) -> list[int]:
    if spec in (None, "all"):
        return list(range(n))
    items = [int(v) for v in str(spec).split(",")] if not isinstance(spec, (list, tuple)) else [int(v) for v in spec]
    bad = [v for v in items if not 0 <= v < n]
    if bad:
        raise ExperimentError(f"layers {bad} do not exist; the model has layers 0-{n - 1}")
    return items


def language_store(folder: str | Path, opt: dict[str, Any], *, device: str = "cpu", seed: int = 0,
                   rng: np.random.Generator | None = None, progress: Callable[[str], None] | None = None
                   ) -> tuple[Path, dict[str, Any]]:
    """Sample a language model's MLP activations and codes into ``folder`` (or resume); returns it and a summary.

    ``opt`` holds this module's :data:`OPTIONS` keys (``model``, ``weights``, ``layers``, ``seq_len``, ``n_seq``,
    ``batch``, ``articles``, ``shard``).
    """
    from maso_experiments import data

    shard = parse_shard(opt.get("shard", "0/1"))
    folder = Path(folder)
    n_articles = int(opt["articles"]) or None
    articles = data.wiki_articles(n_articles, rng=rng or np.random.default_rng(seed))
    if opt["model"] == "gpt2":
        lm = data.gpt2(opt["weights"], seed=seed, n_layer=int(opt["n_layer"]))
        tokenizer = data.gpt2_tokenizer()
    elif opt["model"] == "minilm":
        lm = data.minilm()
    else:
        raise ExperimentError(f"model must be 'gpt2' or 'minilm'; got {opt['model']!r}")
    seq_len = int(opt["seq_len"])
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / ARTICLES).exists():  # the exact articles, so that users of the store get topics and contexts
        _write_json(folder / ARTICLES, {"titles": list(articles.titles)})
    if opt["model"] == "minilm":
        return _minilm_store(folder, lm, articles, opt, device=device, seed=seed, shard=shard, progress=progress)
    stream = data.token_stream(articles, tokenizer, seq_len, int(opt["n_seq"]) or None)
    positions = data.kept_positions(seq_len)
    layers = _layers(opt["layers"], len(lm.blocks))
    batch = int(opt["batch"])
    n_chunks = -(-len(stream.ids) // batch)
    meta_ = {"model": lm.describe, "trained": lm.trained, "data": articles.describe, "seq_len": seq_len,
             "n_seq": len(stream.ids), "positions": positions.tolist(), "layers": layers, "batch": batch,
             "seed": seed, "topics": sorted(set(articles.topics)), "units": int(lm.pre[0].weight.shape[-1]
                                                                                if opt["model"] == "gpt2" else 0)}
    t0 = time.perf_counter()
    with MLPSampler(lm, layers, positions, device) as sampler:
        def produce(k: int) -> dict[str, np.ndarray]:
            s = slice(k * batch, (k + 1) * batch)
            return sampler.chunk(stream.ids[s], k * batch, stream.article[s])
        manifest = write_store(folder, meta_, n_chunks, produce, shard=shard, progress=progress)
    seconds = time.perf_counter() - t0
    done = sum(1 for k in manifest["chunks"] if int(k) % shard[1] == shard[0])
    summary = {"sequences": len(stream.ids), "tokens_seen": int(len(stream.ids) * seq_len), "chunks": n_chunks,
               "chunks_this_shard": done, "seconds": seconds, "shard": f"{shard[0]}/{shard[1]}"}
    (folder / "tokens.npz").exists() or np.savez(folder / "tokens.npz", ids=stream.ids, article=stream.article)
    return folder, summary


def _minilm_store(folder: Path, lm: Any, articles: Any, opt: dict[str, Any], *, device: str, seed: int,
                  shard: tuple[int, int], progress: Callable[[str], None] | None) -> tuple[Path, dict[str, Any]]:
    """MiniLM on the articles one by one (a sentence encoder: 512 tokens at most), its own WordPiece tokens;
    keeps 6 evenly spaced positions after the first 10 of each article that has at least 16 tokens."""
    from maso_experiments import data

    tok = data.minilm_tokenizer()
    enc = tok(list(articles.texts), truncation=True, max_length=128, padding="max_length", return_tensors="np")
    lengths = enc["attention_mask"].sum(1)
    use = np.flatnonzero(lengths >= 16)[: (int(opt["n_seq"]) or None)]
    layers = _layers(opt["layers"], len(lm.blocks))
    batch = int(opt["batch"])
    n_chunks = -(-len(use) // batch)
    meta_ = {"model": lm.describe, "trained": True, "data": articles.describe, "seq_len": 128,
             "n_seq": len(use), "positions": "6 evenly spaced after the first 10 of each article",
             "layers": layers, "batch": batch, "seed": seed, "topics": sorted(set(articles.topics)), "units": 1536}
    t0 = time.perf_counter()
    with MLPSampler(lm, layers, data.kept_positions(127, skip=10), device) as sampler:
        def produce(k: int) -> dict[str, np.ndarray]:
            out: dict[str, list[np.ndarray]] = {}
            for r in use[k * batch:(k + 1) * batch]:
                pos = data.kept_positions(int(lengths[r]) - 1, skip=10)
                sampler.positions = torch.as_tensor(pos, device=sampler.device)
                got = sampler.forward(torch.as_tensor(enc["input_ids"][r:r + 1]))
                parts = {"seq": np.full(len(pos), r), "pos": pos, "token": enc["input_ids"][r, pos],
                         "article": np.full(len(pos), r), **sampler.layer_arrays(got, sampler.codes(got))}
                for key, v in parts.items():
                    out.setdefault(key, []).append(np.asarray(v))
            return {key: np.concatenate(v) for key, v in out.items()}

        manifest = write_store(folder, meta_, n_chunks, produce, shard=shard, progress=progress)
    done = sum(1 for k in manifest["chunks"] if int(k) % shard[1] == shard[0])
    return folder, {"sequences": len(use), "tokens_seen": int(lengths[use].sum()), "chunks": n_chunks,
                    "chunks_this_shard": done, "seconds": time.perf_counter() - t0, "shard": f"{shard[0]}/{shard[1]}"}


# ------------------------------------------------------------------------------------------ the experiment
def run(ctx: Any) -> None:
    """Sample into ``ctx.out/activations`` (resumable), check the stored codes, report throughput."""
    folder = ctx.out / "activations"
    if ctx.opt["merge"]:
        manifest = merge(folder)
        ctx.results["merged"] = {"chunks": manifest["n_chunks"], "from": manifest["merged_from"]}
        ctx.describe(store=str(folder), **{k: v for k, v in manifest["meta"].items() if k in ("model", "data")})
        return
    folder, summary = language_store(folder, ctx.opt, device=ctx.device, seed=ctx.seed, rng=ctx.rng(0),
                                     progress=ctx.log)
    ctx.results["sampling"] = summary
    ctx.results["tokens_per_second"] = summary["tokens_seen"] * summary["chunks_this_shard"] / max(
        summary["chunks"], 1) / max(summary["seconds"], 1e-9)
    m = json.loads((folder / _manifest_name(parse_shard(ctx.opt["shard"]))).read_text())["meta"]
    ctx.describe(model=m["model"], data=m["data"], store=str(folder),
                 sampling=f"{len(m['positions']) if isinstance(m['positions'], list) else 6} positions per sequence "
                          f"({m['positions']}), layers {m['layers']}")
    ctx.choice("Positions np.linspace(100, seq_len - 1, 6).round(): our reading of 'evenly spaced apart and not "
               "including the first 100 tokens'.")
    ctx.choice("Hard code = 1[pre-activation > 0] (what SplineLLM and grok-adversarial do; the article does not say "
               "how it binarised GELU). Soft code = the GELU's own gate p(pre), with gelu(u) = u * p(u) exactly.")
    if parse_shard(ctx.opt["shard"])[1] > 1:
        ctx.compare("(sampling)", f"shard {ctx.opt['shard']} written; run the other shards, then --option merge=true",
                    "not tested here: a sharded run is checked after the merge")
        return
    got = load(folder, [f"L{m['layers'][0]}.pre", f"L{m['layers'][0]}.code"])
    pre = got[f"L{m['layers'][0]}.pre"]
    code = unpack_codes(got[f"L{m['layers'][0]}.code"], pre.shape[1])
    agree = float(np.mean(code == (pre > 0)))
    ctx.results["stored_rows"] = len(pre)
    ctx.results["codes_agree_with_pre_sign"] = agree
    ctx.compare("6 of every 1,024 tokens, after the first 100, clustered on the 3,072-wide MLP hidden layer",
                f"{len(pre)} rows from {summary['sequences']} sequences of {m['seq_len']} tokens; maso's codes agree "
                f"with sign(pre) on {agree:.6f} of the entries", "same sampling rule" if m["seq_len"] == 1024
                else f"same rule on {m['seq_len']}-token sequences (quick settings)")
