"""`sonic-ray bench faults`: inject each fault into a real run and report how it recovered.

Under `faults`, one entry per fault with `recovered` (the run or store ended whole and went on),
`iterations_lost` (iterations done before the fault that the run's record does not keep, or whose
samples were not learned from) and `data_lost` (a checkpoint, metrics row or clip that should be
there and is not), plus `seconds` and what was seen:

- `runner_sigkill`: SIGKILL one of two env runners of a local run; later iterations sample on the
  survivor until RLlib's restart brings the second back.
- `node_loss`: a head and a second node on loopback (`bench/cluster.py`); one runner placed on the
  second node through a custom resource; its raylet SIGKILLed mid-run; the runner comes back on
  the head; the node rejoins and the next run places a runner on it again.
- `driver_sigterm`: SIGTERM to `sonic-ray train` (preemption, `ray job stop`); it finishes the
  iteration in flight, saves it, exits 0, and `resume=` continues the iteration count.
- `corrupt_checkpoint`: the latest of two checkpoints corrupted; `resume=`'s picker takes the
  previous one and says so (no Ray: the checkpoint files and the picker `Trainer` uses).
- `nan_loss`: a NaN loss injected into iteration 2's update (`SONIC_RAY_INJECT_NAN_LOSS`); its steps
  are skipped, weights unchanged, training goes on (that iteration's samples are the loss).
- `concurrent_import`: two `sonic-ray motions import` processes into one store at once; both land.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FAULTS = (
    "runner_sigkill",
    "node_loss",
    "driver_sigterm",
    "corrupt_checkpoint",
    "nan_loss",
    "concurrent_import",
)
NEEDS_LOCAL_RAY = ("runner_sigkill", "nan_loss")
# How long the node-loss run may take to bring the lost runner back on the head (a new worker
# process builds its env: ~70 s on a loaded 2-core machine, ~190 s under load 10).
REPLACE_TIMEOUT_S = 600.0


def _overrides(run_dir: Path, store: Path, *extra: str) -> list[str]:
    return [
        "+exp=smoke",
        "logging.wandb_mode=disabled",
        "logging.progress=false",
        "callbacks.plot_learning_curves=false",
        "env.num_envs=8",
        "algo.num_steps_per_env=6",
        f"motions.store={store}",
        f"run_dir={run_dir}",
        *extra,
    ]


def _trainer(run_dir: Path, store: Path, *extra: str):
    from sonic_ray.config import load_config
    from sonic_ray.train.driver import Trainer

    return Trainer(load_config(_overrides(run_dir, store, *extra)))


def _runner_nodes(trainer) -> list[str]:
    import ray

    return trainer.algo.env_runner_group.foreach_env_runner(
        lambda r: ray.get_runtime_context().get_node_id(), local_env_runner=False
    )


def _weights(trainer) -> dict:
    """The trained parameters (the observation normalisers' running stats follow the data, not the loss)."""
    state = trainer.algo.learner_group.get_state(components="learner/rl_module")
    return {k: v for k, v in state["learner"]["rl_module"]["default_policy"].items() if "normalizer" not in k}


def _rows(run_dir: Path) -> list[dict]:
    from sonic_ray.train.metrics import read_metrics

    path = run_dir / "metrics.jsonl"
    return [r for r in read_metrics(path) if "iteration" in r] if path.is_file() else []


def _contiguous(rows: list[dict], last: int) -> bool:
    return [r["iteration"] for r in rows] == list(range(1, last + 1))


# ---- faults ------------------------------------------------------------------------------------
def runner_sigkill(work: Path, store: Path) -> dict:
    run_dir = work / "runner_sigkill"
    tr = _trainer(run_dir, store, "ray.num_env_runners=2", "algo.max_iterations=30")
    try:
        tr.step()
        pids = tr.algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False)
        os.kill(pids[0], signal.SIGKILL)
        rows = [tr.step()]
        while rows[-1].get("perf/num_healthy_runners", 0) < 2 and len(rows) < 15:
            rows.append(tr.step())
        rows.append(tr.step())  # sampled by both runners after the restart
        tr.save()
    finally:
        tr.close()
    last = rows[-1]["iteration"]
    healthy = rows[-1].get("perf/num_healthy_runners", 0) == 2
    # The replacement runner is built with an untrained module: rollouts it sampled before the
    # restore synced the weights would show as a KL of order 1-10 against the learner's policy.
    kl = max(float(r.get("ppo/approx_kl", 0.0)) for r in rows)
    return {
        "recovered": healthy and all(r.get("perf/env_steps", 0) > 0 for r in rows) and kl < 0.5,
        "iterations_lost": 1 + len(rows) - len(_rows(run_dir)),
        "data_lost": not _contiguous(_rows(run_dir), last),
        "iterations_until_restarted": len(rows) - 1,
        "max_approx_kl_after_kill": kl,
    }


def node_loss(work: Path, store: Path) -> dict:
    """Head: 2 CPUs, `sonic_sim: 2`; second node: 1 CPU, `sonic_sim: 1`; two runners asking for
    `sonic_sim: 1` each. While the run places its runners an actor holds one of the head's
    `sonic_sim`, so one runner lands on each node; it is released before the second node's raylet
    is killed, so the lost runner's replacement fits on the head."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from sonic_ray.bench.cluster import LocalCluster

    extra = (
        "ray.num_env_runners=2",
        "+ray.custom_resources_per_env_runner.sonic_sim=1",
        "algo.max_iterations=30",
    )
    out: dict = {}
    cluster = LocalCluster(head_cpus=2, head_resources={"sonic_sim": 2}).start()
    try:
        head_id = cluster.nodes[0].node_id
        second = cluster.add_node("second", cpus=1, resources={"sonic_sim": 1})
        cluster.connect(log_to_driver=False, runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})

        @ray.remote(num_cpus=0, resources={"sonic_sim": 1})
        class Hold:
            def ping(self) -> int:
                return 1

        def hold():
            h = Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(head_id, soft=False)).remote()
            ray.get(h.ping.remote())
            return h

        holder = hold()
        run_dir = work / "node_loss"
        tr = _trainer(run_dir, store, *extra)
        try:
            rows = [tr.step()]
            placed = sorted(_runner_nodes(tr))
            ray.kill(holder)
            t0 = time.monotonic()
            cluster.kill_raylet(second)
            rows.append(tr.step())

            def replaced() -> bool:
                healthy = rows[-1].get("perf/num_healthy_runners", 0) == 2
                return healthy and sorted(_runner_nodes(tr)) == [head_id] * 2

            while not replaced() and time.monotonic() - t0 < REPLACE_TIMEOUT_S:
                rows.append(tr.step())
            out["seconds_to_replace"] = round(time.monotonic() - t0, 1)
            rows.append(tr.step())
            after = sorted(_runner_nodes(tr))
            tr.save()
        finally:
            tr.close()
        out["runner_nodes_before"] = sorted("head" if n == head_id else "second" for n in placed)
        out["runner_nodes_after"] = sorted("head" if n == head_id else "second" for n in after)
        out["iterations_until_replaced"] = len(rows) - 2

        rejoined = cluster.add_node("second-rejoined", cpus=1, resources={"sonic_sim": 1})
        holder = hold()
        tr = _trainer(work / "node_loss_next", store, *extra)
        try:
            tr.step()
            next_nodes = _runner_nodes(tr)
        finally:
            tr.close()
        ray.kill(holder)
        out["next_run_uses_rejoined_node"] = rejoined.node_id in next_nodes
    finally:
        cluster.disconnect()
        cluster.stop()
    last = rows[-1]["iteration"]
    sampled = all(r.get("perf/env_steps", 0) > 0 for r in rows)
    out["recovered"] = (
        second.node_id in placed and after == [head_id] * 2 and out["next_run_uses_rejoined_node"] and sampled
    )
    out["iterations_lost"] = last - len(_rows(run_dir))
    out["data_lost"] = not _contiguous(_rows(run_dir), last)
    return out


def driver_sigterm(work: Path, store: Path) -> dict:
    from sonic_ray.train.checkpoint import list_checkpoints

    run_dir = work / "driver_sigterm"
    base = [
        sys.executable,
        "-m",
        "sonic_ray",
        "train",
        *_overrides(run_dir, store, "algo.save_interval=1000"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        [*base, "algo.max_iterations=1000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 900
    while len(_rows(run_dir)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    done = len(_rows(run_dir))
    saved = [p.name for p in list_checkpoints(run_dir / "checkpoints")]
    resumed = subprocess.run(
        [*base, f"resume={run_dir}", f"algo.max_iterations={done + 2}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    rows = _rows(run_dir)
    return {
        "recovered": proc.returncode == 0 and resumed.returncode == 0 and len(rows) == done + 2,
        "iterations_lost": done - (int(saved[-1].removeprefix("iter_")) if saved else 0),
        "data_lost": not _contiguous(rows, done + 2),
        "exit_code": proc.returncode,
        "traceback": "Traceback" in err,
        "message": next((line for line in err.splitlines() if "stopped by SIGTERM" in line), None),
    }


def corrupt_checkpoint(work: Path, store: Path | None) -> dict:
    import torch

    from sonic_ray.train.checkpoint import STATE_FILE, load_for_resume, save_checkpoint

    root = work / "corrupt_checkpoint" / "checkpoints"
    for it in (1, 2):
        save_checkpoint(root, it, {"iteration": it, "weights": torch.full((64, 64), float(it))})
    state_file = root / "iter_000002" / STATE_FILE
    data = bytearray(state_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    state_file.write_bytes(bytes(data))
    said: list[str] = []
    ckpt, state = load_for_resume(root.parent, report=said.append)
    return {
        "recovered": ckpt.name == "iter_000001" and bool(said),
        "iterations_lost": 2 - int(state["iteration"]),
        "data_lost": not bool((state["weights"] == 1.0).all()),
        "message": said[0] if said else None,
    }


def nan_loss(work: Path, store: Path) -> dict:
    import torch

    from sonic_ray.ppo.update import NAN_LOSS_ENV, SKIPPED_NONFINITE

    os.environ[NAN_LOSS_ENV] = "2"  # the learner runs in this process (num_learners=0)
    try:
        run_dir = work / "nan_loss"
        tr = _trainer(run_dir, store, "algo.max_iterations=30")
        try:
            rows = [tr.step()]
            before = {k: torch.as_tensor(v).clone() for k, v in _weights(tr).items()}
            rows.append(tr.step())
            unchanged = all(torch.equal(torch.as_tensor(v), before[k]) for k, v in _weights(tr).items())
            rows += [tr.step(), tr.step()]
            finite = all(torch.isfinite(torch.as_tensor(v)).all() for v in _weights(tr).values())
            tr.save()
        finally:
            tr.close()
    finally:
        os.environ.pop(NAN_LOSS_ENV, None)
    skipped = [r.get(SKIPPED_NONFINITE) for r in rows]
    later = [r.get("loss/total", math.nan) for r in rows[2:]]
    return {
        "recovered": unchanged and finite and skipped[1] > 0 and all(math.isfinite(v) for v in later),
        "iterations_lost": sum(1 for s in skipped if s),
        "data_lost": not _contiguous(_rows(run_dir), 4),
        "skipped_steps_per_iteration": skipped,
        "weights_unchanged_by_skipped_update": unchanged,
        "loss_total_after": later,
    }


def concurrent_import(work: Path, store: Path) -> dict:
    from sonic_ray.motion.importers.writers import write_lafan_csv
    from sonic_ray.motion.store import read_store, store_info

    clips, _ = read_store(store)
    out_store = work / "concurrent_import" / "motions.parquet"
    dirs = [work / "concurrent_import" / who for who in ("a", "b")]
    names = []
    for i, clip in enumerate(clips):
        d = dirs[i % 2]
        d.mkdir(parents=True, exist_ok=True)
        write_lafan_csv(d / f"{'ab'[i % 2]}_{clip.name}.csv", clip)
        names.append(f"{'ab'[i % 2]}_{clip.name}")
    argv = [
        sys.executable,
        "-m",
        "sonic_ray",
        "motions",
        "import",
        "--out",
        str(out_store),
        "--fps",
        "50",
        "--json",
    ]
    procs = [
        subprocess.Popen([*argv, str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for d in dirs
    ]
    codes = [p.wait(timeout=600) for p in procs]
    info = store_info(out_store)
    got = info.get("num_clips")
    return {
        "recovered": codes == [0, 0] and got == len(names),
        "iterations_lost": 0,
        "data_lost": got != len(names),
        "clips_expected": len(names),
        "clips_in_store": got,
    }


# ---- driver ------------------------------------------------------------------------------------
def run(
    only: list[str] | None = None,
    *,
    num_cpus: int = 3,
    work_dir: str | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> dict:
    from sonic_ray.config import load_config
    from sonic_ray.motion.default_store import ensure_synth_store

    names = [n for n in FAULTS if not only or n in only]
    store = None  # the embedded synthetic set, built on first use by the faults that train or import
    if set(names) - {"corrupt_checkpoint"}:
        store = ensure_synth_store(Path(load_config([]).motions.synth_cache).resolve())
    work = Path(work_dir or tempfile.mkdtemp(prefix="sonic-faults-"))
    results: dict[str, dict] = {}
    local = [n for n in names if n in NEEDS_LOCAL_RAY]
    for name in [n for n in names if n not in local] + local:  # the local Ray last, started once
        if name in local:
            import ray

            from sonic_ray.cluster import start_local_ray

            if not ray.is_initialized():
                start_local_ray(
                    address="local",
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
                )
        log(f"bench faults: {name} ...")
        t0 = time.monotonic()
        try:
            results[name] = globals()[name](work, store)
        except Exception as e:  # a fault that could not even be injected is reported, not hidden
            results[name] = {
                "recovered": False,
                "iterations_lost": None,
                "data_lost": None,
                "error": f"{type(e).__name__}: {e}",
            }
        results[name]["seconds"] = round(time.monotonic() - t0, 1)
        log(f"bench faults: {name}: {json.dumps(results[name])}")
    if local:
        import ray

        ray.shutdown()
    return {"bench": "faults", "work_dir": str(work), "faults": {n: results[n] for n in names}}


def _main(args) -> int:
    unknown = sorted(set(args.only or ()) - set(FAULTS))
    if unknown:
        print(
            f"sonic-ray bench faults: unknown fault(s) {unknown}; expected some of {list(FAULTS)}",
            file=sys.stderr,
        )
        return 2
    # Ray's driver prints node and worker deaths to stdout (even with log_to_driver=False): while the
    # faults run, stdout goes to stderr, so that --json prints nothing but the report.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        out = run(args.only, num_cpus=args.num_cpus, work_dir=args.work_dir)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, r in out["faults"].items():
            print(
                f"{name:20s} recovered={r['recovered']} iterations_lost={r['iterations_lost']} "
                f"data_lost={r['data_lost']} ({r['seconds']} s)"
            )
    return 0 if all(r["recovered"] for r in out["faults"].values()) else 1


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "faults",
        help="inject each fault (runner/node loss, SIGTERM, corrupt "
        "checkpoint, NaN loss, concurrent import) and report recovery",
    )
    p.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only this fault (repeatable): {FAULTS}"
    )
    p.add_argument(
        "--num-cpus", type=int, default=3, help="CPUs of the local Ray for runner_sigkill and nan_loss"
    )
    p.add_argument(
        "--work-dir",
        default=None,
        help="where the runs, checkpoints and stores go (default: a "
        "new temporary folder, kept for inspection)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_main)
