"""The one PPO update loop: epochs x minibatches, SONIC's adaptive-KL actor lr, the stats reduction.

`UpdateLoop` owns everything an update does around a single optimiser step; the step itself comes
from the caller, so the in-process trainer (`PPOUpdater.step`) and the RLlib learner
(`SonicLearner`, through RLlib's `_update`) run the same loop. A step must, in this order:

1. forward and losses on the minibatch (the KL of the current policy against the rollout's);
2. call `loop.lr_for_step(kl)` and put the lr it returns on the actor optimiser: the lr adapts
   before the step it governs, where rsl_rl and gear_sonic adapt it;
3. backward, `clip_grad_norms` per optimiser (actor and critic separately, as rsl_rl's separate
   optimisers and RLlib's per-optimiser clipping do), the optimiser steps, then
   `ActorCritic.project_std` (the std is clamped by projecting the parameter after the step, so
   the forward never clamps and never zeroes the std's gradient).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict

import torch

from sonic_ray.config.schema import AlgoConfig, SonicConfig
from sonic_ray.models import keys as K
from sonic_ray.ppo.batch import minibatch
from sonic_ray.ppo.losses import compute_losses

StepFn = Callable[[dict], Mapping[str, float]]
# Fault injection (`sonic-ray bench faults`, tests): the Nth update a learner process runs (1-based;
# a fresh run's iteration N) gets a NaN loss in every minibatch.
NAN_LOSS_ENV = "SONIC_RAY_INJECT_NAN_LOSS"
SKIPPED_NONFINITE = "loss/skipped_nonfinite"  # minibatch steps of an update skipped for a non-finite gradient


def minibatch_indices(
    rows: int,
    num_epochs: int,
    num_mini_batches: int,
    *,
    device="cpu",
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
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
    if not math.isfinite(kl):  # a non-finite minibatch (its step is skipped) must not poison the lr
        return lr
    if kl > 2.0 * desired_kl:
        lr /= 1.5
    elif 0.0 < kl < 0.5 * desired_kl:
        lr *= 1.5
    return min(max(lr, lr_min), lr_max)


def clip_grad_norms(grad_groups: Iterable[Iterable[torch.Tensor]], max_norm: float) -> None:
    """Scale each group of gradient tensors (one group per optimiser), in place, to a global norm of
    at most `max_norm` (torch's clip_grad_norm_ rule), without a host sync. Both learners call this,
    so they clip identically."""
    for group in grad_groups:
        grads = [g for g in group if g is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))


def grads_finite(grads: Iterable[torch.Tensor | None]) -> bool:
    """Whether every gradient is finite, in one fused check (one host sync): a nan or inf anywhere
    makes its tensor's norm non-finite. A step whose gradients fail this is skipped, not taken with
    nan turned into zero (RLlib's default, which still moves every weight through Adam's moments)."""
    grads = [g for g in grads if g is not None]
    return not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


class UpdateLoop:
    """Epochs x minibatches over one flat batch, with the KL-adaptive actor lr carried across updates."""

    def __init__(
        self,
        *,
        actor_lr: float,
        lr_min: float,
        lr_max: float,
        desired_kl: float,
        schedule: str,
        num_learning_epochs: int,
        num_mini_batches: int,
        normalize_advantage: bool,
    ):
        self.actor_lr = float(actor_lr)
        self.lr_bounds = (float(lr_min), float(lr_max))
        self.desired_kl, self.schedule = float(desired_kl), schedule
        self.epochs, self.num_mini_batches = int(num_learning_epochs), int(num_mini_batches)
        self.normalize_advantage = normalize_advantage
        self.updates = 0  # updates run by this process (what NAN_LOSS_ENV counts)
        self.nan_at = int(os.environ.get(NAN_LOSS_ENV) or 0) or None  # unset or 0: never

    def inject_fault(self, loss: torch.Tensor) -> torch.Tensor:
        """`loss`, or NaN during the update NAN_LOSS_ENV names (fault injection)."""
        return loss * float("nan") if self.updates == self.nan_at else loss

    def lr_for_step(self, kl: float) -> float:
        """The actor lr for the step about to be taken, adapted to this minibatch's KL (before the
        step, as rsl_rl does); `kl` is already averaged across learners."""
        if self.schedule == "adaptive":
            self.actor_lr = adapt_lr(
                self.actor_lr,
                kl,
                desired_kl=self.desired_kl,
                lr_min=self.lr_bounds[0],
                lr_max=self.lr_bounds[1],
            )
        return self.actor_lr

    def run(
        self, data: dict[str, torch.Tensor], step: StepFn, *, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Every minibatch of every epoch through `step`; -> the mean of its stats over the steps taken,
        ppo/actor_lr (the last step's, which the next update starts from), ppo/actor_lr_mean (over
        the steps taken: the adaptive rule moves the lr every minibatch, and within one update it
        can climb from lr_min to many times that and back, so the last value alone says little),
        and the count of steps skipped (a step returning {SKIPPED_NONFINITE: 1})."""
        self.updates += 1
        rows = data[K.ACTIONS].shape[0]
        sums: dict[str, float] = {}
        n = skipped = 0
        lr_sum = 0.0
        for idx in minibatch_indices(
            rows, self.epochs, self.num_mini_batches, device=data[K.ACTIONS].device, generator=generator
        ):
            stats = step(minibatch(data, idx, normalize_advantage=self.normalize_advantage))
            if stats.get(SKIPPED_NONFINITE):
                skipped += 1
                continue
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            lr_sum += self.actor_lr  # the lr this step was taken with (`step` set it before stepping)
            n += 1
        out = {k: v / max(n, 1) for k, v in sums.items()}
        out["ppo/actor_lr"] = self.actor_lr
        out["ppo/actor_lr_mean"] = lr_sum / n if n else self.actor_lr
        out[SKIPPED_NONFINITE] = float(skipped)
        return out


def update_loop(algo: AlgoConfig) -> UpdateLoop:
    """The update loop as `algo` configures it (both learners build theirs here)."""
    return UpdateLoop(
        actor_lr=algo.actor_lr,
        lr_min=algo.lr_min,
        lr_max=algo.lr_max,
        desired_kl=algo.desired_kl,
        schedule=algo.schedule,
        num_learning_epochs=algo.num_learning_epochs,
        num_mini_batches=algo.num_mini_batches,
        normalize_advantage=algo.normalize_advantage,
    )


def loss_coefficients(cfg: SonicConfig) -> dict:
    """`losses_from_evaluation`'s keyword arguments from the config (both learners use these)."""
    a = cfg.algo
    return dict(
        clip_param=a.clip_param,
        value_loss_coef=a.value_loss_coef,
        entropy_coef=a.entropy_coef,
        use_clipped_value_loss=a.use_clipped_value_loss,
        aux_coefs=asdict(cfg.aux_losses),
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class PPOUpdater:
    """The in-process learner: `UpdateLoop` with a plain-torch step (two Adam optimisers: actor with
    the adaptive lr, critic fixed)."""

    def __init__(
        self,
        actor_critic,
        *,
        actor_lr: float,
        critic_lr: float,
        lr_min: float,
        lr_max: float,
        desired_kl: float,
        schedule: str,
        num_learning_epochs: int,
        num_mini_batches: int,
        clip_param: float,
        value_loss_coef: float,
        entropy_coef: float,
        use_clipped_value_loss: bool,
        max_grad_norm: float,
        normalize_advantage: bool,
        aux_coefs: Mapping[str, float],
    ):
        self.ac = actor_critic
        self.loop = UpdateLoop(
            actor_lr=actor_lr,
            lr_min=lr_min,
            lr_max=lr_max,
            desired_kl=desired_kl,
            schedule=schedule,
            num_learning_epochs=num_learning_epochs,
            num_mini_batches=num_mini_batches,
            normalize_advantage=normalize_advantage,
        )
        self.max_grad_norm = max_grad_norm
        self.loss_kw = dict(
            clip_param=clip_param,
            value_loss_coef=value_loss_coef,
            entropy_coef=entropy_coef,
            use_clipped_value_loss=use_clipped_value_loss,
            aux_coefs=dict(aux_coefs),
        )
        self.actor_params = list(actor_critic.actor_parameters())
        self.critic_params = list(actor_critic.critic_parameters())
        self.actor_opt = adam(self.actor_params, actor_lr)
        self.critic_opt = adam(self.critic_params, critic_lr)

    @property
    def actor_lr(self) -> float:
        return self.loop.actor_lr

    def step(self, mb: dict) -> dict[str, torch.Tensor]:
        loss, stats = compute_losses(self.ac, mb, **self.loss_kw)
        loss = self.loop.inject_fault(loss)
        set_lr(self.actor_opt, self.loop.lr_for_step(float(stats["ppo/approx_kl"])))
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        if not grads_finite(p.grad for p in self.actor_params + self.critic_params):
            return {SKIPPED_NONFINITE: 1.0}
        clip_grad_norms(
            ([p.grad for p in self.actor_params], [p.grad for p in self.critic_params]), self.max_grad_norm
        )
        self.actor_opt.step()
        self.critic_opt.step()
        self.ac.project_std()
        return stats

    def update(
        self, data: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Epochs x minibatches over a flat batch from `training_tensors`; -> mean stats."""
        return self.loop.run(data, self.step, generator=generator)

    def state_dict(self) -> dict:
        return {
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_lr": self.loop.actor_lr,
        }

    @classmethod
    def from_config(cls, actor_critic, cfg: SonicConfig) -> PPOUpdater:
        """The in-process learner for `actor_critic` as `cfg` configures it."""
        a = cfg.algo
        return cls(
            actor_critic,
            actor_lr=a.actor_lr,
            critic_lr=a.critic_lr,
            lr_min=a.lr_min,
            lr_max=a.lr_max,
            desired_kl=a.desired_kl,
            schedule=a.schedule,
            num_learning_epochs=a.num_learning_epochs,
            num_mini_batches=a.num_mini_batches,
            max_grad_norm=a.max_grad_norm,
            normalize_advantage=a.normalize_advantage,
            **loss_coefficients(cfg),
        )

    def load_state_dict(self, state: dict) -> None:
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.loop.actor_lr = float(state["actor_lr"])
