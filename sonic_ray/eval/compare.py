"""Two evaluation folders side by side: `sonic-ray compare RUN_A RUN_B --out DIR`.

Why: a sim-to-sim is only read by comparison (the same ONNX policy on MuJoCo and on Isaac Lab, or a
checkpoint before and after a change). Any folder `write_outputs` wrote (`sonic-ray eval`,
`sonic-ray sim2sim`) is an input: its metrics.json (summary) and clips.parquet (one row per clip
and encoder). The output folder gets compare.json and one self-contained report.html (plots as
base64 PNG, no scripts): the summary rows of both with B - A, and per clip (matched on clip name and
encoder) success, completed share and MPJPE global (mm) of both with B - A. A clip's MPJPE is over
the frames it tracked (up to a failure); the summary's errors are over successful clips only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from sonic_ray.eval.metrics import SUMMARY_KEYS
from sonic_ray.eval.report import (
    CLIPS_FILE,
    METRICS_FILE,
    REPORT_FILE,
    _clean,
    _finite,
    _fmt,
    _png_b64,
    write_metrics_json,
)
from sonic_ray.utils.io import atomic_write

COMPARE_FILE = "compare.json"
SUMMARY_ROWS = (*SUMMARY_KEYS, "num_success")
CLIP_KEYS = ("success", "completed", "mpjpe_g_mm")


class CompareError(ValueError):
    """An input folder that is missing or is not an evaluation output (the message names it)."""


def load_run(path: str | Path) -> tuple[dict, list[dict]]:
    """(metrics.json, clips.parquet rows) of an eval/sim2sim output folder."""
    import pyarrow.parquet as pq

    d = Path(path)
    if not d.is_dir():
        raise CompareError(f"{d}: no such folder")
    missing = [f for f in (METRICS_FILE, CLIPS_FILE) if not (d / f).is_file()]
    if missing:
        raise CompareError(
            f"{d}: not an eval/sim2sim output folder (no {' or '.join(missing)}; "
            "`sonic-ray eval` and `sonic-ray sim2sim --out` write them)"
        )
    try:
        metrics = json.loads((d / METRICS_FILE).read_text())
        rows = pq.read_table(d / CLIPS_FILE).to_pylist()
    except (ValueError, OSError) as e:  # JSONDecodeError and pyarrow's ArrowInvalid are ValueErrors
        raise CompareError(f"{d}: unreadable {METRICS_FILE}/{CLIPS_FILE}: {e}") from None
    if not isinstance(metrics, dict) or (rows and not {"clip", *CLIP_KEYS} <= set(rows[0])):
        raise CompareError(f"{d}: {METRICS_FILE}/{CLIPS_FILE} lack the clip, success, completed columns")
    return metrics, rows


def _diff(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a is None or b is None else int(b) - int(a)
    return b - a if _finite(a) and _finite(b) else None


def compare_runs(a: tuple[dict, list[dict]], b: tuple[dict, list[dict]], labels: Sequence[str]) -> dict:
    """The comparison (compare.json's content): labels, summary rows {key: {a, b, diff}} and per
    clip rows {clip, encoder, <key>_a, <key>_b, <key>_diff, failure_a, failure_b}, diff = B - A."""
    (ma, ra), (mb, rb) = a, b
    summary = {k: {"a": ma.get(k), "b": mb.get(k), "diff": _diff(ma.get(k), mb.get(k))} for k in SUMMARY_ROWS}
    by_a = {(str(r["clip"]), str(r.get("encoder", "g1"))): r for r in ra}
    by_b = {(str(r["clip"]), str(r.get("encoder", "g1"))): r for r in rb}
    clips = []
    for key in sorted(by_a.keys() | by_b.keys()):
        x, y = by_a.get(key, {}), by_b.get(key, {})
        row = {"clip": key[0], "encoder": key[1]}
        for k in CLIP_KEYS:
            row[f"{k}_a"], row[f"{k}_b"] = x.get(k), y.get(k)
            row[f"{k}_diff"] = _diff(x.get(k), y.get(k))
        row["failure_a"], row["failure_b"] = x.get("failure"), y.get("failure")
        clips.append(row)
    return {"labels": list(labels), "summary": summary, "clips": clips}


def _plot(result: dict) -> str:
    """Base64 PNG: per clip MPJPE global and completed share, A (x) against B (y), diagonal y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    la, lb = result["labels"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, key, unit in ((axes[0], "mpjpe_g_mm", "MPJPE global (mm)"), (axes[1], "completed", "completed")):
        pts = [
            (float(r[f"{key}_a"]), float(r[f"{key}_b"]), bool(r["success_a"]) and bool(r["success_b"]))
            for r in result["clips"]
            if _finite(r[f"{key}_a"]) and _finite(r[f"{key}_b"])
        ]
        if pts:
            xs, ys, ok = zip(*pts)
            ax.scatter(xs, ys, c=["tab:blue" if o else "tab:red" for o in ok], s=18)
            hi = max(max(xs), max(ys)) * 1.05 or 1.0
            ax.plot([0, hi], [0, hi], color="0.6", lw=1)
        ax.set_xlabel(f"{unit}: {la}")
        ax.set_ylabel(f"{unit}: {lb}")
        ax.set_title(f"{unit} per clip (red: failed on either)", fontsize=9)
    out = _png_b64(fig)
    plt.close(fig)
    return out


def render_compare(result: dict, *, title: str, sources: Sequence[str]) -> str:
    la, lb = (html.escape(x) for x in result["labels"])
    summ = "".join(
        f"<tr><td>{k}</td><td>{_fmt(v['a'])}</td><td>{_fmt(v['b'])}</td><td>{_fmt(v['diff'])}</td></tr>"
        for k, v in result["summary"].items()
    )
    sides = (("a", la), ("b", lb), ("diff", "B-A"))
    cols = [f"{k}_{side}" for k in CLIP_KEYS for side, _ in sides]
    head = "<tr><th rowspan=2>clip</th><th rowspan=2>encoder</th>" + "".join(
        f"<th colspan=3>{name}</th>" for name in ("success", "completed share", "MPJPE global (mm)")
    )
    sub = "".join(f"<th>{lab}</th>" for _ in CLIP_KEYS for _, lab in sides)
    head += f"<th colspan=2>failure</th></tr><tr>{sub}"
    head += f"<th>{la}</th><th>{lb}</th></tr>"
    body = "".join(
        f"<tr><td>{_fmt(r['clip'])}</td><td>{_fmt(r['encoder'])}</td>"
        + "".join(f"<td>{_fmt(r[k])}</td>" for k in cols)
        + f"<td>{_fmt(r['failure_a'])}</td><td>{_fmt(r['failure_b'])}</td></tr>"
        for r in result["clips"]
    )
    src = "".join(f"<li>{lab}: <code>{html.escape(str(s))}</code></li>" for lab, s in zip((la, lb), sources))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
th{{text-align:center}}</style>
</head><body><h1>{html.escape(title)}</h1><ul>{src}</ul>
<p>A = {la}, B = {lb}; the difference column is B - A. Summary errors are means over successful
clips (mm; vel_err m/s, acc_err m/s&sup2;); a clip's MPJPE is over the frames it tracked.</p>
<h2>Summary</h2><table><tr><th>metric</th><th>{la}</th><th>{lb}</th><th>B-A</th></tr>{summ}</table>
<h2>Per clip</h2><img src='data:image/png;base64,{_plot(result)}'>
<table>{head}{body}</table></body></html>
"""


def write_compare(
    run_a: str | Path, run_b: str | Path, out_dir: str | Path, *, labels: Sequence[str] | None = None
) -> dict:
    """Read two eval/sim2sim folders, write out_dir/compare.json and out_dir/report.html (each atomic:
    a temp file renamed into place). Returns compare.json's content."""
    if labels is not None and len(labels) != 2:
        raise CompareError(f"--labels takes two names, got {list(labels)}")
    a, b = load_run(run_a), load_run(run_b)
    labels = list(labels or (_label(a[0], run_a), _label(b[0], run_b)))
    if labels[0] == labels[1]:
        labels = [f"A: {labels[0]}", f"B: {labels[1]}"]
    result = compare_runs(a, b, labels)
    result["sources"] = [str(run_a), str(run_b)]
    out = Path(out_dir)
    title = f"sonic-ray compare: {labels[0]} vs {labels[1]}"
    page = render_compare(result, title=title, sources=result["sources"])
    atomic_write(out / REPORT_FILE, page.encode())
    write_metrics_json(out / COMPARE_FILE, result)
    return _clean(result)


def _label(metrics: dict, path) -> str:
    """A sim2sim folder's backend (e.g. 'isaaclab'), else the folder's name."""
    s2s = metrics.get("sim2sim")
    if isinstance(s2s, dict) and s2s.get("backend"):
        return str(s2s["backend"])
    return Path(path).name or str(path)
