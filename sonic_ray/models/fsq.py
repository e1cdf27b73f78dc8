"""Finite scalar quantization (FSQ) with an exact straight-through estimator.

Each latent dimension i with L = `levels[i]` levels is snapped to one of the L codes k / h,
h = L // 2, k = -h ... L - 1 - h: for odd L the codes span [-1, 1] symmetrically, for even L they
span [-1, 1 - 1/h]. Zero is a code for every L (vector-quantize-pytorch's convention for even
levels): an encoder whose outputs start near zero starts at a code's centre, not on a rounding
boundary. With codes on a boundary (the symmetric grid of an even L has none at 0), half of all rows
changed code after a single PPO update of a freshly initialised demo policy (measured), which
made the action mean jump and the adaptive-KL schedule pin the learning rate at its floor.

The quantizer is idempotent (a code fed back in maps to itself) and the gradient passes straight
through (d out / d in = 1 everywhere). vector-quantize-pytorch's FSQ, which gear_sonic uses, bounds
inputs with a scaled tanh first; that makes q(q(x)) != q(x) and scales the gradient, so we keep this
small exact version instead (tested against both properties).
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
        half = [v // 2 for v in levels]
        self.register_buffer(
            "_half", torch.tensor(half, dtype=torch.float32).repeat(num_tokens), persistent=False
        )
        self.register_buffer(
            "_upper",
            torch.tensor([(v - 1 - h) / h for v, h in zip(levels, half)], dtype=torch.float32).repeat(
                num_tokens
            ),
            persistent=False,
        )

    @property
    def codebook_size(self) -> int:
        """Distinct codes per token: the product of the levels."""
        return math.prod(self.levels)

    def level_coordinate(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) clamped to the code range and scaled so the codes are the integers k:
        `round` of it is each dimension's code; a value near k + 0.5 is near a rounding boundary."""
        return torch.minimum(z.clamp_min(-1.0), self._upper.to(z.dtype)) * self._half.to(z.dtype)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """The forward value alone, without the straight-through trick: z (..., D) -> codes (..., D).
        Inference and ONNX export use this (Clip/Min, Round and affine ops only), so an exported
        token is exactly a code instead of z + (q - z) rounded once more."""
        return torch.round(self.level_coordinate(z)) / self._half.to(z.dtype)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> quantized (..., D) in [-1, 1], D = num_tokens * len(levels); gradient 1."""
        return z + (self.quantize(z) - z).detach()

    def codes_to_indices(self, q: torch.Tensor) -> torch.Tensor:
        """Quantized (..., D) -> integer code index per token (..., num_tokens)."""
        if self.codebook_size >= 2**62:
            raise ValueError(f"codebook of {self.codebook_size} codes does not fit int64 indices")
        half = self._half[: self.token_dim].to(q.dtype)
        k = torch.round(q.reshape(*q.shape[:-1], self.num_tokens, self.token_dim) * half + half).long()
        basis = torch.tensor([math.prod(self.levels[:i]) for i in range(self.token_dim)], device=q.device)
        return (k * basis).sum(-1)
