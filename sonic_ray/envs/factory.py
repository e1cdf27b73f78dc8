"""`make_env(cfg)`: the one place that unpacks a SonicConfig into a TrackingEnv.

It loads the robot model, the runner's MotionLib shard (the configured store, or the embedded
synthetic set cached at motions.synth_cache), builds the reference table and start sampler,
creates the simulator backend through the sonic_ray.sim registry, and passes plain keyword
arguments down. Below this function nothing sees the config object.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from sonic_ray.envs.reference import ReferenceTable
from sonic_ray.envs.sampler import AdaptiveStartSampler, UniformStartSampler, bins_per_clip, global_bin_ids
from sonic_ray.envs.sampler_stats import FailureStats
from sonic_ray.envs.tracking_env import TrackingEnv
from sonic_ray.models.keys import ENCODER_NAMES


def _plain(x):
    """Config dataclasses / OmegaConf nodes -> plain dicts and lists."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, DictConfig | ListConfig):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        pass
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def observation_groups(obs_cfg) -> dict[str, dict]:
    """Config observations -> {obs key: group dict}: policy, critic, tokenizer_<encoder>."""
    obs = _plain(obs_cfg)
    groups = {"policy": obs["policy"], "critic": obs["critic"]}
    for name, g in obs.get("tokenizer", {}).items():
        if name not in ENCODER_NAMES:
            raise ValueError(
                f"env.observations.tokenizer.{name}: unknown encoder; expected one of {ENCODER_NAMES}"
            )
        groups[f"tokenizer_{name}"] = g
    for key, g in groups.items():
        if not g.get("terms"):
            raise ValueError(f"env.observations: group {key!r} has no terms")
    return groups


def load_motions(cfg, *, shard=None, device="cpu", fk=None):
    """The MotionLib of this runner's shard: motions.store, or the synthetic set when empty."""
    from sonic_ray.motion.motion_lib import MotionLib

    return MotionLib(
        motion_store_path(cfg), control_fps=cfg.motions.control_fps, shard=shard, device=device, fk=fk
    )


def make_reference(cfg, fk, robot, *, shard=None, device="cpu", mode: str | None = None):
    """The runner's reference (motions.reference, or `mode`): the full ReferenceTable of its shard,
    a CachedReference (whole clips in an arena) or a WindowReference (W frames per env) over the
    shard's stored arrays."""
    from sonic_ray.config.compose import REFERENCE_MODES

    mode = cfg.motions.reference if mode is None else mode
    kw = dict(
        anchor_body=robot.anchor_body,
        vr_points=robot.vr_points,
        smpl_points=robot.smpl_keypoints,
        device=device,
    )
    if mode == "table":
        return ReferenceTable(load_motions(cfg, shard=shard, device=device), fk, **kw)
    if mode not in REFERENCE_MODES:
        raise ValueError(f"motions.reference: {mode!r}, expected one of {', '.join(REFERENCE_MODES)}")
    from sonic_ray.envs.cached_reference import CachedReference, RawShard

    raw = RawShard(motion_store_path(cfg), shard)
    if mode == "window":
        from sonic_ray.envs.window_reference import WindowReference

        m = cfg.motions
        return WindowReference(
            raw,
            fk,
            control_fps=m.control_fps,
            window_frames=m.window_frames,
            full_frames=m.window_full_frames,
            **kw,
        )
    return CachedReference(
        raw, fk, control_fps=cfg.motions.control_fps, cache_frames=cfg.motions.cache_frames, **kw
    )


def make_sim(cfg, model, *, num_envs: int, device):
    """The configured simulator backend, from sonic_ray.sim's registry."""
    from sonic_ray.sim import make_sim as registry_make_sim

    kw = dict(num_envs=num_envs, decimation=cfg.sim.decimation, device=device)
    if cfg.sim.backend == "mujoco":  # CPU stepping threads; warp parallelises over worlds itself
        kw["num_threads"] = cfg.sim.num_threads
    if cfg.sim.backend == "isaaclab":  # Isaac Lab loads USD converted from the same MJCF
        from sonic_ray.robots.registry import model_mjcf

        kw["mjcf"] = model_mjcf(cfg.robot.name, mjcf_path=cfg.robot.mjcf_path, timestep=cfg.sim.timestep)
    return registry_make_sim(cfg.sim.backend, model, **kw)


def motion_store_path(cfg) -> str:
    """motions.store, or the embedded synthetic set (built once into motions.synth_cache)."""
    from sonic_ray.motion.default_store import ensure_synth_store

    return cfg.motions.store or ensure_synth_store(cfg.motions.synth_cache, robot=cfg.robot.name)


def global_num_bins(cfg) -> int:
    """Start-sampler bins over the whole motion store (the aggregator's table size)."""
    from sonic_ray.motion.motion_lib import store_control_frames

    frames = store_control_frames(motion_store_path(cfg), cfg.motions.control_fps)
    return int(bins_per_clip(frames, cfg.env.commands.motion.bin_size_frames).sum())


def make_failure_stats(cfg) -> FailureStats:
    """The start sampler's failure table over every bin of the store, as configured: the one builder
    for the Ray aggregator (`SamplerStatsActor`) and the in-process trainer."""
    mc = cfg.env.commands.motion
    return FailureStats(global_num_bins(cfg), smoothing=mc.rate_smoothing, cap_multiple=mc.failure_rate_cap)


def make_sampler(cfg, table: ReferenceTable, *, device="cpu"):
    """The configured start sampler over the table's clips, its bins numbered in the store's layout."""
    from sonic_ray.motion.motion_lib import store_control_frames

    mc = cfg.env.commands.motion
    frames = store_control_frames(motion_store_path(cfg), cfg.motions.control_fps)
    local = table.clip_frames.cpu().numpy()
    if not np.array_equal(frames[table.store_index.numpy()], local):
        raise ValueError(
            f"{motion_store_path(cfg)}: the footer's clip lengths do not match the loaded clips "
            "(store changed while loading?)"
        )
    kw = dict(
        bin_size_frames=mc.bin_size_frames,
        device=device,
        global_bins=global_bin_ids(frames, table.store_index.numpy(), mc.bin_size_frames),
    )
    if mc.sampler == "uniform":
        return UniformStartSampler(table.clip_frames, **kw)
    if mc.sampler == "adaptive":
        window = int(round(mc.pre_failure_window_s * cfg.motions.control_fps))
        return AdaptiveStartSampler(
            table.clip_frames, uniform_ratio=mc.uniform_ratio, window_frames=window, **kw
        )
    raise ValueError(f"env.commands.motion.sampler: {mc.sampler!r}, expected 'uniform' or 'adaptive'")


def make_env(
    cfg,
    *,
    num_envs: int | None = None,
    seed: int = 0,
    shard: tuple[int, int] | None = None,
    device=None,
    eval_mode: bool = False,
) -> TrackingEnv:
    """A TrackingEnv for `cfg` (a SonicConfig). num_envs/device default to cfg.env.num_envs /
    cfg.device; shard (k, n) selects clips k::n of the store; eval_mode uses eval_terminations."""
    from sonic_ray.robots import TorchFK, load_model

    device = torch.device(device if device is not None else cfg.device)
    n = int(num_envs if num_envs is not None else cfg.env.num_envs)
    model, robot = load_model(cfg.robot.name, mjcf_path=cfg.robot.mjcf_path, timestep=cfg.sim.timestep)
    fk = TorchFK(model, robot, device=device)
    table = make_reference(cfg, fk, robot, shard=shard, device=device)
    sampler = make_sampler(cfg, table, device=device)
    if cfg.motions.reference in ("cached", "window") and table.num_clips > 1:
        # a runner holds its shard and nothing of the store index past this point (the driver's
        # one-clip probe keeps it cached for its bin count)
        from sonic_ray.motion.sharded import forget

        forget(motion_store_path(cfg))
    mc = cfg.env.commands.motion
    command = {
        k: _plain(getattr(mc, k))
        for k in (
            "num_future_frames",
            "future_dt",
            "smpl_num_future_frames",
            "smpl_future_dt",
            "encoder_sample_probs",
            "reset_pose_noise",
        )
    }
    sim = make_sim(cfg, model, num_envs=n, device=device)
    terminations = cfg.env.eval_terminations if eval_mode else cfg.env.terminations
    return TrackingEnv(
        sim=sim,
        robot_spec=robot,
        table=table,
        sampler=sampler,
        num_envs=n,
        step_dt=cfg.sim.timestep * cfg.sim.decimation,
        episode_length_s=cfg.env.episode_length_s,
        observations=observation_groups(cfg.env.observations),
        rewards=_plain(cfg.env.rewards),
        terminations=_plain(terminations),
        events=_plain(cfg.env.events.terms),
        event_level=cfg.env.events.level,
        command=command,
        seed=seed,
        device=device,
        compile=cfg.env.compile,
        action_clip=cfg.env.action_clip,
    )
