"""PyTorch import: a traced `torch.nn.Module` as a [`maso.Network`][], layer by layer, exactly.

[`from_torch`][maso.from_torch] converts a module (an MLP, a CNN, a DAG with residuals or concatenations);
[`SUPPORTED`][maso.torch.SUPPORTED] lists what it converts; [`mlp`][maso.mlp] builds a random MLP
directly. The torch modules maso adds (maxout, InceptionV1, ...) are in [`maso.nn`][].

Examples
--------
>>> import torch, maso
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
>>> maso.torch.from_torch(model, torch.zeros(1, 2)).n_units
3
"""

from maso.torch._convert import SUPPORTED, from_torch, mlp

__all__ = ["SUPPORTED", "from_torch", "mlp"]
