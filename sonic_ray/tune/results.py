"""What a sweep leaves in its run dir: `results.csv`, `results.png`, `best.yaml`. Ray-free.

`best.yaml` is an experiment preset (`configs/exp/`): the `+exp=` preset and group choices the
sweep started from as its defaults, then every plain override and the best trial's swept values
as keys. Composing it (`+exp=best`) gives the best trial's config (a test checks exactly that).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sonic_ray.config.compose import ConfigError, config_dir
from sonic_ray.config.schema import SonicConfig
from sonic_ray.utils.io import atomic_write, save_figure_png

# Final metrics written per trial (when reported), after the tune metric itself.
RESULT_KEYS = (
    "reward/total",
    "env/episode_length",
    "env/success_rate",
    "perf/env_steps_per_s",
    "model/codebook_size",
    "model/token_dim",
)


@dataclass
class TrialRow:
    trial_id: str
    status: str  # completed | stopped early | error
    params: dict[str, Any]
    iterations: int
    metrics: dict[str, Any]
    run_dir: str
    error: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl rows


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict, tuple)) else v


def best_row(rows: Sequence[TrialRow], metric: str, mode: str) -> TrialRow | None:
    """The trial with the best final `metric` among those that ran the most iterations and did not
    fail (None if none reported it). A trial ASHA stopped early is compared at fewer iterations than
    the survivors, so it cannot win on an early, not yet comparable value."""
    scored = [r for r in rows if r.status != "error" and _finite(r.metrics.get(metric))]
    if not scored:
        return None
    longest = max(r.iterations for r in scored)
    scored = [r for r in scored if r.iterations == longest]
    key = (lambda r: float(r.metrics[metric])) if mode == "max" else (lambda r: -float(r.metrics[metric]))
    return max(scored, key=key)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def write_results_csv(path: Path, rows: Sequence[TrialRow], swept_keys: Sequence[str], metric: str) -> None:
    """One row per trial: id, status, swept values (lists as JSON), iterations, final metrics, run dir."""
    metric_cols = [metric] + [k for k in RESULT_KEYS if k != metric]
    header = ["trial_id", "status", *swept_keys, "iterations", *metric_cols, "run_dir", "error"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow(
            [
                r.trial_id,
                r.status,
                *[_cell(r.params.get(k)) for k in swept_keys],
                r.iterations,
                *[r.metrics.get(k, "") for k in metric_cols],
                r.run_dir,
                r.error,
            ]
        )
    atomic_write(path, buf.getvalue())


def read_results_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_results(path: Path, rows: Sequence[TrialRow], metric: str, mode: str) -> None:
    """Left: `metric` per iteration for every trial; right: each trial's final value (best marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = best_row(rows, metric, mode)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 1.5 + 0.4 * max(len(rows), 8)))
    labels = []
    for r in rows:
        label = f"{r.trial_id}: " + ", ".join(f"{k.split('.')[-1]}={_cell(v)}" for k, v in r.params.items())
        labels.append(label)
        pts = [(h["iteration"], h[metric]) for h in r.history if _finite(h.get(metric))]
        if pts:
            ax1.plot(*zip(*pts), marker="o", label=label)
    ax1.set_xlabel("iteration")
    ax1.set_ylabel(metric)
    ax1.set_title(f"{metric} per iteration")
    if any(r.history for r in rows):
        ax1.legend(fontsize=7)
    finals = [float(r.metrics[metric]) if _finite(r.metrics.get(metric)) else 0.0 for r in rows]
    colors = ["tab:green" if r is best else ("tab:red" if r.status == "error" else "tab:blue") for r in rows]
    ax2.barh(range(len(rows)), finals, color=colors)
    ax2.set_yticks(range(len(rows)), [f"{label} ({r.status})" for label, r in zip(labels, rows)], fontsize=7)
    ax2.set_xlabel(f"final {metric} ({mode}; best in green)")
    fig.tight_layout()
    save_figure_png(fig, path, dpi=100)


# ---- best.yaml ---------------------------------------------------------------------------------
def _split_override(text: str) -> tuple[str, str, str]:
    """'++a.b=1' -> ('++', 'a.b', '1')."""
    prefix = (
        "++"
        if text.startswith("++")
        else "+"
        if text.startswith("+")
        else "~"
        if text.startswith("~")
        else ""
    )
    key, sep, value = text[len(prefix) :].partition("=")
    if not sep and prefix != "~":
        raise ConfigError(f"override '{text}': expected key=value")
    return prefix, key.strip(), value.strip()


def _is_group(key: str) -> bool:
    group = key.split("@", 1)[0]
    return (config_dir() / group).is_dir()


def preset_yaml(
    *,
    overrides: Sequence[str],
    trial_cfg: SonicConfig,
    params: dict[str, Any],
    experiment: str,
    header: str = "",
) -> str:
    """An experiment preset that composes to `trial_cfg` (up to `experiment` and `run_dir`).

    `overrides` are the command-line overrides the sweep was composed from; `params` the trial's
    swept values (dotted keys). Raises ConfigError for an override a preset cannot express (`~key`).
    """
    conf = OmegaConf.structured(trial_cfg)
    defaults: list[Any] = []
    body = OmegaConf.create({})
    for text in overrides:
        prefix, key, value = _split_override(text)
        if prefix == "~":
            raise ConfigError(f"override '{text}': deleting keys cannot be written into a preset")
        if key in ("run_dir", "resume", "experiment"):  # per run; the preset names its own experiment
            continue
        if _is_group(key):
            if key == "exp":
                defaults.append(value)  # a preset of the same group: relative to configs/exp/
            else:
                entry = f"/{key}" if prefix else f"override /{key}"
                defaults.append({entry: value})
            continue
        OmegaConf.update(body, key, OmegaConf.select(conf, key), merge=False, force_add=True)
    for key, value in params.items():
        OmegaConf.update(body, key, value, merge=False, force_add=True)
    OmegaConf.update(body, "experiment", experiment, merge=False, force_add=True)
    lines = ["# @package _global_"] + [f"# {line}" if line else "#" for line in header.splitlines()]
    doc = OmegaConf.to_yaml(OmegaConf.create({"defaults": defaults})) if defaults else ""
    return "\n".join(lines) + "\n" + doc + OmegaConf.to_yaml(body)


def write_best_yaml(path: Path, **kwargs) -> None:
    atomic_write(path, preset_yaml(**kwargs))
