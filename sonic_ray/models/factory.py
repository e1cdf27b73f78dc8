"""The one place that turns config + env observation sizes into ActorCritic keyword arguments."""

from __future__ import annotations

from typing import Any

from sonic_ray.config.schema import SonicConfig
from sonic_ray.models import keys as K


def actor_critic_kwargs(cfg: SonicConfig, *, obs_dims: dict[str, int], action_dim: int) -> dict[str, Any]:
    ac = cfg.actor_critic
    encoders = [n for n in K.ENCODER_NAMES if n in ac.encoders]
    return {
        "encoder_input_dims": {n: int(obs_dims[K.TOKENIZER_KEYS[n]]) for n in encoders},
        "encoder_hidden": {n: list(ac.encoders[n].hidden) for n in encoders},
        "activation": ac.encoders[encoders[0]].activation,
        "fsq_levels": list(ac.quantizer.levels),
        "num_tokens": int(ac.quantizer.num_tokens),
        "fsq_bound": ac.quantizer.bound,
        "proprio_dim": int(obs_dims[K.POLICY]),
        "action_dim": int(action_dim),
        "dyn_decoder_hidden": list(ac.decoders.g1_dyn.hidden),
        "kin_decoder_hidden": list(ac.decoders.g1_kin.hidden),
        "kin_output_dim": int(obs_dims[K.TOKENIZER_G1]),
        "critic_obs_dim": int(obs_dims[K.CRITIC]),
        "critic_hidden": list(ac.critic.hidden),
        "critic_activation": ac.critic.activation,
        "residual_mode": ac.universal_token.residual_mode,
        "init_noise_std": ac.init_noise_std,
        "min_std": ac.min_std,
        "max_std": ac.max_std,
        "actor_obs_normalization": ac.obs_normalization,
    }
