"""The PPO update loop (epochs x minibatches) and SONIC's adaptive-KL learning-rate rule.

`minibatch_indices` and `adapt_lr` are shared with the RLlib learner; `PPOUpdater` is the
in-process optimiser step (two Adam optimisers: actor with the adaptive lr, critic fixed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from sonic_ray.ppo.batch import minibatch
from sonic_ray.ppo.losses import compute_losses
from sonic_ray.ppo.rollout import ACTIONS


def minibatch_indices(rows: int, num_epochs: int, num_mini_batches: int, *, device="cpu",
                      generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """A fresh permutation per epoch cut into `num_mini_batches` near-equal index tensors."""
    if rows < num_mini_batches:
        raise ValueError(f"batch of {rows} rows cannot make {num_mini_batches} minibatches")
    for _ in range(num_epochs):
        perm = torch.randperm(rows, generator=generator).to(device)
        yield from perm.tensor_split(num_mini_batches)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the parameters' device (CPU and CUDA here):
    the same update rule, one kernel over all tensors instead of ~10 small ops per tensor (the
    optimiser step fell from ~8% to ~3% of a demo-sized PPO update on CPU)."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def adapt_lr(lr: float, kl: float, *, desired_kl: float, lr_min: float, lr_max: float) -> float:
    """rsl_rl's rule: KL above twice the target shrinks lr by 1.5, below half grows it; clamped."""
    if kl > 2.0 * desired_kl:
        lr /= 1.5
    elif 0.0 < kl < 0.5 * desired_kl:
        lr *= 1.5
    return min(max(lr, lr_min), lr_max)


class PPOUpdater:
    def __init__(self, actor_critic, *, actor_lr: float, critic_lr: float, lr_min: float, lr_max: float,
                 desired_kl: float, schedule: str, num_learning_epochs: int, num_mini_batches: int,
                 clip_param: float, value_loss_coef: float, entropy_coef: float, use_clipped_value_loss: bool,
                 max_grad_norm: float, normalize_advantage: bool, aux_coefs: Mapping[str, float]):
        self.ac = actor_critic
        self.actor_lr = actor_lr
        self.lr_bounds = (lr_min, lr_max)
        self.desired_kl, self.schedule = desired_kl, schedule
        self.epochs, self.num_mini_batches = num_learning_epochs, num_mini_batches
        self.max_grad_norm, self.normalize_advantage = max_grad_norm, normalize_advantage
        self.loss_kw = dict(clip_param=clip_param, value_loss_coef=value_loss_coef, entropy_coef=entropy_coef,
                            use_clipped_value_loss=use_clipped_value_loss, aux_coefs=dict(aux_coefs))
        self.actor_opt = adam(actor_critic.actor_parameters(), actor_lr)
        self.critic_opt = adam(actor_critic.critic_parameters(), critic_lr)
        self.params = list(actor_critic.actor_parameters()) + list(actor_critic.critic_parameters())

    def update(self, data: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, float]:
        """Epochs x minibatches over a flat batch from `training_tensors`; -> mean stats."""
        rows = data[ACTIONS].shape[0]
        sums: dict[str, float] = {}
        n = 0
        for idx in minibatch_indices(rows, self.epochs, self.num_mini_batches, device=data[ACTIONS].device,
                                     generator=generator):
            mb = minibatch(data, idx, normalize_advantage=self.normalize_advantage)
            for group in self.actor_opt.param_groups:
                group["lr"] = self.actor_lr
            loss, stats = compute_losses(self.ac, mb, **self.loss_kw)
            self.actor_opt.zero_grad(set_to_none=True)
            self.critic_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
            self.actor_opt.step()
            self.critic_opt.step()
            if self.schedule == "adaptive":
                self.actor_lr = adapt_lr(self.actor_lr, float(stats["ppo/approx_kl"]), desired_kl=self.desired_kl,
                                         lr_min=self.lr_bounds[0], lr_max=self.lr_bounds[1])
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
        out = {k: v / n for k, v in sums.items()}
        out["ppo/actor_lr"] = self.actor_lr
        return out

    def state_dict(self) -> dict:
        return {"actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "actor_lr": self.actor_lr}

    def load_state_dict(self, state: dict) -> None:
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_lr = float(state["actor_lr"])
