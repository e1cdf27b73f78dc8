"""Sim-to-sim from the ONNX file alone: the closed loop equals the training env's, the CLI writes
eval's metrics.json and videos, delay/noise do what they say, VR targets drive the teleop path."""

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from deploy_builders import config, short_store, write_checkpoint

from sonic_ray.cli import main
from sonic_ray.deploy import sim2sim
from sonic_ray.deploy.export import export_checkpoint
from sonic_ray.deploy.observations import (
    DeployContext,
    GroupBuilder,
    ObservationBuilder,
    robot_state_from_mujoco,
)
from sonic_ray.deploy.onnx_meta import MetadataError, read_metadata
from sonic_ray.deploy.reference import load_references, vr_reference, vr_targets_from_reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("s2s")
    store = short_store(root / "short.parquet", seconds=(1.2, 0.8, 1.0))
    cfg = config(store)
    ckpt, ac = write_checkpoint(root / "ckpt", cfg, action_gain=30.0)
    export_checkpoint(ckpt, root / "onnx", batch=8)
    return cfg, ac.eval(), store, root / "onnx"


def _env_episode(cfg, ac, encoder, clip):
    """Robot and reference body positions of one eval-mode TrackingEnv episode, set up as
    `sonic-ray eval` sets it up (eval_config, the clip from frame 0, no observation noise)."""
    from sonic_ray.envs.factory import make_env
    from sonic_ray.eval.runner import ClipQueueSampler, eval_config

    env = make_env(eval_config(cfg), num_envs=1, eval_mode=True)
    try:
        obs = env.start_evaluation(
            ClipQueueSampler([clip], idle_clip=clip),
            encoder=encoder,
            max_episode_length=int(env.cmd.table.clip_frames[clip]) + 1,
        )
        rob, ref = [env.robot.body_pos_w[0].numpy().copy()], [env.cmd.ref_body_pos_w[0].numpy().copy()]
        while True:
            with torch.no_grad():
                obs, _, terminated, _, info = env.step(ac.act_inference(obs))
            if len(info["done_ids"]):
                return np.array(rob), np.array(ref), bool(terminated[0])
            rob.append(env.robot.body_pos_w[0].numpy().copy())
            ref.append(env.cmd.ref_body_pos_w[0].numpy().copy())
    finally:
        env.close()


def test_closed_loop_equals_the_training_env(deployed):
    """Same policy, same clip, same start: the ONNX loop on plain MuJoCo and TrackingEnv (torch
    policy) give the same trajectory and end the same way, for every encoder path."""
    cfg, ac, store, onnx_dir = deployed
    outcomes = []
    for encoder in ("g1", "teleop", "smpl"):
        run = sim2sim.Sim2Sim(sim2sim.OnnxPolicy(onnx_dir / f"policy_{encoder}.onnx"))
        for clip in (0, 1):
            ref = load_references(store, run.meta, [clip])[0]
            r = run.run_clip(ref)
            rob, ref_pos, failed = _env_episode(cfg, ac, encoder, clip)
            assert len(r.robot_pos_w) == len(rob) and r.failed == failed, (
                encoder,
                clip,
                len(r.robot_pos_w),
                len(rob),
            )
            assert np.abs(r.robot_pos_w - rob).max() < 1e-4, (encoder, clip)
            np.testing.assert_allclose(r.ref_pos_w, ref_pos, atol=1e-5)
            outcomes.append((encoder, clip, len(rob), failed, float(np.abs(r.robot_pos_w - rob).max())))
    print("encoder, clip, frames, failed, max |sim2sim - env| (m):", outcomes)
    assert any(o[3] for o in outcomes) and not all(o[3] for o in outcomes), "want both endings covered"


def test_cli_on_two_clips_writes_metrics_and_a_video(deployed, tmp_path, capsys):
    _, _, store, onnx_dir = deployed
    out = tmp_path / "run"
    assert (
        main(
            [
                "sim2sim",
                "--onnx",
                str(onnx_dir / "policy_g1.onnx"),
                "--motions",
                str(store),
                "--clips",
                "short0",
                "2",
                "--out",
                str(out),
                "--render",
                "1",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_clips"] == 2 and 0.0 <= metrics["success_rate"] <= 1.0
    assert metrics["per_encoder"]["g1"]["num_clips"] == 2 and metrics["encoders"] == ["g1"]
    speed = metrics["sim2sim"]["speed"]
    assert speed["steps_per_s"] > 0 and metrics["sim2sim"]["obs_delay_steps"] == 0
    rows = pq.read_table(out / "clips.parquet").to_pylist()
    assert [r["clip"] for r in rows] == ["short0", "short2"] and [r["clip_index"] for r in rows] == [0, 2]
    videos = list((out / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    assert f"videos/{videos[0].name}" in (out / "report.html").read_text()
    assert "steps/s" in capsys.readouterr().out
    print("sim2sim speed:", speed)


def test_observation_delay_shows_the_state_k_steps_old(deployed):
    _, _, store, onnx_dir = deployed
    run = sim2sim.Sim2Sim(sim2sim.OnnxPolicy(onnx_dir / "policy_g1.onnx"), obs_delay_steps=2)
    seen, inner = [], run.policy
    run.policy = lambda obs: (seen.append(obs["policy"].copy()), inner(obs))[1]
    ref = load_references(store, run.meta, [0])[0]
    r = run.run_clip(ref)
    layout = run.meta["observations"]["policy"]
    start = sum(t["dim"] for t in layout["terms"][:2])  # projected_gravity, base_ang_vel, then joint_pos_rel
    assert layout["terms"][2]["name"] == "joint_pos_rel"
    for f, obs in enumerate(seen):
        newest = obs[-layout["frame_dim"] :]
        q = r.robot_qpos[max(f - 2, 0)][7:]
        np.testing.assert_allclose(newest[start : start + len(q)], q - run.default, atol=1e-6)


def test_observation_noise_is_bounded_by_the_training_noise(deployed):
    meta = read_metadata(deployed[3] / "policy_g1.onnx")
    layout = meta["observations"]["policy"]
    sim = sim2sim.Sim2Sim(sim2sim.OnnxPolicy(deployed[3] / "policy_g1.onnx"))
    ref = load_references(deployed[2], meta, [0])[0]
    state = sim.reset(ref)
    ctx = DeployContext.from_metadata(meta)
    clean = GroupBuilder("policy", layout).reset(_inputs(state, ref, ctx))
    noisy = GroupBuilder("policy", layout, noise_scale=2.0, rng=np.random.default_rng(1)).reset(
        _inputs(state, ref, ctx)
    )
    bound = np.concatenate([np.full(t["dim"], 2.0 * t["noise"]) for t in layout["terms"]])
    diff = np.abs(noisy - clean)[: layout["frame_dim"]]
    assert (diff <= bound + 1e-12).all() and (diff[bound > 0] > 0).all() and (diff[bound == 0] == 0).all()


def _inputs(state, ref, ctx):
    from sonic_ray.deploy.observations import Inputs

    return Inputs(state, ref, 0, np.zeros(len(ctx.default_joint_pos)), ctx)


def test_vr_targets_drive_the_teleop_policy_like_the_clip(deployed, tmp_path, capsys):
    _, _, store, onnx_dir = deployed
    meta = read_metadata(onnx_dir / "policy_teleop.onnx")
    clip_ref = load_references(store, meta, ["short1"])[0]
    np.savez(tmp_path / "vr.npz", **vr_targets_from_reference(clip_ref, meta))
    vr = vr_reference(tmp_path / "vr.npz", meta)
    legs = meta["command"]["lower_body_joint_ids"]
    for key in ("vr_pos_local", "vr_ori_local", "anchor_quat_w", "anchor_pos_w"):
        np.testing.assert_allclose(vr.data[key], clip_ref.data[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(vr.data["joint_pos"][:, legs], clip_ref.data["joint_pos"][:, legs], atol=1e-6)
    np.testing.assert_allclose(vr.data["joint_vel"][:, legs], clip_ref.data["joint_vel"][:, legs], atol=1e-4)
    # same robot state: the teleop tokenizer input is the same from the VR file as from the clip
    sim = sim2sim.Sim2Sim(sim2sim.OnnxPolicy(onnx_dir / "policy_teleop.onnx"))
    sim.reset(clip_ref)
    state = robot_state_from_mujoco(sim.model, sim.data, sim.body_ids)
    a = ObservationBuilder(meta["observations"], sim.ctx).reset(state, clip_ref, 5, np.zeros(29))
    b = ObservationBuilder(meta["observations"], sim.ctx).reset(state, vr, 5, np.zeros(29))
    np.testing.assert_allclose(a["tokenizer_teleop"], b["tokenizer_teleop"], atol=1e-5)

    out = tmp_path / "vr_run"
    assert (
        main(
            [
                "sim2sim",
                "--onnx",
                str(onnx_dir / "policy_teleop.onnx"),
                "--vr-targets",
                str(tmp_path / "vr.npz"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = pq.read_table(out / "clips.parquet").to_pylist()
    assert len(rows) == 1 and rows[0]["clip"] == "vr" and rows[0]["encoder"] == "teleop"
    assert (
        rows[0]["num_frames"] >= 1 and 0 < rows[0]["mpjpe_g_mm"] < 1e4
    )  # robot VR points vs the targets: finite, not exact
    assert json.loads((out / "metrics.json").read_text())["num_clips"] == 1
    assert (
        main(
            ["sim2sim", "--onnx", str(onnx_dir / "policy_g1.onnx"), "--vr-targets", str(tmp_path / "vr.npz")]
        )
        == 2
    )
    assert "drives the teleop encoder" in capsys.readouterr().err


def test_bad_inputs_are_named(deployed, tmp_path, capsys):
    _, _, store, onnx_dir = deployed
    with pytest.raises(MetadataError, match="encoder-only model; sim2sim needs a policy"):
        sim2sim.OnnxPolicy(onnx_dir / "encoder_g1.onnx")
    base = ["sim2sim", "--onnx", str(onnx_dir / "policy_g1.onnx"), "--out", str(tmp_path / "x")]
    assert main([*base, "--motions", str(tmp_path / "nope.parquet")]) == 2
    assert "nope.parquet: motion store not found" in capsys.readouterr().err
    assert main([*base, "--motions", str(store), "--clips", "walk"]) == 2
    assert "clip 'walk' is not in the store" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", head_pos=np.zeros((4, 3)))
    assert (
        main(
            [
                "sim2sim",
                "--onnx",
                str(onnx_dir / "policy_teleop.onnx"),
                "--vr-targets",
                str(tmp_path / "bad.npz"),
            ]
        )
        == 2
    )
    assert "missing arrays" in capsys.readouterr().err


def test_the_sim2sim_loop_imports_no_training_code(deployed, tmp_path):
    """Run sim2sim in a fresh interpreter and list what it imported: no env, model, PPO, learner,
    training or Ray module."""
    _, _, store, onnx_dir = deployed
    code = (
        "import sys, json\n"
        "from sonic_ray.deploy import sim2sim\n"
        "from sonic_ray.deploy.onnx_meta import read_metadata\n"
        "from sonic_ray.deploy.reference import load_references\n"
        f"f = {str(onnx_dir / 'policy_smpl.onnx')!r}\n"
        f"refs = load_references({str(store)!r}, read_metadata(f), ['short2'])\n"
        f"sim2sim.run(f, refs, out_dir={str(tmp_path / 'o')!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('sonic_ray', 'ray')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = json.loads(out.stdout.strip().splitlines()[-1])
    banned = (
        "sonic_ray.envs",
        "sonic_ray.models",
        "sonic_ray.ppo",
        "sonic_ray.learners",
        "sonic_ray.train",
        "sonic_ray.env_runners",
        "sonic_ray.algorithm",
        "ray",
    )
    assert not [m for m in mods if m.startswith(banned)], mods
    assert "sonic_ray.deploy.sim2sim" in mods and (tmp_path / "o" / "metrics.json").is_file()
