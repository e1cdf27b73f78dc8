"""Where episodes start: the `StartSampler` interface and the uniform sampler.

Every clip is cut into bins of `bin_size_frames` frames (the last bin of a clip may be shorter),
numbered clip by clip: bin b of clip c is `bin_offset[c] + b`. A sampler keeps, per bin, how many
episodes started there and how many failures (terminations, not time-outs) happened there;
SONIC's adaptive sampler turns those counts into bin weights. The uniform sampler keeps the
same counts so an adaptive sampler can take over from it (or read them for logging).
"""

from __future__ import annotations

from typing import Protocol

import torch


class StartSampler(Protocol):
    """Draws (clip, start frame) pairs and learns from episode outcomes."""

    bin_size_frames: int
    bin_offset: torch.Tensor  # (C,) first bin of each clip
    bin_episodes: torch.Tensor  # (K,) episodes started in each bin
    bin_failures: torch.Tensor  # (K,) failures that happened in each bin

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> clip_ids (n,) long, start_frames (n,) long (clip-local)."""
        ...

    def record(self, clip_ids: torch.Tensor, start_frames: torch.Tensor, end_frames: torch.Tensor,
               failed: torch.Tensor) -> None:
        """Finished episodes: clip (E,), start and last tracked frame (E,), failed (E,) bool."""
        ...


class UniformStartSampler:
    """Start frames uniform over every frame that has a successor (long clips are drawn more)."""

    def __init__(self, clip_frames: torch.Tensor, *, bin_size_frames: int = 50, device="cpu"):
        if bin_size_frames < 1:
            raise ValueError(f"bin_size_frames must be >= 1, got {bin_size_frames}")
        self.device = torch.device(device)
        self.clip_frames = clip_frames.to(self.device, torch.long)
        self.bin_size_frames = int(bin_size_frames)
        bins = (self.clip_frames + self.bin_size_frames - 1) // self.bin_size_frames
        self.bin_offset = torch.cumsum(bins, 0) - bins
        self.num_bins = int(bins.sum())
        self.bin_episodes = torch.zeros(self.num_bins, dtype=torch.long, device=self.device)
        self.bin_failures = torch.zeros(self.num_bins, dtype=torch.long, device=self.device)
        # Valid start frames per clip: all but the last (a 1-frame clip offers frame 0).
        valid = (self.clip_frames - 1).clamp_min(1)
        self._valid_end = torch.cumsum(valid, 0)
        self._valid_start = self._valid_end - valid
        self._total = int(self._valid_end[-1])
        self._bin_probs: torch.Tensor | None = None

    def bin_of(self, clip_ids: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return self.bin_offset[clip_ids] + frames // self.bin_size_frames

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.randint(0, self._total, (n,), generator=generator, device=self.device)
        clip = torch.searchsorted(self._valid_end, u, right=True)
        return clip, u - self._valid_start[clip]

    def record(self, clip_ids, start_frames, end_frames, failed) -> None:
        self.bin_episodes.index_add_(0, self.bin_of(clip_ids, start_frames),
                                     torch.ones_like(clip_ids, dtype=torch.long))
        self.bin_failures.index_add_(0, self.bin_of(clip_ids, end_frames), failed.to(torch.long))

    def bin_probabilities(self) -> torch.Tensor:
        """(K,) probability that an episode starts in each bin: its share of the valid start frames."""
        if self._bin_probs is None:  # fixed for this sampler: computed once
            frames = torch.arange(self._total, device=self.device)
            clip = torch.searchsorted(self._valid_end, frames, right=True)
            bins = self.bin_of(clip, frames - self._valid_start[clip])
            self._bin_probs = torch.bincount(bins, minlength=self.num_bins).to(torch.float64) / self._total
        return self._bin_probs

    def state_dict(self) -> dict:
        return {"bin_episodes": self.bin_episodes.cpu(), "bin_failures": self.bin_failures.cpu()}

    def load_state_dict(self, state: dict) -> None:
        for k in ("bin_episodes", "bin_failures"):
            if state[k].shape != getattr(self, k).shape:
                raise ValueError(f"sampler state {k}: shape {tuple(state[k].shape)}, expected "
                                 f"{tuple(getattr(self, k).shape)} (a different motion shard?)")
            getattr(self, k).copy_(state[k])


def start_entropy(sampler) -> float | None:
    """Normalised entropy of the sampler's start-bin distribution: 1 = uniform over bins, 0 = one bin.

    A dashboard reading: an adaptive sampler that concentrates on a few hard bins drives it down.
    None when the sampler offers no `bin_probabilities()` or has a single bin."""
    probs = getattr(sampler, "bin_probabilities", None)
    if probs is None:
        return None
    p = probs().to(torch.float64)
    if p.numel() < 2:
        return None
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * nz.log()).sum() / torch.log(torch.tensor(float(p.numel()), dtype=torch.float64)))
