"""Generalised advantage estimation with terminations and truncations kept apart."""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    next_values: torch.Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, all (T, N).

    next_values[t] is V(s_{t+1}) of the state reached by step t: for a step that ended its episode
    this is the episode's own final state (before autoreset), not the next row's fresh start.
    - terminated[t]: the episode failed, no bootstrap (delta = r - V).
    - truncated[t] (and not terminated): time ran out, bootstrap from next_values[t].
    In both cases the recursion stops at t: the next row belongs to another episode.
    """
    T = rewards.shape[0]
    terminated = terminated.to(rewards.dtype)
    ended = torch.maximum(terminated, truncated.to(rewards.dtype))
    advantages = torch.empty_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_values[t] * (1.0 - terminated[t]) - values[t]
        last = delta + gamma * lam * (1.0 - ended[t]) * last
        advantages[t] = last
    return advantages, advantages + values
