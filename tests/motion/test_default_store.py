import json

import pytest

from sonic_ray.cli import main
from sonic_ray.motion.default_store import ensure_synth_store
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.motion.synth import SYNTH_CLIPS


@pytest.mark.slow
def test_synth_cli_writes_a_loadable_store(tmp_path, capsys):
    out = tmp_path / "synth.parquet"
    assert main(["motions", "synth", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_clips"] == len(SYNTH_CLIPS) >= 12
    mtime = out.stat().st_mtime_ns
    assert ensure_synth_store(out) == out and out.stat().st_mtime_ns == mtime  # reused, not rebuilt
    lib = MotionLib(out, control_fps=50.0)
    assert lib.num_clips == len(SYNTH_CLIPS)
    assert float(lib.clip_length_s.min()) >= 4.0
