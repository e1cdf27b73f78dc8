"""Evaluation outputs on disk: metrics.json, clips.parquet, report.html (every write atomic).

report.html is one self-contained page (plots embedded as base64 PNG) that links the videos of the
worst clips, which sit beside it in videos/<clip>.mp4.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sonic_ray.eval.metrics import SUMMARY_KEYS, summarize
from sonic_ray.eval.runner import worst_first_key
from sonic_ray.utils.io import atomic_write

METRICS_FILE = "metrics.json"
CLIPS_FILE = "clips.parquet"
REPORT_FILE = "report.html"
VIDEOS_DIR = "videos"
WORST_SHOWN = 20


def video_name(clip: str, encoder: str, *, several_encoders: bool) -> str:
    """File name of a clip's video: `<clip>.mp4` (`<clip>__<encoder>.mp4` with several encoders),
    characters outside [A-Za-z0-9._-] replaced by '_'."""
    stem = clip if not several_encoders else f"{clip}__{encoder}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") + ".mp4"


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_metrics_json(path: Path, metrics: dict) -> None:
    atomic_write(path, (json.dumps(_clean(metrics), indent=2, sort_keys=True) + "\n").encode())


def write_clips_parquet(path: Path, rows: Sequence[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([dict(r) for r in rows]) if rows else pa.table({})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _png_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(rows: Sequence[dict], worst: Sequence[dict]) -> dict[str, str]:
    """{title: base64 PNG}: error distribution and the `worst` clips (worst first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for ok, label, color in ((True, "succeeded", "tab:blue"), (False, "failed", "tab:red")):
        vals = [r["mpjpe_l_mm"] for r in rows if bool(r["success"]) == ok and _finite(r.get("mpjpe_l_mm"))]
        if vals:
            ax.hist(
                vals, bins=min(30, max(5, len(vals))), alpha=0.6, label=f"{label} ({len(vals)})", color=color
            )
    ax.set_xlabel("MPJPE local (mm)")
    ax.set_ylabel("clips")
    ax.legend()
    ax.set_title("error distribution")
    out["Error distribution (MPJPE local, per clip)"] = _png_b64(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 0.3 * len(worst) + 1.2))
    labels = [f"{r['clip']} [{r['encoder']}]" for r in worst]
    vals = [r["mpjpe_g_mm"] if _finite(r.get("mpjpe_g_mm")) else 0.0 for r in worst]
    ax.barh(range(len(worst)), vals, color=["tab:red" if not r["success"] else "tab:blue" for r in worst])
    ax.set_yticks(range(len(worst)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("MPJPE global (mm); red: failed")
    ax.set_title(f"worst {len(worst)} clips (failures first, earliest failure first)")
    out["Worst clips"] = _png_b64(fig)
    plt.close(fig)
    return out


def _finite(v) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return html.escape("-" if v is None else str(v))


def viewer_section(rows: Sequence[dict], view_command: str | None) -> str:
    """'Open a clip in the viewer': the viewer is a separate server, so the page gives the command
    that opens a clip (`view_command` with `{clip}` for the shell-quoted clip name), for any clip."""
    if not view_command:
        return ""
    names = sorted({str(r["clip"]) for r in rows})
    cmds = {n: view_command.format(clip=shlex.quote(n)) for n in names}
    opts = "".join(f"<option>{html.escape(n)}</option>" for n in names)
    first = html.escape(cmds[names[0]]) if names else ""
    script_json = json.dumps(cmds).replace("</", "<\\/")  # no "</script>" inside the script
    return f"""<h2 id="viewer">Open a clip in the viewer</h2>
<p>The viewer is a separate server (<code>sonic-ray view</code>): pick a clip, run the command, open the
URL it prints.</p><select id="view-clip" onchange="showView()">{opts}</select>
<pre id="view-cmd">{first}</pre>
<script>const VIEW = {script_json};
function showView() {{
  document.getElementById('view-cmd').textContent = VIEW[document.getElementById('view-clip').value]; }}
function viewClip(c) {{ document.getElementById('view-clip').value = c; showView(); }}</script>
"""


def render_report(
    metrics: dict,
    rows: Sequence[dict],
    videos: dict[str, str],
    *,
    title: str,
    view_command: str | None = None,
) -> str:
    """The report page. videos: {video file name relative to the page: caption}; view_command: the
    `sonic-ray view` command line with `{clip}` where the clip name goes (None: no viewer section)."""
    keys = [*SUMMARY_KEYS, "num_success"]
    encs = list(metrics.get("per_encoder", {}))
    head = "".join(f"<th>{html.escape(e)}</th>" for e in encs)
    body = "".join(
        f"<tr><td>{k}</td><td>{_fmt(metrics.get(k))}</td>"
        + "".join(f"<td>{_fmt(metrics['per_encoder'][e].get(k))}</td>" for e in encs)
        + "</tr>"
        for k in keys
    )
    worst = sorted(rows, key=worst_first_key)[:WORST_SHOWN]
    plots = "".join(
        f"<h2>{html.escape(t)}</h2><img src='data:image/png;base64,{b}'>"
        for t, b in _plots(rows, worst).items()
    )
    cols = [
        "clip",
        "encoder",
        "success",
        "success_global",
        "completed",
        "num_frames",
        "mpjpe_g_mm",
        "max_err_g_mm",
        "mpjpe_l_mm",
        "mpjpe_pa_mm",
        "err_vr3_mm",
        "err_feet_mm",
    ]

    def view(r) -> str:
        clip = html.escape(json.dumps(str(r["clip"])))
        return f"<td><a href='#viewer' onclick='viewClip({clip})'>view</a></td>" if view_command else ""

    wt = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + view(r) + "</tr>" for r in worst
    )
    vids = (
        "".join(
            f"<figure><video controls muted loop preload='metadata' src='{html.escape(src)}' "
            "width='480'></video>"
            f"<figcaption>{html.escape(cap)} (<a "
            f"href='{html.escape(src)}'>{html.escape(src)}</a>)</figcaption></figure>"
            for src, cap in videos.items()
        )
        or "<p>No videos (run with --render K).</p>"
    )
    meta = "".join(
        f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>"
        for k, v in metrics.items()
        if k not in keys and k != "per_encoder" and not isinstance(v, dict | list)
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:0.5em}}</style></head><body>
<h1>{html.escape(title)}</h1><ul>{meta}</ul>
<p>Success: no evaluation termination before the clip's end. Errors are means over successful clips
(mm; vel_err m/s, acc_err m/s&sup2;).</p>
<h2>Summary</h2><table><tr><th>metric</th><th>all</th>{head}</tr>{body}</table>
{plots}
<h2>Worst clips</h2><table><tr>{"".join(f"<th>{c}</th>" for c in cols)}</tr>{wt}</table>
<h2>Videos of the worst clips</h2><p>Blue: the robot; translucent orange: the reference.</p>{vids}
{viewer_section(rows, view_command)}</body></html>
"""


def write_outputs(
    out_dir: str | Path,
    rows: Sequence[dict],
    *,
    meta: dict | None = None,
    videos: dict[str, str] | None = None,
    title: str = "sonic-ray evaluation",
    view_command: str | None = None,
) -> dict:
    """metrics.json (summary + meta), clips.parquet (one row per clip and encoder), report.html.
    `videos` {file name under videos/: caption} must already be written; `view_command` see
    `render_report`. Returns the metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {**summarize(list(rows)), **(meta or {})}
    write_clips_parquet(out / CLIPS_FILE, rows)
    links = {f"{VIDEOS_DIR}/{name}": cap for name, cap in (videos or {}).items()}
    page = render_report(metrics, rows, links, title=title, view_command=view_command)
    atomic_write(out / REPORT_FILE, page.encode())
    write_metrics_json(out / METRICS_FILE, metrics)  # last: its presence means the directory is complete
    return metrics
