"""The lowest layer of the Ray shell: joining or starting Ray, and the training gauges.

Training, evaluation, sweeps and benchmarks all start Ray through `init_ray`; the driver and each
env runner publish `TrainingGauges`. Nothing here imports the rest of the shell. `ray` itself is
imported inside the functions: importing this module (the CLI does, through the driver) must not
cost Ray's import time for commands that never start Ray.

Gauges: Ray exports a `ray.util.metrics.Gauge` named `sonic_x` as `ray_sonic_x{run=...,runner=...}`
from the metrics agent of the node the publishing process runs on (scraped by the head's
Prometheus, or read at `http://<node>:<metrics-export-port>/metrics`). The driver publishes every
gauge with `runner="all"` (iteration-level aggregates); each env runner publishes its own episode
figures with `runner="<worker index>"`. `deploy/grafana/sonic_ray_dashboard.json` charts exactly
these names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sonic_ray.config.schema import SonicConfig

RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for a job's entrypoint
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch for a loopback-only local node

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
RUNNER_GAUGES = (
    "sonic_env_steps_per_s",
    "sonic_reward",
    "sonic_episode_length",
    "sonic_success_rate",
    "sonic_sampler_entropy",
)
TAG_KEYS = ("run", "runner")
DRIVER = "all"
PROMETHEUS_PREFIX = "ray_"  # Ray prefixes application metrics in its Prometheus export


def init_ray(cfg: SonicConfig) -> None:
    """Join `ray.address` when given; inside a `ray job submit` job or with RAY_ADDRESS set, a plain
    `ray.init()` (it reads the address, the job's runtime env and the auth token from the job's
    environment); else start a local Ray bound to loopback only (`start_local_ray`)."""
    import ray  # lazy: see the module docstring

    if ray.is_initialized():
        return
    if cfg.ray.address:
        ray.init(address=cfg.ray.address, log_to_driver=True)
    elif joins_existing_cluster(cfg):
        ray.init(log_to_driver=True)
    else:
        start_local_ray(
            include_dashboard=cfg.ray.include_dashboard,
            log_to_driver=True,
            runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}},
        )


def joins_existing_cluster(cfg: SonicConfig) -> bool:
    """Whether `init_ray` joins a running Ray (an address, RAY_ADDRESS, or a job's entrypoint)."""
    return bool(cfg.ray.address or os.environ.get("RAY_ADDRESS") or os.environ.get(RAY_JOB_ENV))


def start_local_ray(**init_kwargs: Any) -> None:
    """`ray.init(**init_kwargs)` for a new local instance whose every port listens on 127.0.0.1.

    Ray resolves a node address of 127.0.0.1 to the machine's routable IP, and its GCS, raylet,
    workers and metrics exporters then listen on all interfaces, unauthenticated. Ray's own
    local-only mode (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, the macOS/Windows default) keeps the node
    address on loopback, and the servers bind to it. The variable is read at import (driver) and
    at start (Ray's processes inherit it), so both are set here; the driver's copy is restored
    after start. A cluster is reached only through `ray.address` / RAY_ADDRESS.
    """
    import ray  # lazy: see the module docstring
    from ray._private import ray_constants

    saved_env = os.environ.get(LOCAL_ONLY_ENV)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(**init_kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(LOCAL_ONLY_ENV, None)
        else:
            os.environ[LOCAL_ONLY_ENV] = saved_env


class TrainingGauges:
    """Publishes the metric keys of `GAUGES` (restricted to `names`) under tags run/runner."""

    def __init__(self, *, run: str, runner: str = DRIVER, names: tuple[str, ...] | None = None):
        from ray.util.metrics import Gauge  # lazy: see the module docstring

        self.tags = {"run": run, "runner": runner}
        names = tuple(GAUGES) if names is None else names
        self.gauges = {
            GAUGES[name]: Gauge(name, description=f"sonic-ray {GAUGES[name]}", tag_keys=TAG_KEYS)
            for name in names
        }

    def publish(self, metrics: dict[str, Any]) -> None:
        for key, gauge in self.gauges.items():
            value = metrics.get(key)
            if value is not None:
                gauge.set(float(value), tags=self.tags)


def run_name(run_dir: str | None, experiment: str) -> str:
    """The `run` label: the run directory's name (what `sonic-ray train` prints), else the experiment."""
    return Path(run_dir).name if run_dir else experiment
