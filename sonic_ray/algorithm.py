"""The RLlib algorithm: flat-batch PPO. Also the ONE place that turns SonicConfig into RLlib's config.

`training_step`: every env runner samples T x N steps and puts one slice per learner in the object
store; the learners update on their slices (DDP across learners); the inference weights go back to
the runners. Each phase is timed into `perf/time_*_s`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from sonic_ray.config.compose import config_from_dict, config_to_dict
from sonic_ray.config.schema import SonicConfig
from sonic_ray.env_runners.routing import assign_runners, learner_major_refs
from sonic_ray.env_runners.runner import SonicEnvRunner
from sonic_ray.env_runners.sampler_actor import SamplerStatsActor
from sonic_ray.envs.factory import make_failure_stats
from sonic_ray.learners.learner import SonicLearner
from sonic_ray.learners.rl_module import MODEL_KWARGS, SONIC_CFG_KEY, SonicRLModule

SONIC_METRICS = "sonic"  # key of our metrics in the result dict


class SonicPPO(PPO):
    @classmethod
    def get_default_config(cls) -> PPOConfig:
        return PPOConfig(algo_class=cls)

    def setup(self, config) -> None:
        super().setup(config)
        cfg = config_from_dict(self.config.env_config[SONIC_CFG_KEY])  # once per algorithm process
        # On the driver's node: an actor with no CPUs may land on any node, and losing that node
        # would lose the failure stats for good (no restart) and fail every later sample call.
        # Hard affinity: a soft one spilled onto a worker node under load (seen in CI's node-loss
        # test); the driver's node lives as long as the run does.
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        stats = make_failure_stats(cfg)
        self.sampler_stats = SamplerStatsActor.options(scheduling_strategy=here).remote(stats)
        self._sampler_rates = None  # ObjectRef of the rates the next sample call applies
        self._cfg = cfg
        self._routing: list[list[int]] | None = None  # runner indices per learner (ray.colocate)
        self._routed = False
        self._runner_nodes: dict[int, str] = {}
        self._learner_nodes: list[str] = []

    def training_step(self) -> None:
        # Only this iteration's metrics: RLlib would report a key logged in an earlier iteration but
        # not in this one (e.g. no episode ended) as NaN, so a resumed run's rows would differ.
        self.metrics.delete(SONIC_METRICS, key_error=False)
        num_learners = max(self.config.num_learners, 1)
        rates = self._sampler_rates
        t0 = time.perf_counter()
        assignment = self._assignment()
        parts = 1 if assignment is not None else num_learners
        replies = self.env_runner_group.foreach_env_runner(
            lambda r: (r.worker_index, r.sample_refs(parts, rates)), local_env_runner=False, healthy_only=True
        )
        t1 = time.perf_counter()
        if not replies:  # every runner failed: RLlib restarts them before the next iteration
            self.metrics.log_value((SONIC_METRICS, "env/no_healthy_runners"), 1, window=1)
            return
        # Failure counts to the aggregator, not waited on: the rates it returns ride along with the
        # next iteration's sample call (computed while the learners work).
        indices, replies = zip(*replies)
        runner_refs, runner_metrics, reports = zip(*replies)
        self._sampler_rates = self.sampler_stats.update.remote(list(reports))
        if assignment is None:
            # Learner-major order: ShardObjectRefIterator hands learner i the i-th contiguous chunk.
            refs = [r[i] for i in range(num_learners) for r in runner_refs]
        else:
            # ray.colocate: each learner takes the whole rollouts of the runners on its node.
            if sorted(indices) != sorted(i for a in assignment for i in a):  # a runner was lost or replaced
                self._routed = False
                nodes = {i: self._runner_nodes.get(i, "") for i in indices}
                assignment = assign_runners(nodes, self._learner_nodes)
            if assignment is None:  # cannot be shared out evenly this time: drop the round, re-route next
                self.metrics.log_value((SONIC_METRICS, "env/unrouted_rounds"), 1, window=1)
                return
            refs = learner_major_refs(assignment, {i: r[0] for i, r in zip(indices, runner_refs)})
        learner_results = self.learner_group.update(batch_refs=refs)
        t2 = time.perf_counter()
        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group, inference_only=True
        )
        t3 = time.perf_counter()
        steps = sum(m["perf/runner_env_steps"] for m in runner_metrics)
        stats = _mean_dicts(learner_results if isinstance(learner_results, list) else [learner_results])
        stats.update(_aggregate_runner_metrics(list(runner_metrics)))
        stats.update(
            {
                "perf/time_sample_s": t1 - t0,
                "perf/time_learn_s": t2 - t1,
                "perf/time_sync_s": t3 - t2,
                "perf/env_steps": steps,
                "perf/env_steps_per_s": steps / max(t3 - t0, 1e-9),
                "perf/num_healthy_runners": len(replies),
            }
        )
        self.metrics.log_dict({(SONIC_METRICS, k): float(v) for k, v in stats.items()}, window=1)

    # ---- routing (ray.colocate) ----------------------------------------------------------------
    def _assignment(self) -> list[list[int]] | None:
        """Runner worker indices per learner (routing.assign_runners over the nodes the actors run
        on), recomputed after a runner change; None: split every rollout across the learners
        (ray.colocate off, or runners that cannot be shared out evenly)."""
        if not self._cfg.ray.colocate:
            return None
        if not self._routed:
            import ray

            self._runner_nodes = dict(
                self.env_runner_group.foreach_env_runner(
                    lambda r: r.node_id(), local_env_runner=False, healthy_only=True
                )
            )
            if self.config.num_learners > 0:
                self._learner_nodes = [r.get() for r in self.learner_group.foreach_learner(_node_of)]
            else:  # the learner runs in this (the algorithm's) process
                self._learner_nodes = [ray.get_runtime_context().get_node_id()]
            self._routing = assign_runners(self._runner_nodes, self._learner_nodes)
            self._routed = True
        return self._routing

    # ---- exact resume: state beyond the learners -------------------------------------------
    def sonic_state(self) -> dict[str, Any]:
        """The aggregator's failure stats and every env runner's RunnerState, keyed by worker index."""
        import ray

        runners = self.env_runner_group.foreach_env_runner(
            lambda r: (r.worker_index, r.get_runner_state()), local_env_runner=False
        )
        return {
            "sampler_stats": ray.get(self.sampler_stats.get_state.remote()),
            "runners": {int(i): st for i, st in runners if st},
        }

    def set_sonic_state(self, state: dict[str, Any]) -> dict[int, str]:
        """Restore `sonic_state()`; -> {worker index: why not} for the runners that did not restore
        their saved state (none saved for them, or one that does not fit): they start fresh."""
        import ray

        self._sampler_rates = self.sampler_stats.set_state.remote(state["sampler_stats"])
        refs = {i: ray.put(st) for i, st in state["runners"].items()}  # each runner fetches only its own
        applied = self.env_runner_group.foreach_env_runner(
            lambda r: (r.worker_index, r.set_runner_state(refs.get(r.worker_index))), local_env_runner=False
        )
        return {i: why for i, why in applied if why is not None}

    def stop(self) -> None:
        import ray

        try:
            ray.kill(self.sampler_stats)
        except Exception:  # already gone with the cluster
            pass
        super().stop()


def _node_of(_learner) -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _mean_dicts(dicts: list[dict]) -> dict[str, float]:
    """Learner stats averaged over learners, except byte counters (learner/*_bytes): summed."""
    keys = {k for d in dicts for k, v in d.items() if isinstance(v, (int, float))}
    reduce = {k: np.sum if k.startswith("learner/") and k.endswith("_bytes") else np.mean for k in keys}
    return {k: float(reduce[k]([d[k] for d in dicts if k in d])) for k in keys}


def _aggregate_runner_metrics(metrics: list[dict]) -> dict[str, float]:
    """Per-runner episode metrics, weighted by finished episodes where given; sums for counts."""
    out: dict[str, float] = {}
    weights = [m.get("env/episodes", 0) for m in metrics]
    keys = {k for m in metrics for k in m}
    for k in keys:
        vals = [(m[k], w) for m, w in zip(metrics, weights) if k in m and m[k] is not None]
        if not vals:
            continue
        sums = ("env/episodes", "perf/runner_env_steps", "perf/runner_shipped_bytes")
        if k.endswith("_count") or k in sums or k.startswith("term/"):
            out[k] = float(sum(v for v, _ in vals))
        elif sum(w for _, w in vals) > 0:
            out[k] = float(sum(v * w for v, w in vals) / sum(w for _, w in vals))
        else:
            out[k] = float(np.mean([v for v, _ in vals]))
    return out


def to_algorithm_config(
    cfg: SonicConfig, *, observation_space, action_space, model_config: dict
) -> PPOConfig:
    """Translate our validated config into RLlib's AlgorithmConfig (nothing else touches the builder)."""
    r = cfg.ray
    as_dict = config_to_dict(cfg)  # RLlib's config dicts carry plain containers; each process re-types once
    return (
        SonicPPO.get_default_config()
        .framework("torch")
        .environment(
            observation_space=observation_space,
            action_space=action_space,
            env_config={SONIC_CFG_KEY: as_dict},
        )
        .env_runners(
            env_runner_cls=SonicEnvRunner,
            num_env_runners=r.num_env_runners,
            num_cpus_per_env_runner=r.cpus_per_env_runner,
            num_gpus_per_env_runner=r.gpus_per_env_runner,
            custom_resources_per_env_runner=dict(r.custom_resources_per_env_runner),
            rollout_fragment_length=cfg.algo.num_steps_per_env,
            create_env_on_local_worker=False,
            sample_timeout_s=600.0,
        )
        .learners(
            num_learners=r.num_learners,
            num_cpus_per_learner=r.cpus_per_learner,
            num_gpus_per_learner=r.gpus_per_learner,
            learner_class=SonicLearner,
            custom_resources_per_learner=dict(r.custom_resources_per_learner),
            learner_config_dict={SONIC_CFG_KEY: as_dict},
        )
        .training(
            lr=cfg.algo.actor_lr,
            gamma=cfg.algo.gamma,
            lambda_=cfg.algo.lam,
            grad_clip=cfg.algo.max_grad_norm,
            grad_clip_by="global_norm",
        )
        .rl_module(
            rl_module_spec=RLModuleSpec(module_class=SonicRLModule, model_config={MODEL_KWARGS: model_config})
        )
        .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=100)
        .debugging(seed=cfg.seed, log_level="WARN")
    )
