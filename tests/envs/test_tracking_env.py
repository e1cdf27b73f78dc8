"""TrackingEnv on real MuJoCo (small N, a tiny store written per module)."""

import numpy as np
import pytest
import torch
from env_builders import tiny_store

from sonic_ray.config import config_dir, load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.envs.gym_adapter import GymVectorEnv
from sonic_ray.models.keys import ENCODER_INDEX

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "exp").glob("*.yaml"))
GROUPS = ("policy", "critic", "tokenizer_g1", "tokenizer_smpl", "tokenizer_teleop")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return str(tiny_store(tmp_path_factory.mktemp("motions") / "tiny.parquet"))


def cfg_for(store, exp="demo", *extra):
    # Every preset runs here on MuJoCo CPU (the release preset names CUDA + Warp for GPU clusters).
    return load_config([f"+exp={exp}", f"motions.store={store}", "device=cpu", "sim.backend=mujoco", *extra])


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_obs_shapes_per_group_for_every_preset(store, exp):
    env = make_env(cfg_for(store, exp), num_envs=3)
    obs = env.reset()
    dims = env.obs_dims()
    assert set(obs) == set(GROUPS) | {ENCODER_INDEX}
    for k in GROUPS:
        assert obs[k].shape == (3, dims[k]) and obs[k].dtype == torch.float32 and torch.isfinite(obs[k]).all()
    assert obs[ENCODER_INDEX].shape == (3,)
    cfg = cfg_for(store, exp)
    hist = cfg.env.observations.policy.history_length
    assert dims["policy"] % hist == 0
    obs, r, te, tr, info = env.step(torch.zeros(3, env.action_dim))
    assert r.shape == te.shape == tr.shape == (3,)
    env.close()


def test_policy_history_is_a_ring_of_past_frames(store):
    # SONIC's 10-step history (the demo preset has none)
    over = ("env.observations.policy.enable_corruption=false", "env.observations.policy.history_length=10")
    env = make_env(cfg_for(store, "demo", *over), num_envs=2)
    obs0 = env.reset()["policy"].reshape(2, 10, -1)
    assert torch.equal(obs0[:, 0], obs0[:, -1])  # a fresh episode's history repeats its first frame
    frames = [obs0[:, -1]]
    for _ in range(3):
        obs, *_, info = env.step(0.05 * torch.ones(2, env.action_dim))
        if len(info["done_ids"]):
            pytest.skip("an episode ended during the history check")
        frames.append(obs["policy"].reshape(2, 10, -1)[:, -1])
    hist = obs["policy"].reshape(2, 10, -1)
    torch.testing.assert_close(hist[:, -4:], torch.stack(frames, 1))


def test_peek_is_the_observation_compute_would_give(store):
    env = make_env(cfg_for(store, "demo", "env.observations.policy.enable_corruption=false"), num_envs=3)
    env.step(torch.zeros(3, env.action_dim))
    ids = torch.tensor([0, 2])
    peeked = env.obs_manager.peek(env, ids, corrupt=False)
    full = env.obs_manager.compute(env, corrupt=False)
    for k in GROUPS:
        torch.testing.assert_close(peeked[k], full[k][ids])


def test_clip_end_is_a_truncation_and_final_obs_is_kept(store):
    # The robot keeps the start frame's pose while the reference jumps ahead to the clip's end: the
    # heading may then differ by ~0.5 rad, which the (heading-strict) anchor_ori term would end.
    cfg = cfg_for(store, "demo", "env.events.level=0", "env.terminations.anchor_ori.params.threshold=10.0")
    env = make_env(cfg, num_envs=4)
    env.cmd.frame = env.cmd.last_frame - 2  # the last frame is tracked on the third step
    env.cmd.update_reference()
    env.cmd.set_robot(env.robot)
    zero = torch.zeros(4, env.action_dim)
    for _ in range(2):
        _, _, te, tr, info = env.step(zero)
        assert not tr.any()
    _, _, te, tr, info = env.step(zero)
    ended = te | tr
    assert tr[~te].all() and ended.all()
    assert set(info["done_ids"].tolist()) == set(range(4))
    trunc = info["truncated_ids"]
    assert set(trunc.tolist()) == set(torch.nonzero(tr).squeeze(-1).tolist())
    # By default only what bootstrapping needs: the critic's observation (and the encoder index).
    assert set(info["final_obs"]) == {"critic", ENCODER_INDEX}
    assert info["final_obs"]["critic"].shape == (len(trunc), env.obs_dims()["critic"])
    assert (env.episode_length == 0).all() and (env.cmd.frame < env.cmd.last_frame).all()
    m = env.metrics()
    assert m["termination/motion_clip_end"] == 4 and m["env/episodes"] == 4
    assert m["env/truncated"] + m["env/terminated"] == 4
    assert m["env/success_rate"] == m["env/truncated"] / 4  # ended without a failure


def test_final_obs_of_every_group_when_asked(store):
    env = make_env(cfg_for(store, "demo", "env.episode_length_s=0.06"), num_envs=2)
    env.final_obs_groups = None
    for _ in range(3):
        _, _, _, tr, info = env.step(torch.zeros(2, env.action_dim))
    assert tr.all()
    for k in GROUPS:
        assert info["final_obs"][k].shape == (2, env.obs_dims()[k])


def test_time_out_truncates(store):
    env = make_env(cfg_for(store, "demo", "env.episode_length_s=0.06"), num_envs=2)
    for _ in range(3):
        _, _, te, tr, info = env.step(torch.zeros(2, env.action_dim))
    assert (tr | te).all() and tr[~te].all()


def test_blow_up_resets_the_env_and_is_counted(store):
    env = make_env(cfg_for(store, "demo"), num_envs=3)
    for _ in range(2):
        env.step(torch.zeros(3, env.action_dim))
    # A state MuJoCo cannot integrate, written into env 1's MjData: it resets the data itself and
    # the backend flags the env (a direct write: a real blow-up is not reproducible on demand).
    env.sim.datas[1].qvel[6] = float("nan")
    obs, r, te, tr, info = env.step(torch.zeros(3, env.action_dim))
    assert info["nonfinite_ids"].tolist() == [1]
    assert te[1] and not tr[1] and r[1] == 0 and torch.isfinite(r).all()
    assert all(torch.isfinite(v.float()).all() for v in obs.values())
    assert 1 in info["done_ids"].tolist()
    assert not env.sim.nonfinite_envs().any()
    assert env.metrics()["env/nonfinite_resets"] == 1


def test_gym_adapter_numpy_round_trip(store):
    venv = GymVectorEnv(make_env(cfg_for(store, "smoke"), num_envs=2))
    obs, _ = venv.reset(seed=3)
    assert venv.observation_space.contains(obs)
    obs, r, te, tr, infos = venv.step(np.zeros((2, venv.single_action_space.shape[0]), np.float32))
    assert isinstance(r, np.ndarray) and r.shape == (2,) and obs["policy"].dtype == np.float32
    venv.close()


@pytest.mark.slow
def test_demo_preset_episode_with_random_actions(tmp_path):
    """The demo preset on the synthetic motion set (built here), random actions, 120 steps."""
    cfg = load_config(["+exp=demo", f"motions.synth_cache={tmp_path / 'synth.parquet'}"])
    env = make_env(cfg, num_envs=8, seed=1)
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(8)
    for _ in range(120):
        obs, r, te, tr, info = env.step(0.2 * torch.randn(8, env.action_dim, generator=g))
        assert torch.isfinite(r).all() and not (te & tr).any()
        total += r
    m = env.metrics()
    assert m["env/episodes"] > 0 and m["env/episode_length"] > 0
    assert any(k.startswith("reward/") for k in m) and total.abs().sum() > 0


def test_event_levels_gate_terms_and_run_on_mujoco(store):
    off = make_env(cfg_for(store, "demo", "env.events.level=0"), num_envs=2)
    assert off.event_manager.active == []
    env = make_env(
        cfg_for(
            store, "demo", "env.events.level=4", "env.events.terms.push_robot.interval_range_s=[0.02,0.02]"
        ),
        num_envs=2,
    )
    assert set(env.event_manager.active) == {
        "physics_material",
        "default_joint_offsets",
        "torso_com",
        "push_robot",
        "link_mass",
    }
    assert (env.joint_offsets.abs() <= 0.01).all() and env.joint_offsets.abs().sum() > 0
    torso = env.cmd.body_ids(("torso_link",))[0] + 1  # MuJoCo body index (world is 0)
    nominal = env.sim.model.body_ipos[torso]
    assert not np.allclose(env.sim.env_model(0).body_ipos[torso], nominal)
    obs, r, te, tr, info = env.step(torch.zeros(2, env.action_dim))  # a push fires every step
    assert torch.isfinite(r).all()
    with pytest.raises(ValueError, match="level"):
        make_env(cfg_for(store, "demo", "env.events.level=5"), num_envs=2)


@pytest.mark.slow
@pytest.mark.skipif(
    "mujoco_warp" not in __import__("sonic_ray.sim", fromlist=["x"]).available_backends(),
    reason="mujoco_warp / warp-lang not installed (the `warp` extra)",
)
def test_env_on_the_warp_backend_matches_cpu_mujoco(store):
    """The same env on MuJoCo Warp (warp's cpu device here, CUDA on a GPU node) and on CPU MuJoCo:
    same seed, same actions -> the same observations and rewards for the first steps, within
    float32 solver differences."""
    envs = {
        b: make_env(
            load_config(
                [
                    "+exp=demo",
                    f"motions.store={store}",
                    "device=cpu",
                    f"sim.backend={b}",
                    "env.observations.policy.enable_corruption=false",
                    "env.observations.critic.enable_corruption=false",
                    "env.commands.motion.reset_pose_noise={}",
                ]
            ),
            num_envs=2,
            seed=3,
        )
        for b in ("mujoco", "mujoco_warp")
    }
    obs = {b: e.reset() for b, e in envs.items()}
    torch.testing.assert_close(obs["mujoco_warp"]["policy"], obs["mujoco"]["policy"], atol=1e-4, rtol=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        a = 0.1 * torch.randn(2, envs["mujoco"].action_dim, generator=g)
        out = {b: e.step(a) for b, e in envs.items()}
        torch.testing.assert_close(out["mujoco_warp"][1], out["mujoco"][1], atol=2e-3, rtol=2e-2)
        torch.testing.assert_close(
            out["mujoco_warp"][0]["policy"], out["mujoco"][0]["policy"], atol=5e-2, rtol=5e-2
        )
    for e in envs.values():
        e.close()


@pytest.mark.slow
def test_compiled_step_matches_eager(store):
    """env.compile=true (terminations + rewards through torch.compile) steps like the eager env:
    the same episodes end, the same observations, rewards equal to float32 rounding."""
    envs = [make_env(cfg_for(store, "demo", f"env.compile={c}"), num_envs=6, seed=3) for c in (False, True)]
    g = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(25):
        a = 0.3 * torch.randn(6, envs[0].action_dim, generator=g)
        (o0, r0, te0, tr0, i0), (o1, r1, te1, tr1, i1) = (e.step(a) for e in envs)
        assert torch.equal(te0, te1) and torch.equal(tr0, tr1)
        torch.testing.assert_close(r1, r0, rtol=1e-5, atol=1e-6)
        for k in o0:
            torch.testing.assert_close(o1[k], o0[k], rtol=1e-5, atol=1e-5)
        ended += len(i0["done_ids"])
    assert ended > 0  # resets happened on both sides, in step
    m0, m1 = (e.metrics() for e in envs)
    assert m0.keys() == m1.keys()
    for k in m0:
        assert m1[k] == pytest.approx(m0[k], rel=1e-4, abs=1e-6), k


@pytest.mark.slow
def test_compile_failure_says_what_to_do(store, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    env = make_env(cfg_for(store, "demo", "env.compile=true"), num_envs=2)
    with pytest.raises(RuntimeError, match="env.compile=false"):
        env.step(torch.zeros(2, env.action_dim))
