"""Offscreen MP4 rendering (MuJoCo Renderer on Mesa's software OpenGL) of robot vs reference."""

import numpy as np
import pytest

from sonic_ray.robots import G1, load_model


def _qpos(t, dx=0.0):
    q = np.zeros((t, 7 + G1.num_joints))
    q[:, 0] = dx + np.linspace(0.0, 0.5, t)  # walks 0.5 m along x
    q[:, 2] = 0.76
    q[:, 3] = 1.0
    q[:, 7:] = G1.default_joint_pos
    q[:, 7 + G1.joint_index("left_shoulder_pitch_joint")] = np.linspace(0.0, -1.5, t)
    return q


@pytest.mark.slow
def test_render_clip_writes_a_playable_non_blank_mp4(tmp_path):
    import imageio.v2 as imageio

    from sonic_ray.eval.video import render_clip

    model, _ = load_model("g1")
    robot, ref = _qpos(12), _qpos(12, dx=0.3)
    path = render_clip(model, robot, ref, tmp_path / "v" / "clip.mp4", fps=50.0, width=160, height=128)
    assert path == tmp_path / "v" / "clip.mp4" and not list(path.parent.glob(".*"))
    frames = [np.asarray(f) for f in imageio.get_reader(path)]
    assert len(frames) == 12 and frames[0].shape == (128, 160, 3)
    for f in frames:  # not one colour: floor, grid, robot
        assert f.reshape(-1, 3).std(axis=0).max() > 10
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the arm moved
    # The reference is drawn: the same clip with the reference moved away renders differently.
    other = render_clip(
        model, robot, _qpos(12, dx=-0.3), tmp_path / "other.mp4", fps=50.0, width=160, height=128
    )
    first_other = np.asarray(next(iter(imageio.get_reader(other))))
    assert np.abs(first_other.astype(int) - frames[0].astype(int)).mean() > 1


def test_render_clip_rejects_mismatched_qpos(tmp_path):
    from sonic_ray.eval.video import render_clip

    model, _ = load_model("g1")
    with pytest.raises(ValueError, match="nq=36"):
        render_clip(model, _qpos(3), _qpos(3)[:, :10], tmp_path / "x.mp4", fps=50.0)
    assert not list(tmp_path.iterdir())  # no half-written file left
