"""MotionLib's arithmetic run by TorchScript (`lib_core.run`) gives the Python functions' values bit
for bit, and both are the frames module's arithmetic (interpolate, velocities, state query)."""

import numpy as np
import torch
from motion_builders import G1_JOINTS, make_clip

from sonic_ray.motion import lib_core
from sonic_ray.motion.frames import angular_velocity_between, smpl_joints_local, velocity_between
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.motion.store import write_store
from sonic_ray.utils.rotations import quat_apply_inverse


def _bits(x):
    return x.view(torch.int32) if x.dtype == torch.float32 else x


def _equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(_bits(a[k]), _bits(b[k])), k


def _libs_and_states(path, raw):
    """A whole-store MotionLib, one over parts of its clips, and states of both at random times
    (inside, between frames, past the ends)."""
    g = torch.Generator().manual_seed(1)
    whole = MotionLib(path, control_fps=50.0)
    length = whole.clip_frames.numpy()
    clips = np.array([0, 1, 2, 1])
    first = np.array([0, 5, 3, length[1] - 4])
    count = np.minimum(9, length[clips] - first)
    part = MotionLib.from_segments(raw, clips, first, count, control_fps=50.0)
    out = [whole._frames, part._frames]
    ids = torch.randint(0, whole.num_clips, (300,), generator=g)
    out.append(whole.state(ids, torch.rand(300, generator=g) * 3.0 - 0.1))
    ids = torch.randint(0, len(clips), (300,), generator=g)  # a part: inside its frames
    f = torch.as_tensor(first)[ids] + torch.rand(300, generator=g) * torch.as_tensor(count - 1)[ids]
    out.append(part.state(ids, f.to(torch.float32) / 50.0))
    return out


def test_scripted_motion_lib_equals_the_python_one(tmp_path, monkeypatch):
    from sonic_ray.envs.cached_reference import RawShard

    clips = [
        make_clip(f"c{i}", frames=n, fps=fps, seed=i, smpl=True)
        for i, (n, fps) in enumerate(((40, 30.0), (75, 60.0), (23, 50.0)))
    ]
    path = tmp_path / "m.parquet"
    write_store(path, clips, joint_names=G1_JOINTS)
    raw = RawShard(path)
    scripted = _libs_and_states(path, raw)
    assert isinstance(lib_core._SCRIPTED[lib_core.resample_core], torch.jit.ScriptFunction)
    assert isinstance(lib_core._SCRIPTED[lib_core.state_core], torch.jit.ScriptFunction)
    monkeypatch.setattr(lib_core, "USE_SCRIPT", False)
    eager = _libs_and_states(path, raw)
    for a, b in zip(scripted, eager, strict=True):
        _equal(a, b)


def test_velocity_cores_equal_the_frames_functions_small_and_large():
    """The scripted finite differences equal frames.velocity_between / angular_velocity_between,
    also above quat_mul_terms' row-major limit (4,096 quaternions: quat_mul's own products)."""
    g = torch.Generator().manual_seed(3)
    conj, idx, sign = lib_core.consts(torch.float32, torch.device("cpu"))
    ang = torch.jit.script(lib_core.angular_velocity_core)
    lin = torch.jit.script(lib_core.velocity_core)
    for shape in ((7, 4), (300, 4), (5000, 4), (256, 30, 4)):
        a, b = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        a[0, ..., 1], b[1, ..., 0] = -0.0, -0.0
        span = np.where(np.arange(shape[0]) % 5 == 0, 1, 2)
        rate = torch.as_tensor(np.where(span > 0, 50.0 / span, 0.0), dtype=torch.float32)
        want = angular_velocity_between(a, b, span, 50.0)
        for f in (ang, lib_core.angular_velocity_core):
            with torch.jit.optimized_execution(False):
                got = f(a, b, rate, conj, idx, sign)
            assert torch.equal(_bits(got), _bits(want)), shape
        want = velocity_between(a, b, span, 50.0)
        with torch.jit.optimized_execution(False):
            assert torch.equal(_bits(lin(a, b, rate)), _bits(want))


def test_smpl_joints_local_equals_the_row_major_rotation():
    """smpl_joints_local (component-major elementwise cross products) gives quat_apply_inverse's
    values of the row-major arrays bit for bit, signed zeros included, whatever the input layout."""
    g = torch.Generator().manual_seed(4)
    for r in (1, 11, 358, 3000):
        for layout in ("rows", "components"):
            if layout == "rows":
                sj = torch.randn(r, 24, 3, generator=g) * 3
            else:  # what FK's points are: a (3, 24, R) buffer permuted
                sj = torch.randn(3, 24, r, generator=g).permute(2, 1, 0)
            rq = torch.randn(r, 4, generator=g)
            sj[0, 2, 1], sj[0, 0, 2], rq[0, 2] = -0.0, 0.0, -0.0
            if r > 1:
                rq[1] = torch.tensor([1.0, 0.0, -0.0, 0.0])
            rel = sj - sj[:, :1]
            want = quat_apply_inverse(rq[:, None].expand(*rel.shape[:-1], 4), rel)
            got = smpl_joints_local(sj, rq)
            assert got.is_contiguous() and torch.equal(_bits(got), _bits(want)), (r, layout)


def test_segment_state_equals_frame_state_of_a_motion_lib_over_the_parts(tmp_path):
    """`segment_state` (resampling and the state query in one call) gives frame_state of
    MotionLib.from_segments bit for bit, scripted and as Python."""
    from sonic_ray.envs.cached_reference import RawShard
    from sonic_ray.envs.reference import frame_state
    from sonic_ray.motion.motion_lib import segment_state

    clips = [make_clip(f"c{i}", frames=n, fps=30.0, seed=i) for i, n in enumerate((40, 75, 23))]
    path = tmp_path / "m.parquet"
    write_store(path, clips, joint_names=G1_JOINTS)
    raw = RawShard(path)
    length = MotionLib(path, control_fps=50.0).clip_frames.numpy()
    c = np.array([1, 0, 2, 1])
    first = np.array([0, 10, 4, length[1] - 3])
    count = np.minimum(20, length[c] - first)
    part = np.concatenate([np.full(n, i) for i, n in enumerate(count)] + [np.array([1, 3])])
    local = np.concatenate(
        [f + np.arange(n) for f, n in zip(first, count, strict=True)] + [first[[1, 3]] - 1]
    )
    for script in (True, False):
        lib_core.USE_SCRIPT = script
        try:
            want = frame_state(MotionLib.from_segments(raw, c, first, count, control_fps=50.0), part, local)
            got = segment_state(raw, c, first, count, part, local, control_fps=50.0)
        finally:
            lib_core.USE_SCRIPT = True
        _equal(got, want)
