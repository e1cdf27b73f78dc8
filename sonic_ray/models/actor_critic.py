"""Actor (universal token module + diagonal Gaussian) and critic (MLP over normalised privileged obs).

`evaluate` runs everything a PPO + aux loss needs in one forward (DDP requires every parameter
to be used inside one forward call). The critic's normaliser is updated explicitly by the trainer,
once per batch, never inside forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sonic_ray.models import keys as K
from sonic_ray.models.mlp import mlp
from sonic_ray.models.normalizer import RunningNormalizer
from sonic_ray.models.universal_token import UniversalTokenModule

Obs = Mapping[str, torch.Tensor]


@dataclass
class Evaluation:
    """What one training forward (`ActorCritic.evaluate`) gives the PPO and aux losses.

    A dataclass (not a dict): DDP finds the tensors inside it, and the loss reads named fields.
    """

    logp: torch.Tensor  # (N,) log-density of the rollout's actions under the current policy
    entropy: torch.Tensor  # (N,)
    mean: torch.Tensor  # (N,A)
    std: torch.Tensor  # (A,)
    value: torch.Tensor  # (N,)
    latents: dict[str, torch.Tensor]  # {encoder: (N,D)} pre-quantisation latents of every built encoder
    token: torch.Tensor  # (N,D) each row's routed FSQ token (what the g1_dyn decoder sees of the motion)
    kin_target: torch.Tensor  # (N,G) the g1 tokenizer input as the encoders see it (normalised or not)
    kin_pred: torch.Tensor  # (N,G) g1_kin decoding of each row's routed token
    reencoded_smpl: torch.Tensor | None  # (N,D) g1 encoder on the g1_kin decoding of the smpl token


class ActorCritic(nn.Module):
    # Parts an inference-only copy (env runners, export) leaves out.
    NON_INFERENCE_ATTRIBUTES = ("critic", "critic_normalizer", "token.kin_decoder")

    def __init__(
        self,
        *,
        encoder_input_dims: Mapping[str, int],
        encoder_hidden: Mapping[str, Sequence[int]],
        fsq_levels: Sequence[int],
        num_tokens: int,
        proprio_dim: int,
        action_dim: int,
        dyn_decoder_hidden: Sequence[int],
        kin_decoder_hidden: Sequence[int],
        kin_output_dim: int,
        critic_obs_dim: int,
        critic_hidden: Sequence[int],
        activation: str = "silu",
        critic_activation: str | None = None,
        residual_mode: str = "none",
        init_noise_std: float = 0.05,
        min_std: float = 0.001,
        max_std: float = 0.5,
        actor_obs_normalization: bool = False,
        fsq_bound: str = "tanh",
    ):
        super().__init__()
        if not 0 < min_std <= init_noise_std <= max_std:
            raise ValueError(
                f"need 0 < min_std <= init_noise_std <= max_std, got {min_std}, {init_noise_std}, {max_std}"
            )
        self.token = UniversalTokenModule(
            encoder_input_dims=encoder_input_dims,
            encoder_hidden=encoder_hidden,
            fsq_levels=fsq_levels,
            num_tokens=num_tokens,
            proprio_dim=proprio_dim,
            action_dim=action_dim,
            dyn_decoder_hidden=dyn_decoder_hidden,
            kin_decoder_hidden=kin_decoder_hidden,
            kin_output_dim=kin_output_dim,
            activation=activation,
            residual_mode=residual_mode,
            fsq_bound=fsq_bound,
        )
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_noise_std)))
        self.min_std, self.max_std = min_std, max_std
        self.critic_normalizer = RunningNormalizer(critic_obs_dim)
        # Running mean/std of the actor's inputs (proprioception and each tokenizer group), as rsl_rl's
        # and mjlab's empirical normalisation: statistics are frozen within an update (the rollout's
        # log-probs stay exact) and merged after it (`update_actor_normalizers`).
        actor_dims = {
            K.POLICY: proprio_dim,
            **{K.TOKENIZER_KEYS[n]: d for n, d in encoder_input_dims.items()},
        }
        self.actor_normalizers = nn.ModuleDict(
            {k: RunningNormalizer(d) for k, d in actor_dims.items()} if actor_obs_normalization else {}
        )
        self.critic = mlp(critic_obs_dim, critic_hidden, 1, activation=critic_activation or activation)

    # ---- parameters ----------------------------------------------------------------------
    def actor_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.token.parameters()
        yield self.log_std

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.critic.parameters()

    # ---- actor -----------------------------------------------------------------------------
    @property
    def std(self) -> torch.Tensor:
        """(A,) action noise. Kept inside [min_std, max_std] by `project_std` after each optimiser
        step rather than by a clamp here, which would zero the std's gradient at the bounds."""
        return self.log_std.exp()

    @torch.no_grad()
    def project_std(self) -> None:
        """Clamp the std parameter into [min_std, max_std] (call after every optimiser step)."""
        self.log_std.clamp_(math.log(self.min_std), math.log(self.max_std))

    def normalize_actor_obs(self, obs: Obs) -> Obs:
        """The actor's groups through their running normalisers (unchanged without normalisation)."""
        if not len(self.actor_normalizers):
            return obs
        return {**obs, **{k: norm(obs[k]) for k, norm in self.actor_normalizers.items() if k in obs}}

    @torch.no_grad()
    def update_actor_normalizers(
        self, obs: Obs, reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        """Merge a batch of actor inputs {key: (M, k)} into the actor's statistics (after an update)."""
        for k, norm in self.actor_normalizers.items():
            _merge(norm, obs[k], reduce_fn)

    def act_inference(self, obs: Obs, latent_residual: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic action mean (N,A); touches neither the critic nor the g1_kin decoder."""
        obs = self.normalize_actor_obs(obs)
        token = self.token.tokenize(self.token.encode_routed(obs), latent_residual)
        return self.token.action_mean(token, obs[K.POLICY])

    def act(self, obs: Obs, latent_residual: torch.Tensor | None = None):
        """Sample: -> actions (N,A), logp (N,), mean (N,A), std (A,)."""
        mean = self.act_inference(obs, latent_residual)
        std = self.std
        actions = mean + std * torch.randn_like(mean)
        return actions, gaussian_logp(actions, mean, std), mean, std

    # ---- training forward ----------------------------------------------------------------
    def evaluate(
        self, obs: Obs, actions: torch.Tensor, latent_residual: torch.Tensor | None = None
    ) -> Evaluation:
        """One forward for the losses: logp/entropy of `actions` (N,A), value, and the aux-loss tensors
        (see `Evaluation`; `reencoded_smpl` is None without both the g1 and the smpl encoder)."""
        raw_obs, obs = obs, self.normalize_actor_obs(obs)
        latents = self.token.encode_all(obs)
        routed = self.token.route(latents, obs[K.ENCODER_INDEX])
        token = self.token.tokenize(routed, latent_residual)
        mean = self.token.action_mean(token, obs[K.POLICY])
        std = self.std
        reencoded_smpl = None
        if "smpl" in latents and "g1" in latents:
            kin_pred, smpl_recon = self._kin_decode_with_smpl(
                token, latents["smpl"], obs[K.ENCODER_INDEX], plain_fsq=latent_residual is None
            )
            reencoded_smpl = self.token.encoders["g1"](smpl_recon)
        else:
            kin_pred = self.token.kin_decoder(token)
        return Evaluation(
            logp=gaussian_logp(actions, mean, std),
            entropy=gaussian_entropy(std).expand(mean.shape[0]),
            mean=mean,
            std=std,
            value=self.value(raw_obs),
            latents=latents,
            token=token,
            kin_target=obs[K.TOKENIZER_G1],
            kin_pred=kin_pred,
            reencoded_smpl=reencoded_smpl,
        )

    def _kin_decode_with_smpl(
        self, token: torch.Tensor, smpl_latent: torch.Tensor, encoder_index: torch.Tensor, *, plain_fsq: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """g1_kin decodings of each row's routed token (N,G) and of every row's smpl token (N,G), in ONE
        decoder pass. Rows routed to smpl (without a residual) have routed token == smpl token, so they
        are decoded once and shared: same values and gradients, a third less of the second pass."""
        smpl_token = self.token.fsq(smpl_latent)
        n = token.shape[0]
        if plain_fsq or self.token.residual_mode == "none":
            others = torch.nonzero(encoder_index.reshape(-1) != K.ENCODER_NAMES.index("smpl")).flatten()
            decoded = self.token.kin_decoder(torch.cat((smpl_token, token[others])))
            # position in `decoded` of each row's routed decoding: its smpl decoding unless re-decoded
            where = torch.arange(n, device=token.device)
            where[others] = n + torch.arange(len(others), device=token.device)
            return decoded[where], decoded[:n]
        decoded = self.token.kin_decoder(torch.cat((token, smpl_token)))
        return decoded[:n], decoded[n:]

    # ---- critic ---------------------------------------------------------------------------
    def value_from_critic_obs(self, critic_obs: torch.Tensor) -> torch.Tensor:
        """(M, C) -> (M,)."""
        return self.critic(self.critic_normalizer(critic_obs)).squeeze(-1)

    def value(self, obs: Obs) -> torch.Tensor:
        return self.value_from_critic_obs(obs[K.CRITIC])

    @torch.no_grad()
    def update_critic_normalizer(
        self, critic_obs: torch.Tensor, reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        """Merge a batch (M,C) into the critic's statistics; `reduce_fn` sums raw moments across learners."""
        _merge(self.critic_normalizer, critic_obs, reduce_fn)


def _merge(
    norm: RunningNormalizer, x: torch.Tensor, reduce_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> None:
    """Merge a batch x (M, D) into `norm`; `reduce_fn` sums the raw moments across learners first."""
    x = x.detach().to(torch.float64).reshape(-1, x.shape[-1])
    packed = torch.cat(
        (torch.tensor([float(x.shape[0])], dtype=torch.float64, device=x.device), x.sum(0), (x * x).sum(0))
    )
    if reduce_fn is not None:
        packed = reduce_fn(packed)
    dim = x.shape[-1]
    count, s1, s2 = packed[0], packed[1 : 1 + dim], packed[1 + dim :]
    mean = s1 / count
    m2 = (s2 - count * mean * mean).clamp_min(0.0)
    norm.update_from_moments(count, mean.to(norm.mean.device), m2.to(norm.mean.device))


def gaussian_logp(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over the last dim. (N,A),(N,A),(A,) -> (N,)."""
    var = std * std
    return (-((x - mean) ** 2) / (2 * var) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian with std (..., A) -> (...)."""
    return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(std)).sum(-1)
