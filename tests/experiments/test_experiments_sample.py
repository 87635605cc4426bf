"""The activation store of the experiments: contents checked against a plain forward, resume, shards, merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from exp_util import experiments, run_quick

from maso.cli import main

exps = experiments()
from maso_experiments import ExperimentError, data, sample


def _toy_produce(calls: list[int], fail_at: int | None = None):
    def produce(k: int) -> dict[str, np.ndarray]:
        if k == fail_at:
            raise KeyboardInterrupt  # a run stopped in the middle of a chunk
        calls.append(k)
        rng = np.random.default_rng(k)
        return {"seq": np.full(3, k), "x": rng.normal(size=(3, 4))}
    return produce


def test_quick_store_matches_a_plain_forward(tmp_path):
    record = run_quick("sample", tmp_path)
    res = record["results"]
    assert res["codes_agree_with_pre_sign"] == 1.0
    store = tmp_path / "activations"
    m = sample.meta(store)
    got = sample.load(store)
    n_rows = m["n_seq"] * len(m["positions"])
    assert res["stored_rows"] == n_rows == len(got["seq"])
    # Independent: GPT-2 rebuilt from its seed, run without hooks, pre-activations recomputed from its weights.
    lm = data.gpt2(None, seed=0, n_layer=2)
    tokens = np.load(store / "tokens.npz")["ids"]
    pos = np.asarray(m["positions"])
    with torch.no_grad():
        hidden = lm.model(input_ids=torch.as_tensor(tokens[:2]), output_hidden_states=True).hidden_states
        block = lm.model.transformer.h[1]
        x_in = block.ln_2(hidden[1] + block.attn(block.ln_1(hidden[1]))[0])     # block 1's MLP input
        pre = x_in @ block.mlp.c_fc.weight + block.mlp.c_fc.bias
    rows = got["seq"] < 2
    np.testing.assert_allclose(got["L1.in"][rows], x_in[:, pos].reshape(-1, 768).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["L1.pre"][rows], pre[:, pos].reshape(-1, 3072).numpy(), rtol=1e-4, atol=1e-4)
    assert np.array_equal(got["pos"][rows], np.tile(pos, 2)) and np.array_equal(got["token"][rows], tokens[:2, pos].ravel())
    # Codes: the sign of the pre-activation; soft codes: gelu_new's gate, so post = pre * soft (float16 soft).
    code = sample.unpack_codes(got["L0.code"], 3072)
    assert np.array_equal(code, (got["L0.pre"] > 0).astype(np.uint8))
    soft = got["L0.soft"].astype(np.float64)
    assert soft.min() >= 0 and soft.max() <= 1
    np.testing.assert_allclose(got["L0.post"], got["L0.pre"] * soft, atol=2e-3 * np.abs(got["L0.pre"]).max())
    clear = np.abs(got["L0.pre"]) > 1e-2
    assert np.array_equal((soft > 0.5)[clear], code.astype(bool)[clear])
    # Every kept token has a topic (or is a separator) and a readable context with the token marked.
    assert set(m["topics"]) >= {data.wiki_articles().topics[a] for a in got["article"] if a >= 0}


def test_store_resumes_after_a_stop_and_matches_an_uninterrupted_run(tmp_path):
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        sample.write_store(tmp_path / "a", {"run": 1}, 5, _toy_produce(calls, fail_at=3))
    assert calls == [0, 1, 2] and sorted(p.name for p in (tmp_path / "a").glob("chunk-*")) == [
        "chunk-000000.npz", "chunk-000001.npz", "chunk-000002.npz"]  # no half-written chunk left as a chunk
    sample.write_store(tmp_path / "a", {"run": 1}, 5, _toy_produce(calls))
    assert calls == [0, 1, 2, 3, 4]  # only the missing chunks were computed again
    sample.write_store(tmp_path / "b", {"run": 1}, 5, _toy_produce([]))
    a, b = sample.load(tmp_path / "a"), sample.load(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ExperimentError, match="another run"):
        sample.write_store(tmp_path / "a", {"run": 2}, 5, _toy_produce([]))


def test_shards_split_the_chunks_and_merge_into_the_same_store(tmp_path):
    one, two = [], []
    sample.write_store(tmp_path / "s", {"run": 1}, 7, _toy_produce(one), shard=(0, 2))
    with pytest.raises(ExperimentError, match=r"shards \[1\] of 2 unfinished"):
        sample.merge(tmp_path / "s")
    with pytest.raises(ExperimentError, match="not merged"):
        sample.load(tmp_path / "s")
    sample.write_store(tmp_path / "s", {"run": 1}, 7, _toy_produce(two), shard=(1, 2))
    assert one == [0, 2, 4, 6] and two == [1, 3, 5]
    sample.merge(tmp_path / "s")
    sample.write_store(tmp_path / "whole", {"run": 1}, 7, _toy_produce([]))
    a, b = sample.load(tmp_path / "s"), sample.load(tmp_path / "whole")
    assert all(np.array_equal(a[k], b[k]) for k in b)
    for bad in ("2/2", "1", "a/b", "-1/3"):
        with pytest.raises(ExperimentError):
            sample.parse_shard(bad)


def test_a_killed_sampling_run_resumes_from_its_last_chunk(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "maso", "experiment", "sample", "--quick", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "activations" / "chunk-000000.npz"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    manifest = json.loads((out / "activations" / "manifest.json").read_text())
    written = len(manifest["chunks"])
    assert 1 <= written <= manifest["n_chunks"]
    assert main(["experiment", "sample", "--quick", "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())
    assert record["results"]["codes_agree_with_pre_sign"] == 1.0
    fresh = tmp_path / "fresh"
    assert main(["experiment", "sample", "--quick", "--out", str(fresh)]) == 0
    a, b = sample.load(out / "activations"), sample.load(fresh / "activations")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k].astype(np.float64), b[k].astype(np.float64), rtol=0, atol=1e-6, err_msg=k)


def test_cli_sharded_sampling_and_merge(tmp_path, capsys):
    out = str(tmp_path / "sh")
    small = ["--option", "n_seq=4", "--option", "batch=2"]
    assert main(["experiment", "sample", "--quick", "--out", out, "--shard", "1/2", *small]) == 0
    assert main(["experiment", "sample", "--quick", "--out", out, "--option", "merge=true", *small]) == 2
    assert "shards [0] of 2 unfinished" in capsys.readouterr().err
    assert main(["experiment", "sample", "--quick", "--out", out, "--shard", "0/2", *small]) == 0
    assert main(["experiment", "sample", "--quick", "--out", out, "--option", "merge=true", *small]) == 0
    got = sample.load(Path(out) / "activations", ["seq"])
    assert np.array_equal(got["seq"], np.repeat(np.arange(4), 6))


def test_cli_experiment_list_and_mistakes(capsys):
    assert main(["experiment", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == list(exps.experiments()) and {"e1_clusters", "e3_between", "e5_slice", "sample"} <= set(names)
    for argv, message in [
        (["experiment"], "give an experiment name"),
        (["experiment", "nope"], "no experiment 'nope'"),
        (["experiment", "sample", "--option", "bogus=1"], "KEY one of"),
        (["experiment", "sample", "--shard", "2/2"], "expected I/N"),
        (["experiment", "e5_slice", "--shard", "0/2"], "does not shard"),
        (["experiment", "sample", "--device", "cuda:7"], "no CUDA device") if not torch.cuda.is_available() else
        (["experiment", "sample", "--option", "model=bert"], "model must be"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_every_experiment_names_its_weights_the_same_way():
    """Trained weights for a user who has them: GPT-2's are ``weights``, InceptionV1's ``inception_weights``."""
    import inspect

    for name in exps.MODULES:
        mod = exps.module(name)
        helpers = [m for m in vars(mod).values() if inspect.ismodule(m) and m.__name__.startswith("maso_experiments._")]
        source = inspect.getsource(mod) + "".join(inspect.getsource(m) for m in helpers)
        assert mod.NAME == name and mod.TITLE and mod.CLAIM.strip()
        for default, quick in mod.OPTIONS.values():
            assert type(default) is type(quick) or None in (default, quick), (name, default, quick)
        if "data.gpt2(" in source:
            assert "weights" in mod.OPTIONS, name
        if "data.inception(" in source:
            assert "inception_weights" in mod.OPTIONS, name


def test_minilm_store_holds_erf_gelu_codes_and_its_articles(tmp_path):
    """The trained stand-in's store: BERT's GELU is the erf form, so post = pre * Phi(pre) and soft = Phi(pre)."""
    from scipy.special import ndtr

    opt = {"model": "minilm", "weights": None, "n_layer": 6, "layers": "1", "seq_len": 128, "n_seq": 3, "batch": 2,
           "articles": 12, "shard": "0/1"}
    folder, summary = sample.language_store(tmp_path / "m", opt, seed=0, rng=np.random.default_rng(0))
    got = sample.load(folder)
    pre = got["L1.pre"].astype(np.float64)
    assert len(pre) == 3 * 6 and pre.shape[1] == 1536 and summary["sequences"] == 3
    assert np.array_equal(sample.unpack_codes(got["L1.code"], 1536), (pre > 0).astype(np.uint8))
    np.testing.assert_allclose(got["L1.post"], pre * ndtr(pre), atol=1e-4)
    np.testing.assert_allclose(got["L1.soft"].astype(np.float64), ndtr(pre), atol=1e-3)
    arts = sample.articles(folder)
    assert len(arts.titles) == 12 and set(got["article"]) <= set(range(12))


def test_e1_reuses_a_sampled_store_with_its_topics(tmp_path):
    """E1 on a store sampled earlier (``store=DIR``): the rows it clusters are the store's, with their topics."""
    run_quick("sample", tmp_path / "s")
    store = tmp_path / "s" / "activations"
    record = run_quick("e1_clusters", tmp_path / "e1", source="gpt2", store=str(store), layer=1)
    rows = sample.load(store, ["article"])["article"]
    gpt2 = record["results"]["gpt2"]
    assert gpt2["rows"] == len(rows)
    assert str(store) in json.dumps(record["setup"])
    # The labels are the articles' topics, read from the store: the majority share E1 reports as its baseline.
    topics = sample.articles(store).topics
    labels = [topics[a] if a >= 0 else "<|endoftext|>" for a in rows]
    share = max(labels.count(t) for t in set(labels)) / len(labels)
    for row in gpt2["sweep"].values():
        assert row["activations"]["majority_baseline_purity"] == pytest.approx(share)
