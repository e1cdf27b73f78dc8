"""The start-sampler aggregator: one Ray actor that pools every env runner's failure counts.

Each runner's sampler covers its shard of the store, but its bins are numbered in the store's
global layout (`sampler.global_bin_ids`), so the actor keeps one `FailureStats` table over all
bins. Per iteration (driven by `SonicPPO.training_step`, never waited on):

    runner i: sample_refs(..., rates_ref) -> (refs, metrics, report_i)   # report: sparse counts
    driver:   rates_ref = actor.update.remote([report_1, ..., report_n])  # returns at once
    ... learners update ...
    next iteration: runners get rates_ref with their sample call and ray.get it (long done by then)

so iteration k samples with the rates of iterations < k, the same on every run: the rates and the
stats are a deterministic function of the reports. Its state goes into checkpoints.
"""

from __future__ import annotations

import numpy as np
import ray

from sonic_ray.envs.sampler_stats import FailureStats


@ray.remote(num_cpus=0, max_restarts=0)
class SamplerStatsActor:
    def __init__(self, stats: FailureStats):
        """`stats`: the empty table (`envs.factory.make_failure_stats(cfg)`, built by the algorithm)."""
        self.stats = stats

    def update(self, reports: list[dict]) -> np.ndarray:
        """Fold in one iteration's reports; -> capped rates (K,) float32 for every global bin."""
        self.stats.update(reports)
        return self.stats.rates()

    def summary(self) -> dict[str, float]:
        raw, seen = self.stats.raw_rates(), self.stats.visits > 0
        return {
            "num_bins": float(self.stats.num_bins),
            "seen_bins": float(seen.sum()),
            "failure_rate_mean": float(raw[seen].mean()) if seen.any() else 0.0,
            "updates": float(self.stats.updates),
        }

    def get_state(self) -> dict:
        return self.stats.state_dict()

    def set_state(self, state: dict) -> np.ndarray:
        """Restore; -> the rates the restored stats give (what the next sample call needs)."""
        self.stats.load_state_dict(state)
        return self.stats.rates()
