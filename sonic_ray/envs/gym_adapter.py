"""TrackingEnv as a `gymnasium.vector.VectorEnv` (numpy in and out), for tools that expect gymnasium.

Observation space: a `spaces.Dict` with one `Box(-inf, inf, (N, k), float32)` per observation
group ("policy", "critic", "tokenizer_g1", "tokenizer_smpl", "tokenizer_teleop"; k from
`TrackingEnv.obs_dims()`) and "encoder_index": `MultiDiscrete([3] * N)` (index into
ENCODER_NAMES = g1, teleop, smpl). The single-env spaces drop the N. Action space:
`Box(-inf, inf, (N, A), float32)` (unbounded: actions are offsets scaled by action_scale).

Autoreset is SAME_STEP (gymnasium's AutoresetMode): the observation returned for an env whose
episode ended is the new episode's first. For truncated envs (the ones that bootstrap) the last
observation is in infos["final_obs"] (an object array of per-env dicts, None elsewhere) with the
mask infos["_final_obs"]; terminated envs get none.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from sonic_ray.envs.tracking_env import TrackingEnv
from sonic_ray.models import keys as K


class GymVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: TrackingEnv):
        self.env = env
        env.final_obs_groups = None  # gymnasium's final observation is the whole observation
        self.num_envs = env.num_envs
        dims = env.obs_dims()
        single = {
            k: spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in dims.items() if k != K.ENCODER_INDEX
        }
        single[K.ENCODER_INDEX] = spaces.Discrete(len(K.ENCODER_NAMES))
        self.single_observation_space = spaces.Dict(single)
        batched = {
            k: spaces.Box(-np.inf, np.inf, (self.num_envs, d), np.float32)
            for k, d in dims.items()
            if k != K.ENCODER_INDEX
        }
        batched[K.ENCODER_INDEX] = spaces.MultiDiscrete([len(K.ENCODER_NAMES)] * self.num_envs)
        self.observation_space = spaces.Dict(batched)
        self.single_action_space = spaces.Box(-np.inf, np.inf, (env.action_dim,), np.float32)
        self.action_space = spaces.Box(-np.inf, np.inf, (self.num_envs, env.action_dim), np.float32)

    @staticmethod
    def _np(obs: dict) -> dict:
        return {k: v.detach().cpu().numpy() for k, v in obs.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.env.generator.manual_seed(int(seed))
        return self._np(self.env.reset()), {}

    def step(self, actions):
        a = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(a)
        infos: dict = {}
        done = info["truncated_ids"].cpu().numpy()
        if len(done):
            final = np.full(self.num_envs, None, dtype=object)
            fo = self._np(info["final_obs"])
            for row, i in enumerate(done):
                final[i] = {k: v[row] for k, v in fo.items()}
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[done] = True
            infos["final_obs"], infos["_final_obs"] = final, mask
        return (self._np(obs), reward.cpu().numpy(), terminated.cpu().numpy(), truncated.cpu().numpy(), infos)

    def close_extras(self, **kwargs) -> None:
        self.env.close()
