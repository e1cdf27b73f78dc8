"""Output files of an evaluation: metrics.json, clips.parquet, report.html; video file names."""

import base64
import json
import math

import pyarrow.parquet as pq

from sonic_ray.eval.metrics import ERROR_KEYS
from sonic_ray.eval.report import video_name, write_outputs


def _row(clip, idx, ok, g, enc="g1"):
    row = {k: g for k in ERROR_KEYS}
    row.update(
        success=ok,
        clip=clip,
        clip_index=idx,
        encoder=enc,
        num_frames=50,
        clip_frames=50 if ok else 80,
        completed=1.0 if ok else 0.625,
        vel_err=math.nan,
    )
    return row


def _nan_to_none(v):
    if isinstance(v, dict):
        return {k: _nan_to_none(x) for k, x in v.items()}
    return None if isinstance(v, float) and math.isnan(v) else v


def test_write_outputs(tmp_path):
    rows = [_row("walk", 0, True, 20.0), _row("jump/high", 1, False, 300.0), _row("run", 2, True, 40.0)]
    (tmp_path / "out" / "videos").mkdir(parents=True)
    (tmp_path / "out" / "videos" / "jump_high.mp4").write_bytes(b"\x00")
    m = write_outputs(
        tmp_path / "out", rows, meta={"iteration": 7}, videos={"jump_high.mp4": "jump/high failed"}
    )
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk == _nan_to_none(m)  # NaN written as null, per-encoder results included
    assert on_disk["success_rate"] == 2 / 3 and on_disk["mpjpe_g_mm"] == 30.0 and on_disk["iteration"] == 7
    assert on_disk["per_encoder"]["g1"]["num_clips"] == 3
    table = pq.read_table(tmp_path / "out" / "clips.parquet").to_pylist()
    assert [r["clip"] for r in table] == ["walk", "jump/high", "run"] and table[1]["success"] is False
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<video" in page and "src='videos/jump_high.mp4'" in page and "jump/high failed" in page
    images = page.split("data:image/png;base64,")[1:]
    assert len(images) == 2  # error histogram, worst clips
    assert base64.b64decode(images[0].split("'")[0])[:4] == b"\x89PNG"
    assert not list((tmp_path / "out").glob(".*tmp*"))  # atomic writes leave no temp files


def test_video_names_are_safe_file_names():
    assert video_name("walk", "g1", several_encoders=False) == "walk.mp4"
    assert video_name("a/b c", "smpl", several_encoders=True) == "a_b_c__smpl.mp4"
    assert video_name("../x", "g1", several_encoders=False) == "_x.mp4"
