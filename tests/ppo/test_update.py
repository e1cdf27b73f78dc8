import numpy as np
import pytest
import torch

from sonic_ray.models import keys as K
from sonic_ray.ppo import rollout
from sonic_ray.ppo.batch import minibatch, training_tensors
from sonic_ray.ppo.losses import aux_losses
from sonic_ray.ppo.update import PPOUpdater, minibatch_indices
from tests.models.test_actor_critic import DIMS, small_ac

T, N = 6, 8


def fake_rollout(seed=0) -> rollout.FlatBatch:
    """A rollout with the shapes and dtypes the collector writes (random content)."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    d = {K.OBS_PREFIX + K.TOKENIZER_KEYS[n]: f(T, N, dim) for n, dim in DIMS.items()}
    d[K.OBS_PREFIX + K.POLICY] = f(T, N, 10)
    d[K.OBS_PREFIX + K.CRITIC] = f(T, N, 11)
    d[K.OBS_PREFIX + K.ENCODER_INDEX] = rng.integers(0, 3, (T, N)).astype(np.int8)
    d.update(
        {
            K.ACTIONS: f(T, N, 4),
            K.LOGP: f(T, N) - 5,
            K.ACTION_MEAN: f(T, N, 4),
            K.ACTION_STD: np.full(4, 0.05, np.float32),
            K.REWARDS: f(T, N),
            K.TERMINATED: rng.random((T, N)) < 0.1,
            K.TRUNCATED: np.zeros((T, N), bool),
            K.LAST_CRITIC_OBS: f(N, 11),
        }
    )
    d[K.TRUNCATED][2, 5] = True
    d[K.TERMINATED][2, 5] = False
    d[K.FINAL_CRITIC_OBS] = f(1, 11)
    d[K.FINAL_INDEX] = np.array([2 * N + 5])
    return rollout.FlatBatch(d)


def test_split_then_concat_roundtrip():
    b = fake_rollout()
    parts = rollout.split_envs(b, 3)
    assert [p.num_envs for p in parts] == [2, 3, 3]
    owner = [i for i, p in enumerate(parts) if len(p.data[K.FINAL_INDEX])]
    assert owner == [2]  # slices are envs 0-1, 2-4, 5-7: the truncated env 5 travels with the third
    joined = rollout.concat_envs(parts)
    for k, v in b.data.items():
        np.testing.assert_array_equal(joined.data[k], v, err_msg=k)


def test_training_tensors_shapes_and_bootstrap():
    b = fake_rollout()
    ac = small_ac()
    data = training_tensors(b.data, value_fn=ac.value_from_critic_obs, gamma=0.99, lam=0.95)
    assert data[K.ACTIONS].shape == (T * N, 4) and data["advantages"].shape == (T * N,)
    assert data[K.OBS_PREFIX + K.ENCODER_INDEX].dtype == torch.long
    mb = minibatch(data, torch.arange(5), normalize_advantage=True)
    assert set(mb[K.OBS]) == {K.POLICY, K.CRITIC, K.ENCODER_INDEX, *K.TOKENIZER_KEYS.values()}
    assert float(mb["advantages"].mean()) == pytest.approx(0.0, abs=1e-6)


def test_minibatch_indices_cover_every_row_each_epoch():
    chunks = list(minibatch_indices(10, 2, 4, generator=torch.Generator().manual_seed(0)))
    assert len(chunks) == 8
    assert sorted(torch.cat(chunks[:4]).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="minibatches"):
        list(minibatch_indices(3, 1, 4))


def test_aux_losses_decrease_on_a_fixed_batch():
    torch.manual_seed(0)
    ac = small_ac()
    data = training_tensors(fake_rollout().data, value_fn=ac.value_from_critic_obs, gamma=0.99, lam=0.95)
    mb = minibatch(data, torch.arange(T * N), normalize_advantage=False)
    coefs = {
        "g1_recon": 1.0,
        "g1_smpl_align": 1.0,
        "g1_teleop_align": 1.0,
        "teleop_smpl_align": 1.0,
        "smpl_reencode_g1": 1.0,
    }
    opt = torch.optim.Adam(ac.token.parameters(), lr=3e-3)
    first = None
    for _ in range(100):
        ev = ac.evaluate(mb[K.OBS], mb[K.ACTIONS])
        loss, stats = aux_losses(ev, coefs)
        first = first or {k: float(v) for k, v in stats.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(stats["loss/aux_total"]) < 0.8 * first["loss/aux_total"]
    for k in (
        "loss/aux_g1_recon",
        "loss/aux_g1_smpl_align",
        "loss/aux_g1_teleop_align",
        "loss/aux_teleop_smpl_align",
    ):
        assert float(stats[k]) < first[k], k
    # smpl_reencode_g1 chases a detached, moving g1 latent: it need not fall monotonically here.
    assert np.isfinite(float(stats["loss/aux_smpl_reencode_g1"]))


def test_full_update_runs_and_kl_schedule_moves_lr():
    torch.manual_seed(0)
    ac = small_ac()
    kw = dict(
        critic_lr=1e-3,
        lr_min=1e-6,
        lr_max=1e-1,
        desired_kl=0.01,
        schedule="adaptive",
        num_learning_epochs=2,
        num_mini_batches=4,
        clip_param=0.2,
        value_loss_coef=1.0,
        entropy_coef=0.0,
        use_clipped_value_loss=True,
        max_grad_norm=1.0,
        normalize_advantage=True,
        aux_coefs={"g1_recon": 0.01},
    )
    data = training_tensors(fake_rollout().data, value_fn=ac.value_from_critic_obs, gamma=0.99, lam=0.95)
    # Random old means far from the policy's: KL is huge, so the actor lr must shrink.
    up = PPOUpdater(ac, actor_lr=1e-2, **kw)
    stats = up.update(data)
    assert stats["ppo/approx_kl"] > 0.02 and up.actor_lr < 1e-2
    for k in (
        "loss/policy",
        "loss/value",
        "loss/entropy",
        "loss/aux_g1_recon",
        "ppo/clip_frac",
        "ppo/explained_variance",
    ):
        assert np.isfinite(stats[k]), k
    # Old means equal to the current policy's and a tiny lr: KL stays tiny, so the lr grows.
    with torch.no_grad():
        data[K.ACTION_MEAN] = ac.act_inference({k[4:]: v for k, v in data.items() if k.startswith("obs/")})
        data[K.LOGP] = ac.evaluate(
            {k[4:]: v for k, v in data.items() if k.startswith("obs/")}, data[K.ACTIONS]
        ).logp
    up2 = PPOUpdater(ac, actor_lr=1e-5, **kw)
    up2.update(data)
    assert up2.actor_lr > 1e-5
    state = up2.state_dict()
    up2.load_state_dict(state)
    assert up2.actor_lr == state["actor_lr"]


def test_token_diagnostics_see_a_collapsed_token():
    """A fresh encoder's latents round to the zero code: the decoder gets one token for every row,
    which `token/nonzero_share` 0 and `token/distinct_share` 1/rows make visible in the learner's stats."""
    from sonic_ray.ppo.losses import compute_losses

    torch.manual_seed(0)
    ac = small_ac()
    data = training_tensors(fake_rollout().data, value_fn=ac.value_from_critic_obs, gamma=0.99, lam=0.95)
    mb = minibatch(data, torch.arange(data[K.ACTIONS].shape[0]), normalize_advantage=True)
    coefs = dict(
        clip_param=0.2,
        value_loss_coef=1.0,
        entropy_coef=0.0,
        use_clipped_value_loss=True,
        aux_coefs={"g1_recon": 0.01},
    )
    with torch.no_grad():
        for enc in ac.token.encoders.values():
            enc[-1].weight.zero_()
            enc[-1].bias.zero_()
    _, stats = compute_losses(ac, mb, **coefs)
    rows = mb[K.ACTIONS].shape[0]
    assert float(stats["token/nonzero_share"]) == 0.0
    assert float(stats["token/distinct_share"]) == pytest.approx(1.0 / rows)
    with torch.no_grad():
        for enc in ac.token.encoders.values():
            enc[-1].bias.fill_(0.9)  # every latent on the code 0.9's nearest, never zero
    _, stats = compute_losses(ac, mb, **coefs)
    assert float(stats["token/nonzero_share"]) == 1.0


def test_update_reports_the_mean_lr_its_steps_took():
    """Within one update the adaptive rule moves the lr every minibatch (rsl_rl's rule): from the
    floor up while the policy is still close to the rollout's, back down once the KL passes twice
    the target. ppo/actor_lr is where it ended; ppo/actor_lr_mean what the steps used."""
    from sonic_ray.ppo.update import UpdateLoop

    loop = UpdateLoop(
        actor_lr=1e-5,
        lr_min=1e-5,
        lr_max=2e-4,
        desired_kl=0.01,
        schedule="adaptive",
        num_learning_epochs=2,
        num_mini_batches=3,
        normalize_advantage=False,
    )
    kls = iter([0.001, 0.001, 0.003, 0.03, 0.03, 0.01])  # up, up, up, down, down, hold
    used = []

    def step(mb):
        used.append(loop.lr_for_step(next(kls)))
        return {"ppo/approx_kl": 0.0}

    out = loop.run({K.ACTIONS: torch.zeros(6, 2)}, step)
    assert used == pytest.approx([1.5e-5, 2.25e-5, 3.375e-5, 2.25e-5, 1.5e-5, 1.5e-5])
    assert out["ppo/actor_lr"] == pytest.approx(1.5e-5)
    assert out["ppo/actor_lr_mean"] == pytest.approx(sum(used) / 6)
