"""The RLlib algorithm: flat-batch PPO. Also the ONE place that turns SonicConfig into RLlib's config.

`training_step`: every env runner samples T x N steps and puts one slice per learner in the object
store; the learners update on their slices (DDP across learners); the inference weights go back to
the runners. Each phase is timed into `perf/time_*_s`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from sonic_ray.config.schema import SonicConfig
from sonic_ray.env_runners.runner import SONIC_CFG_KEY, SonicEnvRunner
from sonic_ray.learners.learner import ALGO_KEY, SonicLearner
from sonic_ray.learners.rl_module import MODEL_KWARGS, SonicRLModule

SONIC_METRICS = "sonic"  # key of our metrics in the result dict


class SonicPPO(PPO):
    @classmethod
    def get_default_config(cls) -> PPOConfig:
        return PPOConfig(algo_class=cls)

    def training_step(self) -> None:
        num_learners = max(self.config.num_learners, 1)
        t0 = time.perf_counter()
        replies = self.env_runner_group.foreach_env_runner(
            lambda r: r.sample_refs(num_learners), local_env_runner=False, healthy_only=True)
        t1 = time.perf_counter()
        if not replies:  # every runner failed: RLlib restarts them before the next iteration
            self.metrics.log_value((SONIC_METRICS, "env/no_healthy_runners"), 1, window=1)
            return
        # Learner-major order: ShardObjectRefIterator hands learner i the i-th contiguous chunk.
        refs = [ref for i in range(num_learners) for runner_refs, _ in replies for ref in [runner_refs[i]]]
        learner_results = self.learner_group.update(batch_refs=refs)
        t2 = time.perf_counter()
        self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)
        t3 = time.perf_counter()
        runner_metrics = [m for _, m in replies]
        steps = sum(m["perf/runner_env_steps"] for m in runner_metrics)
        stats = _mean_dicts(learner_results if isinstance(learner_results, list) else [learner_results])
        stats.update(_aggregate_runner_metrics(runner_metrics))
        stats.update({"perf/time_sample_s": t1 - t0, "perf/time_learn_s": t2 - t1, "perf/time_sync_s": t3 - t2,
                      "perf/env_steps": steps, "perf/env_steps_per_s": steps / max(t3 - t0, 1e-9),
                      "perf/num_healthy_runners": len(replies)})
        self.metrics.log_dict({(SONIC_METRICS, k): float(v) for k, v in stats.items()}, window=1)


def _mean_dicts(dicts: list[dict]) -> dict[str, float]:
    keys = {k for d in dicts for k, v in d.items() if isinstance(v, (int, float))}
    return {k: float(np.mean([d[k] for d in dicts if k in d])) for k in keys}


def _aggregate_runner_metrics(metrics: list[dict]) -> dict[str, float]:
    """Per-runner episode metrics, weighted by finished episodes where given; sums for counts."""
    out: dict[str, float] = {}
    weights = [m.get("env/episodes", 0) for m in metrics]
    keys = {k for m in metrics for k in m}
    for k in keys:
        vals = [(m[k], w) for m, w in zip(metrics, weights) if k in m and m[k] is not None]
        if not vals:
            continue
        if k.endswith("_count") or k in ("env/episodes", "perf/runner_env_steps") or k.startswith("term/"):
            out[k] = float(sum(v for v, _ in vals))
        elif sum(w for _, w in vals) > 0:
            out[k] = float(sum(v * w for v, w in vals) / sum(w for _, w in vals))
        else:
            out[k] = float(np.mean([v for v, _ in vals]))
    return out


def algo_hyperparameters(cfg: SonicConfig) -> dict[str, Any]:
    hp = asdict(cfg.algo)
    hp["aux_coefs"] = asdict(cfg.aux_losses)
    return hp


def to_algorithm_config(cfg: SonicConfig, *, observation_space, action_space, model_config: dict) -> PPOConfig:
    """Translate our validated config into RLlib's AlgorithmConfig (nothing else touches the builder)."""
    r = cfg.ray
    return (
        SonicPPO.get_default_config()
        .framework("torch")
        .environment(observation_space=observation_space, action_space=action_space,
                     env_config={SONIC_CFG_KEY: OmegaConf.to_container(OmegaConf.structured(cfg))})
        .env_runners(env_runner_cls=SonicEnvRunner, num_env_runners=r.num_env_runners,
                     num_cpus_per_env_runner=r.cpus_per_env_runner, num_gpus_per_env_runner=r.gpus_per_env_runner,
                     custom_resources_per_env_runner=dict(r.custom_resources_per_env_runner),
                     rollout_fragment_length=cfg.algo.num_steps_per_env, create_env_on_local_worker=False,
                     sample_timeout_s=600.0)
        .learners(num_learners=r.num_learners, num_cpus_per_learner=r.cpus_per_learner,
                  num_gpus_per_learner=r.gpus_per_learner, learner_class=SonicLearner,
                  custom_resources_per_learner=dict(r.custom_resources_per_learner),
                  learner_config_dict={ALGO_KEY: algo_hyperparameters(cfg)})
        .training(lr=cfg.algo.actor_lr, gamma=cfg.algo.gamma, lambda_=cfg.algo.lam,
                  grad_clip=cfg.algo.max_grad_norm, grad_clip_by="global_norm")
        .rl_module(rl_module_spec=RLModuleSpec(module_class=SonicRLModule, model_config={MODEL_KWARGS: model_config}))
        .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=100)
        .debugging(seed=cfg.seed, log_level="WARN")
    )
