"""Factories of the compact rollout format's two ends (ppo/compact.py) from the typed config:
the runner's encoder and the learner's observation rebuilder."""

from __future__ import annotations

import torch

from sonic_ray.envs.command import future_frame_offsets, lower_body_joint_ids
from sonic_ray.envs.factory import make_reference, observation_groups
from sonic_ray.envs.tracking_env import TrackingEnv
from sonic_ray.ppo.compact import FORMATS, CompactEncoder, ObservationRebuilder, plan_groups
from sonic_ray.robots import TorchFK, load_model


def make_compact_encoder(cfg, env: TrackingEnv):
    """The runner's compact-rollout encoder (ppo/compact.py), or None when ray.rollout_format is full."""
    fmt = cfg.ray.rollout_format
    if fmt not in FORMATS:
        raise ValueError(f"ray.rollout_format: {fmt!r}, expected one of {FORMATS}")
    if fmt == "full":
        return None
    return CompactEncoder(
        env,
        plan_groups(observation_groups(cfg.env.observations)),
        float16_groups=list(cfg.ray.rollout_float16),
    )


def make_obs_rebuilder(cfg, *, device="cpu", shard: tuple[int, int] | None = None):
    """The learner's ObservationRebuilder: the reference of `shard` (None: the whole store) built
    exactly as make_env builds the runners' (same FK, same reference features, same
    `motions.reference`: with `cached` a clip is computed when a rollout names it, so a learner never
    holds the whole store's table; `window` is per env, so its learner uses the `cached` clip arena,
    whose rows are the same), and the horizons and joint sets of the command, so rebuilt
    observations equal the env's."""
    device = torch.device(device)
    model, robot = load_model(cfg.robot.name, mjcf_path=cfg.robot.mjcf_path, timestep=cfg.sim.timestep)
    fk = TorchFK(model, robot, device=device)
    mode = "cached" if cfg.motions.reference == "window" else None  # rows by (clip, frame)
    table = make_reference(cfg, fk, robot, shard=shard, device=device, mode=mode)
    mc = cfg.env.commands.motion
    horizons = {
        "g1": future_frame_offsets(mc.num_future_frames, mc.future_dt, table.fps),
        "smpl": future_frame_offsets(mc.smpl_num_future_frames, mc.smpl_future_dt, table.fps),
    }
    horizons = {k: v.to(device) for k, v in horizons.items()}
    lower = torch.tensor(lower_body_joint_ids(robot.joint_names), dtype=torch.long, device=device)
    return ObservationRebuilder(
        table,
        plan_groups(observation_groups(cfg.env.observations)),
        anchor_index=table.body_names.index(robot.anchor_body),
        horizons=horizons,
        lower_body_joint_ids=lower,
        device=device,
    )
