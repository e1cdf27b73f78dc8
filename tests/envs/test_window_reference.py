"""The per-env window reference: rows equal the full table's, memory N x W rows, and a TrackingEnv
steps in window mode exactly as in table mode."""

import pytest
import torch
from env_builders import reference_table, tiny_store

from sonic_ray.config import ConfigError, load_config
from sonic_ray.envs.cached_reference import RawShard
from sonic_ray.envs.command import MotionCommand
from sonic_ray.envs.factory import make_env
from sonic_ray.envs.sampler import UniformStartSampler
from sonic_ray.envs.window_reference import WindowReference
from sonic_ray.motion.store import migrate
from sonic_ray.robots import G1

# clip lengths at 50 Hz: 0.5 s (26 frames: shorter than a window), 1.0 s, 2.2 s (111: several windows)
SECONDS = (1.0, 2.2, 0.5, 1.6)


def _window(path, fk, window_frames, full_frames=None):
    return WindowReference(
        RawShard(path),
        fk,
        control_fps=50.0,
        anchor_body=G1.anchor_body,
        vr_points=G1.vr_points,
        smpl_points=G1.smpl_keypoints,
        window_frames=window_frames,
        full_frames=window_frames if full_frames is None else full_frames,
    )


def _command(table, n, **kw):
    return MotionCommand(
        table,
        UniformStartSampler(table.clip_frames, bin_size_frames=20),
        num_envs=n,
        anchor_body=G1.anchor_body,
        joint_names=G1.joint_names,
        joint_lower=G1.joint_lower,
        joint_upper=G1.joint_upper,
        step_dt=0.02,
        **kw,
    )


def _assert_rows_equal(full, win, clip, frame, base, keys=None):
    want, got = full.clip_start[clip] + frame, base + frame
    for key in keys or full.data:
        assert torch.equal(win.data[key][got], full.data[key][want]), key


def test_window_rows_equal_the_table_at_every_frame_of_every_clip(tmp_path):
    """Envs walk every clip from each start to its end (refills mid-clip, moving the held rows,
    windows cut at clip ends, one-sided velocities at both ends, central ones at every window
    edge): every key up to full_reach frames ahead, the light keys up to reach."""
    store = tiny_store(tmp_path / "tiny.parquet", clips=4, seconds=SECONDS, fps=30.0)
    full, fk, _ = reference_table(store)
    win = _window(store, fk, window_frames=12, full_frames=5)
    n, reach, full_reach = 8, 7, 2
    clip = torch.arange(n) % full.num_clips
    frame = torch.tensor([0, 0, 0, 0, 3, 40, 7, 50]).minimum(full.clip_frames[clip] - 1)
    last = full.clip_frames[clip] - 1
    for _ in range(int(full.clip_frames.max()) + 2):
        base = win.row_base(clip, frame, reach, full_reach)
        for off in range(reach + 1):
            keys = [k for k in full.data if off == 0 or k not in win.frame_keys]
            keys = keys if off <= full_reach else sorted(win.light_keys)
            _assert_rows_equal(full, win, clip, torch.minimum(frame + off, last), base, keys)
        frame = torch.minimum(frame + 1, last)
    assert win.data["joint_pos"].shape[0] == n * 12
    assert win.rows_computed < 0.5 * n * int(full.clip_frames.max()) * 5  # not a fill per step
    assert win.light_rows_computed > 0
    assert win.moved_windows > 0  # windows refilled mid-clip kept their old rows (`_move`)


def _bits(x):
    return x.view(torch.int32) if x.dtype == torch.float32 else x


@pytest.mark.parametrize("smpl", [False, True])
def test_lazy_window_rows_equal_the_table_over_many_steps_with_resets(tmp_path, smpl):
    """The env's order of calls (advance: ahead 0, then the resets: ahead 1) over 150 steps with
    ~20% resets and clips that end: the light keys read up to reach, the pose keys (appended
    lazily, full_frames at a time) up to full_reach, the frame keys (velocities from the window's
    neighbouring rows, the edge row at a window's first frame) at the frame and at frame + 1 after
    ahead; equal to the table's bit for bit (signed zeros too), every phase of the lazy fill hit.
    With stored SMPL joints, the SMPL keys are light (no FK)."""
    store = tiny_store(tmp_path / "tiny.parquet", clips=6, seconds=SECONDS, fps=30.0, smpl=smpl)
    full, fk, _ = reference_table(store)
    win = _window(store, fk, window_frames=20, full_frames=5)
    assert ("smpl_joints_local" in win.light_keys) == smpl
    n, reach, full_reach = 12, 9, 3
    g = torch.Generator().manual_seed(2)
    clip = torch.randint(0, full.num_clips, (n,), generator=g)
    last = full.clip_frames[clip] - 1
    frame = (torch.rand(n, generator=g) * last).long()
    win.row_base(clip, frame, reach, full_reach, 1)
    appended = 0
    for _ in range(150):
        frame = torch.minimum(frame + 1, last)
        win.row_base(clip, frame, reach, full_reach)
        reset = (torch.rand(n, generator=g) < 0.2) | (frame == last)
        clip = torch.where(reset, torch.randint(0, full.num_clips, (n,), generator=g), clip)
        last = full.clip_frames[clip] - 1
        frame = torch.where(reset, (torch.rand(n, generator=g) * last).long(), frame)
        held = win.win_start.clone(), win.pose_end.clone()
        base = win.row_base(clip, frame, reach, full_reach, 1)
        appended += int(((win.win_start == held[0]) & (win.pose_end > held[1])).sum())
        for off in range(reach + 1):
            f = torch.minimum(frame + off, last)
            if off <= 1:
                keys = list(full.data)
            else:
                keys = [k for k in full.data if k not in win.frame_keys]
            keys = keys if off <= full_reach else sorted(win.light_keys)
            for k in keys:
                got, want = win.data[k][base + f], full.data[k][full.clip_start[clip] + f]
                assert torch.equal(_bits(got), _bits(want)), (k, off)
    assert appended > 50  # pose keys appended to held windows, not only new windows
    assert win.frame_rows_computed < 2.5 * 150 * n  # frame keys: about one frame per env a step


def test_command_in_window_mode_reads_what_the_table_gives_across_resets(tmp_path):
    store = tiny_store(tmp_path / "tiny.parquet", clips=5, seconds=SECONDS)
    full, fk, _ = reference_table(store)
    win = _window(store, fk, window_frames=50, full_frames=12)  # > 45 and 9: the horizons' ends
    out = []
    for table in (full, win):
        cmd = _command(table, 6)
        g = torch.Generator().manual_seed(3)
        steps = []
        for i in range(60):
            if i % 7 == 0:  # reset some envs: new clips and start frames mid-window
                ids = torch.arange(i % 3, 6, 2)
                steps.append(cmd.resample(ids, g)["joint_vel"])
                cmd.update_reference(ids if i else None)
            steps += [cmd.ref_body_lin_vel_w, cmd.ref_body_ang_vel_w, cmd.ref_vr_ori_local]
            steps += [cmd.future("joint_vel"), cmd.future("smpl_joints_local", "smpl")]
            steps += [cmd.future("anchor_quat_w"), cmd.ref_root_height_ema]
            cmd.advance()
            cmd.update_reference()
        out.append(steps)
    for a, b in zip(*out, strict=True):
        assert torch.equal(a, b)


def test_window_memory_is_n_by_w_rows_whatever_the_shard(tmp_path):
    small = tiny_store(tmp_path / "small.parquet", clips=2, seconds=(0.5,))
    big = tiny_store(tmp_path / "big.parquet", clips=40, seconds=(2.2, 3.0))
    _, fk, _ = reference_table(small)
    sizes = []
    for store in (small, big):
        win = _window(store, fk, window_frames=48)
        cmd = _command(win, 4)
        g = torch.Generator().manual_seed(0)
        for _ in range(30):
            cmd.resample(torch.arange(4), g)
            cmd.advance()
        sizes.append(win.nbytes())
        assert win.data["joint_pos"].shape[0] == 4 * 48
    assert sizes[0] == sizes[1]


def test_a_window_shorter_than_the_horizon_is_refused(tmp_path):
    store = tiny_store(tmp_path / "tiny.parquet", clips=2)
    _, fk, _ = reference_table(store)
    with pytest.raises(ValueError, match="motions.window_frames"):
        _command(_window(store, fk, window_frames=20), 2).resample(torch.arange(2), torch.Generator())
    with pytest.raises(ValueError, match="motions.window_full_frames"):
        _command(_window(store, fk, 50, 9), 2).resample(torch.arange(2), torch.Generator())
    with pytest.raises(ConfigError, match="'motions.window_frames'"):
        load_config(["+exp=demo", "motions.window_frames=45"])
    with pytest.raises(ConfigError, match="'motions.window_full_frames'"):
        load_config(["+exp=demo", "motions.window_full_frames=9"])
    with pytest.raises(ConfigError, match="'motions.window_full_frames'"):
        load_config(["+exp=demo", "motions.window_full_frames=65"])


def test_window_mode_refuses_a_full_key_read_past_the_short_horizon(tmp_path):
    store = tiny_store(tmp_path / "tiny.parquet", clips=2)
    _, fk, _ = reference_table(store)
    cmd = _command(_window(store, fk, 50, 12), 2)
    cmd.resample(torch.arange(2), torch.Generator())
    cmd.update_reference()
    cmd.future("joint_pos", "g1")  # light: fine 45 frames ahead
    with pytest.raises(ValueError, match="body_pos_w"):
        cmd.future("body_pos_w", "g1")
    cmd.future("body_pos_w", "smpl")  # pose keys: held up to the short horizon
    with pytest.raises(ValueError, match="body_lin_vel_w"):  # frame keys: at the frame only
        cmd.future("body_lin_vel_w", "smpl")
    with pytest.raises(ConfigError, match="'motions.reference'"):
        load_config(["+exp=demo", "motions.reference=windowed"])


def test_env_in_window_mode_steps_like_the_table_env(tmp_path):
    """100 steps with terminations, clip ends and resets: same observations and rewards."""
    store = tiny_store(tmp_path / "tiny.parquet", clips=4, seconds=SECONDS)
    migrate(store, tmp_path / "sharded")
    runs = []
    for mode in ("table", "window"):
        cfg = load_config(
            [
                "+exp=demo",
                f"motions.store={tmp_path / 'sharded'}",
                "device=cpu",
                "sim.backend=mujoco",
                f"motions.reference={mode}",
                "motions.window_frames=48",
                "motions.window_full_frames=12",
                "env.observations.policy.enable_corruption=false",
            ]
        )
        env = make_env(cfg, num_envs=4, seed=1)
        g = torch.Generator().manual_seed(0)
        steps, done = [env.reset()], 0
        for _ in range(100):
            obs, reward, terminated, truncated, info = env.step(torch.randn(4, env.action_dim, generator=g))
            steps += [obs, {"reward": reward, "terminated": terminated, "truncated": truncated}]
            done += len(info["done_ids"])
        runs.append((steps, done))
    assert runs[0][1] == runs[1][1] and runs[0][1] >= 4  # resets happened, the same ones
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_a_motion_lib_over_parts_of_clips_gives_the_whole_clips_states(tmp_path):
    """MotionLib.from_segments: each part queried inside its frames gives the whole-clip MotionLib's
    state bit for bit (resampling and velocities per frame; one-sided ones at the clips' ends)."""
    import numpy as np

    from sonic_ray.motion.motion_lib import MotionLib

    store = tiny_store(tmp_path / "tiny.parquet", clips=3, seconds=SECONDS, fps=30.0)
    raw = RawShard(store)
    whole = MotionLib.from_clips(
        [raw.clip(i) for i in range(len(raw.names))], control_fps=50.0, store_index=raw.store_index
    )
    length = whole.clip_frames.numpy()
    clips = np.array([0, 1, 2, 1, 0])
    first = np.array([0, 5, 0, length[1] - 3, length[0] - 1])
    count = np.minimum(np.array([4, 7, length[2], 3, 1]), length[clips] - first)
    part = MotionLib.from_segments(raw, clips, first, count, control_fps=50.0)
    for i, (c, f, n) in enumerate(zip(clips, first, count, strict=True)):
        t = torch.arange(f, f + n, dtype=torch.float32) / 50.0
        want = whole.state(torch.full((n,), int(c)), t)
        got = part.state(torch.full((n,), i), t)
        assert want.keys() == got.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), (i, k)
