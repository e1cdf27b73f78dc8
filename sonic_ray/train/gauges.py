"""Training gauges for the Ray dashboard (Prometheus export on the head's metrics port)."""

from __future__ import annotations

from typing import Any

# Gauge name -> the metric key it publishes.
GAUGES = {
    "sonic_env_steps_per_s": "perf/env_steps_per_s",
    "sonic_reward": "reward/total",
    "sonic_episode_length": "env/episode_length",
    "sonic_success_rate": "env/success_rate",
    "sonic_learner_time_s": "perf/time_learn_s",
    "sonic_iteration": "iteration",
    "sonic_eval_success_rate": "eval/success_rate",
    "sonic_eval_mpjpe_l_mm": "eval/mpjpe_l_mm",
}


class TrainingGauges:
    def __init__(self, *, run: str):
        from ray.util.metrics import Gauge

        self.tags = {"run": run}
        self.gauges = {key: Gauge(name, description=f"sonic-ray {key}", tag_keys=("run",))
                       for name, key in GAUGES.items()}

    def publish(self, metrics: dict[str, Any]) -> None:
        for key, gauge in self.gauges.items():
            value = metrics.get(key)
            if value is not None:
                gauge.set(float(value), tags=self.tags)
