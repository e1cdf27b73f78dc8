"""PPO and SONIC auxiliary losses as pure functions of tensors, each returning (loss, stats).

Aux semantics (gear_sonic's universal token losses, as implemented here):
- g1_recon: the g1_kin decoder reconstructs the g1 tokenizer input (future joint commands and
  anchor orientation) from each row's routed token: MSE, coefficient 0.01.
- g1_smpl_align, g1_teleop_align: MSE between the pre-quantization latents of the two encoders on
  the same motion, gradients into both.
- teleop_smpl_align: MSE(smpl, teleop.detach()): the sparse teleop encoder is a target, not pulled.
- smpl_reencode_g1: decode the smpl token with g1_kin, re-encode with the g1 encoder, match the g1
  latent (detached): the smpl token must carry what the g1 encoder would extract.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from sonic_ray.models import keys as K
from sonic_ray.models.actor_critic import Evaluation


def surrogate_loss(logp, old_logp, advantages, *, clip_param: float):
    """Clipped PPO objective (as a loss to minimise). All (M,) -> scalar, stats."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_param, 1.0 + clip_param)
    loss = torch.maximum(unclipped, clipped).mean()
    clip_frac = ((ratio - 1.0).abs() > clip_param).float().mean()
    return loss, {"ppo/clip_frac": clip_frac.detach()}


def value_loss(values, old_values, returns, *, clip_param: float, clipped: bool):
    """(Clipped) squared error of the critic. All (M,) -> scalar."""
    if not clipped:
        return (returns - values).pow(2).mean()
    v_clipped = old_values + (values - old_values).clamp(-clip_param, clip_param)
    return torch.maximum((values - returns).pow(2), (v_clipped - returns).pow(2)).mean()


def gaussian_kl(old_mean, old_std, mean, std) -> torch.Tensor:
    """KL(old || new) of diagonal Gaussians, summed over actions, averaged over rows."""
    kl = torch.log(std / old_std) + (old_std.pow(2) + (old_mean - mean).pow(2)) / (2.0 * std.pow(2)) - 0.5
    return kl.sum(-1).mean()


def explained_variance(values, returns) -> torch.Tensor:
    var = returns.var()
    return 1.0 - (returns - values).var() / var if var > 0 else torch.zeros((), device=values.device)


def aux_losses(ev: Evaluation, coefs: Mapping[str, float]):
    """Weighted sum of the token module's auxiliary losses and each term for logging."""
    lat = ev.latents
    terms: dict[str, torch.Tensor] = {"g1_recon": F.mse_loss(ev.kin_pred, ev.kin_target)}
    if "g1" in lat and "smpl" in lat:
        terms["g1_smpl_align"] = F.mse_loss(lat["g1"], lat["smpl"])
        terms["smpl_reencode_g1"] = F.mse_loss(ev.reencoded_smpl, lat["g1"].detach())
    if "g1" in lat and "teleop" in lat:
        terms["g1_teleop_align"] = F.mse_loss(lat["g1"], lat["teleop"])
    if "teleop" in lat and "smpl" in lat:
        terms["teleop_smpl_align"] = F.mse_loss(lat["smpl"], lat["teleop"].detach())
    total = sum(float(coefs.get(k, 0.0)) * v for k, v in terms.items())
    stats = {f"loss/aux_{k}": v.detach() for k, v in terms.items()}
    stats["loss/aux_total"] = total.detach()
    return total, stats


def losses_from_evaluation(
    ev: Evaluation,
    mb: Mapping,
    *,
    clip_param: float,
    value_loss_coef: float,
    entropy_coef: float,
    use_clipped_value_loss: bool,
    aux_coefs: Mapping[str, float],
):
    """Total loss for one minibatch given `ActorCritic.evaluate`'s output; -> (loss, stats)."""
    pg, stats = surrogate_loss(ev.logp, mb[K.LOGP], mb[K.ADVANTAGES], clip_param=clip_param)
    vl = value_loss(
        ev.value, mb[K.VALUES], mb[K.RETURNS], clip_param=clip_param, clipped=use_clipped_value_loss
    )
    entropy = ev.entropy.mean()
    aux, aux_stats = aux_losses(ev, aux_coefs)
    total = pg + value_loss_coef * vl - entropy_coef * entropy + aux
    with torch.no_grad():
        kl = gaussian_kl(mb[K.ACTION_MEAN], mb[K.ACTION_STD], ev.mean, ev.std.expand_as(ev.mean))
        stats.update(
            {
                "loss/policy": pg.detach(),
                "loss/value": vl.detach(),
                "loss/entropy": entropy.detach(),
                "loss/total": total.detach(),
                "ppo/approx_kl": kl,
                "ppo/explained_variance": explained_variance(mb[K.VALUES], mb[K.RETURNS]),
                "ppo/action_std": ev.std.mean().detach(),
            }
        )
        # a token that collapsed to one code tells the decoder nothing
        token = ev.token.detach()
        stats["token/nonzero_share"] = (token != 0).float().mean()
        stats["token/distinct_share"] = torch.tensor(
            float(torch.unique(token, dim=0).shape[0]) / token.shape[0]
        )
        # pre-quantization latents drifting far past the code range (|z| > 1) mean the FSQ bound lets
        # the policy gradient push them outwards (models/fsq.py)
        stats["token/latent_abs_mean"] = torch.stack(
            [z.detach().abs().mean() for z in ev.latents.values()]
        ).mean()
    stats.update(aux_stats)
    return total, stats


def compute_losses(actor_critic, mb: Mapping, **coefs):
    """Forward + losses for one minibatch (the in-process path; the RLlib learner splits the two)."""
    ev = actor_critic.evaluate(mb[K.OBS], mb[K.ACTIONS])
    return losses_from_evaluation(ev, mb, **coefs)
