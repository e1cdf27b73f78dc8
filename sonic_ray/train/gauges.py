"""Training gauges for the Ray dashboard (Prometheus text on each node's metrics export port).

Ray exports a `ray.util.metrics.Gauge` named `sonic_x` as `ray_sonic_x{run=...,runner=...}` from the
metrics agent of the node the publishing process runs on (scraped by the head's Prometheus, or read
at `http://<node>:<metrics-export-port>/metrics`). The driver publishes every gauge with
`runner="all"` (iteration-level aggregates); each env runner publishes its own episode figures with
`runner="<worker index>"`. `deploy/grafana/sonic_ray_dashboard.json` charts exactly these names.
"""

from __future__ import annotations

from typing import Any

# Gauge name -> the metric key it publishes (keys of metrics.jsonl).
GAUGES = {
    "sonic_env_steps_per_s": "perf/env_steps_per_s",
    "sonic_reward": "reward/total",
    "sonic_episode_length": "env/episode_length",
    "sonic_success_rate": "env/success_rate",
    "sonic_learner_time_s": "perf/time_learn_s",
    "sonic_sampler_entropy": "sampler/entropy",
    "sonic_iteration": "iteration",
    "sonic_eval_success_rate": "eval/success_rate",
    "sonic_eval_mpjpe_l_mm": "eval/mpjpe_l_mm",
}
# Published only when evaluation runs during training (callbacks.eval_interval > 0).
EVAL_GAUGES = tuple(name for name, key in GAUGES.items() if key.startswith("eval/"))
# What an env runner publishes about itself (its env-steps/s is its sampling rate alone).
RUNNER_GAUGES = ("sonic_env_steps_per_s", "sonic_reward", "sonic_episode_length", "sonic_success_rate",
                 "sonic_sampler_entropy")
TAG_KEYS = ("run", "runner")
DRIVER = "all"
PROMETHEUS_PREFIX = "ray_"  # Ray prefixes application metrics in its Prometheus export


class TrainingGauges:
    """Publishes the metric keys of `GAUGES` (restricted to `names`) under tags run/runner."""

    def __init__(self, *, run: str, runner: str = DRIVER, names: tuple[str, ...] | None = None):
        from ray.util.metrics import Gauge

        self.tags = {"run": run, "runner": runner}
        names = tuple(GAUGES) if names is None else names
        self.gauges = {GAUGES[name]: Gauge(name, description=f"sonic-ray {GAUGES[name]}", tag_keys=TAG_KEYS)
                       for name in names}

    def publish(self, metrics: dict[str, Any]) -> None:
        for key, gauge in self.gauges.items():
            value = metrics.get(key)
            if value is not None:
                gauge.set(float(value), tags=self.tags)


def run_name(run_dir: str | None, experiment: str) -> str:
    """The `run` label: the run directory's name (what `sonic-ray train` prints), else the experiment."""
    from pathlib import Path

    return Path(run_dir).name if run_dir else experiment
