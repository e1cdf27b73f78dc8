"""RLlib wrapper around the Ray-free ActorCritic: translation only, no math of its own.

`model_config[MODEL_KWARGS]` holds the ActorCritic keyword arguments (built by `sonic_ray.algorithm`). The
inference-only copy on env runners drops the critic, its normaliser and the g1_kin decoder, so
weight syncs ship only what acting needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from sonic_ray.models import keys as K
from sonic_ray.models.actor_critic import ActorCritic

MODEL_KWARGS = "sonic_actor_critic"  # model_config key holding ActorCritic's keyword arguments
# env_config and learner_config_dict key: the validated SonicConfig as plain dicts (`config_to_dict`);
# the env runner, the learner and the algorithm each turn it back into the typed config once.
SONIC_CFG_KEY = "sonic"
assert K.ACTIONS == Columns.ACTIONS  # the rollout's actions reach forward_train under RLlib's own key


class SonicRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    def setup(self) -> None:
        kwargs: dict[str, Any] = dict(self.model_config[MODEL_KWARGS])
        self.ac = ActorCritic(**kwargs)
        if self.inference_only:
            for name in self.get_non_inference_attributes():
                obj, attr = self._resolve(name)
                if hasattr(obj, attr):
                    delattr(obj, attr)

    def _resolve(self, dotted: str):
        parts = dotted.split(".")
        obj = self
        for p in parts[:-1]:
            obj = getattr(obj, p)
        return obj, parts[-1]

    def get_non_inference_attributes(self) -> list[str]:
        return [f"ac.{name}" for name in ActorCritic.NON_INFERENCE_ATTRIBUTES]

    def _forward_inference(self, batch: dict, **kwargs) -> dict:
        return {Columns.ACTIONS: self.ac.act_inference(batch[K.OBS])}

    def _forward_exploration(self, batch: dict, **kwargs) -> dict:
        actions, logp, mean, std = self.ac.act(batch[K.OBS])
        return {Columns.ACTIONS: actions, Columns.ACTION_LOGP: logp, "mean": mean, "std": std}

    def _forward(self, batch: dict, **kwargs) -> dict:
        return self._forward_inference(batch)

    def _forward_train(self, batch: dict, **kwargs) -> dict:
        """Everything the losses need in ONE forward, so DDP sees every parameter used."""
        return {K.FWD_EVAL: self.ac.evaluate(batch[K.OBS], batch[K.ACTIONS])}

    def compute_values(self, batch: dict, embeddings: Any = None) -> torch.Tensor:
        return self.ac.value(batch[K.OBS])

    def get_state(self, *args, **kwargs):
        """RLlib's state turns float64 tensors into float32 arrays (and 0-d ones into floats); the
        critic normaliser keeps its statistics in float64, and a resumed run is exact only if they
        travel unrounded: those entries are replaced by exact float64 copies."""
        state = super().get_state(*args, **kwargs)
        for key, value in self.state_dict().items():
            if key in state and value.dtype == torch.float64:
                state[key] = value.detach().cpu().numpy().copy()
        return state

    def set_state(self, state) -> None:
        """RLlib's loader casts float64 arrays to float32: float64 entries are copied exactly."""
        super().set_state(state)
        own = self.state_dict()
        with torch.no_grad():
            for key, value in state.items():
                target = own.get(key)
                if target is not None and target.dtype == torch.float64:
                    target.copy_(
                        torch.as_tensor(
                            np.asarray(value) if not torch.is_tensor(value) else value, dtype=torch.float64
                        )
                    )
