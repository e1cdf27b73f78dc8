"""Bytes a runner ships per transition, full vs compact rollout format (ppo/compact.py), at a layout.

One rollout of each format is collected in-process with a small N from the preset (random actions:
the sizes do not depend on the policy), and each array's bytes are scaled to `target_envs`: arrays
with an env axis cost the same per transition at any N; per-rollout arrays (action std, float16
means) are divided by T x target_envs; truncated episodes' final critic observations are counted at
the rate the small run measured.
"""

from __future__ import annotations

import torch

from sonic_ray.models import keys as K
from sonic_ray.ppo.compact import per_rollout


def bytes_at(data: dict, *, num_steps: int, num_envs: int, target_envs: int) -> float:
    """Bytes per transition of a rollout's arrays collected at num_envs, as at target_envs."""
    total = 0.0
    for key, arr in data.items():
        if per_rollout(key):
            total += arr.nbytes / (num_steps * target_envs)
        else:
            total += arr.nbytes / (num_steps * num_envs)
    return total


def measure(exp: str, *, num_steps: int, target_envs: int, num_envs: int = 16, overrides=()) -> dict:
    """{"full", "compact" (bytes per transition), "compact_over_full", "num_envs", "num_steps"}."""
    from sonic_ray.config import load_config
    from sonic_ray.envs.factory import make_env
    from sonic_ray.ppo.compact_factory import make_compact_encoder
    from sonic_ray.ppo.rollout import RolloutCollector

    out = {"num_envs": target_envs, "num_steps": num_steps, "measured_with_envs": num_envs}
    for fmt in ("full", "compact"):
        cfg = load_config(
            [
                f"+exp={exp}",
                "device=cpu",
                "sim.backend=mujoco",
                "sim.num_threads=1",
                f"env.num_envs={num_envs}",
                f"algo.num_steps_per_env={num_steps}",
                f"ray.rollout_format={fmt}",
                *overrides,
            ]
        )
        env = make_env(cfg, seed=0)
        gen = torch.Generator().manual_seed(0)

        def act(obs, env=env, gen=gen):
            a = 0.1 * torch.randn(env.num_envs, env.action_dim, generator=gen)
            return a, torch.zeros(env.num_envs), a, torch.ones(env.action_dim)

        fb = RolloutCollector(env, act, num_steps, compact=make_compact_encoder(cfg, env)).collect()
        env.close()
        out[fmt] = bytes_at(fb.data, num_steps=num_steps, num_envs=num_envs, target_envs=target_envs)
        if fmt == "full":
            out["obs_dims"] = {
                k[len(K.OBS_PREFIX) :]: int(v.shape[-1])
                for k, v in fb.data.items()
                if k.startswith(K.OBS_PREFIX) and v.ndim == 3
            }
    out["compact_over_full"] = out["compact"] / out["full"]
    return out


LAYOUTS = {"demo": ("demo", 24, 128), "release": ("sonic_release", 24, 4096)}


def by_layout(layouts=("demo", "release")) -> dict:
    return {
        name: measure(LAYOUTS[name][0], num_steps=LAYOUTS[name][1], target_envs=LAYOUTS[name][2])
        for name in layouts
    }
