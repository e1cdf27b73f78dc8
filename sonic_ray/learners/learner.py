"""The RLlib learner: PPO + SONIC aux losses on flat rollouts, data-parallel across learners.

It overrides `update` because RLlib's stock path expects episodes and a connector pipeline; here a
rollout arrives as `FlatBatch` object refs (one list per learner), values and GAE are computed
with the current critic, and minibatches go through RLlib's own `_update` (forward_train ->
compute_loss_for_module -> gradients -> grad clip -> apply), which carries DDP when
`num_learners >= 2`. The loss itself is the Ray-free core's (`sonic_ray.ppo.losses`).
"""

from __future__ import annotations

import ray
import torch
import torch.distributed as dist
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core import DEFAULT_MODULE_ID

from sonic_ray.config.compose import config_from_dict
from sonic_ray.learners.rl_module import SONIC_CFG_KEY
from sonic_ray.models import keys as K
from sonic_ray.ppo.batch import as_tensor, obs_groups, training_tensors
from sonic_ray.ppo.compact import is_compact
from sonic_ray.ppo.losses import losses_from_evaluation
from sonic_ray.ppo.rollout import FlatBatch, concat_envs
from sonic_ray.ppo.update import (
    SKIPPED_NONFINITE,
    adam,
    clip_grad_norms,
    grads_finite,
    loss_coefficients,
    set_lr,
    update_loop,
)
from sonic_ray.utils.rng import rng_state, set_rng_state

ACTOR_OPT = "actor"
CRITIC_OPT = "critic"


class SonicLearner(PPOTorchLearner):
    def build(self) -> None:
        cfg = config_from_dict(self.config.learner_config_dict[SONIC_CFG_KEY])
        self.algo = cfg.algo  # AlgoConfig
        self.loss_coefs = loss_coefficients(cfg)
        self.loop = update_loop(cfg.algo)
        self._cfg = cfg
        self._rebuilder = None  # ObservationRebuilder, built on the first compact rollout
        self._node = None
        self._last_stats: dict[str, torch.Tensor] = {}
        self._skipped = False  # the current minibatch's gradients were not finite: no step
        # One intra-op thread per CPU this learner was given unless ray.learner_threads says otherwise:
        # more oversubscribes the node's cores (the env runners step MuJoCo on their own), which costs
        # far more than it gains, except where the runners are idle while it learns (a local learner).
        torch.set_num_threads(cfg.ray.learner_threads or max(1, int(self.config.num_cpus_per_learner or 1)))
        super().build()

    # ---- optimisers -----------------------------------------------------------------------
    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        ac = (
            self._module[module_id].unwrapped().ac
            if hasattr(self._module[module_id], "unwrapped")
            else self._module[module_id].ac
        )
        actor_params = list(ac.actor_parameters())
        critic_params = list(ac.critic_parameters())
        self.register_optimizer(
            module_id=module_id,
            optimizer_name=ACTOR_OPT,
            optimizer=adam(actor_params, self.algo.actor_lr),
            params=actor_params,
            lr_or_lr_schedule=self.algo.actor_lr,
        )
        self.register_optimizer(
            module_id=module_id,
            optimizer_name=CRITIC_OPT,
            optimizer=adam(critic_params, self.algo.critic_lr),
            params=critic_params,
            lr_or_lr_schedule=self.algo.critic_lr,
        )

    @property
    def actor_lr(self) -> float:
        return self.loop.actor_lr

    def postprocess_gradients_for_module(self, *, module_id, config=None, module_gradients_dict):
        """Each optimiser's gradients clipped to max_grad_norm by the core's `clip_grad_norms` (the
        same function as the in-process learner; RLlib's own clipping is the same rule per optimiser)."""
        groups = [
            self.filter_param_dict_for_optimizer(param_dict=module_gradients_dict, optimizer=opt).values()
            for _, opt in self.get_optimizers_for_module(module_id)
        ]
        clip_grad_norms(groups, self.algo.max_grad_norm)
        return dict(module_gradients_dict)

    def apply_gradients(self, gradients_dict) -> None:
        """RLlib's apply step, with its per-tensor finiteness checks (two `isfinite(g).all()` per
        parameter per minibatch: ~15% of a demo-sized update on CPU) replaced by one fused check.
        All norms finite means every gradient is finite, and RLlib would then assign the gradients
        as they are and step every optimiser: that is what happens here. A nan/inf anywhere (or an
        overflowing norm) skips the step and is counted (`loss/skipped_nonfinite`); grad scalers or
        lr schedulers take RLlib's own path unchanged."""
        if not grads_finite(gradients_dict.values()):  # nan/inf (after DDP's all-reduce: on every learner)
            self._skipped = True  # no step: RLlib would zero the nans and still move weights through Adam
            return
        plain = self._grad_scalers is None and not self._lr_scheduler_classes
        if not (plain and gradients_dict):
            super().apply_gradients(gradients_dict)
            self._ac.project_std()
            return
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for name in optimizer_names:
                self.get_optimizer(module_id, name).step()
        self._ac.project_std()

    # ---- loss ----------------------------------------------------------------------------
    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out) -> torch.Tensor:
        total, stats = losses_from_evaluation(fwd_out[K.FWD_EVAL], batch, **self.loss_coefs)
        total = self.loop.inject_fault(total)
        # The lr of the step about to be taken, adapted to this minibatch's KL (averaged over learners).
        kl = float(self._mean_across_learners(stats["ppo/approx_kl"].reshape(1).to(self._device)))
        set_lr(self.get_optimizer(module_id, ACTOR_OPT), self.loop.lr_for_step(kl))
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
        received = sum(p.nbytes() for p in parts)
        node = self._node_id()
        cross = sum(p.nbytes() for p in parts if p.origin and node and p.origin != node)
        # Compact rollouts are rebuilt one by one: their float16 offsets are per rollout.
        out = self.update_from_flat(concat_envs([self._expand(p) for p in parts]))
        out["learner/received_bytes"] = float(received)
        out["learner/cross_node_bytes"] = float(cross)
        return out

    def _node_id(self) -> str:
        if self._node is None:
            self._node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        return self._node

    def _expand(self, fb: FlatBatch) -> FlatBatch:
        """A compact rollout (ppo/compact.py) as the full format; a full one as it is."""
        if not is_compact(fb.data):
            return fb
        if self._rebuilder is None:
            from sonic_ray.ppo.compact_factory import make_obs_rebuilder

            self._rebuilder = make_obs_rebuilder(self._cfg, device=self._device)
        return FlatBatch(self._rebuilder.expand(fb.data), fb.metrics, fb.origin)

    def update_from_flat(self, fb: FlatBatch) -> dict[str, float]:
        fb = self._expand(fb)
        ac = self._ac
        critic_obs = as_tensor(fb.data[K.OBS_PREFIX + K.CRITIC], self._device).float()
        ac.update_critic_normalizer(
            critic_obs.reshape(-1, critic_obs.shape[-1]), reduce_fn=self._sum_across_learners
        )
        data = training_tensors(
            fb.data,
            value_fn=ac.value_from_critic_obs,
            gamma=self.algo.gamma,
            lam=self.algo.lam,
            device=self._device,
        )
        out = self.loop.run(data, self._step)
        ac.update_actor_normalizers(obs_groups(data), reduce_fn=self._sum_across_learners)
        out["ppo/critic_lr"] = self.algo.critic_lr
        out["learner/rows"] = data[K.ACTIONS].shape[0]
        fsq = ac.token.fsq  # what was built (a sweep over FSQ levels checks its trials differ here)
        out["model/codebook_size"] = float(fsq.codebook_size)
        out["model/token_dim"] = float(fsq.dim)
        return out

    def _step(self, mb: dict) -> dict[str, float]:
        """One optimiser step through RLlib's `_update` (forward_train -> compute_loss_for_module, which
        sets the step's lr -> gradients -> per-optimiser clipping -> apply, with DDP when distributed)."""
        self._skipped = False
        self._update({DEFAULT_MODULE_ID: mb})
        return {SKIPPED_NONFINITE: 1.0} if self._skipped else self._last_stats

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
            self.loop.actor_lr = float(state["sonic_actor_lr"])
        if "sonic_rng" in state:
            set_rng_state(state["sonic_rng"])
