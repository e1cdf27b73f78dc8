import math

import numpy as np
import pytest
import torch

from sonic_ray.models import keys as K
from sonic_ray.models.actor_critic import ActorCritic, gaussian_entropy, gaussian_logp
from sonic_ray.models.normalizer import RunningNormalizer
from sonic_ray.models.universal_token import UniversalTokenModule

DIMS = {"g1": 12, "teleop": 7, "smpl": 9}


def small_ac(**kw) -> ActorCritic:
    args = dict(
        encoder_input_dims=DIMS,
        encoder_hidden={n: [16] for n in DIMS},
        fsq_levels=[5, 5, 5],
        num_tokens=2,
        proprio_dim=10,
        action_dim=4,
        dyn_decoder_hidden=[16],
        kin_decoder_hidden=[16],
        kin_output_dim=DIMS["g1"],
        critic_obs_dim=11,
        critic_hidden=[16],
    )
    args.update(kw)
    return ActorCritic(**args)


def make_obs(n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = {K.TOKENIZER_KEYS[name]: torch.randn(n, d, generator=g) for name, d in DIMS.items()}
    obs[K.POLICY] = torch.randn(n, 10, generator=g)
    obs[K.CRITIC] = torch.randn(n, 11, generator=g)
    obs[K.ENCODER_INDEX] = torch.arange(n) % 3
    return obs


def test_routing_with_mixed_indices_equals_each_encoder_alone():
    ac = small_ac()
    obs = make_obs()
    routed = ac.token.encode_routed(obs)
    gathered = ac.token.route(ac.token.encode_all(obs), obs[K.ENCODER_INDEX])
    for row in range(9):
        name = K.ENCODER_NAMES[int(obs[K.ENCODER_INDEX][row])]
        alone = ac.token.encoders[name](obs[K.TOKENIZER_KEYS[name]][row : row + 1])[0]
        torch.testing.assert_close(routed[row], alone)
        torch.testing.assert_close(gathered[row], alone)


def test_missing_encoder_index_is_an_error():
    ac = small_ac(encoder_input_dims={"g1": 12}, encoder_hidden={"g1": [8]})
    obs = make_obs()
    with pytest.raises(ValueError, match="encoder_index"):
        ac.act_inference(obs)


@pytest.mark.parametrize("mode", ["none", "post_quant", "pre_quant", "replace"])
def test_residual_modes(mode):
    tok: UniversalTokenModule = small_ac(residual_mode=mode).token
    latent = torch.randn(5, tok.latent_dim)
    res = torch.full((5, tok.latent_dim), 0.3)
    out = tok.tokenize(latent, res)
    expected = {
        "none": tok.fsq(latent),
        "post_quant": tok.fsq(latent) + 0.3,
        "pre_quant": tok.fsq(latent + 0.3),
        "replace": res,
    }[mode]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(tok.tokenize(latent, None), tok.fsq(latent))


def test_act_and_evaluate_agree_and_std_is_clamped():
    torch.manual_seed(0)
    ac = small_ac(init_noise_std=0.05)
    obs = make_obs()
    actions, logp, mean, std = ac.act(obs)
    torch.testing.assert_close(std, torch.full((4,), 0.05))
    ev = ac.evaluate(obs, actions)
    torch.testing.assert_close(ev.logp, logp)
    torch.testing.assert_close(ev.mean, mean)
    assert ev.value.shape == (9,) and ev.kin_pred.shape == (9, 12)
    assert set(ev.latents) == set(DIMS) and ev.reencoded_smpl.shape == (9, 6)
    with torch.no_grad():
        ac.log_std.fill_(5.0)
    ac.project_std()  # the optimiser step's projection
    assert float(ac.std.detach().max()) == pytest.approx(0.5)
    with torch.no_grad():
        ac.log_std.fill_(-20.0)
    ac.project_std()
    assert float(ac.std.detach().min()) == pytest.approx(0.001)


def test_std_at_its_bound_still_has_a_gradient():
    # A clamp in the forward zeroed d std / d log_std at the bounds, so a std stuck at max_std could
    # never be pulled back by the loss; the projection leaves the forward unclamped.
    ac = small_ac(init_noise_std=0.5)
    ac.project_std()
    ac.std.sum().backward()
    # d/dx exp(x) at x = log(0.5): 0.5 per action dim
    torch.testing.assert_close(ac.log_std.grad, torch.full((4,), 0.5))


def test_gaussian_formulas_match_torch_distributions():
    mean, std = torch.randn(6, 3), torch.rand(3) + 0.1
    x = torch.randn(6, 3)
    dist = torch.distributions.Normal(mean, std)
    torch.testing.assert_close(gaussian_logp(x, mean, std), dist.log_prob(x).sum(-1))
    torch.testing.assert_close(gaussian_entropy(std), dist.entropy()[0].sum())


def test_normalizer_matches_numpy_and_merges():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (100, 4)), rng.normal(-1, 0.5, (37, 4))
    n1 = RunningNormalizer(4)
    n1.update(torch.tensor(a))
    n1.update(torch.tensor(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(n1.mean.numpy(), both.mean(0), rtol=1e-10)
    np.testing.assert_allclose(n1.var.numpy(), both.var(0), rtol=1e-10)
    ac = small_ac()
    x = torch.tensor(both[:, :1]).repeat(1, 11).float()
    # raw-moment path (what DDP learners sum) gives the same statistics
    ac.update_critic_normalizer(x[:50])
    ac.update_critic_normalizer(x[50:], reduce_fn=lambda t: t)
    assert float(ac.critic_normalizer.mean[0]) == pytest.approx(both[:, 0].mean(), rel=1e-5)
    assert float(ac.critic_normalizer.var[0]) == pytest.approx(both[:, 0].var(), rel=1e-4)
    assert math.isfinite(float(ac.value(make_obs())[0].detach()))


def test_inference_attributes_exist():
    ac = small_ac()
    for name in ActorCritic.NON_INFERENCE_ATTRIBUTES:
        obj = ac
        for part in name.split("."):
            obj = getattr(obj, part)
        assert isinstance(obj, torch.nn.Module)


@pytest.mark.parametrize("mode", ["none", "post_quant"])
def test_shared_kin_decoding_equals_two_separate_passes(mode):
    """evaluate decodes routed and smpl tokens in one pass (sharing smpl-routed rows): values and
    gradients must equal decoding each separately."""
    torch.manual_seed(0)
    ac = small_ac(residual_mode=mode)
    obs = make_obs()
    residual = 0.1 * torch.randn(9, ac.token.latent_dim) if mode != "none" else None
    actions = torch.randn(9, 4)
    ev = ac.evaluate(obs, actions, residual)
    (ev.kin_pred.square().sum() + ev.reencoded_smpl.square().sum()).backward()
    fast = {n: p.grad.clone() for n, p in ac.named_parameters() if p.grad is not None}
    ac.zero_grad()
    tok = ac.token
    latents = tok.encode_all(obs)
    token = tok.tokenize(tok.route(latents, obs[K.ENCODER_INDEX]), residual)
    kin_pred = tok.kin_decoder(token)
    reencoded = tok.encoders["g1"](tok.kin_decoder(tok.fsq(latents["smpl"])))
    torch.testing.assert_close(ev.kin_pred, kin_pred)
    torch.testing.assert_close(ev.reencoded_smpl, reencoded)
    (kin_pred.square().sum() + reencoded.square().sum()).backward()
    slow = {n: p.grad for n, p in ac.named_parameters() if p.grad is not None}
    assert set(fast) == set(slow)
    for name in slow:
        torch.testing.assert_close(fast[name], slow[name], msg=name)
