"""W&B logging from the driver only (never a global run inside workers).

Offline unless `mode="online"` and an API key is configured, so a run works with no network; the
run id is kept in `run_dir/wandb_run_id` so resumed runs and the checkpoint monitor log to the same run.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

RUN_ID_FILE = "wandb_run_id"


def _effective_mode(mode: str) -> str:
    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_key()):
        return "offline"
    return mode


def _has_netrc_key() -> bool:
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class WandbLogger:
    def __init__(
        self,
        *,
        run_dir: str | Path,
        mode: str,
        project: str,
        entity: str | None,
        name: str,
        config: dict[str, Any],
        resume_id: str | None = None,
    ):
        self.mode = _effective_mode(mode)
        self.run = None
        if self.mode == "disabled":
            return
        import wandb

        run_dir = Path(run_dir)
        id_file = run_dir / RUN_ID_FILE
        run_id = (
            resume_id or (id_file.read_text().strip() if id_file.is_file() else None) or secrets.token_hex(4)
        )
        self.run = wandb.init(
            project=project,
            entity=entity,
            name=name,
            id=run_id,
            resume="allow",
            mode=self.mode,
            dir=str(run_dir),
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
        )
        id_file.write_text(run_id)

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in metrics.items() if v is not None}, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
