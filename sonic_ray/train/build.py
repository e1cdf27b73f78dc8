"""Build the RLlib algorithm for a validated config: probe the env for its spaces, size the model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sonic_ray.config.schema import SonicConfig


def observation_space(obs_dims: dict[str, int]) -> gym.spaces.Dict:
    from sonic_ray.models import keys as K

    spaces = {}
    for name, dim in obs_dims.items():
        if name == K.ENCODER_INDEX:
            spaces[name] = gym.spaces.Discrete(len(K.ENCODER_NAMES))
        else:
            spaces[name] = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
    return gym.spaces.Dict(spaces)


def probe_env(cfg: SonicConfig) -> tuple[dict[str, int], int]:
    """Observation dims and action dim from a one-env instance on the store's first clip: the driver
    reads the store index (a sharded store: its manifest and four columns of its clip index) and one
    clip, never the whole store."""
    from sonic_ray.envs.factory import make_env, motion_store_path
    from sonic_ray.motion.store import store_size

    num_clips = store_size(motion_store_path(cfg))[1]
    env = make_env(cfg, num_envs=1, seed=cfg.seed, shard=(0, max(num_clips, 1)), device="cpu")
    try:
        return env.obs_dims(), env.action_dim
    finally:
        if hasattr(env, "close"):
            env.close()


def algorithm_config(cfg: SonicConfig):
    """RLlib's AlgorithmConfig for `cfg`, with spaces and model sizes from a probe env."""
    from sonic_ray.algorithm import to_algorithm_config
    from sonic_ray.models.factory import actor_critic_kwargs

    obs_dims, action_dim = probe_env(cfg)
    model_config = actor_critic_kwargs(cfg, obs_dims=obs_dims, action_dim=action_dim)
    space = observation_space(obs_dims)
    act_space = gym.spaces.Box(-np.inf, np.inf, (action_dim,), np.float32)
    return to_algorithm_config(
        cfg, observation_space=space, action_space=act_space, model_config=model_config
    )


def build_algorithm(cfg: SonicConfig):
    return algorithm_config(cfg).build_algo()
