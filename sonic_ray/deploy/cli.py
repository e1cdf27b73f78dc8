"""`sonic-ray export` and `sonic-ray sim2sim`: deploy a trained policy as ONNX, and check it in a
plain MuJoCo loop. onnx and onnxruntime load only when a command runs (export and sim2sim import
them inside their functions)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sonic_ray.deploy import sim2sim
from sonic_ray.deploy.export import ExportMismatch, export_checkpoint
from sonic_ray.deploy.onnx_meta import MetadataError, read_metadata
from sonic_ray.deploy.physics import PLAIN
from sonic_ray.deploy.reference import load_references, vr_reference
from sonic_ray.train.checkpoint import CheckpointError


def add_parser(subparsers) -> None:
    ex = subparsers.add_parser("export", help="export a checkpoint's policy to ONNX files with metadata")
    ex.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint dir or run dir (latest)")
    ex.add_argument("--out", required=True, metavar="DIR", help="folder for the .onnx files and export.json")
    ex.add_argument("--tol", type=float, default=1e-5, help="max |onnx - torch| allowed (default 1e-5)")
    ex.add_argument("--batch", type=int, default=64, help="random rows compared per model (default 64)")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=cmd_export)

    s2s = subparsers.add_parser(
        "sim2sim", help="run an exported policy_<encoder>.onnx in plain MuJoCo or another simulator"
    )
    s2s.add_argument(
        "--onnx", required=True, metavar="FILE", help="a policy_<encoder>.onnx from `sonic-ray export`"
    )
    s2s.add_argument("--motions", metavar="STORE", help="motion store (.parquet) with the reference clips")
    s2s.add_argument(
        "--clips", nargs="*", metavar="CLIP", help="clip names or store positions (default: all)"
    )
    s2s.add_argument(
        "--vr-targets",
        metavar="FILE.npz",
        help="VR 3-point targets driving a teleop policy "
        "instead of a clip (head/left_wrist/right_wrist _pos, _quat; world frame, wxyz)",
    )
    s2s.add_argument("--out", metavar="DIR", help="output folder (default runs/sim2sim/<file>-<time>)")
    s2s.add_argument(
        "--obs-delay-steps", type=int, default=0, metavar="K", help="robot state seen K steps late"
    )
    s2s.add_argument(
        "--obs-noise",
        type=float,
        default=0.0,
        metavar="S",
        help="uniform noise of S x each term's training noise half-width",
    )
    s2s.add_argument("--render", type=int, default=0, metavar="K", help="videos of the K worst clips")
    s2s.add_argument("--seed", type=int, default=0)
    s2s.add_argument(
        "--backend",
        default=PLAIN,
        metavar="NAME",
        help="physics: 'plain' (one MjData, default) or a training sim backend: mujoco, mujoco_warp, "
        "isaaclab (Isaac Lab 3 / Newton, needs .venv-isaaclab)",
    )
    s2s.add_argument("--device", default="cpu", help="device of a --backend sim (cpu, cuda:0; default cpu)")
    s2s.set_defaults(func=cmd_sim2sim)


def cmd_export(args: argparse.Namespace) -> int:
    if args.tol < 0 or args.batch < 1:
        print(
            f"sonic-ray export: --tol must be >= 0 and --batch >= 1, got {args.tol}, {args.batch}",
            file=sys.stderr,
        )
        return 2
    try:
        report = export_checkpoint(
            args.checkpoint, args.out, tol=args.tol, batch=args.batch, seed=args.seed, log=print
        )
    except (ExportMismatch, CheckpointError, ValueError, KeyError) as e:
        print(f"sonic-ray export: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"max |onnx - torch| over all files: {report.max_abs_diff:.3g} (tolerance {args.tol:g})")
    print(f"wrote {len(report.files)} files and export.json to {report.out_dir}")
    return 0


def cmd_sim2sim(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    for flag, value in (
        ("--obs-delay-steps", args.obs_delay_steps),
        ("--obs-noise", args.obs_noise),
        ("--render", args.render),
    ):
        if value < 0:
            print(f"sonic-ray sim2sim: {flag} must be >= 0, got {value}", file=sys.stderr)
            return 2
    problem = backend_problem(args.backend)
    if problem:
        print(f"sonic-ray sim2sim: {problem}", file=sys.stderr)
        return 2
    try:
        meta = read_metadata(args.onnx)
        if args.vr_targets:
            if meta.get("encoder") != "teleop":
                raise ValueError(
                    f"--vr-targets drives the teleop encoder; {args.onnx} is the "
                    f"{meta.get('encoder')!r} policy (use policy_teleop.onnx)"
                )
            refs = [vr_reference(args.vr_targets, meta)]
        elif args.motions:
            refs = load_references(args.motions, meta, args.clips)
        else:
            raise ValueError("give --motions STORE (reference clips) or --vr-targets FILE.npz")
    except (MetadataError, ValueError, KeyError, FileNotFoundError) as e:
        print(f"sonic-ray sim2sim: {e}", file=sys.stderr)
        return 2
    out = Path(
        args.out or Path("runs") / "sim2sim" / f"{Path(args.onnx).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"sim2sim {Path(args.onnx).name}", total=len(refs))
            result = sim2sim.run(
                args.onnx,
                refs,
                out_dir=out,
                obs_delay_steps=args.obs_delay_steps,
                obs_noise=args.obs_noise,
                render=args.render,
                seed=args.seed,
                on_clip=lambda row: bar.advance(task),
                view_command=_view_command(args),
                backend=args.backend,
                device=args.device,
            )
    except ImportError as e:  # a backend's packages that find_spec saw but that do not import
        print(f"sonic-ray sim2sim: --backend {args.backend}: {e}", file=sys.stderr)
        return 2
    m, speed = result["metrics"], result["speed"]
    mpjpe = "n/a (no clip completed)" if m.get("mpjpe_g_mm") is None else f"{m['mpjpe_g_mm']:.1f} mm"
    print(
        f"[{args.backend}] {m['num_clips']} clips, success rate {m['success_rate']:.3f}, "
        f"completed {m['completed_mean']:.3f}, MPJPE global {mpjpe}; "
        f"{speed['steps_per_s']:.0f} steps/s ({speed['realtime_factor']:.1f}x real time)"
    )
    print(f"wrote {out / 'metrics.json'}")
    return 0


def backend_problem(backend: str) -> str | None:
    """Why `backend` cannot run sim2sim here (unknown, or its packages or ONNX Runtime are missing),
    or None."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return (
            "onnxruntime is not installed in this Python (pip install 'sonic-ray[export]'; in "
            ".venv-isaaclab: make isaaclab-setup, or .venv-isaaclab/bin/pip install onnxruntime)"
        )
    if backend == PLAIN:
        return None
    from sonic_ray.sim.registry import BACKENDS, available_backends

    if backend not in BACKENDS:
        return f"unknown --backend {backend!r}; known: {[PLAIN, *BACKENDS]}"
    if backend not in available_backends():
        if backend == "isaaclab":
            from sonic_ray.sim.isaaclab_usd import INSTALL_HINT

            return f"--backend isaaclab: Isaac Lab is not importable in this Python; {INSTALL_HINT}"
        return f"--backend {backend}: its packages do not import here (pip install sonic-ray[warp])"
    return None


def _view_command(args: argparse.Namespace) -> str | None:
    """The `sonic-ray view policy` command that opens a clip of this run (none for VR targets)."""
    import shlex

    if not args.motions:
        return None
    return (
        f"sonic-ray view policy --onnx {shlex.quote(str(args.onnx))} "
        f"--motions {shlex.quote(str(args.motions))} --clip {{clip}}"
    )
