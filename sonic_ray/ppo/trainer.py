"""In-process PPO trainer (no Ray): one TrackingEnv, the ActorCritic and PPOUpdater in a loop.

The same rollout collector, batch preparation and losses as the distributed path, so the math
can be checked end to end in one process (and benchmarked against the Ray pipeline).
"""

from __future__ import annotations

import time

import torch

from sonic_ray.config.schema import SonicConfig
from sonic_ray.envs.factory import make_env, make_failure_stats
from sonic_ray.models import keys as K
from sonic_ray.models.actor_critic import ActorCritic
from sonic_ray.models.factory import actor_critic_kwargs
from sonic_ray.ppo.batch import obs_groups, training_tensors
from sonic_ray.ppo.rollout import RolloutCollector
from sonic_ray.ppo.update import PPOUpdater


class InProcessTrainer:
    def __init__(self, cfg: SonicConfig, *, num_envs: int | None = None, seed: int | None = None):
        self.cfg = cfg
        seed = cfg.seed if seed is None else seed
        torch.manual_seed(seed)
        self.device = torch.device(cfg.device)
        self.env = make_env(cfg, num_envs=num_envs, seed=seed, device=cfg.device)
        kwargs = actor_critic_kwargs(cfg, obs_dims=self.env.obs_dims(), action_dim=self.env.action_dim)
        self.ac = ActorCritic(**kwargs).to(self.device)
        self.updater = PPOUpdater.from_config(self.ac, cfg)
        self.collector = RolloutCollector(self.env, self.ac.act, cfg.algo.num_steps_per_env)
        self.sampler_stats = make_failure_stats(cfg)
        self.iteration = 0

    def iterate(self) -> dict[str, float]:
        """One iteration: sample T x N steps, update; -> metrics (env, reward, losses, perf)."""
        t0 = time.perf_counter()
        sampler = self.env.cmd.sampler
        batch = self.collector.collect()
        batch.metrics.update(sampler.metrics())
        self.sampler_stats.update([sampler.pop_report()])  # what the Ray aggregator does across runners
        sampler.set_rates(self.sampler_stats.rates())
        t1 = time.perf_counter()
        critic_obs = torch.as_tensor(batch.data[K.OBS_PREFIX + K.CRITIC], device=self.device)
        self.ac.update_critic_normalizer(critic_obs.reshape(-1, critic_obs.shape[-1]))
        data = training_tensors(
            batch.data,
            value_fn=self.ac.value_from_critic_obs,
            gamma=self.cfg.algo.gamma,
            lam=self.cfg.algo.lam,
            device=self.device,
        )
        stats = self.updater.update(data)
        self.ac.update_actor_normalizers(obs_groups(data))
        t2 = time.perf_counter()
        self.iteration += 1
        steps = batch.num_steps * batch.num_envs
        stats.update(batch.metrics)
        stats.update(
            {
                "iteration": self.iteration,
                "perf/env_steps": steps,
                "perf/time_sample_s": t1 - t0,
                "perf/time_learn_s": t2 - t1,
                "perf/env_steps_per_s": steps / (t2 - t0),
            }
        )
        return stats
