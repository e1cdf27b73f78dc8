"""The RLlib env runner: one batched TrackingEnv plus an inference copy of the policy.

`sample_refs(num_learners)` collects T x N steps into flat numpy arrays, splits them along the env
axis into one slice per learner and puts each slice in the object store from here, so the driver
only handles small refs (numpy leaves the store zero-copy on the learner side). No per-env episode
objects exist anywhere on this path.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.core import COMPONENT_RL_MODULE, DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.env_runner import EnvRunner
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

from sonic_ray.config.compose import config_from_dict
from sonic_ray.envs.factory import make_env
from sonic_ray.learners.rl_module import SONIC_CFG_KEY, SonicRLModule
from sonic_ray.ppo.compact_factory import make_compact_encoder
from sonic_ray.ppo.rollout import RolloutCollector, split_envs
from sonic_ray.utils.rng import rng_state, set_rng_state


def runner_seed(seed: int, worker_index: int) -> int:
    """Distinct, reproducible seed per runner (a replaced runner gets its predecessor's seed)."""
    return int(np.random.SeedSequence([seed, worker_index]).generate_state(1)[0])


def _to_cpu(x):
    """Nested dicts/lists/tuples with every tensor moved to the CPU."""
    if torch.is_tensor(x):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_to_cpu(v) for v in x)
    return x


class SonicEnvRunner(EnvRunner):
    def __init__(self, *, config, **kwargs):
        super().__init__(config=config, **kwargs)
        self.cfg = config_from_dict(config.env_config[SONIC_CFG_KEY])  # once per runner process
        index = self.worker_index or 0
        workers = max(self.num_workers, 1)
        self.seed = runner_seed(self.cfg.seed, index)
        torch.manual_seed(self.seed)
        # The runner's CPUs go to MuJoCo's stepping threads; torch's own pool would fight them.
        torch.set_num_threads(1)
        self._weights_seq_no = 0
        self._gauges = None  # created on first sample (a Ray metric per runner, tagged run/runner)
        self._spaces = None
        self.env = None
        self.module = None
        self.collector = None
        if index > 0:  # the driver-side local runner (index 0) holds no env
            shard = (max(index - 1, 0), workers)
            self.env = make_env(self.cfg, seed=self.seed, shard=shard, device=self.cfg.device)
            spec = RLModuleSpec(
                module_class=SonicRLModule,
                model_config=config.rl_module_spec.model_config,
                observation_space=config.observation_space,
                action_space=config.action_space,
                inference_only=True,
            )
            self.module = spec.build().to(self.cfg.device)
            self.collector = RolloutCollector(
                self.env,
                self._act,
                self.cfg.algo.num_steps_per_env,
                compact=make_compact_encoder(self.cfg, self.env),
            )

    def _act(self, obs: dict[str, torch.Tensor]):
        return self.module.ac.act(obs)

    # ---- sampling --------------------------------------------------------------------------
    def sample(self, **kwargs):
        return self.collector.collect()

    def node_id(self) -> tuple[int, str]:
        """(worker index, the Ray node this runner runs on): what routing.assign_runners reads."""
        return self.worker_index, ray.get_runtime_context().get_node_id()

    def sample_refs(
        self, num_learners: int, sampler_rates=None
    ) -> tuple[list[ray.ObjectRef], dict[str, Any], dict]:
        """Collect T x N steps; -> (one ref per learner, metrics, start-sampler report).
        num_learners=1 ships the whole rollout as one ref (ray.colocate: routed to one learner).

        sampler_rates: an ObjectRef of the aggregator's capped failure rates of every global bin
        (ready by now: it was launched during the previous learner update), or None to keep the
        current ones. The report holds the failure counts gathered in this rollout."""
        t0 = time.perf_counter()
        sampler = self.env.cmd.sampler
        if sampler_rates is not None:
            sampler.set_rates(ray.get(sampler_rates))
        batch = self.collector.collect()
        t1 = time.perf_counter()
        batch.origin = ray.get_runtime_context().get_node_id()
        refs = [ray.put(part) for part in split_envs(batch, num_learners)]
        metrics = dict(batch.metrics)
        metrics.update(sampler.metrics())
        steps = batch.num_steps * batch.num_envs
        metrics.update(
            {
                "perf/runner_sample_s": t1 - t0,
                "perf/runner_put_s": time.perf_counter() - t1,
                "perf/runner_env_steps": steps,
                "perf/bytes_per_transition": batch.nbytes() / steps,
                "perf/runner_shipped_bytes": batch.nbytes(),
            }
        )
        self.num_env_steps_sampled_lifetime += steps
        self._publish_gauges(metrics, steps / max(t1 - t0, 1e-9))
        return refs, metrics, sampler.pop_report()

    # ---- exact resume ------------------------------------------------------------------------
    def get_runner_state(self) -> dict[str, Any]:
        """RunnerState: this process's RNGs (the policy samples actions from torch's global one),
        the env snapshot (simulator, episodes, histories, sampler) and whether rollouts started."""
        if self.env is None:
            return {}
        return {
            "worker_index": self.worker_index,
            "rng": rng_state(),
            "env": _to_cpu(self.env.state_dict()),  # the driver (and checkpoint) may have no GPU
            "collector_started": self.collector.obs is not None,
            "env_steps_lifetime": int(self.num_env_steps_sampled_lifetime),
        }

    def set_runner_state(self, state) -> str | None:
        """Restore `get_runner_state()` from its ObjectRef (None: nothing saved for this runner);
        -> None when restored, else why not: nothing saved, or a saved env state that does not fit
        this env (a resume with other terms, history or envs: `ValueError` names what differs).
        Either way the runner is then as built, and its collector starts fresh episodes."""
        state = ray.get(state) if state is not None else None
        if not state or self.env is None:
            return "no saved state"
        fresh = self.env.state_dict()  # as built: what a failed load is undone to
        try:
            self.env.load_state_dict(state["env"])
        except (ValueError, KeyError) as e:
            self.env.load_state_dict(fresh)
            self.collector.obs = None
            return f"does not fit this config: {e}"
        self.collector.obs = self.env.obs if state["collector_started"] else None
        set_rng_state(state["rng"])
        self.num_env_steps_sampled_lifetime = state.get("env_steps_lifetime", 0)
        return None

    def _publish_gauges(self, metrics: dict[str, Any], steps_per_s: float) -> None:
        from sonic_ray.cluster import RUNNER_GAUGES, TrainingGauges, run_name

        if self._gauges is None:
            self._gauges = TrainingGauges(
                run=run_name(self.cfg.run_dir, self.cfg.experiment),
                runner=str(self.worker_index),
                names=RUNNER_GAUGES,
            )
        self._gauges.publish({**metrics, "perf/env_steps_per_s": steps_per_s})

    def get_metrics(self) -> dict:
        return {}

    # ---- RLlib plumbing ----------------------------------------------------------------------
    def assert_healthy(self) -> None:
        if self.env is not None:
            assert self.module is not None, "env runner has an env but no policy"

    def get_spaces(self):
        return {DEFAULT_MODULE_ID: (self.config.observation_space, self.config.action_space)}

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        state = {WEIGHTS_SEQ_NO: self._weights_seq_no}
        if self.module is not None:
            state[COMPONENT_RL_MODULE] = self.module.get_state()
        return state

    def set_state(self, state: dict) -> None:
        if COMPONENT_RL_MODULE in state and self.module is not None:
            weights = state[COMPONENT_RL_MODULE]
            if isinstance(weights, ray.ObjectRef):
                weights = ray.get(weights)
            if DEFAULT_MODULE_ID in weights:
                weights = weights[DEFAULT_MODULE_ID]
            self.module.set_state(weights)
        self._weights_seq_no = state.get(WEIGHTS_SEQ_NO, self._weights_seq_no)

    def stop(self) -> None:
        if self.env is not None and hasattr(self.env, "close"):
            self.env.close()
