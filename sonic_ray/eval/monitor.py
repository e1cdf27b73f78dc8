"""`sonic-ray monitor`: evaluate a training run's checkpoints as they appear, once each.

State lives in `<run>/eval/monitor_state.json` (written atomically after each checkpoint is dealt
with): the iterations seen, evaluated (with their output dir), skipped (every-n) and failed (with
the message). A restart reads it and does no checkpoint twice; a checkpoint interrupted mid-
evaluation was never recorded, so it is evaluated again. A corrupt checkpoint (CheckpointError:
hash mismatch, missing file) is reported, recorded as failed and skipped; the monitor goes on.

Results go to `<run>/eval/iter_NNNNNN/` (metrics.json, clips.parquet, report.html, videos/) and to
the training run's W&B run, resumed by the id in `<run>/wandb_run_id`, as `eval/*` against the step
metric `eval/iteration` (so they never fight training's own step counter).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from sonic_ray.eval.dispatch import evaluate_plan
from sonic_ray.eval.pipeline import EVAL_DIR, log_metrics, plan_evaluation
from sonic_ray.train.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    checkpoint_iteration,
    list_checkpoints,
)
from sonic_ray.train.wandb_log import RUN_ID_FILE, WandbLogger
from sonic_ray.utils.io import atomic_write

STATE_FILE = "monitor_state.json"


@dataclass
class MonitorState:
    seen: list[int] = field(default_factory=list)
    evaluated: dict[str, str] = field(default_factory=dict)  # iteration -> output dir
    skipped: list[int] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # iteration -> message

    @classmethod
    def load(cls, path: Path) -> MonitorState:
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in ("seen", "evaluated", "skipped", "failed") if k in data})
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{path}: unreadable monitor state ({e}); delete it to start over") from e

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode())


class Monitor:
    def __init__(
        self,
        experiment_dir: str | Path,
        *,
        overrides: Sequence[str] = (),
        every_n: int = 1,
        render: int = 0,
        progress: bool = True,
        wandb: bool = True,
        console: Console | None = None,
        eval_kwargs: dict | None = None,
    ):
        if every_n < 1:
            raise ValueError(f"--every-n must be >= 1, got {every_n}")
        self.run_dir = Path(experiment_dir)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"{self.run_dir}: experiment directory not found")
        self.overrides, self.every_n, self.render = list(overrides), every_n, render
        self.progress, self.use_wandb = progress, wandb
        self.console = console or Console(stderr=True)
        self.eval_kwargs = dict(eval_kwargs or {})
        self.state_path = self.run_dir / EVAL_DIR / STATE_FILE
        self.state = MonitorState.load(self.state_path)

    def pending(self) -> list[tuple[int, Path]]:
        """Complete checkpoints not dealt with yet, oldest first."""
        out = []
        for path in list_checkpoints(self.run_dir / "checkpoints"):
            it = checkpoint_iteration(path)
            if it not in self.state.seen:
                out.append((it, path))
        return out

    def run_once(self) -> list[int]:
        """Deal with every pending checkpoint; returns the iterations evaluated successfully."""
        done = []
        for it, path in self.pending():
            ordinal = len(self.state.seen)
            if ordinal % self.every_n:
                self.console.print(f"monitor: {path.name}: skipped (every {self.every_n})")
                self.state.skipped.append(it)
            elif self._evaluate(it, path):
                done.append(it)
            self.state.seen.append(it)
            self.state.save(self.state_path)
        return done

    def run(self, *, poll_seconds: float = 60.0, max_polls: int | None = None) -> None:
        polls = 0
        while max_polls is None or polls < max_polls:
            self.run_once()
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            time.sleep(poll_seconds)

    def _evaluate(self, it: int, path: Path) -> bool:
        t0 = time.perf_counter()
        try:
            plan = plan_evaluation(path, self.overrides, **self.eval_kwargs)
            metrics = evaluate_plan(plan, plan.default_out_dir(), render=self.render, progress=self.progress)
        except UnsafeCheckpointError as e:
            msg = f"unsafe checkpoint refused, skipped: {e}"
            self.console.print(f"[red]monitor: {path.name}: {msg}[/red]")
            self.state.failed[str(it)] = msg
            return False
        except CheckpointError as e:
            msg = f"corrupt or incomplete checkpoint, skipped: {e}"
            self.console.print(f"[red]monitor: {path.name}: {msg}[/red]")
            self.state.failed[str(it)] = msg
            return False
        except Exception as e:  # anything else: report it, keep watching
            msg = f"evaluation failed, skipped: {type(e).__name__}: {e}"
            self.console.print(f"[red]monitor: {path.name}: {msg}[/red]")
            self.state.failed[str(it)] = msg
            return False
        out_dir = plan.default_out_dir()
        self.state.evaluated[str(it)] = str(out_dir)
        self.console.print(
            f"monitor: {path.name}: success {metrics['success_rate']:.1%}, MPJPE local "
            f"{_mm(metrics.get('mpjpe_l_mm'))} ({time.perf_counter() - t0:.1f} s) -> {out_dir}"
        )
        if self.use_wandb:
            self._log_wandb(plan.cfg, metrics, out_dir)
        return True

    def _log_wandb(self, cfg, metrics: dict, out_dir: Path) -> None:
        id_file = self.run_dir / RUN_ID_FILE
        if cfg.logging.wandb_mode == "disabled":
            return
        try:
            logger = WandbLogger(
                run_dir=self.run_dir,
                mode=cfg.logging.wandb_mode,
                project=cfg.logging.wandb_project,
                entity=cfg.logging.wandb_entity,
                name=self.run_dir.name,
                config={},
                resume_id=id_file.read_text().strip() if id_file.is_file() else None,
            )
            if logger.run is None:
                return
            import wandb

            logger.run.define_metric("eval/*", step_metric="eval/iteration")
            record = dict(log_metrics(metrics))
            for video in sorted((out_dir / "videos").glob("*.mp4")):
                record[f"eval/video/{video.stem}"] = wandb.Video(str(video), format="mp4")
            logger.run.log(record)
            logger.finish()
        except Exception as e:  # W&B trouble never stops the monitor
            self.console.print(f"[yellow]monitor: W&B logging failed: {type(e).__name__}: {e}[/yellow]")


def _mm(v) -> str:
    return "-" if v is None else f"{v:.1f} mm"
