"""Running mean/std normaliser whose statistics live in buffers (saved with the model).

Updates use the parallel-variance merge (Chan et al.), so statistics from several learners or
batches combine exactly: `update(x)` merges a batch; `update_from_moments(count, mean, m2)` merges
statistics computed elsewhere (e.g. summed across DDP learners).
"""

from __future__ import annotations

import torch
from torch import nn


class RunningNormalizer(nn.Module):
    def __init__(self, dim: int, *, eps: float = 1e-8, clip: float = 10.0):
        super().__init__()
        self.eps, self.clip = eps, clip
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))

    @property
    def var(self) -> torch.Tensor:
        """Running variance; 1 before any data (an empty normaliser only re-centres nothing)."""
        return torch.where(self.count > 0, self.m2 / self.count.clamp_min(1.0), torch.ones_like(self.m2))

    @staticmethod
    def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(count, mean (D,), m2 (D,)) of a batch x (M, D), in float64."""
        x = x.detach().to(torch.float64).reshape(-1, x.shape[-1])
        mean = x.mean(0)
        return (
            torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device),
            mean,
            ((x - mean) ** 2).sum(0),
        )

    @torch.no_grad()
    def update_from_moments(self, count: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor) -> None:
        if float(count) <= 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * (count / total)
        self.m2 += m2 + delta**2 * (self.count * count / total)
        self.count.copy_(total)

    def update(self, x: torch.Tensor) -> None:
        self.update_from_moments(*self.moments(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(self.var + self.eps).to(x.dtype)
        return ((x - self.mean.to(x.dtype)) / std).clamp(-self.clip, self.clip)
