"""Finite scalar quantization (FSQ) with a straight-through estimator.

Each latent dimension i with L = `levels[i]` levels is snapped to one of the L codes k / h,
h = L // 2, k = -h ... L - 1 - h: for odd L the codes span [-1, 1] symmetrically, for even L they
span [-1, 1 - 1/h]. Zero is a code for every L (vector-quantize-pytorch's convention for even
levels): an encoder whose outputs start near zero starts at a code's centre, not on a rounding
boundary. With codes on a boundary (the symmetric grid of an even L has none at 0), half of all rows
changed code after a single PPO update of a freshly initialised demo policy (measured), which
made the action mean jump and the adaptive-KL schedule pin the learning rate at its floor.

Two bounds map a latent onto the level axis before rounding (`bound`):

- ``tanh`` (default; gear_sonic's, which uses vector-quantize-pytorch's FSQ):
  u = tanh(z + s) * (L - 1)(1 + 1e-3) / 2 - o, o = 0.5 for even L else 0, s = atanh(o / half
  range) so that z = 0 maps to u = 0. Near zero the slope is ~h (like ``clamp``); the gradient
  fades as a latent saturates, so PPO cannot push latents far past the code range.
- ``clamp``: u = clamp(z, -1, (L - 1 - h) / h) * h, gradient 1 everywhere (straight through the
  clamp too). Idempotent: q(q(z)) = q(z). Past the range a latent changes no code while PPO's
  gradient keeps pushing it outwards; in a 250-570 iteration demo run the encoders' latents drifted
  to |z| ~ 6 and the latent-alignment losses diverged (BENCHMARKS.md, "FSQ's tanh bound"). Checkpoints
  saved before `bound` existed load with ``clamp`` (eval.policy._migrate).

Either way the code is round(u) / h and the gradient passes straight through the rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

BOUNDS = ("tanh", "clamp")
TANH_EPS = 1e-3  # vector-quantize-pytorch's margin: tanh never reaches a rounding boundary past the ends


class FSQ(nn.Module):
    def __init__(self, levels: Sequence[int], num_tokens: int = 1, bound: str = "tanh"):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {levels}")
        if num_tokens < 1:
            raise ValueError(f"FSQ num_tokens must be >= 1, got {num_tokens}")
        if bound not in BOUNDS:
            raise ValueError(f"FSQ bound {bound!r}: expected one of {BOUNDS}")
        if bound == "tanh" and 2 in levels:
            # the tanh's zero sits at the end of a 2-level range, where its gradient is ~5e-4
            raise ValueError(f"FSQ levels {levels}: a level of 2 needs bound='clamp' (tanh needs >= 3)")
        self.levels = levels
        self.num_tokens = num_tokens
        self.bound = bound
        self.token_dim = len(levels)
        self.dim = num_tokens * len(levels)
        half = [v // 2 for v in levels]
        upper = [(v - 1 - h) / h for v, h in zip(levels, half)]
        half_range = [(v - 1) * (1 + TANH_EPS) / 2 for v in levels]
        offset = [0.5 if v % 2 == 0 else 0.0 for v in levels]
        shift = [math.atanh(o / r) for o, r in zip(offset, half_range)]
        for name, values in (
            ("_half", half),
            ("_upper", upper),
            ("_half_range", half_range),
            ("_offset", offset),
            ("_shift", shift),
        ):
            self.register_buffer(
                name, torch.tensor(values, dtype=torch.float32).repeat(num_tokens), persistent=False
            )

    @property
    def codebook_size(self) -> int:
        """Distinct codes per token: the product of the levels."""
        return math.prod(self.levels)

    def level_coordinate(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) bounded and scaled so the codes are the integers k: `round` of it is each
        dimension's code; a value near k + 0.5 is near a rounding boundary."""
        if self.bound == "tanh":
            r, o, s = (b.to(z.dtype) for b in (self._half_range, self._offset, self._shift))
            return torch.tanh(z + s) * r - o
        return torch.minimum(z.clamp_min(-1.0), self._upper.to(z.dtype)) * self._half.to(z.dtype)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """The forward value alone, without the straight-through trick: z (..., D) -> codes (..., D).
        Inference and ONNX export use this (Tanh or Clip/Min, Round and affine ops only), so an
        exported token is exactly a code."""
        return torch.round(self.level_coordinate(z)) / self._half.to(z.dtype)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> quantized (..., D) in [-1, 1], D = num_tokens * len(levels); the gradient is
        the bound's (tanh: ~1 near zero, fading at saturation; clamp: 1) through the rounding."""
        if (
            self.bound == "clamp"
        ):  # gradient 1 past the clamp too (the behaviour checkpoints were trained with)
            return z + (self.quantize(z) - z).detach()
        u = self.level_coordinate(z)
        return (u + (torch.round(u) - u).detach()) / self._half.to(z.dtype)

    def codes_to_indices(self, q: torch.Tensor) -> torch.Tensor:
        """Quantized (..., D) -> integer code index per token (..., num_tokens)."""
        if self.codebook_size >= 2**62:
            raise ValueError(f"codebook of {self.codebook_size} codes does not fit int64 indices")
        half = self._half[: self.token_dim].to(q.dtype)
        k = torch.round(q.reshape(*q.shape[:-1], self.num_tokens, self.token_dim) * half + half).long()
        basis = torch.tensor([math.prod(self.levels[:i]) for i in range(self.token_dim)], device=q.device)
        return (k * basis).sum(-1)
