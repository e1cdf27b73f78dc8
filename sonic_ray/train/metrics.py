"""Run outputs people read: `metrics.jsonl` (one JSON object per iteration) and a PNG of curves."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sonic_ray.utils.io import save_figure_png

# The curves drawn by `plot_learning_curves`, in panel order, when present in the log.
CURVE_KEYS = (
    "env/episode_length",
    "reward/total",
    "env/success_rate",
    "eval/success_rate",
    "eval/success_rate_global",
    "eval/completed_mean",
    "eval/mpjpe_l_mm_all",
    "loss/policy",
    "loss/value",
    "perf/env_steps_per_s",
)
# Drawn into a panel beside its curve: the blind control (the token zeroed) of the same eval metric.
OVERLAYS = {
    "eval/success_rate": "eval/blind/success_rate",
    "eval/success_rate_global": "eval/blind/success_rate_global",
    "eval/completed_mean": "eval/blind/completed_mean",
}


class MetricsLog:
    """Append-only JSON-lines log; each `write` is one line, flushed so a crash loses at most one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: _jsonable(v) for k, v in record.items()}
        self._f.write(json.dumps(clean, sort_keys=True) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl; a torn last line (crash mid-write) is ignored."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def plot_learning_curves(
    rows: Iterable[dict[str, Any]], out_png: str | Path, *, title: str = ""
) -> Path | None:
    """Draw the known curves against iteration into `out_png` (atomically). None if nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    keys = [k for k in CURVE_KEYS if any(r.get(k) is not None for r in rows)]
    if not keys:
        return None
    ncols = 2
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, 3 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r.get("iteration"), r[key]) for r in rows if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1, label=key)
        other = OVERLAYS.get(key, "")
        over = [(r.get("iteration"), r[other]) for r in rows if r.get(other) is not None]
        if over:
            x, y = [p[0] for p in over], [p[1] for p in over]
            ax.plot(x, y, marker=".", linewidth=1, linestyle="--", label="blind control (token zeroed)")
            ax.legend(fontsize="small")
        ax.set_title(key)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure_png(fig, out_png)
