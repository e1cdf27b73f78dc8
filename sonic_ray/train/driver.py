"""`sonic-ray train`: the driver loop around the RLlib algorithm.

Owns the run directory (config.yaml, metrics.jsonl, learning_curves.png, checkpoints/), the live
view, W&B (driver only) and the Ray metrics gauges. Everything below it takes explicit arguments.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonic_ray.config.compose import to_yaml
from sonic_ray.config.schema import SonicConfig
from sonic_ray.train.checkpoint import list_checkpoints, load_checkpoint, resolve_checkpoint, save_checkpoint
from sonic_ray.train.metrics import MetricsLog, plot_learning_curves, read_metrics
from sonic_ray.train.progress import ProgressView
from sonic_ray.train.wandb_log import WandbLogger

CHECKPOINT_FORMAT = 2  # 2: + env runner and sampler state


def default_run_dir(cfg: SonicConfig) -> Path:
    return Path("runs") / f"{cfg.experiment}-{time.strftime('%Y%m%d-%H%M%S')}"


def init_ray(cfg: SonicConfig) -> None:
    """Join `ray.address` / RAY_ADDRESS when given (or inside a job); else start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(include_dashboard=cfg.ray.include_dashboard, log_to_driver=True,
                 runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}})


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class TrainingStopped(RuntimeError):
    """Training could not go on (a learner died, or an iteration failed); names the last checkpoint."""


class Trainer:
    """Builds the algorithm for a validated config and runs iterations with all run outputs."""

    def __init__(self, cfg: SonicConfig, *, run_dir: str | Path | None = None):
        from sonic_ray.train.build import build_algorithm

        self.cfg = cfg
        resume_from = None
        if cfg.resume:
            resume_from = resolve_checkpoint(cfg.resume)
        self.run_dir = Path(run_dir or cfg.run_dir or (resume_from.parents[1] if resume_from else default_run_dir(cfg)))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        init_ray(cfg)
        self.algo = build_algorithm(cfg)
        self.iteration = 0
        if resume_from is not None:
            self.restore(resume_from)
        self.metrics_log = MetricsLog(self.run_dir / "metrics.jsonl")
        self.wandb = WandbLogger(run_dir=self.run_dir, mode=cfg.logging.wandb_mode, project=cfg.logging.wandb_project,
                                 entity=cfg.logging.wandb_entity, name=self.run_dir.name,
                                 config=_plain(cfg))
        from sonic_ray.train.gauges import TrainingGauges

        self.gauges = TrainingGauges(run=self.run_dir.name)

    # ---- checkpoints --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: learner state (weights, optimisers,
        normaliser, lr, learner RNG), the aggregator's failure stats and every env runner's
        RunnerState (env RNG, simulator, episodes, histories, sampler, policy RNG), driver RNG."""
        return {"format": CHECKPOINT_FORMAT, "iteration": self.iteration,
                "learner": self.algo.learner_group.get_state(), "algo": self.algo.sonic_state(),
                "rng": rng_state(), "config_yaml": to_yaml(self.cfg)}

    def save(self) -> Path:
        return save_checkpoint(self.run_dir / "checkpoints", self.iteration, self.state(),
                               extra_files={"config.yaml": to_yaml(self.cfg).encode()},
                               keep=self.cfg.callbacks.checkpoint_keep)

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        self.algo.learner_group.set_state(state["learner"])
        self.algo.env_runner_group.sync_weights(from_worker_or_learner_group=self.algo.learner_group,
                                                inference_only=True)
        if "algo" in state:
            fresh = self.algo.set_sonic_state(state["algo"])
            if fresh:
                print(f"sonic-ray: env runners {fresh} have no saved state in {path} (more runners than "
                      "when it was saved?); they start fresh episodes")
        else:  # format 1: learner only
            print(f"sonic-ray: {path} holds no env runner state (format 1); runners start fresh episodes")
        set_rng_state(state["rng"])
        self.iteration = int(state["iteration"])

    # ---- loop ---------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        from sonic_ray.algorithm import SONIC_METRICS

        result = self.algo.train()
        self.iteration += 1
        metrics = {"iteration": self.iteration, "time": time.time()}
        metrics.update({k: _scalar(v) for k, v in result.get(SONIC_METRICS, {}).items()})
        self.metrics_log.write(metrics)
        self.wandb.log(metrics, step=self.iteration)
        self.gauges.publish(metrics)
        return metrics

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        last: dict[str, Any] = {}
        title = f"sonic-ray train: {cfg.experiment} -> {self.run_dir}"
        live = None if cfg.logging.progress else False
        with ProgressView(title=title, max_iterations=cfg.algo.max_iterations, live=live) as view:
            while self.iteration < cfg.algo.max_iterations:
                try:
                    last = self.step()
                except Exception as e:  # env runner failures are absorbed by RLlib; this is the rest
                    ckpts = list_checkpoints(self.run_dir / "checkpoints")
                    where = f"last complete checkpoint: {ckpts[-1]}" if ckpts else "no checkpoint was saved yet"
                    raise TrainingStopped(
                        f"training stopped during iteration {self.iteration + 1} "
                        f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                        f"{where}; continue with resume={self.run_dir}") from e
                view.update(last)
                if self.iteration % cfg.algo.save_interval == 0 or self.iteration == cfg.algo.max_iterations:
                    self.save()
                if cfg.callbacks.plot_learning_curves and self.iteration % 10 == 0:
                    self.plot()
        self.plot()
        return last

    def plot(self) -> None:
        if self.cfg.callbacks.plot_learning_curves:
            plot_learning_curves(read_metrics(self.run_dir / "metrics.jsonl"), self.run_dir / "learning_curves.png",
                                 title=self.run_dir.name)

    def close(self) -> None:
        self.metrics_log.close()
        self.wandb.finish()
        try:
            self.algo.stop()
        except Exception as e:  # a dead learner cannot be stopped cleanly; its run dir is intact
            print(f"sonic-ray: stopping the algorithm failed ({type(e).__name__}: {e})")


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _plain(cfg: SonicConfig) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg))
