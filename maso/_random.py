"""Seeded draws from torch's global generator without side effects (private)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["torch_seeded"]


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Seed torch's global CPU generator with ``seed`` inside the block, and restore its state after it.

    Module constructors (``nn.Linear``, ``nn.Conv2d``...) draw their initial weights from the global generator;
    this makes those draws a function of ``seed`` alone, and leaves the caller's random stream as it was, even
    when the block raises. CUDA generators are neither seeded nor restored (``fork_rng(devices=[])``): build
    modules on the CPU, then move them.

    Parameters
    ----------
    seed : int
        Any value ``torch.manual_seed`` accepts (an int in ``[-2**63, 2**64)``); callers validate it.

    Examples
    --------
    >>> import torch
    >>> before = torch.random.get_rng_state()
    >>> with torch_seeded(0):
    ...     a = torch.rand(2)
    >>> with torch_seeded(0):
    ...     b = torch.rand(2)
    >>> bool(torch.equal(a, b)), bool(torch.equal(torch.random.get_rng_state(), before))
    (True, True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
