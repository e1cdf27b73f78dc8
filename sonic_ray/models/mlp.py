"""MLPs built from sizes and an activation name."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, activation: str = "silu") -> nn.Sequential:
    """Linear layers in_dim -> hidden... -> out_dim with `activation` between (none after the last)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r}: expected one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)
