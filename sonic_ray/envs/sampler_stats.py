"""Smoothed per-bin failure statistics over the whole motion store, and the rates samplers draw by.

`FailureStats` holds, for every global bin (see `sampler.global_bin_ids`), an exponential moving
average of the visits and failures reported by every sampler. Once per training iteration
`update(reports)` decays both by (1 - smoothing) and adds smoothing x the new counts; the failure
rate is their ratio (the decay cancels, so a single report already gives failures / visits, and
older iterations weigh less and less). BeyondMimic smooths its per-step failure counts with
alpha = 0.001; at 24 steps per iteration that is about 0.024 per iteration, hence the default 0.02.

`rates()` caps every rate at `cap_multiple` x the mean rate of the bins seen so far (SONIC: 200),
so a few hopeless bins cannot take all of the failure share. Used by the Ray actor that
aggregates runners (`env_runners/sampler_actor.py`) and directly by the in-process trainer.
"""

from __future__ import annotations

import numpy as np


class FailureStats:
    def __init__(self, num_bins: int, *, smoothing: float = 0.02, cap_multiple: float = 200.0):
        if num_bins < 1:
            raise ValueError(f"FailureStats: num_bins must be >= 1, got {num_bins}")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"FailureStats: smoothing must be in (0, 1], got {smoothing}")
        if cap_multiple <= 0:
            raise ValueError(f"FailureStats: cap_multiple must be > 0, got {cap_multiple}")
        self.num_bins, self.smoothing, self.cap_multiple = (
            int(num_bins),
            float(smoothing),
            float(cap_multiple),
        )
        self.visits = np.zeros(self.num_bins, np.float64)
        self.failures = np.zeros(self.num_bins, np.float64)
        self.updates = 0

    def update(self, reports: list[dict]) -> None:
        """One iteration's reports ({"bins", "visits", "failures"} from `BinnedStartSampler.pop_report`)."""
        a = self.smoothing
        # New arrays, not in place: a table that crossed a Ray boundary holds read-only buffers.
        self.visits = self.visits * (1.0 - a)
        self.failures = self.failures * (1.0 - a)
        for r in reports:
            bins = np.asarray(r["bins"], dtype=np.int64)
            if len(bins) and (bins.min() < 0 or bins.max() >= self.num_bins):
                raise ValueError(
                    f"FailureStats: report names bins up to {int(bins.max())}, "
                    f"but the store has {self.num_bins} bins (a different store or bin size?)"
                )
            np.add.at(self.visits, bins, a * np.asarray(r["visits"], dtype=np.float64))
            np.add.at(self.failures, bins, a * np.asarray(r["failures"], dtype=np.float64))
        self.updates += 1

    def raw_rates(self) -> np.ndarray:
        """(K,) failures / visits (0 where a bin was never visited)."""
        seen = self.visits > 0
        out = np.zeros(self.num_bins, np.float64)
        out[seen] = self.failures[seen] / self.visits[seen]
        return out

    def rates(self) -> np.ndarray:
        """(K,) float32 failure rates capped at cap_multiple x the mean rate of the visited bins."""
        rate = self.raw_rates()
        seen = self.visits > 0
        if seen.any():
            mean = float(rate[seen].mean())
            if mean > 0:
                rate = np.minimum(rate, self.cap_multiple * mean)
        return rate.astype(np.float32)

    def state_dict(self) -> dict:
        return {"visits": self.visits.copy(), "failures": self.failures.copy(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for k in ("visits", "failures"):
            if np.shape(state[k]) != (self.num_bins,):
                raise ValueError(
                    f"sampler stats {k}: shape {np.shape(state[k])}, expected ({self.num_bins},) "
                    "(the checkpoint was made with a different motion store or bin size)"
                )
        self.visits = np.array(state["visits"], dtype=np.float64)
        self.failures = np.array(state["failures"], dtype=np.float64)
        self.updates = int(state.get("updates", 0))
