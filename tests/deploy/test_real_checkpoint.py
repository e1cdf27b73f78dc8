"""A checkpoint from a real `sonic-ray train` run (local Ray, smoke preset) has the format the fast
fixture writes, exports, and its policy runs in sim2sim."""

import json
import subprocess
import sys

import pytest
from deploy_builders import config, short_store, state_layout, write_checkpoint

from sonic_ray.cli import main
from sonic_ray.train.checkpoint import load_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.ray]
RUN = [
    "+exp=smoke",
    "logging.wandb_mode=disabled",
    "env.num_envs=8",
    "algo.num_steps_per_env=6",
    "algo.max_iterations=1",
    "algo.save_interval=1",
]


def test_trained_checkpoint_format_export_and_sim2sim(tmp_path):
    store = short_store(tmp_path / "short.parquet")
    run = tmp_path / "run"
    # the real entry point, in its own process: it starts and stops its local Ray
    subprocess.run(
        [sys.executable, "-m", "sonic_ray", "train", *RUN, f"run_dir={run}", f"motions.store={store}"],
        check=True,
        timeout=600,
        capture_output=True,
    )
    real = load_checkpoint(run)
    fast_ckpt, _ = write_checkpoint(tmp_path / "fast", config(store, *RUN[2:]))
    assert state_layout(real) == state_layout(load_checkpoint(fast_ckpt))

    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "onnx")]) == 0
    files = json.loads((tmp_path / "onnx" / "export.json").read_text())["files"]
    assert len(files) == 7 and max(f["max_abs_diff"] for f in files) <= 1e-5
    assert (
        main(
            [
                "sim2sim",
                "--onnx",
                str(tmp_path / "onnx" / "policy_teleop.onnx"),
                "--motions",
                str(store),
                "--clips",
                "short1",
                "--out",
                str(tmp_path / "s2s"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "s2s" / "metrics.json").read_text())["num_clips"] == 1
