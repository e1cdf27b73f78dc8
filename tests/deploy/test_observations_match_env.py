"""The deployment observations, rebuilt from raw MuJoCo state, equal the training env's.

The env (sonic_ray.envs: TrackingEnv on MujocoCpuSim) runs real physics with random actions, resets
and clip ends; after every step each env's raw `MjData` (qpos, qvel, xpos, xquat), its clip/frame
and its last action are handed to the deployment builder (sonic_ray.deploy.observations, which
never imports the env) with the deployment reference (sonic_ray.deploy.reference). Every group,
history included, must match within 1e-5.
"""

import numpy as np
import pytest
import torch
from deploy_builders import config, deployment_metadata, short_store

from sonic_ray.deploy.observations import (
    DeployContext,
    ObservationBuilder,
    mujoco_body_ids,
    robot_state_from_mujoco,
)
from sonic_ray.deploy.reference import motion_references
from sonic_ray.envs.factory import make_env
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.robots import TorchFK, load_model

pytestmark = pytest.mark.slow
TOL = 1e-5


@pytest.fixture(scope="module", params=[False, True], ids=["robot_smpl_points", "store_smpl_joints"])
def setup(request, tmp_path_factory):
    torch.set_num_threads(1)
    store = short_store(tmp_path_factory.mktemp("m") / "short.parquet", smpl=request.param)
    cfg = config(store)
    meta = deployment_metadata(cfg)
    model, robot = load_model(cfg.robot.name)
    lib = MotionLib(store, control_fps=cfg.motions.control_fps)
    refs = motion_references(lib, TorchFK(model, robot), meta)
    env = make_env(cfg, num_envs=3, seed=3, eval_mode=True)
    env.corruption = False
    yield cfg, meta, refs, env
    env.close()


def test_reference_equals_the_env_reference_table(setup):
    _, _, refs, env = setup
    table = env.cmd.table
    pairs = {
        "joint_pos": "joint_pos",
        "joint_vel": "joint_vel",
        "root_quat_w": "root_quat_w",
        "anchor_quat_w": "anchor_quat_w",
        "body_pos_w": "body_pos_w",
        "body_quat_w": "body_quat_w",
        "smpl_joints_local": "smpl_joints_local",
        "vr_pos_local": "vr_pos_local",
        "vr_ori_local": "vr_ori_local",
        "body_lin_vel_w": "body_lin_vel_w",
    }
    assert len(refs) == table.num_clips
    for c, ref in enumerate(refs):
        s, n = int(table.clip_start[c]), int(table.clip_frames[c])
        assert ref.num_frames == n
        for ours, theirs in pairs.items():
            np.testing.assert_allclose(
                ref.data[ours], table.data[theirs][s : s + n].numpy(), atol=1e-5, err_msg=f"clip {c} {ours}"
            )


def test_layout_metadata_equals_the_env_term_widths(setup):
    _, meta, _, env = setup
    for key, group in env.obs_manager.groups.items():
        layout = meta["all_layouts"][key]
        assert [(t["name"], t["dim"]) for t in layout["terms"]] == list(group.term_dims.items())
        assert layout["history_length"] == group.history_length and layout["dim"] == group.dim
    assert meta["command"]["lower_body_joint_ids"] == env.cmd.lower_body_joint_ids.tolist()
    for h, offsets in env.cmd.horizons.items():
        assert meta["command"]["future_frame_offsets"][h] == offsets.tolist()


def test_observations_rebuilt_from_mujoco_state_equal_the_env(setup):
    _, meta, refs, env = setup
    ctx = DeployContext.from_metadata(meta)
    builders = [ObservationBuilder(meta["all_layouts"], ctx) for _ in range(env.num_envs)]
    body_ids = mujoco_body_ids(env.sim.env_model(0), meta["body_names"])
    g = torch.Generator().manual_seed(0)
    obs = env.reset()
    resets = steps = 0
    worst = {k: 0.0 for k in meta["all_layouts"]}
    done = set(range(env.num_envs))
    for _ in range(45):
        for i, b in enumerate(builders):
            state = robot_state_from_mujoco(env.sim.env_model(i), env.sim.datas[i], body_ids)
            ref, frame = refs[int(env.cmd.clip[i])], int(env.cmd.frame[i])
            action = env.action[i].numpy()
            ours = b.reset(state, ref, frame, action) if i in done else b.step(state, ref, frame, action)
            for k, v in ours.items():
                diff = float(np.abs(v - obs[k][i].numpy()).max())
                worst[k] = max(worst[k], diff)
                assert diff <= TOL, f"group {k}, env {i}, step {steps}: max diff {diff:.3g}"
        actions = 0.5 * torch.randn(env.num_envs, env.action_dim, generator=g)
        obs, _, terminated, truncated, info = env.step(actions)
        done = set(info["done_ids"].tolist())
        resets += len(done)
        steps += 1
    assert resets >= 2, "the test should cross episode resets"
    print("max |deploy - env| per group:", {k: f"{v:.2e}" for k, v in worst.items()})
