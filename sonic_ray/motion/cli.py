"""`sonic-ray motions import|info`: build and inspect the motion store.

Robot data (joint names, limits, FK) comes from `sonic_ray.motion.robot_context`, the one seam to
the robots package; tests and tools that already hold that data pass their own context function to
`add_parser(..., robot_context_fn=...)`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from sonic_ray.motion.robot_context import RobotContext, robot_context


def add_parser(
    subparsers,
    *,
    robot_context_fn: Callable[[str], RobotContext] = robot_context,
    ray_engine: Callable | None = None,
) -> None:
    """ray_engine: the Ray Data import engine (`sonic_ray.ingest.run_ray`), handed in by the shell
    (`sonic_ray.ingest.add_parser`) so this core module never imports Ray."""
    p = subparsers.add_parser("motions", help="import and inspect reference motions")
    sub = p.add_subparsers(dest="motions_cmd", required=True)
    imp = sub.add_parser("import", help="import motion files/folders into a store (appends)")
    imp.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (searched recursively)")
    imp.add_argument(
        "--out",
        required=True,
        metavar="STORE",
        help="motion store: a folder (sharded store, created or appended) or a one-file .parquet",
    )
    imp.add_argument(
        "--list", dest="list_file", metavar="FILE", help="a file naming motion files, one a line"
    )
    imp.add_argument(
        "--engine",
        choices=("auto", "ray", "serial"),
        default="auto",
        help="sharded import: Ray Data pipeline or in-process (auto: ray for 8+ files)",
    )
    imp.add_argument("--workers", type=int, default=None, help="Ray Data import workers (default: CPU count)")
    imp.add_argument("--fps", type=float, default=None, help="frame rate for files that carry none (CSV)")
    imp.add_argument("--robot", default="g1", help="robot whose joints the motions drive (default g1)")
    imp.add_argument("--json", action="store_true", help="print the import report as JSON")
    imp.set_defaults(
        func=lambda args: cmd_import(args, robot_context_fn=robot_context_fn, ray_engine=ray_engine)
    )
    info = sub.add_parser("info", help="summarise a store")
    info.add_argument("store", metavar="STORE")
    info.add_argument("--json", action="store_true")
    info.add_argument(
        "--verify", action="store_true", help="sharded store: check every shard's size and hash"
    )
    info.set_defaults(func=cmd_info)
    mig = sub.add_parser("migrate", help="copy a one-file store into a sharded store (folder)")
    mig.add_argument("src", metavar="STORE")
    mig.add_argument("dst", metavar="FOLDER")
    mig.set_defaults(func=cmd_migrate)
    upg = sub.add_parser(
        "upgrade", help="rewrite an older sharded store's manifest in the current schema (shards kept)"
    )
    upg.add_argument("store", metavar="FOLDER")
    upg.set_defaults(func=cmd_upgrade)
    syn = sub.add_parser("synth", help="build the embedded synthetic G1 data set (IK, planted feet)")
    syn.add_argument(
        "--out", required=True, metavar="STORE", help="motion store (.parquet) to write (replaced)"
    )
    syn.add_argument("--fps", type=float, default=50.0, help="frame rate of the clips (default 50)")
    syn.add_argument("--robot", default="g1")
    syn.add_argument("--json", action="store_true", help="print the store summary as JSON")
    syn.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    from rich.progress import Progress

    from sonic_ray.motion.default_store import build_synth_store

    if args.json:
        info = build_synth_store(args.out, robot=args.robot, fps=args.fps)
        print(
            json.dumps(
                {k: info[k] for k in ("path", "num_clips", "total_duration_s", "total_frames")}, default=str
            )
        )
        return 0
    with Progress(transient=True) as bar:
        task = bar.add_task("synthesising clips", total=None)

        def progress(i, n, name):
            bar.update(task, completed=i, total=n, description=f"synthesising {name}")

        info = build_synth_store(args.out, robot=args.robot, fps=args.fps, progress=progress)
    print(f"wrote {info['num_clips']} clips ({info['total_duration_s']:.1f} s) to {args.out}")
    return 0


def cmd_import(
    args,
    *,
    robot_context_fn: Callable[[str], RobotContext] = robot_context,
    ray_engine: Callable | None = None,
) -> int:
    """Exit 0 if at least one clip was imported, else 1 (also when the store cannot be read or
    written: one line naming it)."""
    from sonic_ray.motion.importing import import_motions
    from sonic_ray.motion.store import StoreError

    if not str(args.out).endswith(".parquet"):
        from sonic_ray.motion.sharded_cli import cmd_import_sharded

        return cmd_import_sharded(
            args, robot_context_fn=robot_context_fn, ray_engine=ray_engine, print_report=_print_import
        )
    if args.list_file:
        from sonic_ray.motion.shard_import import list_files

        args.paths = list_files(args.paths, args.list_file)
    joint_names, lower, upper, fk = robot_context_fn(args.robot)
    kw = dict(out=args.out, joint_names=joint_names, lower=lower, upper=upper, fk=fk, fps=args.fps)
    try:
        if args.json:
            report = import_motions(args.paths, **kw)
        else:
            report = _import_with_progress(args.paths, kw)
    except (StoreError, OSError) as e:  # --out: a folder, not a store, unwritable, corrupt
        print(f"motions import: --out {args.out}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"imported": report["imported"], "rejected": report["rejected"]}))
    else:
        _print_import(report, args.out)
    return 0 if report["imported"] else 1


def _import_with_progress(paths, kw) -> dict:
    from rich.progress import Progress

    from sonic_ray.motion.importers import find_motion_files
    from sonic_ray.motion.importing import import_motions

    with Progress(transient=True) as progress:
        task = progress.add_task("importing", total=len(find_motion_files(paths)))
        return import_motions(paths, on_file=lambda _path: progress.advance(task), **kw)


def _print_import(report: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    n_frames = sum(c["frames"] for c in report["imported"])
    console.print(f"[green]imported {len(report['imported'])} clip(s)[/] ({n_frames} frames) into {out}")
    if report["warnings"]:
        console.print(f"[yellow]{len(report['warnings'])} clip(s) with warnings[/] (see `motions info`)")
    if report["rejected"]:
        table = Table("rejected source", "reason", title=f"{len(report['rejected'])} rejected")
        for r in report["rejected"]:
            table.add_row(r["source"], r["reason"])
        console.print(table)


def cmd_migrate(args) -> int:
    from sonic_ray.motion.store import migrate

    out = migrate(args.src, args.dst)
    print(
        f"{args.dst}: {len(out['added'])} clip(s) added, {len(out['duplicates'])} duplicate(s) skipped, "
        f"{out['num_clips']} stored"
    )
    return 0


def cmd_upgrade(args) -> int:
    """Schema 2 -> 3: the per-clip entries move from the manifest into the clip index file."""
    from sonic_ray.motion.sharded import SCHEMA_VERSION, is_sharded, upgrade
    from sonic_ray.motion.store import StoreError

    if not is_sharded(args.store):
        print(f"motions upgrade: {args.store}: not a sharded store (a folder)", file=sys.stderr)
        return 1
    try:
        done = upgrade(args.store)
    except (StoreError, OSError) as e:
        print(f"motions upgrade: {args.store}: {e}", file=sys.stderr)
        return 1
    print(f"{args.store}: " + (f"upgraded to schema v{SCHEMA_VERSION}" if done else "already current"))
    return 0


def cmd_info(args) -> int:
    """Totals (a sharded store: from the manifest) and the clips with warnings."""
    from sonic_ray.motion.store import store_info, store_warnings

    try:
        info = store_info(args.store, clips=False)
        warned = store_warnings(args.store, limit=None if args.json else 50)
    except (OSError, ValueError) as e:
        print(f"motions info: {args.store}: {e}", file=sys.stderr)
        return 1
    bad = None
    if args.verify:
        from sonic_ray.motion.sharded_cli import verify

        bad = verify(args.store, quiet=args.json)
    if args.json:
        print(json.dumps({**info, "warnings": warned} | ({} if bad is None else {"bad_shards": bad})))
        return 1 if bad else 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{info['path']}: {info['num_clips']} clips, {info['total_duration_s'] / 60:.1f} min "
        f"({info['total_frames']} frames), {len(info['joint_names'])} joints, schema "
        f"v{info['schema_version']}"
    )
    table = Table("format", "clips")
    for fmt, n in sorted(info["by_format"].items()):
        table.add_row(fmt, str(n))
    console.print(table)
    for name, ws in warned.items():
        console.print(f"[yellow]{name}[/]: " + "; ".join(ws))
    if info["num_with_warnings"] > len(warned):
        more = info["num_with_warnings"] - len(warned)
        console.print(f"... and {more} more clips with warnings (use --json)")
    return 1 if bad else 0
