import numpy as np
import torch
from env_builders import reference_table, tiny_store

from sonic_ray.envs.cached_reference import CachedReference, RawShard
from sonic_ray.envs.command import MotionCommand
from sonic_ray.envs.sampler import UniformStartSampler
from sonic_ray.motion.store import migrate
from sonic_ray.robots import G1


def _cached(path, fk, cache_frames):
    return CachedReference(
        RawShard(path),
        fk,
        control_fps=50.0,
        anchor_body=G1.anchor_body,
        vr_points=G1.vr_points,
        smpl_points=G1.smpl_keypoints,
        cache_frames=cache_frames,
    )


def test_cached_rows_equal_the_full_table_bit_for_bit(tmp_path):
    one = tiny_store(tmp_path / "tiny.parquet", clips=7, seconds=(1.0, 1.6, 2.2, 0.5), fps=30.0)
    migrate(one, tmp_path / "sharded")
    full, fk, _ = reference_table(one)
    cached = _cached(tmp_path / "sharded", fk, cache_frames=120)  # smaller than the store: evicts
    assert cached.num_clips == full.num_clips and cached.num_frames == full.num_frames
    assert torch.equal(cached.clip_frames, full.clip_frames)
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        clips = torch.randint(full.num_clips, (3,), generator=g)
        cached.ensure(clips)
        frames = (torch.rand(3, generator=g) * full.clip_frames[clips]).long()
        want, got = full.clip_start[clips] + frames, cached.clip_start[clips] + frames
        for key, table in full.data.items():
            assert torch.equal(cached.data[key][got], table[want]), key
    assert cached.data["joint_pos"].shape[0] <= max(120, 2 * 3 * int(full.clip_frames.max()))  # bounded


def test_command_reads_the_same_reference_through_either_table(tmp_path):
    one = tiny_store(tmp_path / "tiny.parquet", clips=5)
    full, fk, _ = reference_table(one)
    cached = _cached(one, fk, cache_frames=200)
    refs = []
    for table in (full, cached):
        sampler = UniformStartSampler(table.clip_frames, bin_size_frames=20)
        cmd = MotionCommand(
            table,
            sampler,
            num_envs=6,
            anchor_body=G1.anchor_body,
            joint_names=G1.joint_names,
            joint_lower=G1.joint_lower,
            joint_upper=G1.joint_upper,
            step_dt=0.02,
        )
        g = torch.Generator().manual_seed(3)
        out = []
        for _ in range(4):
            state = cmd.resample(torch.arange(6), g)
            cmd.update_reference()
            cmd.advance()
            out.append(
                (state["joint_pos"], cmd.ref_body_pos_w, cmd.future("body_pos_w"), cmd.ref_root_height_ema)
            )
        refs.append(out)
    for a, b in zip(*refs, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    assert np.isclose(cached.nbytes() / cached.data["joint_pos"].shape[0], full.nbytes() / full.num_frames)
