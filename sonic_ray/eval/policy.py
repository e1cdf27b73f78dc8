"""Rebuild the trained ActorCritic from a training checkpoint, without Ray.

A checkpoint (`sonic_ray.train.checkpoint`) holds `config_yaml` (the validated run config),
`learner` (RLlib's learner-group state: the module weights under
learner/rl_module/default_policy, keys prefixed `ac.`) and `model_kwargs` (ActorCritic's keyword
arguments; checkpoints saved before it was added get their model sizes from a one-env probe of
the configured environment, exactly as training sized the model).
Evaluation, the checkpoint monitor and ONNX export all read checkpoints through `read_checkpoint`
(resolve, verify, load once) and build the policy from that state with `PolicyCheckpoint.policy`;
`load_policy` does both in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from sonic_ray.config.compose import ConfigError, to_typed
from sonic_ray.config.schema import SonicConfig
from sonic_ray.envs.factory import make_env
from sonic_ray.models.actor_critic import ActorCritic
from sonic_ray.models.factory import actor_critic_kwargs
from sonic_ray.train.checkpoint import (
    CheckpointError,
    checkpoint_iteration,
    load_checkpoint,
    resolve_checkpoint,
)

MODULE_PREFIX = "ac."


def config_from_state(
    state: dict[str, Any], overrides: Sequence[str] = (), *, source: str = "checkpoint"
) -> SonicConfig:
    """The run's SonicConfig from a checkpoint state, with `key=value` overrides applied on top
    (a leading `+`/`++` is accepted and ignored: every key must exist in the schema)."""
    if "config_yaml" not in state:
        raise CheckpointError(
            f"{source}: no config_yaml in the checkpoint state (not a sonic-ray training checkpoint?)"
        )
    base = _migrate(OmegaConf.create(state["config_yaml"]))
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides {bad}: expected key=value")
    if overrides:
        base = OmegaConf.merge(base, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    return to_typed(base)


def _migrate(base):
    """Configs saved by earlier versions: `algo.eval_interval` moved to `callbacks.eval_interval`;
    `sim.warp_device` was dropped (the warp backend runs on `device`); the motion command's
    `adaptive` / `max_window_shift_frames` became `sampler` / `pre_failure_window_s`; reset noise
    `root_pos` / `root_rpy` (one range for every axis) became per-axis keys (gear_sonic's); the
    reward `feet_acc_l2` became SONIC's `joint_acc_l2` over the ankle joints; FSQ was clamp-bounded
    before `actor_critic.quantizer.bound` (default tanh) existed."""
    sim = base.get("sim")
    if sim is not None and "warp_device" in sim:
        sim.pop("warp_device")
    motion = (base.get("env") or {}).get("commands", {}).get("motion")
    if motion is not None:
        if "adaptive" in motion:
            adaptive = motion.pop("adaptive")
            motion.setdefault("sampler", "adaptive" if adaptive else "uniform")
        if "max_window_shift_frames" in motion:
            frames = motion.pop("max_window_shift_frames")
            fps = float((base.get("motions") or {}).get("control_fps", 50.0))
            motion.setdefault("pre_failure_window_s", frames / fps)
        noise = motion.get("reset_pose_noise")
        if noise is not None:
            for old, new in (
                ("root_pos", ("root_pos_xy", "root_pos_z")),
                ("root_rpy", ("root_roll_pitch", "root_yaw")),
            ):
                if old in noise:
                    value = noise.pop(old)
                    for key in new:
                        noise.setdefault(key, value)
    rewards = (base.get("env") or {}).get("rewards")
    if rewards is not None and "feet_acc_l2" in rewards:
        old = rewards.pop("feet_acc_l2")
        rewards.setdefault(
            "joint_acc_l2", {"weight": old.get("weight", -2.5e-6), "params": {"joint_pattern": ".*ankle.*"}}
        )
    quantizer = (base.get("actor_critic") or {}).get("quantizer")
    if quantizer is not None and "bound" not in quantizer:
        quantizer.bound = "clamp"  # FSQ's only bound before `bound` existed
    algo = base.get("algo")
    if algo is not None and "eval_interval" in algo:
        interval = algo.pop("eval_interval")
        if base.get("callbacks") is not None and "eval_interval" not in base.callbacks:
            base.callbacks.eval_interval = interval
    return base


def model_kwargs_for(cfg: SonicConfig) -> dict[str, Any]:
    """ActorCritic keyword arguments for `cfg`, observation sizes probed from a one-env instance."""
    env = make_env(cfg, num_envs=1, seed=cfg.seed, device="cpu")
    try:
        return actor_critic_kwargs(cfg, obs_dims=env.obs_dims(), action_dim=env.action_dim)
    finally:
        env.close()


def module_weights(state: dict[str, Any], *, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The ActorCritic state dict inside a learner-group state (RLlib stores numpy arrays)."""
    try:
        weights = state["learner"]["learner"]["rl_module"]["default_policy"]
    except (KeyError, TypeError) as e:
        raise CheckpointError(
            f"{source}: no module weights at learner/learner/rl_module/default_policy (missing {e})"
        ) from e
    out = {}
    for key, value in weights.items():
        if not key.startswith(MODULE_PREFIX):
            raise CheckpointError(f"{source}: module weight {key!r} does not start with {MODULE_PREFIX!r}")
        out[key[len(MODULE_PREFIX) :]] = torch.as_tensor(np.asarray(value))
    return out


def policy_from_state(
    state: dict[str, Any],
    overrides: Sequence[str] = (),
    *,
    device: str | torch.device = "cpu",
    source: str = "checkpoint",
) -> tuple[SonicConfig, ActorCritic]:
    cfg = config_from_state(state, overrides, source=source)
    kwargs = state.get("model_kwargs") or model_kwargs_for(cfg)
    ac = ActorCritic(**kwargs)
    weights = module_weights(state, source=source)
    ref = ac.state_dict()
    for key, value in weights.items():
        if key in ref and ref[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: weight {key!r} has shape {tuple(value.shape)}, the model built from "
                f"its config expects {tuple(ref[key].shape)}"
            )
    missing, unexpected = ac.load_state_dict(
        {k: v.to(ref[k].dtype) if k in ref else v for k, v in weights.items()}, strict=False
    )
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not fit the model built from its config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return cfg, ac.to(device).eval()


@dataclass
class PolicyCheckpoint:
    """A resolved, verified checkpoint whose state was loaded (on the CPU) once: its config,
    iteration and policy all come from `state`, so nothing reads the checkpoint twice."""

    path: Path
    state: dict[str, Any]

    @property
    def iteration(self) -> int:
        """The state's iteration (the trainer always saves it), else the directory's iter_N, else 0."""
        return int(self.state.get("iteration", checkpoint_iteration(self.path) or 0))

    def config(self, overrides: Sequence[str] = ()) -> SonicConfig:
        return config_from_state(self.state, overrides, source=str(self.path))

    def policy(
        self, overrides: Sequence[str] = (), *, device: str | torch.device = "cpu"
    ) -> tuple[SonicConfig, ActorCritic]:
        return policy_from_state(self.state, overrides, device=device, source=str(self.path))


def read_checkpoint(checkpoint: str | Path) -> PolicyCheckpoint:
    """Resolve a checkpoint dir, or a run dir (its latest), verify it and load its state on the CPU.

    Raises CheckpointError for a missing, incomplete or corrupt checkpoint (the message names it)."""
    path = resolve_checkpoint(checkpoint)
    return PolicyCheckpoint(path, load_checkpoint(path, map_location="cpu"))


def load_policy(
    checkpoint: str | Path, overrides: Sequence[str] = (), *, device: str | torch.device = "cpu"
) -> tuple[SonicConfig, ActorCritic]:
    """(cfg, ActorCritic in eval mode on `device`) from a checkpoint dir, or a run dir (its latest).

    Raises CheckpointError for a missing, incomplete or corrupt checkpoint (the message names it)
    and ConfigError for a bad override."""
    return read_checkpoint(checkpoint).policy(overrides, device=device)
