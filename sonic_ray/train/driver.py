"""`sonic-ray train`: the driver loop around the RLlib algorithm.

Owns the run directory (config.yaml, metrics.jsonl, learning_curves.png, checkpoints/), the live
view, W&B (driver only) and the Ray metrics gauges. Everything below it takes explicit arguments.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonic_ray.cluster import TrainingGauges, init_ray, run_name
from sonic_ray.config.compose import to_yaml
from sonic_ray.config.schema import SonicConfig
from sonic_ray.eval.pipeline import EVAL_DIR, log_metrics, plan_evaluation
from sonic_ray.motion.store import StoreError, store_info
from sonic_ray.train.checkpoint import list_checkpoints, load_checkpoint, load_for_resume, save_checkpoint
from sonic_ray.train.metrics import MetricsLog, plot_learning_curves, read_metrics
from sonic_ray.train.progress import ProgressView
from sonic_ray.train.wandb_log import WandbLogger
from sonic_ray.utils.rng import rng_state, set_rng_state

CHECKPOINT_FORMAT = 2  # 2: + env runner and sampler state
FINAL_EVAL_WAIT_S = 600.0  # at the end of training, how long to wait for evaluations still running


def default_run_dir(cfg: SonicConfig, prefix: str = "") -> Path:
    return Path("runs") / f"{prefix}{cfg.experiment}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_motion_store(cfg: SonicConfig) -> None:
    """Open `motions.store` (its footer only) so a missing or unreadable store fails before Ray starts.
    Empty: the embedded synthetic set, built on first use."""
    if cfg.motions.store:
        try:
            store_info(cfg.motions.store, clips=False)
        except StoreError as e:
            raise StoreError(f"motions.store: {e}") from None


def _run_dir_of(checkpoint: Path | None) -> Path | None:
    """The run a checkpoint belongs to: `<run>` for `<run>/checkpoints/iter_N`, else None."""
    if checkpoint is not None and checkpoint.parent.name == "checkpoints":
        return checkpoint.parents[1]
    return None


class StopRequest:
    """SIGTERM / SIGINT (preemption, `ray job stop`, Ctrl-C) turned into a request the training loop
    honours after the iteration in flight: it saves a checkpoint and returns. A second signal
    stops at once (KeyboardInterrupt). Only the main thread can own signal handlers; elsewhere
    (a Tune trial's actor) this does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._saved.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"sonic-ray train: {signal.Signals(signum).name} received; finishing the iteration in flight, "
            "then saving a checkpoint (send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )


class TrainingStopped(RuntimeError):
    """Training could not go on (a learner died, or an iteration failed); names the last checkpoint."""


class Trainer:
    """Builds the algorithm for a validated config and runs iterations with all run outputs."""

    def __init__(self, cfg: SonicConfig, *, run_dir: str | Path | None = None):
        # lazy, like every Ray import here: `sonic-ray --help` imports this module; Ray loads with a Trainer
        from sonic_ray.train.build import build_algorithm

        # Everything that can fail on the user's input fails here, before a file is written or Ray
        # starts: the checkpoint to resume (verified and loaded) and the motion store (opened).
        resume_from, resume_state = load_for_resume(cfg.resume) if cfg.resume else (None, None)
        check_motion_store(cfg)
        self.run_dir = Path(run_dir or cfg.run_dir or _run_dir_of(resume_from) or default_run_dir(cfg))
        if resume_from is not None and not (run_dir or cfg.run_dir) and _run_dir_of(resume_from) is None:
            print(
                f"sonic-ray: {resume_from} is not under <run>/checkpoints/; the resumed run writes to "
                f"{self.run_dir} (set run_dir= to choose)",
                file=sys.stderr,
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The run dir is recorded in the config (config.yaml, env runners' gauge labels).
        self.cfg = cfg = dataclasses.replace(cfg, run_dir=str(self.run_dir))
        (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        init_ray(cfg)
        self.algo = build_algorithm(cfg)
        self.iteration = 0
        self.stopped_by: str | None = None  # the signal's name when SIGTERM/SIGINT ended the run
        if resume_from is not None:
            self.restore(resume_from, resume_state)
        self.saved_iteration = self.iteration  # the newest iteration on disk (none new yet)
        self.metrics_log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.wandb = WandbLogger(
            run_dir=self.run_dir,
            mode=cfg.logging.wandb_mode,
            project=cfg.logging.wandb_project,
            entity=cfg.logging.wandb_entity,
            name=self.run_dir.name,
            config=_plain(cfg),
        )
        if self.wandb.run is not None:  # evaluations plot against the iteration they evaluated
            self.wandb.run.define_metric("eval/iteration")
            self.wandb.run.define_metric("eval/*", step_metric="eval/iteration")
        self.gauges = TrainingGauges(run=run_name(str(self.run_dir), cfg.experiment))
        self.evals = None
        if cfg.callbacks.eval_interval > 0:
            from sonic_ray.eval.tasks import BackgroundEvaluation  # imports ray

            self.evals = BackgroundEvaluation()

    # ---- checkpoints --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: learner state (weights, optimisers,
        normaliser, lr, learner RNG), the aggregator's failure stats and every env runner's
        RunnerState (env RNG, simulator, episodes, histories, sampler, policy RNG), driver RNG;
        plus the model's keyword arguments, so evaluation and export rebuild it without Ray."""
        from sonic_ray.learners.rl_module import MODEL_KWARGS  # imports ray

        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "learner": self.algo.learner_group.get_state(),
            "algo": self.algo.sonic_state(),
            "rng": rng_state(),
            "config_yaml": to_yaml(self.cfg),
            "model_kwargs": dict(self.algo.config.rl_module_spec.model_config[MODEL_KWARGS]),
        }

    def save(self) -> Path:
        path = save_checkpoint(
            self.run_dir / "checkpoints",
            self.iteration,
            self.state(),
            extra_files={"config.yaml": to_yaml(self.cfg).encode()},
            keep=self.cfg.callbacks.checkpoint_keep,
        )
        self.saved_iteration = self.iteration
        return path

    def restore(self, path: Path, state: dict[str, Any] | None = None) -> None:
        """Continue from the checkpoint at `path` (`state`: its contents, when already loaded)."""
        state = load_checkpoint(path) if state is None else state
        self.algo.learner_group.set_state(state["learner"])
        self.algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.algo.learner_group, inference_only=True
        )
        if "algo" in state:
            for index, why in sorted(self.algo.set_sonic_state(state["algo"]).items()):
                print(
                    f"sonic-ray: env runner {index} has no saved state in {path} (more runners than "
                    "when it was saved?); it starts fresh episodes"
                    if why == "no saved state"
                    else f"sonic-ray: env runner {index}: the env state saved in {path} {why}; it "
                    "starts fresh episodes (policy, learner and sampler statistics are restored)"
                )
        else:  # format 1: learner only
            print(f"sonic-ray: {path} holds no env runner state (format 1); runners start fresh episodes")
        set_rng_state(state["rng"])
        self.iteration = int(state["iteration"])

    # ---- loop ---------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        from sonic_ray.algorithm import SONIC_METRICS  # imports ray

        result = self.algo.train()
        self.iteration += 1
        metrics = {"iteration": self.iteration, "time": time.time()}
        metrics.update({k: _scalar(v) for k, v in result.get(SONIC_METRICS, {}).items()})
        evals = self._poll_evals()
        for older in evals[:-1]:  # rare: several finished since the last iteration; W&B gets the newest
            self.metrics_log.write({"iteration": self.iteration, "time": metrics["time"], **older})
        metrics.update(evals[-1] if evals else {})
        self.metrics_log.write(metrics)
        self.wandb.log(metrics, step=self.iteration)
        self.gauges.publish(metrics)
        return metrics

    def run(self, on_iteration: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Iterate to `algo.max_iterations` (checkpoints, curves); `on_iteration(metrics)` after each
        (Tune reports from it)."""
        cfg = self.cfg
        last: dict[str, Any] = {}
        title = f"sonic-ray train: {cfg.experiment} -> {self.run_dir}"
        live = None if cfg.logging.progress else False
        with (
            StopRequest() as stop,
            ProgressView(title=title, max_iterations=cfg.algo.max_iterations, live=live) as view,
        ):
            while self.iteration < cfg.algo.max_iterations and stop.signum is None:
                try:
                    last = self.step()
                except Exception as e:  # env runner failures are absorbed by RLlib; this is the rest
                    ckpts = list_checkpoints(self.run_dir / "checkpoints")
                    where = (
                        f"last complete checkpoint: {ckpts[-1]}" if ckpts else "no checkpoint was saved yet"
                    )
                    raise TrainingStopped(
                        f"training stopped during iteration {self.iteration + 1} "
                        f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                        f"{where}; continue with resume={self.run_dir}"
                    ) from e
                view.update(last)
                evaluate = (
                    cfg.callbacks.eval_interval > 0 and self.iteration % cfg.callbacks.eval_interval == 0
                )
                if (
                    self.iteration % cfg.algo.save_interval == 0
                    or self.iteration == cfg.algo.max_iterations
                    or evaluate
                ):
                    path = self.save()
                    if evaluate:
                        self._submit_eval(path)
                if cfg.callbacks.plot_learning_curves and self.iteration % 10 == 0:
                    self.plot()
                if on_iteration is not None:
                    on_iteration(last)
            if stop.signum is not None:  # the iteration in flight finished: keep it
                self.stopped_by = signal.Signals(stop.signum).name
                if self.saved_iteration != self.iteration:
                    self.save()
        return last  # close() draws the final curves, after the last evaluations land

    def plot(self) -> None:
        if self.cfg.callbacks.plot_learning_curves:
            plot_learning_curves(
                read_metrics(self.run_dir / "metrics.jsonl"),
                self.run_dir / "learning_curves.png",
                title=self.run_dir.name,
            )

    # ---- evaluation beside training ----------------------------------------------------
    def _submit_eval(self, checkpoint: Path) -> None:
        """Launch Ray tasks evaluating `checkpoint`; never blocks, never stops training."""
        try:
            plan = plan_evaluation(checkpoint, cfg=self.cfg)
            self.evals.submit(
                plan, self.run_dir / EVAL_DIR / checkpoint.name, render=self.cfg.callbacks.eval_render
            )
        except Exception as e:
            print(
                f"sonic-ray train: evaluation of {checkpoint.name} could not start ({type(e).__name__}: "
                f"{e}); "
                "training continues",
                file=sys.stderr,
            )

    def _poll_evals(self, wait_s: float | None = None) -> list[dict[str, Any]]:
        """`eval/*` metrics of each evaluation that finished since the last poll, oldest first
        (a failed one: its message printed, `eval/failures` 1)."""
        if not self.evals:
            return []

        results = self.evals.poll() if wait_s is None else self.evals.wait(wait_s)
        out = []
        for r in sorted(results, key=lambda r: r.iteration):
            if r.metrics is None:
                print(
                    f"sonic-ray train: evaluation of iteration {r.iteration} failed ({r.error}); training "
                    "continues",
                    file=sys.stderr,
                )
                out.append({"eval/failures": 1, "eval/iteration": r.iteration})
            else:
                out.append(log_metrics(r.metrics))
        return out

    def _drain_evals(self) -> None:
        """After training: wait for evaluations still running and log them with the last iteration."""
        if not self.evals:
            return
        results = self._poll_evals(wait_s=0.0 if self.stopped_by else FINAL_EVAL_WAIT_S)  # preempted: no wait
        if len(self.evals):
            print(
                f"sonic-ray train: {len(self.evals)} evaluation(s) still running after "
                f"{FINAL_EVAL_WAIT_S:.0f} s; "
                f"not logged (run `sonic-ray eval --checkpoint {self.run_dir}`)",
                file=sys.stderr,
            )
        for metrics in results:
            record = {"iteration": self.iteration, "time": time.time(), **metrics}
            self.metrics_log.write(record)
            if self.wandb.run is not None:  # no explicit step: W&B plots eval/* against eval/iteration
                self.wandb.run.log(metrics)
            self.gauges.publish(record)

    def close(self) -> None:
        try:
            self.algo.stop()
        except Exception as e:  # a dead learner cannot be stopped cleanly; its run dir is intact
            print(f"sonic-ray: stopping the algorithm failed ({type(e).__name__}: {e})")
        try:  # the algorithm's CPUs are free now for evaluations still queued
            self._drain_evals()
        finally:
            self.metrics_log.close()
            self.wandb.finish()
        try:  # redraw: the drained evaluations added the last eval/* points
            self.plot()
        except Exception as e:  # a plot must never turn a finished run into a failure
            print(f"sonic-ray: plotting the learning curves failed ({type(e).__name__}: {e})")


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _plain(cfg: SonicConfig) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))
