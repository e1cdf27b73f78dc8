import pytest
import torch
from env_builders import reference_table, tiny_store

from sonic_ray.envs.command import MotionCommand
from sonic_ray.envs.sampler import UniformStartSampler
from sonic_ray.models.keys import ENCODER_NAMES
from sonic_ray.robots import G1
from sonic_ray.utils.rotations import quat_apply, quat_conj, quat_from_axis_angle, quat_mul


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tiny_store(tmp_path_factory.mktemp("motions") / "tiny.parquet")
    return reference_table(path)


def make_command(table, n=8, **kw):
    tab, _, _ = table
    sampler = UniformStartSampler(tab.clip_frames, bin_size_frames=20)
    args = dict(
        num_envs=n,
        anchor_body=G1.anchor_body,
        joint_names=G1.joint_names,
        joint_lower=G1.joint_lower,
        joint_upper=G1.joint_upper,
        step_dt=0.02,
    )
    args.update(kw)
    return MotionCommand(tab, sampler, **args)


def test_table_matches_fk_and_velocities_match_poses(table):
    tab, fk, lib = table
    clip, t = torch.tensor([1]), torch.tensor([0.5])
    bs = lib.state(clip, t)
    pos, quat = fk(bs["root_pos_w"], bs["root_quat_w"], bs["joint_pos"])
    g = int(tab.clip_start[1]) + 25
    torch.testing.assert_close(tab.data["body_pos_w"][g], pos[0], atol=1e-5, rtol=0)
    # central difference: position moves by about velocity * dt between neighbours
    d = tab.data
    dp = (d["body_pos_w"][g + 1] - d["body_pos_w"][g - 1]) * 25.0
    torch.testing.assert_close(d["body_lin_vel_w"][g], dp, atol=1e-4, rtol=0)
    # angular velocity integrates the orientation forward
    w = d["body_ang_vel_w"][g]
    angle = w.norm(dim=-1) * 0.04
    axis = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    pred = quat_mul(quat_from_axis_angle(axis, angle), d["body_quat_w"][g - 1])
    target = d["body_quat_w"][g + 1]
    pred = torch.where((pred * target).sum(-1, keepdim=True) < 0, -pred, pred)
    torch.testing.assert_close(pred, target, atol=1e-5, rtol=0)
    # root velocity of the table equals the motion lib's
    torch.testing.assert_close(d["body_lin_vel_w"][g, 0], bs["root_lin_vel_w"][0], atol=1e-3, rtol=0)


def test_velocities_never_cross_clips(table):
    tab, _, _ = table
    end0 = int(tab.clip_frames[0]) - 1  # last frame of clip 0, next frame is clip 1's first
    v = tab.data["body_lin_vel_w"][end0]
    one_sided = (tab.data["body_pos_w"][end0] - tab.data["body_pos_w"][end0 - 1]) * 50.0
    torch.testing.assert_close(v, one_sided, atol=1e-4, rtol=0)


def test_resample_reanchor_and_future(table):
    cmd = make_command(
        table,
        reset_pose_noise={
            "root_pos_xy": [-0.05, 0.05],
            "root_pos_z": [-0.05, 0.05],
            "joint_pos": [-0.1, 0.1],
        },
    )
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(8)
    state = cmd.resample(ids, g)
    assert (cmd.frame < cmd.last_frame).all()
    tab = table[0]
    ref = tab.data["root_pos_w"][cmd.global_frame]
    assert ((state["root_pos_w"] - ref).abs() <= 0.05 + 1e-6).all() and not torch.equal(
        state["root_pos_w"], ref
    )
    assert (state["joint_pos"] >= torch.tensor(G1.joint_lower, dtype=torch.float32)).all()
    cmd.update_reference()
    # a robot standing exactly on the reference, then moved and turned in the plane
    robot_pos, robot_quat = cmd.ref_body_pos_w.clone(), cmd.ref_body_quat_w.clone()
    q = quat_from_axis_angle(torch.tensor([0.0, 0, 1]).expand(8, 3), torch.full((8,), 0.8))[:, None]
    q = q.expand_as(robot_quat)
    robot = type("R", (), {})()
    robot.body_pos_w = quat_apply(q, robot_pos) + torch.tensor([2.0, -1.0, 0.0])
    robot.body_quat_w = quat_mul(q, robot_quat)
    cmd.set_robot(robot)
    # re-anchored reference lands on the robot: same pose, robot's xy and heading
    torch.testing.assert_close(cmd.ref_body_pos_rel_w, robot.body_pos_w, atol=1e-5, rtol=0)
    rel = cmd.ref_body_quat_rel_w
    rel = torch.where((rel * robot.body_quat_w).sum(-1, keepdim=True) < 0, -rel, rel)
    torch.testing.assert_close(rel, robot.body_quat_w, atol=1e-5, rtol=0)
    fut = cmd.future("joint_pos", "g1")
    assert fut.shape == (8, 10, G1.num_joints)
    torch.testing.assert_close(fut[:, 0], cmd.ref_joint_pos)
    assert cmd.future("smpl_joints_w", "smpl").shape == (8, 10, 24, 3)


def test_reset_noise_ranges_per_axis_and_root_velocity(table):
    # gear_sonic's ranges: xy +-5 cm, z +-1 cm; root velocity noise lin (0.5, 0.5, 0.2) m/s and
    # ang (0.52, 0.52, 0.78) rad/s, world frame; yaw +-0.2 rad.
    noise = {
        "root_pos_xy": [-0.05, 0.05],
        "root_pos_z": [-0.01, 0.01],
        "root_yaw": [-0.2, 0.2],
        "root_lin_vel_xy": [-0.5, 0.5],
        "root_lin_vel_z": [-0.2, 0.2],
        "root_ang_vel_roll_pitch": [-0.52, 0.52],
        "root_ang_vel_yaw": [-0.78, 0.78],
    }
    n = 2000
    cmd = make_command(table, n=n, reset_pose_noise=noise)
    state = cmd.resample(torch.arange(n), torch.Generator().manual_seed(4))
    d = table[0].data
    g = cmd.global_frame
    for key, ref, hi in [
        ("root_pos_w", d["root_pos_w"][g], (0.05, 0.05, 0.01)),
        ("root_lin_vel_w", d["root_lin_vel_w"][g], (0.5, 0.5, 0.2)),
        ("root_ang_vel_w", d["root_ang_vel_w"][g], (0.52, 0.52, 0.78)),
    ]:
        dev = (state[key] - ref).abs().amax(0)  # per axis: inside the range, and close to its edge
        assert (dev <= torch.tensor(hi) + 1e-5).all() and (dev > 0.95 * torch.tensor(hi)).all(), key
    # roll and pitch untouched: only a yaw of at most 0.2 rad separates the quaternions
    dq = quat_mul(state["root_quat_w"], quat_conj(d["root_quat_w"][g]))
    assert dq[:, 1:3].abs().max() < 1e-5
    ang = 2 * torch.atan2(dq[:, 3].abs(), dq[:, 0].abs())
    assert ang.max() <= 0.2 + 1e-5 and ang.max() > 0.19


def test_running_reference_height_is_gear_sonics_ema(table):
    cmd = make_command(table, n=2)
    cmd.resample(torch.arange(2), torch.Generator().manual_seed(5))
    z = table[0].data["body_pos_w"][:, cmd.anchor_index, 2]
    g0 = cmd.global_frame.clone()
    torch.testing.assert_close(cmd.ref_root_height_ema, z[g0])  # restarted at the start frame
    cmd.frame = torch.minimum(cmd.frame, cmd.last_frame - 2)
    g0 = cmd.global_frame.clone()
    cmd.ref_root_height_ema = torch.tensor([0.5, 1.0])
    cmd.advance()
    # h <- 0.1 z(next frame) + 0.9 h: e.g. env 0: 0.1 z + 0.45
    torch.testing.assert_close(cmd.ref_root_height_ema, 0.1 * z[g0 + 1] + 0.9 * torch.tensor([0.5, 1.0]))


def test_future_frames_hold_at_clip_end(table):
    cmd = make_command(table, n=2)
    g = torch.Generator().manual_seed(1)
    cmd.resample(torch.arange(2), g)
    cmd.frame = cmd.last_frame - 3
    cmd.update_reference()
    fut = cmd.future("joint_pos", "g1")  # offsets 0, 5, 10, ...: all but the first held at the end
    last = table[0].data["joint_pos"][table[0].clip_start[cmd.clip] + cmd.last_frame]
    torch.testing.assert_close(fut[:, 1], last)
    torch.testing.assert_close(fut[:, -1], last)


def test_encoder_draw_follows_probs(table):
    cmd = make_command(table, n=3000, encoder_sample_probs={"g1": 1.0, "teleop": 0.0, "smpl": 3.0})
    cmd.resample(torch.arange(3000), torch.Generator().manual_seed(2))
    counts = torch.bincount(cmd.encoder_index, minlength=3).float() / 3000
    assert counts[ENCODER_NAMES.index("teleop")] == 0
    assert abs(counts[ENCODER_NAMES.index("smpl")] - 0.75) < 0.04


def test_bad_rate_and_probs_are_errors(table):
    with pytest.raises(ValueError, match="control_fps"):
        make_command(table, step_dt=0.01)
    with pytest.raises(ValueError, match="encoder_sample_probs"):
        make_command(table, encoder_sample_probs={"vr": 1.0})
    with pytest.raises(ValueError, match="reset_pose_noise"):
        make_command(table, reset_pose_noise={"root_pos": [0, 1]})  # the per-axis keys replaced it


def test_precomputed_local_features_match_their_definition(table):
    tab = table[0]
    d = tab.data
    g = torch.arange(0, tab.num_frames, 7)
    a = tab.body_names.index(G1.anchor_body)
    from sonic_ray.utils.rotations import quat_apply_inverse

    q = d["body_quat_w"][g, a][:, None].expand(-1, 3, 4)
    vr = quat_apply_inverse(q, d["vr_pos_w"][g] - d["body_pos_w"][g, a][:, None])
    torch.testing.assert_close(d["vr_pos_local"][g], vr)
    pelvis = d["smpl_joints_w"][g, :1]
    rq = d["root_quat_w"][g][:, None].expand(-1, 24, 4)
    torch.testing.assert_close(
        d["smpl_joints_local"][g], quat_apply_inverse(rq, d["smpl_joints_w"][g] - pelvis)
    )
    # the head point rides 35 cm above the torso origin: in the torso's frame it is straight up
    t = tab.body_names.index("torso_link")
    head_t = quat_apply_inverse(d["body_quat_w"][g, t], d["vr_pos_w"][g, 0] - d["body_pos_w"][g, t])
    torch.testing.assert_close(head_t, torch.tensor([0.0, 0.0, 0.35]).expand(len(g), 3), atol=1e-5, rtol=0)
