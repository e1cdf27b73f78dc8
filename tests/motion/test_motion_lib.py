import math

import numpy as np
import pytest
import torch
from motion_builders import G1_JOINTS, make_clip

from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.motion.store import MotionClip, write_store


def _clip(name, root_pos, yaw, joint_pos, fps, smpl=None):
    yaw = np.asarray(yaw, dtype=np.float64)
    quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    return MotionClip(
        name=name,
        source="test",
        fps=fps,
        root_pos=np.asarray(root_pos, np.float32),
        root_quat=quat.astype(np.float32),
        joint_pos=np.asarray(joint_pos, np.float32),
        smpl_joints=smpl,
    )


def _lib(tmp_path, clips, **kw):
    write_store(tmp_path / "m.parquet", clips, joint_names=G1_JOINTS)
    return MotionLib(tmp_path / "m.parquet", **kw)


def test_midpoint_of_two_frames_and_slerp(tmp_path):
    # two frames 0.02 s apart (already at 50 Hz): root (0,0,0)->(1,2,3), yaw 0->90 deg, joints 0->1
    clip = _clip("two", [[0, 0, 0], [1, 2, 3]], [0.0, math.pi / 2], [np.zeros(29), np.ones(29)], fps=50.0)
    lib = _lib(tmp_path, [clip])
    s = lib.state(torch.tensor([0, 0]), torch.tensor([0.01, 0.005]))
    torch.testing.assert_close(s["root_pos_w"][0], torch.tensor([0.5, 1.0, 1.5]))
    torch.testing.assert_close(s["root_pos_w"][1], torch.tensor([0.25, 0.5, 0.75]))
    torch.testing.assert_close(s["joint_pos"][0], torch.full((29,), 0.5))
    # slerp: half of a 90 deg yaw is 45 deg, a quarter is 22.5 deg (not the normalised lerp)
    c, q = math.cos, math.pi
    torch.testing.assert_close(s["root_quat_w"][0], torch.tensor([c(q / 8), 0, 0, math.sin(q / 8)]))
    torch.testing.assert_close(s["root_quat_w"][1], torch.tensor([c(q / 16), 0, 0, math.sin(q / 16)]))
    assert lib.num_clips == 1 and lib.names == ["two"]
    torch.testing.assert_close(lib.clip_length_s, torch.tensor([0.02]))


def test_constant_velocity_clip_has_exact_velocities_after_resampling(tmp_path):
    fps, frames = 30.0, 61  # 2 s at 30 fps -> 101 frames at 50 Hz
    t = np.arange(frames) / fps
    v = np.array([0.7, -0.2, 0.05])
    yaw_rate = 2.5  # rad/s: the root turns ~286 deg over the clip
    joint_rate = np.linspace(-1, 1, 29)
    clip = _clip("const", t[:, None] * v, yaw_rate * t, t[:, None] * joint_rate, fps=fps)
    lib = _lib(tmp_path, [clip])
    assert lib.clip_frames.tolist() == [101]
    times = torch.tensor([0.0, 0.013, 0.5, 1.2345, 1.99, 2.0])
    s = lib.state(torch.zeros(6, dtype=torch.long), times)
    tt = times.double()[:, None]
    torch.testing.assert_close(s["root_pos_w"], (tt * torch.tensor(v)).float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(s["joint_pos"], (tt * torch.tensor(joint_rate)).float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        s["root_lin_vel_w"], torch.tensor(v, dtype=torch.float32).expand(6, 3), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        s["joint_vel"], torch.tensor(joint_rate, dtype=torch.float32).expand(6, 29), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        s["root_ang_vel_w"], torch.tensor([0.0, 0.0, yaw_rate]).expand(6, 3), atol=1e-4, rtol=0
    )
    yaw = 2 * torch.atan2(s["root_quat_w"][:, 3], s["root_quat_w"][:, 0])
    want = (yaw_rate * times + math.pi) % (2 * math.pi) - math.pi
    torch.testing.assert_close(
        torch.remainder(yaw - want + math.pi, 2 * math.pi) - math.pi, torch.zeros(6), atol=1e-5, rtol=0
    )


def test_times_are_clamped_and_clips_do_not_bleed(tmp_path):
    a = _clip("a", np.zeros((11, 3)), np.zeros(11), np.zeros((11, 29)), fps=50.0)
    b = _clip("b", np.full((11, 3), 5.0), np.zeros(11), np.ones((11, 29)), fps=50.0)
    lib = _lib(tmp_path, [a, b])
    s = lib.state(torch.tensor([0, 0, 1]), torch.tensor([-1.0, 99.0, 0.2]))
    torch.testing.assert_close(s["root_pos_w"], torch.tensor([[0.0] * 3, [0.0] * 3, [5.0] * 3]))
    assert s["root_lin_vel_w"].abs().max() == 0 and s["joint_vel"].abs().max() == 0


def test_shard_loads_only_its_clips(tmp_path):
    clips = [make_clip(f"c{i}", frames=20 + i, seed=i) for i in range(5)]
    write_store(tmp_path / "m.parquet", clips, joint_names=G1_JOINTS)
    lib = MotionLib(tmp_path / "m.parquet", shard=(1, 2))
    assert lib.names == ["c1", "c3"] and lib.store_index.tolist() == [1, 3]
    assert lib.joint_names == G1_JOINTS
    s = lib.state(torch.tensor([1]), torch.tensor([0.0]))
    torch.testing.assert_close(s["joint_pos"][0], torch.as_tensor(clips[3].joint_pos[0]))
    assert lib.num_frames == int(lib.clip_frames.sum())


def test_smpl_joints_and_body_state_via_fk(tmp_path):
    smpl = np.stack([np.zeros((24, 3)), np.ones((24, 3))]).astype(np.float32)
    clip = _clip("s", [[0, 0, 0], [1, 0, 0]], [0.0, 0.0], np.zeros((2, 29)), fps=50.0, smpl=smpl)

    class RootOnlyFK:
        def forward(self, root_pos, root_quat, joint_pos):
            return root_pos[:, None], root_quat[:, None]

    lib = _lib(tmp_path, [clip], fk=RootOnlyFK())
    assert lib.has_smpl
    s = lib.body_state(torch.tensor([0]), torch.tensor([0.01]))
    torch.testing.assert_close(s["smpl_joints"][0], torch.full((24, 3), 0.5))
    assert s["body_pos_w"].shape == (1, 1, 3)
    torch.testing.assert_close(s["body_pos_w"][0, 0], s["root_pos_w"][0])
    plain = MotionLib(tmp_path / "m.parquet")
    with pytest.raises(RuntimeError, match="needs an FK object"):
        plain.body_state(torch.tensor([0]), torch.tensor([0.0]))
