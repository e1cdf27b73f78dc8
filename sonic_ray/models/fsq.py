"""Finite scalar quantization (FSQ) with an exact straight-through estimator.

Each latent dimension i is snapped to one of `levels[i]` evenly spaced values in [-1, 1]
(both ends included), so the quantizer is idempotent: a code fed back in maps to itself. The
gradient passes straight through (d out / d in = 1 everywhere). vector-quantize-pytorch's FSQ,
which gear_sonic uses, bounds inputs with a scaled tanh first; that makes q(q(x)) != q(x) and
scales the gradient, so we keep this small exact version instead (tested against both properties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class FSQ(nn.Module):
    def __init__(self, levels: Sequence[int], num_tokens: int = 1):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {levels}")
        if num_tokens < 1:
            raise ValueError(f"FSQ num_tokens must be >= 1, got {num_tokens}")
        self.levels = levels
        self.num_tokens = num_tokens
        self.token_dim = len(levels)
        self.dim = num_tokens * len(levels)
        self.register_buffer("_steps", torch.tensor([v - 1 for v in levels], dtype=torch.float32).repeat(num_tokens),
                             persistent=False)

    @property
    def codebook_size(self) -> int:
        """Distinct codes per token: the product of the levels."""
        return math.prod(self.levels)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """The forward value alone, without the straight-through trick: z (..., D) -> codes (..., D).
        Inference and ONNX export use this (Clip, Round and affine ops only), so an exported token
        is exactly on the grid instead of z + (q - z) rounded once more."""
        steps = self._steps.to(z.dtype)
        k = torch.round((z.clamp(-1.0, 1.0) + 1.0) * 0.5 * steps)
        return k * 2.0 / steps - 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> quantized (..., D) in [-1, 1], D = num_tokens * len(levels); gradient 1."""
        return z + (self.quantize(z) - z).detach()

    def codes_to_indices(self, q: torch.Tensor) -> torch.Tensor:
        """Quantized (..., D) -> integer code index per token (..., num_tokens)."""
        if self.codebook_size >= 2**62:
            raise ValueError(f"codebook of {self.codebook_size} codes does not fit int64 indices")
        steps = self._steps[: self.token_dim].to(q.dtype)
        k = torch.round((q.reshape(*q.shape[:-1], self.num_tokens, self.token_dim) + 1.0) * 0.5 * steps).long()
        basis = torch.tensor([math.prod(self.levels[:i]) for i in range(self.token_dim)], device=q.device)
        return (k * basis).sum(-1)
