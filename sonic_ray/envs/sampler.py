"""Where episodes start: the `StartSampler` interface, the uniform sampler and SONIC's adaptive one.

Layout. A clip of F frames offers V = max(F - 1, 1) start frames (every frame with a successor);
they are cut into bins of `bin_size_frames` (the last bin of a clip may be shorter), numbered clip
by clip: bin b of clip c is `bin_offset[c] + b`. A frame past the last start frame (the clip's
final frame) belongs to the clip's last bin, so every bin can be started in.

Counts, per bin: `bin_episodes` episodes that started there, `bin_visits` episodes that covered it
(start bin through end bin), `bin_failures` failures (terminations, never time-outs) that happened
there. A bin's failure rate is failures / visits: the chance an episode that reached the bin
failed in it. The samplers also keep the counts gathered since the last `pop_report()`; the
runner ships those (keyed by *global* bin ids, `global_bins`, so counts from every runner's shard
land in one table) to the stats aggregator, which smooths them (`sampler_stats.FailureStats`) and
sends back capped failure rates for every bin (`set_rates`).

Adaptive sampling (SONIC): with probability `uniform_ratio` a start is drawn like the uniform
sampler (uniform over start frames); otherwise a bin is drawn with probability proportional to its
capped failure rate, a frame uniformly inside it, and the frame is moved back by a uniform
0..`window_frames` frames (clamped to the clip start), so the episode reaches the failure point
with some run-up. Without any failure seen yet every start is uniform.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

TOP_BIN_FRACTION = 0.1  # sampler/top_bin_share: probability mass on this fraction of bins (highest rates)


class StartSampler(Protocol):
    """Draws (clip, start frame) pairs and learns from episode outcomes."""

    bin_size_frames: int
    bin_offset: torch.Tensor  # (C,) first bin of each clip
    bin_episodes: torch.Tensor  # (K,) episodes started in each bin
    bin_failures: torch.Tensor  # (K,) failures that happened in each bin

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> clip_ids (n,) long, start_frames (n,) long (clip-local)."""
        ...

    def record(
        self,
        clip_ids: torch.Tensor,
        start_frames: torch.Tensor,
        end_frames: torch.Tensor,
        failed: torch.Tensor,
    ) -> None:
        """Finished episodes: clip (E,), start and last tracked frame (E,), failed (E,) bool."""
        ...


def bins_per_clip(clip_frames, bin_size_frames: int) -> np.ndarray:
    """(C,) number of bins of each clip: ceil(max(F - 1, 1) / bin_size_frames)."""
    valid = np.maximum(np.asarray(clip_frames, dtype=np.int64) - 1, 1)
    return (valid + bin_size_frames - 1) // bin_size_frames


def global_bin_ids(all_clip_frames, store_index, bin_size_frames: int) -> np.ndarray:
    """(K_local,) global bin id of every bin of the clips `store_index` (a shard, in shard order),
    in a layout over all clips of the store (`all_clip_frames` (C_all,) control-rate frames)."""
    nb = bins_per_clip(all_clip_frames, bin_size_frames)
    offset = np.concatenate(([0], np.cumsum(nb)[:-1]))
    idx = np.asarray(store_index, dtype=np.int64)
    counts = nb[idx]
    local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(offset[idx], counts) + local


class BinnedStartSampler:
    """Bin layout, outcome counts, the report to the aggregator and the rates it sends back."""

    def __init__(
        self, clip_frames: torch.Tensor, *, bin_size_frames: int = 50, global_bins=None, device="cpu"
    ):
        if bin_size_frames < 1:
            raise ValueError(f"bin_size_frames must be >= 1, got {bin_size_frames}")
        self.device = torch.device(device)
        self.clip_frames = torch.as_tensor(clip_frames).to(self.device, torch.long)
        self.bin_size_frames = int(bin_size_frames)
        valid = (self.clip_frames - 1).clamp_min(1)  # start frames per clip
        bins = torch.as_tensor(
            bins_per_clip(self.clip_frames.cpu().numpy(), self.bin_size_frames), device=self.device
        )
        self.bin_offset = torch.cumsum(bins, 0) - bins
        self.num_bins = int(bins.sum())
        self._last_valid = valid - 1
        self.bin_clip = torch.repeat_interleave(torch.arange(len(bins), device=self.device), bins)  # (K,)
        local = torch.arange(self.num_bins, device=self.device) - self.bin_offset[self.bin_clip]
        self.bin_start = local * self.bin_size_frames  # (K,) first start frame of each bin
        self.bin_valid = (
            torch.minimum(self.bin_start + self.bin_size_frames, valid[self.bin_clip]) - self.bin_start
        )
        self._valid_end = torch.cumsum(valid, 0)
        self._valid_start = self._valid_end - valid
        self._total = int(self._valid_end[-1])
        self.uniform_probs = self.bin_valid.to(torch.float64) / self._total  # (K,) frame-uniform bin mass
        if global_bins is None:
            global_bins = torch.arange(self.num_bins)
        self.global_bins = torch.as_tensor(np.asarray(global_bins), dtype=torch.long, device=self.device)
        if self.global_bins.shape != (self.num_bins,):
            raise ValueError(
                f"global_bins: shape {tuple(self.global_bins.shape)}, expected ({self.num_bins},)"
            )
        self._global_bins_np = self.global_bins.cpu().numpy()
        zeros = lambda dtype=torch.long: torch.zeros(self.num_bins, dtype=dtype, device=self.device)  # noqa: E731
        self.bin_episodes, self.bin_visits, self.bin_failures = zeros(), zeros(), zeros()
        self._new_visits, self._new_failures = zeros(), zeros()
        self.bin_rates = zeros(torch.float32)  # capped failure rates from the aggregator

    # ---- counts -------------------------------------------------------------------------------
    def bin_of(self, clip_ids: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        frames = torch.minimum(frames, self._last_valid[clip_ids])
        return self.bin_offset[clip_ids] + frames // self.bin_size_frames

    def record(self, clip_ids, start_frames, end_frames, failed) -> None:
        first, last = self.bin_of(clip_ids, start_frames), self.bin_of(clip_ids, end_frames)
        one = torch.ones_like(first)
        self.bin_episodes.index_add_(0, first, one)
        diff = torch.zeros(self.num_bins + 1, dtype=torch.long, device=self.device)
        diff.index_add_(0, first, one)
        diff.index_add_(0, last + 1, -one)
        visits = torch.cumsum(diff, 0)[:-1]  # every bin from start bin to end bin, once per episode
        fails = torch.zeros_like(visits).index_add_(0, last, failed.to(torch.long))
        for total, new, delta in (
            (self.bin_visits, self._new_visits, visits),
            (self.bin_failures, self._new_failures, fails),
        ):
            total += delta
            new += delta

    def pop_report(self) -> dict[str, np.ndarray]:
        """Counts since the last call, sparse: {"bins": global ids (M,), "visits" (M,), "failures" (M,)}."""
        touched = torch.nonzero(self._new_visits | self._new_failures).squeeze(-1)
        report = {
            "bins": self.global_bins[touched].cpu().numpy(),
            "visits": self._new_visits[touched].cpu().numpy(),
            "failures": self._new_failures[touched].cpu().numpy(),
        }
        self._new_visits.zero_()
        self._new_failures.zero_()
        return report

    def set_rates(self, global_rates) -> None:
        """Capped failure rates of every global bin (K_global,); keeps this sampler's bins."""
        rates = np.asarray(global_rates)  # may be a read-only array straight from Ray's object store
        if rates.ndim != 1 or int(self._global_bins_np.max()) >= len(rates):
            raise ValueError(
                f"set_rates: {rates.shape} rates do not cover this sampler's global bins "
                f"(max id {int(self._global_bins_np.max())}); a different motion store or bin size?"
            )
        self.bin_rates = torch.from_numpy(rates[self._global_bins_np].astype(np.float32)).to(self.device)
        self._rates_changed()

    def _rates_changed(self) -> None:
        """Hook: bin_rates were replaced (set_rates) or overwritten (load_state_dict)."""

    # ---- distribution and metrics -------------------------------------------------------------
    def probabilities(self) -> torch.Tensor:
        """(K,) float64 probability that a start is drawn in each bin (before any window shift)."""
        return self.uniform_probs

    def metrics(self) -> dict[str, float]:
        """sampler/entropy: entropy of `probabilities()` / log(K) (1 = uniform over bins);
        sampler/top_bin_share: its mass on the 10% of bins with the highest failure rates (only
        once rates are known); sampler/failing_bin_frac: share of bins with a failure rate > 0."""
        p = self.probabilities()
        nz = p[p > 0]
        entropy = float(-(nz * nz.log()).sum()) / math.log(self.num_bins) if self.num_bins > 1 else 1.0
        out = {
            "sampler/entropy": entropy,
            "sampler/failing_bin_frac": float((self.bin_rates > 0).float().mean()),
        }
        if bool((self.bin_rates > 0).any()):
            k = max(1, math.ceil(TOP_BIN_FRACTION * self.num_bins))
            top = torch.topk(self.bin_rates, k).indices
            out["sampler/top_bin_share"] = float(p[top].sum())
        return out

    # ---- draws --------------------------------------------------------------------------------
    def _uniform(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.randint(0, self._total, (n,), generator=generator, device=self.device)
        clip = torch.searchsorted(self._valid_end, u, right=True)
        return clip, u - self._valid_start[clip]

    # ---- state --------------------------------------------------------------------------------
    _STATE = ("bin_episodes", "bin_visits", "bin_failures", "_new_visits", "_new_failures", "bin_rates")

    def state_dict(self) -> dict:
        return {k: getattr(self, k).cpu().clone() for k in self._STATE}

    def load_state_dict(self, state: dict) -> None:
        for k in self._STATE:
            if k not in state:
                raise ValueError(f"sampler state: missing {k!r} (saved by an older version?)")
            if tuple(state[k].shape) != tuple(getattr(self, k).shape):
                raise ValueError(
                    f"sampler state {k}: shape {tuple(state[k].shape)}, expected "
                    f"{tuple(getattr(self, k).shape)} (a different motion shard or bin size?)"
                )
            getattr(self, k).copy_(state[k])
        self._rates_changed()


class UniformStartSampler(BinnedStartSampler):
    """Start frames uniform over every frame that has a successor (long clips are drawn more)."""

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self._uniform(n, generator)


class AdaptiveStartSampler(BinnedStartSampler):
    """SONIC's adaptive start sampling (see the module docstring); rates come from `set_rates`."""

    def __init__(
        self,
        clip_frames: torch.Tensor,
        *,
        bin_size_frames: int = 50,
        uniform_ratio: float = 0.1,
        window_frames: int = 200,
        global_bins=None,
        device="cpu",
    ):
        super().__init__(clip_frames, bin_size_frames=bin_size_frames, global_bins=global_bins, device=device)
        if not 0.0 <= uniform_ratio <= 1.0:
            raise ValueError(f"uniform_ratio must be in [0, 1], got {uniform_ratio}")
        if window_frames < 0:
            raise ValueError(f"window_frames must be >= 0, got {window_frames}")
        self.uniform_ratio, self.window_frames = float(uniform_ratio), int(window_frames)
        self._fail: tuple | None = None  # (float64 probs, float32 probs) or (None, None); None: stale

    def _rates_changed(self) -> None:
        self._fail = None

    def _failure_probs(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Computed once per change of the rates (once per iteration), not on every reset."""
        if self._fail is None:
            total = float(self.bin_rates.sum())
            p = None if total <= 0 else self.bin_rates.to(torch.float64) / total
            self._fail = (p, None if p is None else p.to(torch.float32))
        return self._fail

    def failure_probs(self) -> torch.Tensor | None:
        """(K,) float64 bin probabilities of the failure share, or None before any failure."""
        return self._failure_probs()[0]

    def probabilities(self) -> torch.Tensor:
        fail = self.failure_probs()
        if fail is None:
            return self.uniform_probs
        return self.uniform_ratio * self.uniform_probs + (1.0 - self.uniform_ratio) * fail

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        fail = self._failure_probs()[1]
        if fail is None or self.uniform_ratio >= 1.0:
            return self._uniform(n, generator)
        g, dev = generator, self.device
        use_uniform = torch.rand(n, generator=g, device=dev) < self.uniform_ratio
        uclip, uframe = self._uniform(n, g)
        bins = torch.multinomial(fail, n, replacement=True, generator=g)
        valid = self.bin_valid[bins]
        within = torch.minimum((torch.rand(n, generator=g, device=dev) * valid).long(), valid - 1)
        shift = torch.randint(0, self.window_frames + 1, (n,), generator=g, device=dev)
        frame = (self.bin_start[bins] + within - shift).clamp_min(0)
        return torch.where(use_uniform, uclip, self.bin_clip[bins]), torch.where(use_uniform, uframe, frame)
