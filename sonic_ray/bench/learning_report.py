"""`sonic-ray bench learning`'s arithmetic and plot, Ray-free: the training schedule from an env-step
budget, per-seed curves out of a run's metrics.jsonl rows, their mean over seeds, the summary at
fixed env-step marks and the deltas over the zero-action baseline.

A curve point is one evaluated checkpoint (every `eval_interval` iterations):
- `env_steps`: env steps sampled up to that iteration (the sum of `perf/env_steps`);
- `wall_s`: seconds from the start of training to the end of that iteration;
- `env_steps_per_s`: env_steps / wall_s (the run's pace so far, evaluations beside it included);
- `episode_length`: the mean of `env/episode_length` over the `window` iterations ending there
  (training terminations, training noise; the plain mean of the iterations' means, as the issue's
  "episode length over iterations 90-100" figures are);
- `completed_mean`, `success_rate`, `mpjpe_l_mm_all`: that checkpoint's evaluation
  (`eval/*`, logged when its Ray task finished; None when no evaluation of it was logged).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sonic_ray.utils.io import save_figure_png

EVAL_KEYS = ("completed_mean", "success_rate", "mpjpe_l_mm_all")
# Keys averaged over seeds and compared with zero action; larger is better except for the MPJPE.
METRIC_KEYS = ("episode_length", *EVAL_KEYS)
POINT_KEYS = ("iteration", "env_steps", "wall_s", "env_steps_per_s", *METRIC_KEYS)


def schedule(steps_per_iteration: int, env_steps: int, eval_every_steps: int) -> tuple[int, int]:
    """-> (eval_interval, max_iterations) in iterations. The interval is rounded up, so checkpoint k
    has at least k x eval_every_steps env steps; the run is rounded up to a whole number of
    intervals, so its last iteration is evaluated and it samples at least `env_steps`."""
    if min(steps_per_iteration, env_steps, eval_every_steps) <= 0:
        raise ValueError(
            f"schedule: steps per iteration {steps_per_iteration}, budget {env_steps} and "
            f"evaluation spacing {eval_every_steps} must all be > 0"
        )
    interval = math.ceil(eval_every_steps / steps_per_iteration)
    intervals = math.ceil(env_steps / (interval * steps_per_iteration))
    return interval, interval * intervals


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def seed_curve(rows: Sequence[dict[str, Any]], *, eval_interval: int, window: int, t0: float) -> list[dict]:
    """Curve points of one run from its metrics.jsonl rows (`t0`: time.time() when training began).

    Iteration rows carry `perf/env_steps`; evaluation results carry `eval/iteration` (the
    iteration evaluated) and may arrive on a later iteration's row or on the rows written after
    training (the driver waits for the last evaluations), so they are matched by `eval/iteration`."""
    iters = {int(r["iteration"]): r for r in rows if "perf/env_steps" in r}
    evals = {
        int(r["eval/iteration"]): r
        for r in rows
        if r.get("eval/iteration") is not None and r.get("eval/completed_mean") is not None
    }
    points, steps = [], 0.0
    for it in sorted(iters):
        r = iters[it]
        steps += float(r["perf/env_steps"])
        if it % eval_interval:
            continue
        lo = it - min(window, eval_interval)
        wall = float(r["time"]) - t0
        ev = evals.get(it, {})
        lengths = [iters[i].get("env/episode_length") for i in range(lo + 1, it + 1) if i in iters]
        points.append(
            {
                "iteration": it,
                "env_steps": int(steps),
                "wall_s": wall,
                "env_steps_per_s": steps / wall if wall > 0 else None,
                "episode_length": _mean(lengths),
                **{k: ev.get(f"eval/{k}") for k in EVAL_KEYS},
            }
        )
    return points


def mean_curve(curves: Sequence[Sequence[dict]]) -> list[dict]:
    """Point-by-point mean over seeds (the k-th checkpoint of every seed; runs of one schedule have
    the same iterations). `num_seeds`: seeds that reached the point; a metric averages the seeds
    that have it."""
    out = []
    for k in range(max((len(c) for c in curves), default=0)):
        pts = [c[k] for c in curves if len(c) > k]
        out.append({**{key: _mean([p.get(key) for p in pts]) for key in POINT_KEYS}, "num_seeds": len(pts)})
        out[-1]["iteration"] = pts[0]["iteration"]
        out[-1]["env_steps"] = round(out[-1]["env_steps"])
    return out


def over_zero_action(point: dict, zero: dict) -> dict[str, float | None]:
    """Point minus zero action per metric (episode length: zero action's training-termination length)."""
    return {
        k: None if point.get(k) is None or zero.get(k) is None else point[k] - zero[k] for k in METRIC_KEYS
    }


def summary_at(curves: dict[str, list[dict]], mean: list[dict], zero: dict, marks: Sequence[int]) -> dict:
    """For each mark (env steps), the first mean-curve point at or past it, with every seed's point
    there and the deltas over zero action; a mark no point reaches is left out."""
    out = {}
    for mark in marks:
        k = next((i for i, p in enumerate(mean) if (p["env_steps"] or 0) >= mark), None)
        if k is None:
            continue
        point = mean[k]
        out[mark_label(mark)] = {
            **point,
            "per_seed": {s: c[k] for s, c in curves.items() if len(c) > k},
            "over_zero_action": over_zero_action(point, zero),
        }
    return out


def mark_label(steps: int) -> str:
    """500000 -> '0.5M', 1000000 -> '1M', 20000 -> '20k'."""
    if steps >= 1_000_000 or (steps >= 100_000 and steps % 100_000 == 0):
        return f"{steps / 1e6:g}M"
    return f"{steps / 1e3:g}k" if steps >= 1000 else str(steps)


def plot(result: dict, out_png, *, title: str = "") -> None:
    """Episode length, eval completed share, success rate and MPJPE against env steps: a thin line per
    seed, a thick one for the mean, zero action dashed. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zero = result.get("zero_action", {})
    panels = (
        ("episode_length", "mean episode length (steps, training terminations)"),
        ("completed_mean", "eval: share of each clip tracked"),
        ("success_rate", "eval: success rate"),
        ("mpjpe_l_mm_all", "eval: root-relative MPJPE, all clips (mm)"),
    )
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        for seed, run in result.get("seeds", {}).items():
            _line(ax, run.get("curve", []), key, label=f"seed {seed}", linewidth=1, alpha=0.6)
        _line(ax, result.get("mean", {}).get("curve", []), key, label="mean", linewidth=2.5, color="black")
        if zero.get(key) is not None:
            ax.axhline(zero[key], linestyle="--", color="tab:red", label="zero action")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure_png(fig, out_png)


def _line(ax, curve: Sequence[dict], key: str, **kw) -> None:
    pts = [(p["env_steps"], p[key]) for p in curve if p.get(key) is not None]
    if pts:
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", **kw)
