"""`sonic-ray bench crossnode`: rollout bytes that cross between nodes per iteration, with and without
`ray.colocate`, on a running multi-node cluster (e.g. two `ray start`s on 127.0.0.1, docs/SCALING.md).

Each node must advertise one `sonic_runner` and one `sonic_learner` slot (`ray start --resources`);
every env runner asks for a `sonic_runner` slot and every learner for a `sonic_learner` slot, so each
node holds one runner and one learner (per-node custom resource slots). Two runs of `iterations`
Trainer steps, 2 runners and 2 learners (DDP), each with `ray.rollout_format`: colocate=true (each
learner takes the whole rollouts of the runner on its node) and colocate=false (every rollout split
in half across the learners). Reported per run: the learners' `learner/received_bytes` and
`learner/cross_node_bytes` per iteration (summed over learners, median over iterations), and the
ratio of cross-node bytes with colocation to without.
"""

from __future__ import annotations

import json
import statistics
import tempfile


def _run(
    address: str,
    colocate: bool,
    *,
    exp: str,
    num_envs: int,
    num_steps: int,
    iterations: int,
    rollout_format: str,
) -> dict:
    from sonic_ray.config import load_config
    from sonic_ray.train.driver import Trainer

    cfg = load_config(
        [
            f"+exp={exp}",
            "device=cpu",
            "sim.backend=mujoco",
            f"env.num_envs={num_envs}",
            f"algo.num_steps_per_env={num_steps}",
            "logging.wandb_mode=disabled",
            "logging.progress=false",
            "callbacks.plot_learning_curves=false",
            "callbacks.eval_interval=0",
            f"ray.address={address}",
            "ray.num_env_runners=2",
            "ray.num_learners=2",
            "ray.cpus_per_env_runner=1",
            "ray.cpus_per_learner=1",
            "ray.learner_threads=1",
            "+ray.custom_resources_per_env_runner.sonic_runner=1",
            "+ray.custom_resources_per_learner.sonic_learner=1",
            f"ray.colocate={str(colocate).lower()}",
            f"ray.rollout_format={rollout_format}",
        ]
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="sonic-crossnode-") as run_dir:
        tr = Trainer(cfg, run_dir=run_dir)
        try:
            for _ in range(iterations):
                m = tr.step()
                rows.append(
                    {
                        k: m[k]
                        for k in ("learner/received_bytes", "learner/cross_node_bytes", "perf/env_steps")
                    }
                )
        finally:
            tr.close()
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {
        "colocate": colocate,
        "iterations": iterations,
        "received_bytes_per_iteration": med["learner/received_bytes"],
        "cross_node_bytes_per_iteration": med["learner/cross_node_bytes"],
        "env_steps_per_iteration": med["perf/env_steps"],
        "rows": rows,
    }


def run(
    *,
    address: str = "auto",
    exp: str = "smoke",
    num_envs: int = 16,
    num_steps: int = 24,
    iterations: int = 3,
    rollout_format: str = "compact",
    **_,
) -> dict:
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        kw = dict(
            exp=exp,
            num_envs=num_envs,
            num_steps=num_steps,
            iterations=iterations,
            rollout_format=rollout_format,
        )
        with_c = _run(address, True, **kw)
        without = _run(address, False, **kw)
    finally:
        ray.shutdown()
    out = {
        "bench": "crossnode",
        "meta": {"address": address, "nodes": len(nodes), **kw},
        "colocated": with_c,
        "split": without,
    }
    base = without["cross_node_bytes_per_iteration"]
    out["colocated_over_split"] = with_c["cross_node_bytes_per_iteration"] / base if base else None
    return out


def _main(args) -> int:
    out = run(
        address=args.address,
        exp=args.exp,
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        iterations=args.iterations,
        rollout_format=args.rollout_format,
    )
    print(json.dumps(out, indent=2))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "crossnode", help="rollout bytes crossing nodes per iteration, colocated vs split"
    )
    p.add_argument("--address", default="auto", help="the running cluster (head's address)")
    p.add_argument("--exp", default="smoke")
    p.add_argument("--num-envs", type=int, default=16, help="N envs per runner")
    p.add_argument("--num-steps", type=int, default=24)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--rollout-format", default="compact", choices=("compact", "full"))
    p.add_argument("--json", action="store_true", help="(always JSON)")
    p.set_defaults(func=_main)
