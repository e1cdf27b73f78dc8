"""Small real inputs for evaluation tests: a motion store of a few short clips cut from the
embedded synthetic set (real G1 motions, so a policy starts from a physical pose)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sonic_ray.config import load_config
from sonic_ray.motion.default_store import ensure_synth_store
from sonic_ray.motion.store import iter_store, store_info, write_store

# (source clip index in the synthetic set, frames kept at its native rate)
CUTS = ((0, 30), (3, 45), (5, 20), (8, 36))
SMALL = ["+exp=smoke", "logging.wandb_mode=disabled", "env.num_envs=4", "algo.num_steps_per_env=6"]


def small_store(directory: Path, cuts=CUTS) -> Path:
    """A store with len(cuts) clips named cut<i>_<source name>, each the first frames of a synthetic clip."""
    synth = ensure_synth_store(load_config([]).motions.synth_cache)
    clips = list(iter_store(synth))
    out = []
    for i, (k, frames) in enumerate(cuts):
        c = clips[k]
        out.append(
            dataclasses.replace(
                c,
                name=f"cut{i}_{c.name}",
                root_pos=c.root_pos[:frames],
                root_quat=c.root_quat[:frames],
                joint_pos=c.joint_pos[:frames],
                smpl_joints=None if c.smpl_joints is None else c.smpl_joints[:frames],
            )
        )
    path = Path(directory) / "small.parquet"
    write_store(path, out, joint_names=store_info(synth)["joint_names"])
    return path


def small_config(store: Path, *overrides: str):
    return load_config([*SMALL, f"motions.store={store}", *overrides])


def small_checkpoint(root: Path, cfg, *, iteration: int = 3, seed: int = 0) -> Path:
    """A training checkpoint (the trainer's layout) of an untrained ActorCritic sized for `cfg`."""
    import torch

    from sonic_ray.config.compose import to_yaml
    from sonic_ray.eval.policy import model_kwargs_for
    from sonic_ray.models.actor_critic import ActorCritic
    from sonic_ray.train.checkpoint import save_checkpoint

    kwargs = model_kwargs_for(cfg)
    torch.manual_seed(seed)
    weights = {f"ac.{k}": v.detach().numpy().copy() for k, v in ActorCritic(**kwargs).state_dict().items()}
    state = {
        "format": 1,
        "iteration": iteration,
        "rng": {},
        "config_yaml": to_yaml(cfg),
        "model_kwargs": kwargs,
        "learner": {"learner": {"rl_module": {"default_policy": weights}}},
    }
    return save_checkpoint(Path(root) / "checkpoints", iteration, state)
