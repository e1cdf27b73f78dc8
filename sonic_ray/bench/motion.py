"""`sonic-ray bench motion`: import rate, store load cost and MotionLib query cost.

Synthetic clips (random smooth motions, 2-6 s at 30 fps by default) are written as SONIC
joblib pickles and imported through the real path (content detection, restricted unpickler,
validation, streaming Parquet write). Then a MotionLib loads the store (time, resident-memory
growth against the raw size of the stored arrays) and answers batched (clip, time) queries.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time

import numpy as np
import torch

from sonic_ray.motion.importers.writers import write_sonic_pkl
from sonic_ray.motion.importing import import_motions
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.motion.store import MotionClip, store_info
from sonic_ray.robots.fk import TorchFK
from sonic_ray.robots.registry import load_model

NUM_JOINTS = 29


def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # Linux fallback: resident pages from /proc
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _synthetic_clip(i: int, rng: np.random.Generator, fps: float, min_s: float, max_s: float) -> MotionClip:
    frames = int(rng.uniform(min_s, max_s) * fps) + 1
    t = np.arange(frames)[:, None] / fps
    yaw = rng.uniform(-np.pi, np.pi) + rng.uniform(-1, 1) * t[:, 0]
    quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    root = np.concatenate([rng.normal(size=(1, 2)) + rng.normal(size=(1, 2)) * t, 0.78 + 0.02 * np.sin(3 * t)], 1)
    joints = 0.6 * np.sin(rng.uniform(0.5, 3, NUM_JOINTS) * t + rng.uniform(0, 6.3, NUM_JOINTS))
    return MotionClip(f"clip{i:06d}", "bench", fps, root.astype(np.float32), quat.astype(np.float32),
                      joints.astype(np.float32))


def _robot(robot: str | None):
    """G1 joint data from sonic_ray.robots when present, else 29 synthetic joints (same sizes)."""
    if robot is not None:
        try:
            from sonic_ray.motion.robot_context import robot_context

            names, lower, upper, _fk = robot_context(robot)
            return names, lower, upper, robot
        except (SystemExit, ImportError, AttributeError):
            pass
    return [f"joint_{j}" for j in range(NUM_JOINTS)], np.full(NUM_JOINTS, -np.pi), np.full(NUM_JOINTS, np.pi), None


def run(*, num_clips: int = 10_000, fps: float = 30.0, min_s: float = 2.0, max_s: float = 6.0,
        num_files: int = 10, query_batch: int = 4096, repeats: int = 20, control_fps: float = 50.0,
        seed: int = 0, device: str = "cpu", robot: str | None = "g1", workdir: str | None = None) -> dict:
    rng = np.random.default_rng(seed)
    joint_names, lower, upper, robot_used = _robot(robot)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        per_file = -(-num_clips // num_files)
        for f in range(num_files):
            ids = range(f * per_file, min(num_clips, (f + 1) * per_file))
            write_sonic_pkl(os.path.join(src, f"part{f:03d}.pkl"), [_synthetic_clip(i, rng, fps, min_s, max_s) for i in ids])
        store = os.path.join(tmp, "motions.parquet")
        t0 = time.perf_counter()
        report = import_motions([src], out=store, joint_names=joint_names, lower=lower, upper=upper, fps=fps)
        import_s = time.perf_counter() - t0
        info = store_info(store)
        raw_bytes = info["total_frames"] * (3 + 4 + NUM_JOINTS) * 4

        gc.collect()
        rss0 = _rss_bytes()
        t0 = time.perf_counter()
        lib = MotionLib(store, control_fps=control_fps, device=device)
        load_s = time.perf_counter() - t0
        gc.collect()
        rss_delta = _rss_bytes() - rss0

        g = torch.Generator().manual_seed(seed)
        clip_ids = torch.randint(lib.num_clips, (query_batch,), generator=g).to(lib.device)
        times = (torch.rand(query_batch, generator=g).to(lib.device) * lib.clip_length_s[clip_ids])
        lib.state(clip_ids, times)  # warm-up
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            lib.state(clip_ids, times)
            if lib.device.type == "cuda":
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - t0)
        fk_ms, fk_reason = _fk_query_ms(lib, robot_used, clip_ids, times, repeats)
        return {
            "num_clips": info["num_clips"],
            "rejected": len(report["rejected"]),
            "robot": robot_used or "synthetic-29-joint",
            "total_frames": info["total_frames"],
            "total_duration_h": info["total_duration_s"] / 3600,
            "import_s": import_s,
            "import_clips_per_s": info["num_clips"] / import_s,
            "store_file_mb": os.path.getsize(store) / 1e6,
            "raw_array_mb": raw_bytes / 1e6,
            "load_s": load_s,
            "load_rss_delta_mb": rss_delta / 1e6,
            "motion_lib_tensor_mb": lib.nbytes() / 1e6,
            "control_fps": control_fps,
            "query_batch": query_batch,
            "query_ms_median": 1e3 * float(np.median(samples)),
            "query_ms_min": 1e3 * float(np.min(samples)),
            "query_with_fk_ms": fk_ms,
            "query_with_fk_reason": fk_reason,
            "device": str(lib.device),
            "torch_threads": torch.get_num_threads(),
        }


def _fk_query_ms(lib: MotionLib, robot: str | None, clip_ids, times, repeats: int):
    """Median ms of one body_state query (state + TorchFK), or (None, why not)."""
    if robot is None:
        return None, "no robot FK available (sonic_ray.robots not importable): synthetic joints"

    model, spec = load_model(robot)
    lib.fk = TorchFK(model, spec, device=lib.device)
    lib.body_state(clip_ids, times)  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        lib.body_state(clip_ids, times)
        if lib.device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(samples)), f"TorchFK over {lib.fk.num_bodies} bodies of {robot}"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("motion", help="motion store import/load and MotionLib query benchmark")
    p.add_argument("--num-clips", type=int, default=10_000)
    p.add_argument("--query-batch", type=int, default=4096)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    result = run(num_clips=args.num_clips, query_batch=args.query_batch, device=args.device, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    return 0
