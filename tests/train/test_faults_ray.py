"""Faults on a real local Ray: the local instance listens on loopback only, and SIGTERM (preemption,
`ray job stop`) makes `sonic-ray train` finish the iteration in flight, save it and exit 0, and
`resume=` continue from there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@pytest.mark.slow
@pytest.mark.ray
def test_the_local_ray_instance_listens_on_loopback_only(monkeypatch):
    import psutil
    import ray

    from sonic_ray.config import load_config
    from sonic_ray.train.driver import init_ray

    for var in ("RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        monkeypatch.delenv(var, raising=False)
    assert not ray.is_initialized()
    init_ray(load_config(["ray.include_dashboard=true"]))
    try:
        ray.get(ray.remote(lambda: 1).remote())  # a worker process is up too
        time.sleep(2.0)  # agents and exporters bind in the background
        me = psutil.Process()
        ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
        listening = [
            (c.laddr.ip, c.laddr.port, c.pid)
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in ours
        ]
        assert len(listening) >= 4, listening  # GCS, raylet, agents, metrics exporters at least
        exposed = [
            (ip, port, psutil.Process(pid).name()) for ip, port, pid in listening if ip not in LOOPBACK
        ]
        assert not exposed, f"listening beyond loopback: {exposed}"
        assert ray.util.get_node_ip_address() == "127.0.0.1"
    finally:
        ray.shutdown()


def _train(run_dir: Path, store: Path, *overrides: str) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "sonic_ray",
        "train",
        "+exp=smoke",
        "logging.wandb_mode=disabled",
        f"motions.store={store}",
        f"run_dir={run_dir}",
        "env.num_envs=4",
        "algo.num_steps_per_env=4",
        "algo.save_interval=1000",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        argv, cwd=run_dir.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(1200)
def test_sigterm_saves_the_iteration_in_flight_and_resume_continues(tmp_path):
    from sonic_ray.config import load_config
    from sonic_ray.motion.default_store import ensure_synth_store
    from sonic_ray.train.checkpoint import list_checkpoints

    store = ensure_synth_store(REPO / load_config([]).motions.synth_cache)
    run_dir = tmp_path / "run"
    proc = _train(run_dir, store, "algo.max_iterations=1000")
    deadline = time.monotonic() + 900
    while len(_rows(run_dir)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)  # what a spot preemption, Kubernetes eviction or `ray job stop` send
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Stack (most recent call first)" not in err, err
    done = len(_rows(run_dir))
    said = f"stopped by SIGTERM after iteration {done}, checkpoint saved; continue with resume={run_dir}"
    assert said in err
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == [f"iter_{done:06d}"]  # nothing lost

    resumed = _train(run_dir, store, f"resume={run_dir}", f"algo.max_iterations={done + 2}")
    out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert [r["iteration"] for r in _rows(run_dir)] == list(range(1, done + 3))
    assert f"iteration={done + 2}" in out


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(1200)
def test_resume_with_other_terminations_starts_fresh_episodes_and_says_why(tmp_path):
    """A resume that changes the MDP (here: SONIC's foot_pos termination added, a curriculum step)
    restores the policy and learner; the env runners' saved episodes do not fit the new terms, so
    they start fresh ones and the driver says why, instead of the runner dying on the restore and
    coming back with an untrained module."""
    from sonic_ray.config import load_config
    from sonic_ray.motion.default_store import ensure_synth_store

    store = ensure_synth_store(REPO / load_config([]).motions.synth_cache)
    run_dir = tmp_path / "run"
    first = _train(run_dir, store, "algo.max_iterations=1")
    _, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    foot = "+env.terminations.foot_pos={params: {threshold: 0.2}}"
    resumed = _train(run_dir, store, f"resume={run_dir}", "algo.max_iterations=3", foot)
    out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    said = "termination terms differ from the saved state's: added ['foot_pos'], removed []"
    assert said in out + err and "starts fresh episodes" in out + err
    assert "RuntimeError" not in err and "is unavailable" not in err, err
    rows = _rows(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    # every resumed iteration sampled with the restored policy: an untrained module's rollouts
    # would show as a KL of order 1-10 against the learner's
    assert all(r["ppo/approx_kl"] < 0.5 for r in rows[1:]), [r["ppo/approx_kl"] for r in rows]
