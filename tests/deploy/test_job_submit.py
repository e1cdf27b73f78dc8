"""`ray job submit` of the smoke training to a real head with token auth, gauges read while it runs.

The head is started from the docs' `ray start --head` command and the job with the docs'
`ray job submit` command, verbatim (deploy/ray/README.md, blocks marked `<!-- tested: ... -->`).
"""

import re
import subprocess
import time

import pytest
from doc_blocks import REPO, doc_block
from local_head import LocalHead

from sonic_ray.cluster import EVAL_GAUGES, GAUGES, PROMETHEUS_PREFIX, RUNNER_GAUGES
from sonic_ray.config import load_config
from sonic_ray.train.checkpoint import list_checkpoints, load_checkpoint
from sonic_ray.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.ray]

RUN_NAME = "smoke-job"  # the run dir's name in the docs' submit command
ITERATIONS = 20  # algo.max_iterations in the docs' submit command


def _gauge_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(PROMETHEUS_PREFIX + "sonic_")]


def _seen(lines: list[str], name: str, runner: str) -> bool:
    return any(
        line.startswith(PROMETHEUS_PREFIX + name + "{")
        and f'run="{RUN_NAME}"' in line
        and f'runner="{runner}"' in line
        for line in lines
    )


@pytest.fixture
def head():
    h = LocalHead(doc_block("head"))
    try:
        yield h.start()
    finally:
        leftovers = h.stop()
        assert not leftovers, f"processes of the head outlived its stop: {leftovers}"


@pytest.fixture
def motion_store():
    from sonic_ray.motion.default_store import ensure_synth_store

    return ensure_synth_store(REPO / load_config([]).motions.synth_cache)


def test_job_submit_trains_checkpoints_and_exports_gauges(head, motion_store, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    # Token authentication is on: the Jobs API refuses a client without the token.
    assert head.jobs_api_status(with_token=False) == 401
    submit = doc_block("submit")
    assert submit.startswith("ray job submit ") and " -- sonic-ray train " in submit
    env = {**head.client_env(), "MOTION_STORE": str(motion_store), "RUN_ROOT": str(tmp_path)}
    t0 = time.monotonic()
    log = open(tmp_path / "submit.log", "w")
    proc = subprocess.Popen(["bash", "-c", submit], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = JobSubmissionClient(head.dashboard_url, headers=head.auth_header)
    running_lines: list[str] = []
    first_seen = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < 500:
            jobs = client.list_jobs()
            if jobs and jobs[0].status == JobStatus.RUNNING:
                lines = _gauge_lines(head.scrape())
                if lines and first_seen is None:
                    first_seen = time.monotonic() - t0
                running_lines += lines
            time.sleep(1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    wall = time.monotonic() - t0
    out = (tmp_path / "submit.log").read_text()
    assert proc.returncode == 0, out[-4000:]
    (job,) = client.list_jobs()
    assert job.status == JobStatus.SUCCEEDED and job.entrypoint.startswith("sonic-ray train +exp=smoke")
    assert "Connected to Ray cluster" in client.get_job_logs(job.submission_id)  # plain ray.init() joined

    run_dir = tmp_path / RUN_NAME
    assert list_checkpoints(run_dir / "checkpoints")[-1].name == f"iter_{ITERATIONS:06d}"
    assert load_checkpoint(run_dir)["iteration"] == ITERATIONS
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, ITERATIONS + 1))

    # The gauges were in the head's Prometheus export while the job ran, labelled by run and runner.
    assert running_lines, f"no ray_sonic_* line while the job ran ({wall:.0f} s): {out[-2000:]}"
    for name in ("sonic_env_steps_per_s", "sonic_reward", "sonic_learner_time_s", "sonic_iteration"):
        assert _seen(running_lines, name, "all"), name
    for name in ("sonic_env_steps_per_s", "sonic_reward", "sonic_sampler_entropy"):
        assert _seen(running_lines, name, "1"), name
    final = _gauge_lines(head.scrape())
    for name in set(GAUGES) - set(EVAL_GAUGES):  # every driver gauge by the end (the smoke job runs no
        assert _seen(running_lines + final, name, "all"), (
            name
        )  # evaluation; episode figures need an episode end)
    for name in RUNNER_GAUGES:
        assert _seen(running_lines + final, name, "1"), name
    it = [line for line in final if line.startswith(PROMETHEUS_PREFIX + "sonic_iteration{")]
    assert it and float(re.split(r"\s+", it[0])[-1]) == ITERATIONS
    print(f"\njob wall {wall:.1f} s; first gauge line after {first_seen:.1f} s; gauge lines while running:")
    for line in sorted(set(running_lines[-len(GAUGES) - len(RUNNER_GAUGES) :])):
        print(" ", line)
