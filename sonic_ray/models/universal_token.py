"""SONIC's universal token module: several encoders -> one FSQ token -> G1 decoders.

Every env carries all tokenizer inputs (g1, teleop, smpl) and an `encoder_index` naming the one
that drives its actions this episode. Acting encodes each env only with its own encoder (a loop
over the <= 3 encoders, each on its subset of rows); training encodes every row with every encoder
once (`encode_all`), because the alignment losses compare the encoders on the same motion, and
the routed token is then a gather from those latents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from sonic_ray.models import keys as K
from sonic_ray.models.fsq import FSQ
from sonic_ray.models.mlp import mlp

RESIDUAL_MODES = ("none", "post_quant", "pre_quant", "replace")


class UniversalTokenModule(nn.Module):
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
        activation: str = "silu",
        residual_mode: str = "none",
        fsq_bound: str = "tanh",
    ):
        super().__init__()
        unknown = set(encoder_input_dims) - set(K.ENCODER_NAMES)
        if unknown:
            raise ValueError(f"unknown encoders {sorted(unknown)}: expected names from {K.ENCODER_NAMES}")
        if residual_mode not in RESIDUAL_MODES:
            raise ValueError(f"residual_mode {residual_mode!r}: expected one of {RESIDUAL_MODES}")
        self.residual_mode = residual_mode
        self.fsq = FSQ(fsq_levels, num_tokens, bound=fsq_bound)
        self.latent_dim = self.fsq.dim
        self.encoder_names = tuple(n for n in K.ENCODER_NAMES if n in encoder_input_dims)
        self.encoders = nn.ModuleDict(
            {
                n: mlp(encoder_input_dims[n], encoder_hidden[n], self.latent_dim, activation=activation)
                for n in self.encoder_names
            }
        )
        self.dyn_decoder = mlp(
            self.latent_dim + proprio_dim, dyn_decoder_hidden, action_dim, activation=activation
        )
        # Action head starts near zero (CleanRL's 0.01-gain policy head): the first policy holds the
        # default pose under PD instead of flailing, so early episodes last long enough to learn from.
        with torch.no_grad():
            self.dyn_decoder[-1].weight.mul_(0.01)
            self.dyn_decoder[-1].bias.zero_()
        self.kin_decoder = mlp(self.latent_dim, kin_decoder_hidden, kin_output_dim, activation=activation)
        # encoder_index (position in K.ENCODER_NAMES) -> row of the stacked latents (-1: not built)
        lookup = [self.encoder_names.index(n) if n in self.encoder_names else -1 for n in K.ENCODER_NAMES]
        self.register_buffer("_slot", torch.tensor(lookup, dtype=torch.long), persistent=False)

    def _slots(self, encoder_index: torch.Tensor) -> torch.Tensor:
        slots = self._slot[encoder_index.long()]
        if bool((slots < 0).any()):
            raise ValueError(
                f"encoder_index names an encoder this module lacks (built: {self.encoder_names})"
            )
        return slots

    def encode_all(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pre-quantization latent of every encoder for every row: name -> (N, D)."""
        return {n: self.encoders[n](obs[K.TOKENIZER_KEYS[n]]) for n in self.encoder_names}

    def route(self, latents: Mapping[str, torch.Tensor], encoder_index: torch.Tensor) -> torch.Tensor:
        """Each row's latent from its own encoder. latents name -> (N,D); encoder_index (N,) -> (N,D)."""
        stacked = torch.stack([latents[n] for n in self.encoder_names])  # (E, N, D)
        slots = self._slots(encoder_index)
        return stacked.gather(0, slots.view(1, -1, 1).expand(1, -1, self.latent_dim)).squeeze(0)

    def encode_routed(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Each row through its own encoder only (acting). -> pre-quantization latents (N, D)."""
        index = obs[K.ENCODER_INDEX]
        slots = self._slots(index)
        first = obs[K.TOKENIZER_KEYS[self.encoder_names[0]]]
        out = first.new_empty(first.shape[0], self.latent_dim)
        for slot, name in enumerate(self.encoder_names):
            rows = torch.nonzero(slots == slot).flatten()
            if len(rows):
                out[rows] = self.encoders[name](obs[K.TOKENIZER_KEYS[name]][rows])
        return out

    def tokenize(self, latent: torch.Tensor, latent_residual: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-quantization latent (N,D) -> token (N,D), applying the residual mode if one is given."""
        if latent_residual is None or self.residual_mode == "none":
            return self.fsq(latent)
        if self.residual_mode == "pre_quant":
            return self.fsq(latent + latent_residual)
        if self.residual_mode == "post_quant":
            return self.fsq(latent) + latent_residual
        return latent_residual  # replace

    def action_mean(self, token: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """token (N,D), proprio (N,P) -> action mean (N,A)."""
        return self.dyn_decoder(torch.cat((token, proprio), dim=-1))
