"""Evaluate a policy on every clip of a motion store (or a shard of it), once each, from frame 0.

Ray-free. The env is the training env built by `make_env(eval_mode=True)` (SONIC's evaluation
terminations) from a copy of the config with every randomisation off (event level 0, no reset
pose noise, no observation noise); the policy acts deterministically (`act_inference`). Clips are
handed to envs through a queue (`ClipQueueSampler`): an env whose episode ended takes the next
clip, so long and short clips share the batch; once the queue is empty, idle envs replay a clip
whose steps are ignored. An episode ends on a failure (an eval termination: `failed`) or at the
clip's end; the time limit is raised past the longest clip, so clips longer than the training
episode are evaluated whole.

Time alignment: frame t of a row pairs the robot's state at the t-th observation of the episode
(after the reset for t = 0, after step t otherwise) with the reference frame that observation
shows, i.e. both describe the same instant. A clip of L frames that succeeds yields L frames; a
failure at step k yields the k frames observed before it.

The blind control (`blind=True`, rows with encoder "blind"): the g1 observations, but the action
decoder gets the FSQ's centre code (all zeros) instead of the motion's token, so it acts from
proprioception alone. A policy that tracks what the token says does worse blind; one that only
learned to keep its balance does as well (BENCHMARKS.md "The decoder ignored the token").
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sonic_ray.config.schema import SonicConfig
from sonic_ray.eval.metrics import BLIND, clip_metrics
from sonic_ray.motion.store import clip_names, shard_indices, store_size


class BlindPolicy:
    """`policy` (an ActorCritic) acting with the FSQ's centre code (zeros) for every token: what its
    action decoder does from proprioception alone (the blind control)."""

    def __init__(self, policy):
        self.policy = policy

    def act_inference(self, obs) -> torch.Tensor:
        from sonic_ray.models import keys as K  # here: sim2sim imports this module, never the models

        obs = self.policy.normalize_actor_obs(obs)
        proprio = obs[K.POLICY]
        token = proprio.new_zeros(proprio.shape[0], self.policy.token.latent_dim)
        return self.policy.token.action_mean(token, proprio)


class ClipQueueSampler:
    """A StartSampler for evaluation: hands out `clip_ids` in order, each once, from frame 0.

    After each `sample(n)`, `last_slots` (n,) holds the queue position given to each of the n envs
    (in the order they were asked for), -1 for an env that got the idle filler clip."""

    def __init__(self, clip_ids: Sequence[int], *, idle_clip: int = 0, device="cpu"):
        self.device = torch.device(device)
        self.clip_ids = torch.as_tensor(list(clip_ids), dtype=torch.long, device=self.device)
        self.idle_clip = int(idle_clip)
        self.next_slot = 0
        self.last_slots = torch.zeros(0, dtype=torch.long, device=self.device)

    @property
    def exhausted(self) -> bool:
        return self.next_slot >= len(self.clip_ids)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        take = min(n, len(self.clip_ids) - self.next_slot)
        slots = torch.full((n,), -1, dtype=torch.long, device=self.device)
        slots[:take] = torch.arange(self.next_slot, self.next_slot + take, device=self.device)
        self.next_slot += take
        clips = torch.full((n,), self.idle_clip, dtype=torch.long, device=self.device)
        clips[:take] = self.clip_ids[slots[:take]]
        self.last_slots = slots
        return clips, torch.zeros(n, dtype=torch.long, device=self.device)

    def record(self, clip_ids, start_frames, end_frames, failed) -> None:
        """Evaluation keeps no start statistics."""


@dataclass
class ClipTrajectory:
    """What a video needs: qpos (T, 7 + J) of robot and reference (root pos, root quat wxyz, joints)."""

    row: dict
    robot_qpos: np.ndarray
    ref_qpos: np.ndarray
    fps: float


@dataclass
class EvalOutput:
    rows: list[dict]
    worst: list[ClipTrajectory] = field(default_factory=list)
    env_steps: int = 0
    seconds: float = 0.0


def worst_first_key(row: dict) -> tuple:
    """Sort key, worst clip first: failures before successes, earlier failures first, then the
    larger global MPJPE."""
    g = row.get("mpjpe_g_mm")
    g = 0.0 if g is None or not np.isfinite(g) else float(g)
    return (bool(row["success"]), row.get("completed", 1.0) if not row["success"] else 0.0, -g)


def eval_config(cfg: SonicConfig) -> SonicConfig:
    """A copy of `cfg` with every randomisation off: event level 0, no reset pose noise."""
    c = copy.deepcopy(cfg)
    c.env.events.level = 0
    c.env.commands.motion.reset_pose_noise = {}
    return c


def store_clip_names(cfg: SonicConfig, shard: tuple[int, int] | None) -> tuple[list[str], list[int]]:
    """Names and store indices of the clips in `shard`, in the order the env's MotionLib holds them."""
    # envs lazily, here and below: sim2sim and the report use this module's trajectories and ranking
    # without loading the training env (tests/deploy/test_sim2sim.py lists what sim2sim imports)
    from sonic_ray.envs.factory import motion_store_path

    store = motion_store_path(cfg)
    idx = shard_indices(store_size(store)[1], shard)
    return clip_names(store, idx), idx


class _Recorder:
    """Per-env buffers of the current episode: body positions (and qpos when videos are wanted)."""

    def __init__(self, n: int, t_max: int, b: int, nq: int, with_qpos: bool):
        self.t = np.zeros(n, dtype=np.int64)
        self.robot = np.zeros((n, t_max, b, 3), dtype=np.float32)
        self.ref = np.zeros((n, t_max, b, 3), dtype=np.float32)
        self.with_qpos = with_qpos
        if with_qpos:
            self.robot_q = np.zeros((n, t_max, nq), dtype=np.float32)
            self.ref_q = np.zeros((n, t_max, nq), dtype=np.float32)

    def record(self, env, active: np.ndarray) -> None:
        ids = np.nonzero(active)[0]
        if not len(ids):
            return
        t = self.t[ids]
        rob, cmd = env.robot, env.cmd
        self.robot[ids, t] = rob.body_pos_w.detach().cpu().numpy()[ids]
        self.ref[ids, t] = cmd.ref_body_pos_w.detach().cpu().numpy()[ids]
        if self.with_qpos:
            q = torch.cat((rob.root_pos_w, rob.root_quat_w, rob.joint_pos), dim=-1)
            rq = torch.cat((cmd.ref_root_pos_w, cmd.ref_root_quat_w, cmd.ref_joint_pos), dim=-1)
            self.robot_q[ids, t] = q.detach().cpu().numpy()[ids]
            self.ref_q[ids, t] = rq.detach().cpu().numpy()[ids]
        self.t[ids] += 1


def evaluate_policy(
    cfg: SonicConfig,
    policy,
    *,
    encoders: Sequence[str] = ("g1",),
    shard=None,
    clip_ids: Sequence[int] | None = None,
    num_envs: int | None = None,
    device="cpu",
    seed: int = 0,
    keep_worst: int = 0,
    on_clip: Callable[[dict], None] | None = None,
    blind: bool = False,
) -> EvalOutput:
    """Rows (one per clip and encoder) of `clip_metrics` plus clip, clip_index (store index),
    clip_frames and completed (fraction of the clip tracked); the `keep_worst` worst
    trajectories (by `worst_first_key`) for videos. `clip_ids`: shard-local clip indices (all
    when None). `on_clip(row)` is called as each clip finishes (progress). `blind`: also the
    blind control (rows with encoder "blind": g1 observations, the token zeroed), never kept
    among the worst."""
    from sonic_ray.envs.factory import make_env

    names, store_idx = store_clip_names(cfg, shard)
    clips = list(range(len(names))) if clip_ids is None else [int(c) for c in clip_ids]
    out = EvalOutput(rows=[])
    if not clips:
        return out
    n = max(1, min(int(num_envs or cfg.env.num_envs), len(clips)))
    env = make_env(eval_config(cfg), num_envs=n, seed=seed, shard=shard, device=device, eval_mode=True)
    t0 = time.perf_counter()
    try:
        frames = env.cmd.table.clip_frames.cpu().numpy()
        if len(frames) != len(names):
            raise RuntimeError(f"the env holds {len(frames)} clips but the store index lists {len(names)}")
        bad = [c for c in clips if not 0 <= c < len(frames)]
        if bad:
            raise ValueError(f"clip ids {bad[:5]} out of range: this shard holds {len(frames)} clips")
        idle = int(np.argmin(frames))
        for enc in encoders:
            _run_encoder(env, policy, enc, clips, frames, names, store_idx, idle, keep_worst, out, on_clip)
        if blind:
            _run_encoder(
                env, BlindPolicy(policy), "g1", clips, frames, names, store_idx, idle, 0, out, on_clip, BLIND
            )
    finally:
        env.close()
    out.seconds = time.perf_counter() - t0
    return out


def _run_encoder(
    env, policy, encoder, clips, frames, names, store_idx, idle, keep_worst, out, on_clip, label=None
) -> None:
    sampler = ClipQueueSampler(clips, idle_clip=idle, device=env.device)
    t_max = int(frames[clips].max())
    obs = env.start_evaluation(sampler, encoder=encoder, max_episode_length=t_max + 1)
    n = env.num_envs
    slot = sampler.last_slots.cpu().numpy().copy()
    nq = 7 + env.action_dim
    rec = _Recorder(n, t_max, len(env.cmd.body_names), nq, with_qpos=keep_worst > 0)
    rec.record(env, slot >= 0)
    fps, body_names = float(env.cmd.table.fps), env.cmd.body_names
    done_count = 0
    while done_count < len(clips):
        with torch.no_grad():
            actions = policy.act_inference(obs)
        obs, _, terminated, _, info = env.step(actions)
        out.env_steps += n
        done = info["done_ids"].cpu().numpy()
        term = terminated.cpu().numpy()
        for i in done:
            if slot[i] < 0:
                continue
            c, t = clips[slot[i]], int(rec.t[i])
            row = clip_metrics(
                rec.robot[i, :t],
                rec.ref[i, :t],
                fps=fps,
                failed=bool(term[i]),
                body_names=body_names,
                encoder=label or encoder,
            )
            row.update(
                clip=names[c],
                clip_index=int(store_idx[c]),
                clip_frames=int(frames[c]),
                completed=t / max(int(frames[c]), 1),
            )
            out.rows.append(row)
            done_count += 1
            if keep_worst > 0:
                _keep(
                    out.worst,
                    ClipTrajectory(row, rec.robot_q[i, :t].copy(), rec.ref_q[i, :t].copy(), fps),
                    keep_worst,
                )
            if on_clip is not None:
                on_clip(row)
        if len(done):
            slot[done] = sampler.last_slots.cpu().numpy()
            rec.t[done] = 0
        rec.record(env, slot >= 0)


def _keep(worst: list[ClipTrajectory], traj: ClipTrajectory, k: int) -> None:
    worst.append(traj)
    worst.sort(key=lambda tr: worst_first_key(tr.row))
    del worst[k:]
