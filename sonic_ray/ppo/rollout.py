"""Rollout collection into flat numpy arrays, shared by the Ray env runner and the in-process trainer.

A rollout is T steps of N envs stored time-major in preallocated arrays (no per-env episode
objects). What the learner needs beyond the per-step arrays:
- `last_critic_obs` (N,C): the critic observation after the final step, to bootstrap step T-1;
- `final_critic_obs` (K,C) with `final_index` (K,) = t*N + n: the critic observation an env
  reached when its episode was *truncated* at step t (before autoreset replaced it). Terminated
  steps need no bootstrap, so their final observations are not shipped.
Encoder indices travel as int8 and flags as bool: bytes per transition stay close to the floats
the learner really needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sonic_ray.models import keys as K
from sonic_ray.ppo.compact import per_rollout


@dataclass
class FlatBatch:
    """A T x N rollout (or a slice of its envs) as numpy arrays, plus episode metrics.

    A plain object on purpose: RLlib flattens dicts it receives as batches, and numpy arrays inside
    an object still travel zero-copy through Ray's object store.
    """

    data: dict[str, np.ndarray]
    metrics: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the Ray node id that produced it (learner/cross_node_bytes); "" outside Ray

    @property
    def num_steps(self) -> int:
        return self.data[K.REWARDS].shape[0]

    @property
    def num_envs(self) -> int:
        return self.data[K.REWARDS].shape[1]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.data.values())


def _np(x: torch.Tensor, dtype=None) -> np.ndarray:
    a = x.detach().to("cpu").numpy()
    return a.astype(dtype, copy=False) if dtype is not None else a


class RolloutCollector:
    """Steps a batched env with a policy for `num_steps` and fills preallocated arrays.

    `act_fn(obs) -> (actions (N,A), logp (N,), mean (N,A), std (A,) or (N,A))` runs under no_grad.
    The env follows the TrackingEnv contract: `step(actions) -> (obs, reward, terminated, truncated,
    info)` with autoreset; `info["truncated_ids"]` lists the envs truncated this step (never also
    terminated) and `info["final_obs"]` their observations before the reset.
    """

    def __init__(self, env, act_fn: Callable, num_steps: int, compact=None):
        self.env = env
        self.act_fn = act_fn
        self.num_steps = num_steps
        self.compact = compact  # a ppo.compact.CompactEncoder: ship the compact format
        self.obs = None

    def _record_obs(self, buf: dict[str, np.ndarray], t: int, obs: dict[str, torch.Tensor]) -> None:
        """Copy the observation acted on at step t into the rollout. Called before env.step: the
        env's observations are views of its history ring buffers, which the step overwrites (a
        copy taken after the step corrupted every H-th policy row)."""
        T = self.num_steps
        enc = _np(obs[K.ENCODER_INDEX], np.int8)
        if K.OBS_PREFIX + K.ENCODER_INDEX not in buf:
            buf[K.OBS_PREFIX + K.ENCODER_INDEX] = np.empty((T,) + enc.shape, np.int8)
        buf[K.OBS_PREFIX + K.ENCODER_INDEX][t] = enc
        if self.compact is not None:
            self.compact.record(buf, t, obs, T)
            return
        for k, v in obs.items():
            if k == K.ENCODER_INDEX:
                continue
            arr = _np(v)
            key = K.OBS_PREFIX + k
            if key not in buf:
                buf[key] = np.empty((T,) + arr.shape, dtype=arr.dtype)
            buf[key][t] = arr

    def collect(self) -> FlatBatch:
        env, T = self.env, self.num_steps
        if self.obs is None:
            self.obs = env.reset()
        buf: dict[str, np.ndarray] = {}
        finals, final_index = [], []
        for t in range(T):
            obs = self.obs
            with torch.no_grad():
                actions, logp, mean, std = self.act_fn(obs)
            self._record_obs(buf, t, obs)
            next_obs, reward, terminated, truncated, info = env.step(actions)
            step = {
                K.ACTIONS: actions,
                K.LOGP: logp,
                K.ACTION_MEAN: mean,
                K.REWARDS: reward,
                K.TERMINATED: terminated,
                K.TRUNCATED: truncated,
            }
            for key, value in step.items():
                arr = _np(value)
                if key not in buf:
                    buf[key] = np.empty((T,) + arr.shape, dtype=arr.dtype)
                buf[key][t] = arr
            trunc_ids = info["truncated_ids"]
            if len(trunc_ids):
                finals.append(_np(info["final_obs"][K.CRITIC]))
                final_index.append(_np(t * env.num_envs + trunc_ids))
            self.obs = next_obs
        buf[K.ACTION_STD] = _np(std).reshape(-1, actions.shape[-1])[0]
        if self.compact is not None:
            self.compact.record(buf, T, self.obs, T)  # row T: the critic's bootstrap observation
            self.compact.finish(buf)
        else:
            buf[K.LAST_CRITIC_OBS] = _np(self.obs[K.CRITIC])
        critic_dim = self.obs[K.CRITIC].shape[-1]
        buf[K.FINAL_CRITIC_OBS] = np.concatenate(finals) if finals else np.zeros((0, critic_dim), np.float32)
        buf[K.FINAL_INDEX] = (
            np.concatenate(final_index).astype(np.int64) if final_index else np.zeros(0, np.int64)
        )
        metrics = env.metrics()
        metrics["reward/total"] = float(buf[K.REWARDS].mean())  # per step, weights x dt applied
        return FlatBatch(buf, metrics)


def split_envs(batch: FlatBatch, num_parts: int) -> list[FlatBatch]:
    """Split a rollout along the env axis into `num_parts` contiguous slices (one per learner)."""
    if num_parts == 1:
        return [batch]
    N = batch.num_envs
    if N < num_parts:
        raise ValueError(f"cannot split {N} envs across {num_parts} learners: need num_envs >= num_learners")
    bounds = np.linspace(0, N, num_parts + 1).astype(int)
    t_of = batch.data[K.FINAL_INDEX] // N
    n_of = batch.data[K.FINAL_INDEX] % N
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        d = {}
        for key, arr in batch.data.items():
            if per_rollout(key):
                d[key] = arr
            elif key in (K.FINAL_CRITIC_OBS, K.FINAL_INDEX):
                continue
            elif key == K.LAST_CRITIC_OBS:
                d[key] = arr[lo:hi]
            else:
                d[key] = arr[:, lo:hi]
        sel = (n_of >= lo) & (n_of < hi)
        d[K.FINAL_CRITIC_OBS] = batch.data[K.FINAL_CRITIC_OBS][sel]
        d[K.FINAL_INDEX] = t_of[sel] * (hi - lo) + (n_of[sel] - lo)
        parts.append(FlatBatch(d, batch.metrics if lo == 0 else {}, batch.origin))
    return parts


def concat_envs(batches: list[FlatBatch]) -> FlatBatch:
    """Inverse of `split_envs`: join rollouts of the same T along the env axis."""
    if len(batches) == 1:
        return batches[0]
    out: dict[str, np.ndarray] = {}
    offset = 0
    finals, index = [], []
    T = batches[0].num_steps
    N_total = sum(b.num_envs for b in batches)
    for b in batches:
        fi = b.data[K.FINAL_INDEX]
        t_of, n_of = fi // b.num_envs, fi % b.num_envs
        finals.append(b.data[K.FINAL_CRITIC_OBS])
        index.append(t_of * N_total + n_of + offset)
        offset += b.num_envs
    for key in batches[0].data:
        if per_rollout(key):
            same = all(np.array_equal(b.data[key], batches[0].data[key]) for b in batches)
            if key != K.ACTION_STD and not same:
                raise ValueError(
                    f"concat_envs: {key!r} differs between rollouts (expand compact rollouts first)"
                )
            out[key] = batches[0].data[key]
        elif key == K.LAST_CRITIC_OBS:
            out[key] = np.concatenate([b.data[key] for b in batches], axis=0)
        elif key not in (K.FINAL_CRITIC_OBS, K.FINAL_INDEX):
            out[key] = np.concatenate([b.data[key] for b in batches], axis=1)
    out[K.FINAL_CRITIC_OBS] = np.concatenate(finals)
    out[K.FINAL_INDEX] = np.concatenate(index)
    assert out[K.REWARDS].shape == (T, N_total)
    return FlatBatch(out, {})
