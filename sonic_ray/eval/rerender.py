"""`sonic-ray eval --render-from DIR/clips.parquet --render K`: videos of the K worst clips of an
earlier evaluation, without evaluating every clip again (SONIC's `+metrics_file`).

The earlier rows say which clips were worst (`worst_first_key`, as the evaluation ranks them); only
those clips are simulated again, with the evaluation's checkpoint and overrides (from its
metrics.json), because evaluation is deterministic (frame 0, no randomisation, the mean action).
A re-run that ends differently from the stored row (the checkpoint or the code changed since) is
reported. Videos go to DIR/videos (or --out) and report.html is rewritten from the stored rows to
link them; metrics.json and clips.parquet are left as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from sonic_ray.eval.metrics import BLIND
from sonic_ray.eval.pipeline import plan_evaluation, plan_policy, render_worst, report_title, view_command
from sonic_ray.eval.report import METRICS_FILE, REPORT_FILE, VIDEOS_DIR, render_report
from sonic_ray.eval.runner import evaluate_policy, store_clip_names, worst_first_key
from sonic_ray.utils.io import atomic_write


def read_evaluation(clips_file: str | Path) -> tuple[dict, list[dict]]:
    """(metrics.json beside it, rows of clips.parquet); FileNotFoundError / ValueError name the file."""
    import pyarrow.parquet as pq

    clips_file = Path(clips_file)
    if not clips_file.is_file():
        raise FileNotFoundError(
            f"{clips_file}: not found (give the clips.parquet of an earlier `sonic-ray eval`)"
        )
    metrics_file = clips_file.parent / METRICS_FILE
    if not metrics_file.is_file():
        raise FileNotFoundError(
            f"{metrics_file}: not found beside {clips_file.name} (an unfinished evaluation?)"
        )
    try:
        rows = pq.read_table(clips_file).to_pylist()
    except Exception as e:  # pyarrow's errors are not one class
        raise ValueError(f"{clips_file}: not readable as Parquet ({e})") from e
    missing = [k for k in ("clip", "clip_index", "encoder", "success") if rows and k not in rows[0]]
    if not rows or missing:
        raise ValueError(
            f"{clips_file}: not an evaluation's clips table (rows: {len(rows)}, missing {missing})"
        )
    return json.loads(metrics_file.read_text()), rows


def render_from(
    clips_file: str | Path,
    render: int,
    *,
    checkpoint: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Render the `render` worst clips of the evaluation at clips_file; returns {video: caption}."""
    clips_file = Path(clips_file)
    metrics, rows = read_evaluation(clips_file)
    if "sim2sim" in metrics:
        raise ValueError(
            f"{clips_file}: a sim2sim evaluation; run `sonic-ray sim2sim --clips NAMES --render K` again"
        )
    # the blind control's rows are a figure, not a policy to watch: never re-rendered
    worst = sorted((r for r in rows if r.get("encoder") != BLIND), key=worst_first_key)[: max(0, int(render))]
    ckpt = checkpoint or metrics.get("checkpoint")
    if not ckpt:
        raise ValueError(f"{clips_file.parent / METRICS_FILE}: names no checkpoint; pass --checkpoint")
    encoders = sorted({r["encoder"] for r in worst})
    plan = plan_evaluation(
        ckpt,
        list(metrics.get("overrides", []) if overrides is None else overrides),
        encoders=encoders or None,
        max_tasks=1,
        blind=False,
    )
    names, _ = store_clip_names(plan.cfg, None)
    for r in worst:
        k = int(r["clip_index"])
        if k >= len(names) or names[k] != r["clip"]:
            found = names[k] if k < len(names) else "nothing"
            raise ValueError(
                f"{clips_file}: clip #{k} is {r['clip']!r} there but {found!r} in the store of "
                f"{plan.checkpoint.name}'s config; pass the evaluation's overrides (motions.store=...)"
            )
    cfg, policy = plan_policy(plan, "cpu")
    trajectories = []
    for enc in encoders:
        ids = [int(r["clip_index"]) for r in worst if r["encoder"] == enc]
        out = evaluate_policy(
            cfg, policy, encoders=[enc], clip_ids=ids, num_envs=len(ids), seed=cfg.seed, keep_worst=len(ids)
        )
        trajectories += out.worst
        old = {(r["clip"], r["encoder"]): r for r in worst}
        for new in out.rows:
            was = old[(new["clip"], new["encoder"])]
            if (
                bool(new["success"]) != bool(was["success"])
                or abs(new["completed"] - was.get("completed", 1.0)) > 1e-6
            ):
                log(
                    f"note: {new['clip']} [{enc}] ran differently now (completed {new['completed']:.3f}, "
                    f"was {was.get('completed', 1.0):.3f}): the checkpoint or the code changed since "
                    "that evaluation"
                )
    trajectories.sort(key=lambda t: worst_first_key(t.row))
    out_dir = Path(out_dir) if out_dir else clips_file.parent
    videos = render_worst(
        plan.cfg,
        trajectories,
        out_dir / VIDEOS_DIR,
        several_encoders=len(metrics.get("encoders", encoders)) > 1,
    )
    links = {f"{VIDEOS_DIR}/{name}": cap for name, cap in videos.items()}
    atomic_write(
        out_dir / REPORT_FILE,
        render_report(
            metrics, rows, links, title=report_title(plan), view_command=view_command(plan)
        ).encode(),
    )
    return videos
