"""Motion replay without a browser: the drawn geoms sit where MuJoCo puts them, clips are posed by
the project's FK, the play head moves as play/pause/speed/loop/scrub say, limits are reported."""

import mujoco
import numpy as np
import pytest
from view_builders import LIMIT_JOINT, view_store

from sonic_ray.motion.store import StoreError
from sonic_ray.view.geometry import body_meshes, geom_mesh, posed_vertices
from sonic_ray.view.replay import ClipNotFound, MotionStore, Playback, Poser, joint_limit_violations, search


@pytest.fixture(scope="module")
def poser():
    return Poser("g1")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return MotionStore(view_store(tmp_path_factory.mktemp("replay") / "v.parquet"))


def test_every_geom_is_drawn_where_mujoco_puts_it(poser):
    """Each geom's vertices, posed with its body's xpos/xquat, are centred on MuJoCo's geom_xpos."""
    model, robot = poser.model, poser.robot
    data = mujoco.MjData(model)
    data.qpos[7:] = np.asarray(robot.default_joint_pos) + 0.2
    mujoco.mj_kinematics(model, data)
    meshes = body_meshes(model, robot.body_names)
    robot_geoms = np.flatnonzero(model.geom_bodyid > 0)
    assert sum(len(m.faces) > 0 for m in meshes) == len(set(model.geom_bodyid[robot_geoms]))
    for m in meshes:
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, m.body)
        world = posed_vertices(m, data.xpos[b], data.xquat[b])
        start = 0
        for g in np.flatnonzero(model.geom_bodyid == b):
            n = len(geom_mesh(int(model.geom_type[g]), model.geom_size[g])[0])
            centre = world[start : start + n].mean(axis=0)
            start += n
            np.testing.assert_allclose(centre, data.geom_xpos[g], atol=2e-3)


def test_clip_poses_are_the_models_kinematics(poser, store):
    """A posed frame equals mj_kinematics on the same qpos, body for body (robot table order)."""
    clip = store.read("sway0")
    poses = poser.pose(clip)
    data = mujoco.MjData(poser.model)
    f = 17
    data.qpos[:3], data.qpos[3:7], data.qpos[7:] = clip.root_pos[f], clip.root_quat[f], clip.joint_pos[f]
    mujoco.mj_kinematics(poser.model, data)
    np.testing.assert_allclose(poses.body_pos_w[f], data.xpos[1:], atol=1e-5)
    assert poses.num_frames == clip.num_frames and poses.fps == 50.0
    assert poses.vr_pos_w.shape == (clip.num_frames, 3, 3) and poses.smpl_joints is None
    assert poser.pose(store.read("sway1")).smpl_joints.shape == (31, 24, 3)


def test_joint_limit_violations_name_joint_and_excess(poser, store):
    poses = poser.pose(store.read("sway2"))
    assert poses.violations[4] == [] and poses.violations[10] == []
    for f in range(5, 10):
        ((name, excess),) = poses.violations[f]
        assert name == LIMIT_JOINT and excess == pytest.approx(0.1, abs=1e-5)
    # hand numbers: below the lower limit is negative, inside is nothing
    got = joint_limit_violations(
        np.array([[-1.5, 0.0, 2.5]]), np.array([-1.0] * 3), np.array([1.0] * 3), "abc"
    )
    assert got == [[("a", -0.5), ("c", 1.5)]]


def test_playback_play_pause_speed_loop_and_scrub():
    pb = Playback(num_frames=11, fps=10.0)  # 1.0 s, frames 0..10
    assert pb.advance(0.25) == 2
    pb.speed = 2.0
    assert pb.advance(0.25) == 7  # 0.25 + 0.5 s
    assert pb.advance(0.25) == 1  # 1.25 s wraps at 1.1 s (the last frame shows for 0.1 s): 0.15 s
    pb.playing = False
    assert pb.advance(5.0) == 1
    pb.seek(99)
    assert pb.frame == 10
    pb.seek(-3)
    assert pb.frame == 0
    pb.playing, pb.loop, pb.speed = True, False, 1.0
    assert pb.advance(3.0) == 10 and not pb.playing  # stops on the last frame


def test_store_errors_name_the_store_and_the_clip(tmp_path, store):
    with pytest.raises(ClipNotFound, match=r"v\.parquet: no clip named 'sway9'; did you mean"):
        store.index("sway9")
    with pytest.raises(FileNotFoundError, match="nothing.parquet: motion store not found"):
        MotionStore(tmp_path / "nothing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="bad.parquet: cannot open as a motion store"):
        MotionStore(bad)
    assert search(["walk_fast", "run", "walk_slow"], "WALK slow") == ["walk_slow"]
    assert search(["a", "b"], "") == ["a", "b"]
