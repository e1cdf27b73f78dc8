"""`sonic-ray eval` (one checkpoint) and `sonic-ray monitor` (a run's checkpoints as they appear)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonic_ray.config.cli import OVERRIDES_HELP
from sonic_ray.config.compose import ConfigError
from sonic_ray.eval.dispatch import evaluate_plan
from sonic_ray.eval.metrics import SUMMARY_KEYS
from sonic_ray.eval.monitor import Monitor
from sonic_ray.eval.pipeline import plan_evaluation
from sonic_ray.eval.rerender import render_from
from sonic_ray.train.checkpoint import CheckpointError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--render",
        type=int,
        default=None,
        metavar="K",
        help="videos of the K worst clips (default: callbacks.eval_render of the run's config)",
    )
    p.add_argument(
        "--encoders",
        default=None,
        help="comma-separated encoders to evaluate with (default: callbacks.eval_encoders, g1)",
    )
    p.add_argument(
        "--blind",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also the blind control: g1 observations with the token zeroed, i.e. what the action "
        "decoder does from proprioception alone (default: callbacks.eval_blind)",
    )
    p.add_argument(
        "--num-envs", type=int, default=None, help="envs per evaluation task (callbacks.eval_num_envs)"
    )
    p.add_argument("--max-clips", type=int, default=None, help="the first N clips of the store (0: all)")
    p.add_argument(
        "--max-tasks",
        type=int,
        default=None,
        help="fan out into at most this many Ray tasks (1: in this process, no Ray)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "overrides",
        nargs="*",
        help=OVERRIDES_HELP + " applied to the checkpoint's own config (e.g. motions.store=held_out.parquet)",
    )


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint on every clip: metrics, report, videos")
    p.add_argument(
        "--checkpoint",
        help="a checkpoint dir, or a run dir (its latest checkpoint); required "
        "unless --render-from names an evaluation (then its checkpoint is the default)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output dir (default: <run_dir>/eval/iter_NNNNNN; with --render-from: that evaluation's dir)",
    )
    p.add_argument(
        "--render-from",
        metavar="DIR/clips.parquet",
        help="render the --render K worst clips of an earlier evaluation (re-runs only those "
        "clips) and link them from its report.html",
    )
    _common(p)
    p.set_defaults(func=_eval)

    m = subparsers.add_parser(
        "monitor", help="evaluate a run's new checkpoints as they appear (W&B, reports)"
    )
    m.add_argument("--experiment-dir", required=True, help="the training run dir (holds checkpoints/)")
    m.add_argument("--run-once", action="store_true", help="deal with the checkpoints present now, then exit")
    m.add_argument("--every-n", type=int, default=1, metavar="K", help="evaluate every K-th new checkpoint")
    m.add_argument(
        "--poll-seconds", type=float, default=60.0, help="seconds between looks for new checkpoints"
    )
    m.add_argument("--no-wandb", action="store_true", help="do not log to the run's W&B run")
    _common(m)
    m.set_defaults(func=_monitor)

    c = subparsers.add_parser(
        "compare",
        help="two eval/sim2sim output folders side by side (e.g. one policy on MuJoCo and on Isaac Lab)",
    )
    c.add_argument(
        "run_a", metavar="RUN_A", help="an eval or sim2sim output folder (metrics.json, clips.parquet)"
    )
    c.add_argument("run_b", metavar="RUN_B", help="the other folder; differences are B - A")
    c.add_argument("--out", required=True, metavar="DIR", help="folder for report.html and compare.json")
    c.add_argument(
        "--labels", nargs=2, metavar=("A", "B"), help="column names (default: sim2sim backend or folder name)"
    )
    c.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from sonic_ray.eval.compare import CompareError, write_compare

    try:
        result = write_compare(args.run_a, args.run_b, args.out, labels=args.labels)
    except CompareError as e:
        print(f"sonic-ray compare: {e}", file=sys.stderr)
        return 2
    la, lb = result["labels"]
    for key in ("success_rate", "success_rate_global", "completed_mean", "mpjpe_g_mm", "mpjpe_l_mm_all"):
        v = result["summary"][key]
        print(f"{key}: {la} {_num(v['a'])}, {lb} {_num(v['b'])}, B-A {_num(v['diff'])}")
    print(Path(args.out) / "report.html")
    return 0


def _num(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _eval_kwargs(args) -> dict:
    kw = {"num_envs": args.num_envs, "max_clips": args.max_clips, "max_tasks": args.max_tasks}
    if getattr(args, "blind", None) is not None:
        kw["blind"] = args.blind
    if args.encoders:
        kw["encoders"] = [e.strip() for e in args.encoders.split(",") if e.strip()]
    return kw


def _eval(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    torch.set_num_threads(1)  # the policy is small; the CPU steps MuJoCo and renders
    console = Console(stderr=True)
    if args.render_from:
        return _render_from(args)
    if not args.checkpoint:
        print(
            "sonic-ray eval: give --checkpoint PATH (or --render-from DIR/clips.parquet --render K)",
            file=sys.stderr,
        )
        return 2
    try:
        plan = plan_evaluation(args.checkpoint, args.overrides, **_eval_kwargs(args))
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"sonic-ray eval: {e}", file=sys.stderr)
        return 1
    out_dir = Path(args.out) if args.out else plan.default_out_dir()
    render = plan.cfg.callbacks.eval_render if args.render is None else args.render
    console.print(
        f"sonic-ray eval: {plan.checkpoint} ({plan.num_clips} clips x {len(plan.encoders)} encoder(s)"
        f"{' + the blind control' if plan.blind else ''}, "
        f"{plan.num_tasks} task(s), {plan.num_envs} envs) -> {out_dir}"
    )
    metrics = evaluate_plan(plan, out_dir, render=render, progress=not args.no_progress)
    _print_summary(console, metrics, out_dir)
    return 0


def _render_from(args: argparse.Namespace) -> int:
    if not args.render or args.render < 1:
        print("sonic-ray eval: --render-from needs --render K (K >= 1 worst clips)", file=sys.stderr)
        return 2
    try:
        videos = render_from(
            args.render_from,
            args.render,
            checkpoint=args.checkpoint,
            overrides=args.overrides or None,
            out_dir=args.out,
        )
    except (FileNotFoundError, ValueError, CheckpointError, ConfigError) as e:
        print(f"sonic-ray eval: {e}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(args.render_from).parent
    for name, caption in videos.items():
        print(f"{out / 'videos' / name}: {caption}")
    print(out / "report.html")
    return 0


def _print_summary(console, metrics: dict, out_dir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"evaluation: {metrics.get('checkpoint')}")
    encs = list(metrics.get("per_encoder", {}))
    table.add_column("metric")
    table.add_column("all", justify="right")
    for e in encs:
        table.add_column(e, justify="right")

    def fmt(v):
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    for key in SUMMARY_KEYS:
        table.add_row(key, fmt(metrics.get(key)), *(fmt(metrics["per_encoder"][e].get(key)) for e in encs))
    console.print(table)
    extra = f", render {metrics['render_fps']} frames/s" if metrics.get("render_fps") else ""
    console.print(
        f"eval {metrics.get('eval_seconds')} s, {metrics.get('env_steps_per_s')} env-steps/s{extra}"
    )
    print(out_dir)


def _monitor(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    try:
        mon = Monitor(
            args.experiment_dir,
            overrides=args.overrides,
            every_n=args.every_n,
            render=0 if args.render is None else args.render,
            progress=not args.no_progress,
            wandb=not args.no_wandb,
            eval_kwargs=_eval_kwargs(args),
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"sonic-ray monitor: {e}", file=sys.stderr)
        return 1
    if args.run_once:
        mon.run_once()
    else:
        mon.run(poll_seconds=args.poll_seconds)
    return 0
