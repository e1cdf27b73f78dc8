"""`sonic-ray motions import --out FOLDER` (a sharded store) and `motions info --verify`.

The engine is chosen here: `serial` runs `shard_import.run_serial` in this process; `ray` runs the
Ray Data pipeline the shell handed in (`sonic_ray.ingest.run_ray`, bound by the `sonic-ray`
command: this module never imports Ray); `auto` takes Ray for 8 files or more when it is there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable


def pick_engine(name: str, num_files: int, workers: int, ray_engine: Callable | None) -> tuple[str, Callable]:
    """(engine name, engine function) for --engine `name`."""
    from sonic_ray.motion.shard_import import run_serial

    if name == "auto":
        name = "ray" if ray_engine is not None and num_files >= 8 and workers > 1 else "serial"
    if name == "serial":
        return name, run_serial
    if ray_engine is None:
        raise SystemExit("motions import: --engine ray needs the `sonic-ray` command (sonic_ray.ingest)")

    def engine(files, kw, *, batch_files, on_result=None):
        return ray_engine(files, kw, batch_files=batch_files, on_result=on_result, workers=workers)

    return name, engine


def cmd_import_sharded(
    args,
    *,
    robot_context_fn: Callable,
    ray_engine: Callable | None = None,
    print_report: Callable | None = None,
) -> int:
    """print_report(report, out): the one-file import's summary printer (`motion.cli._print_import`)."""
    from sonic_ray.motion.shard_import import default_batch_files, import_sharded, list_files
    from sonic_ray.motion.store import StoreError

    files = list_files(args.paths, args.list_file)
    if not files:
        print("motions import: no motion files found", file=sys.stderr)
        return 1
    workers = args.workers or os.cpu_count() or 1
    name, engine = pick_engine(args.engine, len(files), workers, ray_engine)
    kw = dict(
        out=args.out,
        robot=args.robot,
        context_fn=robot_context_fn,
        fps=args.fps,
        engine=engine,
        batch_files=default_batch_files(len(files), workers) if name == "ray" else 256,
    )
    t0 = time.perf_counter()
    try:
        if args.json:
            report = import_sharded(files, **kw)
        else:
            report = _with_progress(files, kw, name)
    except (StoreError, OSError) as e:
        print(f"motions import: --out {args.out}: {e}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - t0
    if args.json:
        print(
            json.dumps(
                {k: report[k] for k in ("imported", "rejected", "duplicates")}
                | {"engine": name, "seconds": seconds}
            )
        )
    else:
        if print_report is not None:
            print_report(report, args.out)
        n = len(report["imported"])
        print(
            f"{n} clip(s) in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} clips/s, engine {name}); "
            f"{len(report['duplicates'])} duplicate(s) skipped"
        )
    return 0 if report["imported"] else 1


def _with_progress(files, kw, engine_name: str) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sonic_ray.motion.shard_import import import_sharded

    t0 = time.perf_counter()
    clips = 0
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files  {task.fields[clips]} clips  {task.fields[rate]:.0f} clips/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"importing ({engine_name})", total=len(files), clips=0, rate=0.0)

        def on_result(r: dict) -> None:
            nonlocal clips
            clips += len(r["clips"])
            bar.update(
                task, advance=r["files"], clips=clips, rate=clips / max(time.perf_counter() - t0, 1e-9)
            )

        return import_sharded(files, on_result=on_result, **kw)


def verify(store, *, quiet: bool = False) -> list[str]:
    """Bad shards and index files, one line each naming the file (printed to stderr unless quiet)."""
    from sonic_ray.motion.sharded import is_sharded, verify_store

    problems = verify_store(store) if is_sharded(store) else []  # one file: page CRCs checked on read
    if not quiet:
        for p in problems:
            print(f"bad store file: {p}", file=sys.stderr)
    return problems
