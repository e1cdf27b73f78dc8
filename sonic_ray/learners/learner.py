"""The RLlib learner: PPO + SONIC aux losses on flat rollouts, data-parallel across learners.

It overrides `update` because RLlib's stock path expects episodes and a connector pipeline; here a
rollout arrives as `FlatBatch` object refs (one list per learner), values and GAE are computed
with the current critic, and minibatches go through RLlib's own `_update` (forward_train ->
compute_loss_for_module -> gradients -> grad clip -> apply), which carries DDP when
`num_learners >= 2`. The loss itself is the Ray-free core's (`sonic_ray.ppo.losses`).
"""

from __future__ import annotations

from typing import Any

import ray
import torch
import torch.distributed as dist
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from sonic_ray.learners.rl_module import FWD_EVAL
from sonic_ray.ppo import rollout as R
from sonic_ray.ppo.batch import as_tensor, minibatch, training_tensors
from sonic_ray.ppo.losses import losses_from_evaluation
from sonic_ray.ppo.update import adam, adapt_lr, minibatch_indices
from sonic_ray.utils.rng import rng_state, set_rng_state

ALGO_KEY = "sonic_algo"  # learner_config_dict key: the AlgoConfig fields + aux coefficients
THREADS_KEY = "sonic_torch_threads"  # learner_config_dict key: ray.learner_threads (0: one per CPU)
ACTOR_OPT = "actor"
CRITIC_OPT = "critic"


class SonicLearner(PPOTorchLearner):
    def build(self) -> None:
        self.hp: dict[str, Any] = dict(self.config.learner_config_dict[ALGO_KEY])
        self.actor_lr = float(self.hp["actor_lr"])
        self._last_stats: dict[str, torch.Tensor] = {}
        # One intra-op thread per CPU this learner was given unless ray.learner_threads says otherwise:
        # more oversubscribes the node's cores (the env runners step MuJoCo on their own), which costs
        # far more than it gains, except where the runners are idle while it learns (a local learner).
        threads = int(self.config.learner_config_dict.get(THREADS_KEY) or 0)
        torch.set_num_threads(threads or max(1, int(self.config.num_cpus_per_learner or 1)))
        super().build()

    # ---- optimisers -----------------------------------------------------------------------
    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        ac = self._module[module_id].unwrapped().ac if hasattr(self._module[module_id], "unwrapped") else self._module[module_id].ac
        actor_params = list(ac.actor_parameters())
        critic_params = list(ac.critic_parameters())
        self.register_optimizer(module_id=module_id, optimizer_name=ACTOR_OPT,
                                optimizer=adam(actor_params, self.hp["actor_lr"]),
                                params=actor_params, lr_or_lr_schedule=self.hp["actor_lr"])
        self.register_optimizer(module_id=module_id, optimizer_name=CRITIC_OPT,
                                optimizer=adam(critic_params, self.hp["critic_lr"]),
                                params=critic_params, lr_or_lr_schedule=self.hp["critic_lr"])

    def _set_actor_lr(self, lr: float) -> None:
        opt = self.get_optimizer(DEFAULT_MODULE_ID, ACTOR_OPT)
        for group in opt.param_groups:
            group["lr"] = lr

    def apply_gradients(self, gradients_dict) -> None:
        """RLlib's apply step, with its per-tensor finiteness checks (two `isfinite(g).all()` per
        parameter per minibatch: ~15% of a demo-sized update on CPU) replaced by one fused check.
        All norms finite means every gradient is finite, and RLlib would then assign the gradients
        as they are and step every optimiser: that is what happens here. Anything else (a nan/inf,
        an overflowing norm, grad scalers or lr schedulers) takes RLlib's own path unchanged."""
        grads = [g for g in gradients_dict.values() if g is not None]
        plain = self._grad_scalers is None and not self._lr_scheduler_classes
        if not (plain and grads and bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())):
            return super().apply_gradients(gradients_dict)
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for name in optimizer_names:
                self.get_optimizer(module_id, name).step()

    # ---- loss ----------------------------------------------------------------------------
    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out) -> torch.Tensor:
        total, stats = losses_from_evaluation(
            fwd_out[FWD_EVAL], batch,
            clip_param=self.hp["clip_param"], value_loss_coef=self.hp["value_loss_coef"],
            entropy_coef=self.hp["entropy_coef"], use_clipped_value_loss=self.hp["use_clipped_value_loss"],
            aux_coefs=self.hp["aux_coefs"],
        )
        self._last_stats = stats
        return total

    # ---- update on flat rollouts ---------------------------------------------------------
    @property
    def _ac(self):
        return self.module[DEFAULT_MODULE_ID].unwrapped().ac

    def _world(self) -> int:
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def _mean_across_learners(self, x: torch.Tensor) -> torch.Tensor:
        if self._world() > 1:
            x = x.clone()
            dist.all_reduce(x)
            x /= self._world()
        return x

    def update(self, batch=None, batches=None, batch_refs=None, training_data=None, *, timesteps=None, **kw):
        if training_data is not None:
            batch_refs, batch, batches = training_data.batch_refs, training_data.batch, training_data.batches
        if batch_refs is not None:
            parts = ray.get(list(batch_refs))
        else:
            parts = batches if batches is not None else [batch]
        return self.update_from_flat(R.concat_envs(list(parts)))

    def update_from_flat(self, fb: R.FlatBatch) -> dict[str, float]:
        ac, hp = self._ac, self.hp
        critic_obs = as_tensor(fb.data[R.OBS_PREFIX + "critic"], self._device).float()
        ac.update_critic_normalizer(critic_obs.reshape(-1, critic_obs.shape[-1]), reduce_fn=self._sum_across_learners)
        data = training_tensors(fb.data, value_fn=ac.value_from_critic_obs, gamma=hp["gamma"], lam=hp["lam"],
                                device=self._device)
        rows = data[R.ACTIONS].shape[0]
        sums: dict[str, float] = {}
        n = 0
        for idx in minibatch_indices(rows, hp["num_learning_epochs"], hp["num_mini_batches"], device=self._device):
            mb = minibatch(data, idx, normalize_advantage=hp["normalize_advantage"])
            mb[Columns.ACTIONS] = mb[R.ACTIONS]
            self._set_actor_lr(self.actor_lr)
            self._update({DEFAULT_MODULE_ID: mb})
            stats = {k: float(v) for k, v in self._last_stats.items()}
            if hp["schedule"] == "adaptive":
                kl = float(self._mean_across_learners(torch.tensor(stats["ppo/approx_kl"], device=self._device)))
                self.actor_lr = adapt_lr(self.actor_lr, kl, desired_kl=hp["desired_kl"],
                                         lr_min=hp["lr_min"], lr_max=hp["lr_max"])
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        out = {k: v / max(n, 1) for k, v in sums.items()}
        out["ppo/actor_lr"] = self.actor_lr
        out["ppo/critic_lr"] = float(hp["critic_lr"])
        out["learner/rows"] = rows
        fsq = ac.token.fsq  # what was built (a sweep over FSQ levels checks its trials differ here)
        out["model/codebook_size"] = float(fsq.codebook_size)
        out["model/token_dim"] = float(fsq.dim)
        return out

    def _sum_across_learners(self, x: torch.Tensor) -> torch.Tensor:
        if self._world() > 1:
            x = x.clone()
            dist.all_reduce(x)
        return x

    # ---- state ---------------------------------------------------------------------------
    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None:  # a full state (checkpoint), not the per-iteration weight sync
            state["sonic_actor_lr"] = self.actor_lr
            # Minibatch shuffling draws from this process's torch RNG: an exact resume needs it.
            state["sonic_rng"] = rng_state()
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if "sonic_actor_lr" in state:
            self.actor_lr = float(state["sonic_actor_lr"])
        if "sonic_rng" in state:
            set_rng_state(state["sonic_rng"])
