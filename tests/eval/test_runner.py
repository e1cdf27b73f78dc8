"""The evaluation runner on a real TrackingEnv (MuJoCo) with a real, untrained ActorCritic."""

import pickle

import numpy as np
import pytest
import torch
from eval_builders import small_checkpoint, small_config, small_store

from sonic_ray.eval.policy import model_kwargs_for
from sonic_ray.eval.runner import ClipQueueSampler, evaluate_policy, worst_first_key
from sonic_ray.models.actor_critic import ActorCritic


def test_clip_queue_sampler_hands_out_each_clip_once_from_frame_zero():
    s = ClipQueueSampler([4, 2, 7], idle_clip=1)
    g = torch.Generator().manual_seed(0)
    clips, starts = s.sample(2, g)
    assert clips.tolist() == [4, 2] and starts.tolist() == [0, 0] and s.last_slots.tolist() == [0, 1]
    clips, starts = s.sample(3, g)
    assert clips.tolist() == [7, 1, 1] and s.last_slots.tolist() == [2, -1, -1] and s.exhausted


def test_worst_first_orders_failures_by_how_early_then_errors():
    rows = [
        {"success": True, "mpjpe_g_mm": 30.0, "completed": 1.0},
        {"success": False, "mpjpe_g_mm": 10.0, "completed": 0.8},
        {"success": True, "mpjpe_g_mm": 90.0, "completed": 1.0},
        {"success": False, "mpjpe_g_mm": 5.0, "completed": 0.1},
    ]
    assert [r["mpjpe_g_mm"] for r in sorted(rows, key=worst_first_key)] == [5.0, 10.0, 90.0, 30.0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return small_store(tmp_path_factory.mktemp("store"))


def _policy(cfg):
    torch.manual_seed(0)
    return ActorCritic(**model_kwargs_for(cfg)).eval()


@pytest.mark.slow
def test_every_clip_once_whole_clips_and_time_aligned(store):
    cfg = small_config(store)
    # Only the clip's end stops an episode: each clip must be evaluated over all of its frames.
    cfg.env.eval_terminations = {
        k: v for k, v in cfg.env.eval_terminations.items() if k in ("time_out", "motion_clip_end")
    }
    cfg.env.episode_length_s = 0.1  # shorter than every clip: evaluation must lift the limit
    out = evaluate_policy(cfg, _policy(cfg), num_envs=2, keep_worst=4, encoders=("g1", "teleop"))
    rows = sorted(out.rows, key=lambda r: (r["clip_index"], r["encoder"]))
    assert [(r["clip_index"], r["encoder"]) for r in rows] == [
        (i, e) for i in range(4) for e in ("g1", "teleop")
    ]
    assert all(r["success"] and r["num_frames"] == r["clip_frames"] and r["completed"] == 1.0 for r in rows)
    assert [r["clip_frames"] for r in rows[::2]] == [30, 45, 20, 36]
    assert rows[0]["clip"] == "cut0_stand_idle"
    assert len(out.worst) == 4
    for tr in out.worst:  # frame 0: the robot was reset onto the reference (no pose noise in evaluation)
        np.testing.assert_allclose(tr.robot_qpos[0], tr.ref_qpos[0], atol=1e-5)
        assert tr.robot_qpos.shape == (tr.row["num_frames"], 36)
        assert np.abs(tr.robot_qpos[-1] - tr.ref_qpos[-1]).max() > 1e-3  # an untrained policy drifts off


@pytest.mark.slow
def test_failures_end_clips_early_with_eval_terminations(store):
    cfg = small_config(store, "env.eval_terminations.anchor_pos.params.threshold=0.001")
    out = evaluate_policy(cfg, _policy(cfg), num_envs=3)
    assert len(out.rows) == 4 and out.env_steps > 0
    for r in out.rows:
        # a 1 mm anchor threshold fails within a few steps; frames before the failure are kept
        assert not r["success"] and 1 <= r["num_frames"] < r["clip_frames"] and r["completed"] < 1
        assert np.isfinite(r["mpjpe_g_mm"])


@pytest.mark.slow
def test_an_evaluation_in_this_process_reads_the_checkpoint_once(store, tmp_path, monkeypatch):
    import sonic_ray.train.checkpoint as ckpt_mod
    from sonic_ray.eval.pipeline import evaluate_checkpoint_local, plan_evaluation

    ckpt = small_checkpoint(tmp_path / "run", small_config(store))
    loads = []
    real = ckpt_mod.torch.load
    monkeypatch.setattr(ckpt_mod.torch, "load", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    plan = plan_evaluation(ckpt, max_tasks=2, clips_per_task=2, num_envs=2)
    assert (plan.num_tasks, plan.iteration, plan.loaded.path) == (2, 3, ckpt)
    assert pickle.loads(pickle.dumps(plan)).loaded is None  # a Ray task reads the checkpoint itself
    metrics = evaluate_checkpoint_local(plan, tmp_path / "out", progress=False)
    assert metrics["num_clips"] == 4 and metrics["iteration"] == 3
    assert len(loads) == 1, loads  # planning read it; both chunks built their policy from that state


def test_blind_policy_acts_from_proprioception_with_the_centre_code(store):
    from sonic_ray.eval.runner import BlindPolicy
    from sonic_ray.models import keys as K

    cfg = small_config(store, "actor_critic.obs_normalization=true")
    policy = _policy(cfg)
    torch.manual_seed(1)
    kw = model_kwargs_for(cfg)
    dims = {K.TOKENIZER_KEYS[n]: d for n, d in kw["encoder_input_dims"].items()}
    obs = {K.POLICY: torch.randn(5, kw["proprio_dim"])}
    obs.update({k: 4.0 * torch.randn(5, d) for k, d in dims.items()})
    obs[K.ENCODER_INDEX] = torch.zeros(5, dtype=torch.long)
    with torch.no_grad():
        # normalisers away from identity, so the blind path must apply them as act_inference does
        policy.update_actor_normalizers({k: 3.0 + 2.0 * v for k, v in obs.items() if k != K.ENCODER_INDEX})
        blind = BlindPolicy(policy).act_inference(obs)
        normed = policy.normalize_actor_obs(obs)[K.POLICY]
        zero = torch.zeros(5, policy.token.latent_dim)
        expected = policy.token.action_mean(zero, normed)
        seeing = policy.act_inference(obs)
        token = policy.token.tokenize(policy.token.encode_routed(policy.normalize_actor_obs(obs)))
    torch.testing.assert_close(blind, expected, rtol=0, atol=0)
    # rows whose token is not the centre code act differently seeing it; the others the same
    nonzero = token.abs().sum(-1) > 0
    assert 0 < int(nonzero.sum()) and ((blind != seeing).any(-1) == nonzero).all()
