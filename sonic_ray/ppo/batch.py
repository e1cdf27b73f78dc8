"""From a shipped rollout to the flat tensors a PPO update consumes (values, GAE, returns).

Runs where the critic lives (the learner): env runners hold an inference-only policy, so values
are computed here, once per update, for the T*N steps, the bootstrap observations and the final
observations of truncated episodes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from sonic_ray.models import keys as K
from sonic_ray.ppo.gae import compute_gae


def as_tensor(a: np.ndarray, device) -> torch.Tensor:
    """Zero-copy where possible. Arrays from Ray's object store are read-only; nothing here writes
    to them (every derived tensor is a new one), so torch's non-writable warning is silenced."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.as_tensor(a, device=device)
    return torch.as_tensor(a, device=device)


def next_values_from(
    values: torch.Tensor, last_values: torch.Tensor, final_values: torch.Tensor, final_index: torch.Tensor
) -> torch.Tensor:
    """V(s_{t+1}) per step. values (T,N), last_values (N,), final_values (K,), final_index (K,) -> (T,N).

    Within an episode the next state's value is the next row's value. After a truncation at step t
    the next row belongs to a new episode, so the truncated episode's own final state is used.
    (After a termination the next value is multiplied by zero in GAE, whatever it is.)
    """
    next_values = torch.cat((values[1:], last_values.unsqueeze(0)), dim=0)
    flat = next_values.reshape(-1).clone()
    flat[final_index] = final_values
    return flat.view_as(values)


def training_tensors(
    data: dict[str, np.ndarray],
    *,
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    gamma: float,
    lam: float,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Flat (T*N rows) tensors for PPO: obs groups, actions, old logp/mean/std, values, advantages, returns.

    `value_fn(critic_obs (M,C)) -> (M,)` is the critic (with its normaliser), called without grad.
    """
    rewards = as_tensor(data[K.REWARDS], device).float()
    T, N = rewards.shape
    critic_obs = as_tensor(data[K.OBS_PREFIX + K.CRITIC], device).float()
    with torch.no_grad():
        everything = torch.cat(
            (
                critic_obs.reshape(T * N, -1),
                as_tensor(data[K.LAST_CRITIC_OBS], device).float(),
                as_tensor(data[K.FINAL_CRITIC_OBS], device).float(),
            )
        )
        v = value_fn(everything).reshape(-1)
    values = v[: T * N].view(T, N)
    last_values = v[T * N : T * N + N]
    final_values = v[T * N + N :]
    final_index = as_tensor(data[K.FINAL_INDEX], device).long()
    next_values = next_values_from(values, last_values, final_values, final_index)
    terminated = as_tensor(data[K.TERMINATED], device).bool()
    truncated = as_tensor(data[K.TRUNCATED], device).bool() & ~terminated
    advantages, returns = compute_gae(
        rewards, values, terminated, truncated, next_values, gamma=gamma, lam=lam
    )
    out = {}
    for key, arr in data.items():
        if key.startswith(K.OBS_PREFIX):
            name = key[len(K.OBS_PREFIX) :]
            x = as_tensor(arr, device)
            x = x.long() if name == K.ENCODER_INDEX else x.float()
            out[key] = x.reshape((T * N,) + tuple(x.shape[2:]))
    A = data[K.ACTIONS].shape[-1]
    out[K.ACTIONS] = as_tensor(data[K.ACTIONS], device).float().reshape(T * N, A)
    out[K.LOGP] = as_tensor(data[K.LOGP], device).float().reshape(T * N)
    out[K.ACTION_MEAN] = as_tensor(data[K.ACTION_MEAN], device).float().reshape(T * N, A)
    out[K.ACTION_STD] = as_tensor(data[K.ACTION_STD], device).float().expand(T * N, A)
    out[K.VALUES] = values.reshape(-1)
    out[K.ADVANTAGES] = advantages.reshape(-1)
    out[K.RETURNS] = returns.reshape(-1)
    return out


def obs_groups(data: dict) -> dict:
    """The observation groups of a flat batch ({"obs/<group>": x} entries) as {group: x}."""
    return {k[len(K.OBS_PREFIX) :]: v for k, v in data.items() if k.startswith(K.OBS_PREFIX)}


def minibatch(data: dict[str, torch.Tensor], idx: torch.Tensor, *, normalize_advantage: bool) -> dict:
    """Rows `idx` of the flat batch, observation groups gathered under K.OBS as a dict."""
    mb: dict = {K.OBS: {}}
    for key, value in data.items():
        if key.startswith(K.OBS_PREFIX):
            mb[K.OBS][key[len(K.OBS_PREFIX) :]] = value.index_select(0, idx)
        else:
            mb[key] = value.index_select(0, idx)  # cheaper than value[idx] on CPU
    if normalize_advantage:
        adv = mb[K.ADVANTAGES]
        mb[K.ADVANTAGES] = (adv - adv.mean()) / (adv.std() + 1e-8)
    return mb
